"""Acclaim skeleton (ASF) and motion (AMC) reader.

The ASF gives each bone a rest ``direction`` and ``length`` in world axes, an ``axis`` (the orientation of the
bone's own frame, angles about x, y, z applied in the order the letters name) and its ``dof`` (the AMC's columns
for that bone, in file order). The AMC gives, per frame, the dof values of every bone.

Joints are the root plus one joint per bone, placed at the START of the bone (the end of its parent bone), so a
joint's rest offset is its parent bone's ``direction * length``; the ends of leaf bones become end sites. Acclaim
composes a bone's world rotation as ``R_parent C M C^-1`` with ``C`` the axis rotation and ``M`` the AMC rotation
(rotations about fixed axes, the first dof listed applied first, as the root's ``order`` line is documented).
``C M C^-1`` is therefore the bone's rotation in a world-aligned frame: that is the local rotation stored, so the
rest pose (every AMC value zero) is the local-identity pose with every joint frame world-aligned. The root's
``position`` preset is added to the AMC translation and its ``orientation`` preset plays the part of ``C``.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import quat
from ..axes import LENGTH_UNITS, axis_matrix, guess_units, length_scale, unit_name
from ..clip import Clip
from ..errors import ParseError
from ..skeleton import Skeleton
from .common import read_text

_ROT = ("rx", "ry", "rz")
_TRANS = ("tx", "ty", "tz")
_DOFS = {*_ROT, *_TRANS, "l"}
# Commas and parentheses are whitespace in Acclaim files (``limits (-10.0 170.0)``).
_SEPARATORS = re.compile(r"[(),]")
DEFAULT_FPS = 120.0


@dataclass
class AsfBone:
    """One ASF bone, in the file's units and axes.

    direction: ``[3]`` unit vector (world axes, rest pose). length: file length units. axis: ``[3]`` radians about
    x, y, z. axis_order: the letters of ``axis`` in application order (``"XYZ"``: x first). dofs: the AMC columns
    of the bone (``rx``, ``ry``, ``rz``, ``tx``, ``ty``, ``tz``, ``l``) in file order. parent: the parent's joint
    index (0 = root). line: where the bone's block starts in the ASF.
    """

    name: str
    line: int
    direction: np.ndarray = field(default_factory=lambda: np.zeros(3))
    length: float = 0.0
    axis: np.ndarray = field(default_factory=lambda: np.zeros(3))
    axis_order: str = "XYZ"
    dofs: list[str] = field(default_factory=list)
    parent: int = -1


@dataclass
class Asf:
    """A parsed ASF skeleton. Joint 0 is the root, joint ``i + 1`` the start of ``bones[i]`` (depth-first order
    of ``:hierarchy``, parents before children).

    length_unit: metres per file length unit (``0.0254 / length`` of ``:units``: the Acclaim base unit is the
    inch). angle_unit: radians per file angle unit. root_order: the root's AMC columns (``tx`` ... ``rz``).
    root_axis_order, root_position ``[3]`` (file units), root_orientation ``[3]`` (radians about x, y, z).
    """

    path: Path
    name: str
    length_unit: float
    angle_unit: float
    root_order: list[str]
    root_axis_order: str
    root_position: np.ndarray
    root_orientation: np.ndarray
    bones: list[AsfBone]

    @property
    def names(self) -> tuple[str, ...]:
        return ("root", *(b.name for b in self.bones))

    def skeleton(self) -> Skeleton:
        """The rest skeleton in the file's units and axes (joint = start of its bone)."""
        parents = np.array([-1] + [b.parent for b in self.bones])
        ends = {0: np.zeros(3)} | {i + 1: b.direction * b.length for i, b in enumerate(self.bones)}
        offsets = np.stack([self.root_position] + [ends[b.parent] for b in self.bones])
        has_child = {b.parent for b in self.bones}
        end_sites = {i + 1: ends[i + 1] for i in range(len(self.bones)) if i + 1 not in has_child}
        return Skeleton(self.names, parents, offsets, end_sites)


