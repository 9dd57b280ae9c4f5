"""Adapter methods implemented here and registered with PEFT on import (ID-LoRA, HydraLoRA, MoELoRA, LoRI)."""

from .hydralora import HydraLoRAConfig, HydraLoRAModel
from .idlora import IDLoRAConfig, IDLoRAModel
from .lori import LoRIConfig, LoRIModel
from .moelora import MoELoRAConfig, MoELoRAModel

__all__ = ["IDLoRAConfig", "IDLoRAModel", "HydraLoRAConfig", "HydraLoRAModel", "MoELoRAConfig", "MoELoRAModel",
           "LoRIConfig", "LoRIModel"]
