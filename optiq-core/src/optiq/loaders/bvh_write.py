"""BVH writer: any clip to a Biovision file that the BVH reader loads back as the same clip (joint order, length
unit, up axis, fps), with per-joint rotation orders."""

from __future__ import annotations

import io
import os
import warnings

import numpy as np

from .. import quat
from ..atomic import atomic_path
from ..axes import LENGTH_UNITS, axis_matrix, guess_units, length_scale, motion_sample
from ..clip import Clip
from ..errors import OptiqError
from .bvh import rotation_orders
from .common import snap_fps


def _orders(clip: Clip, order: str | None) -> list[str]:
    if order:
        return [order.upper()] * clip.num_joints
    saved = rotation_orders(clip)
    if saved is not None and all(len(o) == 3 for o in saved):
        return saved
    return ["ZYX"] * clip.num_joints


def write_bvh(clip: Clip, path: str | os.PathLike, *, unit: str | float | None = None, up: str | None = None,
              order: str | None = None, **_ignored) -> None:
    """Write ``clip`` as BVH, atomically, so that ``load_bvh`` reads it back as the same clip.

    Joints are written in depth-first order (the only order BVH nesting allows; ``optiq.io.load`` gives every
    loaded clip that order, so export -> load keeps it). unit: length unit of the file (a LENGTH_UNITS name or
    metres per unit); by default the clip's ``length_unit`` label when the reader's unit guess reads that unit back
    from the file, else centimetres, metres or another unit that it reads back (the reader's ``guess_units`` run on
    the clip in that unit). up: the file's up axis, ``"y"`` or ``"z"``; by default the clip's ``up`` label, else
    ``"y"``, checked the same way. order: one Euler order for every joint (default: the orders the clip was
    read with, else ZYX). Joints with per-frame local translations get six channels. ``Frame Time`` is printed so
    that the reader's rate snapping gives back exactly ``clip.fps``.
    """
    clip = clip.depth_first()
    orders = _orders(clip, order)
    try:  # an option the caller gave must be valid; a label that is not is skipped below
        scales = [length_scale(unit)[0]] if unit is not None else _scales(clip.labels.get("length_unit"))
        if up is not None:
            axis_matrix(up)
    except ValueError as exc:
        raise OptiqError(str(exc), path) from None
    ups = [up.lower()] if up is not None else _ups(clip.labels.get("up"))
    scale, axis = _choose(clip, scales, ups, fixed=unit is not None and up is not None)
    text = _bvh_text(clip, orders, scale, axis, _euler_degrees(clip, orders, axis_matrix(axis)))
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")


def _choose(clip: Clip, scales: list[float], ups: list[str], fixed: bool) -> tuple[float, str]:
    """The first unit (metres per file unit) and up axis, in the order tried, that the reader's guess
    (``guess_units``, as ``load_bvh`` calls it) gives back for the clip in those file units and axes; the
    preferred ones when none does (a guess that never lands) or when both were given (``fixed``).

    The guess runs on the clip itself moved into the candidate's axes and unit, not on a written and re-read
    file: the file holds the same numbers to 1e-6, and the guess judges at most 64 frames, so a long clip costs
    one text formatting instead of one per candidate."""
    if fixed:
        return scales[0], ups[0]
    sample = motion_sample(clip)  # the frames the guess judges: a long clip is moved into each candidate cheaply
    for scale in scales:
        for axis in ups:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a weak guess warns; here only its outcome matters
                guessed_up, guessed_scale, _ = guess_units(sample.transformed(axis_matrix(axis).T, 1.0 / scale))
            if guessed_up == axis:
                if abs(guessed_scale / scale - 1.0) < 1e-9:
                    return scale, axis
                break  # the axis reads back, the unit does not: another axis will not fix the unit
    return scales[0], ups[0]


def _scales(label: str | None) -> list[float]:
    """Metres per file unit to try, best first: the clip's ``length_unit`` label (when valid), cm, m, then the
    other LENGTH_UNITS; each scale once."""
    out: list[float] = []
    for name in ([label] if label else []) + ["cm", "m", *LENGTH_UNITS]:
        try:
            scale = length_scale(name)[0]
        except ValueError:
            continue
        if all(abs(scale / s - 1.0) > 1e-9 for s in out):
            out.append(scale)
    return out