def _fixed_axes_quat(angles_xyz: np.ndarray, order: str) -> np.ndarray:
    """Quaternions ``[..., 4]`` of rotations about fixed axes: ``angles_xyz [..., 3]`` radians about x, y, z,
    applied in ``order`` (``"XYZ"``: x first, so the matrix is ``Rz Ry Rx``, intrinsic ``"ZYX"``)."""
    rev = order[::-1].upper()
    return quat.from_euler(angles_xyz[..., ["XYZ".index(c) for c in rev]], rev)


def _full_order(letters: str) -> str:
    """The rotation letters of a dof list completed to three: an axis without a dof has angle zero, so where it
    goes in the order does not matter."""
    return letters + "".join(c for c in "XYZ" if c not in letters)


# --- ASF --------------------------------------------------------------------------------------------------


def _numbers(tok: list[str], n: int, what: str, path: Path, lineno: int) -> np.ndarray:
    try:
        vals = np.array([float(t) for t in tok[:n]])
    except ValueError:
        vals = np.array([])
    if vals.shape != (n,) or not np.all(np.isfinite(vals)):
        raise ParseError(f"{what} needs {n} finite number(s), got {' '.join(tok) or 'nothing'}", path,
                         f"line {lineno}")
    return vals


def _axis_order(token: str, path: Path, lineno: int) -> str:
    order = token.upper()
    if sorted(order) != ["X", "Y", "Z"]:
        raise ParseError(f"unknown axis order {token!r}; expected three letters of XYZ such as XYZ", path,
                         f"line {lineno}")
    return order


def _dof_list(tok: list[str], allowed: set[str], path: Path, lineno: int) -> list[str]:
    dofs = [t.lower() for t in tok]
    bad = [t for t, d in zip(tok, dofs, strict=True) if d not in allowed]
    if bad:
        raise ParseError(f"unknown degree of freedom {bad[0]!r}; expected {', '.join(sorted(allowed))}", path,
                         f"line {lineno}")
    if len(set(dofs)) != len(dofs):
        raise ParseError(f"a degree of freedom is listed twice: {' '.join(tok)}", path, f"line {lineno}")
    return dofs


def load_asf(path: str | os.PathLike) -> Asf:
    """Parse an Acclaim skeleton file (units, root, bone data, hierarchy). Raises ParseError naming the line."""
    path = Path(path)
    text = read_text(path, "skeleton file")
    state = {"name": path.stem, "length": 1.0, "angle": np.pi / 180.0, "order": ["tx", "ty", "tz", "rx", "ry", "rz"],
             "axis": "XYZ", "position": np.zeros(3), "orientation": np.zeros(3)}
    bones: list[AsfBone] = []
    hierarchy: list[tuple[int, list[str]]] = []
    section = ""
    bone: AsfBone | None = None
    for i, line in enumerate(text.splitlines()):
        lineno = i + 1
        tok = _SEPARATORS.sub(" ", line.split("#", 1)[0]).split()
        if not tok:
            continue
        key = tok[0].lower()
        if key.startswith(":"):
            section = key
            if key == ":name" and len(tok) > 1:
                state["name"] = " ".join(tok[1:])
            continue
        if section == ":units":
            _units_line(tok, state, path, lineno)
        elif section == ":root":
            _root_line(tok, state, path, lineno)
        elif section == ":bonedata":
            bone = _bone_line(tok, bone, bones, path, lineno)
        elif section == ":hierarchy" and key not in ("begin", "end"):
            hierarchy.append((lineno, tok))
    if bone is not None:
        raise ParseError(f"bone {bone.name!r} has no 'end'", path, f"line {bone.line}")
    if not bones:
        raise ParseError("no bones in :bonedata", path)
    # Angles may come before the :units line that says "rad"; convert once the whole file is read.
    for b in bones:
        b.axis = b.axis * state["angle"]
    ordered = _order_bones(bones, hierarchy, path)
    return Asf(path, state["name"], LENGTH_UNITS["inch"] / state["length"], state["angle"], state["order"],
               state["axis"], state["position"], state["orientation"] * state["angle"], ordered)


def _units_line(tok: list[str], state: dict, path: Path, lineno: int) -> None:
    key = tok[0].lower()
    if key == "length":
        state["length"] = float(_numbers(tok[1:], 1, "length", path, lineno)[0])
        if state["length"] <= 0:
            raise ParseError(f"length unit must be positive, got {tok[1]}", path, f"line {lineno}")
    elif key == "angle":
        unit = tok[1].lower() if len(tok) > 1 else ""
        if unit not in ("deg", "rad"):
            raise ParseError(f"angle unit {unit or 'missing'!r}; expected deg or rad", path, f"line {lineno}")
        state["angle"] = np.pi / 180.0 if unit == "deg" else 1.0


