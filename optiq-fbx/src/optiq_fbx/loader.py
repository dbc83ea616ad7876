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
from optiq.loaders.common import read_bytes
from optiq.names import safe_name
from optiq.skeleton import Skeleton

from . import curves
from .ascii import is_ascii_fbx, parse_ascii
from .binary import MAGIC, parse_binary
from .scene import Scene
from .transforms import ROTATION_ORDERS, TRANSFORM_PROPS, local_transforms, world_transforms

# FBX TimeMode enum -> frames per second. 0 is eDefaultMode, the FBX SDK's global time mode: 30 fps unless an
# application changes it (ufbx reads 30, whatever CustomFrameRate says); 14 is custom: CustomFrameRate.
TIME_MODES = {0: 30.0, 1: 120.0, 2: 100.0, 3: 60.0, 4: 50.0, 5: 48.0, 6: 30.0, 7: 30.0, 8: 30000 / 1001,
              9: 30000 / 1001, 10: 25.0, 11: 24.0, 12: 1000.0, 13: 24000 / 1001, 15: 96.0, 16: 72.0,
              17: 60000 / 1001, 18: 120000 / 1001}
_LCL = {"Lcl Translation": (0.0, 0.0, 0.0), "Lcl Rotation": (0.0, 0.0, 0.0), "Lcl Scaling": (1.0, 1.0, 1.0)}
_AXES = np.eye(3)


def sniff_fbx(path: Path, head: bytes) -> bool:
    """True for binary FBX (its magic) or ASCII FBX (an ``FBXHeaderExtension`` record or ``; FBX`` comment)."""
    return head.startswith(MAGIC) or is_ascii_fbx(head[:4096])


def read_scene(path: str | os.PathLike) -> tuple[int, Scene]:
    """The FBX version and :class:`Scene` of ``path``; ParseError for unreadable or malformed files."""
    path = Path(path)
    data = read_bytes(path)
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
    """Frames per second from GlobalSettings TimeMode (CustomFrameRate for the custom mode and unknown modes, 24
    when that is missing or not positive)."""
    mode = int(settings.get("TimeMode", 0))
    if mode in TIME_MODES:
        return TIME_MODES[mode]
    custom = float(settings.get("CustomFrameRate", -1.0))
    return custom if custom > 0 else 24.0


# FBX AnimationLayer BlendMode values.
_ADDITIVE, _OVERRIDE, _PASSTHROUGH = 0, 1, 2


class _Layer:
    """How one AnimationLayer combines with the layers before it: ``mode`` (a BlendMode; the base layer is an
    override), ``weight`` (a fraction in [0, 1], or the index of its animated Weight curve in ``curves``, percent),
    ``by_layer`` (RotationAccumulationMode 0: rotations compose as quaternions) and ``multiply``
    (ScaleAccumulationMode 0: scales multiply)."""

    __slots__ = ("mode", "weight", "by_layer", "multiply")

    def __init__(self, mode: int, weight: float | int, by_layer: bool, multiply: bool):
        self.mode, self.weight, self.by_layer, self.multiply = mode, weight, by_layer, multiply


