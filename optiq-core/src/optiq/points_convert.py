"""Marker files (C3D, any loader registered with ``output="points"``) -> a points dataset.

``optiq.convert.convert`` hands over here when its inputs are marker files. Takes are loaded one at a time and
streamed to the writer (memory: one take). Steps that need a skeleton are refused in one line, never ignored.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path
from .errors import OptiqError
from .points import Points, load_points

# ConvertOptions fields (and convert() flags) that mean nothing without a skeleton -> the option the user typed.
SKELETON_STEPS = {"drop_tpose": "--drop-tpose", "velocities": "--compute-velocities", "root": "--root",
                  "joints": "--joints", "rename": "--rename",
                  # A Butterworth filter spreads every gap (NaN) over the whole trajectory; gaps are never filled.
                  "smooth": "--smooth"}
# Options that change a length unit or axes -> the option the user typed: nothing to change for points whose
# loader takes no ``unit`` (2D keypoints: image pixels, x right, y down), so they are refused for those.
LENGTH_STEPS = {"unit": "--unit", "up": "--up", "scale": "--scale"}


def points_inputs(files: Sequence[Path], loader: str | None) -> bool:
    """Whether ``files`` are marker files (their loader registered ``output="points"``). A mix of marker files
    and skeleton motion files is an error naming one of each; files no loader claims count as neither."""
    from .io import loader_for

    kinds: dict[bool, Path] = {}
    for f in files:
        try:
            kinds.setdefault(loader_for(f, loader).meta.get("output") == "points", f)
        except OptiqError:
            continue
    if len(kinds) == 2:
        raise OptiqError(f"cannot convert marker files ({kinds[True]}: points, no skeleton) and skeleton motion "
                         f"files ({kinds[False]}) into one dataset")
    return kinds.get(True) is not None


def refuse_skeleton_steps(options: Any, velocities: bool) -> None:
    """Raise OptiqError naming the first skeleton-only step asked for (``options``: a ConvertOptions)."""
    asked = {name: getattr(options, name, None) for name in SKELETON_STEPS}
    asked["velocities"] = velocities
    for name, value in asked.items():
        if value:
            raise OptiqError(f"{SKELETON_STEPS[name]} does not apply to marker files (points have no skeleton)")


def refuse_length_steps(files: Sequence[Path], options: Any) -> None:
    """Raise OptiqError when ``--unit``, ``--up`` or ``--scale`` is asked for a file whose points loader takes
    no ``unit`` option (OpenPose, COCO keypoints, video: pixels of the picture). Checked before any file is
    read: reading a video runs a pose estimator over every frame."""
    from .io import check_input_file, folder_loader, loader_for, loader_function, loader_options

    asked = [flag for name, flag in LENGTH_STEPS.items() if getattr(options, name, None) not in (None, 1.0)]
    if not asked:
        return
    for path in files:
        try:
            cap = (folder_loader(path, options.loader) if path.is_dir()
                   else loader_for(check_input_file(path), options.loader))
            accepted = loader_options(loader_function(cap, path))
        except OptiqError:
            continue  # reported when the file is read
        if accepted is not None and "unit" not in accepted:
            raise OptiqError(f"{asked[0]} does not apply to its points (loader {cap.name!r}): they are image "
                             "pixels, with no length unit or up axis", path)


def _takes(path: Path, options: Any) -> list[Points]:
    """The takes of one marker file after the unit/up overrides, --scale, --fps and --label of ``options``."""
    loader_options: dict[str, Any] = dict(getattr(options, "options", None) or {})
    for key in ("unit", "up"):
        if getattr(options, key, None):
            loader_options[key] = getattr(options, key)
    out = []
    for pts in load_points(path, options.loader, **loader_options):
        if options.scale is not None and options.scale != 1.0:
            pts = pts.transformed(np.eye(pts.dim), options.scale)
        if options.fps:
            pts = pts.resample(options.fps)
        out.append(pts.with_labels(dict(options.labels)) if options.labels else pts)
    return out


def convert_points(files: Sequence[Path], out: str | os.PathLike, fmt: Any, options: Any, *,
                   velocities: bool = False, skip_bad: bool = False,
                   on_skip: Callable[[Path, str], None] | None = None):
    """Write the takes of marker ``files`` to a points dataset at ``out``, atomically; returns a
    ``convert.ConvertResult`` whose ``clips`` are PointsInfo rows. A file that cannot be read or whose marker
    set differs from the first file's stops the run, or with ``skip_bad`` is reported and left out."""
    from .convert import ConvertResult
    from .datasets import frame_label_dtypes
    from .datasets.points import points_writer_class

    refuse_skeleton_steps(options, velocities)
    refuse_length_steps(files, options)
    writer_class = points_writer_class(fmt)
    out = Path(out)
    skipped: list[tuple[Path, str]] = []
    writer = None
    with atomic_path(out) as tmp:
        try:
            for path in files:
                try:
                    takes = _takes(path, options)
                    if writer is None:
                        writer = writer_class(tmp, takes[0], frame_label_dtypes(takes))
                    for pts in takes:
                        writer.check(pts)
                except OptiqError as exc:
                    # Name the input file: a writer's error names the output, which is not what is wrong.
                    where = f" ({exc.where})" if exc.where else ""
                    # A folder input (OpenPose JSON) keeps the error's frame file, which is inside it.
                    own = exc.path == str(path) or (exc.path or "").startswith(os.path.join(path, ""))
                    message = str(exc) if own else f"{path}: {exc.message}{where}"
                    if not skip_bad:
                        raise OptiqError(message) from None
                    skipped.append((path, message))
                    if on_skip:
                        on_skip(path, message)
                    continue
                for pts in takes:
                    writer.add(pts)
            if writer is None:
                raise OptiqError(f"no clips to write: all {len(files)} input files were skipped", out)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        writer.close()
    return ConvertResult(out, list(writer.clips.values()), list(files), skipped)
