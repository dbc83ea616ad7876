"""Read FBX files (binary 7.x with 32- or 64-bit record headers, ASCII 7.x) into optiq Clips.

Pipeline: parse the node tree (binary.py / ascii.py) -> objects, connections and templates (scene.py) -> for each
AnimationStack, evaluate every animated transform property of the skeleton and its ancestors at the sample times
(curves.py) -> FBX local and world matrices (transforms.py) -> the file's axes and unit converted to optiq's
(metres, Z up) -> the folded Clip: offsets are rest-pose world differences, rotations are world rotations relative
to the rest pose made local, and ``local_translations`` carry joint translations whenever they change over time
(animated translations, scaled parents), so that forward kinematics of the clip gives FBX's world joint positions.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from optiq import quat
from optiq.axes import length_scale
from optiq.clip import Clip
from optiq.errors import ParseError
from optiq.skeleton import Skeleton

from . import curves
from .ascii import is_ascii_fbx, parse_ascii
from .binary import MAGIC, parse_binary
from .scene import Scene
from .transforms import TRANSFORM_PROPS, local_matrices, world_matrices

# FBX TimeMode enum -> frames per second (0 = the application default, read as CustomFrameRate or 24; 14 = custom).
TIME_MODES = {1: 120.0, 2: 100.0, 3: 60.0, 4: 50.0, 5: 48.0, 6: 30.0, 7: 30.0, 8: 30000 / 1001, 9: 30000 / 1001,
              10: 25.0, 11: 24.0, 12: 1000.0, 13: 24000 / 1001, 15: 96.0, 16: 72.0, 17: 60000 / 1001,
              18: 120000 / 1001}
_LCL = {"Lcl Translation": (0.0, 0.0, 0.0), "Lcl Rotation": (0.0, 0.0, 0.0), "Lcl Scaling": (1.0, 1.0, 1.0)}
_AXES = np.eye(3)


def sniff_fbx(path: Path, head: bytes) -> bool:
    """True for binary FBX (its magic) or ASCII FBX (an ``FBXHeaderExtension`` record or ``; FBX`` comment)."""
    return head.startswith(MAGIC) or is_ascii_fbx(head[:4096])


def read_scene(path: str | os.PathLike) -> tuple[int, Scene]:
    """The FBX version and :class:`Scene` of ``path``; ParseError for unreadable or malformed files."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read file: {exc.strerror}", path) from None
    if not data.strip():
        raise ParseError("file is empty", path)
    if data.startswith(b"Kaydara"):
        version, top = parse_binary(data, path)
    elif is_ascii_fbx(data[:4096]):
        version, top = parse_ascii(data.decode("utf-8", errors="replace"), path)
    else:
        raise ParseError("not an FBX file (bad magic: neither 'Kaydara FBX Binary' nor an ASCII FBX header)", path,
                         "byte 0")
    if version and version < 7000:
        raise ParseError(f"FBX version {version} is not supported (optiq reads FBX 7.x)", path, "header")
    return version, Scene(top, path)


def axis_conversion(settings: dict) -> np.ndarray:
    """Matrix ``[3, 3]`` taking the file's axes to optiq's: its front axis to +X, its right (CoordAxis) to +Y and
    its up axis to +Z, signs included (a Y-up right-handed file gets optiq's (x, y, z) -> (z, x, y)). For a
    left-handed file the matrix is a reflection, applied to whole world matrices."""
    def axis(name: str, default: int) -> np.ndarray:
        idx = int(settings.get(name, default))
        sign = float(settings.get(name + "Sign", 1))
        return _AXES[idx if 0 <= idx < 3 else default] * (1.0 if sign >= 0 else -1.0)

    up, front, right = axis("UpAxis", 1), axis("FrontAxis", 2), axis("CoordAxis", 0)
    m = np.stack([front, right, up])
    if abs(np.linalg.det(m)) < 0.5:
        raise ValueError("UpAxis, FrontAxis and CoordAxis must name three different axes")
    return m


def file_fps(settings: dict) -> float:
    """Frames per second from GlobalSettings TimeMode (CustomFrameRate for the custom and default modes)."""
    mode = int(settings.get("TimeMode", 0))
    if mode in TIME_MODES:
        return TIME_MODES[mode]
    custom = float(settings.get("CustomFrameRate", -1.0))
    return custom if custom > 0 else 24.0


