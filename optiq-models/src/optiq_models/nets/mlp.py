"""``mlp``: the last k frames -> the next frame, as a residual on the last frame.

Small and fast: the baseline every sequence model has to beat. Each position t reads frames t-k+1..t (the first
frame repeated before the start, so any T >= 1 works) and predicts ``x[t] + delta``; the head starts at zero, so
an untrained model is the zero-velocity baseline and training learns the motion as a correction.
Default size (hidden 256, 3 blocks, F = 250): about 0.85 M parameters.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .base import BaseConfig, Cond, MotionModel, check_positive
from .conditioning import FiLM, LabelEmbedding, LabelVocab


@dataclasses.dataclass
class MLPConfig(BaseConfig):
    context: int = 4
    """k: frames read to predict the next one"""
    hidden: int = 256
    """width of the hidden layers (= encoder.features_dim)"""
    layers: int = 3
    """residual FiLM blocks after the input layer"""
    dropout: float = 0.0
    """dropout inside the blocks"""


def frame_windows(x: torch.Tensor, k: int) -> torch.Tensor:
    """``x [B, T, F]`` -> ``[B, T, k * F]``: at each position the last k frames, oldest first (frame 0 repeated
    before the start)."""
    pad = x[:, :1].expand(-1, k - 1, -1)
    xp = torch.cat([pad, x], dim=1)  # [B, T + k - 1, F]
    windows = xp.unfold(1, k, 1)  # [B, T, F, k]
    return windows.transpose(2, 3).reshape(x.shape[0], x.shape[1], k * x.shape[2])


class Block(nn.Module):
    """Pre-norm residual block ``h + W2 silu(FiLM(W1 LN(h), c))``: h ``[B, T, H]``, c ``[B, T, cond_dim]``."""

    def __init__(self, hidden: int, cond_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.film = FiLM(cond_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return h + self.drop(self.fc2(nn.functional.silu(self.film(self.fc1(self.norm(h)), c))))


class MLPEncoder(nn.Module):
    """Last k frames + labels -> ``[B, features_dim]`` (``features_dim = hidden``); ``sequence`` gives every
    position ``[B, T, hidden]``."""

    def __init__(self, feature_dim: int, vocab: LabelVocab, cfg: MLPConfig) -> None:
        super().__init__()
        self.k = cfg.context
        self.features_dim = cfg.hidden
        self.labels = LabelEmbedding(vocab, cfg.cond_dim, cfg.label_dropout)
        self.inp = nn.Linear(cfg.context * feature_dim, cfg.hidden)
        self.inp_film = FiLM(cfg.cond_dim, cfg.hidden)
        self.blocks = nn.ModuleList(Block(cfg.hidden, cfg.cond_dim, cfg.dropout) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.hidden)

    def sequence(self, x: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        c = self.labels(cond, x.shape[0], x.shape[1], x.device)
        h = nn.functional.silu(self.inp_film(self.inp(frame_windows(x, self.k)), c))
        for block in self.blocks:
            h = block(h, c)
        return self.norm(h)

    def forward(self, x: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        return self.sequence(x[:, -self.k:], _last_frames(cond, x.shape[1], self.k))[:, -1]


def _last_frames(cond: Cond, frames: int, k: int) -> Cond:
    if cond is None:
        return None
    return {n: (v if v.dim() == 1 else v[:, max(frames - k, 0):frames]) for n, v in cond.items()}


class MLP(MotionModel):
    """Next frame from the last ``context`` frames: ``forward(x [B, T, F], cond) -> [B, T, F]``."""

    Config = MLPConfig

    def __init__(self, feature_dim: int, vocab: LabelVocab | None = None, **config) -> None:
        super().__init__(feature_dim, vocab, **config)
        cfg = self.config
        check_positive(cfg, "context", "hidden", "cond_dim")
        self.context = cfg.context
        self.encoder = MLPEncoder(feature_dim, self.vocab, cfg)
        self.head = nn.Linear(cfg.hidden, feature_dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        return x + self.head(self.encoder.sequence(x, cond))
