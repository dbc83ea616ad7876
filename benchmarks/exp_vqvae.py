"""The VQ-VAE experiment of issue 10: a single-codebook ``vqvae`` and a residual one (several codebooks with
quantize-dropout, as in MoMask), trained on real corpora under a wall-clock budget and judged on held-out takes:
reconstruction MPJPE (mm, root-relative), global root error, velocity and acceleration error against the truth
(the jitter measure), codebook usage on the training split and perplexity on the held-out one. Writes its table
and the exact command into ``docs/results.md`` (between markers) and every number into a JSON file.

    OPTIQ_TEST_DATA=/work/shared/data .venv/bin/python benchmarks/exp_vqvae.py \
        [--minutes 25] [--variants vqvae,residual] [--corpora bandai,deepmimic] [--parallel 2]

Corpora, their conversion and their held-out takes are those of ``exp_models.py`` (imported, not copied):
``bandai`` holds out 15% of the takes of every content (mirrors with their originals), ``deepmimic`` the
minute-long ``long_walk3`` and its mirror. The issue's budget is one hour of CPU per corpus: the default of 25
minutes per run, two runs at a time on one thread each, spends 50.

Each run is ``optiq train model`` then ``optiq eval model`` (test split, with ``--pred``: the reconstructions for
``optiq viz video --layout side-by-side``; and train split, for usage) in subprocesses. Goals (issue 10):
MPJPE under 40 mm (residual: under 30), usage above 80% on the training split. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from common import finish_experiment, write_section
from exp_models import CORPORA, OPTIQ, ROOT, convert

START, END = "<!-- exp_vqvae:start -->", "<!-- exp_vqvae:end -->"
VARIANTS = {
    "vqvae": ["--config", "vqvae"],
    "residual": ["--config", "vqvae", "--model.num_quantizers", "4", "--model.quantize_dropout", "0.2"],
}


def split_args(corpus: str) -> list[str]:
    """exp_models' training arguments of ``corpus`` without its label conditioning (a VQ-VAE reads no labels):
    the same held-out takes."""
    args, out = CORPORA[corpus]["train"], []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a == "--labels":
            skip = True
        else:
            out.append(a)
    return out


def one_run(corpus: str, variant: str, dataset: Path, work: Path, minutes: float, threads: int, seed: int) -> dict:
    """Train and evaluate one (corpus, variant): the training log line and the two reports' paths."""
    tag = f"{corpus}_{variant}"
    model = work / f"{tag}.pt"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPTIQ_CACHE": str(work / "cache")}
    train = [*OPTIQ, "-q", "train", "model", "--data", str(dataset), "--out", str(model), *VARIANTS[variant],
             *split_args(corpus), "--seed", str(seed), "--max-minutes", str(minutes), "--max-steps", "1000000"]
    t0 = time.time()
    log = subprocess.run(train, env=env, capture_output=True, text=True)
    if log.returncode:
        raise RuntimeError(f"{tag}: {log.stderr.strip()[-400:]}")
    reports = {}
    for split in ("test", "train"):
        reports[split] = work / f"{tag}_{split}.json"
        ev = [*OPTIQ, "-q", "eval", "model", "--model", str(model), "--data", str(dataset), "--split", split,
              "--out", str(reports[split])]
        if split == "test":
            ev += ["--pred", str(work / f"{tag}_recon.parquet")]
        subprocess.run(ev, env=env, check=True, capture_output=True)
    steps = re.search(r"(\d+) steps", log.stdout)
    return {"corpus": corpus, "variant": variant, "seed": seed, "model": str(model), "train_log": log.stdout.strip(),
            "steps": int(steps[1]) if steps else None, "seconds": round(time.time() - t0, 1),
            "reports": {k: str(v) for k, v in reports.items()}, "recon": str(work / f"{tag}_recon.parquet")}


def numbers(run: dict) -> dict:
    """The run's numbers from its reports: test-split reconstruction, train-split usage, test perplexity."""
    test = json.loads(Path(run["reports"]["test"]).read_text())
    train = json.loads(Path(run["reports"]["train"]).read_text())
    return {"test": test["reconstruction"], "clips": test["clips"], "frames": test["frames"],
            "usage_train": train["codebook"]["usage_percent"], "usage_test": test["codebook"]["usage_percent"],
            "perplexity_test": test["codebook"]["perplexity"], "codebook": test["codebook"]["size"],
            "per_label": {k: v["mpjpe_mm"] for k, v in test["per_label"].items()}}


