"""Reference motion on a character.

Same topology (this module's first half): a clip whose joints are the character's plays on it directly. Each
joint's local rotation becomes the qpos of its body's joints: a free root takes the root position and rotation,
a ball joint the quaternion (w, x, y, z, MuJoCo's order), one to three hinges the angles of an Euler
decomposition about their axes. A body whose rest frame is rotated (``G``, its world rotation at ``qpos0``) takes
the clip's rotation seen in that frame, ``G^-1 q G``: optiq's rest frames are world-aligned, MJCF bodies need not
be. qvel comes from finite differences of qpos, as ``mj_differentiatePos`` takes them (ball and free-joint angular
velocities in the body frame, free-joint linear velocity in the world frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from optiq import quat
from optiq.clip import Clip
from optiq.errors import SkeletonMismatchError

from .characters import Character, CharacterError

_FREE, _BALL, _SLIDE, _HINGE = 0, 1, 2, 3  # mujoco.mjtJoint values


@dataclass(frozen=True)
class _Part:
    """The MuJoCo joints of one optiq joint's body: kind free, ball, hinges (1-3) or none."""

    joint: int  # optiq joint index
    kind: str
    qpos: np.ndarray  # qpos addresses
    rest: np.ndarray  # [4] the body's world rotation at qpos0
    axes: np.ndarray  # [k, 3] hinge axes (body frame)


def _layout(char: Character) -> list[_Part]:
    import mujoco

    m = char.model()
    data = mujoco.MjData(m)
    mujoco.mj_kinematics(m, data)
    parts = []
    for j, b in enumerate(char.body_ids()):
        joints = np.flatnonzero(m.jnt_bodyid == b)
        types = m.jnt_type[joints].tolist()
        rest = data.xquat[b].copy()
        if not types:
            kind = "none"
        elif types == [_FREE]:
            kind = "free"
        elif types == [_BALL]:
            kind = "ball"
        elif set(types) == {_HINGE} and len(types) <= 3:
            kind = "hinge"
        else:
            names = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, int(i)) for i in joints]
            raise CharacterError(f"character {char.name!r}: body {char.body_names[j]} has joints {names} of types "
                                 f"{types}; same-topology playback handles a free joint, a ball joint or 1-3 hinges")
        if kind == "free" and j != 0:
            raise CharacterError(f"character {char.name!r}: free joint on {char.body_names[j]}, not on the root")
        adr = np.concatenate([np.arange(m.jnt_qposadr[i], m.jnt_qposadr[i] + {0: 7, 1: 4}.get(m.jnt_type[i], 1))
                              for i in joints]) if len(joints) else np.zeros(0, dtype=int)
        axes = m.jnt_axis[joints] if kind == "hinge" else np.zeros((0, 3))
        parts.append(_Part(j, kind, adr.astype(int), rest, axes))
    return parts


def playable_root(clip: Clip) -> str:
    """The joint a body built for ``clip`` should have as its root: the clip's root, unless that root stands
    still and a joint below it carries the motion (Bandai-Namco's ``joint_Root`` above ``Hips``): a free joint
    must be a body's only way to move through the world, so that joint becomes the root."""
    if clip.local_translations is None or np.ptp(clip.root_translation, axis=0).max() > 1e-6:
        return clip.skeleton.names[0]
    moving = np.ptp(clip.local_translations, axis=0).max(axis=1) > 1e-6
    moving[0] = False
    return clip.skeleton.names[int(np.argmax(moving))] if moving.any() else clip.skeleton.names[0]


def fit_clip(clip: Clip, char: Character) -> Clip:
    """``clip`` rerooted at the character's root when the character was built without the clip's still root
    (``playable_root``); the clip itself otherwise."""
    root = char.joint_names[0]
    if clip.skeleton.names[0] != root and root in clip.skeleton.names:
        return clip.rerooted(root)
    return clip


