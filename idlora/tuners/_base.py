"""What the three out-of-tree methods (ID-LoRA, HydraLoRA, MoELoRA) share: config fields PEFT's machinery
reads, the default targets of the paper, and a tuner base that wraps every targeted ``nn.Linear``."""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Optional, Union

import torch
from peft.config import PeftConfig
from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer
from torch import nn

from ..seeding import layer_generator  # noqa: F401  (the tuners take it from here)

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

    def save_pretrained(self, save_directory: str, **kwargs) -> None:
        """Save as PEFT does (every save path, PEFT's and transformers', comes here) and add to the directory's
        model card how to load the adapter: PEFT alone does not know this package's methods."""
        PeftConfig.save_pretrained(self._saved_copy(), save_directory, **kwargs)
        write_loading_card(save_directory, str(self.peft_type))

    def _saved_copy(self) -> "AdapterConfigBase":
        return self

    def _validate_common(self, method: str) -> None:
        if isinstance(self.target_modules, list):
            self.target_modules = set(self.target_modules)
        if not isinstance(self.r, int) or isinstance(self.r, bool) or self.r <= 0:
            raise ValueError(f"{method}: r must be a positive integer, got r={self.r!r}. Set method.r to e.g. 8.")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"{method}: dropout must be in [0, 1), got {self.dropout!r}.")
        if self.bias != "none":
            raise ValueError(f"{method}: bias={self.bias!r} is not supported; use bias='none'.")


LOADING_CARD_TITLE = "## Loading this adapter"


def write_loading_card(save_directory: str, peft_type: str) -> None:
    """Append (once) to ``save_directory/README.md`` how to load a ``peft_type`` adapter of this package."""
    import os

    path = os.path.join(save_directory, "README.md")
    card = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
    if LOADING_CARD_TITLE in card:
        return
    card += f"""
{LOADING_CARD_TITLE}

This is a `{peft_type}` adapter of the `idlora` package, a PEFT method outside PEFT's source tree. Where `idlora`
is installed (a wheel or `pip install -e .`), any process that imports `peft` registers its methods (the installed
`idlora_autoload.pth`), so plain PEFT loads this adapter. Elsewhere (idlora only on `PYTHONPATH`, or
`IDLORA_NO_AUTOLOAD=1`), `import idlora` before loading it: without it PEFT fails with `KeyError: '{peft_type}'`.

```python
import idlora  # registers IDLORA, HYDRALORA, MOELORA and LORI with PEFT (done for you where idlora is installed)
from peft import PeftModel
model = PeftModel.from_pretrained(base_model, "<this directory>")
```

lm-eval from the shell: `python -m idlora.lm_eval --model hf --model_args pretrained=<base>,peft=<this directory> --tasks <tasks>`
(lm-eval's own arguments, or a training run's directory as `peft=`; plain `python -m lm_eval` works where idlora
is installed)
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(card)


def linear_modules(model: nn.Module) -> dict[str, nn.Linear]:
    """``{name: nn.Linear}`` of every linear layer a method can target: an adapted module (an adapter layer of any
    method) counts under its own name, as its base layer, and its insides are not listed."""
    out, wrapped = {}, []
    for name, module in model.named_modules():
        if any(name.startswith(w + ".") for w in wrapped):
            continue
        if isinstance(module, BaseTunerLayer):
            wrapped.append(name)
            module = module.get_base_layer()
        if isinstance(module, nn.Linear):
            out[name] = module
    return out


def check_targets_match(model: nn.Module, config: AdapterConfigBase, method: str) -> None:
    """Raise before any work if a listed target name matches no ``nn.Linear`` of the model.

    PEFT only errors when *no* target matches; a typo in one of seven names would silently leave that
    projection un-adapted and change the method (and its parameter count)."""
    targets = config.target_modules
    linear_names = list(linear_modules(model))
    if targets is None or isinstance(targets, str):
        if isinstance(targets, str) and not any(re.fullmatch(targets, n) for n in linear_names):
            raise ValueError(f"{method}: target_modules regex {targets!r} matches no linear layer of the model.")
        return
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

    def inject_adapter(self, model: nn.Module, adapter_name: str, *args, **kwargs) -> None:
        """Every path that adds an adapter (``get_peft_model``, ``add_adapter``, ``load_adapter``, transformers'
        ``load_adapter``) comes through here, so the per-adapter set-up runs here rather than in PEFT's
        ``_pre_injection_hook``, which only ``BaseTuner.__init__`` calls."""
        self._prepare_injection(model, self.peft_config[adapter_name], adapter_name)
        try:
            super().inject_adapter(model, adapter_name, *args, **kwargs)
        finally:
            self._finish_injection(adapter_name)

    def _prepare_injection(self, model: nn.Module, config, adapter_name: str) -> None:
        check_targets_match(model, config, self.method_name)

    def _finish_injection(self, adapter_name: str) -> None:
        return None

    @contextmanager
    def _enable_peft_forward_hooks(self, *args, **kwargs):
        """Mixed batches (``model(..., adapter_names=[...])``, one adapter name or ``"__base__"`` per sample), as
        PEFT's LoRA does them: a pre-forward hook hands the names to every adapter layer."""
        adapter_names = kwargs.pop("adapter_names", None)
        if adapter_names is None:
            yield
            return
        if self.training:
            raise ValueError(f"{self.method_name}: adapter_names= (a mixed batch) works in eval mode only; "
                             "call model.eval() first.")
        unknown = sorted(set(adapter_names) - set(self.peft_config) - {"__base__"})
        if unknown:
            raise ValueError(f"{self.method_name}: adapter_names has unknown adapter(s) {unknown}; this model has "
                             f"{sorted(self.peft_config)} (or '__base__' for no adapter).")
        hook = partial(_adapter_names_pre_forward_hook, adapter_names=list(adapter_names))
        handles = [m.register_forward_pre_hook(hook, with_kwargs=True)
                   for m in self.model.modules() if isinstance(m, self.tuner_layer_cls)]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

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


