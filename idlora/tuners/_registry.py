"""Registering adapter methods that live outside PEFT's source tree.

``peft.utils.register_peft_method`` only accepts names that already exist in ``peft.utils.PeftType``, so
an out-of-tree method registers the way that function does, by hand: its own ``str``-valued Enum member as
``peft_type`` (a ``str`` Enum hashes and compares like its value, so ``"peft_type": "IDLORA"`` in a saved
``adapter_config.json`` finds the method again on load), added to PEFT's three mappings.

A fresh process that never imports ``idlora`` still finds them: the installed ``idlora_autoload.pth`` imports
``idlora`` as soon as ``peft`` is imported (``idlora_autoload.py`` at the repository root; its ``PEFT_TYPES``
lists these members' values).
"""

from __future__ import annotations

import enum


class ExtraPeftType(str, enum.Enum):
    IDLORA = "IDLORA"
    HYDRALORA = "HYDRALORA"
    MOELORA = "MOELORA"
    LORI = "LORI"

    def __str__(self) -> str:  # print like PeftType members do
        return self.value


def register(peft_type: ExtraPeftType, config_cls, model_cls, prefix: str) -> None:
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_PREFIX_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING

    existing = PEFT_TYPE_TO_CONFIG_MAPPING.get(peft_type)
    if getattr(existing, "idlora_stand_in", False) is True:  # idlora_autoload's "import idlora" message: replace it
        del PEFT_TYPE_TO_CONFIG_MAPPING[peft_type]  # (a str key; the Enum member goes in its place)
        existing = None
    if existing is not None and existing is not config_cls:
        raise KeyError(f"PEFT method {peft_type.value} is already registered with {existing.__name__}")
    PEFT_TYPE_TO_CONFIG_MAPPING[peft_type] = config_cls
    PEFT_TYPE_TO_TUNER_MAPPING[peft_type] = model_cls
    PEFT_TYPE_TO_PREFIX_MAPPING[peft_type] = prefix
