"""FBX writer: a clip's skeleton and animation as binary FBX 7.4 (``optiq.save_clip(clip, "x.fbx")``).

What the file holds: one LimbNode Model (with its LimbNode NodeAttribute) per joint, parented as the skeleton,
``Lcl Translation`` = the joint's rest offset and ``Lcl Rotation`` = 0, so the file's rest pose is optiq's (rest
frames world-aligned, no pre-rotations); one AnimationStack named after the clip with one AnimationLayer; per joint
an ``R`` curve node (Euler XYZ degrees, FBX ``RotationOrder`` 0, i.e. ``Rz @ Ry @ Rx``) and a ``T`` curve node for
the root and for every joint when the clip has per-frame local translations; one linear key per frame. End sites
are not written (FBX has no such record; exporters add leaf bones, which would change the joint count on reload).

Axes and unit: by default Y up and centimetres (``UpAxis`` 1, ``UnitScaleFactor`` 1), what Maya, MotionBuilder,
Mixamo and three.js expect, front +Z (optiq's +X, as ``optiq.axes.Y_UP_TO_Z_UP`` maps it); ``up="z"`` writes
optiq's own axes (right +Y, up +Z, front +X: the file's coordinates are optiq's). ``unit``: any
``optiq.axes.LENGTH_UNITS`` name or metres per unit (``UnitScaleFactor`` = centimetres per unit).

Precision: FBX keys are float32 (``KeyValueFloat``), so a value keeps about 7 significant digits: read back,
positions are off by about 6e-8 of the largest coordinate (2.4e-6 m for the CMU 01_01 take, whose root goes 48 m
from the origin) and rotations by a few 1e-6 degrees.
"""

from __future__ import annotations

import os

import numpy as np
from optiq import quat
from optiq.atomic import atomic_path, check_output_path
from optiq.axes import axis_matrix, length_scale
from optiq.clip import Clip
from optiq.errors import OptiqError

from .binary_write import CREATION_TIME, FILE_ID, VERSION, add, encode_fbx
from .curves import TICKS_PER_SECOND
from .loader import TIME_MODES
from .nodes import Node

CREATOR = "optiq-fbx"
# FBX TimeMode enum values of the whole-number rates the reader knows (the lower mode where two share a rate: 30
# is 6, not 7 drop-frame; never 0, the application's default, which readers need not take as 30); any other rate
# is written as Custom (14) + CustomFrameRate.
_TIME_MODES = {rate: mode for mode, rate in sorted(TIME_MODES.items(), reverse=True)
               if float(rate).is_integer() and mode != 0}
_TIME_MODE_CUSTOM = 14
# KeyAttrDataFloat of a linear key: right slope, next left slope, the packed default tangent weights (0.3333 and
# 0.3333 as two int16 in one int32, 0x0D050D05) read as a float, velocities; only the interpolation flag matters.
_KEY_ATTR_DATA = np.array([0, 0, 0x0D050D05, 0], dtype=np.int32).view(np.float32)
_KEY_LINEAR = 0x00000004  # eInterpolationLinear


def _p(parent: Node, name: str, type_: str, label: str, flags: str, *values) -> None:
    """One ``P`` record of a Properties70 block: name, type, label, flags ("A" animatable), values."""
    add(parent, "P", name, type_, label, flags, *values)


def _time_mode(fps: float) -> int:
    for rate, mode in _TIME_MODES.items():
        if abs(fps - rate) < 1e-6 * rate:
            return mode
    return _TIME_MODE_CUSTOM


def _unit_scale(unit: str | float, path) -> float:
    """Metres per file unit of ``unit``: a LENGTH_UNITS name, a number of metres per unit, or the label
    :func:`optiq.axes.length_scale` gives a number (``"0.0564444444444 m"``, a clip's ``length_unit``)."""
    if isinstance(unit, str) and unit.strip().lower() == "auto":
        raise OptiqError("FBX length unit 'auto' names no unit; pass a unit name or metres per unit", path)
    try:
        scale, _ = length_scale(unit)
    except ValueError as exc:
        raise OptiqError(str(exc), path) from None
    if not np.isfinite(scale) or scale <= 0:
        raise OptiqError(f"length unit must be positive, got {unit!r}", path)
    return scale


