"""Datasets of clips: ``open_dataset`` and ``write_dataset`` over the format registry (parquet, hdf5, plugins).

A format is a registered object with ``open(path) -> Dataset`` and ``writer(path, skeleton, *, frame_labels,
local_translations, velocities, **options) -> DatasetWriter`` (``DatasetFormat`` subclasses); the built-in ones are
ParquetFormat and HDF5Format.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..clip import Clip
from ..errors import DatasetError, PluginError
from .base import (
    EXTRAS_SCHEMA_VERSION,
    SCHEMA_VERSION,
    Chunk,
    ClipInfo,
    Dataset,
    DatasetFormat,
    DatasetWriter,
    WindowSet,
    check_topology,
)

__all__ = [
    "EXTRAS_SCHEMA_VERSION",
    "SCHEMA_VERSION",
    "Chunk",
    "ClipInfo",
    "Dataset",
    "DatasetFormat",
    "DatasetWriter",
    "WindowSet",
    "check_topology",
    "format_for",
    "frame_label_dtypes",
    "merged_label_dtype",
    "open_dataset",
    "write_dataset",
]


def format_for(path: str | os.PathLike, format: str | None = None) -> Any:
    """The format object for ``path``: the one named (a registered name or ``"module:attr"``), else the one
    whose suffix matches."""
    from ..plugins import registry

    reg = registry("format")
    if format:
        return reg.load(format)
    suffix = Path(path).suffix.lower()
    caps = reg.find(lambda c: suffix in c.meta.get("suffixes", ()))
    if not caps:
        known = sorted({s for c in reg for s in c.meta.get("suffixes", ())})
        raise PluginError(f"no dataset format for {suffix or 'files without a suffix'}; known suffixes: "
                          f"{', '.join(known)}", path)
    return caps[0].load()


def open_dataset(path: str | os.PathLike, format: str | None = None) -> Dataset:
    """Open a dataset for reading (format by suffix unless named). Use as a context manager."""
    path = Path(path)
    fmt = format_for(path, format)
    if not path.is_file():
        raise DatasetError("dataset does not exist" if not path.exists() else "is not a file", path)
    # Points datasets (schema version 2, kind "points": markers, keypoints) have their own reader.
    from .points import open_points_dataset

    points = open_points_dataset(path, fmt)
    return fmt.open(path) if points is None else points


def merged_label_dtype(dtypes: Sequence[np.dtype]) -> np.dtype | None:
    """The one dtype that holds a frame label's arrays of ``dtypes``: text stays text, numbers widen; None when
    text mixes with numbers."""
    text = [np.dtype(d).kind in "USO" for d in dtypes]
    if any(text) and not all(text):
        return None
    return np.dtype(str) if all(text) else np.result_type(*dtypes)


def frame_label_dtypes(clips: Iterable[Clip]) -> dict[str, np.dtype]:
    """The dtype of every frame label across ``clips`` (text stays text, numbers widen)."""
    kinds: dict[str, list[np.dtype]] = {}
    for c in clips:
        for k, v in c.frame_labels.items():
            kinds.setdefault(k, []).append(v.dtype)
    out = {}
    for name, dts in kinds.items():
        merged = merged_label_dtype(dts)
        if merged is None:
            raise DatasetError(f"frame label {name!r} is text in some clips and numbers in others")
        out[name] = merged
    return out


def write_dataset(path: str | os.PathLike, clips: Sequence[Clip], format: str | None = None, *,
                  velocities: bool = False, extras: Sequence[Mapping[str, np.ndarray]] | None = None,
                  **options: Any) -> Path:
    """Write ``clips`` (one skeleton topology) to a dataset file, atomically.

    format: a registered format name or ``"module:attr"``; by default chosen by the suffix (``.parquet``,
    ``.h5``, ``.hdf5``). velocities: also store world linear ``[T, J, 3]`` m/s and angular ``[T, J, 3]`` rad/s
    velocities. extras: per clip, extra per-frame arrays ``{name: [T, ...]}`` (the same names and frame shapes in
    every clip; a character's ``qpos``/``qvel``): stored as schema version 3. options: passed to the format's
    writer (``row_group_frames`` for Parquet, ``chunk_frames`` and ``compression`` for HDF5). For more clips than fit in memory, use ``format.writer`` and ``add``
    clip by clip. Raises SkeletonMismatchError naming the clip and the first joint that differs.
    """
    clips = list(clips)
    if not clips:
        raise DatasetError("no clips to write", path)
    fmt = format_for(path, format)
    from .points import is_points, write_points_dataset

    if is_points(clips):  # optiq.Points (markers, keypoints): a points dataset, docs/dataset-format.md
        if velocities:
            raise DatasetError("velocities are computed from skeletons; points datasets do not store them", path)
        return write_points_dataset(path, clips, fmt, **options)
    first = clips[0]
    for c in clips[1:]:
        check_topology(c.skeleton, first.skeleton, f"clip {c.name!r}", c.labels.get("source"),
                       f"the first clip {first.name!r}")
    if extras is not None and len(extras) != len(clips):
        raise DatasetError(f"{len(extras)} sets of extras for {len(clips)} clips", path)
    shapes = {k: np.shape(v)[1:] for k, v in extras[0].items()} if extras else {}
    with atomic_path(path) as tmp:
        writer = fmt.writer(tmp, first.skeleton, frame_labels=frame_label_dtypes(clips),
                            local_translations=any(c.local_translations is not None for c in clips),
                            velocities=velocities, **({"extras": shapes} if shapes else {}), **options)
        with writer:
            for i, c in enumerate(clips):
                writer.add(c, extras=extras[i] if extras else None)
    return Path(path)
