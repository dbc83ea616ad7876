"""The batched transform code (components first, nodes of one depth composed together) against the FBX
definitions written out one node and one frame at a time with 4x4 matrices."""

from __future__ import annotations

import numpy as np
from optiq_fbx.transforms import euler_matrices, local_transforms, world_transforms


def _rot(deg: np.ndarray, order: str) -> np.ndarray:
    """Rotation applying the axes of ``order`` in turn (the FBX meaning of RotationOrder), one 3x3 at a time."""
    out = np.eye(3)
    for axis in order:
        a = np.radians(deg["XYZ".index(axis)])
        c, s = np.cos(a), np.sin(a)
        m = {"X": [[1, 0, 0], [0, c, -s], [0, s, c]], "Y": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
             "Z": [[c, -s, 0], [s, c, 0], [0, 0, 1]]}[axis]
        out = np.array(m) @ out
    return out


def test_euler_orders_match_the_definition():
    rng = np.random.default_rng(1)
    angles = rng.uniform(-400, 400, (3, 5))
    for order, name in enumerate(("XYZ", "XZY", "YZX", "YXZ", "ZXY", "ZYX")):
        got = euler_matrices(angles, order)
        for k in range(5):
            np.testing.assert_allclose(got[:, :, k], _rot(angles[:, k], name), atol=1e-14)


def test_world_transforms_match_node_by_node_composition():
    """A tree with two nodes per depth, non-uniform animated scales, pivots and pre/post rotations, and every
    InheritType: RSrs (1) is the plain product; RrSs (0) and Rrs (2) apply the parent's column scales after the
    child's rotation (Rrs without the parent's own Lcl Scaling)."""
    rng = np.random.default_rng(2)
    parents = np.array([-1, 0, 0, 1, 2, 3, 4])
    inherit = np.array([1, 0, 2, 1, 0, 2, 1])
    n, frames = len(parents), 4
    t = rng.normal(size=(3, n, frames))
    r = rng.uniform(-180, 180, (3, n, frames))
    s = rng.uniform(0.5, 2.0, (3, n, frames))
    order = np.array([0, 1, 2, 3, 4, 5, 0])
    extra = rng.normal(size=(n, 6, 3)) * np.array([30, 30, 1, 1, 1, 1])[None, :, None]
    lin, pos = local_transforms(t, r, s, order, extra)
    w_lin, w_pos = world_transforms(lin, pos, parents, inherit, s)
    names = ("XYZ", "XZY", "YZX", "YXZ", "ZXY", "ZYX")
    for f in range(frames):
        world = {}
        for k in range(n):
            pre, post = _rot(extra[k, 0], "XYZ"), _rot(extra[k, 1], "XYZ")
            roff, rp, soff, sp = extra[k, 2:]
            rr = pre @ _rot(r[:, k, f], names[order[k]]) @ post.T
            local = np.eye(4)
            local[:3, :3] = rr @ np.diag(s[:, k, f])
            local[:3, 3] = t[:, k, f] + roff + rp + rr @ (soff + sp - s[:, k, f] * sp - rp)
            np.testing.assert_allclose(lin[:, :, k, f], local[:3, :3], atol=1e-12)
            np.testing.assert_allclose(pos[:, k, f], local[:3, 3], atol=1e-12)
            p = parents[k]
            if p < 0:
                world[k] = local
                continue
            pw = world[p]
            if inherit[k] == 1:
                world[k] = pw @ local
            else:
                p_scale = np.linalg.norm(pw[:3, :3], axis=0)
                if inherit[k] == 2:
                    p_scale = p_scale / s[:, p, f]
                l_scale = np.linalg.norm(local[:3, :3], axis=0)
                m = np.eye(4)
                m[:3, :3] = (pw[:3, :3] / np.linalg.norm(pw[:3, :3], axis=0)) @ (local[:3, :3] / l_scale) \
                    @ np.diag(p_scale * l_scale)
                m[:3, 3] = pw[:3, :3] @ local[:3, 3] + pw[:3, 3]
                world[k] = m
            np.testing.assert_allclose(w_lin[:, :, k, f], world[k][:3, :3], atol=1e-10)
            np.testing.assert_allclose(w_pos[:, k, f], world[k][:3, 3], atol=1e-10)
