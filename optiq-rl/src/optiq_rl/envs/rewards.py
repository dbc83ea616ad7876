"""Tracking rewards, their presets, and a schedule from tracking to a task.

A tracking reward is ``r = sum_i w_i exp(-k_i e_i)`` over terms ``i``, each an error ``e_i`` between the simulated
state and the reference at the same time, so ``r`` is ``sum_i w_i`` (1 for the presets) when the two are equal
and falls as they part. Presets (``PRESETS``; docs/rl.md gives their sources):

- ``deepmimic`` (Peng et al. 2018, DeepMimic, the imitation reward and its four terms): pose 0.65 (k 2), velocity
  0.1 (k 0.1), end-effector 0.15 (k 40), centre of mass 0.1 (k 10). ``pose``: the sum over joints (the root's
  rotation included) of the squared angle of ``q_sim^-1 q_ref``; ``velocity``: the sum of squared differences of
  the joints' angular velocities (qvel without the root's linear part); ``end_effector``: the sum of squared
  distances of the hands and feet, each relative to its root (the paper writes world positions; relative keeps
  the term about the pose when the root drifts, the ``com`` term carrying the global position, as MimicKit's key
  bodies); ``com``: the squared distance between the centres of mass.
- ``mimickit`` (MimicKit ``data/envs/deepmimic_humanoid_env.yaml`` and ``deepmimic_env.compute_reward``):
  pose 0.5 (k 0.25, squared joint angles weighted per joint: chest and hips 1, neck, shoulders and knees 0.6,
  elbows and ankles 0.4, wrists 0; the root's rotation excluded), velocity 0.1 (k 0.01, joint dofs with their
  joint's weight), root pose 0.15 (k 5: squared root distance + 0.1 squared root angle), root velocity 0.1 (k 1:
  squared linear + 0.1 squared angular velocity difference, both in the world frame), key bodies 0.15 (k 10: head, hands and feet
  relative to the root, summed squared distances).

The Track env adds a ``task`` term (its preset weight 0): matching the reference's mean ground speed, so that a
``RewardSchedule`` can move the weight from tracking to the task over training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import mujoco
import numpy as np
from optiq.errors import OptiqError

from ..characters import Character


@dataclass(frozen=True)
class Preset:
    """Weights and scales ``k`` of the terms of a tracking reward, and the per-joint weights of its pose and
    velocity errors (joint name -> weight, absent joints 1), whether the root's rotation counts in ``pose``,
    and the key bodies (joint names) of its end-effector term: a character with none of them (another skeleton)
    uses its end effectors, the joints without children."""

    weights: Mapping[str, float]
    scales: Mapping[str, float]
    joint_weights: Mapping[str, float]
    root_in_pose: bool
    key_bodies: tuple[str, ...]


_LIMBS = {"chest": 1.0, "neck": 0.6, "shoulder": 0.6, "elbow": 0.4, "wrist": 0.0, "hip": 1.0, "knee": 0.6,
          "ankle": 0.4}

PRESETS: dict[str, Preset] = {
    "deepmimic": Preset(
        weights={"pose": 0.65, "velocity": 0.1, "end_effector": 0.15, "com": 0.1, "task": 0.0},
        scales={"pose": 2.0, "velocity": 0.1, "end_effector": 40.0, "com": 10.0, "task": 1.0},
        joint_weights={}, root_in_pose=True,
        key_bodies=("right_wrist", "left_wrist", "right_ankle", "left_ankle")),
    "mimickit": Preset(
        weights={"pose": 0.5, "velocity": 0.1, "root_pose": 0.15, "root_velocity": 0.1, "key_bodies": 0.15,
                 "task": 0.0},
        scales={"pose": 0.25, "velocity": 0.01, "root_pose": 5.0, "root_velocity": 1.0, "key_bodies": 10.0,
                "task": 1.0},
        joint_weights=_LIMBS, root_in_pose=False,
        key_bodies=("neck", "right_wrist", "left_wrist", "right_ankle", "left_ankle")),
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise OptiqError(f"reward preset {name!r} is unknown; expected one of {', '.join(PRESETS)}")
    return PRESETS[name]


def _joint_weight(name: str, table: Mapping[str, float]) -> float:
    """A joint's weight: its name in ``table``, else its name without ``left_``/``right_``, else 1."""
    if name in table:
        return float(table[name])
    return float(table.get(name.removeprefix("left_").removeprefix("right_"), 1.0))


@dataclass(frozen=True)
class SimState:
    """What a tracking reward compares, for the simulation or the reference at one time.

    qpos ``[nq]``, qvel ``[nv]``; body_pos ``[J, 3]`` world positions (m) of the character's joints; com ``[3]``
    (m) the centre of mass.
    """

    qpos: np.ndarray
    qvel: np.ndarray
    body_pos: np.ndarray
    com: np.ndarray


