from .._base import LinearAdapterTuner
from .layer import MoELoRALayer, Linear


class MoELoRAModel(LinearAdapterTuner):
    """Creates a MoELoRA model from a pretrained transformers model (use ``peft.get_peft_model``)."""

    prefix = "moelora_"
    tuner_layer_cls = MoELoRALayer
    layer_cls = Linear
    method_name = "MoELoRA"
