"""Quaternion and rotation helpers, vectorised over any leading shape.

Convention (ARCHITECTURE.md): quaternions are (w, x, y, z), unit norm, Hamilton product, active rotations;
``qmul(a, b)`` applies ``b`` first, then ``a``. Angles are radians.
"""

from __future__ import annotations

import warnings

import numpy as np

_AXIS_INDEX = {"X": 0, "Y": 1, "Z": 2}


def identity(shape: tuple[int, ...] = ()) -> np.ndarray:
    """Identity quaternions of ``shape + (4,)``."""
    q = np.zeros((*shape, 4))
    q[..., 0] = 1.0
    return q


def normalize(q: np.ndarray) -> np.ndarray:
    """Unit quaternions ``[..., 4]``; raises on a zero quaternion."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(n == 0):
        raise ValueError("zero-norm quaternion cannot be normalised")
    return q / n


def qmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of ``[..., 4]`` wxyz quaternions (broadcasts)."""
    a = np.asarray(a)
    b = np.asarray(b)
    out = np.empty(np.broadcast_shapes(a.shape, b.shape), dtype=np.result_type(a, b, np.float64))
    for i, part in enumerate(qmul_parts(np.moveaxis(a, -1, 0), np.moveaxis(b, -1, 0))):
        out[..., i] = part
    return out


def qmul_parts(a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hamilton product on components: ``a`` and ``b`` are ``(w, x, y, z)`` sequences of arrays (or arrays
    ``[4, ...]``); returns the product's four component arrays. Components stored contiguously (``[4, J, T]``)
    make the products several times faster than on interleaved ``[..., 4]`` arrays."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return (
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    )


def conj(q: np.ndarray) -> np.ndarray:
    """Conjugate (the inverse of a unit quaternion) ``[..., 4]``."""
    out = np.array(q, dtype=np.float64, copy=True)
    out[..., 1:] *= -1.0
    return out


def rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v [..., 3]`` by unit quaternions ``q [..., 4]`` (broadcasts)."""
    q = np.asarray(q)
    v = np.asarray(v)
    out = np.empty(np.broadcast_shapes(q.shape[:-1], v.shape[:-1]) + (3,), dtype=np.result_type(q, v, np.float64))
    for i, part in enumerate(rotate_parts(np.moveaxis(q, -1, 0), np.moveaxis(v, -1, 0))):
        out[..., i] = part
    return out


def rotate_parts(q, v) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``rotate`` on components: ``q`` a ``(w, x, y, z)`` and ``v`` an ``(x, y, z)`` sequence of arrays (or arrays
    ``[4, ...]`` and ``[3, ...]``); returns the rotated vector's three component arrays."""
    w, x, y, z = q
    vx, vy, vz = v
    # v' = v + w t + u x t with t = 2 u x v (u the vector part), the cross products written out.
    tx = 2.0 * (y * vz - z * vy)
    ty = 2.0 * (z * vx - x * vz)
    tz = 2.0 * (x * vy - y * vx)
    return vx + w * tx + (y * tz - z * ty), vy + w * ty + (z * tx - x * tz), vz + w * tz + (x * ty - y * tx)


def from_axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Quaternions from unit axes ``[..., 3]`` and angles ``[...]`` in radians."""
    half = 0.5 * np.asarray(angle, dtype=np.float64)
    return np.concatenate((np.cos(half)[..., None], np.sin(half)[..., None] * axis), axis=-1)


def to_rotvec(q: np.ndarray) -> np.ndarray:
    """Rotation vectors (axis * angle, radians) ``[..., 3]`` of quaternions ``[..., 4]``, angle in [0, pi]."""
    q = np.asarray(q, dtype=np.float64)
    q = np.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    s = np.linalg.norm(v, axis=-1)
    angle = 2.0 * np.arctan2(s, q[..., 0])
    # angle/s -> 2 as s -> 0; the series keeps small rotations exact.
    scale = np.where(s > 1e-12, angle / np.where(s > 1e-12, s, 1.0), 2.0)
    return v * scale[..., None]


def from_rotvec(r: np.ndarray) -> np.ndarray:
    """Quaternions ``[..., 4]`` from rotation vectors ``[..., 3]`` (radians)."""
    r = np.asarray(r, dtype=np.float64)
    angle = np.linalg.norm(r, axis=-1)
    half = 0.5 * angle
    k = np.where(angle > 1e-12, np.sin(half) / np.where(angle > 1e-12, angle, 1.0), 0.5)
    return np.concatenate((np.cos(half)[..., None], r * k[..., None]), axis=-1)


def angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation angle (radians, [0, pi]) from ``a`` to ``b``, both ``[..., 4]``."""
    d = np.abs(np.sum(np.asarray(a) * np.asarray(b), axis=-1))
    return 2.0 * np.arccos(np.clip(d, 0.0, 1.0))


