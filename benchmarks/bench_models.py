"""optiq-models speed: training throughput against a bare torch loop, rollout speed, evaluation time, and the
peak memory of streaming training against loading the features whole (issue 8, section 7).

Data: Bandai-Namco takes from OPTIQ_TEST_DATA (``corpora/bandai_namco/data``), converted with ``optiq data
convert`` into a temporary folder (a subset in --quick). Torch runs on 2 threads (``torch.set_num_threads(2)``,
the cores of the reference machine).

- **Training** (``mlp``, and ``transformer`` without --quick, each with its shipped config; no rollout batches,
  no evaluation, so both sides compute the same plain next-frame loss): ``optiq_models.train.train`` (its
  WindowSampler over the feature store, AdamW, cosine schedule, clipping, logging) against a bare loop over
  batches sampled beforehand into tensors, with the same model, batch, window, loss weights, optimizer and clipping.
  The two are interleaved in rounds (optiq's run, then the bare loop); the step time of each is the median over
  its steps after a warm-up, and the ratio (goal >= 0.9) is the median of the per-round ratios. The data wait is the
  time inside ``WindowSampler.sample`` (reading, normalising, stacking windows) over the whole step (goal < 10%).
- **Rollout** of each model (defaults, untrained weights, one sequence on CPU): frames per second, ratio to the
  data's frame rate (real time).
- **Evaluation** (``optiq_models.evaluate.evaluate``) of the trained mlp on its held-out test side (60-frame
  horizon, stride 10, with the baselines): seconds, ratio the duration of the held-out clips over it.
- **Peak memory** (VmHWM of a fresh process): the features of the subset tiled into a large float32 file,
  then the same mlp training steps through the streaming FeatureStore (``os.pread`` per window) against the same
  steps on the features read whole into memory. Smaller than the full-corpus-tiled-70x measurement of
  docs/models.md (256 MiB in --quick, 1 GiB otherwise), to keep the run short.

Run: ``python benchmarks/bench_models.py [--quick]`` or ``python benchmarks/run.py --only models [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import data_root, print_rows

CORPUS = "corpora/bandai_namco/data"
THREADS = 2


def _convert(tmp: Path, quick: bool) -> Path:
    """A Parquet dataset of Bandai-Namco takes (every 4th take in quick mode, all of them otherwise)."""
    folder = data_root() / CORPUS
    files = sorted(folder.glob("*.bvh"))
    if not files:
        raise SystemExit(f"bench_models: no BVH under {folder}; set OPTIQ_TEST_DATA")
    if quick:
        files = files[::4]
    out = tmp / "bandai.parquet"
    optiq = Path(sys.executable).with_name("optiq")
    cmd = [str(optiq)] if optiq.exists() else [sys.executable, "-m", "optiq"]
    subprocess.run([*cmd, "data", "convert", "--in", *map(str, files), "--out", str(out)], check=True,
                   capture_output=True)
    return out


class _DataClock:
    """Accumulates the time spent in ``WindowSampler.sample`` (patched in while measuring)."""

    def __init__(self):
        from optiq_models import data as D

        self.D, self.total, self.original = D, 0.0, D.WindowSampler.sample

    def __enter__(self):
        original, clock = self.original, self

        def timed(sampler, *args, **kwargs):
            start = time.perf_counter()
            try:
                return original(sampler, *args, **kwargs)
            finally:
                clock.total += time.perf_counter() - start

        self.D.WindowSampler.sample = timed
        return self

    def __exit__(self, *exc):
        self.D.WindowSampler.sample = self.original


def _optiq_round(cfg, dataset: Path, tmp: Path, cache: Path, steps: int, skip: int) -> tuple[float, float]:
    """(median step seconds, data-wait fraction) of ``steps`` steps of optiq's train(), after ``skip`` warm-up."""
    from optiq_models.train import train

    stamps: list[tuple[float, float]] = []
    with _DataClock() as clock:
        def callback(step, metrics):
            stamps.append((time.perf_counter(), clock.total))

        train(cfg.updated({"max_steps": steps}), dataset, tmp / f"{cfg.arch}.pt", cache_dir=cache, progress=False,
              callback=callback)
    t = np.array(stamps[skip:-1])  # the last step also evaluates and saves the model
    dts = np.diff(t[:, 0])
    return float(np.median(dts)), float(np.diff(t[:, 1]).sum() / dts.sum())


