"""Motion files -> dataset: expand inputs, load each file (in a process pool), smooth, resample, label, write.

Smoothing and resampling happen here, at conversion time, so a dataset states exactly what a model is trained
on. A bad file stops the run before anything is written, unless ``skip_bad`` (then it is reported and left out).
The dataset is written atomically: a failed or killed run leaves no output file.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import check_output_path
from .clip import Clip
from .datasets import check_topology, format_for, write_dataset
from .errors import OptiqError
from .skeleton import Skeleton


@dataclass(frozen=True)
class ConvertOptions:
    """What happens to every clip: loader options, then scaling, then smoothing (Hz), then resampling (fps), then
    labels. scale multiplies every length after loading (for files whose declared unit is wrong, such as the CMU
    FBX exports that hold CMU units: scale 0.0564444)."""

    loader: str | None = None
    unit: str | None = None
    scale: float | None = None
    drop_tpose: bool = False
    smooth: float | None = None
    fps: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass
class ConvertResult:
    """The written dataset, its clips and the files left out with their error."""

    path: Path
    clips: list[Clip]
    files: list[Path]
    skipped: list[tuple[Path, str]]

    @property
    def num_frames(self) -> int:
        return sum(c.num_frames for c in self.clips)


def expand_inputs(inputs: Sequence[str | os.PathLike], loader: str | None = None) -> list[Path]:
    """Files named, files in named folders (those a loader reads, by suffix; not recursive) and glob matches,
    sorted within each input, each file once."""
    suffixes = _readable_suffixes(loader)
    out: dict[Path, None] = {}
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and _is_motion_file(f, suffixes, loader))
            if not found:
                raise OptiqError(f"no motion files in folder (looked for {', '.join(sorted(suffixes))})", p)
        elif p.exists():
            found = [p]
        else:
            found = sorted(Path(m) for m in glob.glob(str(item), recursive=True) if Path(m).is_file())
            if not found:
                raise OptiqError("no such file or folder, and no file matches it as a pattern", str(item))
        out.update(dict.fromkeys(found))
    return list(out)


def _is_motion_file(path: Path, suffixes: set[str], loader: str | None) -> bool:
    """Whether a file found in a folder is motion: a loader claims its suffix and, when every such loader can
    sniff content, one of them recognises it (so a DeepMimic character file or a trajectory's ``.spec.json``
    beside the motions is passed over rather than failing the folder)."""
    from .io import _head, _match_suffix
    from .registry import resolve_target

    if loader:
        return any("".join(path.suffixes[-k:]).lower() in suffixes for k in range(1, len(path.suffixes) + 1))
    _, caps = _match_suffix(path, lambda c: True)
    if not caps:
        return False
    if any(not c.meta.get("sniff") for c in caps):
        return True
    head = _head(path)
    return any(resolve_target(c.meta["sniff"])(path, head) for c in caps)


def _readable_suffixes(loader: str | None) -> set[str]:
    from .plugins import registry

    reg = registry("loader")
    caps = [reg.get(loader)] if loader else list(reg)
    return {s for c in caps for s in c.meta.get("suffixes", ())}


def load_file(path: Path, options: ConvertOptions) -> list[Clip]:
    """The clips of one file after the conversion steps of ``options``."""
    from .io import load

    loader_options: dict[str, Any] = {"drop_tpose": options.drop_tpose}
    if options.unit:
        loader_options["unit"] = options.unit
    clips = load(path, options.loader, **loader_options)
    out = []
    for clip in clips:
        if options.scale is not None and options.scale != 1.0:
            clip = clip.transformed(np.eye(3), options.scale)
        if options.smooth:
            clip = clip.smooth(options.smooth)
        if options.fps:
            clip = clip.resample(options.fps)
        out.append(clip.with_labels(dict(options.labels)) if options.labels else clip)
    return out


def _load_or_error(job: tuple[Path, ConvertOptions]) -> tuple[list[Clip] | None, str | None]:
    """Worker: the clips, or the one-line error of a file that cannot be read (errors other than
    OptiqError are bugs and propagate)."""
    path, options = job
    try:
        return load_file(path, options), None
    except OptiqError as exc:
        msg = str(exc)
        return None, msg if str(path) in msg else f"{path}: {msg}"


def convert(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, options: ConvertOptions | None = None, *,
            velocities: bool = False, skip_bad: bool = False, jobs: int | None = None, progress: bool = False,
            on_skip: Callable[[Path, str], None] | None = None, format: str | None = None) -> ConvertResult:
    """Convert motion files into one dataset at ``out`` (format by suffix unless named).

    inputs: files, folders and glob patterns. velocities: store world velocities. skip_bad: leave out files that
    cannot be read or whose skeleton differs from the first good file's (``on_skip(path, message)`` is called
    for each); otherwise the first such file raises OptiqError and nothing is written. jobs: worker processes
    (default: one per CPU, at most one per file; 1 loads in this process). progress: a tqdm bar on stderr.
    """
    options = options or ConvertOptions()
    out = check_output_path(out)
    format_for(out, format)
    files = expand_inputs(inputs, options.loader)
    jobs = min(jobs or os.cpu_count() or 1, len(files))
    clips: list[Clip] = []
    skipped: list[tuple[Path, str]] = []
    owner: dict[str, Path] = {}
    for path, (loaded, error) in zip(files, _load_all(files, options, jobs, progress), strict=True):
        if error is None and clips:
            loaded = [_same_joint_order(c, clips[0].skeleton) for c in loaded]
        if error is None:
            error = _fit_error(path, loaded, clips, owner)
        if error is not None:
            if not skip_bad:
                raise OptiqError(error)
            skipped.append((path, error))
            if on_skip:
                on_skip(path, error)
            continue
        for c in loaded:
            owner[c.name] = path
        clips.extend(loaded)
    if not clips:
        raise OptiqError(f"no clips to write: all {len(files)} input files were skipped", out)
    write_dataset(out, clips, format, velocities=velocities)
    return ConvertResult(out, clips, files, skipped)


def _same_joint_order(clip: Clip, reference: Skeleton) -> Clip:
    """``clip`` with its joints in the reference's order when it has the same joints listed in another order
    (exporters do not keep one order across files); otherwise unchanged, for the topology check to judge."""
    names = clip.skeleton.names
    if names == reference.names or sorted(names) != sorted(reference.names) or names[0] != reference.names[0]:
        return clip
    try:
        return clip.with_joint_order(reference.names)
    except OptiqError:
        return clip


def _fit_error(path: Path, loaded: list[Clip], clips: list[Clip], owner: dict[str, Path]) -> str | None:
    """Why the clips of ``path`` cannot join those already collected (skeleton topology, clip names), or None."""
    reference = clips[0] if clips else loaded[0]
    try:
        for c in loaded:
            check_topology(c.skeleton, reference.skeleton, f"clip {c.name!r}", path,
                           f"the first clip {reference.name!r} ({owner.get(reference.name, path)})")
    except OptiqError as exc:
        return str(exc)
    names = [c.name for c in loaded]
    for name in names:
        if name in owner or names.count(name) > 1:
            return f"{path}: clip name {name!r} is already used by {owner.get(name, path)}; clip names must be unique"
    return None


def _load_all(files: list[Path], options: ConvertOptions, jobs: int, progress: bool):
    """Results of ``_load_or_error`` in file order, from a process pool when ``jobs > 1``."""
    from tqdm import tqdm

    bar = tqdm(total=len(files), unit="file", desc="converting", disable=not progress, leave=False)
    jobs_in = [(f, options) for f in files]
    try:
        if jobs <= 1:
            for job in jobs_in:
                yield _load_or_error(job)
                bar.update()
            return
        pool = ProcessPoolExecutor(max_workers=jobs)
        try:
            for result in pool.map(_load_or_error, jobs_in, chunksize=1):
                yield result
                bar.update()
        finally:
            # A stop at a bad file (or Ctrl-C) must not wait for the files still queued.
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
