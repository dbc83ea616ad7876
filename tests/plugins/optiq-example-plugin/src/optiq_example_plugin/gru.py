"""``gru``: a third-party next-state model, to show the interface a model plugin implements.

A model is a ``torch.nn.Module`` built as ``cls(feature_dim, vocab, **config)`` that declares ``kind``, its
``context`` (frames it reads) and an ``encoder`` (``features_dim``; ``encoder(x [B, T, F]) -> [B, features_dim]``),
and predicts the next frame at every position: ``forward(x [B, T, F], cond) -> [B, T, F]``. Subclassing
``optiq_models.nets.base.MotionModel`` gives ``predict_next``, ``rollout`` (with classifier-free guidance) and
checked configs for free; ``optiq train model --arch gru`` then trains, checkpoints, evaluates and generates with it.
"""

from __future__ import annotations

import dataclasses

import torch
from optiq_models.nets.base import BaseConfig, Cond, MotionModel
from optiq_models.nets.conditioning import LabelEmbedding, LabelVocab
from torch import nn


@dataclasses.dataclass
class GRUConfig(BaseConfig):
    context: int = 32
    """frames read per prediction (the window a rollout keeps)"""
    hidden: int = 128
    """GRU state width (= encoder.features_dim)"""
    layers: int = 1
    """stacked GRU layers"""


class GRUEncoder(nn.Module):
    """Frames and labels -> the GRU state at every position ``[B, T, hidden]`` (``sequence``) or at the last one
    ``[B, hidden]`` (``forward``). Labels are concatenated to every input frame."""

    def __init__(self, feature_dim: int, vocab: LabelVocab, cfg: GRUConfig) -> None:
        super().__init__()
        self.features_dim = cfg.hidden
        self.labels = LabelEmbedding(vocab, cfg.cond_dim, cfg.label_dropout)
        self.gru = nn.GRU(feature_dim + cfg.cond_dim, cfg.hidden, cfg.layers, batch_first=True)

    def sequence(self, x: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        c = self.labels(cond, x.shape[0], x.shape[1], x.device)
        return self.gru(torch.cat([x, c], dim=2))[0]

    def forward(self, x: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        return self.sequence(x, cond)[:, -1]


class GRUModel(MotionModel):
    """Next frame as a residual on the current one: ``forward(x [B, T, F], cond) -> [B, T, F]``."""

    Config = GRUConfig

    def __init__(self, feature_dim: int, vocab: LabelVocab | None = None, **config) -> None:
        super().__init__(feature_dim, vocab, **config)
        self.context = self.config.context
        self.encoder = GRUEncoder(feature_dim, self.vocab, self.config)
        self.head = nn.Linear(self.config.hidden, feature_dim)
        nn.init.zeros_(self.head.weight)  # starts as the zero-velocity baseline
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        return x + self.head(self.encoder.sequence(x, cond))
