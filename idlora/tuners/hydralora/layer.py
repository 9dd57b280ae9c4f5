"""HydraLoRA layer: ``u = W h + (alpha/r) sum_j g_j B_j A drop(h)``, ``g = softmax(G h)`` (see ``_routed``)."""

from .._base import make_linear_class
from .._routed import RoutedLoRALayer


class HydraLoRALayer(RoutedLoRALayer):
    prefix = "hydralora_"
    shared_A = True  # A: (r, d_in), shared by the heads
    adapter_layer_names = ("hydralora_A", "hydralora_B", "hydralora_router")
    other_param_names = ("hydralora_dropout", "r", "n_experts", "scaling", "impl")


Linear = make_linear_class(HydraLoRALayer)
