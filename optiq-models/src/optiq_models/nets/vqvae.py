"""``vqvae``: a motion tokenizer. Windows of feature rows -> one code per ``downsample`` frames -> the rows back.

The architecture of T2M-GPT's tokenizer (Zhang et al. 2023), on optiq's features: the encoder is a 1D convolution
over time, then per level a strided convolution (kernel 4, stride 2: half the frames) and a stack of residual
blocks of dilated convolutions (dilations 1, 3, 9, ...: ``dilation_growth`` to the power of the block), then a
convolution to ``code_dim``. The decoder mirrors it: residual blocks (dilations reversed), nearest-neighbour
upsampling and a convolution per level, and a convolution back to the F features. Between them a (residual)
quantizer (:mod:`.quantizers`). Unconditioned: labels are not read (the vocabulary is kept for the checkpoint).
Default size (width 128, depth 3, down_t 2, code_dim 64, F = 250): about 1.3 M parameters.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from optiq.errors import OptiqError
from torch import nn

from .base import Cond, ConfigError, MotionModel, check_positive
from .conditioning import LabelVocab
from .quantizers import ResidualQuantizer, batch_stats


@dataclasses.dataclass
class VQVAEConfig:
    width: int = 128
    """channels of the convolutions"""
    depth: int = 3
    """residual blocks per level (dilations 1, g, g^2, ...)"""
    dilation_growth: int = 3
    """g: factor between the dilations of successive residual blocks"""
    down_t: int = 2
    """levels of downsampling by 2: one code per 2 ** down_t frames (2: x4, 64 frames -> 16 codes)"""
    code_dim: int = 64
    """D: numbers per code (= encoder.features_dim)"""
    codebook_size: int = 512
    """K: codes per codebook"""
    quantizer: Literal["ema_reset", "ema", "reset", "orig"] = "ema_reset"
    """how the codebook learns (optiq_models.nets.quantizers)"""
    num_quantizers: int = 1
    """Q: codebooks of the residual quantizer (1: a plain VQ)"""
    quantize_dropout: float = 0.0
    """probability, per training batch, of quantizing with only the first q codebooks (q uniform in 1..Q)"""
    ema_decay: float = 0.99
    """decay of the moving averages of code counts and sums"""
    reset_threshold: float = 0.1
    """a code whose moving-average count falls below this fraction of the average code's is dead and re-seeded
    (ema_reset, reset)"""
    commit: float = 0.02
    """weight of the commitment loss (the distance of latents to their codes) in the training loss"""
    context: int = 64
    """frames of the window the model is meant for (informational: any multiple of the downsampling works)"""


class ResBlock(nn.Module):
    """``h + conv1x1(relu(conv3_dilated(relu(h))))``: ``[B, C, L] -> [B, C, L]``."""

    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.proj = nn.Conv1d(width, width, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.proj(torch.relu(self.conv(torch.relu(h))))


def _res_stack(cfg: VQVAEConfig, reverse: bool) -> nn.Sequential:
    dilations = [cfg.dilation_growth ** i for i in range(cfg.depth)]
    return nn.Sequential(*(ResBlock(cfg.width, d) for d in (dilations[::-1] if reverse else dilations)))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x [B, T, F]`` with its last frame repeated up to the next multiple of ``multiple`` frames."""
    extra = -x.shape[1] % multiple
    return torch.cat([x, x[:, -1:].expand(-1, extra, -1)], dim=1) if extra else x


