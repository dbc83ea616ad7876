"""The model-quality experiment of optiq-models: MLP and transformer, trained on real corpora under a wall-clock
budget, judged on held-out takes against the zero- and constant-velocity baselines on the same windows, over
several seeds; plus label steering (from the same walking contexts, ``content=run`` against ``content=walk`` and
``content=walk-back``). Writes its table and the exact command into ``docs/results.md`` (between markers) and
every number into a JSON file.

    OPTIQ_TEST_DATA=/work/shared/data .venv/bin/python benchmarks/exp_models.py \
        [--minutes 15] [--seeds 0,1,2] [--archs mlp,transformer] [--corpora bandai,deepmimic] [--parallel 2]

Corpora (``$OPTIQ_TEST_DATA``, see its README for licences; non-commercial data is used here for measurement
only): ``bandai`` = the 158 Bandai-Namco takes (labels ``content`` and ``style`` from the take names; 15% of the
takes of every content held out, mirrors with their originals); ``deepmimic`` = the DeepMimic clips and
``corpora/deepmimic_more`` (one skeleton, the humanoid the RL package simulates; the minute-long ``long_walk3``
and its mirror held out, no labels). Walks at 30 fps: 400 ms = 12 frames, 1 s = 30, 2 s = 60.

Each run is ``optiq train model`` then ``optiq eval model`` in a subprocess with ``OMP_NUM_THREADS`` = 2 /
``--parallel`` (two runs at a time share the machine's 2 cores). Nothing here is part of ``make test``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import finish_experiment, write_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OPTIQ = [sys.executable, "-m", "optiq"]
START, END = "<!-- exp_models:start -->", "<!-- exp_models:end -->"

# The settings measured best (docs/models.md, "Measured on Bandai-Namco" and "Label steering"): the shipped configs
# plus input noise on the velocity features, early stopping on the validation rollout.
ARCHS = {
    "mlp": ["--config", "mlp", "--batch-size", "64", "--input-noise", "1.0", "--noise-group", "vel"],
    "transformer": ["--config", "transformer", "--model.context", "32", "--window", "32", "--model.d_model", "96",
                    "--model.layers", "3", "--model.dropout", "0.1", "--rollout-fraction", "0.5",
                    "--rollout-steps", "10", "--input-noise", "1.0", "--noise-group", "vel"],
}
CORPORA = {
    "bandai": {"files": ["corpora/bandai_namco/data"], "train": ["--labels", "content", "--split-by", "label:content"],
               "walks": ("content", "walk")},
    "deepmimic": {"files": ["deepmimic", "corpora/deepmimic_more"], "train": ["--split-by", "regex:long_walk3"],
                  "walks": None},
}
GUIDANCE = (0.0, 1.0, 2.0)
HORIZONS = {"400 ms": 0.4, "1 s": 1.0, "2 s": 2.0}


def convert(name: str, data: Path, work: Path) -> Path:
    out = work / f"{name}.parquet"
    if not out.exists():
        inputs = []
        for folder in CORPORA[name]["files"]:
            root = data / folder
            inputs += sorted(str(p) for p in root.rglob("*") if p.suffix in (".bvh", ".txt")
                             and "LICENSE" not in p.name and "character" not in p.name)
        if name == "deepmimic":
            character = data / "deepmimic" / "humanoid3d_character.txt"
            # 30 fps like the Bandai takes (the clips come at 30 and 60); a clip whose frame times vary
            # (humanoid3d_roll) is reported and left out.
            cmd = [*OPTIQ, "data", "convert", "--in", *inputs, "--out", str(out), "--fps", "30", "--skip-bad",
                   "--option", f"character={character}"]
        else:
            cmd = [*OPTIQ, "data", "convert", "--in", *inputs, "--out", str(out)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def one_run(corpus: str, arch: str, seed: int, dataset: Path, work: Path, minutes: float, threads: int) -> dict:
    """Train and evaluate one (corpus, arch, seed); returns the report's path and the training log."""
    tag = f"{corpus}_{arch}_s{seed}"
    model, report = work / f"{tag}.pt", work / f"{tag}_report.json"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPTIQ_CACHE": str(work / "cache")}
    train = [*OPTIQ, "-q", "train", "model", "--data", str(dataset), "--out", str(model), *ARCHS[arch],
             *CORPORA[corpus]["train"], "--seed", str(seed), "--max-minutes", str(minutes), "--max-steps", "100000",
             "--eval-interval", "250", "--patience", "20"]
    t0 = time.time()
    log = subprocess.run(train, env=env, capture_output=True, text=True)
    if log.returncode:
        raise RuntimeError(f"{tag}: {log.stderr.strip()[-400:]}")
    ev = [*OPTIQ, "-q", "eval", "model", "--model", str(model), "--data", str(dataset), "--split", "test",
          "--horizon", "60", "--stride", "5", "--out", str(report)]
    subprocess.run(ev, env=env, check=True, capture_output=True)
    return {"corpus": corpus, "arch": arch, "seed": seed, "model": str(model), "report": str(report),
            "train_log": log.stdout.strip(), "seconds": round(time.time() - t0, 1)}


