"""Training with Stable-Baselines3: ``train(config, out)`` and the policy file it writes.

What happens, in order: build ``n_envs`` copies of the env (``make_vec_env``: each wrapped in SB3's ``Monitor``,
in a ``DummyVecEnv`` or ``SubprocVecEnv``), wrap them in ``VecNormalize`` (running mean and variance of the
observations, scaled returns), build PPO or SAC with the policy of ``policy_kwargs(config)`` (the one place that
decides the network: issue 11 extends it), learn, and write the policy file atomically. Every
``checkpoint_interval`` env steps the whole state goes to ``<out stem>.checkpoint.zip`` (atomically), so
``resume=True`` continues a stopped run with its step count, optimiser and normalisation statistics; SAC's
replay buffer goes beside it to ``<out stem>.replay.pkl`` (SB3's own pickle: load only your own files) and is
reloaded on resume.

The policy file is SB3's own zip (``PPO.load`` reads it) with one more member, ``optiq.json``: the env id and its
settings (character and reference files as absolute paths), the algorithm, the config, the env steps done and the
VecNormalize statistics as plain numbers (no pickle), so evaluation, video and export need nothing else.

After every rollout a line goes to ``<out stem>.progress.jsonl``: env steps, the mean return and length of the
episodes finished since the last line, episodes, env steps/s. These are the learning curves of ``optiq eval rl``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import types
import typing
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from optiq import config as config_errors
from optiq.atomic import atomic_path, atomic_text, check_output_path
from optiq.errors import OptiqError
from stable_baselines3.common.callbacks import BaseCallback

CONFIGS = Path(__file__).parent / "configs"
POLICY_FORMAT = 1
ALGOS = ("ppo", "sac")


# A training configuration key that does not exist or has a value of the wrong type (one class for every package).
ConfigError = config_errors.ConfigError


class PolicyError(OptiqError):
    """A policy file that is not one, or does not fit the env it is run in."""


@dataclass
class RLConfig:
    """Every setting of a run, once, with its default; a YAML file sets any of them and the command line
    overrides any of them (``total_steps=1e6``, ``algo_kwargs.learning_rate=1e-4``, ``env_kwargs.control=pd``)."""

    env: str = "Humanoid-v5"                 # Gymnasium id (optiq/Track-v0, optiq/Locomotion-v0, Humanoid-v5, ...)
    env_kwargs: dict = field(default_factory=dict)  # keyword arguments of gymnasium.make (the env's settings)
    algo: str = "ppo"                        # ppo | sac
    algo_kwargs: dict = field(default_factory=dict)  # keyword arguments of SB3's PPO / SAC (learning_rate, ...)
    policy: dict = field(default_factory=dict)  # net_arch ([256, 256] or {pi: [...], vf: [...]}), activation, ...
    total_steps: int = 100_000               # env steps of the whole run (all envs together)
    n_envs: int = 1                          # envs stepped in parallel
    vec_env: str = "dummy"                   # dummy | subproc (docs/rl.md: measured; dummy is faster on 2 cores)
    seed: int = 0                            # seeds the envs (env i: seed + i), the networks and the sampling
    normalize_obs: bool = True               # VecNormalize: observations to zero mean, unit variance
    normalize_reward: bool = True            # VecNormalize: rewards scaled by the std of the discounted return
    clip_obs: float = 10.0                   # normalised observations are clipped to +-clip_obs
    clip_reward: float = 10.0                # normalised rewards are clipped to +-clip_reward
    checkpoint_interval: int = 50_000        # env steps between resume checkpoints (0: only at the end)
    keep_checkpoints: bool = False           # also keep each checkpoint as <out stem>.<env steps>.zip (a policy
                                             # file every checkpoint_interval: compare policies along the run)
    tensorboard: bool = True                 # SB3's TensorBoard logs in <out stem>.tb/ (when tensorboard is installed)
    device: str = "cpu"                      # torch device of the networks (cpu is fastest for MLP policies)
    torch_threads: int = 1                   # torch CPU threads (1: a batch-1 forward pass is 25x slower with 2
                                             # threads on a busy 2-core machine; measured, docs/rl.md)
    track: str | None = None                 # mlflow: log the config, the curve and the policy to MLflow
    track_uri: str | None = None             # MLflow tracking URI (default: sqlite file mlflow.db beside the policy)
    adapter: dict = field(default_factory=dict)  # a pretrained motion model: pretrained, mode, freeze_steps,
                                             # encoder_lr_scale, labels, history (adapters.AdapterConfig)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def updated(self, values: Mapping[str, Any], where: str = "config") -> RLConfig:
        """A copy with ``values`` set: ``{"total_steps": 1000, "algo_kwargs.n_steps": 256, "env_kwargs": {...}}``."""
        cfg = dataclasses.replace(self, env_kwargs=dict(self.env_kwargs), algo_kwargs=dict(self.algo_kwargs),
                                  policy=dict(self.policy), adapter=dict(self.adapter))
        hints = typing.get_type_hints(RLConfig)
        for key, value in values.items():
            key = str(key).replace("-", "_")
            head, dot, rest = key.partition(".")
            if dot and hints.get(head) is dict:
                getattr(cfg, head)[rest] = _number(value)
                continue
            if key not in hints:
                raise ConfigError(f"{where}: unknown key {key!r}; keys: {', '.join(hints)}")
            value = _checked(key, value, hints[key], where)
            setattr(cfg, key, {k: _number(v) for k, v in value.items()} if isinstance(value, dict) else value)
        return cfg

    def check(self) -> RLConfig:
        """Values in range, else ConfigError naming the key."""
        if self.algo not in ALGOS:
            raise ConfigError(f"key 'algo' must be one of {', '.join(ALGOS)}, got {self.algo!r}")
        if self.vec_env not in ("dummy", "subproc"):
            raise ConfigError(f"key 'vec_env' must be dummy or subproc, got {self.vec_env!r}")
        for key in ("total_steps", "n_envs", "torch_threads"):
            if getattr(self, key) < 1:
                raise ConfigError(f"key {key!r} must be at least 1, got {getattr(self, key)}")
        if self.checkpoint_interval < 0:
            raise ConfigError(f"key 'checkpoint_interval' must be >= 0, got {self.checkpoint_interval}")
        if self.track not in (None, "mlflow"):
            raise ConfigError(f"key 'track' must be mlflow or null, got {self.track!r}")
        if self.adapter:
            from .adapters import AdapterConfig

            if AdapterConfig.from_dict(self.adapter) is not None and self.algo != "ppo":
                raise ConfigError(f"a pretrained motion model (adapter) trains with ppo, not {self.algo}")
        return self

    def adapter_config(self):
        """The adapter of a run with a pretrained motion model (``adapters.AdapterConfig``), else None."""
        from .adapters import AdapterConfig

        return AdapterConfig.from_dict(self.adapter) if self.adapter else None


def _checked(key: str, value: Any, hint: Any, where: str) -> Any:
    """``value`` as type ``hint`` (an int for a float, ``1e6`` for an int when whole), else ConfigError."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in allowed:
        return None
    for t in allowed:
        if t in (int, float) and isinstance(value, str):  # YAML 1.1 reads 1e6 (no dot) as text
            try:
                value = float(value)
            except ValueError:
                continue
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        if t is int and isinstance(value, float) and value.is_integer():
            return int(value)
        if t in (int, str, bool, dict) and isinstance(value, t) and not (t is int and isinstance(value, bool)):
            return value
    names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
    raise ConfigError(f"{where}: key {key!r} must be {names}, got {value!r}")