def check_fit(clip: Clip, char: Character) -> np.ndarray:
    """Index ``[J]`` of each character joint in ``clip``; raises SkeletonMismatchError naming the joints that
    are missing or hang from another parent when the clip does not fit the character."""
    names = clip.skeleton.names
    missing = [n for n in char.joint_names if n not in names]
    extra = [n for n in names if n not in char.joint_names]
    if missing or extra:
        parts = ([f"missing joint(s) {', '.join(missing)}"] if missing else []) + \
                ([f"joint(s) {', '.join(extra)} the character does not have"] if extra else [])
        raise SkeletonMismatchError(f"clip {clip.name!r} does not fit character {char.name!r}: {'; '.join(parts)} "
                                    "(a clip of another skeleton needs retargeting with a joint map)")
    index = np.array([names.index(n) for n in char.joint_names])
    sk_parents = clip.skeleton.parents[index]
    char_parents = char.skeleton().parents
    clip_parent = [None if p < 0 else names[p] for p in sk_parents]
    char_parent = [None if p < 0 else char.joint_names[p] for p in char_parents]
    wrong = [n for n, a, b in zip(char.joint_names, clip_parent, char_parent, strict=True) if a != b]
    if wrong:
        raise SkeletonMismatchError(f"clip {clip.name!r} does not fit character {char.name!r}: joint(s) "
                                    f"{', '.join(wrong)} hang from other parents in the clip")
    return index


def clip_to_qpos(clip: Clip, char: Character) -> tuple[np.ndarray, np.ndarray]:
    """Play ``clip`` on ``char`` (same topology: the clip has the character's joints, or those and a still root
    above them, see ``fit_clip``).

    Returns qpos ``[T, nq]`` (metres, unit quaternions wxyz, radians) and qvel ``[T, nv]`` (m/s, rad/s; central
    differences, one-sided at the first and last frame). Raises SkeletonMismatchError when the clip does not fit.
    """
    clip = fit_clip(clip, char)
    index = check_fit(clip, char)
    m = char.model()
    qpos = np.broadcast_to(m.qpos0, (clip.num_frames, m.nq)).copy()
    rotations_to_qpos(char, clip.rotations[:, index], qpos, clip.root_translation)
    return qpos, qpos_velocity(char, qpos, clip.dt)


def rotations_to_qpos(char: Character, rotations: np.ndarray, qpos: np.ndarray,
                      root_translation: np.ndarray | None = None) -> np.ndarray:
    """Write local joint rotations ``[T, J, 4]`` wxyz (the character's joints, in its order; the root's in the
    world) into ``qpos [T, nq]`` (in place; returned): each body's ball quaternion or hinge angles, and the free
    root's position and rotation when ``root_translation [T, 3]`` (m) is given (else its entries are left as
    they are). ``QposWriter(char)`` does the same with the layout read once (a prior's PD targets per step)."""
    return QposWriter(char)(rotations, qpos, root_translation)