def _root_line(tok: list[str], state: dict, path: Path, lineno: int) -> None:
    key = tok[0].lower()
    if key == "order":
        state["order"] = _dof_list(tok[1:], {*_ROT, *_TRANS}, path, lineno)
    elif key == "axis":
        state["axis"] = _axis_order(tok[1] if len(tok) > 1 else "", path, lineno)
    elif key == "position":
        state["position"] = _numbers(tok[1:], 3, "position", path, lineno)
    elif key == "orientation":
        state["orientation"] = _numbers(tok[1:], 3, "orientation", path, lineno)


def _bone_line(tok: list[str], bone: AsfBone | None, bones: list[AsfBone], path: Path, lineno: int) -> AsfBone | None:
    key = tok[0].lower()
    where = f"line {lineno}"
    if key == "begin":
        if bone is not None:
            raise ParseError(f"'begin' inside bone {bone.name!r} (missing 'end')", path, where)
        return AsfBone("", lineno)
    if bone is None:
        raise ParseError(f"{tok[0]!r} outside a begin/end bone block", path, where)
    if key == "end":
        if not bone.name:
            raise ParseError("bone without a name", path, f"line {bone.line}")
        if bone.name == "root":
            raise ParseError("a bone named 'root': the name is reserved for the :root section", path,
                             f"line {bone.line}")
        if any(b.name == bone.name for b in bones):
            raise ParseError(f"bone name {bone.name!r} is used twice", path, f"line {bone.line}")
        bones.append(bone)
        return None
    if key == "name":
        bone.name = tok[1] if len(tok) > 1 else ""
    elif key == "direction":
        d = _numbers(tok[1:], 3, "direction", path, lineno)
        n = np.linalg.norm(d)
        # A zero direction is legal for a zero-length bone; otherwise normalise the printed digits.
        bone.direction = d / n if n > 0 else d
    elif key == "length":
        bone.length = float(_numbers(tok[1:], 1, "length", path, lineno)[0])
    elif key == "axis":
        bone.axis = _numbers(tok[1:], 3, "axis", path, lineno)
        bone.axis_order = _axis_order(tok[4] if len(tok) > 4 else "XYZ", path, lineno)
    elif key == "dof":
        bone.dofs = _dof_list(tok[1:], _DOFS, path, lineno)
    return bone


def _order_bones(bones: list[AsfBone], hierarchy: list[tuple[int, list[str]]], path: Path) -> list[AsfBone]:
    """Bones in depth-first order of the hierarchy, each with its parent's joint index."""
    by_name = {b.name: b for b in bones}
    children: dict[str, list[str]] = {}
    for lineno, names in hierarchy:
        for name in names:
            if name != "root" and name not in by_name:
                raise ParseError(f":hierarchy names bone {name!r}, which :bonedata does not define", path,
                                 f"line {lineno}")
        children.setdefault(names[0], []).extend(names[1:])
    ordered: list[AsfBone] = []
    stack = [(name, 0) for name in reversed(children.get("root", []))]
    seen: set[str] = set()
    while stack:
        name, parent = stack.pop()
        if name in seen:
            raise ParseError(f"bone {name!r} has two parents in :hierarchy", path)
        seen.add(name)
        bone = by_name[name]
        bone.parent = parent
        ordered.append(bone)
        stack.extend((c, len(ordered)) for c in reversed(children.get(name, [])))
    missing = [b.name for b in bones if b.name not in seen]
    if missing:
        raise ParseError(f"bones not reachable from root in :hierarchy: {', '.join(missing)}", path)
    return ordered


# --- AMC --------------------------------------------------------------------------------------------------