class _Animation:
    """Curve lookup for one stack: the playing ``layers`` (:class:`_Layer`, stack order) and ``channels``:
    (model id, property) -> list of (layer index, [3] components, each a number or the index of a curve in
    ``curves``)."""

    def __init__(self, scene: Scene, stack_id: int):
        self.scene = scene
        op_parent: dict[int, list[tuple[int, str]]] = {}
        op_child: dict[int, list[tuple[int, str]]] = {}
        for child, parent, prop in scene.op:
            op_parent.setdefault(child, []).append((parent, prop))
            op_child.setdefault(parent, []).append((child, prop))
        self.curves: list[curves.Curve] = []
        self.layers: list[_Layer] = []
        self.channels: dict[tuple[int, str], list[tuple[int, list]]] = {}
        # Muted layers do not play; when layers are soloed only those play (FBX SDK / MotionBuilder).
        playing = [la for la in scene.children_of(stack_id, "AnimationLayer") if not int(la.props.get("Mute", 0))]
        if any(int(la.props.get("Solo", 0)) for la in playing):
            playing = [la for la in playing if int(la.props.get("Solo", 0))]
        for index, layer in enumerate(playing):
            # The first layer that plays is the base: it replaces the property's own value, whatever its mode.
            mode = _OVERRIDE if index == 0 else int(layer.props.get("BlendMode", _ADDITIVE))
            self.layers.append(_Layer(mode, _weight(float(layer.props.get("Weight", 100.0)) / 100.0),
                                      int(layer.props.get("RotationAccumulationMode", 0)) == 0,
                                      int(layer.props.get("ScaleAccumulationMode", 0)) == 0))
            for cn in scene.children_of(layer.id, "AnimationCurveNode"):
                links = op_parent.get(cn.id, [])
                if (layer.id, "Weight") in links:
                    # An animated layer weight (percent): its curve replaces the static Weight.
                    weight = self._components(cn, op_child, ("Weight",))[0]
                    self.layers[-1].weight = weight if isinstance(weight, int) else _weight(weight / 100.0)
                targets = [(m, p) for m, p in links if p in _LCL]
                if not targets:
                    continue
                comps = self._components(cn, op_child, "XYZ")
                for target in targets:
                    self.channels.setdefault(target, []).append((index, comps))

    def _components(self, cn, op_child: dict, axes) -> list:
        """Per channel ``d|<axis>`` of curve node ``cn``: the index of its curve in ``curves``, or the curve
        node's own value when no curve with keys drives that channel."""
        comps: list = []
        for axis in axes:
            default = float(cn.props.get(f"d|{axis}", 0.0))
            curve_obj = next((self.scene.objects.get(c) for c, p in op_child.get(cn.id, []) if p == f"d|{axis}"
                              and c in self.scene.objects), None)
            if curve_obj is None or not _has_keys(curve_obj):
                # A curve without keys leaves the curve node's value in place.
                comps.append(default)
            else:
                comps.append(len(self.curves))
                self.curves.append(self._curve(curve_obj))
        return comps

    def _curve(self, obj) -> curves.Curve:
        n = obj.node
        arrays = {c.name: np.asarray(c.props[0]) for c in reversed(n.children) if c.props}
        try:
            return curves.make_curve(arrays.get("KeyTime", np.empty(0, np.int64)),
                                     arrays.get("KeyValueFloat", np.empty(0)), arrays.get("KeyAttrFlags"),
                                     arrays.get("KeyAttrDataFloat"), arrays.get("KeyAttrRefCount"),
                                     _extrapolation(n.find("Pre-Extrapolation")),
                                     _extrapolation(n.find("Post-Extrapolation")))
        except (ValueError, TypeError) as exc:
            raise ParseError(f"animation curve {obj.id}: {exc}", self.scene.path, n.where) from None

    def key_range(self) -> tuple[float, float] | None:
        times = [c.times for c in self.curves if len(c.times)]
        if not times:
            return None
        return min(float(t[0]) for t in times), max(float(t[-1]) for t in times)

    def fill(self, values: dict[str, np.ndarray], rows: dict[int, int], orders: np.ndarray, t: np.ndarray) -> None:
        """Blend every layer into ``values`` (property -> ``[3, N, T]`` holding the static values) for the models
        of ``rows`` (model id -> row; ``orders`` [N] their RotationOrder), evaluating all curves at times ``t`` at
        once."""
        used = [(key, ch) for key, ch in self.channels.items() if key[0] in rows]
        table = curves.evaluate_many(self.curves, t)
        for (model, prop), layers in used:
            out = values[prop][:, rows[model]]
            for index, comps in layers:
                value = np.stack([table[c] if isinstance(c, int) else np.full(len(t), c) for c in comps])
                layer = self.layers[index]
                if layer.mode == _OVERRIDE:  # the base layer too: the value is replaced exactly
                    out = value
                    continue
                w = layer.weight if isinstance(layer.weight, float) else _weight(table[layer.weight] / 100.0)
                out = _blend(out, value, layer, w, prop, int(orders[rows[model]]))
            values[prop][:, rows[model]] = out


def _extrapolation(node) -> tuple[str, int]:
    """``(type code, repetitions)`` of a Pre-/Post-Extrapolation record (constant when there is none)."""
    if node is None:
        return curves.extrapolation(None, None)
    values = {c.name: c.props[0] for c in node.children if c.props}
    return curves.extrapolation(values.get("Type"), values.get("Repetition"))