def _cos_sin(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``cos(x)`` and ``sin(x)`` from one ``tan(x / 2)`` (the tangent half-angle formulas): numpy's float64 tan
    is SIMD-vectorised where its cos and sin are not, so this is about four times faster (a BVH file's Euler
    angles: a fifth of its load time), with an absolute error of a few 1e-16."""
    t = np.tan(0.5 * x)
    t2 = t * t
    inv = 1.0 / (1.0 + t2)
    t2 -= 1.0
    t2 *= -inv
    t *= 2.0 * inv
    return t2, t


def from_euler(angles: np.ndarray, order: str, degrees: bool = False) -> np.ndarray:
    """Quaternions from Euler angles.

    angles: ``[..., 3]`` radians (degrees with ``degrees=True``), ``angles[..., i]`` is the rotation about axis
    ``order[i]``. order: three letters of XYZ, intrinsic (each axis in the frame rotated by the previous ones), as
    BVH and Acclaim files list channels: ``"ZYX"`` gives ``Rz @ Ry @ Rx``.
    """
    order = order.upper()
    if len(order) != 3 or any(c not in _AXIS_INDEX for c in order):
        raise ValueError(f"unknown Euler order {order!r}; expected three letters of XYZ")
    angles = np.asarray(angles, dtype=np.float64)
    i, j, k = (_AXIS_INDEX[c] for c in order)
    c, s = _cos_sin(angles * (np.pi / 360.0 if degrees else 0.5))
    if len({i, j, k}) < 3:
        # Proper Euler orders (a repeated axis, e.g. "ZYZ") are rare: multiply the three axis rotations.
        out = None
        for n, axis in enumerate((i, j, k)):
            q = np.zeros((*angles.shape[:-1], 4))
            q[..., 0] = c[..., n]
            q[..., 1 + axis] = s[..., n]
            out = q if out is None else qmul(out, q)
        return out
    # Closed form of q_i(a) * q_j(b) * q_k(c) for three distinct axes; e = +1 when e_i x e_j = +e_k.
    e = 1.0 if (j - i) % 3 == 1 else -1.0
    c1, c2, c3 = c[..., 0], c[..., 1], c[..., 2]
    s1, s2, s3 = s[..., 0], s[..., 1], s[..., 2]
    c1c2, s1s2, s1c2, c1s2 = c1 * c2, s1 * s2, s1 * c2, c1 * s2
    out = np.empty((*angles.shape[:-1], 4))
    out[..., 0] = c1c2 * c3 - e * s1s2 * s3
    out[..., 1 + i] = s1c2 * c3 + e * c1s2 * s3
    out[..., 1 + j] = c1s2 * c3 - e * s1c2 * s3
    out[..., 1 + k] = e * s1s2 * c3 + c1c2 * s3
    return out


def to_euler(q: np.ndarray, order: str) -> np.ndarray:
    """Euler angles ``[..., 3]`` (radians, intrinsic ``order``) of quaternions ``[..., 4]``; inverse of from_euler."""
    from scipy.spatial.transform import Rotation

    q = np.asarray(q, dtype=np.float64)
    flat = q.reshape(-1, 4)
    rot = Rotation.from_quat(flat[:, [1, 2, 3, 0]])
    with warnings.catch_warnings():
        # At gimbal lock (middle angle +-90 degrees) scipy sets the third angle to zero and warns; the angles it
        # returns still compose to the same rotation, which is all a caller of to_euler needs.
        warnings.filterwarnings("ignore", "Gimbal lock detected", UserWarning)
        return rot.as_euler(order.upper()).reshape(*q.shape[:-1], 3)


def to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` of unit quaternions ``[..., 4]``."""
    w, x, y, z = np.moveaxis(np.asarray(q, dtype=np.float64), -1, 0)
    return np.stack(
        (
            np.stack((1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)), -1),
            np.stack((2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)), -1),
            np.stack((2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)), -1),
        ),
        axis=-2,
    )


def from_matrix(m: np.ndarray) -> np.ndarray:
    """Unit quaternions ``[..., 4]`` (w >= 0) of rotation matrices ``[..., 3, 3]``."""
    from scipy.spatial.transform import Rotation

    m = np.asarray(m, dtype=np.float64)
    xyzw = Rotation.from_matrix(m.reshape(-1, 3, 3)).as_quat()
    q = xyzw[:, [3, 0, 1, 2]].reshape(*m.shape[:-2], 4)
    return np.where(q[..., :1] < 0, -q, q)


def from_matrix_parts(m: np.ndarray) -> np.ndarray:
    """Unit quaternions ``[4, ...]`` wxyz (components first, sign not normalised) of rotation matrices
    ``[3, 3, ...]`` (components first), in numpy: Shepperd's method. The rows of the outer product ``4 q q^T`` are
    all proportional to q; each matrix uses the row of the largest ``|q_i|``, which keeps the normalisation well
    conditioned. ``from_matrix`` is the ``[..., 3, 3]`` form (through scipy)."""
    m00, m11, m22 = m[0, 0], m[1, 1], m[2, 2]
    wx, wy, wz = m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]
    xy, xz, yz = m[0, 1] + m[1, 0], m[0, 2] + m[2, 0], m[1, 2] + m[2, 1]
    diag = np.stack([1.0 + m00 + m11 + m22, 1.0 + m00 - m11 - m22, 1.0 - m00 + m11 - m22, 1.0 - m00 - m11 + m22])
    rows = np.array([[diag[0], wx, wy, wz], [wx, diag[1], xy, xz], [wy, xy, diag[2], yz], [wz, xz, yz, diag[3]]])
    q = np.take_along_axis(rows, np.argmax(diag, axis=0)[None, None], axis=0)[0]
    return q / np.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])[None]


def make_continuous(q: np.ndarray, axis: int = 0) -> np.ndarray:
    """Flip signs along ``axis`` so consecutive quaternions lie in the same hemisphere (for filtering)."""
    q = np.moveaxis(np.array(q, dtype=np.float64, copy=True), axis, 0)
    if len(q) > 1:
        dots = np.sum(q[1:] * q[:-1], axis=-1)
        flips = np.cumprod(np.where(dots < 0, -1.0, 1.0), axis=0)
        q[1:] *= flips[..., None]
    return np.moveaxis(q, 0, axis)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation from ``a`` to ``b`` (``[..., 4]``) by ``t`` (broadcast to ``[...]``), shortest path."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)[..., None]
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-9
    safe = np.where(near, 1.0, sin_theta)
    wa = np.where(near, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    wb = np.where(near, t, np.sin(t * theta) / safe)
    return normalize(wa * a + wb * b)
