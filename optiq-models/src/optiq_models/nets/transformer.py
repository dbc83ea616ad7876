"""``transformer``: a causal decoder over a window of frames; the next frame at every position.

GPT-style pre-norm blocks whose two layer norms are modulated by the labels (FiLM, as adaLN in DiT), so labels act
in every layer. Positions are learned (default) or sinusoidal; they count from the first frame of the window, so a
sliding rollout window sees the same positions as training windows. The head predicts a residual on the frame
at each position and starts at zero. Default size (d_model 128, 4 layers, F = 250): about 1.0 M parameters.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from .base import BaseConfig, Cond, ConfigError, MotionModel, check_positive
from .conditioning import FiLM, LabelEmbedding, LabelVocab


@dataclasses.dataclass
class TransformerConfig(BaseConfig):
    context: int = 64
    """frames in the attention window"""
    d_model: int = 128
    """width of the residual stream (= encoder.features_dim)"""
    layers: int = 4
    """decoder blocks"""
    heads: int = 4
    """attention heads (d_model must be a multiple)"""
    mlp_ratio: int = 4
    """width of the feed-forward layer, in multiples of d_model"""
    dropout: float = 0.0
    """dropout on attention and feed-forward outputs"""
    positions: Literal["learned", "sinusoidal"] = "learned"
    """position encoding of the frames of the window"""


class CausalSelfAttention(nn.Module):
    """Multi-head attention where position t sees positions <= t: ``[B, T, D] -> [B, T, D]``."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        q, k, v = self.qkv(h).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, heads, T, d/heads]
        return self.drop(self.proj(y.transpose(1, 2).reshape(b, t, d)))


class Block(nn.Module):
    """``h + attn(FiLM(LN(h), c))``, then ``h + mlp(FiLM(LN(h), c))``; h ``[B, T, D]``, c ``[B, T, cond_dim]``."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.norm1 = nn.LayerNorm(d)
        self.film1 = FiLM(cfg.cond_dim, d)
        self.attn = CausalSelfAttention(d, cfg.heads, cfg.dropout)
        self.norm2 = nn.LayerNorm(d)
        self.film2 = FiLM(cfg.cond_dim, d)
        self.mlp = nn.Sequential(nn.Linear(d, cfg.mlp_ratio * d), nn.GELU(), nn.Linear(cfg.mlp_ratio * d, d),
                                 nn.Dropout(cfg.dropout))

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.film1(self.norm1(h), c))
        return h + self.mlp(self.film2(self.norm2(h), c))


def sinusoidal(length: int, d: int) -> torch.Tensor:
    """The fixed sine/cosine position table of "Attention is all you need": ``[length, d]``."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(length, d)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: d // 2])
    return table


class TransformerEncoder(nn.Module):
    """Window of frames + labels -> ``[B, features_dim]`` at the last frame (``features_dim = d_model``);
    ``sequence`` gives every position ``[B, T, d_model]``."""

    def __init__(self, feature_dim: int, vocab: LabelVocab, cfg: TransformerConfig) -> None:
        super().__init__()
        self.context = cfg.context
        self.features_dim = cfg.d_model
        self.labels = LabelEmbedding(vocab, cfg.cond_dim, cfg.label_dropout)
        self.inp = nn.Linear(feature_dim, cfg.d_model)
        if cfg.positions == "learned":
            self.pos = nn.Parameter(torch.randn(cfg.context, cfg.d_model) * 0.02)
        else:
            # Not saved: rebuilt from the config, so it cannot drift from the formula.
            self.register_buffer("pos", sinusoidal(cfg.context, cfg.d_model), persistent=False)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.d_model)

    def sequence(self, x: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        b, t, _ = x.shape
        if t > self.context:
            raise ConfigError(f"transformer: a window of {t} frames is longer than its context ({self.context}); "
                              "predict_next and rollout read the last context frames")
        c = self.labels(cond, b, t, x.device)
        h = self.inp(x) + self.pos[:t]
        for block in self.blocks:
            h = block(h, c)
        return self.norm(h)

    def forward(self, x: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        t = x.shape[1]
        if cond is not None and t > self.context:
            cond = {n: (v if v.dim() == 1 else v[:, t - self.context:t]) for n, v in cond.items()}
        return self.sequence(x[:, -self.context:], cond)[:, -1]


class Transformer(MotionModel):
    """Causal decoder: ``forward(x [B, T, F], cond) -> [B, T, F]``, T <= context."""

    Config = TransformerConfig

    def __init__(self, feature_dim: int, vocab: LabelVocab | None = None, **config) -> None:
        super().__init__(feature_dim, vocab, **config)
        cfg = self.config
        check_positive(cfg, "context", "d_model", "layers", "heads", "mlp_ratio", "cond_dim")
        if cfg.d_model % cfg.heads or cfg.d_model % 2:
            raise ConfigError(f"model config: d_model ({cfg.d_model}) must be even and a multiple of heads "
                              f"({cfg.heads})")
        self.context = cfg.context
        self.encoder = TransformerEncoder(feature_dim, self.vocab, cfg)
        self.head = nn.Linear(cfg.d_model, feature_dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        return x + self.head(self.encoder.sequence(x, cond))
