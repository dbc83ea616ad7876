"""Evaluation of a next-state model on clips it never saw, against the baselines that are hard to beat.

From each clip, windows start every ``stride`` frames: the model reads ``context`` ground-truth frames and rolls
out ``horizon`` frames on its own. On the same windows two baselines predict: **zero-velocity** (the last
context frame, held; nothing moves) and **constant-velocity** (every position keeps its last frame-to-frame
change). Errors are reported at each step t (not averaged up to t):

- single-step (step 1, predicted from ground truth): pos- and vel-group MSE on normalised features, R2 of the
  frame-to-frame residual (of the change, not of the next frame, which is trivially near 1), MPJPE;
- rollout: root-relative MPJPE (mm) and normalised feature MSE at steps 1..H, the global error of the root's
  position (m, integrated from the predicted root velocity and yaw rate), the growth exponent b of
  ``MPJPE(h) ~ a h^b``, and MPJPE(H) / MPJPE(1);
- the same MPJPE curves per label value.

The report is version 1 of docs/viz.md: its ``horizon`` section is what ``optiq viz plots --report`` draws.

A tokenizer (``kind = "tokenizer"``, the VQ-VAE) has no rollout: each clip is encoded and decoded whole and the
report holds its reconstruction errors, codebook usage and perplexity (:func:`reconstruction_report`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from optiq import OptiqError
from optiq.atomic import atomic_text, check_output_path

from . import data as D

REPORT_VERSION = 1
ZERO, CONST = "zero-velocity", "constant-velocity"
VELOCITY_SLICES = ("root_velocity", "yaw_rate", "velocities")
#: Clip labels that loaders and convert write about the file, not about the motion.
METADATA_LABELS = {"source", "length_unit", "up", "rotation_orders", "unit", "character"}


@dataclass
class Loaded:
    """A checkpoint ready to predict: the model (eval mode), its record, feature spec, normaliser, layout."""

    model: Any
    checkpoint: Any
    spec: Any
    normalizer: Any
    layout: Any
    name: str


def load_model(path: str | os.PathLike, device: str = "cpu", kinds: Sequence[str] = ("next_state",)) -> Loaded:
    """Load a checkpoint (``checkpoint.load_checkpoint``) with what evaluation and generation need. kinds: the
    model kinds the caller handles (``next_state``: rolled out; ``tokenizer``: encoded and decoded); another
    kind raises OptiqError."""
    from optiq.features import feature_layout

    from .checkpoint import load_checkpoint

    model, ck = load_checkpoint(path)
    kind = getattr(model, "kind", "next_state")
    if kind not in kinds:
        what = ("evaluation and generation here roll out next-state models" if tuple(kinds) == ("next_state",)
                else f"expected a model of kind {' or '.join(kinds)}")
        hint = ("a tokenizer encodes and decodes motion (optiq tokens, optiq eval model)" if kind == "tokenizer"
                else "this kind has its own protocol")
        raise OptiqError(f"model of kind {kind!r}: {what}; {hint}", path)
    model = model.to(device).eval()
    layout = feature_layout(ck.skeleton, ck.feature_spec)
    arch = (ck.config or {}).get("arch") if isinstance(ck.config, Mapping) else None
    return Loaded(model, ck, ck.feature_spec, ck.normalizer, layout, str(arch or Path(path).stem))


def check_skeleton(source: D.Source, loaded: Loaded, model_path: str | os.PathLike) -> None:
    """One clear line when the data's skeleton topology is not the model's, naming both."""
    from optiq.datasets import check_topology

    check_topology(source.skeleton, loaded.checkpoint.skeleton, f"dataset {source.path}", None,
                   f"the model {os.fspath(model_path)}")


def clips_of(source: D.Source, loaded: Loaded, split: str) -> list[str]:
    """Clip names of ``split``: ``test``/``train``/``val`` from the split saved with the model, ``all`` every
    clip of the data (for another corpus or subject)."""
    if split == "all":
        return list(source.names)
    saved = loaded.checkpoint.split
    saved = D.Split.from_json(saved if isinstance(saved, Mapping) else json.loads(saved))
    names = saved.side(split)
    present = set(source.names)
    missing = [n for n in names if n not in present]
    if missing:
        raise OptiqError(f"clip {missing[0]!r} of the model's {split} split is not in this dataset "
                         f"({len(missing)} missing); evaluate another corpus with --split all", source.path)
    if not names:
        raise OptiqError(f"the model's {split} split is empty; use --split all to evaluate every clip", source.path)
    return names


# --- windows and predictions ---------------------------------------------------------------------------------
@dataclass
class Windows:
    """Evaluation windows: raw (denormalised) features ``context [N, C, F]`` and ``truth [N, H, F]``, and for
    each window its clip index into ``clips`` and first predicted frame."""

    context: np.ndarray
    truth: np.ndarray
    clip: np.ndarray
    start: np.ndarray
    clips: list[str]
    skipped: list[dict[str, Any]]


def make_windows(store: D.FeatureStore, names: Sequence[str], context: int, horizon: int, stride: int) -> Windows:
    """Windows from every clip of ``names`` long enough for ``context + horizon`` frames, first predicted
    frames ``stride`` apart; the others are listed in ``skipped``. Raises when no clip is long enough."""
    ctx, tru, cl, st, skipped, kept = [], [], [], [], [], []
    for name in names:
        x = np.asarray(store.clip(name))
        if len(x) < context + horizon:
            skipped.append({"clip": name, "frames": len(x),
                            "reason": f"shorter than context + horizon = {context + horizon} frames"})
            continue
        starts = np.arange(context, len(x) - horizon + 1, stride)
        idx_c = starts[:, None] + np.arange(-context, 0)[None]
        idx_t = starts[:, None] + np.arange(horizon)[None]
        ctx.append(x[idx_c])
        tru.append(x[idx_t])
        cl.append(np.full(len(starts), len(kept)))
        st.append(starts)
        kept.append(name)
    if not kept:
        raise OptiqError(f"no clip has the {context + horizon} frames (context {context} + horizon {horizon}) "
                         f"that evaluation needs; {len(names)} clips were all skipped")
    return Windows(np.concatenate(ctx), np.concatenate(tru), np.concatenate(cl), np.concatenate(st), kept, skipped)


def window_cond(vocab: Any, store: D.FeatureStore, win: Windows, context: int, horizon: int,
                clip_labels: Sequence[Mapping[str, str]] | None = None) -> dict[str, np.ndarray] | None:
    """Labels of each window: clip labels ``[N]`` (the windows' clips' own, or ``clip_labels`` per clip of
    ``win.clips``) and frame labels ``[N, context + horizon]`` read from the data over the window's whole
    timeline (labels are given, like clip labels; the motion is what is predicted)."""
    labels = clip_labels if clip_labels is not None else [store.labels[store.index[n]] for n in win.clips]
    cond_clip = D.encode_labels(vocab, labels)
    cond = {k: v[win.clip] for k, v in cond_clip.items() if k not in vocab.frame}
    frame = D.encode_frame_labels(vocab, store)
    if frame:
        first = np.array([store.offsets[store.index[n]] for n in win.clips])[win.clip] + win.start - context
        rows = first[:, None] + np.arange(context + horizon)[None]
        cond.update({k: v[rows] for k, v in frame.items()})
    return cond or None


@torch.no_grad()
def rollout_raw(loaded: Loaded, context_raw: np.ndarray, steps: int, cond: Mapping[str, np.ndarray] | None = None,
                guidance: float = 0.0, batch: int = 256) -> np.ndarray:
    """The model's rollout ``[N, steps, F]`` (raw features) from raw ``context_raw [N, C, F]``, in batches."""
    device = next(loaded.model.parameters()).device
    out = []
    for i in range(0, len(context_raw), batch):
        ctx = torch.from_numpy(np.asarray(loaded.normalizer.normalize(context_raw[i:i + batch]), dtype=np.float32))
        c = None if cond is None else {k: torch.from_numpy(v[i:i + batch]).to(device) for k, v in cond.items()}
        pred = loaded.model.rollout(ctx.to(device), steps, c, guidance=guidance) if guidance else \
            loaded.model.rollout(ctx.to(device), steps, c)
        out.append(np.asarray(loaded.normalizer.denormalize(pred.cpu().numpy()), dtype=np.float32))
    return np.concatenate(out)