def _ups(label: str | None) -> list[str]:
    """Up axes to try, best first: the clip's ``up`` label when it is ``"y"`` or ``"z"``, then the other."""
    first = label.lower() if label and label.lower() in ("y", "z") else "y"
    return [first, "z" if first == "y" else "y"]


def _euler_degrees(clip: Clip, orders: list[str], matrix: np.ndarray) -> np.ndarray:
    """``[T, J, 3]`` degrees: each joint's local rotation in the file's axes (``matrix``: file -> optiq axes) as
    Euler angles in its order."""
    rot = clip.transformed(matrix.T).rotations
    out = np.empty((clip.num_frames, clip.num_joints, 3))
    for order in set(orders):  # one scipy call per order, not per joint
        idx = [j for j, o in enumerate(orders) if o == order]
        out[:, idx] = np.degrees(quat.to_euler(rot[:, idx], order))
    return out


def _bvh_text(clip: Clip, orders: list[str], scale: float, up: str, angles: np.ndarray) -> str:
    """The BVH text of ``clip`` (joints in depth-first order) in file units of ``scale`` metres, ``up`` the file's
    up axis; angles: ``[T, J, 3]`` degrees from ``_euler_degrees`` for that axis."""
    file_clip = clip.transformed(axis_matrix(up).T, 1.0 / scale)
    sk = file_clip.skeleton
    animated = [j == 0 or clip.local_translations is not None for j in range(sk.num_joints)]
    depth = np.zeros(sk.num_joints, dtype=np.int64)
    for j in range(1, sk.num_joints):
        depth[j] = depth[sk.parents[j]] + 1

    out = io.StringIO()
    out.write("HIERARCHY\n")
    columns = []
    local = file_clip.local_offsets()
    for j in range(sk.num_joints):
        ind = "\t" * depth[j]
        out.write(f"{ind}{'ROOT' if j == 0 else 'JOINT'} {sk.names[j]}\n{ind}{{\n")
        o = sk.offsets[j]
        out.write(f"{ind}\tOFFSET {o[0]:.6f} {o[1]:.6f} {o[2]:.6f}\n")
        rot_ch = " ".join(f"{a}rotation" for a in orders[j])
        if animated[j]:
            out.write(f"{ind}\tCHANNELS 6 Xposition Yposition Zposition {rot_ch}\n")
            columns.append(local[:, j])
        else:
            out.write(f"{ind}\tCHANNELS 3 {rot_ch}\n")
        columns.append(angles[:, j])
        # A leaf without an End Site stays without one (SFU files have such leaves), so the round trip is exact.
        if j in sk.end_sites:
            e = sk.end_sites[j]
            out.write(f"{ind}\tEnd Site\n{ind}\t{{\n{ind}\t\tOFFSET {e[0]:.6f} {e[1]:.6f} {e[2]:.6f}\n{ind}\t}}\n")
        # Depth-first order: close this joint and every ancestor whose last descendant this is.
        next_depth = depth[j + 1] if j + 1 < sk.num_joints else 0
        for d in range(depth[j], next_depth - 1, -1):
            out.write("\t" * d + "}\n")
    data = np.concatenate(columns, axis=1)
    out.write(f"MOTION\nFrames: {clip.num_frames}\nFrame Time: {_frame_time_text(clip.fps)}\n")
    np.savetxt(out, data, fmt="%.6f")
    return out.getvalue()


def _frame_time_text(fps: float) -> str:
    """``1 / fps`` printed so that the reader (``snap_fps(1 / float(text))``) gives back exactly ``fps``: eight
    decimals when that suffices (120 fps: ``0.00833333``), else all the digits of the nearest double that does."""
    t = 1.0 / fps
    short = f"{t:.8f}"
    if float(short) > 0 and snap_fps(1.0 / float(short)) == fps:
        return short
    below = above = t
    for _ in range(4):  # 1 / (1 / fps) is within an ulp or two of fps
        for candidate in (below, above):
            if snap_fps(1.0 / candidate) == fps:
                return repr(float(candidate))
        below, above = np.nextafter(below, 0.0), np.nextafter(above, np.inf)
    return repr(t)