def _weight(w):
    """A layer weight fraction as FBX evaluators use it: clamped to [0, 1], and 1 from 0.99999 up (a float
    percentage of 100 need not round to exactly 1)."""
    return np.where(w > 0.99999, 1.0, np.clip(w, 0.0, 1.0)) if isinstance(w, np.ndarray) else \
        (1.0 if w > 0.99999 else min(max(w, 0.0), 1.0))


def _blend(out: np.ndarray, value: np.ndarray, layer: _Layer, w, prop: str, order: int) -> np.ndarray:
    """``out`` ``[3, T]`` (the layers below) combined with an additive or override-passthrough layer's ``value``
    ``[3, T]`` at weight ``w`` (a number or ``[T]``), as ufbx and the FBX SDK define it:

    - Lcl Rotation by layer (RotationAccumulationMode 0): the Euler triples become quaternions in the model's
      rotation order; additive composes ``out * slerp(1, value, w)`` (the layer turns in the model's rotated
      frame), passthrough takes ``slerp(out, value, w)``; the result goes back to Euler angles.
    - Lcl Scaling multiplied (ScaleAccumulationMode 0): additive ``out * value^w``, passthrough
      ``out^(1-w) * value^w`` (powers of magnitudes, signs kept).
    - Otherwise component-wise: additive ``out + w value``, passthrough ``(1 - w) out + w value``.
    """
    additive = layer.mode == _ADDITIVE
    if prop == "Lcl Rotation" and layer.by_layer:
        applied = ROTATION_ORDERS[order if 0 <= order < len(ROTATION_ORDERS) else 0]
        intrinsic = applied[::-1]  # FBX applies the axes in ``applied`` order: intrinsic order reversed
        idx = ["XYZ".index(c) for c in intrinsic]
        a = quat.from_euler(out[idx].T, intrinsic, degrees=True)
        b = quat.from_euler(value[idx].T, intrinsic, degrees=True)
        w = np.asarray(w, dtype=np.float64)
        q = quat.qmul(a, quat.slerp(quat.identity(b.shape[:-1]), b, w)) if additive else quat.slerp(a, b, w)
        euler = np.empty_like(out)
        euler[idx] = np.degrees(quat.to_euler(q, intrinsic)).T
        return euler
    if prop == "Lcl Scaling" and layer.multiply:
        if additive:
            return out * _pow_abs(value, w)
        return _pow_abs(out, 1.0 - w) * _pow_abs(value, w)
    if additive:
        return out + w * value
    return out * (1.0 - w) + value * w


def _pow_abs(v: np.ndarray, e) -> np.ndarray:
    """``sign(v) |v|^e`` with exponents clamped to [0, 1] (``v`` itself at 1, ones at 0)."""
    e = np.clip(e, 0.0, 1.0)
    return np.where(e >= 1.0, v, np.where(e <= 0.0, 1.0, np.sign(v) * np.abs(v) ** e))


def _vec(props: dict, name: str, default: tuple = (0.0, 0.0, 0.0)) -> np.ndarray:
    """A 3-vector property (a lone number stands for all three components)."""
    v = props.get(name, default)
    return np.asarray(v if isinstance(v, tuple) else (v, v, v), dtype=np.float64)[:3]