class QposWriter:
    """``rotations_to_qpos`` for one character, its joint layout read once: ball joints in one vectorised
    product, single hinges in one swing-twist, other hinge sets by their Euler decomposition; bodies whose rest
    frames are world-aligned (generated characters, the DeepMimic humanoid) skip the change of frame."""

    def __init__(self, char: Character):
        self.char = char
        parts = [p for p in _layout(char) if p.kind != "none"]
        self.free = next((p for p in parts if p.kind == "free"), None)
        balls = [p for p in parts if p.kind == "ball"]
        single = [p for p in parts if p.kind == "hinge" and len(p.axes) == 1]
        self.hinges = [p for p in parts if p.kind == "hinge" and len(p.axes) > 1]
        self.ball_joints = np.array([p.joint for p in balls], dtype=int)
        self.ball_qpos = np.array([p.qpos for p in balls], dtype=int).reshape(-1, 4)
        self.ball_rest = np.array([p.rest for p in balls]).reshape(-1, 4)
        self.hinge_joints = np.array([p.joint for p in single], dtype=int)
        self.hinge_qpos = np.array([p.qpos[0] for p in single], dtype=int)
        self.hinge_rest = np.array([p.rest for p in single]).reshape(-1, 4)
        axes = np.array([p.axes[0] for p in single]).reshape(-1, 3)
        self.hinge_axes = axes / np.maximum(np.linalg.norm(axes, axis=1, keepdims=True), 1e-12)
        identity = np.array([1.0, 0.0, 0.0, 0.0])
        self.aligned = bool(np.allclose(np.concatenate((self.ball_rest, self.hinge_rest)), identity, atol=1e-12))

    def _in_rest_frame(self, rotations: np.ndarray, rest: np.ndarray) -> np.ndarray:
        """Rotations ``[T, K, 4]`` in their bodies' own rest frames ``rest [K, 4]``: ``G^-1 q G``."""
        if self.aligned:
            return rotations
        return quat.qmul(quat.qmul(quat.conj(rest), rotations), rest)

    def __call__(self, rotations: np.ndarray, qpos: np.ndarray,
                 root_translation: np.ndarray | None = None) -> np.ndarray:
        char, free = self.char, self.free
        if free is not None and root_translation is not None:
            qpos[:, free.qpos[:3]] = root_translation
            qpos[:, free.qpos[3:]] = quat.make_continuous(quat.qmul(rotations[:, free.joint], free.rest))
        if len(self.ball_joints):
            body = self._in_rest_frame(rotations[:, self.ball_joints], self.ball_rest)  # [T, B, 4]
            qpos[:, self.ball_qpos] = quat.make_continuous(body)
        if len(self.hinge_joints):
            # hinge_angles' swing-twist for every single hinge at once: the twist about each axis, in (-pi, pi].
            body = self._in_rest_frame(rotations[:, self.hinge_joints], self.hinge_rest)  # [T, H, 4]
            angle = 2.0 * np.arctan2((body[..., 1:] * self.hinge_axes).sum(-1), body[..., 0])
            qpos[:, self.hinge_qpos] = (angle + np.pi) % (2.0 * np.pi) - np.pi
        for part in self.hinges:
            body = quat.qmul(quat.qmul(quat.conj(part.rest), rotations[:, part.joint]), part.rest)
            qpos[:, part.qpos] = hinge_angles(body, part.axes, f"{char.name}: {char.body_names[part.joint]}")
        return qpos


def hinge_angles(rotations: np.ndarray, axes: np.ndarray, what: str = "hinges") -> np.ndarray:
    """Angles ``[T, k]`` (radians) of ``k`` = 1-3 hinges about ``axes [k, 3]`` (applied in order, intrinsic, as
    MuJoCo composes a body's joints) that best give ``rotations [T, 4]`` wxyz.

    One hinge: the twist about its axis (swing-twist). Two or three orthogonal hinges: an Euler decomposition in
    the frame of their axes (with two, the rotation about the axis normal to both is dropped).
    """
    axes = np.asarray(axes, dtype=np.float64)
    axes = axes / np.linalg.norm(axes, axis=1, keepdims=True)
    if len(axes) == 1:
        angle = 2.0 * np.arctan2(rotations[:, 1:] @ axes[0], rotations[:, 0])
        return ((angle + np.pi) % (2.0 * np.pi) - np.pi)[:, None]  # either sign of the quaternion: (-pi, pi]
    gram = axes @ axes.T
    if not np.allclose(gram, np.eye(len(axes)), atol=1e-6):
        raise CharacterError(f"{what}: hinge axes {axes.round(4).tolist()} are not orthogonal; same-topology "
                             "playback decomposes only orthogonal hinges")
    third = np.cross(axes[0], axes[1])
    frame = np.stack((axes[0], axes[1], third), axis=1)  # columns: the hinge axes, a proper rotation
    q_frame = quat.from_matrix(frame)
    seen = quat.qmul(quat.qmul(quat.conj(q_frame), rotations), q_frame)
    angles = quat.to_euler(seen, "XYZ")
    if len(axes) == 2:
        return angles[:, :2]
    return angles * np.array([1.0, 1.0, np.sign(axes[2] @ third)])


