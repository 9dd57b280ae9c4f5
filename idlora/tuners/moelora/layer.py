"""MoELoRA layer: ``u = W h + (alpha/r) sum_j g_j B_j A_j drop(h)``, ``g = softmax(G h)`` (see ``_routed``)."""

from .._base import make_linear_class
from .._routed import RoutedLoRALayer


class MoELoRALayer(RoutedLoRALayer):
    prefix = "moelora_"
    shared_A = False  # A: (n*r, d_in), the n experts' A_j stacked
    adapter_layer_names = ("moelora_A", "moelora_B", "moelora_router")
    other_param_names = ("moelora_dropout", "r", "n_experts", "scaling", "impl")


Linear = make_linear_class(MoELoRALayer)
