"""The ID-LoRA adapter layer (paper §4, eq. 4; docs/DESIGN.md §1).

For a frozen ``W`` (d_out, d_in), an input token ``h`` (d_in,) and row index sets ``S_1..S_k`` (r rows each):

    x_i   = A_i h = W[S_i, :] h                         (r,)      frozen bases, i = 1..k
    alpha = softmax(R h)                                (k,)      R: (k, d_in)  [router="linear", default]
    y_i   = [B x_i^1 ; B x_i^2]                         (d_out,)  B: (d_out/2, r/2), x_i^1, x_i^2 the halves of x_i
    u     = W h + (alpha_lora / r) * sum_i alpha_i y_i  (d_out,)                         (eq. 4)

The router, ``alpha`` of shape (k,) per token (``config.router``; ``idlora_router`` holds its weight):

    linear   alpha   = softmax(R h)          R: (k, d_in), nn.Linear(d_in, k)   Table 6's counts (k*d_in per layer)
    inner    alpha   = softmax_i(T . x_i)    T: (r,),      nn.Linear(r, 1)      the text's T, with a softmax added
    text     alpha_i = T . x_i               T: (r,),      nn.Linear(r, 1)      the text as written: raw scores, no
                                                                                softmax, so alpha need not sum to 1
    uniform  alpha_i = 1/k                   none (no idlora_router entry)      ablation: what routing buys

``inner`` and ``text`` share T and the score ``T . x_i`` (one scalar per base: the text's ``T ⊙ A_i h`` read as the
inner product that ``sum_i alpha_i y_i`` needs); they differ only in the softmax over the k scores.

Rank Boosting with factor m (``config.rb_parts``, default 2 = eq. 4; ``rank_boosting=false`` is m = 1):
``x_i = [x_i^1 ; ... ; x_i^m]``, parts of r/m, ``y_i = [B x_i^1 ; ... ; B x_i^m]`` with one B of shape
(d_out/m, r/m). m = 2 is eq. 4 above; m = 1 is ``B`` of (d_out, r) and ``y_i = B x_i`` ("w/o RB").

Two exact identities make this as cheap as LoRA (docs/DESIGN.md §1), and the forward uses both:
  1. ``A_i h = (W h)[S_i]``: the frozen projections are entries of the base output the layer computes anyway,
     so with no dropout on the input (eval mode, or ``dropout_position="rows"``) the A-side is a gather;
     with input dropout it is one fused ``(k*r, d_in)`` matmul ``W[S] drop(h)``.
  2. ``sum_i alpha_i B x_i = B (sum_i alpha_i x_i)``: mix the k projections first, apply B once.
``tests/test_idlora_layer.py`` checks the result against the literal per-cluster formula above.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from peft.tuners._buffer_dict import BufferDict
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from .._base import kaiming_init_, layer_generator, mixed_batch_forward


def is_placeholder(index: torch.Tensor) -> bool:
    """True for the stand-in indices of a config whose indices are in a checkpoint still to be loaded."""
    if index.is_meta:
        return True
    return bool((index < 0).any()) if not index.is_floating_point() else bool(torch.isnan(index).any())


FEW_TOKENS = 8  # up to this many tokens per call (decoding) the k-way mix is one batched product; see mix_bases


def mix_bases(alpha: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum_i alpha_i x_i per token: alpha (N, 1, k), each token's k weights as a row, and x (N, k, r) -> (N, r), or
    (N, 1, r) from the bmm (callers reshape; a view the decoding path skips).

    Two ways to the same sum, the faster for the token count (measured on 2 CPU threads, k=4, r=32..128): for a few
    tokens one ``bmm`` of (N, 1, k) @ (N, k, r) (3 us against the broadcast's 5 at N=1); for more, a broadcast
    multiply-add (at N=128 the bmm's per-token products cost 3x it). Under ``torch.compile`` always the broadcast:
    inductor fuses it with the gather and the softmax into one kernel, where a bmm stays a library call of its own.
    The training and inference paths share this choice, so for a given input they compute the same bits."""
    if x.shape[0] <= FEW_TOKENS and not torch.compiler.is_compiling():
        return torch.bmm(alpha, x)  # (N, 1, k) @ (N, k, r)
    return (alpha.reshape(x.shape[0], -1, 1) * x).sum(dim=1)  # (N, k, 1) * (N, k, r), summed over k


