"""Biovision hierarchy (BVH) reader.

Any rotation order per joint, position channels on any joint, tabs or spaces, End Sites, ``Frame Time`` written
as ``.0083333``. The MOTION block is parsed in one vectorised call. Position channels hold the joint's whole local
translation (they replace its OFFSET, as MotionBuilder and the CMU conversions write them).
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import quat
from ..axes import axis_matrix, guess_units
from ..clip import Clip
from ..errors import ParseError
from ..skeleton import Skeleton
from ..tpose import drop_leading_tpose
from .common import read_bytes, snap_fps

_CHANNELS = {"xposition", "yposition", "zposition", "xrotation", "yrotation", "zrotation"}


@dataclass
class _Joint:
    name: str
    parent: int
    line: int
    offset: np.ndarray | None = None
    channels: list[str] = field(default_factory=list)
    end_site: np.ndarray | None = None


def sniff_bvh(path: Path, head: bytes) -> bool:
    return head.removeprefix(b"\xef\xbb\xbf").lstrip().upper().startswith(b"HIERARCHY")


def _parse_hierarchy(lines: list[str], path: Path, has_motion: bool) -> list[_Joint]:
    """Joints in file order (parents before children) from the lines before MOTION (``has_motion``: the file has a
    MOTION line after them)."""
    joints: list[_Joint] = []
    stack: list[int] = []  # joint index per open brace; -2 marks an End Site block
    pending: _Joint | None = None
    in_end_site = False
    for i, raw in enumerate(lines):
        tok = raw.split()
        if not tok:
            continue
        key = tok[0].upper()
        where = f"line {i + 1}"
        if key == "HIERARCHY":
            continue
        if key in ("ROOT", "JOINT"):
            if len(tok) < 2:
                raise ParseError(f"{key} without a name", path, where)
            if key == "ROOT" and (stack or joints):
                raise ParseError("a second ROOT; optiq reads one skeleton per file", path, where)
            if key == "JOINT" and not stack:
                raise ParseError("JOINT outside the ROOT's braces", path, where)
            parent = stack[-1] if stack else -1
            pending = _Joint(" ".join(tok[1:]), parent, i + 1)
            first = next((j.line for j in joints if j.name == pending.name), None)
            if first is not None:  # joints are found by name everywhere downstream: a repeat is ambiguous
                raise ParseError(f"joint name {pending.name!r} is used twice (first on line {first}); joint names "
                                 "must be unique", path, where)
        elif key == "END":
            if not stack or stack[-1] < 0:
                raise ParseError("End Site outside a joint", path, where)
            in_end_site = True
        elif key == "{":
            if in_end_site:
                stack.append(-2)
            elif pending is not None:
                joints.append(pending)
                stack.append(len(joints) - 1)
                pending = None
            else:
                raise ParseError("'{' without a ROOT, JOINT or End Site before it", path, where)
        elif key == "}":
            if not stack:
                raise ParseError("'}' without a matching '{'", path, where)
            if stack.pop() == -2:
                in_end_site = False
        elif key == "OFFSET":
            try:
                off = np.array([float(x) for x in tok[1:4]])
            except ValueError:
                off = np.array([])
            if off.shape != (3,) or not np.all(np.isfinite(off)):
                raise ParseError(f"OFFSET needs three finite numbers, got {' '.join(tok[1:]) or 'nothing'}", path, where)
            if not stack:
                raise ParseError("OFFSET outside a joint", path, where)
            if stack[-1] == -2:
                joints[stack[-2]].end_site = off
            else:
                joints[stack[-1]].offset = off
        elif key == "CHANNELS":
            if not stack or stack[-1] < 0:
                raise ParseError("CHANNELS outside a joint", path, where)
            try:
                n = int(tok[1])
            except (IndexError, ValueError):
                raise ParseError("CHANNELS needs a count", path, where) from None
            names = [t.lower() for t in tok[2:]]
            if len(names) != n:
                raise ParseError(f"CHANNELS says {n} channels but lists {len(names)}", path, where)
            bad = [t for t in tok[2:] if t.lower() not in _CHANNELS]
            if bad:
                raise ParseError(
                    f"unknown channel {bad[0]!r}; expected Xposition, Yposition, Zposition, Xrotation, Yrotation, "
                    "Zrotation", path, where)
            if len(set(names)) != len(names):
                raise ParseError(f"a channel is listed twice: {' '.join(tok[2:])}", path, where)
            joints[stack[-1]].channels = names
        else:
            raise ParseError(f"unexpected {tok[0][:40]!r} in the hierarchy", path, where)
    last = next((i + 1 for i in range(len(lines) - 1, -1, -1) if lines[i].strip()), 1)
    if not has_motion:
        open_part = f" inside {_open_block(joints, stack)}" if stack else ""
        raise ParseError(f"the file ends{open_part} without a MOTION section (truncated?)", path, f"line {last}")
    if stack:
        raise ParseError(f"MOTION comes before the '}}' that closes {_open_block(joints, stack)}", path,
                         f"line {len(lines)}")
    if not joints:
        raise ParseError("no ROOT joint before MOTION", path, f"line {len(lines)}")
    return joints


def _open_block(joints: list[_Joint], stack: list[int]) -> str:
    """The innermost unclosed block, for error messages."""
    j = joints[stack[-2] if stack[-1] == -2 else stack[-1]]
    block = "the End Site of" if stack[-1] == -2 else "joint"
    return f"{block} {j.name!r} (line {j.line})"


def _header_value(line: str, key: str, path: Path, lineno: int) -> str:
    head, sep, value = line.partition(":")
    if not sep or head.strip().lower() != key.lower():
        raise ParseError(f"expected '{key}: <value>', got {line.strip()[:40]!r}", path, f"line {lineno}")
    return value.strip()


def load_bvh(path: str | os.PathLike, *, unit: str | float = "auto", up: str = "auto", drop_tpose: bool = False,
             **_ignored) -> list[Clip]:
    """Read a BVH file into one Clip (metres, Z up).

    unit: the file's length unit (``"cm"``, ``"inch"``, ``"cmu"`` = 1/0.45 inch, metres per unit, or ``"auto"``:
    guessed from the standing height of the motion and the rest pose, recorded in the clip label ``length_unit``).
    up: the file's up axis, ``"y"``, ``"z"`` or ``"auto"`` (the axis along which the head, neck and spine stand
    above the feet in the motion, else in the rest pose), recorded in the clip label ``up``. See
    :func:`optiq.axes.guess_units`; weak or conflicting evidence gives a ``UnitGuessWarning``. drop_tpose: drop frame 0 when it is a T-pose set apart from the motion
    (CMU "MotionBuilder-friendly" files; the rule of :mod:`optiq.tpose`, applied before the unit and axis
    conversion).
    """
    path = Path(path)
    data = read_bytes(path)
    if b"\n" not in data:
        data = data.replace(b"\r", b"\n")  # classic Mac line ends
    # The hierarchy and the MOTION header are small: parse them line by line; the frames in one vectorised pass.
    motion = _MOTION_LINE.search(data)
    head = data[: motion.start() if motion else len(data)].decode("utf-8-sig", errors="replace")
    joints = _parse_hierarchy(head.split("\n"), path, motion is not None)
    lineno = head.count("\n") + 1  # the MOTION line
    pos = data.find(b"\n", motion.start())
    header: list[tuple[str, int]] = []
    while len(header) < 2:
        if pos < 0:
            raise ParseError("the file ends before 'Frames:' and 'Frame Time:' (truncated?)", path,
                             f"line {lineno}")
        end = data.find(b"\n", pos + 1)
        line = data[pos + 1: None if end < 0 else end].decode("utf-8", errors="replace")
        pos, lineno = end, lineno + 1
        if line.strip():
            header.append((line, lineno))
    n_frames_txt = _header_value(header[0][0], "Frames", path, header[0][1])
    frame_time_txt = _header_value(header[1][0], "Frame Time", path, header[1][1])
    try:
        n_frames = int(n_frames_txt)
    except ValueError:
        raise ParseError(f"'Frames: {n_frames_txt}' is not a whole number", path, f"line {header[0][1]}") from None
    try:
        frame_time = float(frame_time_txt)
    except ValueError:
        raise ParseError(f"'Frame Time: {frame_time_txt}' is not a number", path, f"line {header[1][1]}") from None
    if not np.isfinite(frame_time) or frame_time <= 0:
        raise ParseError(f"Frame Time must be positive, got {frame_time_txt}", path, f"line {header[1][1]}")
    if n_frames <= 0:
        raise ParseError(f"the file has no frames (Frames: {n_frames})", path, f"line {header[0][1]}")
    for j in joints:
        if j.offset is None:
            raise ParseError(f"joint {j.name!r} has no OFFSET", path, f"line {j.line}")

    n_ch = sum(len(j.channels) for j in joints)
    motion_data = b"" if pos < 0 else data[pos + 1:]
    values = _parse_motion(motion_data, n_frames, n_ch, path, lineno + 1).reshape(n_frames, n_ch)

    clip = _to_clip(joints, values, frame_time, path)
    if drop_tpose:
        clip = drop_leading_tpose(clip)
    return [_convert_units(clip, joints, unit, up, path)]


_MOTION_LINE = re.compile(rb"^[ \t]*MOTION[ \t\r]*$", re.MULTILINE)


def _parse_motion(data: bytes, n_frames: int, n_ch: int, path: Path, first_line: int) -> np.ndarray:
    """The MOTION block's numbers ``[n_frames, n_ch]``; a ParseError naming the first bad line otherwise.

    numpy's C text reader (``np.loadtxt``) converts each number with CPython's correctly rounded
    ``PyOS_string_to_double``, so the values are bit for bit what ``float()`` gives (the tests check it on every
    shared BVH file), and it refuses rows whose value count differs, in about half the time of ``str.split``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": reported below instead
            # latin-1 maps every byte to one character: no decoding pass; a non-ASCII byte fails as a number.
            values = np.loadtxt(io.BytesIO(data), dtype=np.float64, comments=None, ndmin=2, encoding="latin-1")
    except ValueError:
        values = None
    if values is not None and values.shape == (n_frames, n_ch) and np.isfinite(values).all():
        return values
    return _parse_motion_slowly(data.decode("utf-8", errors="replace"), n_frames, n_ch, path, first_line)


