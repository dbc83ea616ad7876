"""BVH writer: any clip to a Biovision file (Y up, the clip's length unit, per-joint rotation orders)."""

from __future__ import annotations

import io
import os

import numpy as np

from .. import quat
from ..atomic import atomic_text
from ..axes import axis_matrix, length_scale
from ..clip import Clip
from ..errors import OptiqError
from .bvh import rotation_orders


def _orders(clip: Clip, order: str | None) -> list[str]:
    if order:
        return [order.upper()] * clip.num_joints
    saved = rotation_orders(clip)
    if saved is not None and all(len(o) == 3 for o in saved):
        return saved
    return ["ZYX"] * clip.num_joints


def write_bvh(clip: Clip, path: str | os.PathLike, *, unit: str | float | None = None, up: str | None = None,
              order: str | None = None, **_ignored) -> None:
    """Write ``clip`` as BVH, atomically.

    unit: length unit of the file (a LENGTH_UNITS name or metres per unit); default the clip's ``length_unit``
    label, else centimetres. up: the file's up axis; default the clip's ``up`` label, else ``"y"``. order: one
    Euler order for every joint (default: the orders the clip was read with, else ZYX). Joints with per-frame
    local translations get six channels.
    """
    try:
        scale, _ = length_scale(unit or clip.labels.get("length_unit", "cm"))
        back = axis_matrix(up or clip.labels.get("up", "y")).T  # optiq axes -> file axes
    except ValueError as exc:
        raise OptiqError(str(exc), path) from None
    file_clip = clip.transformed(back, 1.0 / scale)
    sk = file_clip.skeleton
    orders = _orders(clip, order)
    animated = [j == 0 or clip.local_translations is not None for j in range(sk.num_joints)]

    out = io.StringIO()
    out.write("HIERARCHY\n")
    columns = []
    local = file_clip.local_offsets()
    # Depth-first order keeps each subtree inside its braces whatever order the skeleton lists joints in.
    dfs = _dfs_order(sk.parents)
    for k, j in enumerate(dfs):
        depth = _depth(sk.parents, j)
        ind = "\t" * depth
        out.write(f"{ind}{'ROOT' if j == 0 else 'JOINT'} {sk.names[j]}\n{ind}{{\n")
        o = sk.offsets[j]
        out.write(f"{ind}\tOFFSET {o[0]:.6f} {o[1]:.6f} {o[2]:.6f}\n")
        rot_ch = " ".join(f"{a}rotation" for a in orders[j])
        if animated[j]:
            out.write(f"{ind}\tCHANNELS 6 Xposition Yposition Zposition {rot_ch}\n")
            columns.append(local[:, j])
        else:
            out.write(f"{ind}\tCHANNELS 3 {rot_ch}\n")
        columns.append(np.degrees(quat.to_euler(file_clip.rotations[:, j], orders[j])))
        # A leaf without an End Site stays without one (SFU files have such leaves), so the round trip is exact.
        if j in sk.end_sites:
            e = sk.end_sites[j]
            out.write(f"{ind}\tEnd Site\n{ind}\t{{\n{ind}\t\tOFFSET {e[0]:.6f} {e[1]:.6f} {e[2]:.6f}\n{ind}\t}}\n")
        # Close this joint and every ancestor whose last child this is.
        next_depth = _depth(sk.parents, dfs[k + 1]) if k + 1 < len(dfs) else 0
        for d in range(depth, next_depth - 1, -1):
            out.write("\t" * d + "}\n")
    data = np.concatenate(columns, axis=1)
    out.write(f"MOTION\nFrames: {clip.num_frames}\nFrame Time: {1.0 / clip.fps:.8f}\n")
    np.savetxt(out, data, fmt="%.6f")
    with atomic_text(path) as fh:
        fh.write(out.getvalue())


def _dfs_order(parents: np.ndarray) -> list[int]:
    children: dict[int, list[int]] = {}
    for j, p in enumerate(parents):
        children.setdefault(int(p), []).append(j)
    order, stack = [], [0]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children.get(j, [])))
    return order


def _depth(parents: np.ndarray, j: int) -> int:
    d = 0
    while parents[j] >= 0:
        j = parents[j]
        d += 1
    return d
