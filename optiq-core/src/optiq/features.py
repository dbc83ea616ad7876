"""State features: a Clip as ``[T, F]`` float32 rows that a sequence model reads and predicts, and back.

Each row describes frame t in the body's own heading frame, so that the same motion facing another way, or
starting elsewhere, gives the same rows (heading-invariant), and uses frames t and t - 1 only (causal: velocities
are backward differences, frame 0's velocities and yaw rate are 0). Central differences would hand a model the
next frame inside its input. Layout (``feature_layout``), ``E`` the size of one rotation (6 for ``"6d"``, 4 for
``"quat"``, 3 for ``"expmap"``), ``J`` joints, the root (the joint carrying the global motion) excluded from the
per-joint slices:

=================  ==========  =====  ===================================================================
slice              size        group  meaning
=================  ==========  =====  ===================================================================
``root_height``    1           pos    root z (metres above the ground plane z = 0)
``root_velocity``  3           vel    root linear velocity (m/s) in the heading frame at t
``yaw_rate``       1           vel    heading change (rad/s), wrapped to (-pi, pi] per frame
``root_tilt``      E           pos    root world rotation with the heading removed
``rotations``      (J - 1) E   pos    local rotation of every other joint (parent frame); see below
``positions``      (J - 1) 3   pos    joint position minus root position (metres), heading frame
``velocities``     (J - 1) 3   vel    joint world linear velocity (m/s), heading frame
``contacts``       n_feet      pos    foot contact flags 0/1 (``FeatureSpec(contacts=True)`` only)
=================  ==========  =====  ===================================================================

The heading is the root's rotation about world Z (the twist of its quaternion about Z); the heading frame turns
world vectors by minus that angle. Joints above the root (a dummy top joint such as Bandai-Namco's ``joint_Root``)
hold their world rotation in the heading frame instead of their local one, since turning a whole clip turns
them. ``defeaturize`` inverts the rows: the heading is integrated from the yaw rate,
the root's horizontal position from its velocity, its height is read, rotations are decoded and world positions
follow from forward kinematics with the skeleton.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING

import numpy as np

from . import quat
from .axes import axis_matrix
from .clip import Clip
from .contacts import find_feet, foot_contacts, top_chain
from .errors import OptiqError, SkeletonMismatchError
from .skeleton import Skeleton

if TYPE_CHECKING:
    from .loaders.npy_traj import TrajectorySpec

ROTATIONS = {"6d": 6, "quat": 4, "expmap": 3}
"""Rotation encodings and their sizes: ``6d`` the first two columns of the rotation matrix (Zhou et al. 2019,
continuous), ``quat`` wxyz with w >= 0, ``expmap`` the rotation vector (axis times angle, radians)."""
MOVES = 1e-3
"""A joint 'moves' when its world position spans more than 1 mm over the clip (``detect_root``)."""


@dataclass(frozen=True)
class FeatureSpec:
    """What ``featurize`` computes; JSON-serialisable, stored with a model.

    rotation: encoding of rotations (``"6d" | "quat" | "expmap"``). contacts: append foot-contact flags.
    root: name of the joint carrying the global motion; None detects it (``detect_root``).
    sim_to_real_idx, real_dof: dof map of a robot: simulation dof ``i`` is dof ``sim_to_real_idx[i]`` of the
    robot's ``real_dof`` dofs (``sim_to_real``, ``real_to_sim``); None when the data is not a robot's.
    """

    rotation: str = "6d"
    contacts: bool = False
    root: str | None = None
    sim_to_real_idx: tuple[int, ...] | None = None
    real_dof: int | None = None

    def __post_init__(self) -> None:
        if self.rotation not in ROTATIONS:
            raise OptiqError(f"feature spec: rotation {self.rotation!r} is unknown; expected one of "
                             f"{', '.join(ROTATIONS)}")
        if not isinstance(self.contacts, bool):
            raise OptiqError(f"feature spec: contacts must be true or false, got {self.contacts!r}")
        if self.root is not None and not isinstance(self.root, str):
            raise OptiqError(f"feature spec: root must be a joint name or null, got {self.root!r}")
        if (self.sim_to_real_idx is None) != (self.real_dof is None):
            raise OptiqError("feature spec: sim_to_real_idx and real_dof go together (give both or neither)")
        if self.sim_to_real_idx is not None:
            if not isinstance(self.real_dof, int) or isinstance(self.real_dof, bool) or self.real_dof < 1:
                raise OptiqError(f"feature spec: real_dof must be a positive integer, got {self.real_dof!r}")
            idx = tuple(int(i) for i in self.sim_to_real_idx)
            object.__setattr__(self, "sim_to_real_idx", idx)
            if len(set(idx)) != len(idx) or any(not 0 <= i < self.real_dof for i in idx):
                raise OptiqError(f"feature spec: sim_to_real_idx must hold distinct indices in [0, {self.real_dof}), "
                                 f"got {list(idx)}")

    def to_dict(self) -> dict:
        """Plain JSON types (lists for tuples)."""
        d = asdict(self)
        if d["sim_to_real_idx"] is not None:
            d["sim_to_real_idx"] = list(d["sim_to_real_idx"])
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> FeatureSpec:
        if not isinstance(d, dict):
            raise OptiqError(f"feature spec: expected a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise OptiqError(f"feature spec: unknown key {unknown[0]!r}; keys: {', '.join(sorted(known))}")
        d = dict(d)
        if d.get("sim_to_real_idx") is not None:
            d["sim_to_real_idx"] = tuple(d["sim_to_real_idx"])
        return cls(**d)

    @classmethod
    def from_json(cls, text: str | dict) -> FeatureSpec:
        """From ``to_json``'s string (or ``to_dict``'s dict)."""
        return cls.from_dict(json.loads(text) if isinstance(text, str) else text)


@dataclass(frozen=True)
class FeatureLayout:
    """Where each quantity sits in a feature row.

    dim: F. slices: name -> slice of F (see the module docstring). groups: ``"pos"`` and ``"vel"``, int index
    arrays into F that together cover every feature once (loss weights). root: the root joint's index.
    joints: indices of the joints of the per-joint slices, in order (every joint but the root): ``rotations``
    reshapes to ``[..., J - 1, E]``, ``positions`` and ``velocities`` to ``[..., J - 1, 3]``. feet: names of the
    feet of the ``contacts`` slice.
    """

    dim: int
    slices: dict[str, slice]
    groups: dict[str, np.ndarray]
    root: int
    joints: np.ndarray
    feet: tuple[str, ...] = field(default=())


_GROUPS = {"root_height": "pos", "root_velocity": "vel", "yaw_rate": "vel", "root_tilt": "pos", "rotations": "pos",
           "positions": "pos", "velocities": "vel", "contacts": "pos"}


def feature_layout(skeleton: Skeleton, spec: FeatureSpec = FeatureSpec()) -> FeatureLayout:
    """The layout of ``featurize``'s rows for this skeleton; the root is ``spec.root`` or ``skeleton_root``."""
    root = _root_from_spec(skeleton, spec)
    e = ROTATIONS[spec.rotation]
    n = skeleton.num_joints - 1
    feet = tuple(find_feet(skeleton)) if spec.contacts else ()
    sizes = {"root_height": 1, "root_velocity": 3, "yaw_rate": 1, "root_tilt": e, "rotations": n * e,
             "positions": n * 3, "velocities": n * 3}
    if spec.contacts:
        sizes["contacts"] = len(feet)
    slices, start = {}, 0
    for name, size in sizes.items():
        slices[name] = slice(start, start + size)
        start += size
    groups = {g: np.concatenate([np.arange(start, dtype=np.int64)[s] for k, s in slices.items() if _GROUPS[k] == g])
              for g in ("pos", "vel")}
    joints = np.delete(np.arange(skeleton.num_joints), root)
    return FeatureLayout(start, slices, groups, root, joints, feet)


