"""The training loop: one readable function, ``train(config, data, out)``, in the manner of nanoGPT's train.py.

What happens, in order: open the data, split it by take (a mirror goes with its original), featurize every clip
once into a memory map, fit the normaliser on the training side only, build the model by name, then loop:
AdamW with linear warm-up and cosine decay, gradient clipping, a weighted loss on the ``pos`` and ``vel`` feature
groups, and on a fraction of the batches a short rollout that feeds the model its own predictions (what keeps
long rollouts from drifting). Every ``eval_interval`` steps the model rolls out on validation windows; the best
model so far is written to ``out`` and training stops when it has not improved for ``patience`` evaluations.
Every ``ckpt_interval`` steps the whole state (weights, optimizer, scheduler, both random generators) goes to
``<out>.resume.pt``, so that ``resume=True`` continues a killed run exactly where it stopped.
A model of kind ``tokenizer`` (the VQ-VAE) goes through the same loop on its own loss: it reconstructs each window
(input = target; smooth L1, a frame-to-frame velocity term and the model's commitment), has no rollout batches,
and is validated on the reconstruction of fixed validation windows (``val_recon``).
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from optiq import OptiqError
from optiq import config as config_errors
from optiq.atomic import atomic_path, check_output_path

from . import data as D

CONFIGS = Path(__file__).parent / "configs"


# A training configuration key that does not exist or has a value of the wrong type (one class for every package).
ConfigError = config_errors.ConfigError


@dataclass
class TrainConfig:
    """Every hyper-parameter of a run, once, with its default. A YAML file sets any of them, the command line
    overrides any of them (``lr=1e-3``, ``model.d_model=256``)."""

    arch: str = "transformer"               # registered model name or module:Class
    model: dict = field(default_factory=dict)   # keyword arguments of the model (the YAML `model:` section)
    rotation: str = "6d"                     # feature encoding of joint rotations: 6d | quat | expmap
    contacts: bool = False                   # append foot-contact flags to the features
    norm_min_std: float = 0.0                # floor of the normaliser's std per feature (features' units; 0: none)
    root: str | None = None                  # joint carrying the global motion (None: detected)
    labels: list = field(default_factory=list)  # clip label names the model is conditioned on
    frame_labels: list = field(default_factory=list)  # frame label names (phase: float; others categorical)
    window: int = 64                         # frames per training window (input; the target is shifted by one)
    batch_size: int = 32                     # windows per step
    lr: float = 3e-4                         # peak learning rate
    min_lr: float = 3e-5                     # learning rate at the end of the cosine decay
    weight_decay: float = 0.01               # AdamW decay of weight matrices (not of biases and norms)
    warmup_steps: int = 100                  # linear warm-up from 0 to lr
    max_steps: int = 2000                    # steps of the cosine schedule and of the run
    max_minutes: float | None = None         # wall-clock budget: stop and keep the best model when spent
    grad_clip: float = 1.0                   # clip the gradient's global norm (0: off)
    loss_weights: str = "fixed"              # fixed: pos_weight / vel_weight; auto: variance-balanced groups
    pos_weight: float = 1.0                  # weight of the pos group (rotations, positions, height, tilt)
    vel_weight: float = 0.1                  # weight of the vel group (velocities)
    rollout_fraction: float = 0.2            # fraction of batches trained on a multi-step rollout
    rollout_steps: int = 5                   # steps of that rollout (k)
    rollout_backprop: bool = False           # back-propagate through the fed-back predictions (default: detached)
    smooth_weight: float = 0.0               # weight of the squared predicted acceleration (0: off)
    recon_vel_weight: float = 0.5            # tokenizers: weight of the frame-to-frame velocity loss
    input_noise: float = 0.0                 # std of Gaussian noise on the input frames (normalised units; 0: off)
    noise_group: str = "all"                 # features the noise goes on: all | vel | pos
    eval_interval: int = 100                 # steps between validation rollouts
    eval_windows: int = 64                   # validation windows per evaluation
    val_horizon: int = 30                    # frames rolled out on validation windows (early-stopping metric)
    patience: int = 10                       # evaluations without improvement before stopping (0: never stop)
    ckpt_interval: int = 200                 # steps between resume checkpoints
    log_interval: int = 10                   # steps between JSONL metric lines
    seed: int = 0                            # seeds the split, sampling, initialisation and label dropout
    device: str = "cpu"                      # cpu, cuda, cuda:1, mps
    split_by: str = "clip"                   # clip | label:KEY | regex:PATTERN (test side)
    test_ratio: float = 0.15                 # held-out fraction of takes
    val_ratio: float = 0.1                   # fraction of the remaining takes used for early stopping
    curriculum: list = field(default_factory=list)  # [{from_epoch: 0, labels: {content: walk}}, ...] (see below)
    track: str | None = None                 # mlflow: log params, metrics, config and model to MLflow
    track_uri: str | None = None             # MLflow tracking URI (default: sqlite file mlflow.db beside the model)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "config") -> TrainConfig:
        """A config from ``values`` (a YAML mapping); an unknown key or a wrong type raises ConfigError."""
        return cls().updated(values, where)

    def updated(self, values: Mapping[str, Any], where: str = "config") -> TrainConfig:
        """A copy with ``values`` set: ``{"lr": 1e-3, "model.d_model": 256, "model": {...}}``."""
        cfg = dataclasses.replace(self, model=dict(self.model), labels=list(self.labels))
        hints = typing.get_type_hints(TrainConfig)
        for key, value in values.items():
            key = str(key).replace("-", "_")
            if key.startswith("model."):
                cfg.model[key[len("model."):]] = value
                continue
            if key not in hints:
                raise ConfigError(f"{where}: unknown key {key!r}; keys: {', '.join(hints)}")
            setattr(cfg, key, _checked(key, value, hints[key], where))
        return cfg


def _checked(key: str, value: Any, hint: Any, where: str) -> Any:
    """``value`` as type ``hint`` (int accepted for float, a comma list or a string for a list), else ConfigError
    naming the key."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in allowed:
        return None
    for t in allowed:
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if t is float and isinstance(value, str):  # YAML 1.1 reads 3e-3 (no dot) as text
            try:
                number = float(value)
            except ValueError:
                continue
            if math.isfinite(number):
                return number
        if t is list and isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if t in (int, str, bool, list, dict) and isinstance(value, t) and not (t is int and isinstance(value, bool)):
            return value
    names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
    raise ConfigError(f"{where}: key {key!r} must be {names}, got {value!r}")