def _euler_xyz_degrees(rotations: np.ndarray) -> np.ndarray:
    """FBX Euler XYZ angles ``[T, J, 3]`` (degrees; columns X, Y, Z) of wxyz rotations ``[T, J, 4]``, unwrapped
    over time so consecutive keys never jump by 360 degrees (a linear key would otherwise spin the joint)."""
    # FBX order XYZ applies X first: the matrix is Rz @ Ry @ Rx, optiq's intrinsic "ZYX" with angles (z, y, x).
    zyx = quat.to_euler(rotations, "ZYX")
    return np.degrees(np.unwrap(zyx[..., ::-1], axis=0))


class _Ids:
    """Deterministic object ids (int64): the same clip always gives the same bytes."""

    def __init__(self) -> None:
        self._next = 1_000_000

    def __call__(self) -> np.int64:
        self._next += 1
        return np.int64(self._next)


def _header() -> list[Node]:
    ext = Node("FBXHeaderExtension", [])
    add(ext, "FBXHeaderVersion", 1003)
    add(ext, "FBXVersion", VERSION)
    add(ext, "EncryptionType", 0)
    stamp = add(ext, "CreationTimeStamp")
    for key, value in (("Version", 1000), ("Year", 1970), ("Month", 1), ("Day", 1), ("Hour", 10), ("Minute", 0),
                       ("Second", 0), ("Millisecond", 0)):
        add(stamp, key, value)
    add(ext, "Creator", CREATOR)
    return [ext, Node("FileId", [FILE_ID]), Node("CreationTime", [CREATION_TIME]), Node("Creator", [CREATOR])]


def _global_settings(up: str, cm_per_unit: float, fps: float, stop: np.int64) -> Node:
    gs = Node("GlobalSettings", [])
    add(gs, "Version", 1000)
    props = add(gs, "Properties70")
    # Right-handed (coord, up, front), front being the direction optiq's +X comes from: Y up = (+X, +Y, +Z), the
    # axes Y_UP_TO_Z_UP turns into optiq's; Z up = (+Y, +Z, +X), optiq's own axes.
    coord_axis, up_axis, front_axis = (0, 1, 2) if up == "y" else (1, 2, 0)
    for name, value in (("UpAxis", up_axis), ("UpAxisSign", 1), ("FrontAxis", front_axis),
                        ("FrontAxisSign", 1), ("CoordAxis", coord_axis), ("CoordAxisSign", 1),
                        ("OriginalUpAxis", up_axis), ("OriginalUpAxisSign", 1)):
        _p(props, name, "int", "Integer", "", value)
    _p(props, "UnitScaleFactor", "double", "Number", "", cm_per_unit)
    _p(props, "OriginalUnitScaleFactor", "double", "Number", "", cm_per_unit)
    _p(props, "TimeMode", "enum", "", "", _time_mode(fps))
    _p(props, "TimeProtocol", "enum", "", "", 2)
    _p(props, "SnapOnFrameMode", "enum", "", "", 0)
    _p(props, "TimeSpanStart", "KTime", "Time", "", np.int64(0))
    _p(props, "TimeSpanStop", "KTime", "Time", "", stop)
    _p(props, "CustomFrameRate", "double", "Number", "", float(fps))
    return gs


def _documents(stack_name: str) -> Node:
    docs = Node("Documents", [])
    add(docs, "Count", 1)
    doc = add(docs, "Document", np.int64(1), "Scene", "Scene")
    props = add(doc, "Properties70")
    _p(props, "SourceObject", "object", "", "")
    _p(props, "ActiveAnimStackName", "KString", "", "", stack_name)
    add(doc, "RootNode", np.int64(0))
    return docs


def _template(definitions: Node, object_type: str, count: int, template: str | None, props: list[tuple]) -> None:
    ot = add(definitions, "ObjectType", object_type)
    add(ot, "Count", count)
    if template is not None:
        p70 = add(add(ot, "PropertyTemplate", template), "Properties70")
        for values in props:
            _p(p70, *values)