def _parse_motion_slowly(data_text: str, n_frames: int, n_ch: int, path: Path, first_line: int) -> np.ndarray:
    """Line by line with ``float()``, run only when the fast reader refused the block: raises a ParseError naming
    the first bad line, or returns the values when ``float()`` reads what numpy did not (``1_000``)."""
    rows = [ln for ln in enumerate(data_text.split("\n")) if ln[1].strip()]
    out = []
    for frame, (i, line) in enumerate(rows):
        where = f"line {first_line + i}, frame {frame}"
        tok = line.split()
        try:
            vals = np.array([float(t) for t in tok])
        except ValueError:
            bad = next(t for t in tok if not _is_float(t))
            raise ParseError(f"{bad!r} is not a number", path, where) from None
        if frame >= n_frames:
            raise ParseError(f"more frame lines than 'Frames: {n_frames}' says", path, where)
        if len(tok) != n_ch:
            raise ParseError(f"{len(tok)} values, expected {n_ch} (one per channel)", path, where)
        if not np.all(np.isfinite(vals)):
            col = int(np.argmax(~np.isfinite(vals)))
            raise ParseError(f"value {col} is {tok[col]} (expected a finite number)", path, where)
        out.append(vals)
    if len(rows) < n_frames:
        last = first_line + (rows[-1][0] if rows else -1)
        raise ParseError(f"truncated: the file ends after {len(rows)} of the {n_frames} frames that 'Frames:' says",
                         path, f"line {last}, frame {len(rows)}")
    return np.array(out, dtype=np.float64).reshape(n_frames, n_ch)