def config_path(name: str | os.PathLike) -> Path:
    """A config file: a path, or the name of a shipped one (``transformer``, ``model_mlp``, ``model_mlp.yaml``)."""
    from optiq.config import find_config

    return find_config(name, CONFIGS, ("", "model_"))


def load_config(name: str | os.PathLike | None = None, overrides: Mapping[str, Any] | Sequence[str] = ()) -> TrainConfig:
    """The config of a YAML file (a path or a shipped name; None: defaults) with ``overrides`` applied
    (a mapping, or ``key=value`` strings whose values are read as YAML: ``lr=1e-3``, ``labels=[content]``)."""
    from optiq.config import override_values, read_config_file

    cfg = TrainConfig()
    if name is not None:
        path = config_path(name)
        cfg = cfg.updated(read_config_file(path), str(path))
    if not isinstance(overrides, Mapping):
        overrides = override_values(overrides)
    return cfg.updated(overrides, "command line")


# --- the run -------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What a run did: the checkpoint, steps run, the best validation error (rollout; reconstruction for a
    tokenizer), why it stopped, and the metrics of step 1 and every ``log_interval`` steps (``history``: dicts with
    step, loss, lr, frames_per_s, rollout (1.0 for a multi-step batch), val_rollout or val_recon when evaluated)."""

    out: Path
    steps: int
    best_val: float | None
    history: list[dict[str, float]]
    stopped: str
    model: Any = None


def resume_path(out: str | os.PathLike) -> Path:
    """``run.pt`` -> ``run.resume.pt``: the full training state beside the model."""
    out = Path(out)
    return out.with_name(out.stem + ".resume.pt")


def beside(out: str | os.PathLike, suffix: str) -> Path:
    """``run.pt`` -> ``run<suffix>`` (``.split.json``, ``.metrics.jsonl``)."""
    out = Path(out)
    return out.with_name(out.stem + suffix)


def train(cfg: TrainConfig, data: Any, out: str | os.PathLike, *, resume: bool = False,
          cache_dir: str | os.PathLike | None = None, progress: bool | None = None,
          callback: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
    """Train a model on ``data`` (a dataset, motion files, or an open ``Source``) and write it to ``out``.

    resume: continue from ``<out>.resume.pt`` with its config, split, normaliser, optimizer, scheduler and random
    state (``cfg`` then only changes ``max_minutes`` and ``device``). callback: called after every step with the
    step number and its metrics (tests stop runs with it). progress: a tqdm bar (default: when stderr is a
    terminal). Returns a TrainResult.
    """
    from optiq.features import FeatureSpec, Normalizer, feature_layout, resolve_spec

    from .checkpoint import save_checkpoint
    from .nets import build_model

    out = check_output_path(out, suffixes=(".pt",), what="model")
    progress = sys.stderr.isatty() if progress is None else progress
    state = _load_resume(out) if resume else None
    if state is not None:
        cfg = TrainConfig.from_dict(json.loads(state["config"]), "resume state").updated(
            {"max_minutes": cfg.max_minutes, "device": cfg.device})
    device = _device(cfg.device)
    # Under torchrun (RANK and WORLD_SIZE set): one process per rank, each sampling its own shard of the training
    # clips; gradients are averaged across ranks every step; rank 0 alone evaluates, logs and writes.
    rank, world, own_group, device = _distributed(device)
    master = rank == 0
    progress = progress and master
    source = data if isinstance(data, D.Source) else D.open_source(data, cache_dir=cache_dir, progress=progress)
    # The root's name filled in (Bandai-Namco: Hips, not the dummy joint_Root), so the model records it.
    spec = resolve_spec(source.read_clip(source.names[0]),
                        FeatureSpec(rotation=cfg.rotation, contacts=cfg.contacts, root=cfg.root))
    if state is not None:
        split = D.Split.from_json(json.loads(state["split"]))
    else:
        split = D.make_split(source.names, source.labels, by=cfg.split_by, test_ratio=cfg.test_ratio,
                             val_ratio=cfg.val_ratio, seed=cfg.seed)
    if not split.train:
        raise OptiqError(f"the split leaves no clip to train on ({len(source.names)} clips, {split.how})",
                         source.path)
    store = D.build_store(source, spec, cache_dir=cache_dir, progress=progress)
    if state is not None:
        normalizer = Normalizer.from_json(state["normalizer"])
    else:
        normalizer = Normalizer.fit(store.iter_clips(split.train), min_std=cfg.norm_min_std)
    layout = feature_layout(source.skeleton, spec)
    weights = _loss_weights(cfg, layout, store, split.train, normalizer).to(device)
    noise = _noise_scale(cfg, layout).to(device)
    vocab = D.build_vocab([source.labels[n] for n in split.train], cfg.labels, cfg.frame_labels, store,
                          split.train)

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, store.dim, vocab, dict(cfg.model)).to(device)
    # A tokenizer (the VQ-VAE) reconstructs whole windows: input = target, no rollouts, validated on
    # reconstruction; everything else (sampling, schedule, resume, DDP, tracking) is the same loop.
    tokenizer = getattr(model, "kind", "next_state") == "tokenizer"
    if tokenizer:
        _check_tokenizer_window(cfg, model)
    context = cfg.window if tokenizer else min(int(model.context), cfg.window)
    k = cfg.rollout_steps if cfg.rollout_fraction > 0 and not tokenizer else 0
    val_key = "val_recon" if tokenizer else "val_rollout"
    if world > 1:
        torch.manual_seed(cfg.seed + rank)  # the same initial weights on every rank, then their own dropout
    rng = np.random.default_rng(cfg.seed + rank)
    shard = split.train[rank::world]
    if not shard:
        raise OptiqError(f"{len(split.train)} training clips cannot be shared among {world} processes")
    length = cfg.window if tokenizer else max(cfg.window + 1, context + k)
    stages = _curriculum(cfg, store, shard, length, normalizer, vocab, rng)
    val = _val_windows(store, split.val, context, cfg, normalizer, vocab, horizon=0 if tokenizer else None)

    optimizer = _optimizer(model, cfg)
    # With a wall-clock budget the cosine follows whichever runs out first, steps or minutes, so that a budgeted
    # run still ends at min_lr (the budget is how runs are compared on shared machines).
    clock = {"elapsed": 0.0}
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, cfg, clock["elapsed"]))
    step, best, bad_evals = 0, math.inf, 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch_rng, numpy_rng = state["torch_rng"], state["numpy_rng"]
        if world > 1:
            if int(state.get("world", 1)) != world or "rank_torch_rng" not in state:
                raise OptiqError(f"cannot resume with {world} processes: the training state was saved by "
                                 f"{int(state.get('world', 1))}; resume with the same --nproc-per-node",
                                 resume_path(out))
            torch_rng, numpy_rng = state["rank_torch_rng"][rank], state["rank_numpy_rng"][rank]
        torch.set_rng_state(torch_rng)
        rng.bit_generator.state = json.loads(numpy_rng)
        step, best, bad_evals = int(state["step"]), float(state["best"]), int(state["bad_evals"])
        clock["elapsed"] = float(state.get("elapsed", 0.0))

    def save_model(extra: dict[str, Any]) -> None:
        if not master:
            return
        # The frame rates trained on: the step a next-state prediction takes (the RL adapters check it against
        # their env's control rate).
        rates = sorted({float(store.fps[store.index[n]]) for n in split.train})
        save_checkpoint(out, model, config=cfg.to_json(), feature_spec=spec, normalizer=normalizer, vocab=vocab,
                        skeleton=source.skeleton, split=split.to_json(), extra={**extra, "fps": rates})

    def save_state() -> None:
        # Every rank's random state (its own label dropout, noise and window draws), so that a resumed
        # distributed run continues exactly; rank 0 gathers them and writes.
        mine = (torch.get_rng_state(), json.dumps(rng.bit_generator.state))
        ranks = [mine]
        if world > 1:
            ranks = [None] * world
            torch.distributed.all_gather_object(ranks, mine)
        if not master:
            return
        with atomic_path(resume_path(out)) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                        "numpy_rng": json.dumps(rng.bit_generator.state), "world": world,
                        "rank_torch_rng": [r[0] for r in ranks], "rank_numpy_rng": [r[1] for r in ranks],
                        "step": step, "best": best,
                        "bad_evals": bad_evals, "elapsed": clock["elapsed"], "config": json.dumps(cfg.to_json()),
                        "split": json.dumps(split.to_json()), "normalizer": _as_text(normalizer.to_json())}, tmp)

    tracker = _MLflow(cfg, out) if cfg.track and master else None
    if master:
        split.write(beside(out, ".split.json"))
    log = open(beside(out, ".metrics.jsonl") if master else os.devnull, "a" if state is not None else "w",
               encoding="utf-8")
    history: list[dict[str, float]] = []
    bar = _bar(progress, cfg.max_steps, step)
    start, stopped, fps, saved = time.perf_counter() - clock["elapsed"], "max_steps", 0.0, False
    try:
        while step < cfg.max_steps:
            t0 = time.perf_counter()
            model.train()
            rollout = k > 0 and rng.random() < cfg.rollout_fraction
            sampler = next(s for first, s in reversed(stages) if step >= first)
            x, cond = sampler.sample(cfg.batch_size)
            x = torch.from_numpy(x).to(device)
            cond = {n: torch.from_numpy(v).to(device) for n, v in cond.items()}
            aux: dict[str, float] = {}
            if tokenizer:
                loss, aux = _tokenizer_loss(model, x, _noisy(x, noise), weights, cfg.recon_vel_weight)
            elif rollout:
                loss = _rollout_loss(model, x, cond, context, k, weights, cfg.rollout_backprop, noise)
            else:
                pred = model(_noisy(x[:, :cfg.window], noise), cond)
                loss = _weighted_mse(pred, x[:, 1:cfg.window + 1], weights)
                if cfg.smooth_weight > 0:
                    acc = pred[:, 2:] - 2 * pred[:, 1:-1] + pred[:, :-2]
                    loss = loss + cfg.smooth_weight * acc.pow(2).mean()
            if not torch.isfinite(loss):
                raise OptiqError(f"training diverged at step {step}: the loss is {loss.item()}; lower lr "
                                 f"(now {cfg.lr:g}) or raise grad_clip")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if world > 1:
                _average_gradients(model, world)
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            clock["elapsed"] = time.perf_counter() - start
            scheduler.step()
            step += 1
            dt = time.perf_counter() - t0
            fps = 0.9 * fps + 0.1 * (cfg.batch_size * cfg.window / dt) if fps else cfg.batch_size * cfg.window / dt
            metrics = {"loss": float(loss.item()), "lr": scheduler.get_last_lr()[0], "frames_per_s": fps,
                       "rollout": float(rollout), **aux}
            if step % cfg.eval_interval == 0 or step == cfg.max_steps:
                if val is not None and master:
                    err = _val_recon(model, val, weights) if tokenizer else _val_error(model, val, cfg.val_horizon,
                                                                                        weights)
                    metrics[val_key] = err
                    if err < best:
                        best, bad_evals = err, 0
                        save_model({"step": step, val_key: err})
                        saved = True
                    else:
                        bad_evals += 1
            if step % cfg.log_interval == 0 or step == 1 or val_key in metrics:
                history.append({"step": step, **metrics})
                log.write(json.dumps({"step": step, **metrics}) + "\n")
                log.flush()
                if tracker is not None:
                    tracker.log(step, metrics)
            if step % cfg.ckpt_interval == 0:
                save_state()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", fps=f"{fps:,.0f}")
            if callback is not None:
                callback(step, metrics)
            reason = None
            if cfg.patience and bad_evals >= cfg.patience:
                reason = "early_stopping"
            elif cfg.max_minutes is not None and clock["elapsed"] > 60 * cfg.max_minutes:
                reason = "max_minutes"
            if world > 1:  # rank 0 decides for all, so that no rank waits for the others forever
                box = [reason]
                torch.distributed.broadcast_object_list(box, src=0)
                reason = box[0]
            if reason:
                stopped = reason
                break
        save_state()
        if val is None or not (saved or (state is not None and out.exists())):
            # No validation side, or no evaluation yet: the last model is the model.
            save_model({"step": step, val_key: None})
        if tracker is not None:
            tracker.finish(out, stopped)
            tracker = None
        if world > 1:
            # Every rank ends here together (the stop is decided by rank 0 for all) before the group is torn down:
            # a rank that destroys it while another still has collectives in flight can abort (gloo, seen once
            # in CI on a resumed run).
            torch.distributed.barrier()
    finally:
        if tracker is not None:
            tracker.finish(None, "failed")
        log.close()
        store.close()
        if bar is not None:
            bar.close()
        if source is not data:  # opened here
            source.close()
        if own_group:
            torch.distributed.destroy_process_group()
    return TrainResult(out, step, None if math.isinf(best) else best, history, stopped, model)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _load_resume(out: Path) -> dict[str, Any]:
    path = resume_path(out)
    if not path.is_file():
        raise OptiqError(f"cannot resume: no training state {path.name} beside the model (written every "
                         "ckpt_interval steps)", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise OptiqError(f"cannot resume: not a readable training state ({type(exc).__name__})", path) from None


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; expected cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: torch sees no CUDA device here; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r}: MPS is not available here; use --device cpu")
    return device


class _MLflow:
    """``track: mlflow``: the run's parameters (the flattened config), the config as ``config.json``, the logged
    metrics by step, and at the end the model and its split as artifacts. The default store is a SQLite file
    ``mlflow.db`` beside the model, its artifacts in ``mlartifacts/`` there (extra ``optiq[infra]``)."""

    def __init__(self, cfg: TrainConfig, out: Path):
        if cfg.track != "mlflow":
            raise ConfigError(f"key 'track' must be mlflow or null, got {cfg.track!r}")
        from optiq.tracking import start_mlflow_run

        self.mlflow = mlflow = start_mlflow_run("optiq-models", out, out.stem, cfg.track_uri)
        params = {k: v for k, v in cfg.to_json().items() if k != "model"}
        params.update({f"model.{k}": v for k, v in cfg.model.items()})
        mlflow.log_params({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in params.items()})
        mlflow.log_dict(cfg.to_json(), "config.json")

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self.mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def finish(self, out: Path | None, stopped: str) -> None:
        if out is not None and out.exists():
            self.mlflow.log_artifact(str(out))
            self.mlflow.log_artifact(str(beside(out, ".split.json")))
        self.mlflow.set_tag("stopped", stopped)
        self.mlflow.end_run(status="FINISHED" if out is not None else "FAILED")


def _distributed(device: torch.device) -> tuple[int, int, bool, torch.device]:
    """(rank, world size, whether this call started the process group, device) under torchrun; (0, 1, False,
    device) otherwise. gloo on CPU, nccl on CUDA (each rank on its LOCAL_RANK GPU)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False, device
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "RANK" not in os.environ:
        return 0, 1, False, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), True, device


