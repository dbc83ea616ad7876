"""FBX node transforms, vectorised over nodes and frames.

FBX defines a node's local matrix (Autodesk FBX SDK documentation, "Computing transformation matrices") as

    T * Roff * Rp * Rpre * R * Rpost^-1 * Rp^-1 * Soff * Sp * S * Sp^-1

with T = Lcl Translation, R = Lcl Rotation in the node's RotationOrder, Rpre/Rpost = PreRotation/PostRotation
(always XYZ), Roff/Rp = RotationOffset/RotationPivot, Soff/Sp = ScalingOffset/ScalingPivot, S = Lcl Scaling.
Euler angles are degrees; FBX's eEulerXYZ applies X first (the matrix is Rz @ Ry @ Rx). The world matrix follows
the node's InheritType: 0 RrSs (the parent's scale is applied after the child's rotation, component-wise),
1 RSrs (plain matrix product), 2 Rrs (the parent's own local scale is not inherited: Maya segment scale
compensation).

Layout: components first, samples last. A transform is a linear part ``[3, 3, ...]`` and a translation
``[3, ...]``, where ``...`` is (nodes, frames); every entry is then one contiguous array, and the 3x3 products
are written out entry by entry, which numpy runs several times faster than ``matmul`` on stacks of small matrices.
"""

from __future__ import annotations

import numpy as np

# FBX RotationOrder enum (eEulerXYZ=0 ... eEulerZYX=5, eSphericXYZ=6 read as XYZ): the order the axes apply in.
ROTATION_ORDERS = ("XYZ", "XZY", "YZX", "YXZ", "ZXY", "ZYX", "XYZ")

TRANSFORM_PROPS = ("PreRotation", "PostRotation", "RotationOffset", "RotationPivot", "ScalingOffset",
                   "ScalingPivot")


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Products ``[3, 3, ...]`` of matrices ``a`` and ``b`` ``[3, 3, ...]`` (sample shapes broadcast)."""
    out = np.empty((3, 3) + np.broadcast_shapes(a.shape[2:], b.shape[2:]))
    for i in range(3):
        for k in range(3):
            out[i, k] = a[i, 0] * b[0, k] + a[i, 1] * b[1, k] + a[i, 2] * b[2, k]
    return out


def matvec(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Products ``[3, ...]`` of matrices ``a`` ``[3, 3, ...]`` and vectors ``v`` ``[3, ...]``."""
    return np.stack([a[i, 0] * v[0] + a[i, 1] * v[1] + a[i, 2] * v[2] for i in range(3)])


def euler_matrices(angles_deg: np.ndarray, order: int) -> np.ndarray:
    """Rotation matrices ``[3, 3, ...]`` of FBX Euler angles ``[3, ...]`` (degrees about X, Y, Z) applied in FBX
    RotationOrder ``order`` (0..6)."""
    rad = np.radians(angles_deg)
    c, s = np.cos(rad), np.sin(rad)
    applied = ROTATION_ORDERS[order if 0 <= order < len(ROTATION_ORDERS) else 0]
    if applied == "XYZ":  # the common case, multiplied out: Rz @ Ry @ Rx
        cx, cy, cz = c
        sx, sy, sz = s
        return np.array([[cy * cz, sx * sy * cz - cx * sz, cx * sy * cz + sx * sz],
                         [cy * sz, sx * sy * sz + cx * cz, cx * sy * sz - sx * cz],
                         [-sy, sx * cy, cx * cy]])
    zero, one = np.zeros_like(c[0]), np.ones_like(c[0])
    axis = {"X": np.array([[one, zero, zero], [zero, c[0], -s[0]], [zero, s[0], c[0]]]),
            "Y": np.array([[c[1], zero, s[1]], [zero, one, zero], [-s[1], zero, c[1]]]),
            "Z": np.array([[c[2], -s[2], zero], [s[2], c[2], zero], [zero, zero, one]])}
    # Applying axes a, b, c in turn is the matrix Rc @ Rb @ Ra.
    return matmul(axis[applied[2]], matmul(axis[applied[1]], axis[applied[0]]))


