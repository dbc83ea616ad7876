"""The DeepMimic humanoid as MuJoCo: read a DeepMimic character file and generate its MJCF.

A character file (``humanoid3d.txt``) holds ``Skeleton.Joints`` (tree, types, attach points and rotations,
limits, torque limits), ``BodyDefs`` (one collision shape per joint: shape, mass, attach point, sizes) and
``DrawShapeDefs`` (shapes drawn only). Sizes follow DeepMimic's ``cShape``: a sphere's ``Param0`` is its
diameter, a capsule's ``Param0`` its diameter and ``Param1`` the length of its cylinder (along the shape's Y),
a box's ``Param0..2`` its full extents. The file is Y up; the MJCF is Z up through the same axis change as the
DeepMimic loader (``optiq.axes.Y_UP_TO_Z_UP``), with every body frame world-aligned in the rest pose, so a
DeepMimic clip's local rotations are the ball joints' quaternions as they are.

The built-in character ``deepmimic`` is ``data/deepmimic_humanoid.json``: the numbers of ``humanoid3d.txt`` and
of DeepMimic's PD controller (``humanoid3d_ctrl.txt``) in optiq's own words, written by ``write_builtin_data``.
"""

from __future__ import annotations

import json
import os
import warnings
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from optiq import quat
from optiq.axes import Y_UP_TO_Z_UP
from optiq.errors import OptiqWarning, ParseError

from .base import Character
from .mjcf import (
    BODY_CONTACT,
    VISUAL,
    add_custom,
    add_motor,
    fmt,
    insert_before_bodies,
    new_scene,
    stand_on_ground,
)

DATA_PATH = Path(__file__).with_name("data") / "deepmimic_humanoid.json"

#: DeepMimic's PD gains (kp N m/rad, kd N m s/rad) by joint group, from its humanoid3d controller file
#: (``data/controllers/humanoid3d_ctrl.txt``, ``PDControllers``); a joint's group is its name without ``left_`` /
#: ``right_``.
DEEPMIMIC_GAINS = {"chest": (1000.0, 100.0), "neck": (100.0, 10.0), "hip": (500.0, 50.0), "knee": (500.0, 50.0),
                   "ankle": (400.0, 40.0), "shoulder": (400.0, 40.0), "elbow": (300.0, 30.0)}
_TYPES = {"none": "root", "spherical": "ball", "revolute": "hinge", "fixed": "fixed"}
_SHAPES = ("sphere", "capsule", "box")


@dataclass
class JointDef:
    """One joint, in the file's frame (Y up, metres, radians). type: root, ball, hinge or fixed. offset: attach
    point in the parent joint's frame. rotation: attach rotation, Euler (x, y, z) applied as Rz Ry Rx. limits:
    ``[[low, high]]`` per axis (x, y, z for a ball joint, the hinge's Z for a hinge). torque_limit: N m. gains:
    ``[kp, kd]``."""

    name: str
    type: str
    parent: int
    offset: list[float]
    rotation: list[float]
    limits: list[list[float]]
    torque_limit: float
    gains: list[float]
    end_effector: bool = False


@dataclass
class ShapeDef:
    """A shape attached to joint ``joint``: sphere, capsule or box; offset and rotation in the joint's frame;
    size as DeepMimic's Param0..2 (see the module docstring). mass in kg (None: drawn only, no mass)."""

    name: str
    joint: int
    shape: str
    offset: list[float]
    rotation: list[float]
    size: list[float]
    mass: float | None = None
    fall_contact: bool = False


@dataclass
class HumanoidDef:
    """A DeepMimic character: joints (parents first), collision bodies (one per joint), drawn shapes."""

    name: str
    source: str
    joints: list[JointDef]
    bodies: list[ShapeDef]
    visuals: list[ShapeDef]

    def to_json(self) -> dict:
        return {"format": "optiq-deepmimic-humanoid", "version": 1, "units": "metres, kilograms, radians, N m",
                "axes": "DeepMimic's: Y up; converted to Z up when the MJCF is built", **asdict(self)}

    @classmethod
    def from_json(cls, doc: dict) -> HumanoidDef:
        return cls(doc["name"], doc["source"], [JointDef(**j) for j in doc["joints"]],
                   [ShapeDef(**b) for b in doc["bodies"]], [ShapeDef(**v) for v in doc["visuals"]])