class TrackingReward:
    """A preset on a character. ``terms(sim, ref)`` -> {term: (error, exp(-k error))}; ``total`` weighs them."""

    def __init__(self, char: Character, model, preset_name: str = "deepmimic"):
        self.preset = preset(preset_name)
        self.model = model
        names = char.joint_names
        body_of_joint = {int(b): j for j, b in enumerate(char.body_ids())}
        # Per MuJoCo joint: its optiq joint's weight; per dof: its MuJoCo joint, for summing squared angles.
        jnt_joint = np.array([body_of_joint.get(int(b), -1) for b in model.jnt_bodyid])
        w = np.array([_joint_weight(names[j], self.preset.joint_weights) if j >= 0 else 0.0 for j in jnt_joint])
        free = model.jnt_type == 0
        root_w = 1.0 if self.preset.root_in_pose else 0.0
        # Per dof: its joint's weight (a ball joint's squared angle is the sum of its rotation vector's squares),
        # zero on the root's translation; the root's rotation by the preset.
        self.joint_w = np.where(free, root_w, w)[model.dof_jntid]  # [nv]
        self.root_w = np.zeros(model.nv)  # [nv] MimicKit's root terms: translation 1, rotation 0.1
        self._root_ang = None  # (qpos address of the root's quaternion, qvel address of its angular velocity)
        for j in np.flatnonzero(free):
            a = model.jnt_dofadr[j]
            self.joint_w[a:a + 3] = 0.0
            self.root_w[a:a + 3], self.root_w[a + 3:a + 6] = 1.0, 0.0  # the angular part: in the world frame, below
            self._root_ang = (int(model.jnt_qposadr[j]) + 3, int(a) + 3)
        self._w_sim, self._w_ref = np.zeros(3), np.zeros(3)
        keys = [names.index(k) for k in self.preset.key_bodies if k in names]
        if not keys:  # another skeleton: its end effectors (joints without children: hands, feet, head)
            parents = char.skeleton().parents
            keys = [j for j in range(1, len(names)) if j not in set(parents.tolist())]
        self.keys = np.array(keys, dtype=int)
        self.weights = dict(self.preset.weights)
        self.com_terms = "com" in self.preset.weights  # DeepMimic's terms, else MimicKit's
        self._diff = np.zeros(model.nv)

    def errors(self, sim: SimState, ref: SimState) -> dict[str, float]:
        """Each term's error (squared radians, (rad/s)^2, m^2) between ``sim`` and ``ref``."""
        d = self._diff
        mujoco.mj_differentiatePos(self.model, d, 1.0, sim.qpos, ref.qpos)  # per-joint rotation vectors / angles
        d *= d
        dv = ref.qvel - sim.qvel
        dv *= dv
        key = (sim.body_pos[self.keys] - ref.body_pos[self.keys]) - (sim.body_pos[0] - ref.body_pos[0])
        key_err = float(key.ravel() @ key.ravel())  # key bodies, each relative to its root
        out = {"pose": float(d @ self.joint_w), "velocity": float(dv @ self.joint_w)}
        if self.com_terms:
            out["end_effector"] = key_err
            c = sim.com - ref.com
            out["com"] = float(c @ c)
        else:
            out["root_pose"] = float(d @ self.root_w)
            out["root_velocity"] = float(dv @ self.root_w) + 0.1 * self._root_angular_error(sim, ref)
            out["key_bodies"] = key_err
        return out

    def _root_angular_error(self, sim: SimState, ref: SimState) -> float:
        """Squared difference (rad/s)^2 of the roots' angular velocities in the world frame, as MimicKit compares
        them (its engines' root velocities are world-frame); MuJoCo's free-joint qvel holds them in the root's own
        frame, which would count a heading difference as a velocity error."""
        if self._root_ang is None:
            return 0.0
        q, v = self._root_ang
        mujoco.mju_rotVecQuat(self._w_sim, sim.qvel[v:v + 3], sim.qpos[q:q + 4])
        mujoco.mju_rotVecQuat(self._w_ref, ref.qvel[v:v + 3], ref.qpos[q:q + 4])
        diff = self._w_sim - self._w_ref
        return float(diff @ diff)

    def rewards(self, errors: Mapping[str, float]) -> dict[str, float]:
        """``exp(-k e)`` per term."""
        k = self.preset.scales
        return {name: math.exp(-k[name] * e) for name, e in errors.items()}

    def total(self, rewards: Mapping[str, float], weights: Mapping[str, float] | None = None) -> float:
        w = self.weights if weights is None else weights
        return float(sum(w.get(name, 0.0) * r for name, r in rewards.items()))


class RewardSchedule:
    """Term weights as a function of training progress ``p`` in [0, 1]: piecewise linear between points
    ``[(fraction, {term: weight}), ...]`` (sorted by fraction; held flat before the first and after the last).
    A term a point does not name keeps its weight from ``base``."""

    def __init__(self, points: Sequence[tuple[float, Mapping[str, float]]], base: Mapping[str, float]):
        if not points:
            raise OptiqError("reward schedule: give at least one (fraction, weights) point")
        pts = sorted((float(f), dict(w)) for f, w in points)
        if any(not 0.0 <= f <= 1.0 for f, _ in pts):
            raise OptiqError(f"reward schedule: fractions must lie in [0, 1], got {[f for f, _ in pts]}")
        unknown = sorted({k for _, w in pts for k in w} - set(base))
        if unknown:
            raise OptiqError(f"reward schedule: unknown term(s) {', '.join(unknown)}; terms: {', '.join(base)}")
        self.fractions = np.array([f for f, _ in pts])
        self.table = {k: np.array([w.get(k, base[k]) for _, w in pts]) for k in base}

    def weights(self, progress: float) -> dict[str, float]:
        p = float(np.clip(progress, 0.0, 1.0))
        return {k: float(np.interp(p, self.fractions, v)) for k, v in self.table.items()}

    @classmethod
    def tracking_to_task(cls, base: Mapping[str, float], stages: Sequence[float] = (1.0, 0.5, 0.1, 0.0)
                         ) -> RewardSchedule:
        """Tracking weights times ``stages[i]`` at evenly spaced fractions, the ``task`` weight the rest (its
        weight is ``1 - stage``): pose 0.65 -> 0.325 -> 0.065 -> 0 for ``deepmimic``, task 0 -> 1."""
        fractions = np.linspace(0.0, 1.0, len(stages))
        pts = [(f, {k: (1.0 - s if k == "task" else w * s) for k, w in base.items()})
               for f, s in zip(fractions, stages, strict=True)]
        return cls(pts, base)