def qpos_velocity(char: Character, qpos: np.ndarray, dt: float) -> np.ndarray:
    """qvel ``[T, nv]`` from qpos ``[T, nq]`` sampled every ``dt`` seconds: central differences inside, one-sided
    at the ends, each the velocity ``mj_differentiatePos`` gives between the two frames."""
    t = len(qpos)
    if t < 2:
        return np.zeros((t, char.model().nv))
    nxt = np.concatenate((qpos[1:], qpos[-1:]))
    prv = np.concatenate((qpos[:1], qpos[:-1]))
    span = np.full(t, 2.0 * dt)
    span[0] = span[-1] = dt
    return differentiate_pos(char, prv, nxt) / span[:, None]


def differentiate_pos(char: Character, qpos1: np.ndarray, qpos2: np.ndarray) -> np.ndarray:
    """``mj_differentiatePos`` for many frames at once, with a time step of 1: ``[T, nv]`` from two ``[T, nq]``."""
    m = char.model()
    out = np.empty((len(qpos1), m.nv))
    for j in range(m.njnt):
        kind, qa, va = int(m.jnt_type[j]), int(m.jnt_qposadr[j]), int(m.jnt_dofadr[j])
        if kind == _FREE:
            out[:, va:va + 3] = qpos2[:, qa:qa + 3] - qpos1[:, qa:qa + 3]
            out[:, va + 3:va + 6] = _sub_quat(qpos2[:, qa + 3:qa + 7], qpos1[:, qa + 3:qa + 7])
        elif kind == _BALL:
            out[:, va:va + 3] = _sub_quat(qpos2[:, qa:qa + 4], qpos1[:, qa:qa + 4])
        else:
            out[:, va] = qpos2[:, qa] - qpos1[:, qa]
    return out