def _bare_setup(cfg, dataset: Path, cache: Path, steps: int, loss=None, length: int | None = None):
    """The same model, batch, loss, optimizer and clipping as optiq's run, over ``steps`` batches drawn beforehand
    into tensors. Returns a function that runs them and returns the per-step seconds. loss: ``loss(model, x
    [B, length, F], weights [F]) -> scalar`` (default: the next-state loss on windows of ``window + 1`` frames);
    length: frames per batch window (default ``window + 1``)."""
    import torch
    from optiq.features import FeatureSpec, Normalizer, feature_layout, resolve_spec
    from optiq_models import data as D
    from optiq_models.nets import build_model
    from optiq_models.train import _loss_weights, _optimizer, _weighted_mse

    if loss is None:
        def loss(model, x, w):
            return _weighted_mse(model(x[:, :cfg.window], {}), x[:, 1:], w)
    source = D.open_source(dataset)
    spec = resolve_spec(source.read_clip(source.names[0]), FeatureSpec(rotation=cfg.rotation, root=cfg.root))
    split = D.make_split(source.names, source.labels, by=cfg.split_by, test_ratio=cfg.test_ratio,
                         val_ratio=cfg.val_ratio, seed=cfg.seed)
    store = D.build_store(source, spec, cache_dir=cache)
    normalizer = Normalizer.fit(store.iter_clips(split.train), min_std=cfg.norm_min_std)
    weights = _loss_weights(cfg, feature_layout(source.skeleton, spec), store, split.train, normalizer)
    vocab = D.build_vocab([], [])
    sampler = D.WindowSampler(store, split.train, cfg.window + 1 if length is None else length, normalizer, vocab,
                              np.random.default_rng(0))
    batches = [torch.from_numpy(sampler.sample(cfg.batch_size)[0]) for _ in range(steps)]
    source.close()

    def run() -> list[float]:
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.arch, store.dim, vocab, dict(cfg.model))
        optimizer = _optimizer(model, cfg)
        model.train()
        times = []
        for x in batches:
            t0 = time.perf_counter()
            value = loss(model, x, weights)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            times.append(time.perf_counter() - t0)
        return times

    return run


def training_rows(arch: str, dataset: Path, tmp: Path, cache: Path, rounds: int, steps: int, *,
                  bare_setup=None, skip: int = 5) -> list[dict]:
    """Rows of optiq's training loop against a bare torch loop for ``arch`` (its shipped config): interleaved
    rounds, the first ``skip`` steps of each left out. bare_setup: the bare loop's builder (default: the
    next-state one of this file; bench_vqvae passes the tokenizer's)."""
    from optiq_models.train import load_config

    cfg = load_config(arch, {"rollout_fraction": 0.0, "eval_interval": 10**6, "ckpt_interval": 10**6,
                             "patience": 0, "warmup_steps": 10})
    bare = (bare_setup or _bare_setup)(cfg, dataset, cache, steps)
    optiq_t, bare_t, waits, ratios = [], [], [], []
    for _ in range(rounds):
        o, wait = _optiq_round(cfg, dataset, tmp, cache, steps, skip)
        b = float(np.median(bare()[skip:]))
        optiq_t.append(o)
        bare_t.append(b)
        waits.append(wait)
        ratios.append(b / o)
    frames = cfg.batch_size * cfg.window
    o, b = statistics.median(optiq_t), statistics.median(bare_t)
    vs = f"bare torch loop, {frames / b:,.0f} frames/s"
    what = f"{arch} (batch {cfg.batch_size} x {cfg.window} frames)"
    return [
        {"name": f"train {what}: bare loop", "value": round(frames / b), "unit": "frames/s", "ratio": 1.0, "vs": vs},
        {"name": f"train {what}: optiq train()", "value": round(frames / o), "unit": "frames/s",
         "ratio": round(statistics.median(ratios), 3), "vs": vs + " (goal >= 0.9)"},
        {"name": f"train {what}: data wait / step", "value": round(100 * statistics.median(waits), 2), "unit": "%",
         "vs": "goal < 10% of the step"},
    ]


