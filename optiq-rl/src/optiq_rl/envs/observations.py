"""Observations from ``optiq.features``: the simulated body as the feature row of a two-frame Clip.

The body's state at control step t is ``featurize`` of the Clip made of the character's bodies at steps t - 1 and
t (world positions from MuJoCo, optiq world rotations ``xquat G^-1`` with ``G`` the body's rest rotation, local
rotations from them), last row: the same numbers ``featurize`` gives for a clip of the same motion, so a model
trained on features reads the simulation as it reads data (adapter(sim state) == featurize(clip)). Velocities are
backward differences over one control step, as ``featurize`` takes them at the control rate.

``BodyFeatures.features`` computes that last row directly, with featurize's formulas on MuJoCo's rotation
matrices (a root with no joint above it), at a fraction of the cost of building a Clip per control step; a test
holds it equal to ``featurize`` to 1e-5.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from optiq import quat
from optiq.clip import Clip
from optiq.errors import OptiqError
from optiq.features import (
    ROTATIONS,
    FeatureSpec,
    encode_rotations,
    feature_layout,
    featurize,
)

from ..characters import Character


class BodyState(NamedTuple):
    """The character's joints at one time (or ``[T]`` times): world positions ``pos [..., J, 3]`` (m), optiq
    world rotations ``rot [..., J, 4]`` wxyz and the same as matrices ``mat [..., J, 3, 3]``."""

    pos: np.ndarray
    rot: np.ndarray
    mat: np.ndarray


class BodyFeatures:
    """Feature rows of the character's body (layout ``feature_layout(skeleton, spec)``, F wide).

    spec: its root is the character's root joint; rotation as given (default 6D). fps: the control rate (Hz).
    order: the joints' names in the order of the rows (a model's data may list the character's joints in another
    order: the DeepMimic clips' own); default the character's.
    """

    def __init__(self, char: Character, fps: float, rotation: str = "6d", order=None):
        import mujoco

        sk = char.skeleton()
        perm = np.arange(sk.num_joints) if order is None else np.array([sk.names.index(n) for n in order])
        if order is not None:
            inv = np.argsort(perm)
            parents = np.array([-1 if p < 0 else inv[p] for p in sk.parents[perm]])
            sk = type(sk)(tuple(order), parents, sk.offsets[perm],
                          {int(inv[j]): v for j, v in sk.end_sites.items()})
        self.skeleton = sk
        self.spec = FeatureSpec(rotation=rotation, root=char.joint_names[0])
        self.layout = feature_layout(self.skeleton, self.spec)
        self.fps = float(fps)
        self.ids = char.body_ids()[perm]
        m = char.model()
        data = mujoco.MjData(m)
        mujoco.mj_kinematics(m, data)
        self.rest_inv = quat.conj(data.xquat[self.ids])  # [J, 4] G^-1
        self.rest_inv_mat = quat.to_matrix(self.rest_inv)  # [J, 3, 3]
        # Generated characters have world-aligned rest frames: their rotations need no correction.
        self.aligned = bool(np.allclose(self.rest_inv, quat.identity((len(self.ids),)), atol=1e-12))
        self.parents = self.skeleton.parents
        if (self.parents[1:] < 0).any():
            raise OptiqError(f"character {char.name!r}: joints {', '.join(char.joint_names)} have more than one root")
        j, e, s = self.skeleton.num_joints, ROTATIONS[rotation], self.layout.slices
        self._out = np.empty(self.layout.dim, dtype=np.float32)
        # featurize's slices in order: the root's vector and rotation, then each joint's; views into _out.
        self._rotations = self._out[s["rotations"]].reshape(j - 1, e)
        self._positions = self._out[s["positions"]].reshape(j - 1, 3)
        self._velocities = self._out[s["velocities"]].reshape(j - 1, 3)
        self._slices = [s[k] for k in ("root_height", "root_velocity", "yaw_rate", "root_tilt")]
        self._mats = np.empty((j, 3, 3))
        self._turn = np.zeros((3, 3))
        self._vec, self._vec_h = np.empty((2 * j - 1, 3)), np.empty((2 * j - 1, 3))
        # featurize's layout puts the root's tilt just before the joints' rotations: one copy fills both (6D).
        if rotation == "6d" and s["root_tilt"].stop == s["rotations"].start:
            self._rot6 = self._out[s["root_tilt"].start:s["rotations"].stop].reshape(j, 2, 3)
        else:
            self._rot6 = None

    @property
    def dim(self) -> int:
        return self.layout.dim

    def body_state(self, xpos: np.ndarray, xquat: np.ndarray, xmat: np.ndarray | None = None) -> BodyState:
        """The joints' BodyState from MuJoCo's ``xpos [..., nbody, 3]``, ``xquat [..., nbody, 4]`` and (when
        given, it saves the conversion) ``xmat [..., nbody, 9]``."""
        rot = xquat[..., self.ids, :]
        mat = quat.to_matrix(rot) if xmat is None else xmat[..., self.ids, :].reshape(*rot.shape[:-1], 3, 3)
        if not self.aligned:
            rot, mat = quat.qmul(rot, self.rest_inv), mat @ self.rest_inv_mat
        return BodyState(xpos[..., self.ids, :], rot, mat)  # gathered copies, not views of MjData

    def clip(self, pos: np.ndarray, rot: np.ndarray, name: str = "sim") -> Clip:
        """The Clip of body states ``pos [T, J, 3]``, ``rot [T, J, 4]`` (world) at ``fps``."""
        parents = self.parents
        local = rot.copy()
        local[:, 1:] = quat.qmul(quat.conj(rot[:, parents[1:]]), rot[:, 1:])
        return Clip(self.skeleton, self.fps, pos[:, 0].copy(), local, name=name)

    def features(self, prev: BodyState, now: BodyState, out: np.ndarray | None = None) -> np.ndarray:
        """Feature row ``[F]`` float32 of body state ``now`` one control step after ``prev``: ``featurize``'s
        last row for the two-frame clip of them (into ``out [F]`` when given, else a new array)."""
        row, sl, fps, j = self._out, self._slices, self.fps, len(now.pos)
        yaw = _scalar_yaw(now.rot[0])
        turn = heading_turn(yaw, self._turn)  # [3, 3] rows: world -> heading frame
        pos, vec = now.pos, self._vec
        # World vectors [2J - 1, 3] turned into the heading frame by one product: the joints' positions relative
        # to the root (m), then the velocities (m/s) of the root and the joints.
        vel = vec[j - 1:]
        np.subtract(pos, prev.pos, out=vel)
        vel *= fps
        np.subtract(pos[1:], pos[0], out=vec[:j - 1])
        turned = np.matmul(vec, turn.T, out=self._vec_h)
        row[sl[0]] = pos[0, 2]
        row[sl[1]] = turned[j - 1]
        row[sl[2]] = math.remainder(yaw - _scalar_yaw(prev.rot[0]), 2.0 * math.pi) * fps  # featurize's _wrap
        self._positions[:] = turned[:j - 1]
        self._velocities[:] = turned[j:]
        # Rotations: the root's with the heading removed, the others local to their parents, as matrices.
        mats = self._mats
        np.matmul(turn, now.mat[0], out=mats[0])
        np.matmul(now.mat[self.parents[1:]].transpose(0, 2, 1), now.mat[1:], out=mats[1:])
        if self._rot6 is not None:  # 6D: the first two columns of each (encode_rotations'), tilt then joints
            np.copyto(self._rot6, mats.transpose(0, 2, 1)[:, :2], casting="same_kind")
        else:
            enc = encode_rotations(quat.from_matrix(mats), self.spec.rotation)
            row[sl[3]] = enc[0]
            self._rotations[:] = enc[1:]
        if out is None:
            return row.copy()
        out[:] = row
        return out

    def clip_features(self, pos: np.ndarray, rot: np.ndarray) -> np.ndarray:
        """Feature rows ``[T, F]`` of a whole sequence of body states (the reference)."""
        return featurize(self.clip(pos, rot, "reference"), self.spec, fk=(pos, rot))


def _scalar_yaw(q: np.ndarray) -> float:
    """``optiq.features._yaw`` of one quaternion ``[4]``, in Python floats (a control step's hot path)."""
    return 2.0 * math.atan2(q[3], q[0])


def heading_turn(yaw: float, out: np.ndarray | None = None) -> np.ndarray:
    """``[3, 3]``: the rotation by ``-yaw`` about Z, world vectors (columns) -> the heading frame (into ``out``, a
    ``[3, 3]`` array of zeros or of an earlier turn, when given: a control step's hot path)."""
    c, n = math.cos(yaw), math.sin(yaw)
    if out is None:
        return np.array([[c, n, 0.0], [-n, c, 0.0], [0.0, 0.0, 1.0]])
    out.flat[:] = (c, n, 0.0, -n, c, 0.0, 0.0, 0.0, 1.0)
    return out


def relative_root(pos: np.ndarray, rot: np.ndarray, ref_pos: np.ndarray, ref_yaw: np.ndarray) -> np.ndarray:
    """Where the reference root is seen from the simulated one, ``[K, 5]``: its position offset ``[K, 3]`` (m) in
    the simulated body's heading frame, and the cosine and sine of its heading relative to the body's.

    pos ``[3]``, rot ``[4]``: the simulated root; ref_pos ``[K, 3]``: reference root positions; ref_yaw ``[K]``
    their headings (radians)."""
    yaw = _scalar_yaw(rot)
    out = np.empty((len(ref_pos), 5))
    out[:, :3] = (ref_pos - pos) @ heading_turn(yaw).T
    dyaw = ref_yaw - yaw
    out[:, 3], out[:, 4] = np.cos(dyaw), np.sin(dyaw)
    return out