def _is_float(t: str) -> bool:
    try:
        float(t)
        return True
    except ValueError:
        return False


def _to_clip(joints: list[_Joint], values: np.ndarray, frame_time: float, path: Path) -> Clip:
    n_frames = values.shape[0]
    n_j = len(joints)
    rotations = np.empty((n_frames, n_j, 4))
    offsets = np.stack([j.offset for j in joints])
    local = None
    has_pos = [any(c.endswith("position") for c in j.channels) for j in joints]
    if any(has_pos[1:]):
        local = np.broadcast_to(offsets, (n_frames, n_j, 3)).copy()
    root_translation = np.broadcast_to(offsets[0], (n_frames, 3)).copy()

    # Group joints by rotation order so that each order is one vectorised Euler conversion.
    groups: dict[str, tuple[list[int], list[list[int]]]] = {}
    col = 0
    for ji, j in enumerate(joints):
        rot_cols, order = [], ""
        for c in j.channels:
            if c.endswith("rotation"):
                rot_cols.append(col)
                order += c[0].upper()
            else:
                axis = "xyz".index(c[0])
                if ji == 0:
                    root_translation[:, axis] = values[:, col]
                else:
                    local[:, ji, axis] = values[:, col]
            col += 1
        if order:
            groups.setdefault(order, ([], []))
            groups[order][0].append(ji)
            groups[order][1].append(rot_cols)
    for order, (idx, cols) in groups.items():
        angles = values[:, np.asarray(cols)]  # [T, Jk, len(order)] degrees
        if len(order) == 3:
            q = quat.from_euler(angles, order, degrees=True)
        else:
            q = quat.identity(angles.shape[:-1])
            for k, axis in enumerate(order):
                q = quat.qmul(q, quat.from_euler(_one_axis(angles[..., k], axis), "XYZ", degrees=True))
        if len(idx) == n_j:  # one order for every joint (most files): no scatter needed
            rotations = q
        else:
            rotations[:, idx] = q
    unrotated = [ji for ji, j in enumerate(joints) if not any(c.endswith("rotation") for c in j.channels)]
    rotations[:, unrotated] = (1.0, 0.0, 0.0, 0.0)
    end_sites = {i: j.end_site for i, j in enumerate(joints) if j.end_site is not None}
    skeleton = Skeleton(tuple(j.name for j in joints), np.array([j.parent for j in joints]), offsets, end_sites)
    return Clip(skeleton, snap_fps(1.0 / frame_time), root_translation, rotations, local, name=path.stem,
                labels={"source": path.name})


