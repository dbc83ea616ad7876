"""BVH loading: optiq against bvhio on the CMU 01_14 take (1.8 MB, 2339 frames, 31 joints), in one run.

Reference points (issue 2, section 8): a bare ``np.array(text.split(), float)`` of the MOTION block is the floor
for text parsing; goals: optiq's load into a Clip within 1.5x of that floor, and load plus world positions of
every frame at least 20x faster than ``bvhio.readAsHierarchy``. Times are medians of several repeats.

Run: ``python benchmarks/bench_bvh.py [--quick]`` (data from OPTIQ_TEST_DATA, default ``../shared/data``).
"""

from __future__ import annotations

import argparse
import sys
import warnings
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


def run(quick: bool = False) -> list[dict]:
    """Rows ``{name, value, unit, ratio}``. ``ratio``: for times, the time over the text-parsing floor (goal for
    the load: <= 1.5); for the speed-up over readAsHierarchy, the speed-up over its goal of 20x (>= 1 meets it);
    for the other speed-up, the speed-up itself; for frame rates, the rate over bvhio.readAsHierarchy's."""
    from optiq.loaders.bvh import load_bvh

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # PyGLM's note about its import name
        import bvhio

    path = data_root() / FILE
    if not path.is_file():
        raise SystemExit(f"bench_bvh: {path} not found; set OPTIQ_TEST_DATA")
    fast, slow = (3, 1) if quick else (15, 3)
    text = path.read_text()
    motion_block = text[text.index("Frame Time"):].split("\n", 1)[1]
    clip = load_bvh(path)[0]
    frames = clip.num_frames

    floor = median_seconds(lambda: np.array(motion_block.split(), dtype=np.float64), fast)
    load = median_seconds(lambda: load_bvh(path), fast)
    fk = median_seconds(clip.forward_kinematics, fast)
    load_fk = median_seconds(lambda: load_bvh(path)[0].forward_kinematics(), fast)
    parse_only = median_seconds(lambda: bvhio.readAsBvh(str(path)), slow)
    hierarchy = median_seconds(lambda: bvhio.readAsHierarchy(str(path)), slow)

    def row(name: str, seconds: float) -> dict:
        return {"name": name, "value": round(seconds * 1e3, 2), "unit": "ms", "ratio": round(seconds / floor, 2), "vs": "text floor"}

    rows = [
        row("text floor: np.array(split) of MOTION", floor),
        row("optiq load_bvh -> Clip", load),
        row("optiq forward kinematics, all frames", fk),
        row("optiq load + world positions", load_fk),
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
    print(f"ratios (time / text floor, goal <= 1.5 for the load): load {load_ratio}; "
          f"load + positions vs readAsHierarchy: {speedup}x faster (goal >= 20x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