def steering_rows(run: dict, dataset: Path, work: Path) -> dict:
    """Root speed of 2 s rollouts from the held-out walks' windows under walk / run / walk-back."""
    import torch
    from optiq_models import data as D
    from optiq_models.evaluate import load_model, steering

    torch.set_num_threads(2)
    loaded = load_model(run["model"])
    source = D.open_source(dataset, cache_dir=work / "cache")
    split = loaded.checkpoint.split
    split = split if isinstance(split, dict) else json.loads(split)
    walks = [n for n in split["test"] if source.labels[n].get("content") == "walk"]
    sets = [{"content": "walk"}, {"content": "run"}, {"content": "walk-back"}]
    out = {}
    for g in GUIDANCE:
        out[str(g)] = steering(loaded, source, walks, sets, horizon=60, stride=10, guidance=g,
                               cache_dir=work / "cache")
    source.close()
    return out


def walk_metrics(report: dict, key: str | None) -> dict:
    """Held-out walk numbers of one report: MPJPE of model and baselines at 400 ms, 1 s and 2 s, the hips' position
    error at 1 s, and the single-step and growth numbers of the whole test side."""
    fps = report["fps"][0]
    series = report["per_label"][key] if key else {**report["horizon"]["series"],
                                                    "root_error_m": report["rollout"]["root_error_m"]}
    model = next(k for k in report["horizon"]["series"] if k not in ("zero-velocity", "constant-velocity"))
    out = {"windows": series.get("windows", report["windows"])}
    for label, seconds in HORIZONS.items():
        h = int(round(seconds * fps)) - 1
        out[label] = {"model": series[model][h], "zero": series["zero-velocity"][h],
                      "const": series["constant-velocity"][h]}
    h1 = int(round(fps)) - 1
    out["hips_1s"] = {"model": series["root_error_m"][model][h1], "const": series["root_error_m"]["constant-velocity"][h1]}
    out["residual_r2"] = report["single_step"]["residual_r2"]
    out["rollout_over_single_step"] = report["rollout"]["rollout_over_single_step"]
    out["growth"] = report["rollout"]["growth_exponent"][model]
    return out


def _pm(values: list[float], fmt: str = "{:.1f}") -> str:
    v = np.asarray(values, dtype=float)
    return fmt.format(v.mean()) + (" ± " + fmt.replace("+", "").format(v.std()) if len(v) > 1 else "")


def _pct(model: list[float], base: list[float]) -> str:
    r = 100 * (np.asarray(model) / np.asarray(base) - 1)
    return f"{r.mean():+.0f}%" + (f" (±{r.std():.0f})" if len(r) > 1 else "")