def find_asf(amc: Path) -> Path:
    """The skeleton beside ``amc``: the .asf of the same stem, else the one .asf whose stem starts the AMC's stem
    (``02.asf`` for ``02_01.amc``), else the only .asf in the folder."""
    asfs = sorted(p for p in amc.parent.iterdir() if p.suffix.lower() == ".asf" and p.is_file())
    for rule in (lambda s: s == amc.stem, lambda s: amc.stem.startswith(s), lambda s: True):
        hits = [p for p in asfs if rule(p.stem)]
        if len(hits) == 1:
            return hits[0]
    found = ", ".join(p.name for p in asfs) or "none"
    raise ParseError(f"cannot tell which skeleton (.asf) belongs to this motion (.asf files beside it: {found}); "
                     "pass asf=PATH", amc)


@dataclass
class _Motion:
    n_frames: int
    values: dict[str, np.ndarray]  # bone name -> [T, n_dofs] file units, for bones with dofs
    degrees: bool | None  # the AMC's :DEGREES / :RADIANS header, None when absent


def _parse_amc(text: str, dof_counts: dict[str, int], path: Path) -> _Motion:
    """Per-bone value arrays ``{bone: [T, dofs]}``: the vectorised reading of a regular file, else the line by
    line reading, which also names the place of any defect."""
    return _parse_amc_regular(text, dof_counts) or _parse_amc_lines(text, dof_counts, path)


_AMC_NAME = re.compile(r"(?m)^[ \t]*([A-Za-z_]\S*)")


def _parse_amc_regular(text: str, dof_counts: dict[str, int]) -> _Motion | None:
    """The common case in one pass over tokens: every frame lists the same bones in the same order, frame numbers
    count up by one, no comments after the header. None when the file is not that regular (or has a defect)."""
    degrees: bool | None = None
    pos = 0
    while True:  # header lines (":FULLY-SPECIFIED", ":DEGREES", "# comments") until the first frame number
        end = text.find("\n", pos)
        line = text[pos:] if end < 0 else text[pos:end]
        head = line.split("#", 1)[0].strip()
        if head.isdigit():
            break
        if head.upper() in (":DEGREES", ":RADIANS"):
            degrees = head.upper() == ":DEGREES"
        elif head and not head.startswith(":"):
            return None
        if end < 0:
            return None
        pos = end + 1
    body = text[pos:]
    if "#" in body or ":" in body:
        return None
    # Bone names start their lines; everything else is a number (frame numbers included).
    names = _AMC_NAME.findall(body)
    order: list[str] = []
    for name in names:
        if name in order:
            break
        order.append(name)
    expected = {name for name, n in dof_counts.items() if n}
    if not order or not expected <= set(order) or any(n not in dof_counts for n in order):
        return None
    n_frames, rest = divmod(len(names), len(order))
    if rest or names != order * n_frames:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            nums = np.fromstring(_AMC_NAME.sub(" ", body), sep=" ")
        except ValueError:
            return None
    width = 1 + sum(dof_counts[n] for n in order)
    if nums.size != n_frames * width or not np.all(np.isfinite(nums)):
        return None
    grid = nums.reshape(n_frames, width)
    if not np.array_equal(grid[:, 0], grid[0, 0] + np.arange(n_frames)):
        return None
    values, col = {}, 1
    for name in order:
        n = dof_counts[name]
        if n:
            values[name] = grid[:, col: col + n].copy()
        col += n
    return _Motion(len(grid), values, degrees)