class _Animation:
    """Curve lookup for one stack: (model id, property) -> list of (layer weight, mode, [3] values or curves)."""

    def __init__(self, scene: Scene, stack_id: int):
        self.scene = scene
        op_parent: dict[int, list[tuple[int, str]]] = {}
        op_child: dict[int, list[tuple[int, str]]] = {}
        for child, parent, prop in scene.op:
            op_parent.setdefault(child, []).append((parent, prop))
            op_child.setdefault(parent, []).append((child, prop))
        self.channels: dict[tuple[int, str], list[tuple[float, bool, list]]] = {}
        layers = scene.children_of(stack_id, "AnimationLayer")
        for k, layer in enumerate(layers):
            if int(layer.props.get("Mute", 0)):
                continue
            weight = float(layer.props.get("Weight", 100.0)) / 100.0
            additive = k > 0 and int(layer.props.get("BlendMode", 0)) == 0
            for cn in scene.children_of(layer.id, "AnimationCurveNode"):
                targets = [(m, p) for m, p in op_parent.get(cn.id, []) if p in _LCL]
                if not targets:
                    continue
                comps: list = []
                for axis in "XYZ":
                    default = float(cn.props.get(f"d|{axis}", 0.0))
                    curve_obj = next((scene.objects.get(c) for c, p in op_child.get(cn.id, []) if p == f"d|{axis}"
                                      and c in scene.objects), None)
                    comps.append(default if curve_obj is None else self._curve(curve_obj))
                for target in targets:
                    self.channels.setdefault(target, []).append((weight, additive, comps))

    def _curve(self, obj) -> curves.Curve:
        n = obj.node
        try:
            return curves.make_curve(n.array("KeyTime") if n.find("KeyTime") else np.empty(0, np.int64),
                                     n.array("KeyValueFloat") if n.find("KeyValueFloat") else np.empty(0),
                                     n.array("KeyAttrFlags"), n.array("KeyAttrDataFloat"), n.array("KeyAttrRefCount"))
        except ValueError as exc:
            raise ParseError(f"animation curve {obj.id}: {exc}", self.scene.path, n.where) from None

    def key_range(self) -> tuple[float, float] | None:
        times = [c.times for ch in self.channels.values() for _, _, comps in ch for c in comps
                 if isinstance(c, curves.Curve) and len(c.times)]
        if not times:
            return None
        return min(float(t[0]) for t in times), max(float(t[-1]) for t in times)

    def value(self, model: int, prop: str, static: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``[T, 3]`` value of ``prop`` of ``model`` at times ``t``: the static value blended with every layer."""
        out = np.broadcast_to(static, (len(t), 3)).copy()
        for weight, additive, comps in self.channels.get((model, prop), []):
            layer = np.stack([curves.evaluate(c, t) if isinstance(c, curves.Curve) else np.full(len(t), c)
                              for c in comps], axis=1)
            out = out + weight * layer if additive else out + weight * (layer - out)
        return out


def _vec(props: dict, name: str, default: tuple = (0.0, 0.0, 0.0)) -> np.ndarray:
    """A 3-vector property (a lone number stands for all three components)."""
    v = props.get(name, default)
    return np.asarray(v if isinstance(v, tuple) else (v, v, v), dtype=np.float64)[:3]


def _world(scene: Scene, ids: list[int], anim: _Animation | None, t: np.ndarray) -> dict[int, np.ndarray]:
    """World matrices ``{model: [T, 4, 4]}`` of models ``ids`` (parents listed before children) at times ``t``."""
    values = {}
    for prop, default in _LCL.items():
        static = [_vec(scene.objects[m].props, prop, default) for m in ids]
        values[prop] = np.stack([anim.value(m, prop, v, t) if anim is not None else np.broadcast_to(v, (len(t), 3))
                                 for m, v in zip(ids, static, strict=True)])
    order = np.array([int(scene.objects[m].props.get("RotationOrder", 0)) for m in ids])
    extra = np.array([[_vec(scene.objects[m].props, name) for name in TRANSFORM_PROPS] for m in ids])
    local = local_matrices(values["Lcl Translation"], values["Lcl Rotation"], values["Lcl Scaling"], order, extra)
    world: dict[int, np.ndarray] = {}
    row = {m: k for k, m in enumerate(ids)}
    for k, m in enumerate(ids):
        parent = scene.model_parent.get(m)
        parent_scale = values["Lcl Scaling"][row[parent]] if parent in row else None
        world[m] = world_matrices(world.get(parent), local[k], int(scene.objects[m].props.get("InheritType", 0)),
                                  parent_scale)
    return world


def _converted(world: np.ndarray, conv: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``[..., 3]`` (metres, optiq axes) and rotations ``[..., 4]`` wxyz of world matrices
    ``[..., 4, 4]`` taken to optiq's axes (``conv @ M @ conv^T``), the rotation being the linear part with its
    column scales divided out."""
    pos = world[..., :3, 3] @ conv.T * scale
    lin = world[..., :3, :3]
    norms = np.sqrt(np.einsum("...ij,...ij->...j", lin, lin))[..., None, :]
    q = _matrix_to_quat(lin / np.where(norms == 0.0, 1.0, norms))
    # The rotation part of conv @ R @ conv^T equals P @ R @ P^T with the proper rotation P = det(conv) * conv
    # (a reflection's sign cancels), whose quaternion is (w, P v).
    proper = conv * np.sign(np.linalg.det(conv))
    q[..., 1:] = q[..., 1:] @ proper.T
    return pos, q


def _matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Unit quaternions ``[..., 4]`` wxyz of rotation matrices ``[..., 3, 3]`` (Shepperd's method: each matrix
    uses the largest of the four ``|q_i|`` candidates, which keeps the division well conditioned)."""
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    trace = m00 + m11 + m22
    cand = np.stack([trace, m00, m11, m22], axis=-1)
    best = np.argmax(cand, axis=-1)
    q = np.empty(m.shape[:-2] + (4,))
    # w largest
    r = np.sqrt(np.maximum(1.0 + trace, 0.0))
    qw = np.stack([0.5 * r, (m[..., 2, 1] - m[..., 1, 2]), (m[..., 0, 2] - m[..., 2, 0]),
                   (m[..., 1, 0] - m[..., 0, 1])], axis=-1)
    qw[..., 1:] *= (0.5 / np.where(r == 0, 1.0, r))[..., None]
    # x largest
    r = np.sqrt(np.maximum(1.0 + m00 - m11 - m22, 0.0))
    f = (0.5 / np.where(r == 0, 1.0, r))
    qx = np.stack([(m[..., 2, 1] - m[..., 1, 2]) * f, 0.5 * r, (m[..., 0, 1] + m[..., 1, 0]) * f,
                   (m[..., 0, 2] + m[..., 2, 0]) * f], axis=-1)
    r = np.sqrt(np.maximum(1.0 - m00 + m11 - m22, 0.0))
    f = (0.5 / np.where(r == 0, 1.0, r))
    qy = np.stack([(m[..., 0, 2] - m[..., 2, 0]) * f, (m[..., 0, 1] + m[..., 1, 0]) * f, 0.5 * r,
                   (m[..., 1, 2] + m[..., 2, 1]) * f], axis=-1)
    r = np.sqrt(np.maximum(1.0 - m00 - m11 + m22, 0.0))
    f = (0.5 / np.where(r == 0, 1.0, r))
    qz = np.stack([(m[..., 1, 0] - m[..., 0, 1]) * f, (m[..., 0, 2] + m[..., 2, 0]) * f,
                   (m[..., 1, 2] + m[..., 2, 1]) * f, 0.5 * r], axis=-1)
    q = np.choose(best[..., None], [qw, qx, qy, qz])
    return quat.normalize(q)


def load_fbx(path: str | os.PathLike, *, stack: str | None = None, fps: float | None = None,
             rest_pose: bool = False, unit: str | float | None = None, **_ignored) -> list[Clip]:
    """Read an FBX file into one Clip per AnimationStack (metres, Z up, folded rest frames).

    stack: the name of the one stack to read (default: all, in file order). fps: the sampling rate (default the
    file's TimeMode / CustomFrameRate); samples run from the stack's LocalStart to LocalStop (ReferenceStart/Stop
    when those are empty, else the keys' range). rest_pose: for a file without animation, return one frame of the
    rest pose instead of raising ParseError. unit: override the file's length unit (a LENGTH_UNITS name or metres
    per unit; default GlobalSettings UnitScaleFactor, centimetres per unit). The rest pose is the default pose: every
    property at its value without animation. Clip labels: ``source``, ``stack``, ``length_unit``, ``up`` (the
    file's up axis), ``fbx_version``.
    """
    path = Path(path)
    version, scene = read_scene(path)
    joints = scene.skeleton_models()
    above = scene.ancestors(joints[0])
    ids = above + joints
    index = {m: k for k, m in enumerate(joints)}
    parents = np.array([index.get(scene.model_parent.get(m), -1) for m in joints])
    names = _unique([scene.objects[m].name for m in joints])
    try:
        conv = axis_conversion(scene.settings)
    except ValueError as exc:
        raise ParseError(str(exc), path, "GlobalSettings") from None
    if unit is None:
        scale = float(scene.settings.get("UnitScaleFactor", 1.0)) * 0.01
        unit_name = f"{scale:g} m"
    else:
        try:
            scale, unit_name = length_scale(unit)
        except ValueError as exc:
            raise ParseError(str(exc), path) from None
    rate = file_fps(scene.settings) if fps is None else float(fps)
    if not np.isfinite(rate) or rate <= 0:
        raise ParseError(f"frame rate must be positive, got {rate}", path, "GlobalSettings TimeMode")

    rest_world = _world(scene, ids, None, np.zeros(1))
    rest_pos, rest_rot = _converted(np.stack([rest_world[m][0] for m in joints]), conv, scale)
    offsets = rest_pos.copy()
    offsets[1:] -= rest_pos[parents[1:]]
    skeleton = Skeleton(tuple(names), parents, offsets)
    up_axis = "xyz"[int(scene.settings.get("UpAxis", 1)) % 3]
    labels = {"source": path.name, "length_unit": unit_name, "up": up_axis, "fbx_version": str(version)}

    stacks = [o for o in scene.objects.values() if o.cls == "AnimationStack"]
    if stack is not None:
        chosen = [s for s in stacks if s.name == stack]
        if not chosen:
            raise ParseError(f"no animation stack {stack!r}; stacks: {', '.join(s.name for s in stacks) or 'none'}",
                             path, "Objects")
        stacks = chosen
    clips = []
    joint_set = set(ids)
    for st in stacks:
        anim = _Animation(scene, st.id)
        if not any(m in joint_set for m, _ in anim.channels):
            continue
        times = _sample_times(st, anim, rate)
        world = _world(scene, ids, anim, times)
        clips.append(_clip(world, joints, parents, rest_rot, skeleton, conv, scale, rate, st.name,
                           {**labels, "stack": st.name}))
    if clips:
        return clips
    if rest_pose:
        return [Clip(skeleton, rate, rest_pos[:1], quat.identity((1, len(joints))), name=path.stem,
                     labels={**labels, "stack": "", "rest_pose": "1"})]
    what = "animation stack" if not stacks else "animation curve on the skeleton"
    raise ParseError(f"the file has no {what} (pass rest_pose=True for a one-frame clip of the rest pose)", path,
                     "Objects")


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        n = n or "joint"
        if n in seen:
            seen[n] += 1
            n = f"{n}.{seen[n]}"
        seen.setdefault(n, 0)
        out.append(n)
    return out


def _sample_times(st, anim: _Animation, rate: float) -> np.ndarray:
    """Sample times (seconds) of a stack: LocalStart..LocalStop, else ReferenceStart..ReferenceStop, else the keys."""
    tps = curves.TICKS_PER_SECOND
    start, stop = int(st.props.get("LocalStart", 0)), int(st.props.get("LocalStop", 0))
    if stop <= start:
        start, stop = int(st.props.get("ReferenceStart", 0)), int(st.props.get("ReferenceStop", 0))
    if stop > start:
        t0, t1 = start / tps, stop / tps
    else:
        t0, t1 = anim.key_range() or (0.0, 0.0)
    n = int(np.floor((t1 - t0) * rate + 1e-6)) + 1
    return t0 + np.arange(n) / rate


def _clip(world: dict[int, np.ndarray], joints: list[int], parents: np.ndarray, rest_rot: np.ndarray,
          skeleton: Skeleton, conv: np.ndarray, scale: float, rate: float, name: str, labels: dict) -> Clip:
    mats = np.stack([world[m] for m in joints], axis=1)  # [T, J, 4, 4]
    pos, rot = _converted(mats, conv, scale)
    # Folded: a joint's world rotation relative to its rest world rotation.
    wq = quat.normalize(quat.qmul(rot, quat.conj(rest_rot)[None]))
    local = wq.copy()
    local[:, 1:] = quat.qmul(quat.conj(wq[:, parents[1:]]), wq[:, 1:])
    trans = quat.rotate(quat.conj(wq[:, parents[1:]]), pos[:, 1:] - pos[:, parents[1:]])
    extent = float(np.ptp(pos.reshape(-1, 3), axis=0).max()) or 1.0
    local_translations = None
    # Translations that vary by less than 1e-6 of the motion's extent are float32 noise of animated Lcl
    # Translation curves (Blender keys every bone's translation): the rigid skeleton then reproduces the world
    # positions within that bound, far inside the 1e-5 the tests demand.
    if trans.size and np.abs(trans - skeleton.offsets[None, 1:]).max() > 1e-6 * extent:
        local_translations = np.empty_like(pos)
        local_translations[:, 0] = pos[:, 0]
        local_translations[:, 1:] = trans
    return Clip(skeleton, rate, pos[:, 0], quat.make_continuous(local), local_translations, name=name,
                labels=labels)