#: The shipped config a run starts from when none is given: (env id, algorithm) -> config name.
DEFAULT_CONFIGS = {("optiq/Track-v0", "ppo"): "track_deepmimic_walk",
                   ("optiq/Locomotion-v0", "ppo"): "locomotion_deepmimic",
                   ("Humanoid-v5", "ppo"): "ppo_humanoid", ("Humanoid-v5", "sac"): "sac_humanoid"}


def default_config(env: str | None, algo: str | None) -> str | None:
    """The shipped config for ``env`` and ``algo`` (``DEFAULT_CONFIGS``; None: RLConfig's defaults)."""
    return DEFAULT_CONFIGS.get((env or RLConfig.env, algo or RLConfig.algo))


def _number(value: Any) -> Any:
    """YAML 1.1 reads ``3e-5`` (no dot) as text: such a text as a float, anything else as it is."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    return value


def config_path(name: str | os.PathLike) -> Path:
    """A config file: a path, or the name of a shipped one (``ppo_humanoid``, ``track_deepmimic_walk``)."""
    from optiq.config import find_config

    return find_config(name, CONFIGS)


def load_config(name: str | os.PathLike | None = None,
                overrides: Mapping[str, Any] | Sequence[str] = ()) -> RLConfig:
    """The config of a YAML file (a path or a shipped name; None: defaults) with ``overrides`` applied (a mapping,
    or ``key=value`` strings whose values are read as YAML: ``total_steps=2e6``, ``policy.net_arch=[64,64]``)."""
    from optiq.config import override_values, read_config_file

    cfg = RLConfig()
    if name is not None:
        path = config_path(name)
        cfg = cfg.updated(read_config_file(path), str(path))
    if not isinstance(overrides, Mapping):
        overrides = override_values(overrides, _number)
    return cfg.updated(overrides, "command line")


# --- envs ------------------------------------------------------------------------------------------------------
#: Env settings that may name files: stored as absolute paths in the policy file.
PATH_SETTINGS = ("reference", "character", "init_reference")


def env_settings(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The env's settings as the policy file stores them: a reference, character or init_reference given as a
    path to an existing file becomes absolute, so the policy still finds it from another folder (a registered
    character name such as ``deepmimic`` stays as it is)."""
    out = dict(env_kwargs or {})
    if out.get("character") is not None and not isinstance(out["character"], (str, os.PathLike)):
        out["character"] = _character_reference(out["character"])
    for key in PATH_SETTINGS:
        value = out.get(key)
        if isinstance(value, (list, tuple)):
            out[key] = [_absolute(v) for v in value]
        elif value is not None:
            out[key] = _absolute(value)
    return out