def _definitions(joints: int, curve_nodes: int) -> Node:
    """Object counts and the default property values (PropertyTemplates) readers fall back on."""
    zero3 = (0.0, 0.0, 0.0)
    counts = {"GlobalSettings": 1, "NodeAttribute": joints, "Model": joints, "AnimationStack": 1,
              "AnimationLayer": 1, "AnimationCurveNode": curve_nodes, "AnimationCurve": 3 * curve_nodes}
    d = Node("Definitions", [])
    add(d, "Version", 100)
    add(d, "Count", sum(counts.values()))
    _template(d, "GlobalSettings", 1, None, [])
    _template(d, "NodeAttribute", joints, "FbxSkeleton", [
        ("Color", "ColorRGB", "Color", "", 0.8, 0.8, 0.8),
        ("Size", "double", "Number", "", 100.0),
        ("LimbLength", "double", "Number", "H", 1.0),
    ])
    _template(d, "Model", joints, "FbxNode", [
        ("QuaternionInterpolate", "enum", "", "", 0),
        ("RotationOffset", "Vector3D", "Vector", "", *zero3),
        ("RotationPivot", "Vector3D", "Vector", "", *zero3),
        ("ScalingOffset", "Vector3D", "Vector", "", *zero3),
        ("ScalingPivot", "Vector3D", "Vector", "", *zero3),
        ("PreRotation", "Vector3D", "Vector", "", *zero3),
        ("PostRotation", "Vector3D", "Vector", "", *zero3),
        ("RotationOrder", "enum", "", "", 0),
        ("RotationSpaceForLimitOnly", "bool", "", "", 0),
        ("RotationActive", "bool", "", "", 0),
        ("InheritType", "enum", "", "", 0),
        ("ScalingActive", "bool", "", "", 0),
        ("GeometricTranslation", "Vector3D", "Vector", "", *zero3),
        ("GeometricRotation", "Vector3D", "Vector", "", *zero3),
        ("GeometricScaling", "Vector3D", "Vector", "", 1.0, 1.0, 1.0),
        ("DefaultAttributeIndex", "int", "Integer", "", -1),
        ("Lcl Translation", "Lcl Translation", "", "A", *zero3),
        ("Lcl Rotation", "Lcl Rotation", "", "A", *zero3),
        ("Lcl Scaling", "Lcl Scaling", "", "A", 1.0, 1.0, 1.0),
        ("Visibility", "Visibility", "", "A", 1.0),
    ])
    _template(d, "AnimationStack", 1, "FbxAnimStack", [
        ("Description", "KString", "", "", ""),
        ("LocalStart", "KTime", "Time", "", np.int64(0)),
        ("LocalStop", "KTime", "Time", "", np.int64(0)),
        ("ReferenceStart", "KTime", "Time", "", np.int64(0)),
        ("ReferenceStop", "KTime", "Time", "", np.int64(0)),
    ])
    _template(d, "AnimationLayer", 1, "FbxAnimLayer", [
        ("Weight", "Number", "", "A", 100.0),
        ("Mute", "bool", "", "", 0),
        ("Solo", "bool", "", "", 0),
        ("Lock", "bool", "", "", 0),
        ("Color", "ColorRGB", "Color", "", 0.8, 0.8, 0.8),
        ("BlendMode", "enum", "", "", 0),
        ("RotationAccumulationMode", "enum", "", "", 0),
        ("ScaleAccumulationMode", "enum", "", "", 0),
        ("BlendModeBypass", "ULongLong", "", "", np.int64(0)),
    ])
    _template(d, "AnimationCurveNode", curve_nodes, "FbxAnimCurveNode", [("d", "Compound", "", "")])
    _template(d, "AnimationCurve", 3 * curve_nodes, None, [])
    return d