# --- reading a character file --------------------------------------------------------------------------------
def read_character_file(path: str | os.PathLike, gains: dict[str, tuple[float, float]] | None = None) -> HumanoidDef:
    """Parse a DeepMimic character file.

    gains: ``{joint group or joint name: (kp, kd)}``; default DeepMimic's (``DEEPMIMIC_GAINS``). A joint with
    neither its name nor its group there gets ``kp = 2.5 x its torque limit``, ``kd = kp / 10``, with a warning.
    """
    path = Path(path)
    if not path.is_file():
        raise ParseError("character file does not exist" if not path.exists() else "is not a file", path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParseError(f"expected a DeepMimic character file (JSON): {exc}", path) from None
    joints_doc = doc.get("Skeleton", {}).get("Joints") if isinstance(doc, dict) else None
    if not isinstance(joints_doc, list) or not joints_doc:
        raise ParseError("expected a character file with a non-empty Skeleton.Joints list", path, "Skeleton.Joints")
    table = {**DEEPMIMIC_GAINS, **(gains or {})}
    joints = [_joint(j, i, path, table) for i, j in enumerate(joints_doc)]
    guessed = [j.name for j in joints if j.type in ("ball", "hinge") and _group(j.name) not in table
               and j.name not in table]
    if guessed:
        warnings.warn(f"{path}: no PD gains for joint(s) {', '.join(guessed)}; using kp = 2.5 x torque limit, "
                      "kd = kp / 10 (pass gains= to set them)", OptiqWarning, stacklevel=2)
    bodies = [_shape(b, i, path, "BodyDefs", len(joints)) for i, b in enumerate(_list(doc, "BodyDefs", path))]
    owners = sorted(b.joint for b in bodies)
    if owners != list(range(len(joints))):
        raise ParseError(f"expected one body per joint ({len(joints)}), got bodies on joints {owners}", path,
                         "BodyDefs")
    bodies.sort(key=lambda b: b.joint)
    body_keys = {(b.joint, b.shape, tuple(b.offset), tuple(b.size)) for b in bodies}
    drawn = [_shape(d, i, path, "DrawShapeDefs", len(joints), drawn=True)
             for i, d in enumerate(doc.get("DrawShapeDefs", []))]
    visuals = [v for v in drawn if (v.joint, v.shape, tuple(v.offset), tuple(v.size)) not in body_keys]
    return HumanoidDef(path.stem, os.fspath(path), joints, bodies, visuals)


def _list(doc: dict, key: str, path: Path) -> list:
    items = doc.get(key)
    if not isinstance(items, list) or not items:
        raise ParseError(f"expected a non-empty {key} list", path, key)
    return items


def _group(name: str) -> str:
    for side in ("left_", "right_"):
        if name.startswith(side):
            return name[len(side):]
    return name


def _number(d: dict, key: str, path: Path, where: str, default: float | None = None) -> float:
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ParseError(f"{key} must be a number, got {value!r}", path, where)
    return float(value)


def _joint(j: object, i: int, path: Path, gains: dict) -> JointDef:
    where = f"Skeleton.Joints[{i}]"
    if not isinstance(j, dict):
        raise ParseError("expected a joint object", path, where)
    kind = _TYPES.get(str(j.get("Type")))
    if kind is None or (kind == "root") != (i == 0):
        raise ParseError(f"Type {j.get('Type')!r}: expected " + ("'none' (the root)" if i == 0 else
                         "spherical, revolute or fixed"), path, where)
    parent = j.get("Parent")
    if not (parent == -1 if i == 0 else isinstance(parent, int) and 0 <= parent < i):
        raise ParseError(f"Parent {parent!r} must be " + ("-1" if i == 0 else "the ID of an earlier joint"), path, where)
    axes = {"ball": 3, "hinge": 1}.get(kind, 0)
    limits = [[_number(j, f"LimLow{a}", path, where), _number(j, f"LimHigh{a}", path, where)] for a in range(axes)]
    torque = _number(j, "TorqueLim", path, where, 0.0)
    if axes and torque <= 0:
        raise ParseError(f"TorqueLim must be positive for a {j['Type']} joint, got {torque:g}", path, where)
    name = str(j.get("Name", f"joint{i}"))
    kp, kd = gains.get(name, gains.get(_group(name), (2.5 * torque, 0.25 * torque)))
    return JointDef(name, kind, -1 if i == 0 else parent,
                    [0.0, 0.0, 0.0] if i == 0 else [_number(j, f"Attach{a}", path, where, 0.0) for a in "XYZ"],
                    [_number(j, f"AttachTheta{a}", path, where, 0.0) for a in "XYZ"], limits, torque,
                    [float(kp), float(kd)] if axes else [0.0, 0.0], bool(j.get("IsEndEffector", 0)))


def _shape(b: object, i: int, path: Path, key: str, num_joints: int, drawn: bool = False) -> ShapeDef:
    where = f"{key}[{i}]"
    if not isinstance(b, dict):
        raise ParseError("expected a shape object", path, where)
    shape = str(b.get("Shape"))
    if shape not in _SHAPES:
        raise ParseError(f"Shape {shape!r}: expected one of {', '.join(_SHAPES)}", path, where)
    joint = b.get("ParentJoint" if drawn else "ID")
    if not isinstance(joint, int) or not 0 <= joint < num_joints:
        raise ParseError(f"{'ParentJoint' if drawn else 'ID'} {joint!r} is not a joint ID", path, where)
    size = [_number(b, f"Param{a}", path, where) for a in range(3)]
    if min(size[: {"sphere": 1, "capsule": 2, "box": 3}[shape]]) <= 0:
        raise ParseError(f"{shape} sizes must be positive, got {size}", path, where)
    mass = None if drawn else _number(b, "Mass", path, where)
    if mass is not None and mass <= 0:
        raise ParseError(f"Mass must be positive, got {mass:g}", path, where)
    return ShapeDef(str(b.get("Name", f"shape{i}")), joint, shape,
                    [_number(b, f"Attach{a}", path, where, 0.0) for a in "XYZ"],
                    [_number(b, f"AttachTheta{a}", path, where, 0.0) for a in "XYZ"], size, mass,
                    bool(b.get("EnableFallContact", 0)))


# --- building the MJCF -----------------------------------------------------------------------------------------
def _rot(euler_xyz: list[float]) -> np.ndarray:
    """DeepMimic's attach rotation (``cMathUtil::RotateMat(euler)``: Rz Ry Rx) as a quaternion wxyz."""
    x, y, z = euler_xyz
    return quat.from_euler(np.array([z, y, x]), "ZYX")


def _to_z_up(v: np.ndarray) -> np.ndarray:
    return Y_UP_TO_Z_UP @ np.asarray(v, dtype=np.float64)


def build_character(spec: HumanoidDef, name: str | None = None) -> Character:
    """The MJCF of a DeepMimic character and its Character (gains, torque limits, joint names)."""
    name = name or spec.name
    scene, world = new_scene(name)
    rest = []  # rest rotation of each joint frame (file axes): attach rotations down the chain
    bodies: list[ET.Element] = []
    actuators = ET.Element("actuator")
    kp, kd, limits = [], [], []
    for i, j in enumerate(spec.joints):
        rest.append(_rot(j.rotation) if i == 0 else quat.qmul(rest[j.parent], _rot(j.rotation)))
        parent = world if i == 0 else bodies[j.parent]
        offset = np.zeros(3) if i == 0 else quat.rotate(rest[j.parent], np.array(j.offset))
        body = ET.SubElement(parent, "body", name=j.name, pos=fmt(_to_z_up(offset)))
        bodies.append(body)
        if j.type == "root":
            ET.SubElement(body, "freejoint", name=j.name)
        elif j.type == "ball":
            reach = max(abs(v) for pair in j.limits for v in pair)
            ET.SubElement(body, "joint", name=j.name, type="ball", range=fmt([0.0, min(reach, np.pi)]))
            for a, axis in enumerate(np.eye(3)):
                add_motor(actuators, f"{j.name}_{'xyz'[a]}", j.name, j.torque_limit, axis)
        elif j.type == "hinge":
            axis = _to_z_up(quat.rotate(rest[i], np.array([0.0, 0.0, 1.0])))
            ET.SubElement(body, "joint", name=j.name, type="hinge", axis=fmt(axis), range=fmt(j.limits[0]))
            add_motor(actuators, j.name, j.name, j.torque_limit, None)
        dofs = {"ball": 3, "hinge": 1}.get(j.type, 0)
        kp += [j.gains[0]] * dofs
        kd += [j.gains[1]] * dofs
        limits += [j.torque_limit] * dofs
    for shape in spec.bodies:
        _add_geom(bodies[shape.joint], shape, rest[shape.joint], BODY_CONTACT)
    for shape in spec.visuals:
        _add_geom(bodies[shape.joint], shape, rest[shape.joint], VISUAL)
    scene.append(actuators)
    fall = tuple(spec.joints[b.joint].name for b in spec.bodies if b.fall_contact)
    # DeepMimic's characters face their file's +x (the reference direction of cKinTree::CalcHeading): +y here.
    ahead = _to_z_up(np.array([1.0, 0.0, 0.0]))
    forward = float(np.arctan2(ahead[1], ahead[0]))
    add_custom(scene, [j.name for j in spec.joints], np.array(kp), np.array(kd), fall, forward)
    xml = stand_on_ground(scene, bodies[0])
    return Character(name, xml, tuple(j.name for j in spec.joints), kp, kd, limits, fall_bodies=fall,
                     source=spec.source, forward=forward)


def _add_geom(body: ET.Element, shape: ShapeDef, rest: np.ndarray, contact: dict) -> None:
    """One shape in ``body`` (a world-aligned frame): DeepMimic's shape frame is the joint frame (``rest``) moved
    by the shape's attach point and rotation."""
    frame = quat.qmul(rest, _rot(shape.rotation))
    centre = _to_z_up(quat.rotate(rest, np.array(shape.offset)))
    attrs = {"name": shape.name, "type": shape.shape, **contact}
    if shape.mass is not None:
        attrs["mass"] = fmt(shape.mass)
    if shape.shape == "sphere":
        attrs.update(pos=fmt(centre), size=fmt(shape.size[0] / 2))
    elif shape.shape == "capsule":
        half = _to_z_up(quat.rotate(frame, np.array([0.0, shape.size[1] / 2, 0.0])))
        attrs.update(fromto=fmt(np.concatenate((centre - half, centre + half))), size=fmt(shape.size[0] / 2))
    else:
        # The box's own axes are the shape frame's, seen in Z-up coordinates: rotation Y_UP_TO_Z_UP @ R(frame).
        attrs.update(pos=fmt(centre), size=fmt(np.array(shape.size) / 2),
                     quat=fmt(quat.from_matrix(Y_UP_TO_Z_UP @ quat.to_matrix(frame))))
    insert_before_bodies(body, ET.Element("geom", attrs))


def deepmimic_character(path: str | os.PathLike, gains: dict[str, tuple[float, float]] | None = None) -> Character:
    """A Character from a DeepMimic character file (see ``read_character_file`` for ``gains``)."""
    return build_character(read_character_file(path, gains))


def builtin_deepmimic() -> Character:
    """The built-in ``deepmimic`` character: DeepMimic's humanoid3d from optiq's data file."""
    spec = HumanoidDef.from_json(json.loads(DATA_PATH.read_text(encoding="utf-8")))
    return build_character(spec, name="deepmimic")


def write_builtin_data(character_file: str | os.PathLike, out: str | os.PathLike = DATA_PATH) -> Path:
    """Write the built-in character's data file from a DeepMimic character file (run once, when the data file
    was made: ``python -c "from optiq_rl.characters.deepmimic import write_builtin_data as w;
    w('../shared/data/deepmimic/humanoid3d_character.txt')"``)."""
    from optiq.atomic import atomic_text

    spec = read_character_file(character_file)
    spec.name = "deepmimic"
    spec.source = ("DeepMimic humanoid3d (xbpeng/DeepMimic, MIT: data/characters/humanoid3d.txt); PD gains from "
                   "data/controllers/humanoid3d_ctrl.txt")
    with atomic_text(out, suffixes=(".json",)) as fh:
        json.dump(spec.to_json(), fh, indent=1)
        fh.write("\n")
    return Path(out)
