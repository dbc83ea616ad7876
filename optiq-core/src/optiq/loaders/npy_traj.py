"""NPY trajectory reader: rows ``[time, root_pos(3), root_rot(4), dof_pos(N), transition_flag(1)]``.

A float ``.npy`` array ``[T, 9 + N]`` with a JSON spec file that names the N hinge dofs, maps each to a joint and
an axis, and gives the skeleton, the quaternion order of ``root_rot``, the up axis and the length unit
(docs/npy-trajectories.md). A transition flag of 1 marks the first row of a new clip (``transition="start"``, the
default) or the last row of a clip (``transition="end"``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import quat
from ..axes import axis_matrix, length_scale
from ..clip import Clip
from ..errors import OptiqError, ParseError
from ..skeleton import Skeleton
from .amp_npy import npy_header
from .common import read_text, snap_fps

SPEC_FORMAT = "optiq-npy-trajectory-spec"
_AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}


def sniff_npy_traj(path: Path, head: bytes) -> bool:
    """A plain 2-D float ``.npy`` array at least 9 columns wide (no pickle)."""
    info = npy_header(head)
    if info is None:
        return False
    shape, dtype = info
    return dtype.kind == "f" and len(shape) == 2 and shape[1] >= 9


@dataclass(frozen=True)
class TrajectorySpec:
    """A parsed spec: skeleton (file axes and unit), dof joint indices ``[N]`` and unit axes ``[N, 3]``."""

    skeleton: Skeleton
    dof_names: tuple[str, ...]
    dof_joints: np.ndarray
    dof_axes: np.ndarray
    root_rot_order: str
    up: str
    unit: str | float
    fps: float | None


def default_spec_path(path: Path) -> Path:
    """``walk.npy`` -> ``walk.spec.json`` beside it."""
    return path.with_name(path.stem + ".spec.json")


def _need(d: dict, key: str, path: Path, where: str):
    if not isinstance(d, dict) or key not in d:
        raise ParseError(f"missing key {key!r}", path, where + key)
    return d[key]


def read_spec(path: str | os.PathLike) -> TrajectorySpec:
    """Parse a trajectory spec file (docs/npy-trajectories.md); ParseError names the key that is wrong."""
    path = Path(path)
    text = read_text(path, "spec file", allow_empty=True)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON in spec file ({exc.msg})", path, f"line {exc.lineno}, column {exc.colno}"
                         ) from None
    if not isinstance(doc, dict) or doc.get("format") != SPEC_FORMAT:
        raise ParseError(f'expected a spec with "format": "{SPEC_FORMAT}"', path, "format")
    if doc.get("version", 1) != 1:
        raise ParseError(f"unsupported spec version {doc.get('version')!r}; this optiq reads version 1", path,
                         "version")
    sk = _need(doc, "skeleton", path, "")
    names = _need(sk, "names", path, "skeleton.")
    try:
        skeleton = Skeleton(names, _need(sk, "parents", path, "skeleton."), _need(sk, "offsets", path, "skeleton."))
    except (OptiqError, TypeError, ValueError) as exc:
        raise ParseError(f"bad skeleton: {exc}", path, "skeleton") from None
    dofs = _need(doc, "dofs", path, "")
    if not isinstance(dofs, list):
        raise ParseError("dofs must be a list of {name, joint, axis}", path, "dofs")
    joints, axes, dof_names = [], [], []
    for i, dof in enumerate(dofs):
        where = f"dofs[{i}]."
        joint = _need(dof, "joint", path, where)
        if joint not in skeleton.names:
            raise ParseError(f"joint {joint!r} is not in skeleton.names", path, where + "joint")
        if skeleton.names.index(joint) == 0:
            raise ParseError("the root turns with root_rot, not with hinge dofs", path, where + "joint")
        axis = _need(dof, "axis", path, where)
        vec = np.array(_AXES[axis.lower()] if isinstance(axis, str) and axis.lower() in _AXES else axis, dtype=object)
        try:
            vec = vec.astype(np.float64)
        except (TypeError, ValueError):
            vec = np.zeros(0)
        if vec.shape != (3,) or not np.isfinite(vec).all() or np.linalg.norm(vec) == 0:
            raise ParseError(f"axis {axis!r} must be x, y, z or a non-zero [x, y, z]", path, where + "axis")
        joints.append(skeleton.names.index(joint))
        axes.append(vec / np.linalg.norm(vec))
        dof_names.append(str(dof.get("name", f"{joint}_{i}")))
    order = doc.get("root_rot_order", "wxyz")
    if order not in ("wxyz", "xyzw"):
        raise ParseError(f"root_rot_order {order!r}, expected wxyz or xyzw", path, "root_rot_order")
    up = doc.get("up", "z")
    if up not in ("y", "z"):
        raise ParseError(f"up {up!r}, expected y or z", path, "up")
    fps = doc.get("fps")
    if fps is not None and (not isinstance(fps, (int, float)) or fps <= 0):
        raise ParseError(f"fps must be a positive number, got {fps!r}", path, "fps")
    return TrajectorySpec(skeleton, tuple(dof_names), np.array(joints, dtype=np.int64).reshape(-1),
                          np.array(axes).reshape(-1, 3), order, up, doc.get("unit", "m"), fps)


def _read_array(path: Path) -> np.ndarray:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ParseError(f"cannot read file: {exc.strerror}", path) from None
    if size == 0:
        raise ParseError("file is empty", path)
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:
        # numpy raises ValueError both for a pickled object array and for a truncated data block.
        raise ParseError(f"not a plain numeric .npy array or truncated ({exc})", path, "data") from None
    except (OSError, EOFError) as exc:
        raise ParseError(f"cannot read .npy ({exc})", path, "header") from None
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "fiu" or data.ndim != 2:
        raise ParseError(f"expected a 2-D float array [T, 9 + N], got {getattr(data, 'dtype', '?')} "
                         f"{getattr(data, 'shape', '?')}", path, "data")
    return data.astype(np.float64)


def _fps(time: np.ndarray, path: Path, first_row: int) -> float:
    steps = np.diff(time)
    if len(steps) == 0:
        raise ParseError("a one-row clip gives no frame rate; set fps in the spec", path, f"row {first_row}")
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0))
        raise ParseError(f"time does not increase ({time[i]} then {time[i + 1]})", path, f"row {first_row + i + 1}")
    uneven = np.abs(steps / np.median(steps) - 1.0) > 1e-3
    if uneven.any():
        i = int(np.argmax(uneven))
        raise ParseError(f"time step {steps[i]:g} differs from the clip's {np.median(steps):g}; optiq clips need "
                         "a constant frame rate", path, f"row {first_row + i + 1}")
    return snap_fps(1.0 / float(np.mean(steps)))


def load_npy_traj(path: str | os.PathLike, *, spec: str | os.PathLike | None = None, transition: str = "start",
                  **_ignored) -> list[Clip]:
    """Read an NPY trajectory file into one Clip per segment between transition flags (metres, Z up).

    spec: the spec file (default ``<stem>.spec.json`` beside the data). transition: ``"start"`` (a flag of 1
    marks a clip's first row) or ``"end"`` (its last row). Each joint's rotation is the product of its hinge
    dofs in spec order, ``q = q(dof_a) * q(dof_b) * ...`` (intrinsic: later dofs turn about already turned
    axes). Clips are named ``<stem>_<k>``; labels ``source``, ``segment``, ``first_row``.
    """
    path = Path(path)
    spec_path = Path(spec) if spec else default_spec_path(path)
    if not spec_path.is_file():
        raise ParseError(f"no spec file {spec_path.name} beside the data; pass spec=PATH "
                         "(docs/npy-trajectories.md)", path)
    sp = read_spec(spec_path)
    data = _read_array(path)
    n_dofs = len(sp.dof_joints)
    width = 9 + n_dofs
    if data.shape[1] != width:
        raise ParseError(f"{data.shape[1]} columns, expected {width} = 9 + {n_dofs} dofs named in {spec_path.name}",
                         path, "data")
    if len(data) == 0:
        raise ParseError("no rows", path, "data")
    bad = ~np.isfinite(data)
    if bad.any():
        row, col = (int(x) for x in np.argwhere(bad)[0])
        raise ParseError(f"column {col} is {data[row, col]} (expected a finite number)", path, f"row {row}")
    flags = data[:, -1]
    if not np.isin(flags, (0.0, 1.0)).all():
        row = int(np.argmax(~np.isin(flags, (0.0, 1.0))))
        raise ParseError(f"transition flag is {flags[row]:g}, expected 0 or 1", path, f"row {row}")
    if transition not in ("start", "end"):
        raise ParseError(f"transition={transition!r}, expected 'start' or 'end'", path)
    marked = np.flatnonzero(flags == 1.0)
    cuts = marked if transition == "start" else marked + 1
    bounds = np.unique(np.concatenate(([0], cuts, [len(data)])))

    root_rot = data[:, 4:8] if sp.root_rot_order == "wxyz" else data[:, [7, 4, 5, 6]]
    norms = np.linalg.norm(root_rot, axis=-1)
    if np.any(norms < 1e-6):
        raise ParseError("root_rot is a zero quaternion", path, f"row {int(np.argmax(norms < 1e-6))}")
    rotations = quat.identity((len(data), sp.skeleton.num_joints))
    rotations[:, 0] = root_rot / norms[:, None]
    hinge = quat.from_axis_angle(sp.dof_axes, data[:, 8:8 + n_dofs])  # [T, N, 4]
    for k, j in enumerate(sp.dof_joints):
        rotations[:, j] = quat.qmul(rotations[:, j], hinge[:, k])

    try:
        scale, unit_name = length_scale(sp.unit)
    except ValueError as exc:
        raise ParseError(str(exc), spec_path, "unit") from None
    matrix = axis_matrix(sp.up)
    clips = []
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        fps = sp.fps or _fps(data[a:b, 0], path, int(a))
        clip = Clip(sp.skeleton, fps, data[a:b, 1:4], rotations[a:b], name=f"{path.stem}_{k:03d}",
                    labels={"source": path.name, "segment": str(k), "first_row": str(int(a))})
        out = clip.transformed(matrix, scale)
        out.labels["length_unit"] = unit_name
        clips.append(out)
    return clips
