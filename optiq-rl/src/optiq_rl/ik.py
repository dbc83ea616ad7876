"""Retargeting by inverse kinematics: a clip of any skeleton onto a character, through a joint map.

Per frame, the character's qpos is solved so that each mapped body (a site on it: the map's offset and rotation)
reaches its source joint's world position, and its rotation where the map gives an orientation weight. The solver
is mink (differential IK on MuJoCo as a quadratic program, with joint limits as inequalities: hinge ranges and the
cone of a ball joint), iterated per frame from the previous frame's solution.

Before solving, the source is put where the character stands: scaled (``JointMap.scale``), turned about the
vertical so that the first frame's root heading is the character's rest heading, and moved so that the first
frame's root is above the character's rest root. Afterwards the whole motion is lifted or lowered so that the
lowest point of any foot geom over the clip is at z = 0 (``ground="clip"``), or, per frame, the lowest foot point
is put at z = 0 in every frame where the source stands on its ground (``ground="frame"``, contact-aware).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from optiq import quat
from optiq.clip import Clip
from optiq.skeleton import Skeleton

from .characters import Character, CharacterError
from .characters.mjcf import lowest_points
from .jointmap import JointMap, JointMapError

_FREE, _BALL = 0, 1
#: Body names that count as feet for the ground (any case): the geoms of these bodies and of bodies below them.
FOOT_WORDS = ("foot", "ankle", "toe")


@dataclass(frozen=True)
class IKOptions:
    """Settings of the per-frame solve.

    iterations: most solver steps per frame (warm-started: a few suffice); first_iterations: for the first frame,
    which starts from the rest pose. tolerance: a frame is done when a step moves qpos by less (rad or m, max
    norm). damping: Levenberg-Marquardt damping of every step. posture: weight of a pull towards the rest pose
    (``qpos0``), which settles joints no target decides (a spine between pelvis and chest). ground: ``"clip"``,
    ``"frame"`` or ``"none"`` (module docstring).
    """

    iterations: int = 8
    first_iterations: int = 200
    tolerance: float = 1e-4
    damping: float = 1e-3
    posture: float = 1e-2
    ground: str = "clip"
    solver: str = "daqp"


@dataclass
class Retargeted:
    """The result of ``retarget_ik``.

    qpos ``[T, nq]``, qvel ``[T, nv]`` (as ``clip_to_qpos`` gives them), fps. targets ``[T, P, 3]`` metres: where
    each pair's site was asked to be (after scaling, alignment and the ground shift); reached ``[T, P, 3]``: where
    it went. source_skeleton: the clip's. scale: the scale used. seconds: time spent solving (one process, wall clock).
    """

    character: Character
    joint_map: JointMap
    source_skeleton: Skeleton
    qpos: np.ndarray
    qvel: np.ndarray
    fps: float
    targets: np.ndarray
    reached: np.ndarray
    scale: float
    seconds: float
    metrics: dict = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        return len(self.qpos) / self.seconds if self.seconds > 0 else float("inf")


def retarget_ik(clip: Clip, char: Character, joint_map: JointMap, options: IKOptions | None = None, *,
                calibration: int = 0, frames: slice | None = None) -> Retargeted:
    """Solve the character's qpos for every frame of ``clip`` (any skeleton) through ``joint_map``.

    calibration: the frame of ``clip`` that stands as the character stands at rest (``_targets``). frames: the
    frames to solve (default all; calibration counts in the whole clip). Raises JointMapError listing the joints
    the clip or the character lacks. Returns a Retargeted with qpos ``[T, nq]``, qvel ``[T, nv]`` and the
    measurements of ``retarget_metrics``.
    """
    import mujoco

    options = options or IKOptions()
    if options.ground not in ("clip", "frame", "none"):
        raise ValueError(f"ground must be 'clip', 'frame' or 'none', got {options.ground!r}")
    base = char.model()
    names = [mujoco.mj_id2name(base, mujoco.mjtObj.mjOBJ_BODY, b) for b in range(base.nbody)]
    joint_map.check(clip.skeleton.names, names, f"clip {clip.name!r}", f"character {char.name!r}")
    if not -clip.num_frames <= calibration < clip.num_frames:
        raise JointMapError(f"calibration frame {calibration} is outside clip {clip.name!r} "
                            f"({clip.num_frames} frames)")
    model = _model_with_sites(char, joint_map)
    goal = _targets(clip, model, joint_map, calibration)
    keep = frames or slice(None)
    positions, rotations = goal.positions[keep], goal.rotations[keep]
    if not len(positions):
        raise JointMapError(f"frames {keep.start}:{keep.stop} of clip {clip.name!r} are empty")
    start = time.perf_counter()
    qpos = _solve(model, joint_map, positions, rotations, options)
    seconds = time.perf_counter() - start
    reached, lowest, anything = _pose_pass(model, qpos, len(joint_map.pairs))
    shift = _ground_shift(lowest, options.ground, _source_contacts(clip, joint_map, keep))
    qpos[:, _free_qpos(model)[2]] += shift
    positions = positions.copy()
    positions[..., 2] += shift[:, None]
    reached[..., 2] += shift[:, None]
    from .retarget import qpos_velocity

    out = Retargeted(char, joint_map, clip.skeleton, qpos, qpos_velocity(char, qpos, clip.dt), clip.fps,
                     positions, reached, goal.scale, seconds)
    out.metrics = retarget_metrics(out, anything + shift)
    return out


def _model_with_sites(char: Character, joint_map: JointMap):
    """The character's model with a site per pair (``optiq_ik_<i>``) at the map's offset, in the body's frame."""
    import mujoco

    spec = mujoco.MjSpec.from_string(char.mjcf_xml)
    for i, p in enumerate(joint_map.pairs):
        spec.body(p.body).add_site(name=f"optiq_ik_{i}", pos=list(p.offset), group=5, size=[0.01, 0.01, 0.01])
    model = spec.compile()
    # The saved MJCF text rounds numbers (a range of -60 degrees becomes -1.0472 rad): take the character's own
    # compiled values, so that limits and positions are exactly those of char.model() (sites add no body or joint).
    base = char.model()
    for name in ("body_pos", "body_quat", "jnt_range", "qpos0", "geom_pos", "geom_quat", "geom_size"):
        getattr(model, name)[:] = getattr(base, name)
    return model