# --- the root -----------------------------------------------------------------------------------------------
def skeleton_root(skeleton: Skeleton) -> int:
    """The root a skeleton alone suggests: the first joint from the top with several children (the pelvis).
    A dummy top joint with one child (Bandai-Namco's ``joint_Root`` above ``Hips``) is skipped."""
    return top_chain(skeleton)[-1]


def detect_root(clip: Clip, positions: np.ndarray | None = None) -> int:
    """Index of the joint carrying the body's global motion (the pelvis), found from the top down: a joint with
    a single child hands over to it (a dummy top joint is never the body's root, moving or not: some
    Bandai-Namco takes move ``joint_Root`` and ``Hips`` both, others only ``Hips``); a joint that stays still
    (spans at most 1 mm) while exactly one of its children's subtrees moves hands over to that child (a static
    reference joint with props beside the body); the first joint where neither holds is the root.
    positions: ``[T, J, 3]`` world positions when the caller has them.
    """
    pos = clip.world_positions() if positions is None else positions
    sk = clip.skeleton
    moves = np.ptp(pos, axis=0).max(axis=-1) > MOVES  # [J]
    subtree_moves = moves.copy()
    for j in range(sk.num_joints - 1, 0, -1):  # parents come before children: sweep up from the leaves
        subtree_moves[sk.parents[j]] |= subtree_moves[j]
    j = 0
    while True:
        kids = sk.children(j)
        moving = [k for k in kids if subtree_moves[k]]
        if len(kids) == 1:
            j = kids[0]
        elif not moves[j] and len(moving) == 1:
            j = moving[0]
        else:
            return j


