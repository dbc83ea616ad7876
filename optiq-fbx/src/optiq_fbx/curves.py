"""FBX animation curves evaluated at many times at once.

An AnimationCurve holds KeyTime (int64 FBX ticks, 46186158000 per second), KeyValueFloat, and per-key attributes
shared by runs of keys (KeyAttrRefCount): KeyAttrFlags and four KeyAttrDataFloat values (right slope, next key's
left slope, both tangent weights packed as two 16-bit numbers in the third value's bits, in units of 1/10000 of
the segment, velocities). A segment
from key k to k+1 takes key k's interpolation: constant (key k's value, or key k+1's with the "constant next"
flag), linear, or cubic: a 2-D Bezier in (time, value) whose inner control points lie at a fraction ``w`` of the
segment along the tangents (``w`` = 1/3 unless the key is weighted). Before the first and after the last key the
curve is constant. No loop over frames: the curves of a stack are evaluated at all sample times together
(:func:`evaluate_many`).
"""

from __future__ import annotations

import functools
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
    """One curve's keys: ``times`` [K] seconds, ``values`` [K], and the index ``attr`` [K] of each key's
    attribute among A attributes: ``flags`` [A] int, ``slopes`` [A, 2] (right slope, next key's left slope; value
    per second), ``weights`` [A, 2] (right, next left; fraction of the segment)."""

    times: np.ndarray
    values: np.ndarray
    attr: np.ndarray
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
    if k > 1 and (times[1:] < times[:-1]).any():
        raise ValueError("key times are not in increasing order")
    if attr_flags is None or len(attr_flags) == 0 or k == 0:
        return Curve(times, values, np.zeros(k, dtype=np.int64), *_attributes(_LINEAR_ATTR, _ZERO_DATA))
    n_attr = len(attr_flags)
    ref = np.ones(n_attr, dtype=np.int64) if attr_refcount is None else np.asarray(attr_refcount, np.int64)
    if len(ref) != n_attr or ref.sum() < k or (ref < 0).any():
        raise ValueError(f"KeyAttrRefCount does not cover the {k} keys with {n_attr} attributes")
    raw = np.asarray(attr_data if attr_data is not None else np.zeros(4 * n_attr))
    if raw.size < 4 * n_attr:
        raise ValueError(f"KeyAttrDataFloat has {raw.size} values, expected {4 * n_attr}")
    if raw.dtype.kind in "iu":
        raw = raw.astype(np.int64).astype(np.uint32).view(np.float32)
    attr = np.zeros(k, dtype=np.int64) if n_attr == 1 else np.repeat(np.arange(n_attr), ref)[:k]
    flags = (np.asarray(attr_flags, dtype=np.int64) & 0xFFFFFFFF).tobytes()
    return Curve(times, values, attr, *_attributes(flags, raw.astype(np.float32)[: 4 * n_attr].tobytes()))


_LINEAR_ATTR = np.array([_LINEAR], dtype=np.int64).tobytes()
_ZERO_DATA = bytes(16)