def local_transforms(t: np.ndarray, r: np.ndarray, s: np.ndarray, order: np.ndarray,
                     extra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local transforms of N nodes: linear parts ``[3, 3, N, T]`` and translations ``[3, N, T]`` from Lcl
    Translation/Rotation/Scaling ``[3, N, T]`` (file units, degrees), RotationOrder ``order`` [N] and ``extra``
    ``[N, 6, 3]``: the TRANSFORM_PROPS per node."""
    n, frames = t.shape[1:]
    rot = np.empty((3, 3, n, frames))
    # Nodes whose rotation never changes get one matrix, broadcast over the frames (the trigonometry dominates).
    moving = (r != r[..., :1]).any(axis=(0, 2))
    for o in np.unique(order):
        for still in (False, True):
            sel = (order == o) & (moving != still)
            if sel.any():
                rot[:, :, sel] = euler_matrices(r[:, sel, :1] if still else r[:, sel], int(o))
    pre, post = extra[:, 0], extra[:, 1]
    if pre.any():
        rot = matmul(euler_matrices(pre.T, 0)[..., None], rot)
    if post.any():
        rot = matmul(rot, euler_matrices(post.T, 0).transpose(1, 0, 2)[..., None])
    lin = rot * s[None]  # @ diag(S): column j scaled by S_j
    # Translation: T + Roff + Rp + Rr (Soff + Sp - S Sp - Rp), with Rr = Rpre R Rpost^-1.
    roff, rp, soff, sp = (extra[:, k].T[..., None] for k in range(2, 6))  # [3, N, 1]
    pos = t + roff + rp
    if rp.any() or soff.any() or sp.any():
        pos = pos + matvec(rot, soff + sp - s * sp - rp)
    return lin, pos


def _columns(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split linear parts ``[3, 3, ...]`` into unit columns and column scales ``[3, ...]`` (FBX's GetR/GetS)."""
    scale = np.sqrt(m[0] * m[0] + m[1] * m[1] + m[2] * m[2])
    return m / np.where(scale == 0.0, 1.0, scale)[None], scale


def world_transforms(lin: np.ndarray, pos: np.ndarray, parents: np.ndarray, inherit: np.ndarray,
                     local_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World transforms (``[3, 3, N, T]``, ``[3, N, T]``) of N nodes from their local ones, ``parents`` [N]
    (index of the parent node, -1 for a top node; parents before children), InheritType ``inherit`` [N] and Lcl
    Scaling ``local_scale`` ``[3, N, T]`` (the parent's own scale, for Rrs). Nodes of one depth are composed
    together."""
    depth = np.zeros(len(parents), dtype=np.int64)
    for k, p in enumerate(parents):
        depth[k] = depth[p] + 1 if p >= 0 else 0
    w_lin, w_pos = lin.copy(), pos.copy()
    scaled = (inherit == 0) | (inherit == 2)  # the other values, 1 (RSrs) included, are a plain product
    for d in range(1, int(depth.max(initial=0)) + 1):
        at_depth = depth == d
        for plain in (True, False):
            sel = np.flatnonzero(at_depth & (scaled != plain))
            if not len(sel):
                continue
            p = parents[sel]
            p_lin = w_lin[:, :, p]
            w_pos[:, sel] = matvec(p_lin, pos[:, sel]) + w_pos[:, p]
            if plain:
                w_lin[:, :, sel] = matmul(p_lin, lin[:, :, sel])
                continue
            p_rot, p_scale = _columns(p_lin)
            l_rot, l_scale = _columns(lin[:, :, sel])
            compensate = inherit[sel] == 2
            if compensate.any():
                own = local_scale[:, p]
                p_scale = np.where(compensate[None, :, None], p_scale / np.where(own == 0.0, 1.0, own), p_scale)
            # Parent rotation, child rotation, then parent scale and child scale along the child's axes.
            w_lin[:, :, sel] = matmul(p_rot, l_rot) * (p_scale * l_scale)[None]
    return w_lin, w_pos