def _average_gradients(model: torch.nn.Module, world: int) -> None:
    """Average the gradients over the ranks: one all-reduce of all of them, flattened (what
    DistributedDataParallel does in buckets; done by hand because rollout batches call ``predict_next``, which
    the DDP wrapper's ``forward`` hooks would not see)."""
    for p in model.parameters():
        if p.requires_grad and p.grad is None:  # unused this step: every rank must send the same layout
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def _bar(on: bool, total: int, initial: int):
    if not on:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="training", unit="step", dynamic_ncols=True)


def _lr_factor(step: int, cfg: TrainConfig, elapsed: float = 0.0) -> float:
    """Learning rate / peak: linear warm-up, then cosine decay to ``min_lr`` at ``max_steps``, or at
    ``max_minutes`` when that comes first (elapsed: seconds of training so far)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    if cfg.max_minutes:
        progress = max(progress, min(1.0, elapsed / (60 * cfg.max_minutes)))
    floor = cfg.min_lr / cfg.lr if cfg.lr > 0 else 0.0
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay only on matrices (embeddings, linear and conv weights), as in nanoGPT."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    rest = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))


def _loss_weights(cfg: TrainConfig, layout: Any, store: D.FeatureStore, train_names: Sequence[str],
                  normalizer: Any) -> torch.Tensor:
    """Per-feature loss weights ``[F]``: ``pos_weight`` on the pos group, ``vel_weight`` on the vel group, 1
    elsewhere; ``auto`` sets the group weights so that each group's frame-to-frame change (in normalised units)
    weighs the same: a model that predicts no change scores equally badly on both."""
    w = np.ones(layout.dim, dtype=np.float32)
    pos, vel = np.asarray(layout.groups["pos"]), np.asarray(layout.groups["vel"])
    if cfg.loss_weights == "auto":
        var = D.residual_variance(store, train_names, normalizer)
        w[pos] = 1.0
        w[vel] = float(var[pos].mean() / var[vel].mean())
    elif cfg.loss_weights == "fixed":
        w[pos], w[vel] = cfg.pos_weight, cfg.vel_weight
    else:
        raise ConfigError(f"key 'loss_weights' must be fixed or auto, got {cfg.loss_weights!r}")
    return torch.from_numpy(w)


def _weighted_mse(pred: torch.Tensor, target: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Mean over samples of the weighted mean squared error over features: ``sum_f w_f e_f^2 / sum_f w_f``."""
    return ((pred - target).pow(2) * w).sum(-1).mean() / w.sum()