def _root_from_spec(skeleton: Skeleton, spec: FeatureSpec) -> int:
    if spec.root is None:
        return skeleton_root(skeleton)
    if spec.root not in skeleton.names:
        raise SkeletonMismatchError(f"feature spec: root {spec.root!r} is not a joint; joints: "
                                    f"{', '.join(skeleton.names)}")
    return skeleton.names.index(spec.root)


def resolve_spec(clip: Clip, spec: FeatureSpec = FeatureSpec()) -> FeatureSpec:
    """``spec`` with ``root`` set to the name of ``detect_root(clip)`` when it was None (store this one)."""
    if spec.root is not None:
        return spec
    return replace(spec, root=clip.skeleton.names[detect_root(clip)])


def _clip_root(clip: Clip, spec: FeatureSpec, positions: np.ndarray) -> int:
    """The root for ``featurize``: spec.root, else the detected one, which must agree with what the skeleton
    alone suggests (``defeaturize`` has only the skeleton)."""
    if spec.root is not None:
        return _root_from_spec(clip.skeleton, spec)
    found, guess = detect_root(clip, positions), skeleton_root(clip.skeleton)
    if found != guess:
        names = clip.skeleton.names
        raise OptiqError(f"clip {clip.name!r}: the global motion is carried by {names[found]!r}, not by "
                         f"{names[guess]!r} that the skeleton alone suggests; set FeatureSpec(root={names[found]!r}) "
                         "(resolve_spec does) so that features and their inverse agree")
    return found


