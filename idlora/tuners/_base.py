"""What the three out-of-tree methods (ID-LoRA, HydraLoRA, MoELoRA) share: config fields PEFT's machinery
reads, the default targets of the paper, and a tuner base that wraps every targeted ``nn.Linear``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional, Union

import torch
from peft.config import PeftConfig
from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer
from torch import nn

# The paper adapts every projection of a LLaMA/Mistral block (§5.1).
PAPER_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class AdapterConfigBase(PeftConfig):
    """Fields every method here has, named as PEFT names them so PEFT's target matching works unchanged."""

    r: int = field(default=8, metadata={"help": "Rank."})
    alpha: float = field(default=16, metadata={"help": "Scaling numerator: the update is scaled by alpha / r."})
    dropout: float = field(default=0.0, metadata={"help": "Dropout probability on the adapter path."})
    target_modules: Optional[Union[list[str], str]] = field(
        default_factory=lambda: list(PAPER_TARGETS),
        metadata={"help": "Module names (suffixes) or a regex to adapt; default: q,k,v,o,gate,up,down."},
    )
    exclude_modules: Optional[Union[list[str], str]] = field(default=None)
    layers_to_transform: Optional[Union[list[int], int]] = field(default=None)
    layers_pattern: Optional[Union[list[str], str]] = field(default=None)
    modules_to_save: Optional[list[str]] = field(default=None)
    bias: str = field(default="none", metadata={"help": "Only 'none' is supported."})
    seed: int = field(default=0, metadata={"help": "Seed of every random choice the adapter makes at init."})

    @property
    def target_parameters(self):  # read by PEFT's injection; these methods target modules only
        return None

    def _validate_common(self, method: str) -> None:
        if isinstance(self.target_modules, list):
            self.target_modules = set(self.target_modules)
        if not isinstance(self.r, int) or isinstance(self.r, bool) or self.r <= 0:
            raise ValueError(f"{method}: r must be a positive integer, got r={self.r!r}. Set method.r to e.g. 8.")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"{method}: dropout must be in [0, 1), got {self.dropout!r}.")
        if self.bias != "none":
            raise ValueError(f"{method}: bias={self.bias!r} is not supported; use bias='none'.")


def check_targets_match(model: nn.Module, config: AdapterConfigBase, method: str) -> None:
    """Raise before any work if a listed target name matches no ``nn.Linear`` of the model.

    PEFT only errors when *no* target matches; a typo in one of seven names would silently leave that
    projection un-adapted and change the method (and its parameter count)."""
    targets = config.target_modules
    if targets is None or isinstance(targets, str):
        if isinstance(targets, str) and not any(
            re.fullmatch(targets, n) for n, m in model.named_modules() if isinstance(m, nn.Linear)
        ):
            raise ValueError(f"{method}: target_modules regex {targets!r} matches no linear layer of the model.")
        return
    linear_names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    missing = sorted(t for t in targets if not any(n == t or n.endswith("." + t) for n in linear_names))
    if missing:
        suffixes = sorted({n.rsplit(".", 1)[-1] for n in linear_names})
        raise ValueError(
            f"{method}: target module(s) {missing} match no linear layer of the model. "
            f"Linear layers it has: {suffixes}. Fix method.target_modules."
        )


class LinearAdapterTuner(BaseTuner):
    """Wraps every targeted ``nn.Linear`` in ``layer_cls``; subclasses set prefix, layer_cls, method_name."""

    layer_cls: type
    method_name: str
    target_module_mapping = {}

    def _prepare_adapter_config(self, peft_config, model_config):
        if peft_config.target_modules is None:
            peft_config.target_modules = set(PAPER_TARGETS)
        return peft_config

    def _pre_injection_hook(self, model: nn.Module, config, adapter_name: str) -> None:
        check_targets_match(model, config, self.method_name)

    def _layer_kwargs(self, config, adapter_name: str, target: nn.Module, current_key: str) -> dict:
        """Extra per-layer arguments for ``update_layer``: the module's name (seeds its init); ID-LoRA adds the
        row indices."""
        return {"module_name": current_key}

    def _create_and_replace(self, config, adapter_name, target, target_name, parent, current_key, **kwargs):
        base = target.get_base_layer() if isinstance(target, BaseTunerLayer) else target
        if not isinstance(base, nn.Linear):
            raise TypeError(
                f"{self.method_name}: module {current_key!r} is {type(base).__name__}; only nn.Linear is supported."
            )
        extra = self._layer_kwargs(config, adapter_name, base, current_key)
        if isinstance(target, self.layer_cls):
            target.update_layer(adapter_name, config, **extra)
            return
        new_module = self.layer_cls(target, adapter_name, config, **extra)
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)

    def _check_merge_allowed(self):
        raise ValueError(
            f"{self.method_name} cannot be merged into the base weights: its router mixes the update per token. "
            "Use the adapted model as it is."
        )


def kaiming_init_(linear: nn.Linear, generator: torch.Generator) -> None:
    """LoRA's A initialisation (kaiming-uniform with a=sqrt(5)), seeded by ``generator``."""
    if linear.weight.is_meta:
        return
    fan_in = linear.weight.shape[1]
    bound = 1.0 / fan_in**0.5  # kaiming_uniform_(a=sqrt(5)) reduces to U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    with torch.no_grad():
        w = torch.empty(linear.weight.shape, dtype=torch.float32).uniform_(-bound, bound, generator=generator)
        linear.weight.copy_(w)


def layer_generator(seed: int, key: str) -> torch.Generator:
    """A generator seeded from (seed, module name): every layer's init is reproducible on its own."""
    import zlib

    return torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(key.encode())) % (2**63))


def make_linear_class(layer_cls: type) -> type:
    """``nn.Linear`` wrapper class for an adapter layer type (what PEFT puts in place of the base layer)."""

    class Linear(nn.Module, layer_cls):
        def __init__(self, base_layer, adapter_name, config, module_name: str = ""):
            super().__init__()
            layer_cls.__init__(self, base_layer)
            self._active_adapter = adapter_name
            self.update_layer(adapter_name, config, module_name=module_name)

        def forward(self, h, *args, **kwargs):
            return layer_cls.forward(self, h, *args, **kwargs)

        def __repr__(self) -> str:
            return layer_cls.prefix.rstrip("_") + "." + super().__repr__()

    Linear.__name__ = Linear.__qualname__ = "Linear"
    return Linear