def table(results: list[dict]) -> list[str]:
    lines = []
    for corpus in dict.fromkeys(r["corpus"] for r in results):
        rows = [r for r in results if r["corpus"] == corpus]
        what = "held-out walks (`content=walk`)" if CORPORA[corpus]["walks"] else "held-out clips (long_walk3 and its mirror)"
        lines += [f"### {corpus}: root-relative MPJPE (mm) of the rollout on {what}, mean ± std over seeds", "",
                  "| model | seeds | 400 ms | 1 s | 2 s | root at 1 s (m) | residual R2 | rollout(60)/single | growth |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        first = rows[0]["walk"]
        zero = " | ".join(_pm([r["walk"][h]["zero"] for r in rows]) for h in HORIZONS)
        lines.append(f"| zero-velocity | | {zero} | | | | |")
        const = " | ".join(_pm([r["walk"][h]["const"] for r in rows]) for h in HORIZONS)
        lines.append(f"| constant-velocity | | {const} | {_pm([r['walk']['hips_1s']['const'] for r in rows], '{:.3f}')} | | | |")
        for arch in dict.fromkeys(r["arch"] for r in rows):
            rs = [r for r in rows if r["arch"] == arch]
            cells = []
            for h in HORIZONS:
                m = [r["walk"][h]["model"] for r in rs]
                cells.append(f"{_pm(m)} ({_pct(m, [r['walk'][h]['zero'] for r in rs])})")
            hips = [r["walk"]["hips_1s"]["model"] for r in rs]
            cells.append(f"{_pm(hips, '{:.3f}')} ({_pct(hips, [r['walk']['hips_1s']['const'] for r in rs])} vs const.)")
            cells += [_pm([r["walk"]["residual_r2"] for r in rs], "{:.2f}"),
                      _pm([r["walk"]["rollout_over_single_step"] for r in rs], "{:.0f}"),
                      _pm([r["walk"]["growth"] for r in rs], "{:.2f}")]
            lines.append(f"| {arch} | {len(rs)} | " + " | ".join(cells) + " |")
        lines += ["", f"{first['windows']} windows (the MLP's; the transformer's 32-frame context starts its windows "
                  "later, so baselines differ slightly between models: each model's percentages are against the "
                  "baselines on its own windows). Root: the joint carrying the global motion (Bandai: Hips; "
                  "DeepMimic: root), its horizontal position error, against constant-velocity. R2 (of the "
                  "frame-to-frame residual), rollout(60)/single-step and growth exponent over the whole test side.",
                  ""]
        steer = [r for r in rows if r.get("steering")]
        if steer:
            lines += [f"### {corpus}: label steering from the held-out walks' contexts (2 s rollouts; speed m/s, "
                      "forward m/s along the context's direction), mean ± std over seeds", "",
                      "| model | guidance | walk: speed | run: speed (x walk) | walk-back: forward |",
                      "| --- | --- | --- | --- | --- |"]
            for arch in dict.fromkeys(r["arch"] for r in steer):
                rs = [r for r in steer if r["arch"] == arch]
                for g in GUIDANCE:
                    s = [r["steering"][str(g)] for r in rs]
                    lines.append(f"| {arch} | {g:g} | {_pm([x['content=walk']['speed'] for x in s], '{:.2f}')} | "
                                 f"{_pm([x['content=run']['speed'] for x in s], '{:.2f}')} "
                                 f"({_pm([x['content=run']['ratio'] for x in s], '{:.2f}')}x) | "
                                 f"{_pm([x['content=walk-back']['forward'] for x in s], '{:+.2f}')} |")
            lines.append("")
    return lines


def write_results(lines: list[str], command: str, path: Path) -> None:
    write_section(path, START, END, "## optiq-models quality (held-out takes, baselines on the same windows)", command, lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=15.0, help="wall-clock budget of each training run")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--archs", default="mlp,transformer")
    ap.add_argument("--corpora", default="bandai,deepmimic")
    ap.add_argument("--parallel", type=int, default=2, help="runs at a time (threads each: 2 / parallel)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/optiq_exp_models"), help="models, reports, cache")
    ap.add_argument("--results", type=Path, default=ROOT / "docs" / "results.md")
    ap.add_argument("--json", type=Path, default=None, help="all numbers (default WORK/results.json)")
    args = ap.parse_args(argv)
    data = Path(os.environ.get("OPTIQ_TEST_DATA", ROOT.parent / "shared" / "data"))
    args.work.mkdir(parents=True, exist_ok=True)
    corpora = [c for c in args.corpora.split(",") if c]
    datasets = {c: convert(c, data, args.work) for c in corpora}
    jobs = [(c, a, int(s)) for c in corpora for a in args.archs.split(",") for s in args.seeds.split(",")]
    threads = max(1, 2 // args.parallel)
    results = []
    with cf.ThreadPoolExecutor(args.parallel) as pool:
        futures = [pool.submit(one_run, c, a, s, datasets[c], args.work, args.minutes, threads) for c, a, s in jobs]
        for f in cf.as_completed(futures):
            r = f.result()
            print(f"{r['corpus']} {r['arch']} seed {r['seed']}: {r['train_log']} ({r['seconds']} s)", flush=True)
            results.append(r)
    results.sort(key=lambda r: (corpora.index(r["corpus"]), r["arch"], r["seed"]))
    for r in results:
        report = json.loads(Path(r["report"]).read_text())
        walks = CORPORA[r["corpus"]]["walks"]
        r["walk"] = walk_metrics(report, f"{walks[0]}={walks[1]}" if walks else None)
        if walks:
            r["steering"] = steering_rows(r, datasets[r["corpus"]], args.work)
    finish_experiment("exp_models.py", argv if argv is not None else sys.argv[1:], table(results), results,
                      args.json or args.work / "results.json", write_results, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