def _character_reference(char: Any) -> str:
    """What a policy file stores for a Character object: its registered name or the file it was built from, when
    that rebuilds the same body (the same MJCF); else PolicyError saying how to store it."""
    from .characters import character

    for ref in (char.name, char.source):
        try:
            if ref and character(ref).mjcf_xml == char.mjcf_xml:
                return ref if not os.path.isfile(ref) else os.path.abspath(ref)
        except OptiqError:
            continue
    raise PolicyError(f"env setting 'character': the Character {char.name!r} was built in Python and no name or file "
                      "rebuilds it, so a policy file cannot refer to it; write it with Character.save('body.xml') "
                      "and pass character='body.xml'")


def _absolute(value: Any) -> Any:
    """An existing file's absolute path; anything else (a name, a Clip) as it is."""
    if isinstance(value, (str, os.PathLike)) and os.path.isfile(value):
        return os.path.abspath(value)
    return value


def make_env(env_id: str, env_kwargs: Mapping[str, Any] | None = None, render_mode: str | None = None,
             adapter: Mapping[str, Any] | None = None):
    """One env by Gymnasium id (the optiq ids registered first); a bad id or setting is one OptiqError line.
    adapter: an RL config's ``adapter`` section; with a pretrained model the env is wrapped in its
    ``adapters.MotionAdapter`` (Dict observations with the character's feature history)."""
    import gymnasium as gym

    from .envs import register_envs

    register_envs()
    try:
        env = gym.make(env_id, render_mode=render_mode, **dict(env_kwargs or {}))
    except OptiqError:
        raise
    except gym.error.Error as exc:
        raise ConfigError(f"env {env_id!r}: {exc}") from None
    except TypeError as exc:  # an unknown keyword of a plain Gymnasium env
        raise ConfigError(f"env {env_id!r}: {exc}") from None
    if adapter and adapter.get("pretrained"):
        from .adapters import MotionAdapter

        try:
            env = MotionAdapter(env, adapter)
        except BaseException:
            env.close()
            raise
    return env


class _EnvFactory:
    """A picklable env constructor (SubprocVecEnv sends it to its workers, which register the optiq ids)."""

    def __init__(self, env_id: str, env_kwargs: Mapping[str, Any], adapter: Mapping[str, Any] | None = None):
        self.env_id, self.env_kwargs, self.adapter = env_id, dict(env_kwargs), dict(adapter or {})

    def __call__(self):
        return make_env(self.env_id, self.env_kwargs, adapter=self.adapter)


def make_vec_env(cfg: RLConfig, n_envs: int | None = None, seed: int | None = None):
    """``n_envs`` envs of ``cfg`` (each in a Monitor, env i seeded ``seed + i``) in a Dummy- or SubprocVecEnv."""
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    n = n_envs or cfg.n_envs
    make_env(cfg.env, cfg.env_kwargs, adapter=cfg.adapter).close()  # a bad setting fails here, once
    cls = SubprocVecEnv if cfg.vec_env == "subproc" and n > 1 else DummyVecEnv
    kwargs = {"start_method": "forkserver"} if cls is SubprocVecEnv else None
    return sb3_make_vec_env(_EnvFactory(cfg.env, cfg.env_kwargs, cfg.adapter), n_envs=n,
                            seed=cfg.seed if seed is None else seed, vec_env_cls=cls, vec_env_kwargs=kwargs)