def _noise_scale(cfg: TrainConfig, layout: Any) -> torch.Tensor:
    """Per-feature std ``[F]`` of the input noise: ``input_noise`` on the features of ``noise_group``."""
    scale = np.zeros(layout.dim, dtype=np.float32)
    if cfg.noise_group == "all":
        scale[:] = cfg.input_noise
    elif cfg.noise_group in ("pos", "vel"):
        scale[np.asarray(layout.groups[cfg.noise_group])] = cfg.input_noise
    else:
        raise ConfigError(f"key 'noise_group' must be all, pos or vel, got {cfg.noise_group!r}")
    return torch.from_numpy(scale)


def _noisy(x: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``x`` plus Gaussian noise of ``std [F]`` (normalised units), drawn from torch's global generator (saved
    for resume). Targets stay clean, so the model learns to pull a corrupted state back towards the data: what
    keeps learned simulators' rollouts on the data (Sanchez-Gonzalez et al. 2020); and a context whose speed
    cannot be trusted to the last digit lets the labels steer (docs/models.md, "Label steering")."""
    return x + std * torch.randn_like(x) if bool((std > 0).any()) else x


def _rollout_loss(model: torch.nn.Module, x: torch.Tensor, cond: dict[str, torch.Tensor], context: int, k: int,
                  w: torch.Tensor, backprop: bool, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Roll ``k`` steps from ``x[:, :context]`` (plus ``noise``, see :func:`_noisy`) feeding back the model's own
    predictions (detached unless ``backprop``), the loss averaged over the steps against
    ``x[:, context:context + k]``."""
    ctx = x[:, :context] if noise is None else _noisy(x[:, :context], noise)
    losses = []
    for i in range(k):
        # Frame labels [B, L] move with the window: the context now covers frames i .. i + context - 1.
        pred = model.predict_next(ctx, {n: v if v.dim() == 1 else v[:, i:] for n, v in cond.items()})
        losses.append(_weighted_mse(pred, x[:, context + i], w))
        fed = pred if backprop else pred.detach()
        ctx = torch.cat([ctx[:, 1:], fed[:, None]], dim=1)
    return torch.stack(losses).mean()


