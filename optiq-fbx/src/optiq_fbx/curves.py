"""FBX animation curves evaluated at many times at once.

An AnimationCurve holds KeyTime (int64 FBX ticks, 46186158000 per second), KeyValueFloat, and per-key attributes
shared by runs of keys (KeyAttrRefCount): KeyAttrFlags and four KeyAttrDataFloat values (right slope, next key's
left slope, both tangent weights packed as two 16-bit numbers in the third value's bits, in units of 1/10000 of
the segment, velocities). A segment
from key k to k+1 takes key k's interpolation: constant (key k's value, or key k+1's with the "constant next"
flag), linear, or cubic: a 2-D Bezier in (time, value) whose inner control points lie at a fraction ``w`` of the
segment along the tangents (``w`` = 1/3 unless the key is weighted). Before the first and after the last key the
curve is constant. Every sample is evaluated with ``np.searchsorted``: no loop over frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TICKS_PER_SECOND = 46186158000

_CONSTANT = 0x00000002
_LINEAR = 0x00000004
_CUBIC = 0x00000008
_CONSTANT_NEXT = 0x00000100
_WEIGHTED_RIGHT = 0x01000000
_WEIGHTED_NEXT_LEFT = 0x02000000


@dataclass
class Curve:
    """One curve's keys: ``times`` [K] seconds, ``values`` [K], per-key ``flags`` [K] int, ``slopes`` [K, 2]
    (right slope, next key's left slope; value per second), ``weights`` [K, 2] (right, next left; fraction of the
    segment)."""

    times: np.ndarray
    values: np.ndarray
    flags: np.ndarray
    slopes: np.ndarray
    weights: np.ndarray


def make_curve(key_time: np.ndarray, key_value: np.ndarray, attr_flags: np.ndarray | None,
               attr_data: np.ndarray | None, attr_refcount: np.ndarray | None) -> Curve:
    """A :class:`Curve` from the arrays of an AnimationCurve record. ``attr_data`` is float32 (binary files) or the
    int32 bit patterns of those floats (ASCII files write them as integers). Raises ValueError on inconsistent
    sizes."""
    times = np.asarray(key_time, dtype=np.int64) / TICKS_PER_SECOND
    values = np.asarray(key_value, dtype=np.float64)
    k = len(times)
    if len(values) != k:
        raise ValueError(f"{k} key times but {len(values)} key values")
    if k and np.any(np.diff(times) < 0):
        raise ValueError("key times are not in increasing order")
    if attr_flags is None or len(attr_flags) == 0 or k == 0:
        flags = np.full(k, _LINEAR, dtype=np.int64)
        data = np.zeros((k, 4), dtype=np.float32)
    else:
        n_attr = len(attr_flags)
        ref = np.ones(n_attr, dtype=np.int64) if attr_refcount is None else np.asarray(attr_refcount, np.int64)
        if len(ref) != n_attr or ref.sum() < k or np.any(ref < 0):
            raise ValueError(f"KeyAttrRefCount does not cover the {k} keys with {n_attr} attributes")
        raw = np.asarray(attr_data if attr_data is not None else np.zeros(4 * n_attr))
        if raw.size < 4 * n_attr:
            raise ValueError(f"KeyAttrDataFloat has {raw.size} values, expected {4 * n_attr}")
        if raw.dtype.kind in "iu":
            raw = raw.astype(np.int64).astype(np.uint32).view(np.float32)
        data_attr = raw.astype(np.float32)[: 4 * n_attr].reshape(n_attr, 4)
        which = np.repeat(np.arange(n_attr), ref)[:k]
        flags = np.asarray(attr_flags, dtype=np.int64).astype(np.uint32).astype(np.int64)[which]
        data = data_attr[which]
    packed = data[:, 2].view(np.uint32).astype(np.int64)
    third = 1.0 / 3.0
    w_right = np.where(flags & _WEIGHTED_RIGHT, (packed & 0xFFFF) / 10000.0, third)
    w_left = np.where(flags & _WEIGHTED_NEXT_LEFT, (packed >> 16) / 10000.0, third)
    slopes = data[:, :2].astype(np.float64)
    return Curve(times, values, flags, slopes, np.stack([w_right, w_left], axis=1))


def evaluate(curve: Curve, t: np.ndarray) -> np.ndarray:
    """Values ``[S]`` of ``curve`` at times ``t`` ``[S]`` (seconds)."""
    t = np.asarray(t, dtype=np.float64)
    times, values = curve.times, curve.values
    k = len(times)
    if k == 0:
        return np.zeros_like(t)
    if k == 1:
        return np.full_like(t, values[0])
    i = np.clip(np.searchsorted(times, t, side="right") - 1, 0, k - 2)
    t0, t1 = times[i], times[i + 1]
    v0, v1 = values[i], values[i + 1]
    dt = t1 - t0
    safe_dt = np.where(dt > 0, dt, 1.0)
    u = np.clip((t - t0) / safe_dt, 0.0, 1.0)
    flags = curve.flags[i]
    out = v0 + (v1 - v0) * u  # linear (and the default for unknown flags)
    const = (flags & _CONSTANT) != 0
    # "Constant next" holds the next key's value strictly inside the segment; at the key itself it is the key's.
    at_key = u < 1e-9
    out = np.where(const, np.where(((flags & _CONSTANT_NEXT) != 0) & ~at_key, v1, v0), out)
    cubic = ((flags & _CUBIC) != 0) & ~const
    if cubic.any():
        c = np.flatnonzero(cubic)
        wr, wl = curve.weights[i[c], 0], curve.weights[i[c], 1]
        sr, sl = curve.slopes[i[c], 0], curve.slopes[i[c], 1]
        d = dt[c]
        # Bezier control points in (time, value), time measured from t0 in units of the segment.
        x1, x2 = wr, 1.0 - wl
        y0, y3 = v0[c], v1[c]
        y1 = y0 + sr * wr * d
        y2 = y3 - sl * wl * d
        s = _solve_bezier_x(x1, x2, u[c])
        m = 1.0 - s
        out[c] = m * m * m * y0 + 3.0 * m * m * s * y1 + 3.0 * m * s * s * y2 + s * s * s * y3
    # Constant extrapolation outside the keys.
    out = np.where(t <= times[0], values[0], out)
    return np.where(t >= times[-1], values[-1], out)


def _solve_bezier_x(x1: np.ndarray, x2: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The Bezier parameter ``s`` in [0, 1] where ``3(1-s)^2 s x1 + 3(1-s) s^2 x2 + s^3 = x`` (monotone for
    control points inside the segment). Unweighted tangents (x1 = 1/3, x2 = 2/3) give s = x exactly; weighted
    ones are solved by bisection, vectorised over samples."""
    s = x.copy()
    weighted = (np.abs(x1 - 1.0 / 3.0) > 1e-12) | (np.abs(x2 - 2.0 / 3.0) > 1e-12)
    if not weighted.any():
        return s
    w = np.flatnonzero(weighted)
    a, b, target = x1[w], x2[w], x[w]
    lo, hi = np.zeros_like(target), np.ones_like(target)
    for _ in range(60):  # 2^-60: below float64 resolution of [0, 1]
        mid = 0.5 * (lo + hi)
        m = 1.0 - mid
        xm = 3.0 * m * m * mid * a + 3.0 * m * mid * mid * b + mid * mid * mid
        below = xm < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    s[w] = 0.5 * (lo + hi)
    return s
