"""Reinforcement learning that starts from a pretrained motion model (``optiq train rl --pretrained model.pt``).

A next-state motion model of optiq-models (``mlp``, ``transformer``, ``unet``) reads ``optiq.features`` rows of
the last frames and predicts the next one; its checkpoint carries the feature spec, the normalisation, the labels,
the skeleton and the frame rates it was trained at. Here it meets the simulated character:

- ``MotionPrior``: the checkpoint, checked against the env's character (the same skeleton: joint names and
  parents; a feature row as wide as the character's; the frame rate the env's control rate) with one line that says
  what to do when it does not fit (retarget the data to the character with ``optiq rl retarget`` and retrain).
- ``MotionAdapter``: a Gymnasium wrapper that keeps the window of the character's own recent feature rows
  (``BodyFeatures``: ``featurize``'s row of the simulated body, equal to it to 1e-5) and observes
  ``{"obs": the env's observation, "history": [T, F] raw feature rows, oldest first}``. In ``prior`` mode it asks
  the model for the next pose before every step and makes it the base of the env's residual PD targets
  (``CharacterEnv.set_action_base``), so a zero action plays the model's prediction.
- ``MotionExtractor``: the SB3 features extractor of every adapter mode: the model's ``encoder`` over the history
  (normalised inside, with the model's own fixed statistics; VecNormalize only sees ``obs``), concatenated with the
  normalised observation. ``MotionPolicy`` gives the encoder its own parameter group (``lr_scale`` x the policy's
  learning rate, which ``PPO`` here keeps when SB3 sets the rate each update).

Modes (``ADAPTER_MODES``), the same network, action interface and controller in each; only the initialisation or
the prior differs:

- ``scratch``: the encoder's architecture with fresh weights (the control);
- ``feature``: the pretrained encoder's weights, loaded after SB3 built (and orthogonally re-initialised) the
  network;
- ``prior``: fresh weights, and the model's predicted next pose as the base of the residual actions.
- ``hint``: fresh weights, and the model's predicted next feature row as one more input of the policy (and the
  critic), the env's own action base kept. Why (docs/results.md, ``exp_bootstrap.py --diagnose``): as a base the
  prediction replaces a better one where the env has it (Track-v0's reference: with no learning the reference's
  next frame keeps the body up for 31 control steps, the prediction for 23), and the residual must correct a base
  that moves with the body's own errors; as an input the policy can follow the prediction where it helps and
  ignore it where it does not. Any env: no residual actions needed.
- ``style``: fresh weights, the env's own action base, and a style reward from the model: after every step
  ``style_weight * exp(-style_scale * e)``, ``e`` the mean squared error (in the model's normalised feature units)
  of the model's prediction of the row the body has just reached, from the rows before it: motion the model
  expects earns more (AMP's idea, the pretrained predictor in place of a discriminator). Why: on the task-only
  reward no other mode makes the motion more like the data (docs/results.md); the model's error on its own
  training transitions has median 0.005, on the same poses held still 0.033 (``exp_bootstrap.py --probe``), so it
  tells moving like the data from standing. The scale (default 3) gives the reward a slope where trained policies'
  errors lie (at an error ``e`` the slope ``k w exp(-k e)`` is steepest over ``k`` at ``k = 1 / e``; ``--style-check``:
  median 0.31-0.37 on the loco policies); a scale of 20 (first tried) pays 0.001 per step at that median (0.006-0.015
  on average), nothing to follow.
  The env's own reward stays in ``info["task_reward"]``, the episode's in ``info["task_return"]`` at its end;
  training's curve and ``rollout`` (evaluation) report the task's, so a comparison with the other modes is at
  equal task return.

In every mode the encoder is frozen for ``freeze_steps`` env steps, then trains at ``encoder_lr_scale`` x the
learning rate (``EncoderSchedule``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from optiq.errors import OptiqError, SkeletonMismatchError

ADAPTER_MODES = ("scratch", "feature", "prior", "hint", "style")


class AdapterError(OptiqError):
    """A pretrained model that cannot serve the env or the adapter mode asked for."""


@dataclass
class AdapterConfig:
    """The ``adapter:`` section of an RL config (``optiq train rl --pretrained ... --adapter-mode ...``).

    pretrained: a motion model checkpoint (``optiq train model``'s ``.pt``). mode: one of ``ADAPTER_MODES``.
    freeze_steps: env steps with the encoder frozen. encoder_lr_scale: the encoder's learning rate as a multiple of
    the policy's once unfrozen. labels: ``{name: value}`` the model is conditioned on (``movement: run``).
    history: feature rows kept (None: the model's context, at most ``MAX_HISTORY``). guidance: the prior's
    classifier-free guidance scale (``predict_next``). actions: ``env`` (the env's own action interface) or ``pd``
    (a MuJoCo env whose motors take torques, Humanoid-v5: actions in [-1, 1] become residual PD targets on the rest
    pose, or on the prior's pose, turned into torques by ``TorquePD``; ``prior`` needs it there, and every
    condition of a comparison should use it). residual_scale: radians per unit of action with ``actions: pd``.
    style_weight, style_scale: ``style`` mode's reward per step, ``style_weight * exp(-style_scale * e)``."""

    pretrained: str | None = None
    mode: str = "feature"
    freeze_steps: int = 0
    encoder_lr_scale: float = 0.1
    labels: dict = field(default_factory=dict)
    history: int | None = None
    guidance: float = 0.0
    actions: str = "env"
    residual_scale: float = 0.5
    style_weight: float = 0.5
    style_scale: float = 3.0

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> AdapterConfig | None:
        """The config of ``values`` (an RL config's ``adapter`` dict), None when it names no checkpoint."""
        values = {k: v for k, v in dict(values or {}).items() if v is not None}
        if not values.get("pretrained"):
            if values:
                given = ", ".join(f"{k}={v!r}" for k, v in values.items())
                raise AdapterError(f"adapter setting(s) {given} need a pretrained motion model (--pretrained "
                                   "model.pt): it fixes the encoder's architecture in every mode")
            return None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise AdapterError(f"unknown adapter setting(s) {', '.join(unknown)}; settings: {', '.join(sorted(known))}")
        cfg = cls(**values)
        if cfg.mode not in ADAPTER_MODES:
            raise AdapterError(f"adapter mode {cfg.mode!r} is unknown; expected one of {', '.join(ADAPTER_MODES)}")
        cfg.freeze_steps = _whole(cfg.freeze_steps, "freeze_steps", 0)
        cfg.history = None if cfg.history is None else _whole(cfg.history, "history", 1)
        if cfg.actions not in ("env", "pd"):
            raise AdapterError(f"adapter: actions must be env or pd, got {cfg.actions!r}")
        for key in ("encoder_lr_scale", "guidance", "residual_scale", "style_weight", "style_scale"):
            value = getattr(cfg, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
                raise AdapterError(f"adapter: {key} must be a number >= 0, got {value!r}")
            setattr(cfg, key, float(value))
        if not isinstance(cfg.labels, Mapping):
            raise AdapterError(f"adapter: labels must be a mapping name -> value, got {cfg.labels!r}")
        cfg.pretrained = os.path.abspath(os.fspath(cfg.pretrained))
        cfg.labels = {str(k): str(v) for k, v in cfg.labels.items()}
        return cfg

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _whole(value: Any, key: str, least: int) -> int:
    """``value`` as an int of at least ``least`` (``1e5`` from YAML included), else AdapterError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value) or value < least:
        raise AdapterError(f"adapter: {key} must be a whole number >= {least}, got {value!r}")
    return int(value)


#: The longest history an adapter keeps by default: a transformer's 64-frame window costs more than the physics
#: per step (docs/rl.md, "Adapters": measured); its encoder reads whatever is shorter.
MAX_HISTORY = 16


# --- the model -------------------------------------------------------------------------------------------------
class MotionPrior:
    """A next-state motion model checkpoint served to ``char`` at ``control_hz``.

    Raises AdapterError (one line, naming the file) when the file is no motion model, when the model has no
    next-state encoder and head (a VQ-VAE tokenizer), when its skeleton is not the character's, its features are
    not the character's (another root, foot contacts), its frame rate is not the control rate, or a label is
    unknown."""

    def __init__(self, path: str | os.PathLike, char, control_hz: float, labels: Mapping[str, str] | None = None,
                 mode: str = "feature", guidance: float = 0.0):
        import torch

        try:
            from optiq_models.checkpoint import load_checkpoint
        except ImportError:
            raise AdapterError('--pretrained needs optiq-models: pip install "optiq[ml]"') from None
        from optiq.features import feature_layout

        from .envs.observations import BodyFeatures
        from .retarget import QposWriter

        self.path = Path(path)
        self.model, ckpt = load_checkpoint(path)
        self.ckpt, self.mode, self.guidance = ckpt, mode, float(guidance)
        if ckpt.kind != "next_state" or not hasattr(self.model, "encoder") or \
                not hasattr(self.model.encoder, "features_dim"):
            raise AdapterError(f"a {ckpt.kind} model ({ckpt.arch}) cannot serve adapter mode {mode!r}: it has no "
                               "next-state encoder and next-pose head; train a next-state model (mlp, transformer, "
                               "unet) with optiq train model", path)
        name = char.name
        order = _joint_order(ckpt, char, path)
        spec = ckpt.feature_spec
        if spec is None or not hasattr(spec, "rotation"):
            raise AdapterError("the checkpoint has no feature spec (optiq.features): not a model of motion features",
                               path)
        if spec.contacts or spec.sim_to_real_idx is not None:
            what = "foot-contact flags" if spec.contacts else "a robot's dof map"
            raise AdapterError(f"the model's features have {what}, which the simulated character's features do not; "
                               "train it with contacts: false on the character's data", path)
        if spec.root not in (None, char.joint_names[0]):
            raise AdapterError(f"the model's features are measured about joint {spec.root!r}, the character's root "
                               f"is {char.joint_names[0]!r}", path)
        rates = [float(r) for r in (ckpt.extra or {}).get("fps", [])]
        if any(abs(r - control_hz) > 1e-3 * control_hz for r in rates):
            got = ", ".join(f"{r:g}" for r in rates)
            raise AdapterError(f"the model was trained on motion at {got} fps but the env steps at {control_hz:g} Hz: "
                               f"one prediction is one frame; retarget the data at the control rate (optiq rl "
                               f"retarget ... --fps {control_hz:g}) and retrain, or set the env's control_hz", path)
        self.features = BodyFeatures(char, control_hz, spec.rotation, order)
        self.layout = feature_layout(self.features.skeleton, self.features.spec)
        if self.features.dim != ckpt.feature_dim:
            raise AdapterError(f"the model reads feature rows of {ckpt.feature_dim} numbers; character {name!r} gives "
                               f"{self.features.dim}", path)
        norm = ckpt.normalizer
        self.mean = np.asarray(norm.mean, dtype=np.float32)
        self.std = np.asarray(norm.std, dtype=np.float32)
        vocab = ckpt.vocab
        if getattr(vocab, "floats", None):
            raise AdapterError(f"the model is conditioned on number labels ({', '.join(vocab.floats)}), which an "
                               "env does not give; use a model of named labels", path)
        try:
            self.label_index = vocab.encode(dict(labels or {}), strict=True)
        except OptiqError as exc:
            raise AdapterError(str(exc.args[0]), path) from None
        self.frame_labels = tuple(getattr(vocab, "frame", ()) or ())
        self.context = int(self.model.context)
        self.char = char
        self.rotation = spec.rotation
        self._qpos = QposWriter(char)
        self._torch = torch
        # The model's joint order -> the character's: character joint i is joint _to_char[i] of a prediction.
        self._to_char = np.array([order.index(n) for n in char.joint_names])
        self._local = np.zeros((1, len(order), 4))
        self._local[..., 0] = 1.0

    @property
    def features_dim(self) -> int:
        return int(self.model.encoder.features_dim)

    def cond(self, batch: int, frames: int):
        """The label tensors of a batch: name -> LongTensor ``[batch]`` (``[batch, frames]`` for frame labels);
        None when the model has no labels."""
        torch = self._torch
        if not self.label_index:
            return None
        return {n: torch.full((batch, frames) if n in self.frame_labels else (batch,), i, dtype=torch.long)
                for n, i in self.label_index.items()}

    def next_row(self, history: np.ndarray) -> np.ndarray:
        """The predicted next feature row ``[F]`` (raw units) after ``history [T, F]`` (raw rows, oldest first)."""
        torch = self._torch
        x = torch.from_numpy(((history - self.mean) / self.std).astype(np.float32))[None]
        with torch.inference_mode():
            y = self.model.predict_next(x, self.cond(1, len(history)), self.guidance)[0].numpy()
        return y * self.std + self.mean

    def next_qpos(self, history: np.ndarray, qpos: np.ndarray) -> np.ndarray:
        """PD targets ``[nq]``: ``qpos [nq]`` with every joint below the root set to the predicted next pose (the
        local rotations of ``next_row``); the root's entries are kept (no motor drives them)."""
        row = self.next_row(history)
        lay = self.layout
        rot = _decode(row[lay.slices["rotations"]].reshape(len(lay.joints), -1), self.rotation)
        local = self._local
        local[0, lay.joints] = rot
        out = np.array(qpos, dtype=np.float64)[None]
        self._qpos(local[:, self._to_char], out)
        return out[0]

    def extractor_kwargs(self) -> dict[str, Any]:
        """What ``MotionExtractor`` needs to rebuild the encoder (plain values: SB3 stores them in the policy)."""
        c = self.ckpt
        return {"arch": c.arch, "feature_dim": int(c.feature_dim), "vocab": c.vocab.to_dict(),
                "model_config": dict(c.model_config), "mean": self.mean.tolist(), "std": self.std.tolist(),
                "labels": dict(self.label_index), "frame_labels": list(self.frame_labels)}


def _decode(r: np.ndarray, rotation: str) -> np.ndarray:
    """``optiq.features.decode_rotations`` of ``[K, E]`` rows, 6D without its general-shape bookkeeping (a
    prior's hot path: Gram-Schmidt of the two columns, then the quaternion of the matrix)."""
    from optiq import quat
    from optiq.features import decode_rotations

    if rotation != "6d":
        return decode_rotations(r, rotation)
    a, b = r[:, :3].astype(np.float64), r[:, 3:].astype(np.float64)
    b1 = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b2 = b - (b1 * b).sum(1, keepdims=True) * b1
    b2 /= np.maximum(np.linalg.norm(b2, axis=1, keepdims=True), 1e-12)
    m = np.stack((b1.T, b2.T, np.cross(b1, b2).T), axis=1)  # [3 rows, 3 columns, K]: columns b1, b2, b3
    q = quat.from_matrix_parts(m).T
    return np.where(q[:, :1] < 0, -q, q)


# --- the env side ----------------------------------------------------------------------------------------------
class MotionAdapter(gym.Wrapper):
    """The observation adapter: ``env`` (an optiq env, or any MuJoCo Gymnasium env whose body is the model's
    character) observed as ``{"obs": [D], "history": [T, F] float32}``; in ``prior`` mode the model's next pose
    is the base of the env's residual PD targets.

    The history holds the raw ``optiq.features`` rows of the character's last T control steps, oldest first; after
    a reset every row is the first state's (``featurize`` pads a clip's start the same way)."""

    def __init__(self, env: gym.Env, config: AdapterConfig | Mapping[str, Any]):
        super().__init__(env)
        from .envs.sim import CharacterEnv

        cfg = config if isinstance(config, AdapterConfig) else AdapterConfig.from_dict(config)
        self.config = cfg
        base = env.unwrapped
        self._optiq = isinstance(base, CharacterEnv)
        if self._optiq:
            char, hz = base.sim.char, float(base.sim.features.fps)
        else:
            char, hz = _mujoco_character(base), 1.0 / float(base.dt)
        self.prior = MotionPrior(cfg.pretrained, char, hz, cfg.labels, cfg.mode, cfg.guidance)
        env_id = env.spec.id if env.spec else type(base).__name__
        self._pd = None
        if cfg.actions == "pd":
            if self._optiq:
                raise AdapterError(f"adapter actions 'pd' are for MuJoCo envs that take torques; {env_id} sets its own "
                                   "(env_kwargs.action_mode and control)")
            self._pd = TorquePD(base, char, cfg.residual_scale)
            self.action_space = gym.spaces.Box(-1.0, 1.0, (base.model.nu,), np.float32)
        if cfg.mode == "prior":
            _check_prior_env(base, self._optiq, env_id, self._pd is not None)
        self._base = None if self._pd is None else base.model.qpos0.copy()  # the PD targets' base pose
        names = list(char.joint_names)
        perm = np.array([names.index(n) for n in self.prior.features.skeleton.names])
        self._order = None if np.array_equal(perm, np.arange(len(perm))) else perm  # the model's joint order
        self.frames = int(cfg.history or min(self.prior.context, MAX_HISTORY))
        f = self.prior.features.dim
        self.history = np.zeros((self.frames, f), dtype=np.float32)
        spaces = {"obs": env.observation_space, "history": gym.spaces.Box(-np.inf, np.inf, (self.frames, f), np.float32)}
        if cfg.mode == "hint":  # the model's predicted next row, raw units (MotionExtractor normalises it)
            spaces["hint"] = gym.spaces.Box(-np.inf, np.inf, (f,), np.float32)
        self.observation_space = gym.spaces.Dict(spaces)
        self._prev = None
        self._pred, self._task_return = None, 0.0  # style: the prediction of the next row; the task's return

    def _states(self):
        """The character's body states at the last two control steps (the env's, or read from MuJoCo)."""
        base = self.env.unwrapped
        if self._optiq:
            prev, now = base.body_states()  # the character's joint order
            perm = self._order
            if perm is None:
                return prev, now
            return type(now)(*(a[perm] for a in prev)), type(now)(*(a[perm] for a in now))
        import mujoco

        mujoco.mj_kinematics(base.model, base.data)  # after mj_step, xpos lags qpos by one physics step
        d = base.data
        now = self.prior.features.body_state(d.xpos, d.xquat, d.xmat)
        prev = now if self._prev is None else self._prev
        self._prev = now
        return prev, now

    def joint_positions(self) -> np.ndarray:
        """World positions ``[J, 3]`` (m) of the character's joints at the last observation, in the model's joint
        order (``likeness.py`` measures foot sliding with them)."""
        return self._now.pos.copy()

    def _observe(self, obs, first: bool) -> dict[str, np.ndarray]:
        prev, now = self._states()
        self._now = now
        row = self.prior.features.features(prev, now)
        h = self.history
        if first:
            h[:] = row
        else:
            h[:-1] = h[1:]
            h[-1] = row
        if self.config.mode == "prior":
            base = self.env.unwrapped
            if self._pd is None:
                base.set_action_base(self.prior.next_qpos(h, base.sim.data.qpos))
            else:
                self._base = self.prior.next_qpos(h, base.data.qpos)
        out = {"obs": np.asarray(obs, dtype=np.float32), "history": h.copy()}
        if self.config.mode == "hint":
            out["hint"] = self.prior.next_row(h).astype(np.float32)
        elif self.config.mode == "style":
            self._pred = self.prior.next_row(h)
        return out

    def style_reward(self, pred: np.ndarray, row: np.ndarray) -> float:
        """``style`` mode's reward for reaching feature row ``row [F]`` where the model predicted ``pred [F]`` (raw
        units): ``style_weight * exp(-style_scale * mean(((row - pred) / std)^2))``."""
        e = float(np.mean(((np.asarray(row, np.float64) - pred) / self.prior.std) ** 2))
        return self.config.style_weight * math.exp(-self.config.style_scale * e)

    def reset(self, **kwargs):
        self._prev, self._task_return = None, 0.0
        obs, info = self.env.reset(**kwargs)
        return self._observe(obs, True), info

    def step(self, action):
        if self._pd is not None:
            action = self._pd.ctrl(action, self._base)
        obs, reward, terminated, truncated, info = self.env.step(action)
        pred = self._pred
        out = self._observe(obs, False)
        if self.config.mode == "style":
            style = self.style_reward(pred, self.history[-1])
            self._task_return += float(reward)
            info = {**info, "task_reward": float(reward), "style_reward": style}
            if terminated or truncated:
                info["task_return"] = self._task_return
            reward = float(reward) + style
        return out, reward, terminated, truncated, info


class TorquePD:
    """PD targets for a MuJoCo env whose motors take torques (Humanoid-v5): an action ``[nu]`` in [-1, 1] turns the
    base pose's joints by ``action x residual_scale`` radians (``control.ActionMap``, residual), and the RL package's
    stable PD (``control.Controller``, ``spd``, with the control step as its time step, since the torque is held
    over the env's substeps) gives the torques, sent as the env's actions (torque / gear, within its ctrl range).
    The character's gains (``Character.kp``, ``kd``; for an MJCF without them: 2 x the torque limit and a tenth of
    that)."""

    def __init__(self, base, char, residual_scale: float = 0.5):
        import copy

        from .envs.control import ActionMap, Controller

        self.base = base
        model = copy.copy(base.model)  # the controller's own copy: its time step is the control step
        model.opt.timestep = float(base.dt)
        self.controller = Controller(char, model, "spd")
        self.actions = ActionMap(char, base.model, "residual", residual_scale)
        self.low, self.high = base.action_space.low.astype(np.float64), base.action_space.high.astype(np.float64)

    def ctrl(self, action: np.ndarray, base_qpos: np.ndarray) -> np.ndarray:
        """The env's action ``[nu]`` for policy action ``[nu]`` around ``base_qpos [nq]``, at the state now."""
        import mujoco

        d = self.base.data
        mujoco.mj_forward(self.base.model, d)  # the mass matrix and bias forces at the state now
        ctl = self.controller
        ctl.set_target(self.actions.target(np.asarray(action, dtype=np.float64), base_qpos))
        return np.clip(ctl.spd_torques(d) / ctl.gear, self.low, self.high)


def _joint_order(ckpt, char, path) -> tuple[str, ...]:
    """The model's joint names when they are the character's joints with the same parents (in any order: the
    adapter reorders its feature rows); else AdapterError saying how to retarget the data to the character."""
    mine, sk = ckpt.skeleton, char.skeleton()
    if mine is None:
        raise AdapterError("the checkpoint has no skeleton: it cannot be matched to a character", path)

    def tree(s):
        return {n: (None if p < 0 else s.names[p]) for n, p in zip(s.names, s.parents, strict=True)}

    if tree(mine) != tree(sk):
        try:
            ckpt.check_skeleton(sk, f"character {char.name!r}")
            detail = "the same joints with other parents"
        except SkeletonMismatchError as exc:
            detail = exc.message
        else:
            detail = f"the model's joints ({', '.join(mine.names[:3])}, ...) are not the character's: {detail}"
        raise AdapterError(f"{detail}; retarget the motion data to the character (optiq rl retarget --in DATA "
                           f"--character {char.name} --map MAP --out ref.parquet) and train the model on it "
                           "(optiq train model --data ref.parquet)", path)
    if mine.names[0] != sk.names[0]:
        raise AdapterError(f"the model's first joint is {mine.names[0]!r}, the character's root {sk.names[0]!r}",
                           path)
    return tuple(mine.names)


def _mujoco_character(base):
    """The Character of a Gymnasium MuJoCo env's own MJCF (its ``fullpath``): Humanoid-v5's body."""
    from .characters import load_mjcf

    path = getattr(base, "fullpath", None)
    if path is None or not hasattr(base, "data"):
        raise AdapterError(f"env {type(base).__name__} is neither an optiq env nor a MuJoCo env with an MJCF file: "
                           "the adapter cannot read its body")
    return load_mjcf(path)


def _check_prior_env(base, optiq_env: bool, env_id: str, pd: bool) -> None:
    """``prior`` needs residual PD targets: an optiq env with ``action_mode: residual`` and a PD controller, or a
    torque env with the adapter's ``actions: pd``."""
    if not optiq_env:
        if not pd:
            raise AdapterError(f"adapter mode 'prior' needs PD targets; {env_id} takes torques: set "
                               "--adapter.actions pd (and the same for the conditions it is compared with)")
        return
    cfg = base.config
    if getattr(cfg, "action_mode", "absolute") != "residual" or cfg.control == "torque":
        raise AdapterError(f"adapter mode 'prior' turns residual PD targets from the model's pose: {env_id} needs "
                           f"env_kwargs.action_mode=residual and a PD control (has {getattr(cfg, 'action_mode', '-')}"
                           f", {cfg.control})")


# --- the policy side -------------------------------------------------------------------------------------------
def _extractor_base():
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    return BaseFeaturesExtractor


class MotionExtractor(_extractor_base()):
    """``{"obs": [B, D], "history": [B, T, F]}`` -> ``[B, D + E]``: the observation (as VecNormalize gives it) and
    the motion encoder's features of the history, normalised with the model's own statistics (fixed buffers).
    With a ``"hint": [B, F]`` observation (``hint`` mode) -> ``[B, D + E + F]``: the predicted row too, normalised
    the same way.

    The encoder stays in eval mode (no label dropout) while SB3 switches the policy between training and
    inference; whether it learns is ``EncoderSchedule``'s business (requires_grad)."""

    def __init__(self, observation_space, arch: str, feature_dim: int, vocab: dict, model_config: dict,
                 mean: list, std: list, labels: dict, frame_labels: list = ()):
        import torch
        from optiq_models.nets import build_model
        from optiq_models.nets.conditioning import LabelVocab

        obs_dim = int(np.prod(observation_space["obs"].shape))
        net = build_model(arch, feature_dim, LabelVocab.from_json(vocab), model_config)
        has_hint = "hint" in observation_space.spaces
        super().__init__(observation_space, obs_dim + int(net.encoder.features_dim) + (feature_dim if has_hint else 0))
        self.hint = has_hint
        self.encoder = net.encoder
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.labels, self.frame_labels = dict(labels), tuple(frame_labels)
        self.encoder.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, observations):
        import torch

        hist = observations["history"]
        x = (hist - self.mean) / self.std
        b, t = x.shape[0], x.shape[1]
        cond = {n: torch.full((b, t) if n in self.frame_labels else (b,), i, dtype=torch.long, device=x.device)
                for n, i in self.labels.items()} or None
        parts = [observations["obs"].flatten(1), self.encoder(x, cond)]
        if self.hint:
            parts.append((observations["hint"] - self.mean) / self.std)
        return torch.cat(parts, dim=1)


def encoders(policy) -> list:
    """The encoders of ``policy``'s MotionExtractors (one when actor and critic share theirs)."""
    seen, out = set(), []
    for m in policy.modules():
        if isinstance(m, MotionExtractor) and id(m.encoder) not in seen:
            seen.add(id(m.encoder))
            out.append(m.encoder)
    return out


def _policy_base():
    from stable_baselines3.common.policies import MultiInputActorCriticPolicy

    return MultiInputActorCriticPolicy


class MotionPolicy(_policy_base()):
    """SB3's multi-input actor-critic with the encoder's parameters in their own optimiser group, whose ``lr_scale``
    (``encoder_lr_scale``) ``PPO._update_learning_rate`` applies on top of the learning rate of every update."""

    def __init__(self, *args, encoder_lr_scale: float = 1.0, **kwargs):
        self.encoder_lr_scale = float(encoder_lr_scale)
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        mine = {id(p) for enc in encoders(self) for p in enc.parameters()}
        enc = [p for p in self.parameters() if id(p) in mine]
        rest = [p for p in self.parameters() if id(p) not in mine]
        lr = lr_schedule(1)
        self.optimizer = self.optimizer_class(
            [{"params": rest, "lr_scale": 1.0}, {"params": enc, "lr_scale": self.encoder_lr_scale,
                                                 "lr": lr * self.encoder_lr_scale}],
            lr=lr, **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["encoder_lr_scale"] = self.encoder_lr_scale
        return data


def _ppo_base():
    from stable_baselines3 import PPO as SB3PPO

    return SB3PPO


class PPO(_ppo_base()):
    """SB3's PPO, except that a parameter group with an ``lr_scale`` learns at that multiple of the learning rate
    (SB3 sets every group to the same rate at each update, which would undo the encoder's own rate)."""

    def _update_learning_rate(self, optimizers) -> None:
        super()._update_learning_rate(optimizers)
        for opt in optimizers if isinstance(optimizers, list) else [optimizers]:
            for group in opt.param_groups:
                group["lr"] *= group.get("lr_scale", 1.0)


# --- the run ---------------------------------------------------------------------------------------------------
def policy_setup(cfg: AdapterConfig, env_id: str, env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """SB3 ``policy`` and ``policy_kwargs`` entries of an adapter run: MotionPolicy with the MotionExtractor of
    the checkpoint (architecture, statistics, labels). Builds one env to check the model against it first."""
    from .train import make_env

    env = make_env(env_id, env_kwargs, adapter=cfg.to_json())
    try:
        kwargs = env.prior.extractor_kwargs()  # make_env's outermost wrapper is the MotionAdapter
    finally:
        env.close()
    return {"features_extractor_class": MotionExtractor, "features_extractor_kwargs": kwargs,
            "encoder_lr_scale": float(cfg.encoder_lr_scale)}


def load_encoder(model, cfg: AdapterConfig) -> None:
    """``feature`` mode: the checkpoint's encoder weights into every MotionExtractor of ``model``'s policy (after
    SB3 built it: its orthogonal initialisation would overwrite them)."""
    import torch
    from optiq_models.checkpoint import read_checkpoint

    ckpt = read_checkpoint(cfg.pretrained)
    # The model's encoder weights: its state_dict's ``encoder.*`` entries, the prefix removed.
    state = {k[len("encoder."):]: v for k, v in ckpt.state_dict.items() if k.startswith("encoder.")}
    if not state:
        raise AdapterError("the checkpoint has no encoder weights (encoder.*)", cfg.pretrained)
    with torch.no_grad():
        for enc in encoders(model.policy):
            enc.load_state_dict(state, strict=True)


def _base_callback():
    from stable_baselines3.common.callbacks import BaseCallback

    return BaseCallback


class EncoderSchedule(_base_callback()):
    """The encoder frozen (no gradient) while fewer than ``freeze_steps`` env steps are done, trainable after;
    checked before every update (a resumed run included)."""

    def __init__(self, freeze_steps: int):
        super().__init__()
        self.freeze_steps = int(freeze_steps)
        self.frozen = None

    def _set(self) -> None:
        frozen = self.num_timesteps < self.freeze_steps
        if frozen != self.frozen:
            for enc in encoders(self.model.policy):
                enc.requires_grad_(not frozen)
            self.frozen = frozen

    def _on_training_start(self) -> None:
        self._set()

    def _on_rollout_end(self) -> None:
        self._set()

    def _on_step(self) -> bool:
        return True


def encoder_cost(prior: MotionPrior, frames: int, repeats: int = 200) -> dict[str, float]:
    """Microseconds per call of the encoder (batch 1, as at every env step) and of the prior's ``next_qpos``."""
    import time

    import torch

    h = np.zeros((frames, prior.features.dim), dtype=np.float32)
    x = torch.zeros((1, frames, prior.features.dim))
    cond = prior.cond(1, frames)
    with torch.no_grad():
        prior.model.encoder(x, cond)
        t0 = time.perf_counter()
        for _ in range(repeats):
            prior.model.encoder(x, cond)
        enc = (time.perf_counter() - t0) / repeats
    qpos = prior.char.model().qpos0
    prior.next_qpos(h, qpos)
    t0 = time.perf_counter()
    for _ in range(repeats):
        prior.next_qpos(h, qpos)
    nxt = (time.perf_counter() - t0) / repeats
    return {"encoder_us": enc * 1e6, "prior_us": nxt * 1e6, "frames": frames,
            "encoder_parameters": sum(p.numel() for p in prior.model.encoder.parameters()),
            "features_dim": prior.features_dim}