def normalize(venv, cfg: RLConfig, stats: Mapping[str, Any] | None = None, training: bool = True):
    """``venv`` in a VecNormalize of ``cfg`` (with the stored ``stats`` when given). With an adapter only the env's
    own observation (``obs``) is normalised: the feature history is normalised inside the encoder, with the motion
    model's statistics."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import VecNormalize

    gamma = float(cfg.algo_kwargs.get("gamma", 0.99))
    keys = ["obs"] if isinstance(venv.observation_space, gym.spaces.Dict) else None
    vn = VecNormalize(venv, training=training, norm_obs=cfg.normalize_obs, norm_reward=cfg.normalize_reward,
                      clip_obs=cfg.clip_obs, clip_reward=cfg.clip_reward, gamma=gamma, norm_obs_keys=keys)
    if stats:
        set_norm_stats(vn, stats)
    return vn


def norm_stats(vn) -> dict[str, Any]:
    """VecNormalize's statistics as JSON numbers: observation mean, var and count, return var and count, clip,
    epsilon. Dict observations (an adapter's) store the statistics of the normalised key (``obs_key``: obs)."""
    rms, key = vn.obs_rms, None
    if isinstance(rms, dict):
        (key, rms), = rms.items()
    return {"obs_mean": rms.mean.tolist(), "obs_var": rms.var.tolist(), "obs_count": rms.count, "obs_key": key,
            "ret_mean": float(vn.ret_rms.mean), "ret_var": float(vn.ret_rms.var), "ret_count": vn.ret_rms.count,
            "norm_obs": bool(vn.norm_obs), "norm_reward": bool(vn.norm_reward), "clip_obs": float(vn.clip_obs),
            "clip_reward": float(vn.clip_reward), "epsilon": float(vn.epsilon), "gamma": float(vn.gamma)}


def set_norm_stats(vn, stats: Mapping[str, Any]) -> None:
    """Put stored statistics (``norm_stats``) into VecNormalize ``vn``."""
    rms = vn.obs_rms[stats["obs_key"]] if stats.get("obs_key") else vn.obs_rms
    rms.mean = np.asarray(stats["obs_mean"], dtype=np.float64)
    rms.var = np.asarray(stats["obs_var"], dtype=np.float64)
    rms.count = float(stats["obs_count"])
    vn.ret_rms.mean = np.float64(stats["ret_mean"])
    vn.ret_rms.var = np.float64(stats["ret_var"])
    vn.ret_rms.count = float(stats["ret_count"])


def normalize_observation(obs: np.ndarray, stats: Mapping[str, Any]) -> np.ndarray:
    """``obs [..., D]`` as VecNormalize feeds it to the policy: ``clip((obs - mean) / sqrt(var + eps), +-clip)``;
    a Dict observation (an adapter's) with its ``obs_key`` entry normalised so, the others as float32."""
    if isinstance(obs, Mapping):
        key = stats.get("obs_key")
        return {k: normalize_observation(v, stats) if k == key else np.asarray(v, dtype=np.float32)
                for k, v in obs.items()}
    if not stats.get("norm_obs", True):
        return np.asarray(obs, dtype=np.float32)
    mean, var = np.asarray(stats["obs_mean"]), np.asarray(stats["obs_var"])
    out = np.clip((obs - mean) / np.sqrt(var + stats["epsilon"]), -stats["clip_obs"], stats["clip_obs"])
    return out.astype(np.float32)


# --- the policy ------------------------------------------------------------------------------------------------
ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU", "elu": "ELU", "gelu": "GELU"}


def policy_kwargs(cfg: RLConfig) -> dict[str, Any]:
    """SB3's ``policy_kwargs`` from ``cfg.policy``: ``net_arch`` as SB3 takes it, ``activation`` by name, any other
    key passed through (``log_std_init``, ``ortho_init``, ``features_extractor_class``, ...). The one place that
    decides the network, so a pretrained features extractor plugs in here."""
    import torch.nn as nn

    out = dict(cfg.policy)
    act = out.pop("activation", None)
    if act is not None:
        if act not in ACTIVATIONS:
            raise ConfigError(f"key 'policy.activation' must be one of {', '.join(ACTIVATIONS)}, got {act!r}")
        out["activation_fn"] = getattr(nn, ACTIVATIONS[act])
    return out


def build_model(cfg: RLConfig, venv, tensorboard_log: str | None = None):
    """A fresh PPO or SAC on ``venv`` with ``policy_kwargs(cfg)``; an unknown algorithm setting is one line.
    With an adapter (a pretrained motion model): ``adapters.MotionPolicy`` with the model's encoder as features
    extractor, whose pretrained weights (``feature`` mode) are loaded after SB3 built and initialised it."""
    import inspect

    cls = algo_class(cfg.algo)
    known = set(inspect.signature(cls.__init__).parameters) - {"self", "policy", "env"}
    unknown = sorted(set(cfg.algo_kwargs) - known)
    if unknown:
        raise ConfigError(f"unknown {cfg.algo} setting(s) {', '.join(f'algo_kwargs.{k}' for k in unknown)}; "
                          f"settings: {', '.join(sorted(known))}")
    adapter = cfg.adapter_config()
    policy, kwargs = "MlpPolicy", policy_kwargs(cfg)
    if adapter is not None:
        from .adapters import MotionPolicy, load_encoder, policy_setup

        policy = MotionPolicy
        kwargs.update(policy_setup(adapter, cfg.env, cfg.env_kwargs))
    model = cls(policy, venv, seed=cfg.seed, device=cfg.device, verbose=0, tensorboard_log=tensorboard_log,
                policy_kwargs=kwargs, **cfg.algo_kwargs)
    if adapter is not None and adapter.mode == "feature":
        load_encoder(model, adapter)
    return model


def algo_class(algo: str):
    """SB3's SAC, or PPO with per-group learning-rate scales (``adapters.PPO``: SB3's otherwise)."""
    from stable_baselines3 import SAC

    from .adapters import PPO

    return {"ppo": PPO, "sac": SAC}[algo]


# --- the policy file -------------------------------------------------------------------------------------------
def beside(out: str | os.PathLike, suffix: str) -> Path:
    """``run.zip`` -> ``run<suffix>`` (``.checkpoint.zip``, ``.progress.jsonl``, ``.tb``)."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".zip") + suffix)


def save_policy(model, vn, cfg: RLConfig, path: str | os.PathLike, inputs: Sequence[str] = ()) -> Path:
    """Write ``model`` with ``optiq.json`` (env, settings, config, steps, normalisation) atomically to ``path``."""
    meta = {"format": POLICY_FORMAT, "env": cfg.env, "env_kwargs": cfg.env_kwargs, "algo": cfg.algo,
            "character": cfg.env_kwargs.get("character"), "reference": cfg.env_kwargs.get("reference"),
            "steps": int(model.num_timesteps), "config": cfg.to_json(), "normalize": norm_stats(vn),
            "observation_dim": _obs_dim(model.observation_space),
            "action_dim": int(np.prod(model.action_space.shape))}
    with atomic_path(path, suffixes=(".zip",), inputs=inputs) as tmp:
        with open(tmp, "wb") as fh:
            model.save(fh)
        with zipfile.ZipFile(tmp, "a") as z:
            z.writestr("optiq.json", json.dumps(meta, default=_json_default))
    return Path(path)


def _obs_dim(space) -> int:
    """Numbers in an observation: a Box's, or an adapter's Dict's ``obs`` entry (the feature history aside)."""
    import gymnasium as gym

    return int(np.prod((space["obs"] if isinstance(space, gym.spaces.Dict) else space).shape))


def save_replay(model, out: str | os.PathLike) -> Path | None:
    """An off-policy model's replay buffer (SAC) to ``<out stem>.replay.pkl`` atomically, for ``--resume``; None
    for on-policy models (PPO), which have none."""
    if getattr(model, "replay_buffer", None) is None:
        return None
    path = beside(out, ".replay.pkl")
    with atomic_path(path, suffixes=(".pkl",)) as tmp, open(tmp, "wb") as fh:
        model.save_replay_buffer(fh)
    return path


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-able")


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The ``optiq.json`` of a policy file; PolicyError when the file is no policy file of optiq."""
    path = Path(path)
    if not path.is_file():
        raise PolicyError("no such policy file", path)
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read("optiq.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError):
        raise PolicyError("not a policy file of optiq train rl (a zip with optiq.json)", path) from None
    if meta.get("format") != POLICY_FORMAT:
        raise PolicyError(f"policy format {meta.get('format')!r} is unknown; expected {POLICY_FORMAT}", path,
                          "optiq.json")
    return meta


@dataclass
class Policy:
    """A loaded policy: the SB3 model, its ``optiq.json`` (``meta``) and its config."""

    model: Any
    meta: dict[str, Any]
    config: RLConfig
    path: Path

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """Raw observations ``[..., D]`` as the policy sees them (VecNormalize's, frozen)."""
        return normalize_observation(obs, self.meta["normalize"])

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions ``[..., A]`` for raw observations ``[..., D]``."""
        action, _ = self.model.predict(self.normalize(obs), deterministic=deterministic)
        return action

    def make_env(self, env: str | None = None, env_kwargs: Mapping[str, Any] | None = None,
                 render_mode: str | None = None):
        """The env the policy was trained on (or ``env`` with ``env_kwargs``), checked against its spaces."""
        env_id = env or self.meta["env"]
        kwargs = self.meta["env_kwargs"] if env is None or env == self.meta["env"] else {}
        e = make_env(env_id, {**kwargs, **dict(env_kwargs or {})}, render_mode=render_mode,
                     adapter=self.config.adapter)
        self.check_env(e, env_id)
        return e

    def check_env(self, env, env_id: str) -> None:
        """PolicyError when the env's observation or action shape is not the policy's."""
        got = (_shapes(env.observation_space), env.action_space.shape)
        want = (_shapes(self.model.observation_space), self.model.action_space.shape)
        if got != want:
            env.close()
            raise PolicyError(f"trained on {self.meta['env']} (observation {want[0]}, action {want[1]}); env "
                              f"{env_id} has observation {got[0]}, action {got[1]}", self.path)


def _shapes(space):
    """A Box's shape, or a Dict's shapes by key."""
    return {k: v.shape for k, v in space.spaces.items()} if hasattr(space, "spaces") else space.shape


def load_policy(path: str | os.PathLike) -> Policy:
    """A policy file of ``optiq train rl`` with its normalisation (``Policy.normalize``, ``Policy.act``)."""
    meta = read_meta(path)
    cfg = RLConfig().updated(meta["config"], f"{path}: optiq.json")
    model = algo_class(meta["algo"]).load(path, device="cpu")
    return Policy(model, meta, cfg, Path(path))


# --- the run ---------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What a run did: the policy file, env steps done (all envs), env steps/s of this run, and the curve
    (``progress.jsonl`` rows of this run)."""

    out: Path
    steps: int
    steps_per_second: float
    curve: list[dict[str, float]]
    model: Any = None


def train(cfg: RLConfig, out: str | os.PathLike, *, resume: bool = False, progress: bool = False,
          callbacks: Sequence[Any] = ()) -> TrainResult:
    """Train ``cfg`` and write the policy to ``out`` (a ``.zip``); ``resume=True`` continues from
    ``<out stem>.checkpoint.zip`` (or ``out``) up to ``cfg.total_steps`` env steps in all."""
    import torch

    cfg.check()
    out = check_output_path(out, suffixes=(".zip",))
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.torch_threads)
    try:
        return _train(cfg, out, resume, progress, callbacks)
    finally:
        torch.set_num_threads(threads)


def _train(cfg: RLConfig, out: Path, resume: bool, progress: bool, callbacks: Sequence[Any]) -> TrainResult:
    ckpt = beside(out, ".checkpoint.zip")
    cfg = dataclasses.replace(cfg, env_kwargs=env_settings(cfg.env, cfg.env_kwargs))
    adapter = cfg.adapter_config()
    if adapter is not None:  # the checkpoint as an absolute path, every setting spelt out, in the policy file
        cfg = dataclasses.replace(cfg, adapter=adapter.to_json())
    start = _resume_from(ckpt, out) if resume else None
    venv = make_vec_env(cfg)
    try:
        tb = _tensorboard_dir(cfg, out)
        if start is not None:
            prev = read_meta(start)
            vn = normalize(venv, cfg, prev["normalize"])
            try:
                model = algo_class(prev["algo"]).load(start, env=vn, device=cfg.device, tensorboard_log=tb)
            except ValueError as exc:  # SB3: the env's spaces are not the checkpoint's
                raise PolicyError(f"cannot resume in env {cfg.env}: {' '.join(str(exc).split())}", start) from None
            replay = beside(out, ".replay.pkl")
            if getattr(model, "replay_buffer", None) is not None and replay.is_file():
                model.load_replay_buffer(replay)
        else:
            vn = normalize(venv, cfg)
            model = build_model(cfg, vn, tb)
        if tb is None:
            # Without TensorBoard SB3 would log nowhere but still make an empty folder in the temp dir per run.
            from stable_baselines3.common.logger import Logger

            model.set_logger(Logger(folder=None, output_formats=[]))
        done = int(model.num_timesteps)
        log = _ProgressLog(beside(out, ".progress.jsonl"), append=start is not None, upto=done)
        tracker = _MLflow(cfg, out) if cfg.track else None
        from stable_baselines3.common.callbacks import CallbackList

        cbs = [log, _Checkpoint(cfg, vn, ckpt, out), *callbacks]
        adapter = cfg.adapter_config()
        if adapter is not None:
            from .adapters import EncoderSchedule

            cbs.append(EncoderSchedule(adapter.freeze_steps))
        if vn.has_attr("set_progress"):  # Track-v0: its reward schedule follows the run's progress
            cbs.append(_TrainingProgress(cfg.total_steps))
        if tracker is not None:
            cbs.append(tracker.callback(log))
        if progress:
            cbs.append(_ProgressBar(cfg.total_steps, done))
        t0 = time.perf_counter()
        try:
            if cfg.total_steps > done:
                model.learn(cfg.total_steps - done, callback=CallbackList(cbs), reset_num_timesteps=start is None,
                            tb_log_name="run", progress_bar=False)
            seconds = time.perf_counter() - t0
            save_policy(model, vn, cfg, out)
            save_replay(model, out)
        except BaseException:
            if tracker is not None:
                tracker.finish(None)
            raise
        if tracker is not None:
            tracker.finish(out)
        ran = int(model.num_timesteps) - done
        return TrainResult(out, int(model.num_timesteps), ran / seconds if seconds > 0 else 0.0, log.rows, model)
    finally:
        venv.close()


def _resume_from(ckpt: Path, out: Path) -> Path:
    """The checkpoint or the policy beside ``out``, whichever has more env steps."""
    found = [p for p in (ckpt, out) if p.is_file()]
    if found:
        return max(found, key=lambda p: read_meta(p)["steps"])
    raise OptiqError(f"--resume: no checkpoint {ckpt.name} or policy {out.name} beside the output to resume from",
                     out)


def _tensorboard_dir(cfg: RLConfig, out: Path) -> str | None:
    if not cfg.tensorboard:
        return None
    try:
        import tensorboard  # noqa: F401  (SB3 writes through torch's SummaryWriter, which needs it)
    except ImportError:
        return None
    return str(beside(out, ".tb"))


# --- callbacks -------------------------------------------------------------------------------------------------
class _ProgressLog(BaseCallback):
    """After every rollout: a ``progress.jsonl`` line (steps, return_mean, length_mean, episodes, steps_per_s)."""

    def __init__(self, path: Path, append: bool, upto: int = 0):
        super().__init__()
        self.path, self.rows = path, []
        if not append and path.exists():
            path.unlink()
        elif append and path.exists():
            # A run killed after its last checkpoint logged rollouts that the resumed run does again: keep the
            # rows up to the checkpoint's step count, so the curve's steps stay increasing.
            lines = path.read_text(encoding="utf-8").splitlines()
            kept = [x for x in lines if x.strip() and json.loads(x)["steps"] <= upto]
            if len(kept) < len(lines):
                with atomic_text(path, suffixes=(".jsonl",)) as fh:
                    fh.write("".join(x + "\n" for x in kept))
        self._episodes: list[tuple[float, float]] = []
        self._t = time.perf_counter()
        self._steps0 = None

    def _on_training_start(self) -> None:
        self._steps0 = self.num_timesteps
        self._t = time.perf_counter()

    def _on_step(self) -> bool:
        # Monitor puts an "episode" entry in the info of the step that ends an episode. Its return is the reward
        # the algorithm saw; a style reward's adapter puts the task's own in "task_return", the curve's return.
        for info in self.locals.get("infos", ()):
            ep = info.get("episode")
            if ep is not None:
                self._episodes.append((float(info.get("task_return", ep["r"])), float(ep["l"])))
        return True

    def _on_rollout_end(self) -> None:
        eps = self._episodes
        now = time.perf_counter()
        row = {"steps": int(self.num_timesteps), "episodes": len(eps),
               "return_mean": float(np.mean([r for r, _ in eps])) if eps else None,
               "length_mean": float(np.mean([n for _, n in eps])) if eps else None,
               "steps_per_s": (self.num_timesteps - self._steps0) / max(now - self._t, 1e-9)}
        self._episodes = []
        self.rows.append(row)
        with open(self.path, "a", encoding="utf-8") as fh:  # a line at a time: a killed run keeps its curve
            fh.write(json.dumps(row) + "\n")


class _Checkpoint(BaseCallback):
    """Every ``checkpoint_interval`` env steps: the whole state to the checkpoint file, atomically (and with
    ``keep_checkpoints`` to ``<out stem>.<env steps>.zip``). Written before a rollout and at the end, that is after
    the update on the steps before: a checkpoint at N env steps holds the weights trained on all N of them, so a
    resumed run loses no update and a kept one at the run's last step is the final policy."""

    def __init__(self, cfg: RLConfig, vn, path: Path, out: Path):
        super().__init__()
        self.cfg, self.vn, self.path, self.out = cfg, vn, path, out
        self._next = None

    def _on_training_start(self) -> None:
        every = self.cfg.checkpoint_interval
        self._next = (self.num_timesteps // every + 1) * every if every else None

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        self._save_when_due()

    def _on_training_end(self) -> None:
        self._save_when_due()

    def _save_when_due(self) -> None:
        if self._next is not None and self.num_timesteps >= self._next:
            save_policy(self.model, self.vn, self.cfg, self.path)
            save_replay(self.model, self.out)
            if self.cfg.keep_checkpoints:  # written again, not copied: each file appears whole or not at all
                save_policy(self.model, self.vn, self.cfg, beside(self.out, f".{self.num_timesteps}.zip"))
            every = self.cfg.checkpoint_interval
            self._next = (self.num_timesteps // every + 1) * every


class _TrainingProgress(BaseCallback):
    """Before every rollout: the envs' ``set_progress(env steps done / total_steps)``, which moves a reward
    schedule (``TrackConfig.reward_schedule``) from tracking to the task over the run (a resumed run included)."""

    def __init__(self, total: int):
        super().__init__()
        self.total = total

    def _on_rollout_start(self) -> None:
        self.training_env.env_method("set_progress", min(self.num_timesteps / self.total, 1.0))

    def _on_step(self) -> bool:
        return True


class _ProgressBar(BaseCallback):
    """A tqdm bar of env steps on stderr, silent when stderr is not a terminal."""

    def __init__(self, total: int, done: int):
        from tqdm import tqdm

        super().__init__()
        self.bar = tqdm(total=total, initial=done, unit="step", unit_scale=True, dynamic_ncols=True,
                        disable=not sys.stderr.isatty(), desc="train rl")

    def _on_step(self) -> bool:
        self.bar.n = min(self.num_timesteps, self.bar.total)
        if self.n_calls % 64 == 0:
            self.bar.refresh()
        return True

    def _on_training_end(self) -> None:
        self.bar.n = min(self.num_timesteps, self.bar.total)
        self.bar.close()


class _MLflow:
    """``track: mlflow``: the flattened config as parameters, each progress row as metrics at its env step, the
    policy file as an artifact. The store defaults to ``mlflow.db`` beside the policy (extra ``optiq[infra]``)."""

    def __init__(self, cfg: RLConfig, out: Path):
        from optiq.tracking import start_mlflow_run

        self.mlflow = mlflow = start_mlflow_run("optiq-rl", out, out.name.removesuffix(".zip"), cfg.track_uri)
        params = {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in cfg.to_json().items()}
        mlflow.log_params(params)

    def callback(self, log: _ProgressLog):
        tracker = self

        class _Log(BaseCallback):
            def __init__(self):
                super().__init__()
                self._n = 0

            def _on_step(self) -> bool:
                return True

            def _on_rollout_end(self) -> None:
                for row in log.rows[self._n:]:
                    tracker.mlflow.log_metrics({k: float(v) for k, v in row.items()
                                                if k != "steps" and v is not None}, step=row["steps"])
                self._n = len(log.rows)

        return _Log()

    def finish(self, out: Path | None) -> None:
        """End the run: FINISHED with the policy file as an artifact, or FAILED (``out`` None)."""
        if out is not None:
            self.mlflow.log_artifact(str(out))
        self.mlflow.end_run(status="FINISHED" if out is not None else "FAILED")


# --- rolling out -----------------------------------------------------------------------------------------------
def rollout(policy: Policy, env, *, seed: int | None = None, deterministic: bool = True,
            on_step: Callable[[Any, dict], None] | None = None, max_steps: int | None = None) -> dict[str, Any]:
    """One episode of ``policy`` in ``env`` (a plain Gymnasium env, raw observations): return (the task's own:
    without a style adapter's reward), length, whether it ended by termination, and the infos. ``on_step(env,
    info)`` runs after every step (rendering, metrics)."""
    obs, info = env.reset(seed=seed)
    total, steps, terminated, truncated, infos = 0.0, 0, False, False, [info]
    while not (terminated or truncated):
        obs, reward, terminated, truncated, info = env.step(policy.act(obs, deterministic))
        total += float(info.get("task_reward", reward))
        steps += 1
        infos.append(info)
        if on_step is not None:
            on_step(env, info)
        if max_steps is not None and steps >= max_steps:
            break
    return {"return": total, "length": steps, "terminated": bool(terminated), "infos": infos}


def summary_line(result: TrainResult) -> str:
    last = next((r for r in reversed(result.curve) if r.get("return_mean") is not None), None)
    ret = "no finished episode" if last is None else f"last mean return {last['return_mean']:.2f}"
    return f"{result.out}: {result.steps} env steps, {result.steps_per_second:.0f} steps/s; {ret}"