def _parse_amc_lines(text: str, dof_counts: dict[str, int], path: Path) -> _Motion:
    """Per-bone value arrays, line by line in Python (irregular files, and the place of a defect); the numbers of
    each bone are converted in one call."""
    rows: dict[str, list[list[str]]] = {name: [] for name in dof_counts}
    row_lines: dict[str, list[int]] = {name: [] for name in dof_counts}
    expected = {name for name, n in dof_counts.items() if n}
    degrees: bool | None = None
    frame: int | None = None  # the current frame's number as the file writes it
    frame_line = 0
    n_frames = 0
    seen: set[str] = set()

    def check_complete() -> None:
        missing = sorted(expected - seen)
        if frame is not None and missing:
            raise ParseError(f"frame {frame} lacks bone(s) {', '.join(missing)} (the file may be truncated)",
                             path, f"line {frame_line}, frame {frame}")

    lines = text.splitlines()
    for i, line in enumerate(lines):
        lineno = i + 1
        tok = line.split("#", 1)[0].split()
        if not tok:
            continue
        head = tok[0]
        if head.startswith(":"):
            if frame is not None:
                raise ParseError(f"header {head!r} after the first frame", path, f"line {lineno}")
            if head.upper() in (":DEGREES", ":RADIANS"):
                degrees = head.upper() == ":DEGREES"
            continue
        if len(tok) == 1 and head.isdigit():
            check_complete()
            if frame is not None and int(head) != frame + 1:
                raise ParseError(f"frame number {head}, expected {frame + 1}", path, f"line {lineno}")
            frame, frame_line, seen = int(head), lineno, set()
            n_frames += 1
            continue
        where = f"line {lineno}, frame {frame}"
        if frame is None:
            raise ParseError(f"{head!r} before the first frame number", path, f"line {lineno}")
        n = dof_counts.get(head)
        if n is None:
            raise ParseError(f"unknown bone {head!r}; the skeleton has {', '.join(dof_counts)}", path, where)
        if len(tok) - 1 != n:
            raise ParseError(f"bone {head!r} has {len(tok) - 1} values, expected {n} (one per dof)", path, where)
        if head in seen:
            raise ParseError(f"bone {head!r} appears twice in frame {frame}", path, where)
        seen.add(head)
        rows[head].append(tok[1:])
        row_lines[head].append(lineno)
    if frame is None:
        raise ParseError("no frames (expected a frame number line followed by one line per bone)", path,
                         f"line {len(lines)}")
    check_complete()
    values = {name: _to_array(rows[name], row_lines[name], n, name, path) for name, n in dof_counts.items() if n}
    return _Motion(n_frames, values, degrees)


def _to_array(rows: list[list[str]], linenos: list[int], n: int, bone: str, path: Path) -> np.ndarray:
    try:
        arr = np.array(rows, dtype=np.float64).reshape(len(rows), n)
    except ValueError:
        arr = None
    if arr is not None and np.all(np.isfinite(arr)):
        return arr
    for row, lineno in zip(rows, linenos, strict=True):  # slow path, only for a broken file: name the first bad value
        for t in row:
            try:
                ok = np.isfinite(float(t))
            except ValueError:
                ok = False
            if not ok:
                raise ParseError(f"bone {bone!r}: {t!r} is not a finite number", path, f"line {lineno}")
    raise AssertionError("unreachable: a row failed to convert but every value is finite")


def _bone_rotations(asf: Asf, motion: _Motion, angle: float, n_frames: int) -> np.ndarray:
    """Local rotations ``[T, J, 4]`` of every joint (world-aligned frames): ``C M C^-1`` per bone, one Euler
    conversion per distinct dof order."""
    rot = quat.identity((n_frames, len(asf.bones) + 1))
    groups: dict[str, list[tuple[int, np.ndarray]]] = {}
    entries = [(0, asf.root_order, asf.root_axis_order, asf.root_orientation, motion.values.get("root"))]
    entries += [(j + 1, b.dofs, b.axis_order, b.axis, motion.values.get(b.name)) for j, b in enumerate(asf.bones)]
    axes_c = np.empty((len(entries), 4))
    for j, dofs, axis_order, axis_angles, vals in entries:
        axes_c[j] = _fixed_axes_quat(axis_angles, axis_order)
        cols = [k for k, d in enumerate(dofs) if d in _ROT]
        if not cols:
            continue
        letters = "".join(dofs[k][1].upper() for k in cols)
        xyz = np.zeros((n_frames, 3))
        xyz[:, ["XYZ".index(c) for c in letters]] = vals[:, cols] * angle
        groups.setdefault(_full_order(letters), []).append((j, xyz))
    for order, items in groups.items():
        idx = [j for j, _ in items]
        m = _fixed_axes_quat(np.stack([x for _, x in items], axis=1), order)  # [T, Jk, 4]
        c = axes_c[idx]
        rot[:, idx] = quat.qmul(quat.qmul(c, m), quat.conj(c))
    return rot


def _root_translation(asf: Asf, motion: _Motion, n_frames: int) -> np.ndarray:
    out = np.broadcast_to(asf.root_position, (n_frames, 3)).copy()
    vals = motion.values.get("root")
    for k, d in enumerate(asf.root_order):
        if d in _TRANS:
            out[:, _TRANS.index(d)] += vals[:, k]
    return out