def rollout_rows(dataset: Path, cache: Path, rounds: int, steps: int) -> tuple[list[dict], float]:
    import torch
    from optiq.features import FeatureSpec, resolve_spec
    from optiq_models import data as D
    from optiq_models.nets import build_model

    source = D.open_source(dataset)
    spec = resolve_spec(source.read_clip(source.names[0]), FeatureSpec())
    store = D.build_store(source, spec, cache_dir=cache)
    fps = float(statistics.median(store.fps))
    vocab = D.build_vocab([], [])
    models = {}
    for arch in ("mlp", "transformer", "unet"):
        torch.manual_seed(0)
        m = build_model(arch, store.dim, vocab, {}).eval()
        ctx = torch.from_numpy(np.asarray(store.rows(0, int(m.context)))[None].copy()) * 0.0
        models[arch] = (m, ctx)
    source.close()
    times: dict[str, list[float]] = {a: [] for a in models}
    for r in range(rounds + 1):  # interleaved, the first round a warm-up
        for arch, (m, ctx) in models.items():
            t0 = time.perf_counter()
            m.rollout(ctx, steps, {})
            if r:
                times[arch].append(time.perf_counter() - t0)
    rows = []
    for arch, ts in times.items():
        rate = steps / statistics.median(ts)
        rows.append({"name": f"rollout {arch} (1 sequence, {steps} frames, CPU)", "value": round(rate),
                     "unit": "frames/s", "ratio": round(rate / fps, 1), "vs": f"real time, {fps:g} fps"})
    return rows, fps


def evaluation_rows(dataset: Path, tmp: Path, cache: Path, rounds: int) -> list[dict]:
    from optiq_models import data as D
    from optiq_models.evaluate import clips_of, evaluate, load_model

    loaded = load_model(tmp / "mlp.pt")  # written by the training rounds
    source = D.open_source(dataset)
    names = clips_of(source, loaded, "test")
    seconds_of_motion = sum(source.num_frames(n) / source.fps(n) for n in names)
    times = []
    for r in range(rounds + 1):
        t0 = time.perf_counter()
        report = evaluate(loaded, source, split="test", horizon=60, stride=10, cache_dir=cache)
        if r:
            times.append(time.perf_counter() - t0)
    source.close()
    t = statistics.median(times)
    return [{"name": f"evaluate mlp: {len(names)} held-out clips, {report['windows']} windows x 60",
             "value": round(t, 3), "unit": "s", "ratio": round(seconds_of_motion / t, 1),
             "vs": f"speed-up over real time: the held-out clips last {seconds_of_motion:.0f} s"}]


# --- peak memory, in fresh processes -------------------------------------------------------------------------
def _memory_child(args: list[str]) -> None:
    """``--memory-child MODE FILE DIM STEPS NORM_JSON``: mlp training steps on windows of FILE, streamed
    (``stream``) or read whole (``whole``); prints the peak RSS in MiB."""
    mode, path, dim, steps, norm = args[0], Path(args[1]), int(args[2]), int(args[3]), args[4]
    import torch

    torch.set_num_threads(THREADS)
    from optiq.features import Normalizer
    from optiq_models import data as D
    from optiq_models.nets import build_model
    from optiq_models.train import _optimizer, load_config

    n = path.stat().st_size // (4 * dim)
    clip_len = 1000
    offsets = np.arange(0, n + 1, clip_len, dtype=np.int64)
    names = [f"c{i}" for i in range(len(offsets) - 1)]
    if mode == "stream":
        features, file = np.memmap(path, dtype=np.float32, mode="r", shape=(n, dim)), path
    else:
        features, file = np.fromfile(path, dtype=np.float32).reshape(n, dim), None
    store = D.FeatureStore(features, names, offsets, [30.0] * len(names), [{}] * len(names), file)
    normalizer = Normalizer.from_json(json.loads(Path(norm).read_text()))
    cfg = load_config("mlp")
    vocab = D.build_vocab([], [])
    sampler = D.WindowSampler(store, names, cfg.window + 1, normalizer, vocab, np.random.default_rng(0))
    model = build_model("mlp", dim, vocab, dict(cfg.model))
    optimizer = _optimizer(model, cfg)
    for _ in range(steps):
        x = torch.from_numpy(sampler.sample(cfg.batch_size)[0])
        loss = (model(x[:, :-1], {}) - x[:, 1:]).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork + exec, so it would report the parent's peak.
    status = Path("/proc/self/status")
    if status.exists():
        print(int(status.read_text().split("VmHWM:")[1].split()[0]) / 1024)
    else:
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 2**20))


