"""The networks: nn.Modules and nothing else (``base``: the interface and config handling; ``conditioning``:
labels; one architecture per file). Imports torch."""

from .base import ConfigError, MotionModel, build_model
from .conditioning import UNKNOWN, FiLM, LabelEmbedding, LabelError, LabelVocab
from .mlp import MLP
from .transformer import Transformer
from .unet import UNet
from .vqvae import VQVAE

__all__ = ["MLP", "UNKNOWN", "ConfigError", "FiLM", "LabelEmbedding", "LabelError", "LabelVocab", "MotionModel",
           "Transformer", "UNet", "VQVAE", "build_model"]