def table(results: list[dict]) -> list[str]:
    lines = []
    for corpus in dict.fromkeys(r["corpus"] for r in results):
        rows = [r for r in results if r["corpus"] == corpus]
        n = rows[0]["numbers"]
        lines += [f"### {corpus}: reconstruction of the {n['clips']} held-out clips ({n['frames']:,} frames)", "",
                  "| model | steps | MPJPE (mm) | mean pose (mm) | root (m) | velocity (m/s) | acceleration (m/s²) "
                  "| usage, train (%) | perplexity, test |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            t, x = r["numbers"]["test"], r["numbers"]
            usage = "/".join(f"{u:.0f}" for u in x["usage_train"])
            ppl = "/".join(f"{p:.0f}" for p in x["perplexity_test"])
            lines.append(f"| {r['variant']} | {r['steps']} | {t['mpjpe_mm']:.1f} | {t['mean-pose_mpjpe_mm']:.1f} | "
                         f"{t['root_error_m']:.3f} | {t['velocity_error_m_s']:.3f} | "
                         f"{t['acceleration_error_m_s2']:.2f} (truth {t['truth_acceleration_m_s2']:.2f}) | {usage} | "
                         f"{ppl} of {x['codebook']} |")
        lines += ["", "MPJPE: root-relative joint positions, every frame of every held-out clip, each clip encoded "
                  "and decoded whole. Mean pose: every frame the training split's mean. Root: horizontal position "
                  "of the root integrated from the clip's first frame. Velocity / acceleration: error of the "
                  "root-relative joint velocities / accelerations against the truth's (the truth's own mean "
                  "acceleration in brackets). Usage and perplexity per codebook (residual: codebook 1/2/...). "
                  "Goals: MPJPE < 40 mm (residual < 30 mm), usage > 80% on the training split.", ""]
    return lines


def write_results(lines: list[str], command: str, path: Path) -> None:
    write_section(path, START, END, "## optiq-models VQ-VAE reconstruction (held-out takes)", command, lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=25.0, help="wall-clock budget of each training run")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--corpora", default="bandai,deepmimic")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parallel", type=int, default=2, help="runs at a time (threads each: 2 / parallel)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/optiq_exp_vqvae"), help="models, reports, cache")
    ap.add_argument("--results", type=Path, default=ROOT / "docs" / "results.md")
    ap.add_argument("--json", type=Path, default=None, help="all numbers (default WORK/results.json)")
    args = ap.parse_args(argv)
    data = Path(os.environ.get("OPTIQ_TEST_DATA", ROOT.parent / "shared" / "data"))
    args.work.mkdir(parents=True, exist_ok=True)
    corpora = [c for c in args.corpora.split(",") if c]
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS] + [c for c in corpora if c not in CORPORA]
    if unknown:
        ap.error(f"unknown variant or corpus {unknown[0]!r}; variants: {', '.join(VARIANTS)}; corpora: "
                 f"{', '.join(CORPORA)}")
    datasets = {c: convert(c, data, args.work) for c in corpora}
    threads = max(1, 2 // args.parallel)
    results = []
    with cf.ThreadPoolExecutor(args.parallel) as pool:
        futures = [pool.submit(one_run, c, v, datasets[c], args.work, args.minutes, threads, args.seed)
                   for c in corpora for v in variants]
        for f in cf.as_completed(futures):
            r = f.result()
            print(f"{r['corpus']} {r['variant']}: {r['train_log']} ({r['seconds']} s)", flush=True)
            results.append(r)
    results.sort(key=lambda r: (corpora.index(r["corpus"]), variants.index(r["variant"])))
    for r in results:
        r["numbers"] = numbers(r)
    finish_experiment("exp_vqvae.py", argv if argv is not None else sys.argv[1:], table(results), results,
                      args.json or args.work / "results.json", write_results, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