def baselines(context_raw: np.ndarray, horizon: int, layout: Any) -> dict[str, np.ndarray]:
    """Zero-velocity (last frame held, velocity features zero) and constant-velocity (positions, height and
    the other pos-group features keep their last change; velocity features keep their last value)
    predictions ``[N, H, F]`` from raw ``context_raw [N, C, F]`` (C >= 2)."""
    last, prev = context_raw[:, -1], context_raw[:, -2]
    zero = np.repeat(last[:, None], horizon, axis=1)
    for name in VELOCITY_SLICES:
        if name in layout.slices:
            zero[..., layout.slices[name]] = 0.0
    steps = np.arange(1, horizon + 1, dtype=np.float32)[None, :, None]
    const = last[:, None] + steps * (last - prev)[:, None]
    keep = np.setdiff1d(np.arange(last.shape[-1]), np.asarray(layout.groups["pos"]))
    const[..., keep] = last[:, None, keep]
    if "rotations" in layout.slices:  # an extrapolated rotation encoding leaves its manifold: hold it
        const[..., layout.slices["rotations"]] = last[:, None, layout.slices["rotations"]]
    return {ZERO: zero, CONST: const}


# --- metrics -------------------------------------------------------------------------------------------------
def joint_errors(pred: np.ndarray, truth: np.ndarray, layout: Any) -> np.ndarray:
    """Per-joint distance ``[N, H, J]`` in mm between root-relative joint positions (the ``positions`` slice,
    metres)."""
    sl = layout.slices["positions"]
    p = pred[..., sl].reshape(*pred.shape[:-1], -1, 3)
    t = truth[..., sl].reshape(*truth.shape[:-1], -1, 3)
    return 1000.0 * np.linalg.norm(p - t, axis=-1)


