"""DeepMimic motion reader: a ``.txt`` motion (JSON ``{"Loop", "Frames"}``) with its character file.

Each frame is ``[dt, root_pos(3), root quat wxyz(4), per joint: quat wxyz(4) | angle(1) | nothing]`` in the order
of the character file's ``Skeleton.Joints``: spherical joints take 4 numbers, revolute joints 1 (an angle about the
joint's Z axis, as ``cKinTree::ChildParentTransRevolute`` builds it: ``RotateMat(tVector(0, 0, 1, 0), theta)``),
fixed joints none. The root always takes 7 (position and rotation). DeepMimic files are Y up, metres.

A joint's transform in DeepMimic is ``A_j * R_j``: the attach translation and rotation (``AttachTheta``, Euler
``Rz * Ry * Rx`` as ``cMathUtil::RotateMat(euler)``) then the joint's own rotation. The attach rotations are folded
here so that rest frames are world-aligned (ARCHITECTURE.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .. import quat
from ..axes import Y_UP_TO_Z_UP
from ..clip import Clip
from ..errors import ParseError
from ..skeleton import Skeleton
from .common import read_text, snap_fps

# Numbers per joint in a frame, by DeepMimic joint type ("none" is the root's type in humanoid3d).
_DOFS = {"spherical": 4, "revolute": 1, "fixed": 0}
_ROOT_DOFS = 7
_LOOPS = ("wrap", "none")


def sniff_deepmimic(path: Path, head: bytes) -> bool:
    """A JSON object with a "Frames" list and no character "Skeleton": a DeepMimic motion file."""
    text = head.lstrip()
    return text.startswith(b"{") and b'"Frames"' in text and b'"Skeleton"' not in text


def _read_json(path: Path, what: str) -> object:
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON in {what} ({exc.msg}; the file may be truncated)", path,
                         f"line {exc.lineno}, column {exc.colno}") from None


def find_character(motion: Path) -> Path:
    """The character file beside a motion: the only ``*character*.txt`` there, else the one named after the
    motion's prefix (``humanoid3d_walk.txt`` -> ``humanoid3d_character.txt``)."""
    found = sorted(motion.parent.glob("*character*.txt"))
    if len(found) == 1:
        return found[0]
    preferred = motion.parent / (motion.stem.split("_")[0] + "_character.txt")
    if preferred in found:
        return preferred
    if not found:
        raise ParseError("no character file (*character*.txt) beside the motion; pass character=PATH", motion)
    raise ParseError(f"several character files beside the motion ({', '.join(p.name for p in found)}); "
                     "pass character=PATH", motion)


def _field(joint: dict, key: str, index: int, path: Path, default=None):
    if key not in joint:
        if default is not None:
            return default
        raise ParseError(f"joint has no {key!r}", path, f"Skeleton.Joints[{index}]")
    return joint[key]


def read_character(path: str | os.PathLike) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Joints of a DeepMimic character file, in file order.

    Returns names, types, parents ``[J]``, attach points ``[J, 3]`` (metres, parent frame) and attach rotations
    ``[J, 4]`` wxyz.
    """
    path = Path(path)
    doc = _read_json(path, "character file")
    joints = doc.get("Skeleton", {}).get("Joints") if isinstance(doc, dict) else None
    if not isinstance(joints, list) or not joints:
        raise ParseError("expected a character file with a non-empty Skeleton.Joints list", path, "Skeleton.Joints")
    names, types, parents, attach, theta = [], [], [], [], []
    for i, j in enumerate(joints):
        where = f"Skeleton.Joints[{i}]"
        if not isinstance(j, dict):
            raise ParseError("expected a joint object", path, where)
        if _field(j, "ID", i, path) != i:
            raise ParseError(f"joint ID {j['ID']} out of order: DeepMimic lays frames out by joint order, "
                             f"expected ID {i}", path, where)
        parent = _field(j, "Parent", i, path)
        jtype = str(_field(j, "Type", i, path))
        if i == 0 and parent != -1:
            raise ParseError(f"the first joint must be the root (Parent -1), got Parent {parent}", path, where)
        if i > 0 and not (isinstance(parent, int) and 0 <= parent < i):
            raise ParseError(f"Parent {parent} must be the ID of an earlier joint", path, where)
        if i > 0 and jtype not in _DOFS:
            raise ParseError(f"unsupported joint type {jtype!r}; expected spherical, revolute or fixed", path, where)
        try:
            attach.append([float(_field(j, f"Attach{a}", i, path, 0.0)) for a in "XYZ"])
            theta.append([float(_field(j, f"AttachTheta{a}", i, path, 0.0)) for a in "ZYX"])
        except (TypeError, ValueError):
            raise ParseError("Attach values must be numbers", path, where) from None
        names.append(str(_field(j, "Name", i, path)))
        types.append(jtype)
        parents.append(-1 if i == 0 else parent)
    attach_arr = np.array(attach)
    # DeepMimic ignores the root's attach point (cKinTree::PostProcessJointMat zeroes it).
    attach_arr[0] = 0.0
    return names, types, np.array(parents), attach_arr, quat.from_euler(np.array(theta), "ZYX")


def _frames(doc: object, path: Path, width: int) -> np.ndarray:
    if isinstance(doc, dict) and "Skeleton" in doc:
        raise ParseError("is a DeepMimic character file, not a motion (pass it as character=PATH)", path, "Skeleton")
    if not isinstance(doc, dict) or "Frames" not in doc:
        raise ParseError('expected a DeepMimic motion: a JSON object with "Frames"', path, "Frames")
    frames = doc["Frames"]
    if not isinstance(frames, list) or not frames:
        raise ParseError("Frames must be a non-empty list of frames", path, "Frames")
    try:
        values = np.asarray(frames, dtype=np.float64)
    except (TypeError, ValueError):
        values = None
    if values is None or values.ndim != 2 or values.shape[1] != width:
        for i, row in enumerate(frames):
            if not isinstance(row, list) or len(row) != width:
                n = len(row) if isinstance(row, list) else "no list of"
                raise ParseError(f"{n} numbers, expected {width} (1 dt + 3 root position + 4 root rotation "
                                 f"+ {width - 8} joint values of the character)", path, f"frame {i}")
            try:
                np.asarray(row, dtype=np.float64)
            except (TypeError, ValueError):
                raise ParseError("every value must be a number", path, f"frame {i}") from None
        raise ParseError("Frames must be a list of lists of numbers", path, "Frames")
    bad = ~np.isfinite(values)
    if bad.any():
        i, col = (int(x) for x in np.argwhere(bad)[0])
        raise ParseError(f"value {col} is {values[i, col]} (expected a finite number)", path, f"frame {i}")
    return values


def _fps(dt: np.ndarray, path: Path, fps: float | None) -> float:
    """Frames per second from the dt column; DeepMimic leaves the last frame's dt 0 (it ends the clip)."""
    if fps:
        return float(fps)
    steps = dt[:-1] if len(dt) > 1 else dt
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0))
        raise ParseError(f"dt must be positive, got {steps[i]}", path, f"frame {i}")
    uneven = np.abs(steps / steps[0] - 1.0) > 1e-3
    if uneven.any():
        i = int(np.argmax(uneven))
        raise ParseError(f"dt {steps[i]} differs from the first frame's {steps[0]}; optiq clips need a constant "
                         "frame rate", path, f"frame {i}")
    # Files print dt to six decimals (0.033332).
    return snap_fps(1.0 / float(np.mean(steps)))


