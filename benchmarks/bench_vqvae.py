"""The motion VQ-VAE's speed: training throughput of optiq's loop against a bare torch loop, and how fast clips
become tokens and tokens become motion (issue 10).

Data and method as in bench_models.py (whose conversion and optiq-side timing this reuses): Bandai-Namco takes
from OPTIQ_TEST_DATA, torch on 2 threads.

- **Training** (``vqvae`` with its shipped config: 64-frame windows, batch 64, about 0.4 M parameters; no
  evaluation): ``optiq_models.train.train`` (WindowSampler over the feature store, the tokenizer loss, AdamW,
  cosine schedule, clipping, logging) against a bare loop over batches sampled beforehand into tensors, with the
  same model, batch, window, loss (smooth L1 + frame-to-frame velocity + commitment), optimizer and clipping.
  Interleaved rounds; the ratio (goal >= 0.9) is the median of the per-round ratios of the median step times.
- **Tokens**: ``tokens.encode_clips`` over every clip of the data, then ``tokens.decode_tokens`` of the table
  (decoding and defeaturizing onto the skeleton), with the model the training rounds wrote: frames per second,
  ratio to real time.

Run: ``python benchmarks/bench_vqvae.py [--quick]`` or ``python benchmarks/run.py --only vqvae [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bench_models
from bench_models import THREADS, _convert
from common import print_rows


def _bare_setup(cfg, dataset: Path, cache: Path, steps: int):
    """bench_models' bare loop with the tokenizer's loss (smooth L1 + frame-to-frame velocity + commitment) on
    windows of ``window`` frames (input = target)."""
    from optiq_models.train import _tokenizer_loss

    def loss(model, x, w):
        return _tokenizer_loss(model, x, x, w, cfg.recon_vel_weight)[0]

    return bench_models._bare_setup(cfg, dataset, cache, steps, loss=loss, length=cfg.window)


def training_rows(dataset: Path, tmp: Path, cache: Path, rounds: int, steps: int) -> list[dict]:
    """bench_models' rows of optiq's loop against the bare one, with the tokenizer's bare loop."""
    return bench_models.training_rows("vqvae", dataset, tmp, cache, rounds, steps, bare_setup=_bare_setup, skip=3)


def token_rows(dataset: Path, model: Path, cache: Path, rounds: int) -> list[dict]:
    from optiq_models import data as D
    from optiq_models.tokens import decode_tokens, encode_clips, load_tokenizer

    loaded = load_tokenizer(model)
    source = D.open_source(dataset)
    frames = sum(source.num_frames(n) for n in source.names)
    seconds = sum(source.num_frames(n) / source.fps(n) for n in source.names)
    encode_clips(loaded, source, cache_dir=cache)  # warm-up: builds the feature cache
    enc, dec = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        table = encode_clips(loaded, source, cache_dir=cache)
        t1 = time.perf_counter()
        decode_tokens(loaded, table)
        enc.append(t1 - t0)
        dec.append(time.perf_counter() - t1)
    source.close()
    rows = []
    for what, ts in (("encode", enc), ("decode", dec)):
        t = statistics.median(ts)
        rows.append({"name": f"tokens {what}: {len(source.names)} clips, {frames:,} frames", "value": round(frames / t),
                     "unit": "frames/s", "ratio": round(seconds / t, 1),
                     "vs": f"real time: the clips last {seconds:.0f} s"})
    return rows


def run(quick: bool = False) -> list[dict]:
    """Rows ``{name, value, unit, ratio, vs}``: training frames/s (ratio to the bare loop, goal >= 0.9), data wait
    per step (%), tokens encode / decode frames/s (ratio to real time)."""
    import torch

    torch.set_num_threads(THREADS)
    rounds, steps = (3, 15) if quick else (5, 30)
    with tempfile.TemporaryDirectory(prefix="optiq-bench-vqvae-") as name:
        tmp = Path(name)
        cache = tmp / "cache"
        dataset = _convert(tmp, quick)
        rows = training_rows(dataset, tmp, cache, rounds, steps)
        rows += token_rows(dataset, tmp / "vqvae.pt", cache, 1 if quick else 3)  # the training rounds wrote it
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the takes, shorter rounds")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    rows = run(quick=args.quick)
    print_rows(f"optiq-models VQ-VAE speed ({'quick' if args.quick else 'median of rounds'}, {THREADS} torch "
               f"threads, {os.cpu_count()} cores)", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
