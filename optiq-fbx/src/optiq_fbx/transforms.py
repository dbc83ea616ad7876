"""FBX node transforms, vectorised over frames.

FBX defines a node's local matrix (Autodesk FBX SDK documentation, "Computing transformation matrices") as

    T * Roff * Rp * Rpre * R * Rpost^-1 * Rp^-1 * Soff * Sp * S * Sp^-1

with T = Lcl Translation, R = Lcl Rotation in the node's RotationOrder, Rpre/Rpost = PreRotation/PostRotation
(always XYZ), Roff/Rp = RotationOffset/RotationPivot, Soff/Sp = ScalingOffset/ScalingPivot, S = Lcl Scaling.
Euler angles are degrees; FBX's eEulerXYZ applies X first (the matrix is Rz @ Ry @ Rx). The world matrix follows
the node's InheritType: 0 RrSs (the parent's scale is applied after the child's rotation, component-wise),
1 RSrs (plain matrix product), 2 Rrs (the parent's own local scale is not inherited: Maya segment scale
compensation).
"""

from __future__ import annotations

import numpy as np
from optiq import quat

# FBX RotationOrder enum (eEulerXYZ=0 ... eEulerZYX=5, eSphericXYZ=6 read as XYZ): the order the axes apply in.
ROTATION_ORDERS = ("XYZ", "XZY", "YZX", "YXZ", "ZXY", "ZYX", "XYZ")


def euler_matrices(angles_deg: np.ndarray, order: int) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` of FBX Euler angles ``[..., 3]`` (degrees about X, Y, Z) applied in FBX
    RotationOrder ``order`` (0..6)."""
    applied = ROTATION_ORDERS[order if 0 <= order < len(ROTATION_ORDERS) else 0]
    # Applying axes a, b, c in turn is the matrix Rc @ Rb @ Ra: optiq's intrinsic order "cba".
    intrinsic = applied[::-1]
    idx = ["XYZ".index(c) for c in intrinsic]
    return quat.to_matrix(quat.from_euler(np.asarray(angles_deg, dtype=np.float64)[..., idx], intrinsic,
                                          degrees=True))


TRANSFORM_PROPS = ("PreRotation", "PostRotation", "RotationOffset", "RotationPivot", "ScalingOffset",
                   "ScalingPivot")


def local_matrices(t: np.ndarray, r: np.ndarray, s: np.ndarray, order: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """Local matrices ``[N, T, 4, 4]`` of N nodes from Lcl Translation/Rotation/Scaling ``[N, T, 3]`` (file units,
    degrees), RotationOrder ``order`` [N] and ``extra`` ``[N, 6, 3]``: the TRANSFORM_PROPS per node."""
    n, frames = t.shape[:2]
    rot = np.empty((n, frames, 3, 3))
    for o in np.unique(order):
        sel = order == o
        rot[sel] = euler_matrices(r[sel], int(o))
    pre = euler_matrices(extra[:, 0], 0)[:, None]  # [N, 1, 3, 3]
    post_inv = np.swapaxes(euler_matrices(extra[:, 1], 0), -1, -2)[:, None]
    roff, rp, soff, sp = (extra[:, k, None, :] for k in range(2, 6))  # [N, 1, 3]
    out = np.zeros((n, frames, 4, 4))
    out[..., 3, 3] = 1.0
    lin_r = pre @ rot @ post_inv  # [N, T, 3, 3]
    out[..., :3, :3] = lin_r * s[..., None, :]  # @ diag(S)
    # Translation column: T + Roff + Rp + Rr (Soff + Sp - S Sp - Rp), with Rr = Rpre R Rpost^-1.
    after_r = soff + sp - s * sp - rp
    out[..., :3, 3] = t + roff + rp + np.einsum("...ij,...j->...i", lin_r, after_r)
    return out


def _rotation_and_scale(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split linear parts ``[T, 3, 3]`` into rotation-like columns and column scales ``[T, 3]`` (FBX's GetR/GetS)."""
    scale = np.linalg.norm(m, axis=-2)
    return m / np.where(scale == 0.0, 1.0, scale)[:, None, :], scale


def world_matrices(parent_world: np.ndarray | None, local: np.ndarray, inherit: int,
                   parent_local_scale: np.ndarray | None) -> np.ndarray:
    """World matrices ``[T, 4, 4]`` of a node from its parent's world matrices (None for a top node), its local
    matrices and InheritType; ``parent_local_scale`` ``[T, 3]`` is the parent's Lcl Scaling (for Rrs)."""
    if parent_world is None:
        return local
    if inherit == 1 or inherit not in (0, 2):
        return parent_world @ local
    out = np.empty_like(local)
    out[:, 3] = (0.0, 0.0, 0.0, 1.0)
    out[:, :3, 3] = np.einsum("tij,tj->ti", parent_world[:, :3, :3], local[:, :3, 3]) + parent_world[:, :3, 3]
    p_rot, p_scale = _rotation_and_scale(parent_world[:, :3, :3])
    l_rot, l_scale = _rotation_and_scale(local[:, :3, :3])
    if inherit == 2 and parent_local_scale is not None:
        safe = np.where(parent_local_scale == 0.0, 1.0, parent_local_scale)
        p_scale = p_scale / safe
    # Parent rotation, child rotation, then parent scale and child scale along the child's axes.
    out[:, :3, :3] = p_rot @ l_rot * (p_scale * l_scale)[:, None, :]
    return out