def fbx_nodes(clip: Clip, *, up: str = "y", unit: str | float = "cm", path: str | os.PathLike | None = None
              ) -> list[Node]:
    """The top-level FBX records of ``clip`` (see :func:`write_fbx` for ``up`` and ``unit``); ``path`` names the
    file in errors. ``encode_fbx`` turns them into the bytes of the file."""
    up = str(up).lower()
    if up not in ("y", "z"):
        raise OptiqError(f"FBX up axis must be 'y' or 'z', got {up!r}", path)
    scale = _unit_scale(unit, path)
    file_clip = clip.transformed(axis_matrix(up).T, 1.0 / scale)  # optiq axes and metres -> file axes and unit
    sk = file_clip.skeleton
    n_frames, n_joints = file_clip.num_frames, sk.num_joints
    times = np.rint(np.arange(n_frames) * (TICKS_PER_SECOND / clip.fps)).astype(np.int64)
    stop = times[-1]
    euler = _euler_xyz_degrees(file_clip.rotations)  # [T, J, 3]
    local = file_clip.local_offsets()  # [T, J, 3]: root row = root translation
    translated = [j for j in range(n_joints) if j == 0 or file_clip.local_translations is not None]
    curve_nodes = n_joints + len(translated)

    ids = _Ids()
    objects = Node("Objects", [])
    connections = Node("Connections", [])
    stack_id, layer_id = ids(), ids()
    stack = add(objects, "AnimationStack", stack_id, f"{clip.name}\x00\x01AnimStack", "")
    p70 = add(stack, "Properties70")
    for name in ("LocalStop", "ReferenceStop"):
        _p(p70, name, "KTime", "Time", "", stop)
    add(objects, "AnimationLayer", layer_id, "BaseLayer\x00\x01AnimLayer", "")
    add(connections, "C", "OO", layer_id, stack_id)

    key_flags = np.array([_KEY_LINEAR], dtype=np.int32)
    key_count = np.array([n_frames], dtype=np.int32)

    def curve_node(kind: str, prop: str, model_id: np.int64, values: np.ndarray) -> None:
        """A T or R curve node on ``prop`` of the model, with one curve per axis; values ``[T, 3]``."""
        node_id = ids()
        cn = add(objects, "AnimationCurveNode", node_id, f"{kind}\x00\x01AnimCurveNode", "")
        cn_props = add(cn, "Properties70")
        add(connections, "C", "OO", node_id, layer_id)
        add(connections, "C", "OP", node_id, model_id, prop)
        for axis, channel in enumerate("XYZ"):
            first = float(values[0, axis])
            _p(cn_props, f"d|{channel}", "Number", "", "A", first)
            curve_id = ids()
            curve = add(objects, "AnimationCurve", curve_id, "\x00\x01AnimCurve", "")
            add(curve, "Default", first)
            add(curve, "KeyVer", 4009)
            add(curve, "KeyTime", times)
            add(curve, "KeyValueFloat", values[:, axis].astype(np.float32))
            add(curve, "KeyAttrFlags", key_flags)
            add(curve, "KeyAttrDataFloat", _KEY_ATTR_DATA)
            add(curve, "KeyAttrRefCount", key_count)
            add(connections, "C", "OP", curve_id, node_id, f"d|{channel}")

    model_ids = [ids() for _ in range(n_joints)]
    for j, name in enumerate(sk.names):
        attr_id = ids()
        attr = add(objects, "NodeAttribute", attr_id, f"{name}\x00\x01NodeAttribute", "LimbNode")
        add(attr, "TypeFlags", "Skeleton")
        model = add(objects, "Model", model_ids[j], f"{name}\x00\x01Model", "LimbNode")
        add(model, "Version", 232)
        mp = add(model, "Properties70")
        _p(mp, "RotationOrder", "enum", "", "", 0)
        _p(mp, "InheritType", "enum", "", "", 1)
        _p(mp, "DefaultAttributeIndex", "int", "Integer", "", 0)
        _p(mp, "Lcl Translation", "Lcl Translation", "", "A", *(float(v) for v in sk.offsets[j]))
        add(model, "Shading", True)
        add(model, "Culling", "CullingOff")
        parent = np.int64(0) if sk.parents[j] < 0 else model_ids[sk.parents[j]]
        add(connections, "C", "OO", model_ids[j], parent)
        add(connections, "C", "OO", attr_id, model_ids[j])
    for j in translated:
        curve_node("T", "Lcl Translation", model_ids[j], local[:, j])
    for j in range(n_joints):
        curve_node("R", "Lcl Rotation", model_ids[j], euler[:, j])

    takes = Node("Takes", [])
    add(takes, "Current", clip.name)
    take = add(takes, "Take", clip.name)
    add(take, "FileName", f"{clip.name}.tak")
    add(take, "LocalTime", np.int64(0), stop)
    add(take, "ReferenceTime", np.int64(0), stop)

    return [*_header(), _global_settings(up, scale / 0.01, clip.fps, stop), _documents(clip.name),
            Node("References", []), _definitions(n_joints, curve_nodes), objects, connections, takes]


def write_fbx(clip: Clip, path: str | os.PathLike, *, up: str = "y", unit: str | float = "cm", **_ignored) -> None:
    """Write ``clip`` as binary FBX 7.4, atomically (the file appears only when complete).

    up: the file's up axis, ``"y"`` (default) or ``"z"``. unit: the file's length unit, a LENGTH_UNITS name or
    metres per unit (default centimetres). Rotations become Euler XYZ degree curves, one linear key per frame at
    ``frame / fps`` seconds; joint positions read back from the file equal ``clip.world_positions()`` up to the
    file's float32 key precision (see the module notes). Raises OptiqError for a bad option or output folder.
    """
    check_output_path(path)  # fail before the work, not after it
    data = encode_fbx(fbx_nodes(clip, up=up, unit=unit, path=path))
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