def load_deepmimic(path: str | os.PathLike, *, character: str | os.PathLike | None = None,
                   fps: float | None = None, **_ignored) -> list[Clip]:
    """Read a DeepMimic motion into one Clip (metres, Z up).

    character: the character file (``Skeleton.Joints``); default the ``*character*.txt`` beside the motion.
    fps: override the rate given by the frames' dt. Labels: ``loop`` (``wrap`` or ``none``), ``source``,
    ``character``. Rotations ``[T, J, 4]`` wxyz cover every character joint, fixed joints included (identity).
    """
    path = Path(path)
    doc = _read_json(path, "motion file")
    char_path = Path(character) if character else find_character(path)
    names, types, parents, attach, theta = read_character(char_path)
    dofs = np.array([_ROOT_DOFS] + [_DOFS[t] for t in types[1:]])
    width = 1 + int(dofs.sum())
    values = _frames(doc, path, width)
    loop = doc.get("Loop", "none")
    if loop not in _LOOPS:
        raise ParseError(f"Loop is {loop!r}, expected one of {', '.join(_LOOPS)}", path, "Loop")

    t, n = len(values), len(names)
    local = quat.identity((t, n))
    local[:, 0] = values[:, 4:8]
    starts = 1 + np.concatenate(([0], np.cumsum(dofs)[:-1]))
    for j in range(1, n):
        s = starts[j]
        if types[j] == "spherical":
            local[:, j] = values[:, s:s + 4]
        elif types[j] == "revolute":
            local[:, j] = quat.from_axis_angle(np.array([0.0, 0.0, 1.0]), values[:, s])
    norms = np.linalg.norm(local, axis=-1)
    if np.any(norms < 1e-6):
        i, j = (int(x) for x in np.argwhere(norms < 1e-6)[0])
        raise ParseError(f"joint {names[j]!r} has a zero quaternion", path, f"frame {i}")
    local /= norms[..., None]

    # Fold attach rotations: with G_j the rest world rotation (product of attach rotations down the chain), the
    # world-aligned local rotation is G_j R_j G_j^-1 and the rest offset G_parent * attach.
    rest = np.empty((n, 4))
    offsets = np.empty((n, 3))
    rest[0] = theta[0]
    for j in range(1, n):
        rest[j] = quat.qmul(rest[parents[j]], theta[j])
        offsets[j] = quat.rotate(rest[parents[j]], attach[j])
    offsets[0] = 0.0
    rotations = quat.qmul(quat.qmul(rest, local), quat.conj(rest))
    root = quat.rotate(theta[0], values[:, 1:4])

    skeleton = Skeleton(tuple(names), parents, offsets)
    clip = Clip(skeleton, _fps(values[:, 0], path, fps), root, rotations, name=path.stem,
                labels={"source": path.name, "loop": loop, "character": char_path.name})
    return [clip.transformed(Y_UP_TO_Z_UP, 1.0)]
