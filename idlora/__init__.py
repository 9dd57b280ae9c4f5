"""ID-LoRA: low-rank adaptation from clustered rows of the pretrained weights, with its baselines.

Importing ``idlora`` registers ID-LoRA, HydraLoRA, MoELoRA and LoRI with PEFT, so ``peft.get_peft_model``,
``save_pretrained`` and ``PeftModel.from_pretrained`` work with their configs as with ``LoraConfig``.
"""

from .tuners import HydraLoRAConfig, IDLoRAConfig, LoRIConfig, MoELoRAConfig

__version__ = "0.1.0"
__all__ = ["IDLoRAConfig", "HydraLoRAConfig", "MoELoRAConfig", "LoRIConfig", "__version__"]