class VQVAEEncoder(nn.Module):
    """Frames -> latents. ``latents(x [B, T, F])`` -> ``[B, T / downsample, code_dim]`` (T a multiple of the
    downsampling); ``forward(x [B, T, F], cond=None)`` -> ``[B, features_dim]``: the latents averaged over time,
    any T (padded at the end by repeating the last frame). Labels are not read."""

    def __init__(self, feature_dim: int, cfg: VQVAEConfig) -> None:
        super().__init__()
        self.features_dim = cfg.code_dim
        self.downsample = 2 ** cfg.down_t
        layers: list[nn.Module] = [nn.Conv1d(feature_dim, cfg.width, 3, padding=1), nn.ReLU()]
        for _ in range(cfg.down_t):
            layers += [nn.Conv1d(cfg.width, cfg.width, 4, stride=2, padding=1), _res_stack(cfg, reverse=False)]
        layers.append(nn.Conv1d(cfg.width, cfg.code_dim, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.transpose(1, 2)).transpose(1, 2)

    def forward(self, x: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        return self.latents(pad_to_multiple(x, self.downsample)).mean(dim=1)


class VQVAEDecoder(nn.Module):
    """Codes ``[B, N, code_dim]`` -> frames ``[B, N * downsample, F]``."""

    def __init__(self, feature_dim: int, cfg: VQVAEConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(cfg.code_dim, cfg.width, 3, padding=1), nn.ReLU()]
        for _ in range(cfg.down_t):
            layers += [_res_stack(cfg, reverse=True), nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv1d(cfg.width, cfg.width, 3, padding=1)]
        layers += [nn.Conv1d(cfg.width, cfg.width, 3, padding=1), nn.ReLU(),
                   nn.Conv1d(cfg.width, feature_dim, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.net(codes.transpose(1, 2)).transpose(1, 2)


class VQVAE(MotionModel):
    """Motion tokenizer: ``forward(x [B, T, F]) -> [B, T, F]`` reconstruction (normalised features, T a multiple
    of ``downsample``); ``encode`` -> ids ``[B, T / downsample, Q]``; ``decode(ids)`` -> ``[B, N * downsample, F]``.

    After every ``forward``, ``last_aux`` holds ``commit`` (the commitment, a tensor), ``loss`` (the model's own
    loss term: ``commit`` weight x commitment + the codebook loss of gradient-learnt codebooks, a tensor),
    ``perplexity`` and ``usage`` (of the batch's codes, floats) and ``depth`` (codebooks used).
    """

    kind = "tokenizer"
    Config = VQVAEConfig

    def __init__(self, feature_dim: int, vocab: LabelVocab | None = None, **config) -> None:
        super().__init__(feature_dim, vocab, **config)
        cfg = self.config
        check_positive(cfg, "width", "depth", "dilation_growth", "code_dim", "codebook_size", "num_quantizers",
                       "context")
        if cfg.down_t < 0:
            raise ConfigError(f"model config: key 'down_t' must be >= 0, got {cfg.down_t}")
        if not 0.0 <= cfg.quantize_dropout <= 1.0 or not 0.0 < cfg.ema_decay < 1.0:
            raise ConfigError("model config: quantize_dropout must be in [0, 1] and ema_decay in (0, 1), got "
                              f"{cfg.quantize_dropout} and {cfg.ema_decay}")
        self.downsample = 2 ** cfg.down_t
        self.codebook_size = cfg.codebook_size
        self.num_quantizers = cfg.num_quantizers
        self.context = cfg.context
        self.encoder = VQVAEEncoder(feature_dim, cfg)
        self.quantizer = ResidualQuantizer(cfg.num_quantizers, cfg.codebook_size, cfg.code_dim, cfg.quantizer,
                                           cfg.ema_decay, cfg.reset_threshold, cfg.quantize_dropout)
        self.decoder = VQVAEDecoder(feature_dim, cfg)
        self.last_aux: dict = {}

    def _latents(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] % self.downsample or x.shape[1] == 0:
            raise ConfigError(f"a VQ-VAE reads [B, T, F] windows with T a multiple of its downsampling "
                              f"{self.downsample}, got shape {tuple(x.shape)}")
        return self.encoder.latents(x)

    def forward(self, x: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        z = self._latents(x)
        b, n, d = z.shape
        out = self.quantizer(z.reshape(b * n, d))
        perplexity, usage = batch_stats(out.counts)
        self.last_aux = {"commit": out.commit, "loss": self.config.commit * out.commit + out.codebook,
                         "perplexity": perplexity, "usage": usage, "depth": self.quantizer.last_depth}
        return self.decoder(out.z_q.reshape(b, n, d))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, T, F]`` normalised, T a multiple of ``downsample`` -> ids ``[B, T / downsample, Q]`` int64 in
        ``[0, codebook_size)``."""
        z = self._latents(x)
        b, n, d = z.shape
        return self.quantizer.encode(z.reshape(b * n, d)).reshape(b, n, self.num_quantizers)

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """ids ``[B, N, Q']`` (the first Q' <= Q codebooks) -> ``[B, N * downsample, F]`` normalised features."""
        if ids.dim() != 3 or not 1 <= ids.shape[2] <= self.num_quantizers:
            raise ConfigError(f"decode takes ids [B, N, Q'] with 1 <= Q' <= {self.num_quantizers}, got shape "
                              f"{tuple(ids.shape)}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.codebook_size):
            raise ConfigError(f"token ids must lie in [0, {self.codebook_size}), got {int(ids.min())}.."
                              f"{int(ids.max())}")
        return self.decoder(self.quantizer.decode(ids.long()))

    def code_counts(self) -> torch.Tensor:
        """``[num_quantizers, codebook_size]``: the moving average of latents per code and training batch."""
        return self.quantizer.code_counts()

    def predict_chunk(self, x: torch.Tensor, cond: Cond = None, guidance: float = 0.0) -> torch.Tensor:
        raise OptiqError("a VQ-VAE is a tokenizer: it reconstructs and encodes windows, it does not predict "
                         "the next frame (use encode/decode)")

    def rollout(self, context: torch.Tensor, steps: int, cond: Cond = None, guidance: float = 0.0) -> torch.Tensor:
        return self.predict_chunk(context)
