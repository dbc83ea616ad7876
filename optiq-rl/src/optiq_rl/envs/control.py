"""Control: PD targets (or torques) -> actuator torques at the physics rate.

Four modes (``CONTROL_MODES``), all clipped to the character's torque limits. The first three compute torques in
Python and write them to the motors as ``ctrl = torque / gear`` (MuJoCo applies ``gear x ctrl``; the generated
characters' gears are 1):

- ``pd``: ``tau = kp * err - kd * qdot`` per actuated degree of freedom. ``err`` is ``mj_differentiatePos(q,
  q_target)``: a hinge's angle difference, and for a ball joint the rotation vector of ``q^-1 q_target`` in the
  body frame (the frame of its qvel), so each of the three motors of a ball joint pushes along its own axis.
- ``spd``: stable PD (Tan, Liu & Turk 2011): the PD law evaluated at the next step's state, ``tau = -kp (q + dt
  qdot - q_target) - kd (qdot + dt qddot)``, with ``qddot`` solved from ``(M + kd dt) qddot = -C - kp (q + dt qdot
  - q_target) - kd qdot`` (M from ``mj_fullM``, C = ``qfrc_bias`` minus ``qfrc_passive``, the root's dofs with
  zero gains; contact forces, unknown before the step, are left out). Stable at gains where ``pd`` is not.
- ``torque``: the action is the torque itself, ``a * torque_limit`` with ``a`` in [-1, 1], held over the substeps.

``implicit_pd`` leaves the control law to MuJoCo (``NativePD``): the motors become position actuators with the
character's kp and kd, force-limited at the torque limits, under the ``implicitfast`` integrator, which treats their
damping implicitly (SPD's stability, without its mass-matrix solve in Python), and one ``mj_step(nstep=substeps)``
runs the control step. A hinge's law is ``pd``'s exactly; a ball joint's error is the difference of exponential
coordinates ``log(q_target) - log(q)`` (MuJoCo's ball-joint transmission), which equals ``pd``'s ``log(q^-1
q_target)`` to first order. No Python runs per substep: the mode the speed goal (0.8x of a bare ``mj_step`` loop)
is met with.

``ActionMap`` turns a policy's action ``[nu]`` in [-1, 1] into a target qpos: absolute (scaled by each joint's
range) or residual on a reference pose.
"""

from __future__ import annotations

import mujoco
import numpy as np
from optiq.errors import OptiqError

from ..characters import Character

CONTROL_MODES = ("pd", "spd", "torque", "implicit_pd")
ACTION_MODES = ("residual", "absolute")
_HINGE = 3  # mujoco.mjtJoint.mjJNT_HINGE