def _free_qpos(model) -> np.ndarray:
    """qpos addresses of the free joint (7), raising when the model has none."""
    free = np.flatnonzero(model.jnt_type == _FREE)
    if not len(free):
        raise CharacterError("the character has no free joint: retargeting moves its root through the world")
    a = int(model.jnt_qposadr[free[0]])
    return np.arange(a, a + 7)


def _rest_sites(model, count: int) -> np.ndarray:
    """World positions ``[P, 3]`` of the pair sites at ``qpos0``."""
    import mujoco

    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    return data.site_xpos[_site_ids(model, count)].copy()


def _site_ids(model, count: int) -> np.ndarray:
    """Site ids ``[P]`` of the pair sites (MuJoCo orders sites by body, not by when they were added)."""
    return np.array([model.site(f"optiq_ik_{i}").id for i in range(count)])


def _scale(frame: np.ndarray, rest: np.ndarray, joint_map: JointMap) -> float:
    """The map's scale; for ``"height"`` the ratio of the vertical spans of the mapped sites at the character's
    rest pose ``rest [P, 3]`` and of the mapped joints at the source's calibration frame ``frame [P, 3]``."""
    if joint_map.scale != "height":
        return float(joint_map.scale)
    span_s, span_t = np.ptp(frame[:, 2]), np.ptp(rest[:, 2])
    if span_s <= 0:
        raise JointMapError("scale \"height\": the mapped joints of the source span no height at the calibration "
                            "frame", joint_map.source_path)
    return float(span_t / span_s)