def _adapter_names_pre_forward_hook(module, args, kwargs, adapter_names):
    kwargs["adapter_names"] = adapter_names
    return args, kwargs


def mixed_batch_forward(layer: BaseTunerLayer, forward, h: torch.Tensor, adapter_names: list[str], *args, **kwargs):
    """``forward`` of each sample of ``h`` with the adapter ``adapter_names[i]`` alone active (``"__base__"``: none):
    each group of samples runs the layer's own forward once, so the result is the single-adapter model's."""
    if len(adapter_names) != h.shape[0]:
        raise ValueError(f"adapter_names has {len(adapter_names)} names for a batch of {h.shape[0]}; give one per "
                         "sample.")
    if getattr(layer, "merged", False):
        raise ValueError("adapter_names= cannot be used while an adapter is merged; call model.unmerge_adapter().")
    result, active = None, layer._active_adapter
    try:
        for name in dict.fromkeys(adapter_names):
            rows = torch.tensor([i for i, n in enumerate(adapter_names) if n == name], device=h.device)
            sub = h.index_select(0, rows)
            if name == "__base__":
                out = layer.get_base_layer()(sub, *args, **kwargs)
            else:
                layer._active_adapter = [name]
                out = forward(layer, sub, *args, **kwargs)
            if result is None:
                result = out.new_empty((h.shape[0], *out.shape[1:]))
            result.index_copy_(0, rows, out.to(result.dtype))
    finally:
        layer._active_adapter = active
    return result


def make_linear_class(layer_cls: type) -> type:
    """``nn.Linear`` wrapper class for an adapter layer type (what PEFT puts in place of the base layer). The class
    is named ``Linear`` in ``layer_cls``'s module, where that module binds it, so pickle finds it again."""

    class Linear(nn.Module, layer_cls):
        def __init__(self, base_layer, adapter_name, config, module_name: str = ""):
            super().__init__()
            layer_cls.__init__(self, base_layer)
            self._active_adapter = adapter_name
            self.update_layer(adapter_name, config, module_name=module_name)

        def forward(self, h, *args, adapter_names=None, **kwargs):
            if adapter_names is not None:
                return mixed_batch_forward(self, layer_cls.forward, h, adapter_names, *args, **kwargs)
            return layer_cls.forward(self, h, *args, **kwargs)

        def __repr__(self) -> str:
            return layer_cls.prefix.rstrip("_") + "." + super().__repr__()

    Linear.__name__ = Linear.__qualname__ = "Linear"
    Linear.__module__ = layer_cls.__module__
    return Linear