@functools.lru_cache(maxsize=256)
def _attributes(flags: bytes, data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Attribute ``flags`` [A], ``slopes`` [A, 2] and ``weights`` [A, 2] from the bytes of the int64 flags and
    the float32 ``[A, 4]`` data. Cached: the curves of a file mostly share their few attributes (returned arrays
    are read-only, as they are shared)."""
    flag = np.frombuffer(flags, dtype=np.int64)
    data = np.frombuffer(data, dtype=np.float32).reshape(-1, 4)
    packed = data[:, 2].view(np.uint32).astype(np.int64)
    third = 1.0 / 3.0
    w_right = np.where(flag & _WEIGHTED_RIGHT, (packed & 0xFFFF) / 10000.0, third)
    w_left = np.where(flag & _WEIGHTED_NEXT_LEFT, (packed >> 16) / 10000.0, third)
    weights = np.stack([w_right, w_left], axis=1)
    slopes = data[:, :2].astype(np.float64)
    for a in (slopes, weights):
        a.flags.writeable = False
    return flag, slopes, weights


def is_constant(curve: Curve) -> bool:
    """True when the curve has one value at every time: all keys equal and no cubic segment bending away."""
    v = curve.values
    if len(v) < 2:
        return True
    if v.max() != v.min():
        return False
    # Checked per attribute: one used only by the last key may send a constant curve to the general path.
    return not np.any((curve.flags & _CUBIC) & ~(curve.flags & _CONSTANT)) or not curve.slopes.any()


def evaluate_many(curves: list[Curve], t: np.ndarray) -> np.ndarray:
    """Values ``[C, S]`` of ``curves`` at times ``t`` ``[S]`` (seconds).

    Constant curves are filled without evaluation and linear ones go through ``np.interp`` (one C call each). The
    rest (constant or cubic segments) are evaluated together: their keys are concatenated into flat arrays, each
    distinct KeyTime array is searched once, and the segment arithmetic runs once over all their samples."""
    t = np.asarray(t, dtype=np.float64)
    out = np.empty((len(curves), len(t)))
    moving = []
    for c, curve in enumerate(curves):
        if is_constant(curve):
            out[c] = curve.values[0] if len(curve.values) else 0.0
        elif not np.any(curve.flags & (_CONSTANT | _CUBIC)):
            out[c] = np.interp(t, curve.times, curve.values)
        else:
            moving.append(c)
    if not moving:
        return out
    sel = [curves[c] for c in moving]
    sizes = np.array([len(cv.times) for cv in sel])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    index = np.empty((len(sel), len(t)), dtype=np.int64)
    searched: dict[bytes, np.ndarray] = {}
    for r, cv in enumerate(sel):
        key = cv.times.tobytes()
        if key not in searched:
            searched[key] = np.clip(np.searchsorted(cv.times, t, side="right") - 1, 0, len(cv.times) - 2)
        index[r] = searched[key]
    i = index + starts[:, None]
    times = np.concatenate([cv.times for cv in sel])
    values = np.concatenate([cv.values for cv in sel])
    # Global attribute index of every key: attribute tables are concatenated like the keys.
    attr_starts = np.concatenate([[0], np.cumsum([len(cv.flags) for cv in sel])[:-1]])
    key_attr = np.concatenate([cv.attr + s for cv, s in zip(sel, attr_starts, strict=True)])
    flags_all = np.concatenate([cv.flags for cv in sel])[key_attr]
    t0, t1 = times[i], times[i + 1]
    v0, v1 = values[i], values[i + 1]
    dt = t1 - t0
    u = np.clip((t - t0) / np.where(dt > 0, dt, 1.0), 0.0, 1.0)
    flags = flags_all[i]
    res = v0 + (v1 - v0) * u  # linear (and the default for unknown flags)
    const = (flags & _CONSTANT) != 0
    if const.any():
        # "Constant next" holds the next key's value strictly inside the segment; at the key itself it is the key's.
        res = np.where(const, np.where(((flags & _CONSTANT_NEXT) != 0) & (u >= 1e-9), v1, v0), res)
    cubic = ((flags & _CUBIC) != 0) & ~const
    if cubic.any():
        c = np.nonzero(cubic)
        ic = i[c]
        weights = np.concatenate([cv.weights for cv in sel])[key_attr[ic]]
        slopes = np.concatenate([cv.slopes for cv in sel])[key_attr[ic]]
        wr, wl = weights[:, 0], weights[:, 1]
        d = dt[c]
        # Bezier control points in (time, value), time measured from t0 in units of the segment.
        y0, y3 = v0[c], v1[c]
        y1 = y0 + slopes[:, 0] * wr * d
        y2 = y3 - slopes[:, 1] * wl * d
        s = _solve_bezier_x(wr, 1.0 - wl, u[c])
        m = 1.0 - s
        res[c] = m * m * m * y0 + 3.0 * m * m * s * y1 + 3.0 * m * s * s * y2 + s * s * s * y3
    # Constant extrapolation outside the keys.
    first, last = starts, starts + sizes - 1
    res = np.where(t <= times[first][:, None], values[first][:, None], res)
    out[moving] = np.where(t >= times[last][:, None], values[last][:, None], res)
    return out


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
