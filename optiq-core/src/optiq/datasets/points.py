"""Points datasets (schema version 2, ``kind: "points"``): takes of one point set (markers, keypoints) in
Parquet or HDF5, specified in docs/dataset-format.md ("Points datasets").

One point set per dataset: the same point names in the same order and the same dimension (2 or 3) in every take,
as a skeleton dataset holds one topology. Positions and confidences are float32 on disk; a missing point is NaN
with confidence 0, as in :class:`optiq.Points`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import atomic_path
from ..errors import DatasetError
from ..points import Points
from .base import FORMAT_TAG, ClipTable, TableWriter, check_header_tag, label_values
from .hdf5 import CHUNK_FRAMES, HDF5Input, HDF5Output, clip_rows
from .parquet import METADATA_KEY, ROW_GROUP_FRAMES, ParquetInput, ParquetOutput

POINTS_SCHEMA_VERSION = 2
KIND = "points"
FIELDS = ("positions", "confidence")


@dataclass(frozen=True, eq=False)
class PointsInfo:
    """One row of a points dataset's take table (known without reading frames).

    start: the take's first row (Parquet). image_size: ``(width, height)`` pixels for 2D points. valid_fraction:
    share of (frame, point) samples that are present; mean_confidence: their mean confidence (missing counted 0);
    valid_by_point: ``[K]`` share of frames in which each point is present.
    """

    name: str
    fps: float
    num_frames: int
    labels: dict[str, str] = field(default_factory=dict)
    frame_labels: tuple[str, ...] = ()
    image_size: tuple[int, int] | None = None
    valid_fraction: float = 1.0
    mean_confidence: float = 1.0
    valid_by_point: tuple[float, ...] = ()
    start: int = 0

    def __repr__(self) -> str:
        return f"PointsInfo({self.name!r}, frames={self.num_frames}, fps={self.fps:g}, valid={self.valid_fraction:.1%})"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "fps": self.fps, "num_frames": self.num_frames, "start": self.start,
                "labels": dict(self.labels), "frame_labels": list(self.frame_labels),
                "image_size": None if self.image_size is None else list(self.image_size),
                "valid_fraction": self.valid_fraction, "mean_confidence": self.mean_confidence,
                "valid_by_point": list(self.valid_by_point)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PointsInfo:
        size = d.get("image_size")
        return cls(str(d["name"]), float(d["fps"]), int(d["num_frames"]),
                   {str(k): str(v) for k, v in d.get("labels", {}).items()}, tuple(d.get("frame_labels", ())),
                   None if size is None else (int(size[0]), int(size[1])), float(d.get("valid_fraction", 1.0)),
                   float(d.get("mean_confidence", 1.0)), tuple(float(x) for x in d.get("valid_by_point", ())),
                   int(d.get("start", 0)))


def is_points(items: Sequence[Any]) -> bool:
    """Whether ``items`` (what ``write_dataset`` was given) are Points; a mix with Clips is an error."""
    kinds = {isinstance(x, Points) for x in items}
    if kinds == {True, False}:
        raise DatasetError("cannot write Points (markers) and Clips (skeletons) into one dataset")
    return kinds == {True}


# --- writing ---------------------------------------------------------------------------------------------------
class PointsWriter(TableWriter):
    """Streams takes of one point set into a dataset file (memory: one take); see TableWriter for the lifetime.

    first: the first take, which fixes the point set (names, dim, unit, edges). frame_labels: name -> numpy dtype.
    """

    fields_reserved = FIELDS

    def __init__(self, path: str | os.PathLike, first: Points, frame_labels: Mapping[str, Any] | None = None):
        super().__init__(path, frame_labels)
        self.names, self.dim, self.unit, self.edges = first.names, first.dim, first.unit, first.edges

    def add(self, pts: Points) -> PointsInfo:
        """Append one take; it must fit the dataset (see ``check``). Positions beyond float32's range are refused
        (a missing point is NaN on disk, so NaN is not an error here)."""
        self.check(pts)
        with np.errstate(over="ignore"):  # overflow is reported below, with the take, frame and point
            arrays = {"positions": pts.positions.astype(np.float32), "confidence": pts.confidence.astype(np.float32)}
        bad = np.isinf(arrays["positions"]).any(axis=2)
        if bad.any():
            t, k = np.unravel_index(int(np.argmax(bad)), bad.shape)
            raise DatasetError("position beyond float32's range (+-3.4e38); check --scale and the unit", self.path,
                               f"clip {pts.name!r}, frame {int(t)}, point {self.names[k]!r}")
        info = replace(info_of(pts), start=self.num_rows)
        self._append(info, arrays, pts.frame_labels)
        return info

    def check(self, pts: Points) -> None:
        """Raise DatasetError unless ``pts`` can join the dataset: a new valid name, the dataset's point names
        (same order), dimension and unit, declared frame labels."""
        self._check_new(pts.name, pts.labels, pts.num_frames, pts.frame_labels)
        if pts.dim != self.dim or pts.unit != self.unit:
            raise DatasetError(f"clip {pts.name!r}: {pts.dim}D points in {pts.unit}, the dataset holds {self.dim}D "
                               f"points in {self.unit}", self.path)
        if pts.names != self.names:
            a, b = pts.names, self.names
            j = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
            detail = (f"point {j} is {a[j]!r}, expected {b[j]!r}" if j < min(len(a), len(b))
                      else f"{len(a)} points, expected {len(b)}")
            raise DatasetError(f"clip {pts.name!r}: point set differs from the first clip's: {detail}", self.path)

    def header(self) -> dict[str, Any]:
        """The dataset header (docs/dataset-format.md, "Points datasets")."""
        self._check_not_empty()
        return {"format": FORMAT_TAG, "schema_version": POINTS_SCHEMA_VERSION, "kind": KIND,
                "points": {"names": list(self.names), "dim": self.dim, "unit": self.unit,
                           "edges": self.edges.tolist()},
                "fields": list(FIELDS), "frame_labels": self.frame_label_types(),
                "num_frames": self.num_rows, "clips": [c.to_json() for c in self.clips.values()]}


class ParquetPointsWriter(ParquetOutput, PointsWriter):
    """One row per frame: ``clip``, ``frame``, ``positions`` (K*D float32), ``confidence`` (K float32), labels."""

    def __init__(self, path: str | os.PathLike, first: Points, frame_labels: Mapping[str, Any] | None = None, *,
                 row_group_frames: int = ROW_GROUP_FRAMES, compression: str = "zstd"):
        PointsWriter.__init__(self, path, first, frame_labels)
        k = len(self.names)
        self._open_output({"positions": k * self.dim, "confidence": k}, row_group_frames, compression)


class HDF5PointsWriter(HDF5Output, PointsWriter):
    """A group per take with chunked ``positions [T, K, D]`` and ``confidence [T, K]`` float32."""

    def __init__(self, path: str | os.PathLike, first: Points, frame_labels: Mapping[str, Any] | None = None, *,
                 chunk_frames: int = CHUNK_FRAMES, compression: str | None = "gzip", compression_opts: int | None = 1):
        PointsWriter.__init__(self, path, first, frame_labels)
        self._open_output(chunk_frames, compression, compression_opts)

    def _write_clip(self, info: PointsInfo, arrays: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> None:
        attrs = {key: getattr(info, key) for key in ("fps", "num_frames", "valid_fraction", "mean_confidence")}
        attrs["valid_by_point"] = np.asarray(info.valid_by_point, dtype=np.float64)
        if info.image_size is not None:
            attrs["image_size"] = np.array(info.image_size, dtype=np.int64)
        self._clip_group(info, arrays, labels, attrs)
        self._check_written()

    def _write_tables(self) -> None:
        g = self._file.create_group("points")
        g.attrs["dim"], g.attrs["unit"] = self.dim, self.unit
        g.create_dataset("names", data=np.array(self.names, dtype=object), dtype=h5py.string_dtype())
        g.create_dataset("edges", data=self.edges.astype(np.int32).reshape(-1, 2))


WRITERS = {"parquet": ParquetPointsWriter, "hdf5": HDF5PointsWriter}


def points_writer_class(fmt: Any) -> type[PointsWriter]:
    """The points writer of dataset format ``fmt`` (``datasets.format_for``); DatasetError for a format that
    does not store points (a plugin's)."""
    name = getattr(fmt, "name", None)
    if name not in WRITERS:
        raise DatasetError(f"dataset format {name or fmt!r} does not store points; use .parquet, .h5 or .hdf5")
    return WRITERS[name]


def write_points_dataset(path: str | os.PathLike, takes: Sequence[Points], fmt: Any, **options: Any) -> Path:
    """Write ``takes`` (one point set) to a points dataset at ``path``, atomically. fmt: the format object
    (``datasets.format_for``); options: ``row_group_frames`` (Parquet), ``chunk_frames``, ``compression`` (HDF5)."""
    from . import frame_label_dtypes

    takes = list(takes)
    if not takes:
        raise DatasetError("no clips to write", path)
    writer_class = points_writer_class(fmt)
    with atomic_path(path) as tmp, writer_class(tmp, takes[0], frame_label_dtypes(takes), **options) as writer:
        for pts in takes:
            writer.add(pts)
    return Path(path)


# --- reading ---------------------------------------------------------------------------------------------------
def is_points_file(path: Path, fmt: Any) -> bool:
    """Whether the dataset at ``path`` is a points dataset (header ``kind: "points"``); False for a skeleton
    dataset and for a file the format's own reader should judge and report. Only the kind is looked at: the
    reader that opens the file next checks the header."""
    name = getattr(fmt, "name", None)
    try:
        if name == "parquet":
            raw = (pq.read_metadata(path).metadata or {}).get(METADATA_KEY)
            # A skeleton header (its clip table can be megabytes) is not parsed twice: only a header that holds
            # the word "kind" somewhere (a points header, or a clip label key) needs a look at its top level.
            if not raw or b'"kind"' not in raw:
                return False
            header = json.loads(raw)
            return isinstance(header, dict) and header.get("kind") == KIND
        if name == "hdf5":
            with h5py.File(path, "r") as f:
                return f.attrs.get("kind") == KIND
    except (OSError, ValueError, pa.ArrowException):
        return False
    return False


class PointsDataset(ClipTable):
    """A read-only points dataset (``optiq.open_dataset`` returns one for a file of kind ``points``).

    ``ds.clips`` is the take table (PointsInfo); ``ds.read_points(name)`` (or ``ds[name]``) a whole take as
    Points, ``ds.window(name, start, length)`` a piece, ``ds.arrays(name, start, stop)`` the float32 arrays as
    stored. ``ds.names``, ``ds.dim``, ``ds.unit``, ``ds.edges`` describe the point set. Use as a context manager.
    Subclasses open the file, then call ``__init__`` with its header, and implement ``_read``.
    """

    kind = KIND
    read_errors = (OSError, ValueError, KeyError, pa.ArrowException)

    def __init__(self, path: str | os.PathLike, header: Mapping[str, Any]):
        check_header_tag(header, POINTS_SCHEMA_VERSION, path)
        try:
            p = header["points"]
            self.names = tuple(str(n) for n in p["names"])
            self.dim, self.unit = int(p["dim"]), str(p["unit"])
            self.edges = np.asarray(p.get("edges", []), dtype=np.int64).reshape(-1, 2)
            clips = [PointsInfo.from_json(c) for c in header["clips"]]
            self.fields = tuple(header["fields"])
            frame_label_types = dict(header.get("frame_labels", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"damaged dataset header: {type(exc).__name__}: {exc}", path) from None
        if self.dim not in (2, 3) or self.fields != FIELDS:
            raise DatasetError(f"damaged dataset header: dim {self.dim}, fields {list(self.fields)} (2 or 3, and "
                               f"{list(FIELDS)} expected)", path)
        if ((self.edges < 0) | (self.edges >= len(self.names))).any():
            raise DatasetError(f"damaged dataset header: edges outside the {len(self.names)} points", path)
        super().__init__(path, clips, frame_label_types)

    def _row_problem(self, row: PointsInfo) -> str | None:
        if row.valid_by_point and len(row.valid_by_point) != len(self.names):
            return f"has {len(row.valid_by_point)} valid_by_point shares ({len(self.names)} expected)"
        return None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, clips={len(self)}, frames={self.num_frames}, "
                f"points={len(self.names)}, dim={self.dim})")

    def arrays(self, clip: str | int, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Frames ``[start, stop)`` as stored: ``positions [T, K, D]`` (metres or pixels, NaN where missing) and
        ``confidence [T, K]`` float32, and the take's frame labels under their names."""
        info = self.info(clip)
        out = self._read_frames(info, start, stop, [*FIELDS, *info.frame_labels])
        # Writers store no infinite position and confidences in [0, 1]: anything else is damage.
        bad = np.isinf(out["positions"]).any(axis=2) | ~((out["confidence"] >= 0) & (out["confidence"] <= 1))
        if bad.any():
            t, k = np.unravel_index(int(np.argmax(bad)), bad.shape)
            raise DatasetError(f"damaged dataset: position {out['positions'][t, k].tolist()} with confidence "
                               f"{out['confidence'][t, k]}, expected finite positions and confidences in [0, 1]",
                               self.path, f"clip {info.name!r}, frame {start + int(t)}, point {self.names[k]!r}")
        return out

    def window(self, clip: str | int, start: int, length: int) -> Points:
        """Frames ``[start, start + length)`` of a take as Points (float64)."""
        info = self.info(clip)
        arr = self.arrays(info.name, start, start + length)
        return Points(arr["positions"].astype(np.float64), self.names, info.fps,
                      confidence=arr["confidence"].astype(np.float64), edges=self.edges, unit=self.unit,
                      image_size=info.image_size, name=info.name, labels=dict(info.labels),
                      frame_labels={k: arr[k] for k in info.frame_labels})

    def read_points(self, clip: str | int) -> Points:
        """A whole take as Points (float64)."""
        info = self.info(clip)
        return self.window(info.name, 0, info.num_frames)

    __getitem__ = read_points

    def iter_points(self) -> Iterator[Points]:
        """Every take in order, one in memory at a time."""
        for info in self.clips:
            yield self.read_points(info.name)

    # What only skeleton datasets have is refused in one line, so that a command written for them (data label,
    # export, viz) reports a points dataset instead of failing inside.
    def read_clip(self, clip: str | int):
        """Points datasets hold no skeleton: refused in one line (use ``read_points``)."""
        raise DatasetError(f"a points dataset (markers, no skeleton) holds no Clips; read {clip!r} with "
                           f"read_points", self.path)

    @property
    def skeleton(self):
        raise DatasetError("a points dataset (markers, no skeleton) has no skeleton; this reads skeleton datasets",
                           self.path)

    def windows(self, *args, **kwargs):
        raise DatasetError("a points dataset (markers, no skeleton) holds no Clip windows; use window() for Points",
                           self.path)

    def stream(self, *args, **kwargs):
        raise DatasetError("a points dataset (markers, no skeleton) cannot be streamed as Clips; use iter_points()",
                           self.path)

    def summary(self) -> dict[str, Any]:
        """What ``optiq data info --json`` prints for a points dataset."""
        return points_summary(self.path, self.format_name, POINTS_SCHEMA_VERSION, self.names, self.dim, self.unit,
                              self.edges, self.clips, self.frame_label_types)


class ParquetPointsDataset(ParquetInput, PointsDataset):
    format_name = "parquet"

    def _init_table(self, path: Path, header: dict[str, Any]) -> None:
        PointsDataset.__init__(self, path, header)

    def _frame_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"positions": (len(self.names), self.dim), "confidence": (len(self.names),)}


class HDF5PointsDataset(HDF5Input, PointsDataset):
    format_name = "hdf5"

    def _init_table(self, path: Path, header: dict[str, Any]) -> None:
        PointsDataset.__init__(self, path, header)

    def _shapes(self, info: PointsInfo) -> dict[str, tuple[int, ...]]:
        k = len(self.names)
        return {"positions": (info.num_frames, k, self.dim), "confidence": (info.num_frames, k)}

    def _header(self, path: str) -> dict[str, Any]:
        """The file's attributes and groups in the shape of the Parquet JSON header."""
        f, a, g = self._file, self._file.attrs, self._file["points"]
        clips = []
        for row, c in clip_rows(f):
            size = c.attrs.get("image_size")
            clips.append({**row, "image_size": None if size is None else [int(x) for x in size],
                          "valid_fraction": float(c.attrs.get("valid_fraction", 1.0)),
                          "mean_confidence": float(c.attrs.get("mean_confidence", 1.0)),
                          "valid_by_point": [float(x) for x in c.attrs.get("valid_by_point", [])]})
        return {"format": a.get("format"), "schema_version": int(a["schema_version"]), "kind": KIND,
                "points": {"names": list(g["names"].asstr()[()]), "dim": int(g.attrs["dim"]),
                           "unit": str(g.attrs["unit"]), "edges": g["edges"][()].tolist()},
                "fields": [str(x) for x in a["fields"]], "frame_labels": json.loads(a["frame_label_types"]),
                "num_frames": int(a["num_frames"]), "clips": clips}


READERS = {"parquet": ParquetPointsDataset, "hdf5": HDF5PointsDataset}


def open_points_dataset(path: Path, fmt: Any) -> PointsDataset | None:
    """The points dataset at ``path``, or None when the file is not one (``open_dataset`` then reads it as a
    skeleton dataset)."""
    return READERS[fmt.name](path) if is_points_file(path, fmt) else None


def points_summary(path: str | os.PathLike, format_name: str, schema_version: int | None, names: Sequence[str],
                   dim: int, unit: str, edges: np.ndarray, clips: Sequence[PointsInfo],
                   frame_label_types: Mapping[str, str]) -> dict[str, Any]:
    """The ``optiq data info --json`` object of a points dataset or of a marker file's takes."""
    frames = sum(c.num_frames for c in clips)
    return {
        "path": str(path), "format": format_name, "schema_version": schema_version, "kind": KIND,
        "num_clips": len(clips), "num_frames": frames, "fps": sorted({c.fps for c in clips}),
        "fields": list(FIELDS),
        "points": {"num_points": len(names), "names": list(names), "dim": dim, "unit": unit,
                   "edges": np.asarray(edges).tolist()},
        "valid_fraction": sum(c.valid_fraction * c.num_frames for c in clips) / max(frames, 1),
        "valid_by_point": dict(zip(names, _valid_by_point(clips, len(names)).tolist(), strict=True)),
        "labels": label_values(clips), "frame_labels": dict(frame_label_types),
        "clips": [{"name": c.name, "num_frames": c.num_frames, "fps": c.fps, "duration_s": (c.num_frames - 1) / c.fps,
                   "valid_fraction": c.valid_fraction, "mean_confidence": c.mean_confidence,
                   "image_size": None if c.image_size is None else list(c.image_size),
                   "labels": dict(c.labels), "frame_labels": list(c.frame_labels)} for c in clips],
    }


def info_of(pts: Points) -> PointsInfo:
    """The take table row of in-memory Points (for ``optiq data info`` of a marker file)."""
    valid = pts.valid
    return PointsInfo(pts.name, pts.fps, pts.num_frames, dict(pts.labels), tuple(pts.frame_labels), pts.image_size,
                      float(valid.mean()), float(pts.confidence.mean()), tuple(valid.mean(axis=0).tolist()))


def _valid_by_point(clips: Sequence[PointsInfo], k: int) -> np.ndarray:
    """``[K]`` share of all frames in which each point is present (a take without the per-point shares counts
    its overall share for every point)."""
    total = np.zeros(k)
    for c in clips:
        share = np.asarray(c.valid_by_point) if len(c.valid_by_point) == k else np.full(k, c.valid_fraction)
        total += share * c.num_frames
    return total / max(sum(c.num_frames for c in clips), 1)