# --- rotations ----------------------------------------------------------------------------------------------
def encode_rotations(q: np.ndarray, rotation: str, out: np.ndarray | None = None) -> np.ndarray:
    """Quaternions ``[..., 4]`` wxyz -> ``[..., E]`` in encoding ``rotation`` (see ROTATIONS), written into
    ``out`` when given (a view into a feature array saves a copy)."""
    if out is None:
        out = np.empty((*q.shape[:-1], ROTATIONS[rotation]))
    if rotation == "quat":
        out[...] = np.where(q[..., :1] < 0, -q, q)
    elif rotation == "expmap":
        out[...] = quat.to_rotvec(q)
    else:
        # The first two columns of the rotation matrix (quat.to_matrix), written out to skip the third, on
        # contiguous components (twice as fast as on the interleaved [..., 4] array).
        w, x, y, z = np.ascontiguousarray(np.moveaxis(q, -1, 0))
        xx, yy, zz = x * x, y * y, z * z
        xy, xz, yz, wx, wy, wz = x * y, x * z, y * z, w * x, w * y, w * z
        out[..., 0] = 1 - 2 * (yy + zz)
        out[..., 1] = 2 * (xy + wz)
        out[..., 2] = 2 * (xz - wy)
        out[..., 3] = 2 * (xy - wz)
        out[..., 4] = 1 - 2 * (xx + zz)
        out[..., 5] = 2 * (yz + wx)
    return out


def decode_rotations(r: np.ndarray, rotation: str) -> np.ndarray:
    """``[..., E]`` in encoding ``rotation`` -> unit quaternions ``[..., 4]`` wxyz. 6D: Gram-Schmidt of the two
    columns, so any 6 numbers (a network's output) give a rotation; quat: normalised."""
    r = np.asarray(r, dtype=np.float64)
    if rotation == "quat":
        n = np.linalg.norm(r, axis=-1, keepdims=True)
        return np.where(n > 1e-12, r / np.maximum(n, 1e-12), quat.identity(r.shape[:-1]))
    if rotation == "expmap":
        return quat.from_rotvec(r)
    a, b = np.moveaxis(r[..., :3], -1, 0), np.moveaxis(r[..., 3:], -1, 0)
    b1 = a / np.maximum(np.sqrt((a * a).sum(0)), 1e-12)
    b2 = b - (b1 * b).sum(0) * b1
    b2 = b2 / np.maximum(np.sqrt((b2 * b2).sum(0)), 1e-12)
    b3 = np.stack((b1[1] * b2[2] - b1[2] * b2[1], b1[2] * b2[0] - b1[0] * b2[2], b1[0] * b2[1] - b1[1] * b2[0]))
    m = np.stack((b1, b2, b3), axis=1)  # [3 rows, 3 columns, ...]: columns b1, b2, b3
    q = np.moveaxis(quat.from_matrix_parts(m), 0, -1)
    return np.where(q[..., :1] < 0, -q, q)


def heading_angle(q: np.ndarray) -> np.ndarray:
    """Heading ``[...]`` radians of world rotations ``[..., 4]`` (w, x, y, z): the angle of their twist about world
    Z. Turning the whole clip by psi about Z adds psi to it exactly. The heading frame of the features turns with it
    (the RL package's observations use the same definition)."""
    return 2.0 * np.arctan2(q[..., 3], q[..., 0])


_yaw = heading_angle


def _yaw_quat(yaw: np.ndarray) -> np.ndarray:
    h = 0.5 * yaw
    return np.stack((np.cos(h), np.zeros_like(h), np.zeros_like(h), np.sin(h)), axis=-1)