def root_paths(seq: np.ndarray, layout: Any, fps: np.ndarray) -> np.ndarray:
    """Horizontal root positions ``[N, H, 2]`` (m) along predicted frames ``seq [N, H, F]`` (raw), starting at
    the origin with heading 0 at the last context frame: the yaw rate (rad/s) integrated to a heading, the root
    velocity (m/s, heading frame) rotated by it and integrated. fps: ``[N]``."""
    dt = (1.0 / fps)[:, None]
    yaw = np.cumsum(seq[..., layout.slices["yaw_rate"]][..., 0] * dt, axis=1)
    v = seq[..., layout.slices["root_velocity"]]
    c, s = np.cos(yaw), np.sin(yaw)
    world = np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], axis=-1)
    return np.cumsum(world * dt[..., None], axis=1)


def growth_exponent(err: np.ndarray) -> float:
    """b of ``err(h) ~ a h^b`` (least squares on log-log over h = 1..H)."""
    h = np.arange(1, len(err) + 1)
    ok = err > 0
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(h[ok]), np.log(err[ok]), 1)[0])


def _series(x: np.ndarray) -> list[float]:
    return [round(float(v), 4) for v in x]


def evaluate(model: str | os.PathLike | Loaded, data: Any, *, split: str = "test", horizon: int = 60,
             stride: int = 10, context: int | None = None, cache_dir: str | os.PathLike | None = None,
             device: str = "cpu", model_path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The evaluation report (a dict, version 1 of docs/viz.md) of a checkpoint on ``data``'s ``split``.

    horizon: frames rolled out. stride: frames between window starts. context: ground-truth frames read before
    each window (default the model's context).
    """
    loaded = model if isinstance(model, Loaded) else load_model(model, device, KINDS)
    model_path = model_path or (model if not isinstance(model, Loaded) else "model")
    if not isinstance(data, D.Source):
        source = D.open_source(data, cache_dir=cache_dir)
        try:
            return evaluate(loaded, source, split=split, horizon=horizon, stride=stride, context=context,
                            cache_dir=cache_dir, model_path=model_path)
        finally:
            source.close()
    source = data
    if getattr(loaded.model, "kind", "next_state") == "tokenizer":
        return reconstruction_report(loaded, source, split=split, cache_dir=cache_dir, model_path=model_path)
    check_skeleton(source, loaded, model_path)
    names = clips_of(source, loaded, split)
    if horizon < 1 or stride < 1:
        raise OptiqError(f"horizon and stride must be positive, got {horizon} and {stride}")
    store = D.build_store(source, loaded.spec, cache_dir=cache_dir)
    ctx_len = max(2, int(context or loaded.model.context))
    win = make_windows(store, names, ctx_len, horizon, stride)
    labels = [store.labels[store.index[n]] for n in win.clips]
    cond = window_cond(loaded.model.vocab, store, win, ctx_len, horizon)
    pred = rollout_raw(loaded, win.context, horizon, cond)
    preds = {loaded.name: pred, **baselines(win.context, horizon, loaded.layout)}
    fps = np.array([store.fps[store.index[n]] for n in win.clips])[win.clip]

    truth_path = root_paths(win.truth, loaded.layout, fps)
    mpjpe, std, fmse, root, growth, per_joint, errors, root_err = {}, {}, {}, {}, {}, {}, {}, {}
    norm_truth = np.asarray(loaded.normalizer.normalize(win.truth))
    for name, p in preds.items():
        je = joint_errors(p, win.truth, loaded.layout)            # [N, H, J]
        e = errors[name] = je.mean(-1)                             # [N, H]
        mpjpe[name], std[name] = e.mean(0), e.std(0)
        per_joint[name] = je[:, -1].mean(0)
        fmse[name] = ((np.asarray(loaded.normalizer.normalize(p)) - norm_truth) ** 2).mean((0, 2))
        root_err[name] = np.linalg.norm(root_paths(p, loaded.layout, fps) - truth_path, axis=-1)  # [N, H]
        root[name] = root_err[name].mean(0)
        growth[name] = growth_exponent(mpjpe[name])

    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "title": f"{loaded.name} on {split} clips of {source.path.name}: root-relative MPJPE against horizon",
        "horizon": {"steps": list(range(1, horizon + 1)), "unit": "frames", "metric": "MPJPE root-relative (mm)",
                    "series": {k: _series(v) for k, v in mpjpe.items()},
                    "std": {k: _series(v) for k, v in std.items()}},
        "single_step": single_step(pred[:, 0], win.truth[:, 0], win.context[:, -1], loaded),
        "rollout": {
            "feature_mse": {k: _series(v) for k, v in fmse.items()},
            "root_error_m": {k: _series(v) for k, v in root.items()},
            "growth_exponent": {k: round(v, 4) for k, v in growth.items()},
            "rollout_over_single_step": round(float(mpjpe[loaded.name][-1] / max(mpjpe[loaded.name][0], 1e-9)), 4),
        },
        "per_label": per_label(labels, win.clip, errors, root_err),
        "model": os.fspath(model_path), "data": str(source.path), "split": split, "context": ctx_len,
        "stride": stride, "fps": sorted({float(f) for f in fps}), "clips": len(win.clips),
        "windows": int(len(win.clip)), "skipped": win.skipped,
    }
    joints = _joint_names(loaded)
    if len(joints) == next(iter(per_joint.values())).shape[0]:
        report["per_joint"] = {"joints": joints, "metric": f"MPJPE at step {horizon} (mm)",
                               "series": {k: _series(v) for k, v in per_joint.items()}, "std": {}}
    return report


def _joint_names(loaded: Loaded) -> list[str]:
    """Names of the joints of the ``positions`` slice (every joint but the root)."""
    names = loaded.checkpoint.skeleton.names
    return [str(names[j]) for j in loaded.layout.joints]


def single_step(pred: np.ndarray, truth: np.ndarray, last: np.ndarray, loaded: Loaded) -> dict[str, float]:
    """Metrics of the prediction ``[N, F]`` of the frame after ground truth: pos-/vel-group MSE (normalised),
    R2 of the frame-to-frame residual (normalised), MPJPE (mm)."""
    norm = loaded.normalizer.normalize
    p, t, last_n = (np.asarray(norm(a), dtype=np.float64) for a in (pred, truth, last))
    g = loaded.layout.groups
    res_t, res_p = t - last_n, p - last_n
    sst = ((res_t - res_t.mean(0)) ** 2).sum()
    return {
        "pos_mse": round(float(((p - t)[:, g["pos"]] ** 2).mean()), 6),
        "vel_mse": round(float(((p - t)[:, g["vel"]] ** 2).mean()), 6),
        "residual_r2": round(float(1 - ((res_t - res_p) ** 2).sum() / max(sst, 1e-12)), 4),
        "mpjpe_mm": round(float(joint_errors(pred[:, None], truth[:, None], loaded.layout).mean()), 3),
    }


def per_label(labels: Sequence[Mapping[str, str]], clip: np.ndarray, errors: Mapping[str, np.ndarray],
              root_errors: Mapping[str, np.ndarray]) -> dict:
    """MPJPE curves ``{"key=value": {"windows": n, series name: [H], "root_error_m": {series name: [H]}}}``
    over the windows of clips with each label value (errors, root_errors: name -> ``[N, H]``). File metadata (``source``, ``up``, ...) and labels unique to every clip are not categories."""
    out: dict[str, Any] = {}
    for category, members in label_categories(labels).items():
        sel = np.isin(clip, members)
        out[category] = {"windows": int(sel.sum()), **{k: _series(e[sel].mean(0)) for k, e in errors.items()},
                         "root_error_m": {k: _series(e[sel].mean(0)) for k, e in root_errors.items()}}
    return out


def label_categories(labels: Sequence[Mapping[str, str]]) -> dict[str, list[int]]:
    """``"key=value"`` -> indices of the clips (of ``labels``, one dict per clip) with that value, for every label
    that is a category: file metadata (``source``, ``up``, ...) and labels unique to every clip are not."""
    keys = sorted({k for lab in labels for k in lab} - METADATA_LABELS)
    keys = [k for k in keys if len({lab.get(k) for lab in labels}) < len(labels) or len(labels) == 1]
    return {f"{key}={value}": [i for i, lab in enumerate(labels) if lab.get(key) == value]
            for key in keys for value in sorted({lab[key] for lab in labels if key in lab})}


def write_report(report: Mapping[str, Any], out: str | os.PathLike) -> Path:
    """Write ``report`` as JSON, atomically."""
    with atomic_text(out, suffixes=(".json",)) as fh:
        json.dump(report, fh, indent=1)
        fh.write("\n")
    return Path(out)


# --- steering ------------------------------------------------------------------------------------------------
def steering(loaded: Loaded, source: D.Source, names: Sequence[str], label_sets: Sequence[Mapping[str, str]], *,
             horizon: int = 60, stride: int = 10, guidance: float = 0.0,
             cache_dir: str | os.PathLike | None = None) -> dict[str, dict[str, float]]:
    """How far labels steer the rollouts from the same contexts: for each label set (``{"content": "run"}``),
    the rollouts of ``horizon`` frames from every window of ``names`` (first predicted frames ``stride`` apart).

    Returns ``{"content=run": {"speed": m/s, "forward": m/s, "ratio": speed / speed of the first set,
    "windows": N}}``: speed is the mean horizontal root speed over the rolled-out frames, forward the mean root
    velocity along the direction the context moved in at its last frame (in the heading frame, so turning does
    not count; negative: the body moves backwards). The first label set is the reference of ``ratio``.
    """
    if not label_sets:
        raise OptiqError("steering needs at least one label set, e.g. content=walk")
    vocab = loaded.model.vocab
    for labels in label_sets:
        vocab.encode(labels, strict=True)  # an unknown value fails before any work
    store = D.build_store(source, loaded.spec, cache_dir=cache_dir)
    ctx_len = max(2, int(loaded.model.context))
    win = make_windows(store, names, ctx_len, horizon, stride)
    sl = loaded.layout.slices["root_velocity"]
    v0 = win.context[:, -1, sl][:, :2]
    direction = v0 / np.maximum(np.linalg.norm(v0, axis=1, keepdims=True), 1e-6)  # [N, 2]
    out: dict[str, dict[str, float]] = {}
    first = None
    for labels in label_sets:
        cond = window_cond(vocab, store, win, ctx_len, horizon, [labels] * len(win.clips))
        v = rollout_raw(loaded, win.context, horizon, cond, guidance)[..., sl][..., :2]  # [N, H, 2] m/s
        speed = float(np.linalg.norm(v, axis=-1).mean())
        first = speed if first is None else first
        key = ",".join(f"{k}={val}" for k, val in labels.items()) or "unconditioned"
        out[key] = {"speed": round(speed, 4), "forward": round(float(np.einsum("nhc,nc->nh", v, direction).mean()), 4),
                    "ratio": round(speed / max(first, 1e-9), 4), "windows": int(len(win.clip))}
    return out


# --- continuous rollouts -------------------------------------------------------------------------------------
def clip_rollout(loaded: Loaded, source: D.Source, name: str, *, context: int | None = None,
                 frames: int | None = None, labels: Mapping[str, str] | None = None, guidance: float = 0.0,
                 strict_labels: bool = False):
    """One continuous rollout as a Clip: the first ``context`` frames of clip ``name`` (ground truth), then the
    model's own frames up to ``frames`` in all (default: the clip's length), placed where the clip starts
    (position and heading of its first frame). labels: the clip's own by default."""
    from optiq.features import defeaturize, featurize

    clip = source.read_clip(name)
    ctx_len = int(context or loaded.model.context)
    total = clip.num_frames if frames is None else ctx_len + int(frames)
    if clip.num_frames < ctx_len:
        raise OptiqError(f"clip {name!r} has {clip.num_frames} frames, fewer than the {ctx_len} frames of "
                         "context the model reads", source.path)
    feats = featurize(clip, loaded.spec)[:ctx_len]
    vocab = loaded.model.vocab
    want = dict(source.labels[name]) if labels is None else dict(labels)
    if strict_labels:
        enc = vocab.encode(want, strict=True)
    else:
        enc = vocab.encode({k: v for k, v in want.items() if v in vocab.labels.get(k, ())})
    cond = {k: np.array([v], dtype=np.int64) for k, v in enc.items() if k not in vocab.frame}
    cond.update({k: v[None] for k, v in continued_frame_labels(vocab, clip, ctx_len, total).items()})
    cond = cond or None
    pred = rollout_raw(loaded, feats[None], total - ctx_len, cond, guidance)[0] if total > ctx_len else \
        np.zeros((0, feats.shape[1]), np.float32)
    seq = np.concatenate([feats, pred])
    start_position, start_yaw = _start_pose(clip, loaded)
    out = defeaturize(seq, clip.skeleton, loaded.spec, clip.fps, start_position=start_position,
                      start_yaw=start_yaw)
    return out.replace(name=name, labels={**clip.labels, **want})


def continued_frame_labels(vocab: Any, clip: Any, context: int, total: int) -> dict[str, np.ndarray]:
    """The model's frame labels for a free rollout of ``total`` frames from the first ``context`` frames of
    ``clip``: the context's own, then carried on without looking at the clip's future. A cyclic float label
    (gait phase) advances at the median rate of the context and wraps to [0, 1); other float labels and
    categorical ones hold their last context value. name -> ``[total]`` (int64 indices or float32)."""
    out = {}
    for name in vocab.frame:
        raw = clip.frame_labels.get(name)
        if name in vocab.floats:
            v = np.full(total, np.nan, np.float32)
            if raw is not None and np.asarray(raw).dtype.kind == "f":
                known = np.asarray(raw, np.float64)[:context]
                v[:context] = known
                rate = float(np.median(np.mod(np.diff(known), 1.0))) if len(known) > 1 and \
                    vocab.floats[name].get("cyclic") else 0.0
                steps = np.arange(1, total - context + 1)
                ahead = known[-1] + rate * steps
                v[context:] = np.mod(ahead, 1.0) if vocab.floats[name].get("cyclic") else ahead
            out[name] = v
            continue
        index = np.zeros(total, np.int64)
        if raw is not None:
            known = vocab._index.get(name, {})
            index[:context] = [known.get(str(x), 0) for x in np.asarray(raw)[:context]]
            index[context:] = index[context - 1]
        out[name] = index
    return out


def _start_pose(clip: Any, loaded: Loaded) -> tuple[np.ndarray | None, float]:
    """Where ``clip`` starts: ``optiq.features.start_pose`` when the features module offers it."""
    from optiq import features

    if hasattr(features, "start_pose"):
        return features.start_pose(clip, loaded.spec)
    return None, 0.0


def write_predictions(loaded: Loaded, source: D.Source, names: Sequence[str], out: str | os.PathLike, *,
                      cache_dir: str | os.PathLike | None = None) -> Path:
    """``--pred``: one continuous rollout per clip of ``names`` from its first ``context`` frames to its end (the
    clip's frame count, skeleton and start pose), written as a dataset (``.parquet``, ``.h5``) or, for one clip,
    any writable motion file. The clips roll out together, as one batch, each cut at its own length."""
    from optiq.features import defeaturize

    ctx = int(loaded.model.context)
    names = [n for n in names if source.num_frames(n) > ctx]
    if not names:
        raise OptiqError(f"no clip is longer than the model's context ({ctx} frames) to roll out", out)
    store = D.build_store(source, loaded.spec, cache_dir=cache_dir)
    feats = [np.asarray(store.clip(n)) for n in names]
    vocab, longest = loaded.model.vocab, max(len(f) for f in feats)
    cond = {k: v for k, v in D.encode_labels(vocab, [source.labels[n] for n in names]).items()
            if k not in vocab.frame}
    frame = D.encode_frame_labels(vocab, store)
    if frame:  # each clip's own frame labels; rows past a clip's end are cut from its rollout anyway
        first = np.array([store.offsets[store.index[n]] for n in names])
        rows = np.minimum(first[:, None] + np.arange(longest)[None], int(store.offsets[-1]) - 1)
        cond.update({k: v[rows] for k, v in frame.items()})
    pred = rollout_raw(loaded, np.stack([f[:ctx] for f in feats]), longest - ctx, cond or None)
    clips = []
    for i, (name, f) in enumerate(zip(names, feats, strict=True)):
        clip = source.read_clip(name)
        position, yaw = _start_pose(clip, loaded)
        seq = np.concatenate([f[:ctx], pred[i, :len(f) - ctx]])
        rolled = defeaturize(seq, clip.skeleton, loaded.spec, clip.fps, start_position=position, start_yaw=yaw)
        clips.append(rolled.replace(name=name, labels=dict(clip.labels)))
    return write_clips(clips, out)


def write_clips(clips: Sequence[Any], out: str | os.PathLike) -> Path:
    """Write ``clips`` as a dataset (``.parquet``, ``.h5``) or, for one clip, any writable motion file (``.bvh``,
    ``.json``, ``.fbx`` with optiq-fbx), atomically."""
    from optiq import save_clip, write_dataset

    if str(out).lower().endswith(D.DATASET_SUFFIXES):
        return write_dataset(out, clips)
    if len(clips) > 1:
        raise OptiqError(f"{len(clips)} clips to write: the output must be a dataset (.parquet, .h5)", out)
    return save_clip(clips[0], out)


# --- tokenizers: reconstruction ------------------------------------------------------------------------------
MEAN_POSE = "mean-pose"
KINDS = ("next_state", "tokenizer")


def reconstruction_errors(recon: np.ndarray, truth: np.ndarray, layout: Any, fps: float) -> dict[str, Any]:
    """Sums over the frames of one clip (raw features ``recon``, ``truth`` ``[T, F]``) from which the report's means
    come: ``joints`` ``[J]`` summed joint errors (mm, root-relative: :func:`joint_errors`), ``root`` summed
    horizontal root position error (m, :func:`root_paths` from the clip's first frame), ``vel`` / ``acc`` summed
    mean-over-joints error of the root-relative joint velocity (m/s: frame-to-frame differences x fps) and
    acceleration (m/s^2: second differences x fps^2; the jitter measure of VIBE's "accel error"), ``truth_acc``
    the truth's own mean acceleration magnitude (the scale to read ``acc`` against), and their frame counts."""
    sl = layout.slices["positions"]
    p, t = (a[:, sl].reshape(len(a), -1, 3).astype(np.float64) for a in (recon, truth))
    dv = np.diff(p, axis=0) - np.diff(t, axis=0)
    da = np.diff(p, 2, axis=0) - np.diff(t, 2, axis=0)
    rates = np.array([fps])
    root = np.linalg.norm(root_paths(recon[None], layout, rates) - root_paths(truth[None], layout, rates), axis=-1)
    return {"frames": len(t), "joints": joint_errors(recon, truth, layout).sum(0), "root": float(root.sum()),
            "vel": float(np.linalg.norm(dv, axis=-1).mean(1).sum() * fps), "vel_n": len(dv),
            "acc": float(np.linalg.norm(da, axis=-1).mean(1).sum() * fps ** 2), "acc_n": len(da),
            "truth_acc": float(np.linalg.norm(np.diff(t, 2, axis=0), axis=-1).mean(1).sum() * fps ** 2)}


def _reconstruction_means(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Frame-weighted means over the clips of ``rows`` (:func:`reconstruction_errors`, plus ``baseline``: the
    mean-pose joint sums)."""
    frames = sum(r["frames"] for r in rows)
    acc_n = max(sum(r["acc_n"] for r in rows), 1)
    return {"mpjpe_mm": round(float(sum(r["joints"].mean() for r in rows) / frames), 3),
            "root_error_m": round(sum(r["root"] for r in rows) / frames, 4),
            "velocity_error_m_s": round(sum(r["vel"] for r in rows) / max(sum(r["vel_n"] for r in rows), 1), 4),
            "acceleration_error_m_s2": round(sum(r["acc"] for r in rows) / acc_n, 3),
            "truth_acceleration_m_s2": round(sum(r["truth_acc"] for r in rows) / acc_n, 3),
            MEAN_POSE + "_mpjpe_mm": round(float(sum(r["baseline"].mean() for r in rows) / frames), 3)}


def reconstruction_report(loaded: Loaded, source: D.Source, *, split: str = "test",
                          cache_dir: str | os.PathLike | None = None,
                          model_path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The report of a tokenizer on ``source``'s ``split``: every clip encoded into tokens and decoded back whole
    (``tokens.reconstruct``), its reconstruction against the truth (:func:`reconstruction_errors`), against a
    mean-pose baseline (every frame the training split's mean feature row), codebook usage and perplexity of the
    split's tokens, the same per label value and per joint (a ``per_joint`` section ``optiq viz plots`` draws)."""
    from .tokens import check_length, reconstruct, token_stats

    model_path = model_path or loaded.checkpoint.path or "model"
    check_skeleton(source, loaded, model_path)
    names = clips_of(source, loaded, split)
    for name in names:
        check_length(loaded, name, source.num_frames(name), source.path)
    store = D.build_store(source, loaded.spec, cache_dir=cache_dir)
    mean = np.asarray(loaded.normalizer.mean, dtype=np.float32)[None]
    rows, ids = [], []
    for name in names:
        truth = np.asarray(store.clip(name), dtype=np.float32)
        recon, code = reconstruct(loaded, truth)
        ids.append(code)
        row = reconstruction_errors(recon, truth, loaded.layout, store.fps[store.index[name]])
        row["baseline"] = joint_errors(np.repeat(mean, len(truth), 0), truth, loaded.layout).sum(0)
        rows.append(row)
    frames = sum(r["frames"] for r in rows)
    m = loaded.model
    labels = [store.labels[store.index[n]] for n in names]
    report: dict[str, Any] = {
        "version": REPORT_VERSION, "kind": "tokenizer",
        "title": f"{loaded.name} on {split} clips of {source.path.name}: reconstruction error per joint",
        "reconstruction": _reconstruction_means(rows),
        "codebook": {"size": int(m.codebook_size), "num_quantizers": int(m.num_quantizers),
                     "downsample": int(m.downsample), "tokens": int(sum(len(i) for i in ids)),
                     **token_stats(ids, int(m.codebook_size))},
        "per_label": {k: {"clips": len(v), "frames": int(sum(rows[i]["frames"] for i in v)),
                          **_reconstruction_means([rows[i] for i in v])}
                      for k, v in label_categories(labels).items()},
        "per_clip": {n: round(float(r["joints"].mean() / r["frames"]), 3) for n, r in zip(names, rows, strict=True)},
        "model": os.fspath(model_path), "data": str(source.path), "split": split, "clips": len(names),
        "frames": int(frames), "fps": sorted({float(store.fps[store.index[n]]) for n in names}),
    }
    joints = _joint_names(loaded)
    report["per_joint"] = {"joints": joints, "metric": "reconstruction MPJPE root-relative (mm)",
                           "series": {loaded.name: _series(sum(r["joints"] for r in rows) / frames),
                                      MEAN_POSE: _series(sum(r["baseline"] for r in rows) / frames)}, "std": {}}
    return report


def write_reconstructions(loaded: Loaded, source: D.Source, names: Sequence[str], out: str | os.PathLike, *,
                          cache_dir: str | os.PathLike | None = None) -> Path:
    """``--pred`` of a tokenizer: each clip of ``names`` encoded and decoded whole, placed where the clip starts,
    with its frame count, skeleton and labels, written by :func:`write_clips`."""
    from optiq.features import defeaturize

    from .tokens import reconstruct

    store = D.build_store(source, loaded.spec, cache_dir=cache_dir)
    clips = []
    for name in names:
        clip = source.read_clip(name)
        recon, _ = reconstruct(loaded, np.asarray(store.clip(name), dtype=np.float32))
        position, yaw = _start_pose(clip, loaded)
        out_clip = defeaturize(recon, clip.skeleton, loaded.spec, clip.fps, start_position=position, start_yaw=yaw)
        clips.append(out_clip.replace(name=name, labels=dict(clip.labels)))
    return write_clips(clips, out)


def run(model: str | os.PathLike, data: Any, *, split: str = "test", horizon: int = 60, stride: int = 10,
        out: str | os.PathLike | None = None, pred: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None, device: str = "cpu",
        steer: Sequence[Mapping[str, str]] = (), steer_from: Mapping[str, str] | None = None,
        guidance: float = 0.0) -> dict[str, Any]:
    """``optiq eval model``: evaluate, write the report (``out``) and the continuous rollouts (``pred``; for a
    tokenizer, its reconstructions: :func:`reconstruction_report`, :func:`write_reconstructions`).
    steer: label sets for a ``steering`` section (:func:`steering` over the split's clips, or those of them
    whose labels include ``steer_from``), with ``guidance``."""
    for path in (out, pred):
        if path is not None:
            check_output_path(path)
    loaded = load_model(model, device, KINDS)
    tokenizer = getattr(loaded.model, "kind", "next_state") == "tokenizer"
    if tokenizer and (steer or steer_from):
        raise OptiqError("--steer: a tokenizer reconstructs the clips it reads, there is no rollout to steer", model)
    for labels in steer:
        loaded.model.vocab.encode(labels, strict=True)  # a typo fails before the work
    source = D.open_source(data, cache_dir=cache_dir)
    try:
        report = evaluate(loaded, source, split=split, horizon=horizon, stride=stride, cache_dir=cache_dir,
                          model_path=model)
        if steer:
            names = clips_of(source, loaded, split)
            if steer_from:
                names = [n for n in names if all(source.labels[n].get(k) == v for k, v in steer_from.items())]
                if not names:
                    raise OptiqError(f"no clip of the {split} split has the labels {dict(steer_from)} to steer from",
                                     source.path)
            report["steering"] = {"from": dict(steer_from or {}), "guidance": guidance, "horizon": horizon,
                                  "rollouts": steering(loaded, source, names, list(steer), horizon=horizon,
                                                       stride=stride, guidance=guidance, cache_dir=cache_dir)}
        if out is not None:
            write_report(report, out)
        if pred is not None:
            write = write_reconstructions if tokenizer else write_predictions
            write(loaded, source, clips_of(source, loaded, split), pred, cache_dir=cache_dir)
    finally:
        source.close()
    return report