def _heading(src: np.ndarray, tgt: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The rotation about z ``[4]`` that best turns the points ``src [P, 3]`` onto ``tgt [P, 3]`` (weighted 2-D
    Procrustes of the horizontal positions about their weighted centroids): the difference of their facings."""
    w = weights / weights.sum()
    a = src[:, :2] - w @ src[:, :2]
    b = tgt[:, :2] - w @ tgt[:, :2]
    cross = np.sum(w * (a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]))
    dot = np.sum(w * (a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1]))
    return quat.from_axis_angle(np.array([0.0, 0.0, 1.0]), np.array(np.arctan2(cross, dot)))


def _lateral_pair(skeleton: Skeleton, index: np.ndarray, root: int, rest: np.ndarray) -> tuple[int, int] | None:
    """The two pairs just below the root pair (no mapped joint between) that lie furthest apart horizontally in
    the character's rest pose ``rest [P, 3]``: the hips. None when there are fewer than two."""
    mapped = {int(j): i for i, j in enumerate(index)}
    below = []
    for i, j in enumerate(index):
        p = int(skeleton.parents[j])
        while p >= 0 and p not in mapped:
            p = int(skeleton.parents[p])
        if p == root:
            below.append(i)
    if len(below) < 2:
        return None
    gaps = [(np.linalg.norm(rest[a, :2] - rest[b, :2]), a, b) for k, a in enumerate(below) for b in below[k + 1:]]
    _, a, b = max(gaps)
    return a, b


def _facing(src: np.ndarray, tgt: np.ndarray, pair: tuple[int, int] | None, weights: np.ndarray) -> np.ndarray:
    """The turn about z ``[4]`` from the source's facing at calibration to the character's at rest: the angle
    between the horizontal vectors joining the ``pair`` (the hips: their line is what a stride turns least), or a
    Procrustes fit of all pairs when there is no such pair."""
    if pair is None:
        return _heading(src, tgt, weights)
    a, b = pair
    u, v = src[a, :2] - src[b, :2], tgt[a, :2] - tgt[b, :2]
    angle = np.arctan2(u[0] * v[1] - u[1] * v[0], u @ v)
    return quat.from_axis_angle(np.array([0.0, 0.0, 1.0]), np.array(angle))


@dataclass(frozen=True)
class _Targets:
    """What the solve is asked: site positions ``[T, P, 3]`` m and body rotations ``[T, P, 4]`` wxyz, the scale."""

    positions: np.ndarray
    rotations: np.ndarray
    scale: float


def _targets(clip: Clip, model, joint_map: JointMap, calibration: int) -> _Targets:
    """Where each pair's site should be and how its body should be turned, every frame.

    Calibration frame ``c`` (the source standing as the character stands at rest, e.g. a T-pose or the first
    frame of a walk): the scale (``"height"``) and the heading ``Y`` (the turn about z that lines the source's hips
    up with the character's, ``_facing``) come from it; the root's horizontal position at ``c`` goes over the character's rest
    root. A body's rotation target is its rest rotation ``B`` turned by what its source joint turned since ``c``:
    ``Y R_s(t) R_s(c)^-1 Y^-1 B Q`` (``Q``: the pair's rotation offset, the body's rotation at ``c``).
    """
    import mujoco

    sk = clip.skeleton
    index = np.array([sk.index(s) for s in joint_map.sources])
    pos, rot = clip.forward_kinematics()
    root = sk.index(joint_map.root_source(sk))
    root_pos = pos[calibration, root]
    pos, rot = pos[:, index], rot[:, index]
    rest = _rest_sites(model, len(index))
    scale = _scale(pos[calibration], rest, joint_map)
    weights = np.array([max(p.position, 1e-3) for p in joint_map.pairs])
    y = _facing(pos[calibration], rest, _lateral_pair(sk, index, root, rest), weights)
    root_pair = list(index).index(root) if root in index else 0
    origin = np.array([root_pos[0], root_pos[1], 0.0])
    centre = np.array([rest[root_pair, 0], rest[root_pair, 1], 0.0])
    world = quat.rotate(y, scale * (pos - origin)) + centre
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    body_rest = np.array([data.xquat[model.body(p.body).id] for p in joint_map.pairs])
    offsets = np.array([p.rotation for p in joint_map.pairs])
    delta = quat.qmul(rot, quat.conj(rot[calibration]))  # [T, P, 4] world rotation since c
    turned = quat.qmul(quat.qmul(y, delta), quat.conj(y))
    rotations = quat.qmul(turned, quat.qmul(body_rest, offsets))
    return _Targets(world, quat.make_continuous(rotations), scale)


def _solve(model, joint_map: JointMap, targets: np.ndarray, rotations: np.ndarray, options: IKOptions) -> np.ndarray:
    """qpos ``[T, nq]``: per frame, mink steps from the previous frame's solution until a step is smaller than
    ``tolerance`` or ``iterations`` steps were taken."""
    import mink

    config = mink.Configuration(model)
    tasks = [mink.FrameTask(f"optiq_ik_{i}", "site", position_cost=p.position, orientation_cost=p.orientation,
                            lm_damping=1.0) for i, p in enumerate(joint_map.pairs)]
    posture = mink.PostureTask(model, cost=options.posture)
    posture.set_target(model.qpos0)
    limits = [mink.ConfigurationLimit(model)]
    # The first frame starts from the rest pose: the calibration put the source's root above the rest root.
    q = model.qpos0.copy()
    out = np.empty((len(targets), model.nq))
    for t in range(len(targets)):
        for task, p, r in zip(tasks, targets[t], rotations[t], strict=True):
            task.set_target(mink.SE3.from_rotation_and_translation(mink.SO3(r), p))
        config.update(q)
        for _ in range(options.first_iterations if t == 0 else options.iterations):
            v = mink.solve_ik(config, [*tasks, posture], 1.0, options.solver, damping=options.damping,
                              limits=limits)
            config.integrate_inplace(v, 1.0)
            if np.abs(v).max() < options.tolerance:
                break
        q = config.q.copy()
        out[t] = q
    return out


def _foot_geoms(model) -> np.ndarray:
    """Geom ids of the feet: geoms of bodies whose name (or an ancestor's) has foot, ankle or toe in it."""
    import mujoco

    foot = np.zeros(model.nbody, dtype=bool)
    for b in range(1, model.nbody):
        name = (mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b) or "").lower()
        foot[b] = foot[model.body_parentid[b]] or any(w in name for w in FOOT_WORDS)
    return np.flatnonzero(foot[model.geom_bodyid] & (model.geom_bodyid > 0))