def _turn(v: np.ndarray, cos: np.ndarray, sin: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Vectors ``[T, ..., 3]`` turned about Z by the angle whose cosine and sine are ``[T]`` (into ``out``)."""
    shape = (-1,) + (1,) * (v.ndim - 2)
    c, s = cos.reshape(shape), sin.reshape(shape)
    x, y = v[..., 0], v[..., 1]
    if out is None:
        out = np.empty(v.shape)
    out[..., 0] = c * x - s * y
    out[..., 1] = s * x + c * y
    out[..., 2] = v[..., 2]
    return out


def wrap_angle(a: np.ndarray) -> np.ndarray:
    """Angles ``[...]`` radians wrapped to (-pi, pi]."""
    return np.pi - np.mod(np.pi - a, 2.0 * np.pi)


_wrap = wrap_angle


# --- featurize / defeaturize -------------------------------------------------------------------------------
def featurize(clip: Clip, spec: FeatureSpec = FeatureSpec(), *,
              fk: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Feature rows ``[T, F]`` float32 of a clip (layout: ``feature_layout(clip.skeleton, spec)``).

    Causal: row t depends on frames t and t - 1 only; frame 0's velocities and yaw rate are 0 (not a copy of
    frame 1's, which would look ahead). fk: ``clip.forward_kinematics()`` when the caller has it.
    """
    pos, rot = clip.forward_kinematics() if fk is None else fk
    layout = feature_layout(clip.skeleton, spec)
    r = _clip_root(clip, spec, pos)  # equals layout.root, or raises
    t, others = clip.num_frames, layout.joints
    yaw = _yaw(rot[:, r])
    cos, sin = np.cos(yaw), np.sin(yaw)
    vel = np.zeros_like(pos)
    vel[1:] = (pos[1:] - pos[:-1]) * clip.fps
    yaw_rate = np.zeros(t)
    yaw_rate[1:] = _wrap(np.diff(yaw)) * clip.fps
    tilt = quat.qmul(_yaw_quat(-yaw), rot[:, r])
    out = np.empty((t, layout.dim), dtype=np.float32)
    s = layout.slices
    n = len(others)
    if r == 0:
        others = slice(1, None)  # a view instead of a gathered copy (most skeletons)

    def view(name: str, width: int) -> np.ndarray:  # [T, n, width] view of a per-joint slice of out
        return out[:, s[name]].reshape(t, n, width)

    out[:, s["root_height"]] = pos[:, r, 2:3]
    _turn(vel[:, r], cos, -sin, out[:, s["root_velocity"]])
    out[:, s["yaw_rate"]] = yaw_rate[:, None]
    encode_rotations(tilt, spec.rotation, out[:, s["root_tilt"]])
    local = clip.rotations[:, others]
    above = _chain_to(clip.skeleton, r)[:-1]  # joints above the root: index a of others is a, as a < r
    if above:  # (others is a gathered copy here, so writing to it leaves the clip alone)
        local[:, above] = quat.qmul(_yaw_quat(-yaw)[:, None], rot[:, above])
    encode_rotations(local, spec.rotation, view("rotations", ROTATIONS[spec.rotation]))
    _turn(pos[:, others] - pos[:, r:r + 1], cos, -sin, view("positions", 3))
    _turn(vel[:, others], cos, -sin, view("velocities", 3))
    if spec.contacts:
        out[:, s["contacts"]] = foot_contacts(clip, pos)
    return out


def start_pose(clip: Clip, spec: FeatureSpec = FeatureSpec(), frame: int = 0) -> tuple[np.ndarray, float]:
    """World position ``[3]`` (metres) and heading (radians) of the clip's root at ``frame``: what
    ``defeaturize`` needs to put rows of this clip back where the clip was."""
    pos, rot = clip.forward_kinematics()
    r = _clip_root(clip, spec, pos)
    return pos[frame, r].copy(), float(_yaw(rot[frame, r]))


def defeaturize(features: np.ndarray, skeleton: Skeleton, spec: FeatureSpec, fps: float, *,
                start_position: Sequence[float] | np.ndarray | None = None, start_yaw: float = 0.0,
                name: str = "features") -> Clip:
    """The Clip that feature rows ``[T, F]`` describe, on ``skeleton``.

    The heading starts at ``start_yaw`` (radians) and integrates the yaw rate; the root starts at
    ``start_position`` (``[2]`` or ``[3]`` metres, x and y used; default the origin) and integrates its
    heading-frame velocity (frame 0's velocity is ignored); its height is read from each row. Rotations are
    decoded (6D by Gram-Schmidt), and world positions follow from forward kinematics with the skeleton's offsets.
    Joints above the root (a dummy top joint) are placed from the ``positions`` slice. Contact flags, when
    present, come back as frame labels ``contact_<foot>``.
    """
    layout = feature_layout(skeleton, spec)
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != layout.dim:
        raise SkeletonMismatchError(f"{name}: features have shape {x.shape}, expected (T, {layout.dim}) for this "
                                    f"skeleton of {skeleton.num_joints} joints and spec {spec.to_json()}")
    if not np.isfinite(x).all():
        row = int(np.argmax(~np.isfinite(x).all(axis=1)))
        raise OptiqError(f"{name}: row {row}: features are not finite (NaN or inf)")
    t, s, r, others = len(x), layout.slices, layout.root, layout.joints
    yaw = start_yaw + np.concatenate(([0.0], np.cumsum(x[1:, s["yaw_rate"]][:, 0]) / fps))
    cos, sin = np.cos(yaw), np.sin(yaw)
    step = _turn(x[:, s["root_velocity"]], cos, sin) / fps
    step[0] = 0.0
    root_pos = np.cumsum(step, axis=0)
    root_pos[:, :2] += np.asarray(start_position if start_position is not None else (0.0, 0.0),
                                  dtype=np.float64)[:2]
    root_pos[:, 2] = x[:, s["root_height"]][:, 0]
    e = ROTATIONS[spec.rotation]
    rotations = np.empty((t, skeleton.num_joints, 4))
    rotations[:, others] = decode_rotations(x[:, s["rotations"]].reshape(t, -1, e), spec.rotation)
    root_rot = quat.qmul(_yaw_quat(yaw), decode_rotations(x[:, s["root_tilt"]], spec.rotation))
    rel = _turn(x[:, s["positions"]].reshape(t, -1, 3), cos, sin)  # [T, J - 1, 3] world offsets from the root
    world = np.empty((t, skeleton.num_joints, 3))
    world[:, others] = rel + root_pos[:, None]
    world[:, r] = root_pos
    local = None
    if r == 0:
        rotations[:, 0] = root_rot
    else:
        local = _above_root(skeleton, r, rotations, world, root_rot, _yaw_quat(yaw))
    frame_labels = {}
    if spec.contacts:
        flags = x[:, s["contacts"]] > 0.5
        frame_labels = {f"contact_{foot}": flags[:, k] for k, foot in enumerate(layout.feet)}
    return Clip(skeleton, fps, world[:, 0], rotations, local, name=name, frame_labels=frame_labels)


def _above_root(skeleton: Skeleton, r: int, rotations: np.ndarray, world: np.ndarray, root_rot: np.ndarray,
                heading: np.ndarray) -> np.ndarray:
    """Local rotations (written into ``rotations [T, J, 4]``) and translations (returned, ``[T, J, 3]``) of the
    joints from the top down to the root ``r``, so that forward kinematics puts each where ``world [T, J, 3]``
    says. Joints above the root hold their world rotation in the heading frame (``heading [T, 4]``); the root's
    world rotation is ``root_rot [T, 4]``."""
    chain = _chain_to(skeleton, r)
    world_rot = quat.qmul(heading[:, None], rotations[:, chain[:-1]])  # [T, k, 4]
    world_rot = np.concatenate((world_rot, root_rot[:, None]), axis=1)
    local = np.broadcast_to(skeleton.offsets, (len(world), skeleton.num_joints, 3)).copy()
    rotations[:, 0] = world_rot[:, 0]
    for i in range(1, len(chain)):
        inv = quat.conj(world_rot[:, i - 1])
        rotations[:, chain[i]] = quat.qmul(inv, world_rot[:, i])
        local[:, chain[i]] = quat.rotate(inv, world[:, chain[i]] - world[:, chain[i - 1]])
    return local


def _chain_to(skeleton: Skeleton, j: int) -> list[int]:
    """Joints ``[0, ..., j]`` from the top of the skeleton down to joint ``j``."""
    chain = [int(j)]
    while chain[-1] != 0:
        chain.append(int(skeleton.parents[chain[-1]]))
    return chain[::-1]


# --- robot dofs ---------------------------------------------------------------------------------------------
def hinge_angles(clip: Clip, spec: TrajectorySpec) -> np.ndarray:
    """Dof positions ``[T, N]`` (radians) of a clip loaded from an NPY trajectory (docs/npy-trajectories.md),
    ``spec`` its parsed spec file (``optiq.loaders.npy_traj.read_spec``): the inverse of
    ``q_joint = q(dof_a) q(dof_b) ...``, with the dof axes in the file's axes (its ``up``).

    Supported per joint: one dof about any axis (the signed twist angle about it, in (-pi, pi]), or three dofs
    about the x, y and z axes in any order (intrinsic Euler angles, as scipy returns them). Raises OptiqError
    otherwise, or when the clip's joints are not the spec's.
    """
    names = spec.skeleton.names
    if clip.skeleton.names != names:
        raise SkeletonMismatchError(f"clip {clip.name!r}: joints {', '.join(clip.skeleton.names)} are not the "
                                    f"spec's {', '.join(names)} (load the file with its loader function to keep "
                                    "the spec's order)")
    m = axis_matrix(spec.up)
    rotations = clip.rotations.copy()
    rotations[..., 1:] = rotations[..., 1:] @ m  # back to the file's axes: the loader turned them by m
    out = np.zeros((clip.num_frames, len(spec.dof_joints)))
    for j in np.unique(spec.dof_joints):
        cols = np.flatnonzero(spec.dof_joints == j)
        q = rotations[:, j]
        if len(cols) == 1:
            out[:, cols[0]] = _wrap(2.0 * np.arctan2(q[:, 1:] @ spec.dof_axes[cols[0]], q[:, 0]))
            continue
        letters = [_axis_letter(a) for a in spec.dof_axes[cols]]
        if len(cols) != 3 or None in letters or len(set(letters)) != 3:
            raise OptiqError(f"joint {names[j]!r}: {len(cols)} dofs about {spec.dof_axes[cols].tolist()}; "
                             "hinge_angles reads one dof about any axis or three about x, y and z")
        out[:, cols] = quat.to_euler(q, "".join(letters))
    return out


def _axis_letter(axis: np.ndarray) -> str | None:
    for k, letter in enumerate("XYZ"):
        if np.allclose(axis, np.eye(3)[k], atol=1e-9):
            return letter
    return None


def sim_to_real(dofs: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Simulation dofs ``[..., N_sim]`` -> the robot's ``[..., real_dof]``: dof i goes to column
    ``spec.sim_to_real_idx[i]``; robot dofs that no simulation dof maps to are 0."""
    idx = _dof_map(spec, np.shape(dofs)[-1])
    out = np.zeros((*np.shape(dofs)[:-1], spec.real_dof), dtype=np.result_type(dofs, np.float32))
    out[..., idx] = dofs
    return out


def real_to_sim(dofs: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """The robot's dofs ``[..., real_dof]`` -> simulation dofs ``[..., N_sim]`` (the inverse of sim_to_real)."""
    if spec.real_dof is None or np.shape(dofs)[-1] != spec.real_dof:
        raise OptiqError(f"robot dofs have {np.shape(dofs)[-1]} columns, expected real_dof = {spec.real_dof}")
    return np.asarray(dofs)[..., np.asarray(spec.sim_to_real_idx, dtype=np.int64)]


def _dof_map(spec: FeatureSpec, n_sim: int) -> np.ndarray:
    if spec.sim_to_real_idx is None:
        raise OptiqError("feature spec has no dof map: set sim_to_real_idx and real_dof")
    if len(spec.sim_to_real_idx) != n_sim:
        raise OptiqError(f"dof map: sim_to_real_idx names {len(spec.sim_to_real_idx)} simulation dofs, the data "
                         f"has {n_sim}")
    return np.asarray(spec.sim_to_real_idx, dtype=np.int64)


# --- normalisation ------------------------------------------------------------------------------------------
@dataclass
class Normalizer:
    """Per-feature z-score statistics: ``mean [F]`` and ``std [F]`` float32, std 1 where a feature does not vary
    (below ``eps``), so a constant feature normalises to 0 instead of dividing by 0. Fit on the training split."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(self.std, dtype=np.float32).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise OptiqError(f"normalizer: mean has {self.mean.size} values, std {self.std.size}")
        if not (np.isfinite(self.mean).all() and np.isfinite(self.std).all() and (self.std > 0).all()):
            raise OptiqError("normalizer: mean and std must be finite and std positive")

    @property
    def dim(self) -> int:
        return int(self.mean.size)

    @classmethod
    def fit(cls, arrays: Iterable[np.ndarray], eps: float = 1e-5, min_std: float = 0.0) -> Normalizer:
        """Statistics of ``[T_i, F]`` arrays streamed one at a time (any iterable; none is kept): per-array
        mean and sum of squared deviations in float64, merged with Chan's parallel formula (stable where plain
        running sums of squares cancel).

        eps: a std below it means a constant feature (std 1). min_std: a floor on every other std, in the
        features' units (m, m/s, rad, 6D entries): a feature that barely moves in the training takes (a toe that
        never bends: std 1e-4) otherwise turns a held-out take's small motion of it into z-scores of 30 and more,
        inputs no network has seen."""
        n, mean, m2 = 0, None, None
        for a in arrays:
            a = np.asarray(a, dtype=np.float64)
            if a.ndim != 2:
                raise OptiqError(f"normalizer: expected [T, F] arrays, got shape {a.shape}")
            if mean is None:
                mean, m2 = np.zeros(a.shape[1]), np.zeros(a.shape[1])
            elif a.shape[1] != mean.size:
                raise OptiqError(f"normalizer: an array has {a.shape[1]} features, the first had {mean.size}")
            k = a.shape[0]
            if k == 0:
                continue
            am = a.mean(axis=0)
            delta = am - mean
            total = n + k
            mean = mean + delta * (k / total)
            m2 = m2 + ((a - am) ** 2).sum(axis=0) + delta**2 * (n * k / total)
            n = total
        if n == 0:
            raise OptiqError("normalizer: no frames to fit on (empty split?)")
        std = np.sqrt(m2 / n)
        return cls(mean, np.where(std < eps, 1.0, np.maximum(std, min_std)))

    def normalize(self, x):
        """``(x - mean) / std`` for a numpy array or torch tensor ``[..., F]`` (same type, dtype and device)."""
        mean, std = self._like(x)
        return (x - mean) / std

    def denormalize(self, x):
        """``x * std + mean``: the inverse of normalize."""
        mean, std = self._like(x)
        return x * std + mean

    def _like(self, x):
        if x.shape[-1] != self.dim:
            raise OptiqError(f"normalizer: input has {x.shape[-1]} features, expected {self.dim}")
        if type(x).__module__.startswith("torch"):
            import torch

            return (torch.as_tensor(self.mean, dtype=x.dtype, device=x.device),
                    torch.as_tensor(self.std, dtype=x.dtype, device=x.device))
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
        return self.mean.astype(dtype), self.std.astype(dtype)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    def to_json(self) -> str:
        """JSON text; float32 values survive the round trip exactly (repr of a float32 widened to float64)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        if not isinstance(d, dict) or set(d) != {"mean", "std"}:
            raise OptiqError(f"normalizer: expected keys mean and std, got {sorted(d) if isinstance(d, dict) else d!r}")
        return cls(np.asarray(d["mean"], dtype=np.float32), np.asarray(d["std"], dtype=np.float32))

    @classmethod
    def from_json(cls, text: str | dict) -> Normalizer:
        return cls.from_dict(json.loads(text) if isinstance(text, str) else text)
