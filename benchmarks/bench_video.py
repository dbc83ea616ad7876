"""Skeleton video rendering: optiq_viz's vectorised numpy renderer against a naive per-frame Python loop, in one
run, on the CMU 02_01 walk (343 frames after the T-pose, 31 joints) at 640x480.

matplotlib is not a dependency (and not installed in the project environment), so the peer is the renderer one
writes first without it: per frame, per bone, stamp a square brush at points along the bone, in Python. It
draws the same projected bones (no grid, no anti-aliasing), so the ratio is a lower bound of the gain. Rates are
frames per second; compare the ratios, not the absolute numbers.

Run: ``python benchmarks/bench_video.py [--quick]`` (data from OPTIQ_TEST_DATA, default ``../shared/data``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import bench_main, data_root

FILE = "bvh/cmu_02_01_bvhtodeepmimic.bvh"
SIZE = (640, 480)


def naive_frames(clip, size: tuple[int, int]) -> int:
    """The per-frame loop peer: one frame at a time, one bone at a time, one brush stamp at a time."""
    from optiq_viz.video import BACKGROUND, PALETTE, _layout

    width, height = size
    panels, frames = _layout([clip], size, "fixed", "overlay", None, 20.0)
    fig = panels[0].figures[0]
    r = max(1, round(height / 200))
    for t in range(frames):
        image = np.empty((height, width, 3), np.uint8)
        image[:] = BACKGROUND
        for a, b in fig.bones:
            p, q = fig.pixels[t, a], fig.pixels[t, b]
            steps = int(np.hypot(*(q - p))) + 1
            for s in range(steps + 1):
                x, y = (p + (q - p) * s / steps).astype(int)
                if 0 <= x < width and 0 <= y < height:
                    image[max(y - r, 0):y + r + 1, max(x - r, 0):x + r + 1] = PALETTE[0]
    return frames


def rate(fn, repeats: int) -> float:
    """Best frames per second over ``repeats`` runs of ``fn() -> frames``."""
    fn()  # warm caches and lazy imports
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn()
        best = max(best, n / (time.perf_counter() - start))
    return best


def run(quick: bool = False) -> list[dict]:
    """Rows ``{name, value, unit, ratio, vs}``: frame rates, ratio to the naive per-frame loop's."""
    import optiq
    from optiq_viz.video import iter_frames, render_video

    path = data_root() / FILE
    if not path.is_file():
        raise SystemExit(f"bench_video: {path} not found; set OPTIQ_TEST_DATA")
    clip = optiq.load(path)[0][1:]
    if quick:
        clip = clip[:60]
    repeats = 1 if quick else 3
    pred = clip.replace(root_translation=clip.root_translation + [0.0, 0.4, 0.0], name="pred")
    out = Path(tempfile.mkdtemp()) / "bench.mp4"

    def frames_of(clips, **options):
        return lambda: sum(len(b) for b in iter_frames(clips, size=SIZE, **options))

    naive = rate(lambda: naive_frames(clip, SIZE), 1)
    rates = {
        "naive per-frame Python loop (bones only)": naive,
        "optiq_viz render, fixed camera": rate(frames_of(clip), repeats),
        "optiq_viz render, follow camera": rate(frames_of(clip, camera="follow"), repeats),
        "optiq_viz render, clip + prediction overlaid": rate(frames_of([clip, pred]), repeats),
        "optiq_viz render + H.264 encode, fixed camera": rate(lambda: render_video(clip, out, size=SIZE).frames,
                                                              repeats),
    }
    out.unlink()
    out.parent.rmdir()
    return [{"name": f"{name}, {SIZE[0]}x{SIZE[1]}", "value": round(fps, 1), "unit": "frames/s",
             "ratio": round(fps / naive, 2), "vs": "naive per-frame loop"} for name, fps in rates.items()]


def main(argv: list[str] | None = None) -> int:
    return bench_main(run, __doc__.splitlines()[0], "60 frames, one repeat", argv)


if __name__ == "__main__":
    sys.exit(main())
