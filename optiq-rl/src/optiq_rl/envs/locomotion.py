"""``optiq/Locomotion-v0``: task-only reward, no reference to track.

The character starts standing (its rest pose, ``qpos0``, with small noise) or on a random frame of an optional
``init_reference`` clip, and must move at a target ground velocity: a speed and a heading, resampled every
``resample_seconds``; the velocity points where the body faces once turned to the target heading (its facing at
heading 0 is ``Character.forward``: +y for the DeepMimic humanoid). Reward terms (each in ``info`` as ``reward_<term>``, weighted; raw values as
``error_<term>``/``value_<term>``):

- ``velocity``: ``w exp(-k |v_xy - v_target|^2)``, the root's horizontal velocity (m/s) against the target's;
- ``heading``: ``w (1 + cos(yaw - yaw_target)) / 2``, the body facing the target direction;
- ``alive``: a constant bonus per step while not fallen;
- ``energy``: ``-w CoT``, the cost of transport ``sum |tau qdot| / (m g max(|v|, v_min))`` (mechanical power over
  weight times speed, unitless) at the end of the control step;
- ``smoothness``: ``-w |a_t - 2 a_{t-1} + a_{t-2}|^2 / nu``, the squared second difference of the actions (the
  jerk of the PD targets, per action unit).

Observation ``[F + 4]``: the body's ``optiq.features`` row, then the target velocity in the body's heading frame
(2, m/s) and the cosine and sine of the target heading relative to the body's. Actions are absolute PD targets
(``control.ActionMap``; ``action_mode="residual"``: turned from the rest pose), or torques with ``control="torque"``. The episode ends on a fall.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import mujoco
import numpy as np
from optiq.features import heading_angle as _yaw
from optiq.features import wrap_angle as _wrap

from .control import ActionMap
from .observations import heading_turn
from .reference import Reference, load_references
from .sim import CharacterEnv, SimConfig, make_config


@dataclass
class LocomotionConfig(SimConfig):
    """Settings of ``optiq/Locomotion-v0`` (``SimConfig``'s too).

    speed_range: target speeds drawn uniformly (m/s). heading_range: target heading drawn within this many
    radians of the body's heading. resample_seconds: time between new targets (s). init_reference: a clip file to
    start on random frames of (None: the rest pose). init_noise: uniform noise on the joints' qpos at a rest-pose
    start (radians). weights: term -> weight. velocity_scale: ``k`` of the velocity term (s^2/m^2). min_speed:
    ``v_min`` of the cost of transport (m/s). action_mode: ``absolute`` targets, or ``residual`` ones that turn
    from the rest pose (or from ``set_action_base``'s pose: the ``prior`` adapter's). residual_scale: radians per
    unit of action in ``residual`` mode.
    """

    speed_range: tuple[float, float] = (0.5, 1.5)
    heading_range: float = np.pi / 4
    resample_seconds: float = 5.0
    init_reference: object = None
    init_noise: float = 0.02
    weights: dict = field(default_factory=lambda: {"velocity": 0.5, "heading": 0.1, "alive": 0.4, "energy": 0.01,
                                                   "smoothness": 0.05})
    velocity_scale: float = 2.0
    min_speed: float = 0.1
    action_mode: str = "absolute"
    residual_scale: float = 0.5


class LocomotionEnv(CharacterEnv):
    """``optiq/Locomotion-v0``; ``LocomotionEnv(**LocomotionConfig settings)`` or ``LocomotionEnv(config=...)``."""

    def __init__(self, config: LocomotionConfig | None = None, render_mode: str | None = None, **kwargs):
        self.config = cfg = make_config(LocomotionConfig, config, kwargs)
        self._start(cfg, render_mode)
        self.actions = ActionMap(self.sim.char, self.sim.model, cfg.action_mode, cfg.residual_scale)
        self.resample_steps = max(1, int(round(cfg.resample_seconds * cfg.control_hz)))
        self.init = None if cfg.init_reference is None else \
            Reference(load_references(cfg.init_reference)[0], self.sim, 1)
        nu = self.sim.model.nu
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.sim.features.dim + 4,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (nu,), np.float32)
        self.weight = lambda term: float(cfg.weights.get(term, 0.0))
        self.target_velocity = np.zeros(2)
        self.target_yaw = 0.0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        sim, m = self.sim, self.sim.model
        if self.init is not None:
            f = int(self.np_random.integers(self.init.starts))
            qpos, qvel = self.init.qpos[f], self.init.qvel[f]
            prev = self.init.state(max(f - 1, 0))
        else:
            noise = self.np_random.uniform(-1.0, 1.0, m.nv) * self.config.init_noise
            noise[:6] = 0.0
            qpos = m.qpos0.copy()
            mujoco.mj_integratePos(m, qpos, noise, 1.0)
            qvel, prev = np.zeros(m.nv), None
        sim.set_state(qpos, qvel)
        self._body = sim.body_state()
        self._prev = prev if prev is not None else self._body
        self._actions = np.zeros((2, m.nu))  # a_{t-1}, a_{t-2}
        self.steps = 0
        self._new_target()
        return self._observation(), {"target_velocity": self.target_velocity.copy()}

    def _new_target(self) -> None:
        lo, hi = self.config.speed_range
        speed = self.np_random.uniform(lo, hi)
        yaw = _yaw(self._body.rot[0]) + self.np_random.uniform(-1.0, 1.0) * self.config.heading_range
        self.target_yaw = float(_wrap(yaw))
        # The body walks along its facing, which at heading 0 is Character.forward (+y for the DeepMimic humanoid).
        ahead = yaw + self.sim.char.forward
        self.target_velocity = speed * np.array([np.cos(ahead), np.sin(ahead)])

    def step(self, action):
        sim, cfg = self.sim, self.config
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        if cfg.control == "torque":
            sim.controller.set_torque(a)
        else:
            base = sim.model.qpos0 if self.action_base is None else self.action_base
            sim.controller.set_target(self.actions.target(a, base))
        self._prev = self._body
        sim.advance()
        self._body = sim.body_state()
        self.steps += 1
        d = sim.data
        v = d.qvel[:2]
        yaw = _yaw(self._body.rot[0])
        ctl = sim.controller
        # W: joint torque x joint speed over the motors' dofs; the torque is MuJoCo's (qfrc_actuator), whatever
        # the control mode (implicit_pd's ctrl is a target angle, not a torque).
        dofs = ctl.dofs
        power = float(np.abs(d.qfrc_actuator[dofs] * d.qvel[dofs]).sum())
        cot = power / (sim.mass * 9.81 * max(float(np.hypot(*v)), cfg.min_speed))
        jerk = float(((a - 2.0 * self._actions[0] + self._actions[1]) ** 2).sum() / len(a))
        self._actions = np.stack((a, self._actions[0]))
        fell = bool(cfg.fall_termination and sim.fell()) or sim.unstable()
        values = {"velocity": float(np.exp(-cfg.velocity_scale * ((v - self.target_velocity) ** 2).sum())),
                  "heading": float(0.5 * (1.0 + np.cos(yaw - self.target_yaw))), "alive": 0.0 if fell else 1.0,
                  "energy": -cot, "smoothness": -jerk}
        rewards = {k: self.weight(k) * val for k, val in values.items()}
        info = {**{f"reward_{k}": r for k, r in rewards.items()}, **{f"value_{k}": x for k, x in values.items()},
                "speed": float(np.hypot(*v)), "fell": fell, "target_velocity": self.target_velocity.copy()}
        if self.steps % self.resample_steps == 0:
            self._new_target()
        obs = self._observation() if not sim.unstable() else np.zeros(self.observation_space.shape, np.float32)
        truncated = not fell and self.steps >= self.max_steps
        return obs, float(sum(rewards.values())), fell, truncated, info

    def _observation(self) -> np.ndarray:
        body = self.sim.features.features(self._prev, self._body)
        yaw = _yaw(self._body.rot[0])
        v = heading_turn(yaw)[:2, :2] @ self.target_velocity  # [2] m/s in the heading frame
        rel = self.target_yaw - yaw
        return np.concatenate((body, v, [np.cos(rel), np.sin(rel)])).astype(np.float32)