def _bone_translations(asf: Asf, motion: _Motion, skeleton: Skeleton, n_frames: int) -> np.ndarray | None:
    """Per-frame local translations ``[T, J, 3]`` when a bone has translation dofs (``tx ty tz`` in the bone's
    axis frame, ``l`` along the bone): they move the bone's end, so its children's offsets; else None."""
    moving = [(j + 1, b) for j, b in enumerate(asf.bones) if any(d in (*_TRANS, "l") for d in b.dofs)]
    if not moving:
        return None
    local = np.broadcast_to(skeleton.offsets, (n_frames, skeleton.num_joints, 3)).copy()
    for j, b in moving:
        vals = motion.values[b.name]
        shift = np.zeros((n_frames, 3))
        for k, d in enumerate(b.dofs):
            if d in _TRANS:
                shift[:, _TRANS.index(d)] += vals[:, k]
        shift = quat.rotate(_fixed_axes_quat(b.axis, b.axis_order), shift)
        if "l" in b.dofs:
            shift += vals[:, [b.dofs.index("l")]] * b.direction
        kids = [c for c, bb in enumerate(asf.bones, start=1) if bb.parent == j]
        local[:, kids] += shift[:, None]
    return local


def load_amc(path: str | os.PathLike, *, asf: str | os.PathLike | None = None, unit: str | float = "asf",
             up: str = "y", fps: float = DEFAULT_FPS, **_ignored) -> list[Clip]:
    """Read an Acclaim motion (.amc) with its skeleton (.asf) into one Clip (metres, Z up).

    Joints: ``root`` plus one per ASF bone, each at the start of its bone (31 for a CMU skeleton).
    asf: the skeleton file; by default found beside the AMC (see ``find_asf``). unit: the length unit, ``"asf"``
    (from the ASF ``:units length``: 1 unit = 1/length inch, 0.056444 m for CMU's ``length 0.45``), a name of
    ``optiq.axes.LENGTH_UNITS`` or metres per unit. up: the file's up axis, ``"y"`` (Acclaim's convention),
    ``"z"`` or ``"auto"``. fps: the frame rate, which AMC files do not record; 120 by default, the rate of the
    CMU database. Angles are degrees unless the AMC says ``:RADIANS`` (or, without a header, the ASF says rad).
    Returns ``[clip]`` with rotations ``[T, J, 4]`` wxyz and root translation ``[T, 3]`` metres.
    """
    path = Path(path)
    text = read_text(path)
    if asf is None:
        asf_path = find_asf(path)
    else:
        asf_path = Path(asf)
        if not asf_path.is_file():
            raise ParseError(f"skeleton file {asf_path} does not exist (asf=)", path)
    skel = load_asf(asf_path)
    if not np.isfinite(fps) or fps <= 0:
        raise ParseError(f"fps must be positive, got {fps}", path)
    dof_counts = {"root": len(skel.root_order)} | {b.name: len(b.dofs) for b in skel.bones}
    motion = _parse_amc(text, dof_counts, path)
    n_frames = motion.n_frames
    degrees = motion.degrees if motion.degrees is not None else skel.angle_unit != 1.0
    angle = np.pi / 180.0 if degrees else 1.0

    skeleton = skel.skeleton()
    clip = Clip(skeleton, fps, _root_translation(skel, motion, n_frames), _bone_rotations(skel, motion, angle, n_frames),
                _bone_translations(skel, motion, skeleton, n_frames), name=path.stem,
                labels={"source": path.name, "skeleton": asf_path.name})
    return [_convert_units(clip, skel, unit, up, path)]


def _convert_units(clip: Clip, skel: Asf, unit: str | float, up: str, path: Path) -> Clip:
    try:
        # "auto" needs no guess here: the ASF states its unit.
        if isinstance(unit, str) and unit.lower() in ("asf", "auto"):
            # Named as length_scale names a number (or "cmu" for CMU's `length 0.45`), so writers can reuse it.
            scale = skel.length_unit
            name = unit_name(scale)
        else:
            scale, name = length_scale(unit)
        up = guess_units(clip, scale, up, path=path)[0]
    except ValueError as exc:  # from unit= or up=: load_asf has checked the ASF's own unit
        raise ParseError(str(exc), path) from None
    out = clip.transformed(axis_matrix(up), scale)
    out.labels["length_unit"] = name
    out.labels["up"] = up
    return out