class Controller:
    """Drives ``char``'s actuators on ``model`` (a copy of ``char.model()`` with the env's physics step).

    mode: one of ``CONTROL_MODES``. gain_scale: multiplies kp and kd (tests use it for stiff gains).
    clip_torques: clip to ``char.torque_limits`` (always on in the envs; MuJoCo also clamps a motor's ctrl to its
    ``ctrlrange`` when the model limits it). ``implicit_pd`` changes ``model`` (its actuators and integrator): give
    it a copy of the character's model, as the envs do.
    """

    def __init__(self, char: Character, model, mode: str = "pd", gain_scale: float = 1.0,
                 clip_torques: bool = True):
        if mode not in CONTROL_MODES:
            raise OptiqError(f"control mode {mode!r} is unknown; expected one of {', '.join(CONTROL_MODES)}")
        self.model, self.mode = model, mode
        self.dofs = char.actuator_dofs()  # [nu] qvel index of each actuator
        nv = model.nv
        self.kp_dof, self.kd_dof = np.zeros(nv), np.zeros(nv)  # [nv], zero on the root and unactuated dofs
        self.kp_dof[self.dofs] = char.kp * gain_scale
        self.kd_dof[self.dofs] = char.kd * gain_scale
        self.kp, self.kd = self.kp_dof[self.dofs], self.kd_dof[self.dofs]
        self.limit = np.where(clip_torques, char.torque_limits, np.inf)
        # MuJoCo applies gear x ctrl: a motor of gear 100 (Humanoid-v5's) takes ctrl = torque / 100. Generated
        # characters have unit gears, so their torques go into ctrl as they are (no extra work per substep).
        self.gear = model.actuator_gear[:, :3].sum(axis=1)  # [nu] one non-zero entry each (actuator_dofs)
        self._unit_gear = bool(np.all(self.gear == 1.0))
        self._tau = np.zeros(model.nu)
        self.target = model.qpos0.copy()  # [nq] the PD target (root entries unused)
        self.torque = np.zeros(model.nu)  # [nu] N m, the held torque of ``torque`` mode
        self._torque_scale = np.asarray(char.torque_limits, dtype=np.float64)
        self._err = np.zeros(nv)
        self._mass = np.zeros((nv, nv))
        self._diagonal = self._mass.reshape(-1)[:: nv + 1]
        self._qacc, self._p = np.zeros(nv), np.zeros(nv)
        dt = model.opt.timestep  # the model's step, fixed for the controller's life
        self._kd_dt = self.kd_dof * dt
        # The dense mass matrix: MuJoCo 4's mj_fullM takes the MjData, 3.x took its sparse qM.
        self._full_mass = _full_mass_v3 if "qM" in dir(mujoco.MjData) else _full_mass_v4
        self._kpdt_kd = self.kp_dof * dt + self.kd_dof
        self._native = NativePD(model, self.dofs, self.kp, self.kd, self.limit) if mode == "implicit_pd" else None

    def set_target(self, qpos_target: np.ndarray) -> None:
        """PD target ``[nq]`` (the root's entries are ignored)."""
        self.target[:] = qpos_target

    def set_torque(self, action: np.ndarray) -> None:
        """``torque`` mode: ``action [nu]`` in [-1, 1] -> torques ``action * torque_limits`` (N m)."""
        np.multiply(np.minimum(np.maximum(action, -1.0), 1.0), self._torque_scale, out=self.torque)

    def pd_torques(self, data) -> np.ndarray:
        """``[nu]`` N m: plain PD at the current state."""
        return self._pd(data.qpos, data.qvel, np.empty(self.model.nu))

    def spd_torques(self, data) -> np.ndarray:
        """``[nu]`` N m: stable PD; ``data`` must hold ``mj_step1``'s quantities (M, qfrc_bias, qfrc_passive)."""
        return self._spd(data, data.qpos, data.qvel, data.qfrc_bias, data.qfrc_passive, np.empty(self.model.nu))

    def _pd(self, qpos, qvel, out):
        err = self._err
        mujoco.mj_differentiatePos(self.model, err, 1.0, qpos, self.target)
        err *= self.kp_dof
        err -= self.kd_dof * qvel
        return self._clip(err, out)

    def _spd(self, data, qpos, qvel, bias, passive, out):
        m, a, qacc, mass = self.model, self._p, self._qacc, self._mass
        mujoco.mj_differentiatePos(m, a, 1.0, qpos, self.target)
        # a = -kp (q + dt qdot - q_target) - kd qdot: tau = a - kd dt qddot, (M + kd dt) qddot = a - C.
        a *= self.kp_dof
        a -= self._kpdt_kd * qvel
        self._full_mass(m, data, mass)
        self._diagonal += self._kd_dt  # a strided view of the mass matrix's diagonal
        # MuJoCo's dense Cholesky: a 34-dof solve in microseconds (numpy's LAPACK call costs several times that).
        mujoco.mju_cholFactor(mass, 0.0)
        rhs = a - bias
        rhs += passive
        mujoco.mju_cholSolve(qacc, mass, rhs)
        qacc *= self._kd_dt
        a -= qacc
        return self._clip(a, out)

    def _clip(self, tau_dof: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The actuators' torques ``[nu]`` (into ``out``) from per-dof torques ``[nv]``, within the limits."""
        np.maximum(tau_dof[self.dofs], -self.limit, out=out)
        return np.minimum(out, self.limit, out=out)

    def step(self, data, substeps: int) -> None:
        """Advance ``substeps`` physics steps, recomputing the torques at every one (held in ``torque`` mode)."""
        m, ctrl = self.model, data.ctrl
        if self.mode == "torque":
            np.divide(self.torque, self.gear, out=ctrl)
            mujoco.mj_step(m, data, nstep=substeps)
            return
        if self._native is not None:
            self._native.set_ctrl(self.target, ctrl)
            mujoco.mj_step(m, data, nstep=substeps)
            return
        # MjData's arrays are views into its memory: fetched once, they follow the state through the substeps.
        qpos, qvel = data.qpos, data.qvel
        tau = ctrl if self._unit_gear else self._tau
        if self.mode == "pd":
            for _ in range(substeps):
                self._pd(qpos, qvel, tau)
                self._to_ctrl(tau, ctrl)
                mujoco.mj_step(m, data)
        else:
            bias, passive = data.qfrc_bias, data.qfrc_passive
            for _ in range(substeps):
                mujoco.mj_step1(m, data)  # positions and velocities: the mass matrix and bias at this state
                self._spd(data, qpos, qvel, bias, passive, tau)
                self._to_ctrl(tau, ctrl)
                mujoco.mj_step2(m, data)

    def _to_ctrl(self, tau: np.ndarray, ctrl: np.ndarray) -> None:
        """Torques ``[nu]`` N m -> the motors' ctrl (torque / gear); with unit gears ``tau`` is ctrl already."""
        if not self._unit_gear:
            np.divide(tau, self.gear, out=ctrl)


class NativePD:
    """PD control done by MuJoCo: turns ``model``'s motors into position actuators (in place) and PD targets into
    their ctrl.

    dofs ``[nu]``: each actuator's qvel index; kp, kd ``[nu]``: gains in joint space (N m / rad, N m s / rad);
    limit ``[nu]``: torque limits (N m, inf: none). An actuator of gear ``g`` on its dof (a hinge, or one axis of a
    ball joint) has length ``l = g x`` (``x``: the hinge angle, or that component of the ball joint's exponential
    coordinates ``log(q)``) and applies ``g f`` on the dof, so ``f = kp / g^2 (ctrl - l) - kd / g^2 dl/dt`` with
    ``ctrl = g x_target`` is the joint-space law ``kp (x_target - x) - kd qdot``; forces are clamped to
    ``limit / |g|``.
    """

    def __init__(self, model, dofs: np.ndarray, kp: np.ndarray, kd: np.ndarray, limit: np.ndarray):
        self.model, self.dofs = model, dofs
        jnt = model.dof_jntid[dofs]
        ball = model.jnt_type[jnt] == mujoco.mjtJoint.mjJNT_BALL  # [nu]
        # Each motor drives one dof (Character.actuator_dofs): its gear's one non-zero entry, the hinge's or the
        # ball axis's.
        self.gear = model.actuator_gear[np.arange(len(dofs)), np.where(ball, dofs - model.jnt_dofadr[jnt], 0)]
        g2 = self.gear ** 2
        # mj_differentiatePos(qpos0, target) gives a hinge's angle minus its qpos0 (added back) and a ball joint's
        # log(q0^-1 q) = log(q) (a ball's qpos0 is the identity): the actuator lengths at the target, in one call.
        self.offset = np.where(ball, 0.0, model.qpos0[model.jnt_qposadr[jnt]])
        self._diff = np.zeros(model.nv)
        model.actuator_gaintype[:] = mujoco.mjtGain.mjGAIN_FIXED
        model.actuator_biastype[:] = mujoco.mjtBias.mjBIAS_AFFINE
        model.actuator_dyntype[:] = mujoco.mjtDyn.mjDYN_NONE
        model.actuator_gainprm[:] = 0.0
        model.actuator_biasprm[:] = 0.0
        model.actuator_gainprm[:, 0] = kp / g2
        model.actuator_biasprm[:, 1] = -kp / g2
        model.actuator_biasprm[:, 2] = -kd / g2
        model.actuator_ctrllimited[:] = 0  # the ctrl is a target now, not a torque: its old range means nothing
        finite = np.isfinite(limit)
        model.actuator_forcelimited[:] = finite
        bound = np.where(finite, limit, 0.0) / np.abs(self.gear)
        model.actuator_forcerange[:] = np.stack([-bound, bound], axis=1)
        model.opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST

    def set_ctrl(self, target: np.ndarray, ctrl: np.ndarray) -> None:
        """The actuators' ctrl ``[nu]`` (into ``ctrl``): their lengths at the PD target ``target [nq]``."""
        m, diff = self.model, self._diff
        mujoco.mj_differentiatePos(m, diff, 1.0, m.qpos0, target)
        np.multiply(diff[self.dofs] + self.offset, self.gear, out=ctrl)


def _full_mass_v3(model, data, out: np.ndarray) -> None:
    mujoco.mj_fullM(model, out, data.qM)


def _full_mass_v4(model, data, out: np.ndarray) -> None:
    mujoco.mj_fullM(model, data, out)


class ActionMap:
    """Policy actions ``[nu]`` in [-1, 1] -> PD target qpos ``[nq]``.

    Each action drives its actuator's dof: for a ball joint the three actions are a rotation vector (radians) in the
    body frame, for a hinge an angle. ``absolute``: a ball joint's target is ``exp(a * range)`` (its range, at most
    pi), a hinge's the middle of its range plus ``a`` times half of it. ``residual``: the target is the reference
    pose turned by ``a * residual_scale`` radians (``q_ref exp(a s)`` for a ball joint, ``q_ref + a s`` for a hinge),
    so the zero action holds the reference. Both are one ``mj_integratePos`` of a dof vector from a base pose.
    """

    def __init__(self, char: Character, model, mode: str = "residual", residual_scale: float = 0.5):
        if mode not in ACTION_MODES:
            raise OptiqError(f"action mode {mode!r} is unknown; expected one of {', '.join(ACTION_MODES)}")
        self.model, self.mode = model, mode
        self.dofs = char.actuator_dofs()
        jnt = model.dof_jntid[self.dofs]
        kind = model.jnt_type[jnt]
        limited = model.jnt_limited[jnt].astype(bool)
        lo, hi = model.jnt_range[jnt].T
        if mode == "residual":
            self.scale, self.offset = np.full(len(jnt), float(residual_scale)), np.zeros(len(jnt))
        else:
            # A hinge moves from qpos0 to the middle of its range plus a half-range; a ball joint from identity.
            hinge = kind == _HINGE
            ball_range = np.minimum(np.where(limited, hi, np.pi), np.pi)
            self.scale = np.where(hinge, np.where(limited, 0.5 * (hi - lo), np.pi), ball_range)
            self.offset = np.where(hinge & limited, 0.5 * (lo + hi), 0.0) - \
                np.where(hinge, model.qpos0[model.jnt_qposadr[jnt]], 0.0)
        self._u = np.zeros(model.nv)

    def target(self, action: np.ndarray, reference_qpos: np.ndarray | None = None) -> np.ndarray:
        """Target qpos ``[nq]`` for ``action [nu]``; ``reference_qpos [nq]`` is needed in ``residual`` mode."""
        self._u[self.dofs] = np.clip(action, -1.0, 1.0) * self.scale + self.offset
        out = np.array(self.model.qpos0 if self.mode == "absolute" else reference_qpos, dtype=np.float64)
        mujoco.mj_integratePos(self.model, out, self._u, 1.0)
        return out
