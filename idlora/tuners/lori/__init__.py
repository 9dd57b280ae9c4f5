from .._registry import ExtraPeftType, register
from .config import LoRIConfig
from .layer import Linear, LoRILayer
from .model import LoRIModel, kept_entries, magnitude_masks

register(ExtraPeftType.LORI, LoRIConfig, LoRIModel, prefix="lori_")

__all__ = ["LoRIConfig", "LoRILayer", "LoRIModel", "Linear", "kept_entries", "magnitude_masks"]
