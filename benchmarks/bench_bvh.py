"""BVH loading: optiq against bvhio on the CMU 01_14 take (1.8 MB, 2339 frames, 31 joints), in one run.

Reference points (issue 2, section 8; issue 7): a bare ``np.array(text.split(), float)`` of the MOTION block is the
floor for text parsing; goals: optiq's whole ``load_bvh`` into a Clip at most 1.0x that floor, and load plus world
positions of every frame at least 20x faster than ``bvhio.readAsHierarchy``.

Timings on a shared machine drift with the load of other processes, so the floor and optiq's calls are interleaved
in the same rounds (floor, load, FK, load + FK, then again), each ratio is taken within a round, and the table quotes
medians over the rounds, with the floor's own median time printed beside every ratio.

Run: ``python benchmarks/bench_bvh.py [--quick]`` (data from OPTIQ_TEST_DATA, default ``../shared/data``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import data_root, median_seconds, print_rows

FILE = "bvh/cmu_01_14_bvhtodeepmimic.bvh"


def _bvhio_positions(path: Path) -> np.ndarray:
    """bvhio's world positions of every joint in every frame (its per-frame pose API)."""
    import bvhio

    root = bvhio.readAsHierarchy(str(path))
    joints = [j for j, _, _ in root.layout()]
    n = root.getKeyframeRange()[1] + 1
    out = np.empty((n, len(joints), 3))
    for frame in range(n):
        root.loadPose(frame)
        out[frame] = [tuple(j.PositionWorld) for j in joints]
    return out


def interleaved(fns: dict[str, Callable[[], object]], rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds of each function and the median of its per-round time over the first function's, calling
    the functions one after the other in each of ``rounds`` rounds (after one warm-up round)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds + 1):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if r:
                times[name].append(time.perf_counter() - start)
    first = times[next(iter(fns))]
    ratios = {name: statistics.median(t / f for t, f in zip(ts, first, strict=True)) for name, ts in times.items()}
    return {name: statistics.median(ts) for name, ts in times.items()}, ratios


def run(quick: bool = False) -> list[dict]:
    """Rows ``{name, value, unit, ratio}``. ``ratio``: for times, the time over the text-parsing floor (goal for
    the load: <= 1.0; for optiq's rows the median of per-round ratios, for bvhio's the ratio of medians); for the speed-up over readAsHierarchy, the speed-up over its goal of 20x (>= 1 meets it);
    for the other speed-up, the speed-up itself; for frame rates, the rate over bvhio.readAsHierarchy's."""
    from optiq.loaders.bvh import load_bvh

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # PyGLM's note about its import name
        import bvhio

    path = data_root() / FILE
    if not path.is_file():
        raise SystemExit(f"bench_bvh: {path} not found; set OPTIQ_TEST_DATA")
    fast, slow = (5, 1) if quick else (15, 3)
    text = path.read_text()
    motion_block = text[text.index("Frame Time"):].split("\n", 1)[1]
    clip = load_bvh(path)[0]
    frames = clip.num_frames

    med, ratio = interleaved({
        "floor": lambda: np.array(motion_block.split(), dtype=np.float64),
        "load": lambda: load_bvh(path),
        "fk": clip.forward_kinematics,
        "load_fk": lambda: load_bvh(path)[0].forward_kinematics(),
    }, fast)
    floor, load, load_fk = med["floor"], med["load"], med["load_fk"]
    parse_only = median_seconds(lambda: bvhio.readAsBvh(str(path)), slow)
    hierarchy = median_seconds(lambda: bvhio.readAsHierarchy(str(path)), slow)
    vs = f"text floor, {floor * 1e3:.1f} ms"

    def row(name: str, seconds: float, r: float | None = None) -> dict:
        return {"name": name, "value": round(seconds * 1e3, 2), "unit": "ms",
                "ratio": round(seconds / floor if r is None else r, 2), "vs": vs}

    rows = [
        row("text floor: np.array(split) of MOTION", floor, 1.0),
        row("optiq load_bvh -> Clip", load, ratio["load"]),
        row("optiq forward kinematics, all frames", med["fk"], ratio["fk"]),
        row("optiq load + world positions", load_fk, ratio["load_fk"]),
        row("bvhio.readAsBvh (parse only)", parse_only),
        row("bvhio.readAsHierarchy (transforms)", hierarchy),
    ]
    if not quick:
        every_frame = median_seconds(lambda: _bvhio_positions(path), 1)
        rows.append(row("bvhio readAsHierarchy + positions, every frame", every_frame))
    per_second = {"bvhio.readAsHierarchy": frames / hierarchy, "optiq load": frames / load,
                  "optiq load + positions": frames / load_fk}
    rows += [
        {"name": "speed-up: optiq load+positions vs readAsHierarchy (goal 20x)", "value": round(hierarchy / load_fk, 1),
         "unit": "x", "ratio": round(hierarchy / load_fk / 20.0, 2), "vs": "the 20x goal"},
        {"name": "speed-up: optiq load vs readAsBvh (parse only)", "value": round(parse_only / load, 1), "unit": "x",
         "ratio": round(parse_only / load, 2)},
    ]
    rows += [{"name": f"{what}, frames per second", "value": round(fps), "unit": "frames/s",
              "ratio": round(fps / per_second["bvhio.readAsHierarchy"], 2), "vs": "readAsHierarchy"} for what, fps in per_second.items()]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no per-frame bvhio positions")
    args = parser.parse_args(argv)
    rows = run(quick=args.quick)
    print_rows(f"BVH load: {FILE} ({'quick' if args.quick else 'median of repeats'})", rows)
    by_name = {r["name"]: r for r in rows}
    load_ratio = by_name["optiq load_bvh -> Clip"]["ratio"]
    speedup = by_name["speed-up: optiq load+positions vs readAsHierarchy (goal 20x)"]["value"]
    floor_ms = by_name["text floor: np.array(split) of MOTION"]["value"]
    print(f"ratios (time / text floor of {floor_ms} ms, goal <= 1.0 for the load): load {load_ratio}; "
          f"load + positions vs readAsHierarchy: {speedup}x faster (goal >= 20x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