def _curriculum(cfg: TrainConfig, store: D.FeatureStore, train_names: Sequence[str], length: int, normalizer: Any,
                vocab: Any, rng: np.random.Generator) -> list[tuple[int, D.WindowSampler]]:
    """(first step, sampler) per curriculum stage, in order. A stage ``{from_epoch: E, labels: {key: value or
    [values]}}`` trains from epoch E (an epoch: as many frames as the training side holds) on the training clips
    whose labels match; without a curriculum, one stage of every training clip. All stages share ``rng``."""
    every = D.WindowSampler(store, train_names, length, normalizer, vocab, rng)
    if not cfg.curriculum:
        return [(0, every)]
    frames = int(sum(store.lengths()[store.index[n]] for n in train_names))
    steps_per_epoch = max(1, frames // (cfg.batch_size * cfg.window))
    stages = []
    for i, stage in enumerate(cfg.curriculum):
        where = f"key 'curriculum' item {i}"
        if not isinstance(stage, Mapping) or set(stage) - {"from_epoch", "labels"} or "labels" not in stage:
            raise ConfigError(f"{where}: expected {{from_epoch: N, labels: {{name: value or [values]}}}}, got {stage!r}")
        epoch, wanted = stage.get("from_epoch", 0), stage["labels"]
        if not isinstance(epoch, (int, float)) or isinstance(epoch, bool) or epoch < 0 or not isinstance(wanted, Mapping):
            raise ConfigError(f"{where}: from_epoch must be a number >= 0 and labels a mapping, got {stage!r}")
        allowed = {k: {str(v)} if not isinstance(v, list) else {str(x) for x in v} for k, v in wanted.items()}
        names = [n for n in train_names
                 if all(store.labels[store.index[n]].get(k) in vs for k, vs in allowed.items())]
        if not names:
            raise ConfigError(f"{where}: no training clip has labels {dict(wanted)}")
        stages.append((int(round(epoch * steps_per_epoch)),
                       D.WindowSampler(store, names, length, normalizer, vocab, rng)))
    stages.sort(key=lambda s: s[0])
    if stages[0][0] > 0:
        stages.insert(0, (0, every))
    return stages


@dataclass
class _Val:
    context: torch.Tensor   # [N, C, F]
    target: torch.Tensor    # [N, H, F]
    cond: dict[str, torch.Tensor]


def _val_windows(store: D.FeatureStore, names: Sequence[str], context: int, cfg: TrainConfig, normalizer: Any,
                 vocab: Any, horizon: int | None = None) -> _Val | None:
    """Fixed validation windows of ``context + horizon`` frames (horizon: ``cfg.val_horizon`` unless given),
    drawn with their own seeded generator, so evaluating never moves the training sampler."""
    if not names:
        return None
    length = context + (cfg.val_horizon if horizon is None else horizon)
    try:
        s = D.WindowSampler(store, names, length, normalizer, vocab, np.random.default_rng(cfg.seed + 1))
    except OptiqError:
        return None  # no validation clip is long enough: train without early stopping
    x, cond = s.sample(cfg.eval_windows)
    device = torch.device(cfg.device)
    x = torch.from_numpy(x).to(device)
    return _Val(x[:, :context], x[:, context:], {n: torch.from_numpy(v).to(device) for n, v in cond.items()})


@torch.no_grad()
def _val_error(model: torch.nn.Module, val: _Val, horizon: int, w: torch.Tensor) -> float:
    """Weighted feature MSE of a rollout of ``horizon`` steps, averaged over the steps: the early-stopping
    metric (long-horizon error is what plain next-step loss fails to watch)."""
    model.eval()
    pred = model.rollout(val.context, horizon, val.cond)
    return float(_weighted_mse(pred, val.target, w).item())


# --- tokenizers (kind "tokenizer": the VQ-VAE) ------------------------------------------------------------------
def _check_tokenizer_window(cfg: TrainConfig, model: Any) -> None:
    """A tokenizer reads whole windows: ``window`` must be a positive multiple of its downsampling."""
    down = int(model.downsample)
    if cfg.window < down or cfg.window % down:
        raise ConfigError(f"key 'window' ({cfg.window}) must be a multiple of the tokenizer's downsampling "
                          f"({down} frames per code) and at least {down}")


def _weighted_smooth_l1(pred: torch.Tensor, target: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Smooth L1 (Huber, beta 1) per feature, weighted as :func:`_weighted_mse`."""
    err = torch.nn.functional.smooth_l1_loss(pred, target, reduction="none")
    return (err * w).sum(-1).mean() / w.sum()


def frame_velocity_loss(pred: torch.Tensor, target: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted smooth L1 between the frame-to-frame differences ``x[t + 1] - x[t]`` of ``pred`` and of
    ``target`` (both ``[B, T, F]``, T >= 2; ``w [F]``): a reconstruction that jitters around the right poses is
    penalised even where its per-frame error is small.

    Not what T2M-GPT calls its velocity loss: there ``loss_vel`` compares ``pred[..., 4:(J - 1) * 3 + 4]``
    with the same slice of the target, a slice of the feature vector (the root-relative joint positions of
    HumanML3D's layout), in the same frame: a second position loss, no difference between frames
    (``ReConsLoss.forward_vel`` of its ``utils/losses.py``).
    """
    if pred.shape[1] < 2:  # one frame has no velocity
        return pred.new_zeros(())
    return _weighted_smooth_l1(pred[:, 1:] - pred[:, :-1], target[:, 1:] - target[:, :-1], w)


def _tokenizer_loss(model: torch.nn.Module, x: torch.Tensor, inp: torch.Tensor, w: torch.Tensor,
                    vel_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Reconstruction of ``x [B, T, F]`` from ``inp`` (``x``, or ``x`` with input noise): weighted smooth L1 +
    ``vel_weight`` x :func:`frame_velocity_loss` + the model's own term (``last_aux["loss"]``: commitment, and
    the codebook loss of a gradient-learnt codebook). Returns the loss and the metrics to log."""
    pred = model(inp)
    aux = model.last_aux
    recon = _weighted_smooth_l1(pred, x, w)
    loss = recon + vel_weight * frame_velocity_loss(pred, x, w) + aux["loss"]
    return loss, {"recon": float(recon.item()), "commit": float(aux["commit"].item()),
                  "perplexity": float(aux["perplexity"]), "usage": float(aux["usage"])}


@torch.no_grad()
def _val_recon(model: torch.nn.Module, val: _Val, w: torch.Tensor) -> float:
    """Weighted feature MSE of the reconstruction of the validation windows: a tokenizer's early-stopping metric."""
    model.eval()
    return float(_weighted_mse(model(val.context), val.context, w).item())