def compiled_one_token_update(h: torch.Tensor, base_out: torch.Tensor, index: torch.Tensor, R: torch.Tensor,
                              Bw: torch.Tensor, scaling: float) -> torch.Tensor:
    """eq. 4 for one token under ``torch.compile`` (batch-1 decoding): W h + scaling * [B x^1 ; ... ; B x^m], with the
    router ``R h`` and B written as broadcast products summed, not as matrix products. ``h`` (..., d_in), ``base_out``
    (..., d_out) = W h, ``index`` (k, r), ``R`` (k, d_in), ``Bw`` (d_out/m, r/m).

    Why: for one token these are a (1, d_in) x (d_in, k=4) and an (m, r/m) x (r/m, d_out/m) product, which as library
    GEMM calls cost a fixed few microseconds each, more than their arithmetic; written out, inductor fuses them with
    the gather, the softmax and the mix into one kernel, and the layer makes one library call (W h) where unmerged
    LoRA makes three. Only for one token: from two on, inductor's fused kernel redoes the reductions per output and
    costs 2-7x the GEMM path (measured on 2 CPU threads, 576x1536 layers, 2-16 tokens); ``_inference_update`` keeps
    the GEMMs there. The end-to-end effect is ``make bench`` part compile_decode (README)."""
    n = base_out.numel() // base_out.shape[-1]  # tokens (1 where the layer calls this)
    k, r = index.shape
    rows_m, r_m = Bw.shape
    x = torch.index_select(base_out, -1, index.reshape(-1)).view(n, k, r)  # (N, k, r) = A_i h, identity 1
    logits = (h.reshape(n, 1, -1) * R).sum(-1)  # (N, 1, d_in) * (k, d_in), summed: (N, k) = R h
    alpha = torch.softmax(logits, dim=-1)  # (N, k)
    mixed = (alpha.view(n, k, 1) * x).sum(dim=1)  # (N, r) = sum_i alpha_i x_i
    update = (mixed.view(n * (r // r_m), 1, r_m) * Bw).sum(-1)  # (N*m, 1, r/m) * (d_out/m, r/m): (N*m, d_out/m)
    return base_out + scaling * update.view_as(base_out)  # (..., d_out): the m parts side by side per token


class IDLoRALayer(BaseTunerLayer):
    adapter_layer_names = ("idlora_B", "idlora_router")
    other_param_names = ("idlora_index", "idlora_A", "idlora_dropout", "r", "k", "scaling", "rank_boosting",
                         "rb_parts", "router_kind", "dropout_position", "rows_pending")

    def __init__(self, base_layer: nn.Module, **kwargs) -> None:
        self.base_layer = base_layer
        self.idlora_B = nn.ModuleDict({})
        self.idlora_router = nn.ModuleDict({})
        self.idlora_dropout = nn.ModuleDict({})
        # (k, r) long: S_1..S_k, saved with the adapter so loading never clusters again.
        self.idlora_index = BufferDict({}, persistent=True)
        # (k, r, d_in): explicit frozen bases, only for the reviewer ablations selection=svd|gaussian (not rows of W)
        self.idlora_A = BufferDict({}, persistent=True)
        self.r, self.k, self.scaling = {}, {}, {}
        self.rank_boosting, self.router_kind, self.dropout_position = {}, {}, {}
        self.rb_parts = {}  # {adapter: m}: the Rank Boosting factor in effect (1 without Rank Boosting)
        self.rows_pending = {}  # {adapter: module name}: indices still a placeholder, to be loaded from a checkpoint
        self._disable_adapters = False
        self.merged_adapters = []
        base = self.get_base_layer()
        self.in_features, self.out_features = base.in_features, base.out_features

    def update_layer(self, adapter_name: str, config, frozen: torch.Tensor, module_name: str = "") -> None:
        """``frozen``: what A_1..A_k are, a long (k, r) row index S_1..S_k into W, or for the reviewer ablations
        (selection=svd|gaussian) the float (k, r, d_in) bases themselves (``pmrc.select_rows``)."""
        r, k, d_in, d_out = config.r, config.k, self.in_features, self.out_features
        bases = frozen.is_floating_point()  # svd / gaussian: the A_i themselves, (k, r, d_in)
        expected = (k, r, d_in) if bases else (k, r)
        if tuple(frozen.shape) != expected:
            raise ValueError(f"ID-LoRA: {'bases' if bases else 'row index'} for {module_name!r} have shape "
                             f"{tuple(frozen.shape)}, expected {expected}.")
        self.r[adapter_name], self.k[adapter_name] = r, k
        self.scaling[adapter_name] = config.alpha / r
        self.rank_boosting[adapter_name] = config.rank_boosting
        self.rb_parts[adapter_name] = m = config.parts
        self.router_kind[adapter_name] = config.router
        self.dropout_position[adapter_name] = config.dropout_position
        self.idlora_dropout[adapter_name] = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        if bases:
            self.idlora_A[adapter_name] = frozen.to(self.get_base_layer().weight.dtype)
        else:
            self.idlora_index[adapter_name] = frozen.to(torch.long)
        if is_placeholder(frozen) and not frozen.is_meta:  # on the meta device a forward computes shapes only
            self.rows_pending[adapter_name] = module_name
        else:
            self.rows_pending.pop(adapter_name, None)

        device = self.get_base_layer().weight.device
        factory = {"device": device} if device.type == "meta" else {}
        # B: (d_out/m, r/m); m = 2 (eq. 4): (d_out/2, r/2); m = 1 (no Rank Boosting): (d_out, r)
        self.idlora_B[adapter_name] = nn.Linear(r // m, d_out // m, bias=False, **factory)
        router = None
        if config.router == "linear":
            router = nn.Linear(d_in, k, bias=False, **factory)  # R: (k, d_in)
        elif config.router in ("inner", "text"):
            router = nn.Linear(r, 1, bias=False, **factory)  # T: (1, r)
        if router is not None:  # router="uniform" has none
            self.idlora_router[adapter_name] = router
        elif adapter_name in self.idlora_router:  # an adapter re-made under the same name
            del self.idlora_router[adapter_name]
        if device.type != "meta":
            nn.init.zeros_(self.idlora_B[adapter_name].weight)  # delta W = 0 at step 0, as in LoRA
            if router is not None:
                kaiming_init_(router, layer_generator(config.seed, module_name))
        self._move_adapter_to_device_of_base_layer(adapter_name)
        self.set_adapter(self.active_adapters)

    def check_rows_loaded(self) -> None:
        """Raise if an active adapter still has the placeholder indices of a saved config (never loaded)."""
        for name in [n for n in self.active_adapters if n in self.rows_pending]:
            tensor = self.idlora_index[name] if name in self.idlora_index else self.idlora_A[name]
            if is_placeholder(tensor):
                raise RuntimeError(
                    f"ID-LoRA: adapter {name!r} of module {self.rows_pending[name]!r} has no row indices: its config "
                    "was read from a saved adapter_config.json (indices_in_checkpoint=true) but the adapter weights "
                    "were never loaded. Load the adapter with PeftModel.from_pretrained(base, adapter_dir) or "
                    "model.load_adapter(adapter_dir), or set config.indices_in_checkpoint=False to select new rows."
                )
            del self.rows_pending[name]

    # ---- the three parts of eq. 4 -------------------------------------------------------------------------
    def frozen_projections(self, adapter_name: str, h: torch.Tensor, base_out: torch.Tensor) -> torch.Tensor:
        """x_i = A_i h for all i: (..., d_in) -> (..., k, r), using identity 1."""
        dropout = self.idlora_dropout[adapter_name]
        if adapter_name in self.idlora_A:  # svd / gaussian bases are not rows of W: one (k*r, d_in) product
            A = self.idlora_A[adapter_name]  # (k, r, d_in)
            k, r = A.shape[:2]
            position = self.dropout_position[adapter_name] if self.training else None
            x = F.linear((dropout(h) if position == "input" else h).to(A.dtype), A.reshape(k * r, -1))  # (..., k*r)
            x = dropout(x) if position == "rows" else x
            return x.reshape(*x.shape[:-1], k, r)
        index = self.idlora_index[adapter_name]  # (k, r)
        k, r = index.shape
        if self.training and self.dropout_position[adapter_name] == "input" and not isinstance(dropout, nn.Identity):
            w_s = self.get_base_layer().weight[index.reshape(-1)]  # (k*r, d_in) = stacked A_i
            x = F.linear(dropout(h).to(w_s.dtype), w_s)  # (..., k*r)
        else:
            x = torch.index_select(base_out, -1, index.reshape(-1))  # (..., k*r): a gather from W h
            bias = self.get_base_layer().bias
            if bias is not None:  # A_i uses W only
                x = x - bias[index.reshape(-1)]
            if self.training and self.dropout_position[adapter_name] == "rows":
                x = dropout(x)
        return x.reshape(*x.shape[:-1], k, r)

    def route(self, adapter_name: str, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """alpha: (..., k), in float32 at least: a softmax over the k bases (linear, inner), the raw scores
        ``T . x_i`` (text), or 1/k each (uniform). ``h``: (..., d_in), ``x``: (..., k, r)."""
        kind = self.router_kind[adapter_name]
        if kind == "uniform":
            k = x.shape[-2]
            return torch.full(x.shape[:-1], 1.0 / k, dtype=torch.promote_types(x.dtype, torch.float32),
                              device=x.device)  # (..., k)
        router = self.idlora_router[adapter_name]
        if kind == "linear":
            logits = router(h.to(router.weight.dtype))  # (..., k) = R h
        else:
            logits = router(x.to(router.weight.dtype)).squeeze(-1)  # (..., k) = T . x_i
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        return logits if kind == "text" else torch.softmax(logits, dim=-1)

    def boosted_update(self, adapter_name: str, mixed: torch.Tensor) -> torch.Tensor:
        """B applied once to sum_i alpha_i x_i (identity 2): (..., r) -> (..., d_out)."""
        B = self.idlora_B[adapter_name]
        mixed = mixed.to(B.weight.dtype)
        m = self.rb_parts[adapter_name]
        if m == 1:  # no Rank Boosting
            return B(mixed)  # (..., d_out)
        r = mixed.shape[-1]
        parts = mixed.reshape(*mixed.shape[:-1], m, r // m)  # (..., m, r/m) = [x^1 ; ... ; x^m]
        y = B(parts)  # (..., m, d_out/m) = [B x^1 ; ... ; B x^m]
        return y.reshape(*mixed.shape[:-1], -1)  # (..., d_out), the concatenation fc([B x^1, ..., B x^m])

    def _add_update(self, adapter_name: str, result: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
        """result + scaling * boosted_update(mixed), fused into one GEMM that accumulates into ``result`` when it
        is safe to (no autograd, same dtype): the update is never materialised on its own."""
        B = self.idlora_B[adapter_name]
        scaling = self.scaling[adapter_name]
        # in place only when nothing else reads `result`: no autograd graph, and no other active adapter that still
        # gathers its projections from the base output
        if (torch.is_grad_enabled() or len(self.active_adapters) > 1 or result.dtype != B.weight.dtype
                or not result.is_contiguous()):
            return torch.add(result, self.boosted_update(adapter_name, mixed).to(result.dtype), alpha=scaling)
        # with Rank Boosting factor m: (N*m, r/m), [x^1 ; ... ; x^m] of every token stacked, and the m parts of
        # every output row (N*m, d_out/m); m = 1: (N, r) and (N, d_out)
        rows, out = mixed.reshape(-1, B.in_features), result.view(-1, B.out_features)
        out.addmm_(rows, B.weight.T, alpha=scaling)  # out += scaling * rows @ B^T
        return result

    def forward(self, h: torch.Tensor, *args, adapter_names=None, **kwargs) -> torch.Tensor:
        if adapter_names is not None:  # one adapter per sample (PEFT's mixed-batch inference)
            return mixed_batch_forward(self, IDLoRALayer.forward, h, adapter_names, *args, **kwargs)
        base_out = self._modules["base_layer"](h, *args, **kwargs)  # (..., d_out) = W h
        if self._disable_adapters:  # the attribute behind PEFT's disable_adapters, read without the property
            return base_out
        if self.rows_pending:
            self.check_rows_loaded()
        active = self.active_adapters
        if len(active) == 1 and not self.training and not torch.is_grad_enabled():
            updated = self._inference_update(active[0], h, base_out)
            if updated is not None:
                return updated
        result = base_out
        for name in active:
            if name not in self.idlora_B:
                continue
            _, mixed = self.mix(name, h, base_out)  # (..., r) = sum_i alpha_i A_i h
            result = self._add_update(name, result, mixed)  # (..., d_out) = W h + scaling * [B x^1 ; B x^2]
        return result

    def mix(self, adapter_name: str, h: torch.Tensor, base_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha (..., k), B's input sum_i alpha_i x_i (..., r)) in the adapter's dtype (float32 under PEFT's
        autocast), from the layer input h (..., d_in) and W h (..., d_out)."""
        dtype = self.idlora_B[adapter_name].weight.dtype
        x = self.frozen_projections(adapter_name, h, base_out).to(dtype)  # (..., k, r)
        alpha = self.route(adapter_name, h, x).to(dtype)  # (..., k)
        k, r = x.shape[-2:]
        mixed = mix_bases(alpha.reshape(-1, 1, k), x.reshape(-1, k, r))  # (N, [1,] r)
        return alpha, mixed.reshape(*x.shape[:-2], r)

    def _inference_update(self, name: str, h: torch.Tensor, base_out: torch.Tensor) -> torch.Tensor | None:
        """The common inference case (one adapter, rows of W, linear router, plain ``nn.Linear`` base without a bias,
        float32, no autograd) with the general path's arithmetic op for op, minus its Python: batch-1 decoding on a
        CPU is bound by per-call overhead, and the general path's module-attribute lookups (``get_base_layer``
        alone is two failed ``hasattr``s) cost as much as its kernels. None: not this case."""
        modules = self._modules  # plain dict reads instead of nn.Module.__getattr__
        index = modules["idlora_index"]._buffers.get(name)  # (k, r)
        B = modules["idlora_B"]._modules.get(name)
        base = modules["base_layer"]
        if (index is None or B is None or self.router_kind[name] != "linear" or not isinstance(base, nn.Linear)
                or base._parameters.get("bias") is not None or not base_out.is_contiguous()):
            return None
        R, Bw = modules["idlora_router"]._modules[name]._parameters["weight"], B._parameters["weight"]
        if not (base_out.dtype == Bw.dtype == R.dtype == h.dtype == torch.float32):  # else route()'s casts matter
            return None
        if torch.compiler.is_compiling() and base_out.numel() == base_out.shape[-1]:  # one token: decoding
            return compiled_one_token_update(h, base_out, index, R, Bw, self.scaling[name])
        k, r = index.shape
        x = torch.index_select(base_out, -1, index.reshape(-1))  # (..., k*r) = [A_1 h; ...; A_k h], identity 1
        alpha = torch.softmax(F.linear(h, R), dim=-1)  # (..., k)
        mixed = mix_bases(alpha.view(-1, 1, k), x.view(-1, k, r))  # (N, [1,] r) = sum_i alpha_i x_i
        # identity 2, B once, accumulated into W h; with Rank Boosting each token's m parts are m rows
        base_out.view(-1, Bw.shape[0]).addmm_(mixed.view(-1, Bw.shape[1]), Bw.T, alpha=self.scaling[name])
        return base_out

    def merge(self, safe_merge: bool = False, adapter_names=None) -> None:
        raise ValueError("ID-LoRA cannot be merged into W: the router mixes the bases per token.")

    def unmerge(self) -> None:
        return None


class Linear(nn.Module, IDLoRALayer):
    """An ``nn.Linear`` with an ID-LoRA adapter."""

    def __init__(self, base_layer: nn.Module, adapter_name: str, config, frozen: torch.Tensor, module_name: str = ""):
        super().__init__()
        IDLoRALayer.__init__(self, base_layer)
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, config, frozen=frozen, module_name=module_name)

    forward = IDLoRALayer.forward  # nn.Module's placeholder comes first in the MRO; no wrapper frame per call

    def __repr__(self) -> str:
        return "idlora." + super().__repr__()
