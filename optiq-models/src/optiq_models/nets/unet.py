"""``unet``: a 1D temporal U-Net that predicts the next chunk of frames from a past window.

The input is the past window (``window`` frames) followed by ``chunk`` placeholder frames (copies of the last
frame, the zero-velocity guess) and a mask channel that marks them; the U-Net fills the placeholders in, as a
residual on the last frame. Convolutions see the whole window at once, so a chunk is predicted jointly and the
rollout advances chunk by chunk. Labels modulate every residual block (FiLM).

``forward`` keeps the next-state contract: for ``x [B, T, F]`` it predicts chunks from windows ending at frames
0, chunk, 2 chunk, ... and lays them out so that position t holds the prediction of frame t+1 (made from a
window that ends at most chunk-1 frames before t: the U-Net is trained on what it does at rollout).
Default size (window 24, chunk 8, channels 32/64/128, F = 250): about 0.51 M parameters.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .base import BaseConfig, Cond, ConfigError, MotionModel, check_positive
from .conditioning import FiLM, LabelEmbedding, LabelVocab


@dataclasses.dataclass
class UNetConfig(BaseConfig):
    window: int = 24
    """past frames read (the model's context)"""
    chunk: int = 8
    """frames predicted at once; window + chunk must be a multiple of 2 ** (len(channels) - 1)"""
    channels: tuple[int, ...] = (32, 64, 128)
    """channels per resolution, finest first; each level halves the time axis"""
    kernel: int = 5
    """temporal kernel size of the convolutions (odd)"""


def _groups(channels: int) -> int:
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class ResBlock(nn.Module):
    """Two convolutions with GroupNorm, FiLM and SiLU, plus a skip: ``[B, Cin, L] -> [B, Cout, L]``;
    c ``[B, 1, cond_dim]`` (one label vector per window)."""

    def __init__(self, cin: int, cout: int, cond_dim: int, kernel: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv1d(cin, cout, kernel, padding=kernel // 2)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.film = FiLM(cond_dim, cout)
        self.conv2 = nn.Conv1d(cout, cout, kernel, padding=kernel // 2)
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        y = self.conv1(nn.functional.silu(self.norm1(h)))
        y = self.conv2(nn.functional.silu(self.film(self.norm2(y), c, channels_first=True)))
        return self.skip(h) + y


class UNetEncoder(nn.Module):
    """The down path: window + labels -> bottleneck ``[B, channels[-1], L / 2 ** levels]`` and the skips;
    ``forward(x [B, T, F], cond)`` -> the bottleneck averaged over time, ``[B, features_dim]``."""

    def __init__(self, feature_dim: int, vocab: LabelVocab, cfg: UNetConfig) -> None:
        super().__init__()
        self.window, self.chunk = cfg.window, cfg.chunk
        self.features_dim = cfg.channels[-1]
        self.labels = LabelEmbedding(vocab, cfg.cond_dim, cfg.label_dropout)
        ch = cfg.channels
        self.stem = nn.Conv1d(feature_dim + 1, ch[0], cfg.kernel, padding=cfg.kernel // 2)
        self.down = nn.ModuleList(ResBlock(ch[i], ch[i], cfg.cond_dim, cfg.kernel) for i in range(len(ch) - 1))
        self.pool = nn.ModuleList(nn.Conv1d(ch[i], ch[i + 1], 4, stride=2, padding=1) for i in range(len(ch) - 1))
        self.mid = ResBlock(ch[-1], ch[-1], cfg.cond_dim, cfg.kernel)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, T, F]`` -> the U-Net input ``[B, F + 1, window + chunk]``: the last ``window`` frames (frame 0
        repeated before the start), ``chunk`` copies of the last frame, and the mask channel (1 = to predict)."""
        b, t, f = x.shape
        x = x[:, -self.window:]
        pad = self.window - x.shape[1]
        past = torch.cat([x[:, :1].expand(b, pad, f), x], dim=1) if pad > 0 else x
        future = x[:, -1:].expand(b, self.chunk, f)
        mask = torch.cat([x.new_zeros(b, self.window, 1), x.new_ones(b, self.chunk, 1)], dim=1)
        return torch.cat([torch.cat([past, future], dim=1), mask], dim=2).transpose(1, 2)

    def condition(self, cond: Cond, batch: int, device: torch.device) -> torch.Tensor:
        """``[B, 1, cond_dim]``: the labels of the window's last frame (``cond`` values are ``[B]``)."""
        return self.labels(cond, batch, 1, device)

    def down_path(self, inp: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.stem(inp)
        skips = []
        for block, pool in zip(self.down, self.pool, strict=True):
            h = block(h, c)
            skips.append(h)
            h = pool(h)
        return self.mid(h, c), skips

    def forward(self, x: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        t = x.shape[1]
        cond = None if cond is None else {n: (v if v.dim() == 1 else v[:, t - 1]) for n, v in cond.items()}
        h, _ = self.down_path(self.inputs(x), self.condition(cond, x.shape[0], x.device))
        return h.mean(dim=2)


class UNet(MotionModel):
    """Chunk predictor: ``forward(x [B, T, F], cond) -> [B, T, F]`` aligned next-frame predictions;
    ``predict_chunk`` gives ``[B, chunk, F]``."""

    Config = UNetConfig

    def __init__(self, feature_dim: int, vocab: LabelVocab | None = None, **config) -> None:
        super().__init__(feature_dim, vocab, **config)
        cfg = self.config
        check_positive(cfg, "window", "chunk", "channels", "kernel", "cond_dim")
        step = 2 ** (len(cfg.channels) - 1)
        if (cfg.window + cfg.chunk) % step:
            raise ConfigError(f"model config: window + chunk ({cfg.window} + {cfg.chunk}) must be a multiple of "
                              f"{step} (2 ** (len(channels) - 1))")
        if cfg.kernel % 2 == 0:
            raise ConfigError(f"model config: key 'kernel' must be odd, got {cfg.kernel}")
        self.context = cfg.window
        self.chunk = cfg.chunk
        self.encoder = UNetEncoder(feature_dim, self.vocab, cfg)
        ch = cfg.channels
        self.up = nn.ModuleList(nn.ConvTranspose1d(ch[i + 1], ch[i], 4, stride=2, padding=1)
                                for i in reversed(range(len(ch) - 1)))
        self.up_blocks = nn.ModuleList(ResBlock(2 * ch[i], ch[i], cfg.cond_dim, cfg.kernel)
                                       for i in reversed(range(len(ch) - 1)))
        self.out = nn.Conv1d(ch[0], feature_dim, cfg.kernel, padding=cfg.kernel // 2)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def windows_to_chunks(self, windows: torch.Tensor, cond: Cond) -> torch.Tensor:
        """Past windows ``[N, T <= window, F]`` with labels ``[N]`` -> the next ``chunk`` frames ``[N, chunk, F]``."""
        enc = self.encoder
        c = enc.condition(cond, windows.shape[0], windows.device)
        h, skips = enc.down_path(enc.inputs(windows), c)
        for up, block, skip in zip(self.up, self.up_blocks, reversed(skips), strict=True):
            h = block(torch.cat([up(h), skip], dim=1), c)
        delta = self.out(h)[:, :, -self.chunk:].transpose(1, 2)  # [N, chunk, F]
        return windows[:, -1:] + delta

    def forward(self, x: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        b, t, f = x.shape
        w, k = self.context, self.chunk
        xp = torch.cat([x[:, :1].expand(b, w - 1, f), x], dim=1)  # frame a sits at a + w - 1
        windows = xp.unfold(1, w, k).permute(0, 1, 3, 2)  # [B, n, w, F]: windows ending at 0, k, 2k, ...
        n = windows.shape[1]
        anchors = torch.arange(n, device=x.device) * k
        wcond = None if cond is None else {
            name: (v.repeat_interleave(n) if v.dim() == 1 else v[:, anchors].reshape(-1)) for name, v in cond.items()}
        chunks = self.windows_to_chunks(windows.reshape(b * n, w, f), wcond)
        return chunks.reshape(b, n * k, f)[:, :t]

    def _chunk(self, x: torch.Tensor, cond: Cond) -> torch.Tensor:
        last = None if cond is None else {n: (v if v.dim() == 1 else v[:, -1]) for n, v in cond.items()}
        return self.windows_to_chunks(x, last)
