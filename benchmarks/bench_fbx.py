"""FBX loading: optiq-fbx against ufbx on the CMU 01_01 take (1.7 MB binary FBX 7.4, 2752 frames, 38 joints).

Measured in one run (issue 3, "Speed"): optiq's load + bake into a Clip (``optiq_fbx.loader.load_fbx``); ufbx's C
load + bake (``ufbx.load_file`` then ``ufbx.bake_anim`` at the file's frame rate: the work stays in C, nothing is
pulled into Python); and ufbx's end-to-end extraction into numpy through its Python API (load, then for every
frame evaluate every node's local transform and copy translation and rotation into arrays: what a Python user of
the binding must do to get a clip). Goals: optiq no slower than 3x ufbx's C load + bake, and faster than the
end-to-end extraction. ufbx 0.0.5 crashes when a scene is freed or a list is read twice, so every ufbx
measurement runs in a forked child that reads each list once, keeps every object alive, runs without the garbage
collector and leaves with ``os._exit``. Times are medians of repeats.

Run: ``python benchmarks/bench_fbx.py [--quick]`` (data from OPTIQ_TEST_DATA, default ``../shared/data``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from common import ROOT, data_root, median_seconds, print_rows

FILE = "fbx/01_01_cmu.fbx"
_KEEP: list = []  # every ufbx object of the child stays referenced (freeing one crashes ufbx 0.0.5)


def _ufbx_load_bake(path: str) -> int:
    """ufbx's C load + bake of the first stack at the file's frame rate; returns the baked node count."""
    import ufbx

    scene = ufbx.load_file(path, inherit_mode_handling=ufbx.InheritModeHandling.COMPENSATE)
    stack = list(scene.anim_stacks)[0]
    anim = stack.anim
    baked = ufbx.bake_anim(scene, anim, resample_rate=scene.settings.frames_per_second)
    _KEEP.extend((scene, stack, anim, baked))
    return len(baked.nodes)


def _ufbx_extract(path: str) -> tuple[np.ndarray, np.ndarray]:
    """ufbx end to end: load, evaluate every node's local transform at every frame, copy into arrays.

    Returns translations ``[T, N, 3]`` and rotations ``[T, N, 4]`` (xyzw), file units and axes.
    """
    import ufbx

    scene = ufbx.load_file(path, inherit_mode_handling=ufbx.InheritModeHandling.COMPENSATE)
    settings = scene.settings
    stack = list(scene.anim_stacks)[0]
    anim = stack.anim
    nodes = list(scene.nodes)
    _KEEP.extend((scene, settings, stack, anim, nodes))
    fps = settings.frames_per_second
    t0, t1 = stack.time_begin, stack.time_end
    n = int(np.floor((t1 - t0) * fps + 1e-6)) + 1
    trans = np.empty((n, len(nodes), 3))
    rot = np.empty((n, len(nodes), 4))
    evaluate = ufbx.evaluate_transform
    for f in range(n):
        t = t0 + f / fps
        for k, node in enumerate(nodes):
            tr = evaluate(anim, node, t)
            trans[f, k] = tr.translation
            rot[f, k] = tr.rotation
    return trans, rot


def _ufbx_child(path: str, repeats: int, extract_repeats: int) -> dict:
    load_bake = median_seconds(lambda: _ufbx_load_bake(path), repeats)
    extract = median_seconds(lambda: _ufbx_extract(path), extract_repeats)
    frames = _ufbx_extract(path)[0].shape[0]
    return {"load_bake": load_bake, "extract": extract, "frames": frames}


def ufbx_times(path: Path, repeats: int, extract_repeats: int) -> dict:
    """Median seconds of ufbx's C load + bake and of its end-to-end extraction, measured in a forked child
    (the tests' ufbx_oracle runner: ufbx 0.0.5 crashes when it frees a scene)."""
    sys.path.insert(0, str(ROOT / "optiq-fbx" / "tests"))
    from ufbx_oracle import in_forked_child

    try:
        return in_forked_child(_ufbx_child, str(path), repeats, extract_repeats, what="the ufbx child")
    except RuntimeError as exc:
        raise SystemExit(f"bench_fbx: {exc}") from None


def run(quick: bool = False) -> list[dict]:
    """Rows ``{name, value, unit, ratio, vs}``. Times: ratio = time over ufbx's C load + bake (goal for optiq's
    load: <= 3). Speed-up over the end-to-end extraction: ratio = the speed-up itself (goal > 1). Frame rates:
    ratio over ufbx's C load + bake rate."""
    from optiq_fbx.loader import load_fbx

    path = data_root() / FILE
    if not path.is_file():
        raise SystemExit(f"bench_fbx: {path} not found; set OPTIQ_TEST_DATA")
    fast, slow = (3, 1) if quick else (10, 3)
    clip = load_fbx(path)[0]
    frames = clip.num_frames
    ours = median_seconds(lambda: load_fbx(path), fast)
    ours_fk = median_seconds(lambda: load_fbx(path)[0].forward_kinematics(), fast)
    u = ufbx_times(path, fast, slow)
    if u["frames"] != frames:
        raise SystemExit(f"bench_fbx: ufbx sampled {u['frames']} frames, optiq {frames}")
    base = u["load_bake"]

    def row(name: str, seconds: float) -> dict:
        return {"name": name, "value": round(seconds * 1e3, 2), "unit": "ms", "ratio": round(seconds / base, 2),
                "vs": "ufbx C load+bake"}

    rows = [
        row("ufbx load_file + bake_anim (C)", base),
        row("optiq load_fbx -> Clip", ours),
        row("optiq load_fbx + world positions", ours_fk),
        row("ufbx load + evaluate every frame into numpy", u["extract"]),
        {"name": "speed-up: optiq load vs ufbx end-to-end extraction", "value": round(u["extract"] / ours, 1),
         "unit": "x", "ratio": round(u["extract"] / ours, 2), "vs": "goal > 1"},
    ]
    rates = {"ufbx C load+bake": frames / base, "optiq load": frames / ours, "optiq load + positions": frames / ours_fk,
             "ufbx end-to-end extraction": frames / u["extract"]}
    rows += [{"name": f"{what}, frames per second", "value": round(fps), "unit": "frames/s",
              "ratio": round(fps / rates["ufbx C load+bake"], 2), "vs": "ufbx C load+bake"} for what, fps in rates.items()]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    rows = run(quick=args.quick)
    print_rows(f"FBX load: {FILE} ({'quick' if args.quick else 'median of repeats'})", rows)
    by_name = {r["name"]: r for r in rows}
    load_ratio = by_name["optiq load_fbx -> Clip"]["ratio"]
    speedup = by_name["speed-up: optiq load vs ufbx end-to-end extraction"]["value"]
    print(f"goals: optiq load / ufbx C load+bake = {load_ratio} (goal <= 3); "
          f"optiq load vs ufbx end-to-end extraction: {speedup}x faster (goal > 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