def _world(scene: Scene, ids: list[int], anim: _Animation | None, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World transforms of models ``ids`` (parents listed before children) at times ``t``: linear parts
    ``[3, 3, N, T]`` and translations ``[3, N, T]`` (file units and axes)."""
    rows = {m: k for k, m in enumerate(ids)}
    values = {}
    for prop, default in _LCL.items():
        static = np.stack([_vec(scene.objects[m].props, prop, default) for m in ids], axis=1)  # [3, N]
        values[prop] = np.repeat(static[:, :, None], len(t), axis=2)
    order = np.array([int(scene.objects[m].props.get("RotationOrder", 0)) for m in ids])
    if anim is not None:
        anim.fill(values, rows, order, t)
    extra = np.array([[_vec(scene.objects[m].props, name) for name in TRANSFORM_PROPS] for m in ids])
    lin, pos = local_transforms(values["Lcl Translation"], values["Lcl Rotation"], values["Lcl Scaling"], order,
                                extra)
    parents = np.array([rows.get(scene.model_parent.get(m), -1) for m in ids])
    inherit = np.array([int(scene.objects[m].props.get("InheritType", 0)) for m in ids])
    return world_transforms(lin, pos, parents, inherit, values["Lcl Scaling"])


def _converted(lin: np.ndarray, pos: np.ndarray, conv: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``[3, ...]`` (metres, optiq axes) and rotations ``[4, ...]`` wxyz of world transforms (linear
    parts ``[3, 3, ...]``, translations ``[3, ...]``) taken to optiq's axes (``conv @ M @ conv^T``), the rotation
    being the linear part with its column scales divided out."""
    pos = _apply(conv * scale, pos)
    norms = np.sqrt(lin[0] * lin[0] + lin[1] * lin[1] + lin[2] * lin[2])
    q = quat.from_matrix_parts(lin * (1.0 / np.where(norms == 0.0, 1.0, norms))[None])
    # The rotation part of conv @ R @ conv^T equals P @ R @ P^T with the proper rotation P = det(conv) * conv
    # (a reflection's sign cancels), whose quaternion is (w, P v).
    q[1:] = _apply(conv * np.sign(np.linalg.det(conv)), q[1:])
    return pos, q


def _apply(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``m`` ``[3, 3]`` times vectors ``v`` ``[3, ...]``, skipping zero entries (axis conversions are signed
    permutations: one product per component)."""
    return np.stack([sum((m[i, j] * v[j] for j in range(3) if m[i, j] != 0.0), np.zeros(v.shape[1:]))
                     for i in range(3)])


def load_fbx(path: str | os.PathLike, *, stack: str | None = None, fps: float | None = None,
             rest_pose: bool = False, unit: str | float | None = None, name_from: str = "file",
             **_ignored) -> list[Clip]:
    """Read an FBX file into one Clip per AnimationStack (metres, Z up, folded rest frames).

    stack: the name of the one stack to read (default: all, in file order). name_from: how clips are named,
    ``"file"`` (default: the file's stem when it holds one AnimationStack, ``"<stem>:<stack>"`` when it holds
    several, so that a folder of exports whose stacks are all "Take 001" converts) or ``"stack"`` (the stack's
    name); either way made a valid dataset name (``/`` and control characters become ``_``, surrounding
    whitespace is dropped, an empty name becomes the stem). fps: the sampling rate (default the
    file's TimeMode / CustomFrameRate); samples run from the stack's LocalStart to LocalStop (ReferenceStart/Stop
    when those are empty, else the keys' range). rest_pose: for a file without animation, return one frame of the
    rest pose instead of raising ParseError. unit: override the file's length unit (a LENGTH_UNITS name or metres
    per unit; default, or ``"auto"``: GlobalSettings UnitScaleFactor, centimetres per unit). The rest pose is the
    default pose: every property at its value without animation. Clip labels: ``source``, ``stack``,
    ``length_unit``, ``up`` (the file's up axis), ``fbx_version``.
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
    # "auto" (the CLI's and the other loaders' default) means the file's own unit: FBX declares it.
    if unit is None or (isinstance(unit, str) and unit.strip().lower() == "auto"):
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

    n_above = len(above)
    rest_lin, rest_trans = _world(scene, ids, None, np.zeros(1))
    rest_pos, rest_rot = _converted(rest_lin[:, :, n_above:, 0], rest_trans[:, n_above:, 0], conv, scale)
    rest_pos = rest_pos.T
    offsets = rest_pos.copy()
    offsets[1:] -= rest_pos[parents[1:]]
    skeleton = Skeleton(tuple(names), parents, offsets)
    up_axis = "xyz"[int(scene.settings.get("UpAxis", 1)) % 3]
    labels = {"source": path.name, "length_unit": unit_name, "up": up_axis, "fbx_version": str(version)}

    stacks = [o for o in scene.objects.values() if o.cls == "AnimationStack"]
    names_of = _clip_namer(name_from, path, len(stacks))
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
        lin, trans = _world(scene, ids, anim, times)
        pos, rot = _converted(lin[:, :, n_above:], trans[:, n_above:], conv, scale)
        clips.append(_clip(pos, rot, parents, rest_rot, skeleton, rate, names_of(st.name),
                           {**labels, "stack": st.name}))
    if clips:
        # Two stacks of one name (an exporter's "Take 001" twice) would make clips no dataset can hold together.
        names = _unique([c.name for c in clips])
        return [c if c.name == n else c.replace(name=n) for c, n in zip(clips, names, strict=True)]
    if rest_pose:
        return [Clip(skeleton, rate, rest_pos[:1], quat.identity((1, len(joints))),
                     name=safe_name(path.stem, "clip"), labels={**labels, "stack": "", "rest_pose": "1"})]
    what = "animation stack" if not stacks else "animation curve on the skeleton"
    raise ParseError(f"the file has no {what} (pass rest_pose=True for a one-frame clip of the rest pose)", path,
                     "Objects")


NAME_FROM = ("file", "stack")


def _clip_namer(name_from: str, path: Path, n_stacks: int):
    """The function from a stack name to its clip's name, for ``name_from`` (see :func:`load_fbx`) and a file
    holding ``n_stacks`` AnimationStacks; a ParseError for an unknown ``name_from``."""
    if name_from not in NAME_FROM:
        raise ParseError(f"name_from must be one of {', '.join(map(repr, NAME_FROM))}, got {name_from!r}", path)
    stem = safe_name(path.stem, "clip")
    if name_from == "stack":
        return lambda st: safe_name(st, stem)
    if n_stacks <= 1:
        return lambda st: stem
    return lambda st: safe_name(f"{stem}:{st}", stem)


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


def _clip(pos: np.ndarray, rot: np.ndarray, parents: np.ndarray, rest_rot: np.ndarray, skeleton: Skeleton,
          rate: float, name: str, labels: dict) -> Clip:
    """The folded Clip of world joint positions ``[3, J, T]`` (metres) and rotations ``[4, J, T]`` (optiq axes),
    given the rest world rotations ``[4, J]``."""
    # Folded: a joint's world rotation relative to its rest world rotation.
    # Products of unit quaternions stay unit to rounding: no renormalisation needed.
    conj_rest = rest_rot * np.array([1.0, -1.0, -1.0, -1.0])[:, None]
    wq = np.stack(quat.qmul_parts(rot, conj_rest[..., None]))
    local = np.empty_like(wq)
    local[:, 0] = wq[:, 0]
    wp = wq[:, parents[1:]]
    local[:, 1:] = np.stack(quat.qmul_parts(wp * np.array([1.0, -1.0, -1.0, -1.0])[:, None, None], wq[:, 1:]))
    # Consecutive frames in one hemisphere (what quat.make_continuous does, in this layout).
    flips = np.cumprod(np.where(np.einsum("ijt,ijt->jt", local[:, :, 1:], local[:, :, :-1]) < 0, -1.0, 1.0), axis=1)
    local[:, :, 1:] *= flips[None]
    trans = np.stack(quat.rotate_parts(wp * np.array([1.0, -1.0, -1.0, -1.0])[:, None, None],
                                       pos[:, 1:] - pos[:, parents[1:]]))
    extent = float((pos.max(axis=(1, 2)) - pos.min(axis=(1, 2))).max()) or 1.0
    local_translations = None
    # Translations that vary by less than 1e-6 of the motion's extent are float32 noise of animated Lcl
    # Translation curves (Blender keys every bone's translation): the rigid skeleton then reproduces the world
    # positions within that bound, far inside the 1e-5 the tests demand.
    if trans.size and np.abs(trans - skeleton.offsets[1:].T[..., None]).max() > 1e-6 * extent:
        local_translations = np.empty((pos.shape[2], pos.shape[1], 3))
        local_translations[:, 0] = pos[:, 0].T
        local_translations[:, 1:] = trans.transpose(2, 1, 0)
    return Clip(skeleton, rate, pos[:, 0].T.copy(), np.ascontiguousarray(local.transpose(2, 1, 0)),
                local_translations, name=name, labels=labels)


def _has_keys(obj) -> bool:
    """Whether an AnimationCurve object holds at least one key time."""
    return any(c.name == "KeyTime" and c.props and len(c.props[0]) > 0 for c in obj.node.children)
