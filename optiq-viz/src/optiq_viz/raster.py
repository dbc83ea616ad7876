"""A vectorised numpy rasteriser: anti-aliased thick line segments and dots into a batch of frames.

Every segment of every frame in a batch is drawn in one pass: segments are clipped to the panel, sampled every
pixel along their length, and each sample is splatted as a disc whose edge coverage falls off over one pixel
(fancy indexing into a flat buffer of the whole batch).
Coverage from overlapping discs is combined with ``np.maximum.at`` (the strongest wins, so a line does not get
darker where its samples overlap). No Python loop runs over frames, segments or samples.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def clip_segments(p0: np.ndarray, p1: np.ndarray, width: int, height: int,
                  margin: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Liang-Barsky clipping of 2-D segments to ``[-margin, width + margin] x [-margin, height + margin]``.

    p0, p1: ``[S, 2]`` pixel coordinates (x right, y down). Returns the clipped ``p0, p1`` of the segments that
    touch the rectangle and ``keep [S]`` (bool) saying which those are.
    """
    d = p1 - p0
    lo = np.array([-margin, -margin])
    hi = np.array([width + margin, height + margin])
    # Per axis, the parameters where the line crosses the low and high sides.
    with np.errstate(divide="ignore", invalid="ignore"):
        ta = (lo - p0) / d
        tb = (hi - p0) / d
    enter = np.where(d != 0, np.minimum(ta, tb), -np.inf)
    leave = np.where(d != 0, np.maximum(ta, tb), np.inf)
    t0 = np.maximum(enter.max(axis=1), 0.0)
    t1 = np.minimum(leave.min(axis=1), 1.0)
    # An axis-parallel segment lies outside when its fixed coordinate is outside the range.
    outside = ((d == 0) & ((p0 < lo) | (p0 > hi))).any(axis=1)
    keep = (t0 <= t1) & ~outside
    return p0[keep] + t0[keep, None] * d[keep], p0[keep] + t1[keep, None] * d[keep], keep