def _sub_quat(q2: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """MuJoCo's ``mju_subQuat``: the rotation vector of ``q1^-1 q2`` (in q1's frame), the shorter way round."""
    return quat.to_rotvec(quat.qmul(quat.conj(q1), q2))


def body_positions(char: Character, qpos: np.ndarray) -> np.ndarray:
    """World positions ``[T, J, 3]`` (metres) of the bodies of the character's optiq joints, posed by qpos
    ``[T, nq]`` through MuJoCo's own kinematics (``mj_kinematics``, one frame at a time)."""
    m = char.model()
    qpos = np.asarray(qpos, dtype=np.float64)
    if qpos.ndim != 2 or qpos.shape[1] != m.nq:
        raise CharacterError(f"character {char.name!r}: qpos has shape {qpos.shape}, expected (T, {m.nq})")
    return kinematics(m, qpos, char.body_ids())[0]


def kinematics(model, qpos: np.ndarray, bodies: np.ndarray, com_of: int | None = None) -> tuple:
    """MuJoCo's kinematics of every pose in qpos ``[T, nq]`` on a scratch MjData: world positions ``[T, B, 3]`` (m)
    and rotations ``[T, B, 4]`` wxyz of body ids ``bodies [B]``, and, when ``com_of`` names a body, the centre of
    mass ``[T, 3]`` (m) of its subtree (``mj_comPos``), else None. One call per frame: MuJoCo has no batched
    kinematics, and this is the one loop over frames that every per-frame pose in optiq-rl goes through."""
    import mujoco

    data = mujoco.MjData(model)
    xpos = np.empty((len(qpos), len(bodies), 3))
    xquat = np.empty((len(qpos), len(bodies), 4))
    com = None if com_of is None else np.empty((len(qpos), 3))
    for t, row in enumerate(qpos):
        data.qpos[:] = row
        mujoco.mj_kinematics(model, data)
        xpos[t], xquat[t] = data.xpos[bodies], data.xquat[bodies]
        if com is not None:
            mujoco.mj_comPos(model, data)
            com[t] = data.subtree_com[com_of]
    return xpos, xquat, com


# --- Reference datasets: retargeted motion stored as an optiq dataset on the character's skeleton --------------
#
# Second half of the module: a clip of the character's own topology plays directly (``clip_to_qpos``); a clip of
# another skeleton goes through a joint map and inverse kinematics (``optiq_rl.ik``). Either way the result is an
# ordinary dataset on ``Character.skeleton()`` whose clips also carry ``qpos [T, nq]`` and ``qvel [T, nv]``
# (schema version 3 extras), so it can be viewed, labelled and trained on like any other.

#: The extras a reference dataset stores per frame.
REFERENCE_EXTRAS = ("qpos", "qvel")


@dataclass
class Reference:
    """One retargeted clip: ``clip`` on the character's skeleton (local rotations of its bodies, root at the root
    body), qpos ``[T, nq]``, qvel ``[T, nv]``, and ``metrics`` (``optiq_rl.ik.retarget_metrics``'s keys)."""

    clip: Clip
    qpos: np.ndarray
    qvel: np.ndarray
    metrics: dict


def qpos_to_clip(char: Character, qpos: np.ndarray, fps: float, name: str = "clip",
                 labels: dict | None = None) -> Clip:
    """The Clip on ``char.skeleton()`` that MuJoCo's pose ``qpos [T, nq]`` shows: each joint's world rotation
    relative to its rest (``xquat G^-1``, G the body's rest rotation) made local to its parent's, the root body's
    world position as the root translation. Its forward kinematics gives the bodies' world positions: where a
    body's origin moves against its parent (a hinge placed off the body's origin, as Humanoid-v5's waist), the clip
    carries local translations ``[T, J, 3]``."""
    m = char.model()
    skeleton = char.skeleton()
    ids = char.body_ids()
    rest = kinematics(m, m.qpos0[None], ids)[1][0]
    xpos, xquat, _ = kinematics(m, qpos, ids)
    world = quat.qmul(xquat, quat.conj(rest))
    parents = skeleton.parents
    parent = np.maximum(parents, 0)
    parent_world = np.where(parents[None, :, None] >= 0, world[:, parent], quat.identity((1, 1)))
    local = quat.make_continuous(quat.normalize(quat.qmul(quat.conj(parent_world), world)))
    # Each joint's offset from its parent, in the parent's rest-aligned frame, frame by frame.
    moved = quat.rotate(quat.conj(parent_world), xpos - xpos[:, parent])
    moved[:, 0] = xpos[:, 0]
    fixed = np.abs(moved[:, 1:] - skeleton.offsets[1:]).max(initial=0.0) < 1e-9
    return Clip(skeleton, fps, xpos[:, 0].copy(), local, None if fixed else moved, name=name,
                labels=dict(labels or {}))


def retarget_clip(clip: Clip, char: Character, joint_map=None, options=None, *, calibration: int = 0,
                  frames: slice | None = None) -> Reference:
    """``clip`` on ``char``: directly when no ``joint_map`` is given (same topology: ``clip_to_qpos``, raising
    SkeletonMismatchError when the clip does not fit), else by inverse kinematics through the map
    (``optiq_rl.ik.retarget_ik``; options: ``IKOptions``; calibration and frames as there)."""
    import time

    from .ik import retarget_ik

    if joint_map is None:
        part = clip[frames] if frames is not None else clip
        start = time.perf_counter()
        qpos, qvel = clip_to_qpos(part, char)
        seconds = time.perf_counter() - start
        metrics = direct_metrics(part, char, qpos, seconds)
        method = "direct"
    else:
        result = retarget_ik(clip, char, joint_map, options, calibration=calibration, frames=frames)
        qpos, qvel, metrics = result.qpos, result.qvel, result.metrics
        method = f"ik:{joint_map.name or 'map'}"
    labels = {**clip.labels, "character": char.name, "retarget": method}
    return Reference(qpos_to_clip(char, qpos, clip.fps, clip.name, labels), qpos, qvel, metrics)


def direct_metrics(clip: Clip, char: Character, qpos: np.ndarray, seconds: float) -> dict:
    """``retarget_metrics``'s measurements for a clip played directly: the error of each joint is the distance
    between the clip's own forward kinematics and MuJoCo's body position (zero up to rounding)."""
    from .ik import limit_summary, lowest_over_frames

    fitted = fit_clip(clip, char)
    index = check_fit(fitted, char)
    source = fitted.forward_kinematics()[0][:, index]
    err = np.linalg.norm(body_positions(char, qpos) - source, axis=-1) * 1000.0
    skeleton = char.skeleton()
    leaves = set(range(len(char.joint_names))) - set(skeleton.parents.tolist())
    effectors = {n: {"body": b, "mean_mm": float(err[:, j].mean()), "max_mm": float(err[:, j].max()),
                     "end_effector": j in leaves}
                 for j, (n, b) in enumerate(zip(char.joint_names, char.body_names, strict=True))}
    return {"frames": len(qpos), "fps": clip.fps, "scale": 1.0, "end_effectors": effectors,
            "mean_mm": float(err.mean()), "max_mm": float(err.max()),
            **limit_summary(char.model(), qpos, lowest_over_frames(char.model(), qpos)),
            "frames_per_second": len(qpos) / seconds if seconds > 0 else float("inf")}


def source_clips(path, clips=None) -> list[Clip]:
    """The clips to retarget from ``path``: a dataset (``.parquet``, ``.h5``; every clip, or those named or
    indexed in ``clips``) or a motion file (its clips, loaded by optiq's loaders)."""
    from pathlib import Path

    import optiq

    if Path(path).suffix.lower() in (".parquet", ".h5", ".hdf5"):
        with optiq.open_dataset(path) as ds:
            chosen = clips or range(len(ds))
            return [ds.read_clip(int(c) if isinstance(c, str) and c.isdigit() else c) for c in chosen]
    loaded = optiq.load(path)
    if clips:
        by_name = {c.name: c for c in loaded}
        return [loaded[int(c)] if str(c).isdigit() else by_name[c] if c in by_name else _no_clip(path, c, by_name)
                for c in clips]
    return loaded


def _no_clip(path, name, known) -> Clip:
    from optiq.errors import OptiqError

    raise OptiqError(f"no clip {name!r}; clips: {', '.join(known)}", path)


def write_reference(path, references: list[Reference]) -> None:
    """Write ``references`` (one character) as a dataset at ``path`` (atomically): the clips on the character's
    skeleton, with ``qpos`` and ``qvel`` per frame (schema version 3 extras)."""
    from optiq.datasets import write_dataset

    write_dataset(path, [r.clip for r in references],
                  extras=[{"qpos": r.qpos, "qvel": r.qvel} for r in references])


def load_reference(path, clip: str | int = 0) -> tuple[Clip, np.ndarray, np.ndarray]:
    """A clip of a reference dataset with its qpos ``[T, nq]`` and qvel ``[T, nv]`` (float64)."""
    import optiq
    from optiq.errors import DatasetError

    with optiq.open_dataset(path) as ds:
        missing = [k for k in REFERENCE_EXTRAS if k not in getattr(ds, "extras", {})]
        if missing:
            raise DatasetError(f"not a reference dataset: no {', '.join(missing)} per frame (write one with "
                               "'optiq rl retarget')", path)
        arrays = ds.arrays(clip, fields=list(REFERENCE_EXTRAS))
        return ds.read_clip(clip), arrays["qpos"].astype(np.float64), arrays["qvel"].astype(np.float64)
