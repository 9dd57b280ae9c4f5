from .._base import LinearAdapterTuner
from .layer import HydraLoRALayer, Linear


class HydraLoRAModel(LinearAdapterTuner):
    """Creates a HydraLoRA model from a pretrained transformers model (use ``peft.get_peft_model``)."""

    prefix = "hydralora_"
    tuner_layer_cls = HydraLoRALayer
    layer_cls = Linear
    method_name = "HydraLoRA"
