"""FBX animation curves evaluated at many times at once.

An AnimationCurve holds KeyTime (int64 FBX ticks, 46186158000 per second), KeyValueFloat, and per-key attributes
shared by runs of keys (KeyAttrRefCount): KeyAttrFlags and four KeyAttrDataFloat values (right slope, next key's
left slope, both tangent weights packed as two 16-bit numbers in the third value's bits, in units of 1/10000 of
the segment, velocities). A segment
from key k to k+1 takes key k's interpolation: constant (key k's value, or key k+1's with the "constant next"
flag), linear, or cubic: a 2-D Bezier in (time, value) whose inner control points lie at a fraction ``w`` of the
segment along the tangents (``w`` = 1/3 unless the key is weighted).

Before the first and after the last key the curve follows the record's ``Pre-Extrapolation`` /
``Post-Extrapolation`` (``Type`` and ``Repetition``; constant when absent), as ufbx (``ufbxi_extrapolate_curve``)
and the FBX SDK (``FbxAnimCurveBase::GetPreExtrapolation``, ``EExtrapolationType``) define them, times measured in whole KTime ticks:

- ``C`` constant: the end key's value.
- ``K`` keep slope: a line through the end key along its outer tangent (the first key's right slope, the last
  key's left slope: the secant of a linear end segment, 0 of a constant one).
- ``R`` repetition: the key span repeats (period = last key time - first key time).
- ``M`` mirror repetition: every other repetition runs backwards (the first one beside the keys is mirrored).
- ``A`` relative repetition: as ``R``, each repetition shifted by (last value - first value) away from the keys.

``Repetition`` counts the repetitions (-1 or absent: without end; 0: constant); when they run out the curve holds
the value the last repetition ends on. No loop over frames: the curves of a stack are evaluated at all sample
times together (:func:`evaluate_many`).
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
# Extrapolation Type codes (FBX writes one character).
CONSTANT, KEEP_SLOPE, REPEAT, MIRROR, RELATIVE = "C", "K", "R", "M", "A"
_CONSTANT_EXTRAPOLATION = (CONSTANT, -1)


@dataclass
class Curve:
    """One curve's keys: ``times`` [K] seconds, ``values`` [K], and the index ``attr`` [K] of each key's
    attribute among A attributes: ``flags`` [A] int, ``slopes`` [A, 2] (right slope, next key's left slope; value
    per second), ``weights`` [A, 2] (right, next left; fraction of the segment). ``pre`` and ``post``: the
    extrapolation before the first and after the last key, ``(type code, repetitions)`` (-1: without end)."""

    times: np.ndarray
    values: np.ndarray
    attr: np.ndarray
    flags: np.ndarray
    slopes: np.ndarray
    weights: np.ndarray
    pre: tuple[str, int] = _CONSTANT_EXTRAPOLATION
    post: tuple[str, int] = _CONSTANT_EXTRAPOLATION


def make_curve(key_time: np.ndarray, key_value: np.ndarray, attr_flags: np.ndarray | None,
               attr_data: np.ndarray | None, attr_refcount: np.ndarray | None,
               pre: tuple[str, int] = _CONSTANT_EXTRAPOLATION,
               post: tuple[str, int] = _CONSTANT_EXTRAPOLATION) -> Curve:
    """A :class:`Curve` from the arrays of an AnimationCurve record. ``attr_data`` is float32 (binary files) or the
    int32 bit patterns of those floats (ASCII files write them as integers). ``pre``/``post``: the extrapolation
    ``(type code, repetitions)`` (see :func:`extrapolation`). Raises ValueError on inconsistent sizes."""
    times = np.asarray(key_time, dtype=np.int64) / TICKS_PER_SECOND
    values = np.asarray(key_value, dtype=np.float64)
    k = len(times)
    if len(values) != k:
        raise ValueError(f"{k} key times but {len(values)} key values")
    if k > 1 and (times[1:] < times[:-1]).any():
        raise ValueError("key times are not in increasing order")
    if attr_flags is None or len(attr_flags) == 0 or k == 0:
        return Curve(times, values, np.zeros(k, dtype=np.int64), *_attributes(_LINEAR_ATTR, _ZERO_DATA), pre, post)
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
    return Curve(times, values, attr, *_attributes(flags, raw.astype(np.float32)[: 4 * n_attr].tobytes()), pre,
                 post)


def extrapolation(type_code, repetition) -> tuple[str, int]:
    """``(type code, repetitions)`` of a Pre-/Post-Extrapolation record from its ``Type`` value (a one-letter
    string in ASCII files, the character's code in binary ones; None when absent) and ``Repetition`` (None when
    absent). Unknown codes read as constant, and negative counts as -1 (without end), as ufbx reads them."""
    if isinstance(type_code, bytes):
        type_code = type_code.decode("latin-1")
    if isinstance(type_code, str):
        code = type_code.strip()[:1].upper()
    elif isinstance(type_code, int | np.integer) and not isinstance(type_code, bool) and 0 < type_code < 128:
        code = chr(int(type_code))
    else:
        code = CONSTANT
    if code not in (CONSTANT, KEEP_SLOPE, REPEAT, MIRROR, RELATIVE):
        code = CONSTANT
    count = -1 if repetition is None else int(repetition)
    return code, max(count, -1)


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


def _extrapolates(curve: Curve) -> bool:
    """Whether a curve (of two keys or more) leaves constant extrapolation on either side."""
    return any(mode == KEEP_SLOPE or (mode != CONSTANT and count != 0) for mode, count in (curve.pre, curve.post))


def evaluate_many(curves: list[Curve], t: np.ndarray) -> np.ndarray:
    """Values ``[C, S]`` of ``curves`` at times ``t`` ``[S]`` (seconds).

    Constant curves are filled without evaluation and linear ones go through ``np.interp`` (one C call each). The
    rest (constant or cubic segments) are evaluated together: their keys are concatenated into flat arrays, each
    distinct KeyTime array is searched once, and the segment arithmetic runs once over all their samples. Curves
    with a non-constant extrapolation first map every sample time into the keys' span (and an offset: the slope
    line, or the shift of a relative repetition), vectorised over the samples, and are then evaluated together
    the same way."""
    t = np.asarray(t, dtype=np.float64)
    out = np.empty((len(curves), len(t)))
    moving, wrapped = [], []
    for c, curve in enumerate(curves):
        if is_constant(curve):
            out[c] = curve.values[0] if len(curve.values) else 0.0
        elif _extrapolates(curve):
            wrapped.append(c)
        elif not np.any(curve.flags & (_CONSTANT | _CUBIC)):
            out[c] = np.interp(t, curve.times, curve.values)
        else:
            moving.append(c)
    if moving:
        out[moving] = _evaluate_keys([curves[c] for c in moving], np.broadcast_to(t, (len(moving), len(t))), True)
    if wrapped:
        sel = [curves[c] for c in wrapped]
        times, offsets = np.empty((len(sel), len(t))), np.empty((len(sel), len(t)))
        for r, cv in enumerate(sel):
            times[r], offsets[r] = _wrap(cv, t)
        out[wrapped] = _evaluate_keys(sel, times, False) + offsets
    return out


def _end_slopes(curve: Curve) -> tuple[float, float]:
    """The first key's right slope and the last key's left slope (value per second) of a curve of two keys or
    more: the stored slope of a cubic end segment, the secant of a linear one, 0 of a constant one."""
    out = []
    for k, side in ((0, 0), (len(curve.times) - 2, 1)):
        flag = int(curve.flags[curve.attr[k]])
        dt = curve.times[k + 1] - curve.times[k]
        if flag & _CONSTANT:
            out.append(0.0)
        elif flag & _CUBIC:
            out.append(float(curve.slopes[curve.attr[k], side]))
        else:
            out.append(float((curve.values[k + 1] - curve.values[k]) / dt) if dt > 0 else 0.0)
    return out[0], out[1]


def _wrap(curve: Curve, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For samples ``t`` [S] (seconds) of a curve with extrapolation: the times [S] inside the keys' span whose
    value the curve takes there, and offsets [S] to add to that value.

    Repetitions are counted in KTime ticks as ufbx counts them (``ufbxi_extrapolate_curve``): ``n = floor(d /
    period)`` whole repetitions and the remainder ``r`` of the distance ``d`` beyond the end key; with a finite
    count ``N``, ``n >= N`` holds at ``n = N - 1, r = period`` (the end of the last repetition)."""
    times, values = curve.times, curve.values
    new_t, offset = t.copy(), np.zeros(len(t))
    first_tick, last_tick = np.rint(times[0] * TICKS_PER_SECOND), np.rint(times[-1] * TICKS_PER_SECOND)
    period = last_tick - first_tick
    slopes = _end_slopes(curve) if KEEP_SLOPE in (curve.pre[0], curve.post[0]) else (0.0, 0.0)
    for before, (mode, count) in ((True, curve.pre), (False, curve.post)):
        side = t < times[0] if before else t > times[-1]
        if mode == CONSTANT or not side.any():
            continue
        end = 0 if before else -1
        if mode == KEEP_SLOPE:
            # The end key's value (times outside the span clamp to it) plus the slope line.
            offset[side] = slopes[end] * (t[side] - times[end])
            continue
        if count == 0 or not period >= 1.0:
            continue
        tick = t[side] * TICKS_PER_SECOND
        d = first_tick - tick if before else tick - last_tick
        n = np.floor(d / period)
        r = d - n * period
        if count > 0:
            done = n >= count
            n = np.where(done, count - 1.0, n)
            r = np.where(done, period, r)
        if mode == MIRROR:
            # Even repetitions (the first beside the keys among them) run backwards.
            r = np.where(n * 0.5 - np.floor(n * 0.5) <= 0.25, period - r, r)
        if before:
            r = period - r
        new_t[side] = (first_tick + r) / TICKS_PER_SECOND
        if mode == RELATIVE:
            offset[side] = (values[-1] - values[0]) * (n + 1.0) * (-1.0 if before else 1.0)
    return new_t, offset


def _evaluate_keys(sel: list[Curve], t: np.ndarray, shared: bool) -> np.ndarray:
    """Values ``[R, S]`` of curves ``sel`` at times ``t`` ``[R, S]`` (seconds), constant outside the keys.
    ``shared``: every row of ``t`` is the same (one search per distinct KeyTime array)."""
    sizes = np.array([len(cv.times) for cv in sel])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    index = np.empty(t.shape, dtype=np.int64)
    searched: dict[bytes, np.ndarray] = {}
    for r, cv in enumerate(sel):
        key = cv.times.tobytes()
        if not shared or key not in searched:
            searched[key] = np.clip(np.searchsorted(cv.times, t[r], side="right") - 1, 0, len(cv.times) - 2)
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
    # Constant outside the keys.
    first, last = starts, starts + sizes - 1
    res = np.where(t <= times[first][:, None], values[first][:, None], res)
    return np.where(t >= times[last][:, None], values[last][:, None], res)


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