def sample_segments(p0: np.ndarray, p1: np.ndarray, frame: np.ndarray,
                    spacing: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``spacing`` pixels along each segment, both ends included (a zero-length segment gives one).

    p0, p1: ``[S, 2]`` pixels; frame: ``[S]`` int, the batch frame of each segment. Returns points ``[N, 2]`` and
    their frames ``[N]``.
    """
    length = np.linalg.norm(p1 - p0, axis=1)
    counts = np.ceil(length / spacing).astype(np.int64) + 1
    seg = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    t = (np.arange(counts.sum()) - first[seg]) / np.maximum(counts - 1, 1)[seg]
    return p0[seg] + t[:, None] * (p1 - p0)[seg], frame[seg]


@lru_cache(maxsize=32)
def _stencil(radius: float) -> tuple[np.ndarray, int]:
    """Integer pixel offsets ``[K, 2]`` (dx, dy) from a point's floor pixel that its disc can touch, and the
    largest offset along an axis."""
    # The point lies within sqrt(2)/2 of its floor pixel's centre, so a pixel at offset o can be covered only
    # when |o| < radius + 0.5 + sqrt(2)/2.
    reach = int(np.ceil(radius + 1.25))
    dy, dx = np.mgrid[-reach:reach + 1, -reach:reach + 1]
    offsets = np.stack((dx.ravel(), dy.ravel()), axis=1)
    return offsets[np.linalg.norm(offsets, axis=1) < radius + 1.25], reach


class Canvas:
    """Coverage (alpha, float32 in [0, 1]) of a batch of ``B`` frames of ``H x W`` pixels, to draw into.

    The buffer has a border wide enough for the largest disc, so splatting needs no per-pixel bounds check;
    ``coverage`` is the visible part. Pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)`` (x right, y down).
    """

    def __init__(self, frames: int, height: int, width: int, max_radius: float) -> None:
        self.max_radius = float(max_radius)
        self.pad = _stencil(self.max_radius)[1] + int(np.ceil(self.max_radius)) + 3
        self.buffer = np.zeros((frames, height + 2 * self.pad, width + 2 * self.pad), dtype=np.float32)
        self.shape = (frames, height, width)

    @property
    def coverage(self) -> np.ndarray:
        """The visible coverage ``[B, H, W]`` (a view)."""
        p = self.pad
        return self.buffer[:, p:-p, p:-p]

    def dots(self, points: np.ndarray, frame: np.ndarray, radius: float, weight: np.ndarray | None = None) -> None:
        """Discs of ``radius`` pixels at ``points [N, 2]`` in batch frames ``frame [N]``; per pixel the
        maximum coverage ``clip(radius + 0.5 - distance from its centre, 0, 1)`` is kept, times ``weight [N]``
        in [0, 1] when given (an opacity per point). Points off the panel (or not finite) are dropped."""
        if radius > self.max_radius:
            raise ValueError(f"radius {radius} is above the canvas's max_radius {self.max_radius}")
        _, h, w = self.shape
        edge = self.max_radius + 1.0
        inside = ((points[:, 0] > -edge) & (points[:, 0] < w + edge)
                  & (points[:, 1] > -edge) & (points[:, 1] < h + edge))
        points, frame = points[inside], frame[inside]
        if weight is not None:
            weight = np.asarray(weight, dtype=np.float32)[inside]
        if len(points) == 0:
            return
        offsets, _ = _stencil(float(radius))
        bh, bw = self.buffer.shape[1:]
        base = np.floor(points).astype(np.int32)
        frac = (points - base).astype(np.float32) - 0.5  # from the floor pixel's centre to the point
        off = offsets.astype(np.float32)
        # float32 throughout: np.maximum.at takes its fast path only when values match the buffer's dtype.
        dist = np.hypot(off[None, :, 0] - frac[:, None, 0], off[None, :, 1] - frac[:, None, 1])
        cov = np.minimum(np.float32(radius + 0.5) - dist, np.float32(1.0))
        if weight is not None:
            cov = cov * weight[:, None]
        start = (frame.astype(np.int64) * bh + base[:, 1] + self.pad) * bw + base[:, 0] + self.pad
        flat = start[:, None] + (offsets[:, 1] * bw + offsets[:, 0])[None, :]
        ok = cov > 0
        np.maximum.at(self.buffer.reshape(-1), flat[ok], cov[ok])

    def segments(self, p0: np.ndarray, p1: np.ndarray, frame: np.ndarray, radius: float,
                 weight: np.ndarray | None = None) -> None:
        """Anti-aliased segments of half-width ``radius`` pixels from ``p0 [S, 2]`` to ``p1 [S, 2]`` in batch
        frames ``frame [S]``, with an opacity ``weight [S]`` in [0, 1] when given. Segments are clipped to the
        panel first, so one running far outside costs only its visible length; segments with a non-finite end
        are dropped."""
        _, h, w = self.shape
        finite = np.isfinite(p0).all(axis=1) & np.isfinite(p1).all(axis=1)
        c0, c1, keep = clip_segments(p0[finite], p1[finite], w, h, radius + 0.5)
        # Sampled with the segment index as "frame", so each sample finds its segment's frame and weight.
        points, seg = sample_segments(c0, c1, np.flatnonzero(finite)[keep])
        self.dots(points, frame[seg], radius, None if weight is None else np.asarray(weight)[seg])

    def composite(self, frames: np.ndarray, color: tuple[int, int, int]) -> None:
        """Blend ``color`` (RGB 0-255) over ``frames [B, H, W, 3]`` uint8 in place, with this canvas's coverage
        as alpha. Only covered pixels are touched."""
        coverage = self.coverage
        mask = coverage > 0
        alpha = coverage[mask][:, None]
        flat = frames.reshape(-1, 3)
        where = np.flatnonzero(mask)
        under = flat[where].astype(np.float32)
        flat[where] = (under + (np.asarray(color, np.float32) - under) * alpha + 0.5).astype(np.uint8)
