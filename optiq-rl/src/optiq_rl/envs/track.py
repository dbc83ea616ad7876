"""``optiq/Track-v0``: a character tracks reference clips.

Each episode picks a clip (by ``weights``), starts on a reference frame (reference state initialisation: the
frame's qpos and qvel, a random frame of the clip, or its first with ``rsi=False``) and, every control step,
turns the action into PD targets (residual on the reference's next frame, or absolute), runs the physics
substeps, and scores the body against the reference at the same time (``rewards.TrackingReward``). It ends on a
fall (a fall body touches the ground), when a body is further than ``max_tracking_error`` from its reference,
and is truncated after ``max_seconds`` or at the reference's last frame: the end of a clip that does not loop
(``reference.py``), or of a looped one started past its first cycle (``reset(options={"frame": ...})``).

Observation ``[F + K F + K 5]`` float32, ``F`` the width of ``optiq.features`` rows of the character, ``K``
future frames: the body's feature row, the reference's feature rows at ``t + k`` for each future frame ``k``,
then for each ``k`` where the reference's root is seen from the body (``observations.relative_root``: offset in
the body's heading frame, cosine and sine of the relative heading). Action ``[nu]`` in [-1, 1]
(``control.ActionMap``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from .control import ActionMap
from .observations import relative_root
from .reference import Reference, load_references
from .rewards import RewardSchedule, SimState, TrackingReward
from .sim import CharacterEnv, EnvConfigError, SimConfig, make_config


@dataclass
class TrackConfig(SimConfig):
    """Settings of ``optiq/Track-v0`` (``SimConfig``'s too).

    reference: clip file(s), dataset(s) or Clips to track (required). clips: clip names within the datasets
    (default all). weights: sampling weight per clip (default equal). cyclic: loop the clips (None: those
    labelled ``loop = wrap``). action_mode: ``residual`` (targets on the reference) or ``absolute``.
    residual_scale: radians of target per unit of action in ``residual`` mode. reward: preset (``deepmimic``,
    ``mimickit``). reward_schedule: ``[(fraction, {term: weight}), ...]`` over training progress
    (``set_progress``), or ``"tracking_to_task"`` (``RewardSchedule.tracking_to_task``); None keeps the preset.
    rsi: start on a random reference frame. future_frames: the reference frames ahead in the observation.
    max_tracking_error: metres a body may stray from its reference before the episode ends (None: never).
    """

    reference: object = None
    clips: Sequence[str] = ()
    weights: Sequence[float] = ()
    cyclic: bool | None = None
    action_mode: str = "residual"
    residual_scale: float = 0.5
    reward: str = "deepmimic"
    reward_schedule: object = None
    rsi: bool = True
    future_frames: Sequence[int] = field(default=(1, 2, 3))
    max_tracking_error: float | None = 1.0


class TrackEnv(CharacterEnv):
    """``optiq/Track-v0``; ``TrackEnv(reference=..., **TrackConfig settings)`` or ``TrackEnv(config=...)``."""

    def __init__(self, config: TrackConfig | None = None, render_mode: str | None = None, **kwargs):
        self.config = cfg = make_config(TrackConfig, config, kwargs)
        if cfg.reference is None:
            raise EnvConfigError("optiq/Track-v0 needs reference=clip file(s) or a dataset to track")
        self._start(cfg, render_mode)
        self.future = np.asarray(cfg.future_frames, dtype=int)
        if self.future.size == 0 or (self.future < 1).any():
            raise EnvConfigError(f"future_frames must be positive frame offsets, got {list(cfg.future_frames)}")
        clips = load_references(cfg.reference, cfg.clips)
        self.references = [Reference(c, self.sim, self.max_steps + int(self.future.max()) + 1, cfg.cyclic)
                           for c in clips]
        for ref in self.references:
            ref.lookahead(self.future)
        w = np.ones(len(clips)) if not len(cfg.weights) else np.asarray(cfg.weights, dtype=np.float64)
        if w.shape != (len(clips),) or (w < 0).any() or w.sum() <= 0:
            raise EnvConfigError(f"weights: one non-negative weight per clip ({len(clips)}), got {list(cfg.weights)}")
        self.clip_weights = w / w.sum()
        self.actions = ActionMap(self.sim.char, self.sim.model, cfg.action_mode, cfg.residual_scale)
        self.reward_fn = TrackingReward(self.sim.char, self.sim.model, cfg.reward)
        schedule = cfg.reward_schedule
        if schedule == "tracking_to_task":
            schedule = RewardSchedule.tracking_to_task(self.reward_fn.weights)
        elif schedule is not None and not isinstance(schedule, RewardSchedule):
            schedule = RewardSchedule(schedule, self.reward_fn.weights)
        self.schedule = schedule
        self.progress = 0.0
        f = self.sim.features.dim
        dim = f + len(self.future) * (f + 5)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.sim.model.nu,), np.float32)
        self.ref = self.references[0]
        self.frame = self.start = 0
        self._prev = self._body = None  # BodyStates at the last two control steps
        self._obs = np.empty(dim, dtype=np.float32)

    # --- training progress ---------------------------------------------------------------------------------
    def set_progress(self, progress: float) -> None:
        """Training progress in [0, 1]: the reward schedule's weights at it become the reward's."""
        self.progress = float(np.clip(progress, 0.0, 1.0))
        if self.schedule is not None:
            self.reward_fn.weights = self.schedule.weights(self.progress)

    # --- episode -------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        k = options.get("clip")
        k = int(self.np_random.choice(len(self.references), p=self.clip_weights)) if k is None else int(k)
        self.ref = ref = self.references[k]
        start = options.get("frame")
        if start is None:
            start = int(self.np_random.integers(ref.starts)) if self.config.rsi else 0
        if not 0 <= int(start) < ref.num_frames - 1:
            raise EnvConfigError(f"reset: frame {start} is outside clip {ref.name!r} (0..{ref.num_frames - 2})")
        self.start = self.frame = int(start)
        self.sim.set_state(ref.qpos[start], ref.qvel[start])
        prev = max(start - 1, 0)
        self._prev = ref.state(prev)
        self._body = self.sim.body_state()
        self.steps = 0
        return self._observation(), {"clip": ref.name, "frame": self.frame}

    def step(self, action):
        ref, sim = self.ref, self.sim
        action = np.asarray(action, dtype=np.float64)
        nxt = min(self.frame + 1, ref.num_frames - 1)
        if self.config.control == "torque":
            sim.controller.set_torque(action)
        else:
            base = ref.qpos[nxt] if self.action_base is None else self.action_base
            sim.controller.set_target(self.actions.target(action, base))
        self._prev = self._body
        sim.advance()
        self.frame, self.steps = nxt, self.steps + 1
        self._body = sim.body_state()
        pos = self._body.pos
        d = sim.data
        state = SimState(d.qpos, d.qvel, pos, sim.com())
        target = SimState(ref.qpos[nxt], ref.qvel[nxt], ref.pos[nxt], ref.com[nxt])
        errors = self.reward_fn.errors(state, target)
        errors["task"] = float(((d.qvel[:2] - ref.velocity) ** 2).sum())
        rewards = self.reward_fn.rewards(errors)
        reward = self.reward_fn.total(rewards)
        body_error = float(np.sqrt(((pos - ref.pos[nxt]) ** 2).sum(-1)).max())
        fell = self.config.fall_termination and sim.fell()
        strayed = self.config.max_tracking_error is not None and body_error > self.config.max_tracking_error
        unstable = bool(sim.unstable())
        terminated = bool(fell or strayed or unstable)
        # A looped reference is long enough for max_seconds from any frame of its first cycle (RSI's starts);
        # its last frame ends only an episode started later.
        truncated = bool(not terminated and (self.steps >= self.max_steps or nxt >= ref.num_frames - 1))
        info = {"clip": ref.name, "frame": nxt, "body_error": body_error, "fell": bool(fell),
                "strayed": bool(strayed), "unstable": unstable, **{f"reward_{k}": v for k, v in rewards.items()},
                **{f"error_{k}": v for k, v in errors.items()}}
        obs = self._observation() if not unstable else np.zeros(self.observation_space.shape, np.float32)
        return obs, (0.0 if unstable else reward), terminated, truncated, info

    def _observation(self) -> np.ndarray:
        ref, body, obs, f = self.ref, self._body, self._obs, self.sim.features.dim
        kf = len(self.future) * f
        self.sim.features.features(self._prev, body, obs[:f])
        obs[f:f + kf] = ref.ahead_features[self.frame]
        obs[f + kf:] = relative_root(body.pos[0], body.rot[0], ref.ahead_root[self.frame],
                                     ref.ahead_yaw[self.frame]).ravel()
        return obs.copy()
