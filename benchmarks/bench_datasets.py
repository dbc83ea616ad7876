"""Datasets: write time, file size, random 64-frame window latency and streaming peak memory, Parquet and HDF5,
side by side with peers on the same arrays: plain ``np.save`` / ``np.load(mmap_mode="r")`` and Parquet written
with pyarrow's default settings.

Run: ``python benchmarks/bench_datasets.py [--quick]``; ``run(quick)`` returns the rows for benchmarks/run.py.
Synthetic data: 1M frames (100k with --quick) of a 24-joint skeleton in clips of 10k frames.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

J = 24
CLIP_FRAMES = 10_000
WINDOW = 64


def _skeleton():
    from optiq import Skeleton

    rng = np.random.default_rng(1)
    return Skeleton([f"j{i}" for i in range(J)], [-1] + [max(0, (i - 1) // 2) for i in range(1, J)],
                    rng.normal(scale=0.1, size=(J, 3)))


def _clips(n_frames: int):
    """Smooth random motion (random walks), one clip at a time so that writing stays streaming."""
    from optiq import Clip, quat

    sk = _skeleton()
    rng = np.random.default_rng(0)
    for k in range(n_frames // CLIP_FRAMES):
        rotvec = np.cumsum(rng.normal(scale=0.01, size=(CLIP_FRAMES, J, 3)), axis=0)
        root = np.cumsum(rng.normal(scale=0.005, size=(CLIP_FRAMES, 3)), axis=0)
        yield Clip(sk, 120.0, root, quat.from_rotvec(rotvec), name=f"clip{k:04d}", labels={"movement": "walk"})


def _write_optiq(path: Path, n_frames: int) -> float:
    from optiq.datasets import format_for

    t = time.perf_counter()
    with format_for(path).writer(path, _skeleton()) as w:
        for clip in _clips(n_frames):
            w.add(clip)
    return time.perf_counter() - t


def _arrays(n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    rots, roots = [], []
    for c in _clips(n_frames):
        rots.append(c.rotations.astype(np.float32))
        roots.append(c.root_translation.astype(np.float32))
    return np.concatenate(roots), np.concatenate(rots)


def _median_ms(fn, starts) -> float:
    fn(*starts[0])  # warm: first touch of the file
    times = []
    for s in starts:
        t = time.perf_counter()
        fn(*s)
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def _stream_peak(path: Path) -> float:
    """Peak RSS growth (MiB) while streaming the whole dataset, in a fresh process: the high-water mark is
    reset after opening and a first read (Linux /proc/self/clear_refs), so imports do not count."""
    code = (
        "import sys, optiq\n"
        "def kib(key):\n"
        "    return next(int(x.split()[1]) for x in open('/proc/self/status') if x.startswith(key))\n"
        "ds = optiq.open_dataset(sys.argv[1])\n"
        "ds.window(0, 0, 1)\n"  # first use: lazy imports are not data
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "base = kib('VmRSS:')\n"
        "n = sum(len(c.data) for c in ds.stream())\n"
        "print((kib('VmHWM:') - base) / 1024, n)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[0])


def run(quick: bool = False) -> list[dict]:
    """Rows ``{"bench", "subject", "metric", "value", "unit"}``; ``quick`` uses 100k frames instead of 1M."""
    import optiq
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 100_000 if quick else 1_000_000
    rng = np.random.default_rng(2)
    picks = [(int(c), int(s)) for c, s in zip(rng.integers(0, n // CLIP_FRAMES, 300),
                                               rng.integers(0, CLIP_FRAMES - WINDOW, 300), strict=True)]
    rows: list[dict] = []

    def add(subject: str, metric: str, value: float, unit: str) -> None:
        rows.append({"bench": "datasets", "name": f"{subject}: {metric}", "subject": subject, "metric": metric,
                     "value": round(value, 4), "unit": unit, "frames": n, "joints": J})

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for name, suffix in (("optiq parquet", ".parquet"), ("optiq hdf5", ".h5")):
            path = d / f"ds{suffix}"
            add(name, "write", _write_optiq(path, n), "s")
            add(name, "size", path.stat().st_size / 2**20, "MiB")
            with optiq.open_dataset(path) as ds:
                add(name, "window64 median (Clip)", _median_ms(
                    lambda c, s, ds=ds: ds.window(c, s, WINDOW), picks), "ms")
                add(name, "window64 median (float32 arrays)", _median_ms(
                    lambda c, s, ds=ds: ds.arrays(c, s, s + WINDOW, ["root_translation", "rotations"]), picks), "ms")
            add(name, "stream peak RSS growth", _stream_peak(path), "MiB")

        root, rot = _arrays(n)
        t = time.perf_counter()
        np.save(d / "rot.npy", rot)
        np.save(d / "root.npy", root)
        add("np.save", "write", time.perf_counter() - t, "s")
        add("np.save", "size", ((d / "rot.npy").stat().st_size + (d / "root.npy").stat().st_size) / 2**20, "MiB")
        mrot, mroot = np.load(d / "rot.npy", mmap_mode="r"), np.load(d / "root.npy", mmap_mode="r")
        add("np.load mmap", "window64 median (float32 arrays)", _median_ms(
            lambda c, s: (np.array(mrot[c * CLIP_FRAMES + s:][:WINDOW]), np.array(mroot[c * CLIP_FRAMES + s:][:WINDOW])),
            picks), "ms")

        table = pa.table({
            "clip": pa.array(np.repeat(np.arange(n // CLIP_FRAMES), CLIP_FRAMES).astype(str)),
            "frame": pa.array(np.tile(np.arange(CLIP_FRAMES, dtype=np.int32), n // CLIP_FRAMES)),
            "root_translation": pa.FixedSizeListArray.from_arrays(pa.array(root.reshape(-1)), 3),
            "rotations": pa.FixedSizeListArray.from_arrays(pa.array(rot.reshape(-1)), J * 4),
        })
        t = time.perf_counter()
        pq.write_table(table, d / "default.parquet")
        add("pyarrow defaults", "write", time.perf_counter() - t, "s")
        add("pyarrow defaults", "size", (d / "default.parquet").stat().st_size / 2**20, "MiB")
        pf = pq.ParquetFile(d / "default.parquet")
        starts = np.concatenate(([0], np.cumsum([pf.metadata.row_group(i).num_rows
                                                 for i in range(pf.metadata.num_row_groups)])))

        def default_window(c: int, s: int) -> None:
            a = c * CLIP_FRAMES + s
            g0, g1 = (int(np.searchsorted(starts, x, "right")) - 1 for x in (a, a + WINDOW - 1))
            pf.read_row_groups(range(g0, g1 + 1), columns=["root_translation", "rotations"]).slice(
                a - int(starts[g0]), WINDOW)

        add("pyarrow defaults", "window64 median (arrow table)", _median_ms(default_window, picks[:20]), "ms")
        add("pyarrow defaults", "row groups", pf.metadata.num_row_groups, "")
    _add_ratios(rows)
    return rows


def _add_ratios(rows: list[dict]) -> None:
    """Set ``ratio``/``vs`` on optiq's rows: size against np.save, windows against np.load's memory map and
    pyarrow's default single-row-group file, write time against np.save."""
    by = {(r["subject"], r["metric"]): r["value"] for r in rows}
    peers = {
        "size": ("np.save", "size"),
        "write": ("np.save", "write"),
        "window64 median (float32 arrays)": ("np.load mmap", "window64 median (float32 arrays)"),
        "window64 median (Clip)": ("pyarrow defaults", "window64 median (arrow table)"),
    }
    for r in rows:
        peer = peers.get(r["metric"])
        if r["subject"].startswith("optiq") and peer and by.get(peer):
            r["ratio"] = round(r["value"] / by[peer], 4)
            r["vs"] = f"{peer[0]} {peer[1]}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100k frames instead of 1M")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = p.parse_args(argv)
    rows = run(args.quick)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"datasets: {rows[0]['frames']} frames, {J} joints, cpu {os.cpu_count()}")
    for r in rows:
        print(f"  {r['subject']:<18} {r['metric']:<34} {r['value']:>10.3f} {r['unit']}")
    by = {(r["subject"], r["metric"]): r["value"] for r in rows}
    npy_size = by[("np.save", "size")]
    for name in ("optiq parquet", "optiq hdf5"):
        print(f"  {name}: size {by[(name, 'size')] / npy_size:.2f}x np.save, window "
              f"{by[(name, 'window64 median (float32 arrays)')] / by[('np.load mmap', 'window64 median (float32 arrays)')]:.0f}x "
              f"np.load mmap")


if __name__ == "__main__":
    main()