def memory_rows(dataset: Path, tmp: Path, cache: Path, mib: int, steps: int) -> list[dict]:
    from optiq.features import FeatureSpec, Normalizer, resolve_spec
    from optiq_models import data as D

    source = D.open_source(dataset)
    store = D.build_store(source, resolve_spec(source.read_clip(source.names[0]), FeatureSpec()), cache_dir=cache)
    source.close()
    norm = tmp / "norm.json"
    normalizer = Normalizer.fit(store.iter_clips(store.names))
    norm.write_text(json.dumps(normalizer.to_json()))
    block = np.ascontiguousarray(store.features).tobytes()
    big = tmp / "tiled.f32"
    with open(big, "wb") as fh:
        for _ in range(max(1, (mib << 20) // len(block))):
            fh.write(block)
    frames = big.stat().st_size // (4 * store.dim)
    peak = {}
    for mode in ("whole", "stream"):
        out = subprocess.run([sys.executable, __file__, "--memory-child", mode, str(big), str(store.dim), str(steps),
                              str(norm)], check=True, capture_output=True, text=True)
        peak[mode] = float(out.stdout.split()[-1])
    big.unlink()
    size = frames * store.dim * 4 / 2**20
    vs = f"features read whole, {peak['whole']:,.0f} MiB"
    return [
        {"name": f"peak RSS, mlp {steps} steps, features read whole ({size:,.0f} MiB)", "value": round(peak["whole"]),
         "unit": "MiB", "ratio": 1.0, "vs": vs},
        {"name": f"peak RSS, same, streamed ({frames:,} frames)", "value": round(peak["stream"]), "unit": "MiB",
         "ratio": round(peak["stream"] / peak["whole"], 3), "vs": vs},
    ]


def run(quick: bool = False) -> list[dict]:
    """Rows ``{name, value, unit, ratio, vs}``: training frames/s (ratio to the bare loop, goal >= 0.9), the data
    wait per step (%, goal < 10), rollout frames/s (ratio to real time), evaluation seconds (ratio: the duration of
    the held-out clips over it), peak RSS (ratio streamed / whole)."""
    import torch

    torch.set_num_threads(THREADS)
    rounds, steps = (5, 40) if quick else (5, 60)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="optiq-bench-models-") as name:
        tmp = Path(name)
        cache = tmp / "cache"
        dataset = _convert(tmp, quick)
        for arch in ("mlp",) if quick else ("mlp", "transformer"):
            rows += training_rows(arch, dataset, tmp, cache, rounds, steps)
        rollout, _ = rollout_rows(dataset, cache, rounds, 60 if quick else 240)
        rows += rollout
        rows += evaluation_rows(dataset, tmp, cache, 1 if quick else 3)
        rows += memory_rows(dataset, tmp, cache, 256 if quick else 1024, 50 if quick else 200)
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--memory-child"]:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        _memory_child(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the takes, mlp only, shorter rounds (about a minute)")
    args = parser.parse_args(argv)
    rows = run(quick=args.quick)
    print_rows(f"optiq-models speed ({'quick' if args.quick else 'median of rounds'}, {THREADS} torch threads, "
               f"{os.cpu_count()} cores)", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