def _one_axis(angle: np.ndarray, axis: str) -> np.ndarray:
    out = np.zeros((*angle.shape, 3))
    out[..., "XYZ".index(axis)] = angle
    return out


def _convert_units(clip: Clip, joints: list[_Joint], unit: str | float, up: str, path: Path) -> Clip:
    try:
        up, scale, unit_name = guess_units(clip, unit, up, path=path)
    except ValueError as exc:
        raise ParseError(str(exc), path) from None
    out = clip.transformed(axis_matrix(up), scale)
    out.labels["length_unit"] = unit_name
    out.labels["up"] = up
    orders = ["".join(c[0].upper() for c in j.channels if c.endswith("rotation")) or "-" for j in joints]
    # One order for every joint (the usual case) is stored once, to keep the label readable.
    out.labels["rotation_orders"] = orders[0] if len(set(orders)) == 1 else ",".join(orders)
    return out


def rotation_orders(clip: Clip) -> list[str] | None:
    """Per-joint rotation orders recorded by the BVH reader in the ``rotation_orders`` label (``"ZYX"`` for
    every joint, or one comma-separated entry per joint; ``"-"`` for a joint without rotation channels), or None
    when the clip carries no such label or it does not fit the skeleton."""
    saved = clip.labels.get("rotation_orders", "").split(",")
    if len(saved) == 1 and saved[0]:
        saved = saved * clip.num_joints
    return saved if len(saved) == clip.num_joints else None