def _pose_pass(model, qpos: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pass of MuJoCo's kinematics over the frames: site positions ``[T, P, 3]``, the lowest foot point ``[T]``
    and the lowest point of any geom of the character ``[T]`` (metres)."""
    import mujoco

    data = mujoco.MjData(model)
    body = np.flatnonzero(model.geom_bodyid > 0)
    feet = _foot_geoms(model)
    is_foot = np.isin(body, feet) if len(feet) else np.ones(len(body), dtype=bool)
    ids = _site_ids(model, count)
    sites = np.empty((len(qpos), count, 3))
    feet_low, all_low = np.empty(len(qpos)), np.empty(len(qpos))
    for t, row in enumerate(qpos):
        data.qpos[:] = row
        mujoco.mj_kinematics(model, data)
        sites[t] = data.site_xpos[ids]
        low = lowest_points(model, data, body)
        feet_low[t], all_low[t] = low[is_foot].min(), low.min()
    return sites, feet_low, all_low


def lowest_over_frames(model, qpos: np.ndarray) -> np.ndarray:
    """The lowest point ``[T]`` (metres, world z) of any geom of the character (geoms of the world body, the
    floor, excluded) in each pose of qpos ``[T, nq]``."""
    import mujoco

    data = mujoco.MjData(model)
    body = np.flatnonzero(model.geom_bodyid > 0)
    out = np.empty(len(qpos))
    for t, row in enumerate(qpos):
        data.qpos[:] = row
        mujoco.mj_kinematics(model, data)
        out[t] = lowest_points(model, data, body).min()
    return out


def _source_contacts(clip: Clip, joint_map: JointMap, keep: slice, band: float = 0.03) -> np.ndarray:
    """Frames ``[T]`` in which the source stands on the ground: its lowest mapped foot joint (source names with
    foot, ankle or toe) is within ``band`` metres of its lowest over the clip. All frames when no joint is a foot."""
    pos = clip.forward_kinematics()[0][keep]
    feet = [clip.skeleton.index(s) for s in dict.fromkeys(joint_map.sources)
            if any(w in s.lower() for w in FOOT_WORDS)]
    if not feet:
        return np.ones(len(pos), dtype=bool)
    low = pos[:, feet, 2].min(axis=1)
    return low <= low.min() + band


def _ground_shift(lowest: np.ndarray, ground: str, contacts: np.ndarray) -> np.ndarray:
    """The vertical shift ``[T]`` of the root that puts the feet on the ground (``IKOptions.ground``): ``clip``
    one shift for the clip; ``frame`` the lowest foot point at z = 0 in every frame where the source stands on
    the ground (``contacts [T]``), the shift interpolated across flight phases and never into the ground."""
    if ground == "clip":
        return np.full(len(lowest), -lowest.min())
    if ground == "frame":
        frames = np.arange(len(lowest))
        shift = np.interp(frames, frames[contacts], -lowest[contacts])
        return np.maximum(shift, -lowest)
    return np.zeros(len(lowest))


def retarget_metrics(result: Retargeted, lowest: np.ndarray) -> dict:
    """Measurements of a retargeted motion (JSON-able); lowest ``[T]``: the lowest point of the character in each
    frame (``lowest_over_frames``).

    end_effectors: per pair (by source joint), the distance between its target and where its site went, mean and
    max in mm, and whether it is an end effector (``JointMap.end_effectors``); mean_mm, max_mm: over all pairs;
    limits: the number of (frame, joint) values outside their range and the largest excess in rad (hinges: the
    range; ball joints: the rotation angle over the range's upper end); penetration_mm: the deepest any geom of the
    character goes below z = 0; frames_per_second of the solve.
    """
    err = np.linalg.norm(result.reached - result.targets, axis=-1) * 1000.0
    ends = set(result.joint_map.end_effectors(result.source_skeleton))
    effectors = {p.source: {"body": p.body, "mean_mm": float(err[:, i].mean()), "max_mm": float(err[:, i].max()),
                            "end_effector": p.source in ends}
                 for i, p in enumerate(result.joint_map.pairs)}
    return {"frames": len(result.qpos), "fps": result.fps, "scale": result.scale, "end_effectors": effectors,
            "mean_mm": float(err.mean()), "max_mm": float(err.max()),
            **limit_summary(result.character.model(), result.qpos, lowest),
            "frames_per_second": result.frames_per_second}


def limit_summary(model, qpos: np.ndarray, lowest: np.ndarray) -> dict:
    """``limit_violations`` and ``penetration_mm`` (mm below z = 0 of the lowest point over ``lowest [T]``)."""
    count, worst = limit_violations(model, qpos)
    return {"limit_violations": count, "limit_violation_max_rad": worst,
            "penetration_mm": max(-float(lowest.min()) * 1000.0, 0.0) + 0.0}


def limit_violations(model, qpos: np.ndarray, tol: float = 1e-6) -> tuple[int, float]:
    """How many (frame, joint) values of qpos ``[T, nq]`` lie outside their joint's range by more than ``tol``,
    and the largest excess (rad, or m for slides)."""
    count, worst = 0, 0.0
    for j in np.flatnonzero(model.jnt_limited.astype(bool)):
        kind, a = int(model.jnt_type[j]), int(model.jnt_qposadr[j])
        lo, hi = model.jnt_range[j]
        if kind == _FREE:
            continue
        if kind == _BALL:
            excess = np.linalg.norm(quat.to_rotvec(qpos[:, a:a + 4]), axis=1) - hi
        else:
            excess = np.maximum(lo - qpos[:, a], qpos[:, a] - hi)
        count += int(np.sum(excess > tol))
        worst = max(worst, float(excess.max(initial=0.0)))
    return count, max(worst, 0.0)
