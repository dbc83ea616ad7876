"""HDF5 datasets: a group per clip with chunked float32 datasets, labels as attributes (docs/dataset-format.md).

Everything a reader needs is plain HDF5 (attributes, datasets, groups in insertion order), so h5py users read
it without optiq. Chunks hold ``chunk_frames`` frames: a random window touches one or two chunks per field.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import DatasetError
from .base import (
    FORMAT_TAG,
    ClipInfo,
    Dataset,
    DatasetFormat,
    DatasetWriter,
    field_shape,
    parse_header,
)

CHUNK_FRAMES = 256


class _QuietFile:
    """The file object HDF5 writes through (h5py's ``fileobj`` driver): it keeps the first OSError of a write
    (a full disk) in ``error`` instead of raising it into HDF5, and discards later writes.

    HDF5's C library does not survive write errors: through its own driver, or when the error is raised into it,
    the error surfaces while objects are freed and the process segfaults (HDF5 2.0, h5py 3.16). The writer raises
    ``error`` itself once HDF5 has returned; the file is garbage by then and is removed.
    """

    def __init__(self, path: Path):
        # Unbuffered: HDF5 buffers itself, and a buffered file would raise a deferred write error from seek().
        self._fh = io.FileIO(path, "w+")
        self.error: OSError | None = None

    def _guard(self, op, *args):
        if self.error is None:
            try:
                return op(*args)
            except OSError as exc:
                self.error = exc
        return None

    def write(self, data) -> int:
        self._guard(self._write_all, memoryview(data).cast("B"))
        return len(data)

    def _write_all(self, view: memoryview) -> None:
        while view:
            view = view[self._fh.write(view):]

    def truncate(self, size: int) -> int:
        self._guard(self._fh.truncate, size)
        return size

    def flush(self) -> None:
        self._guard(self._fh.flush)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def readinto(self, buffer) -> int:
        return self._fh.readinto(buffer)

    def read(self, size: int = -1) -> bytes:
        return self._fh.read(size)

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self._fh.close()


class HDF5Output:
    """The HDF5 side of a writer (mixed into a TableWriter): the file, written through ``_QuietFile``, with the
    format tag, and a group per clip under ``/clips`` holding chunked float32 arrays, ``labels`` and
    ``frame_labels``. chunk_frames: frames per chunk. compression: an h5py filter (``"gzip"`` is readable by every
    HDF5 library; ``"lzf"`` only by h5py) or None; compression_opts: its level."""

    path: Path
    frame_label_dtypes: dict[str, np.dtype]
    header: Callable[[], dict[str, Any]]  # the TableWriter's

    def _open_output(self, chunk_frames: int, compression: str | None, compression_opts: int | None) -> None:
        self.chunk_frames = chunk_frames
        self.filters = {"compression": compression, "compression_opts": compression_opts if compression else None,
                        "shuffle": compression is not None}
        # Written through a Python file object, so that a full disk raises OSError instead of a segfault; the
        # atomic part file is flocked, which HDF5's own file locking would conflict with.
        self._fh = _QuietFile(self.path)
        try:
            self._file = h5py.File(self._fh, "w", track_order=True)
        except BaseException:
            self._fh.close()
            raise
        self._file.attrs["format"] = FORMAT_TAG
        self._clips = self._file.create_group("clips", track_order=True)

    def _clip_group(self, info: Any, arrays: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                    attrs: dict[str, Any]) -> h5py.Group:
        """The group of clip ``info`` with its ``attrs``, ``arrays`` (frame axis first, chunked), clip labels and
        frame ``labels``; the caller adds what only its kind of dataset has, then calls ``_check_written``."""
        g = self._clips.create_group(info.name, track_order=True)
        for key, value in attrs.items():
            g.attrs[key] = value
        chunk = min(self.chunk_frames, info.num_frames)
        for name, arr in arrays.items():
            g.create_dataset(name, data=arr, chunks=(chunk, *arr.shape[1:]), **self.filters)
        lab = g.create_group("labels", track_order=True)
        for k, v in info.labels.items():
            lab.attrs[k] = v
        fl = g.create_group("frame_labels", track_order=True)
        for name, values in labels.items():
            if self.frame_label_dtypes[name].kind in "USO":
                fl.create_dataset(name, data=values.astype(str).astype(object), dtype=h5py.string_dtype())
            else:
                fl.create_dataset(name, data=values.astype(self.frame_label_dtypes[name]))
        return g

    def _check_written(self) -> None:
        """Raise the write error (a full disk) that HDF5 was kept from seeing."""
        self._fh.raise_error()

    def _finish(self) -> None:
        """Write the header's root attributes and the tables beside ``/clips``, close the file (always), then
        raise a write error if there was one."""
        try:
            h = self.header()
            attrs = {"schema_version": h["schema_version"], "num_frames": h["num_frames"], "fields": h["fields"],
                     "frame_label_types": json.dumps(h["frame_labels"])}
            if "kind" in h:
                attrs["kind"] = h["kind"]
            if "extras" in h:
                attrs["extras"] = json.dumps(h["extras"])
            for key, value in attrs.items():
                self._file.attrs[key] = value
            self._write_tables()
        finally:
            self._close_output()
        self._fh.raise_error()

    def _write_tables(self) -> None:
        """Write the groups beside ``/clips`` that describe the whole dataset (skeleton or point set)."""

    def _close_output(self) -> None:
        try:
            self._file.close()
        finally:
            self._fh.close()

    _abort = _close_output


class HDF5Writer(HDF5Output, DatasetWriter):
    """Streams clips into an HDF5 file; see DatasetWriter and HDF5Output for the arguments."""

    def __init__(self, path: str | os.PathLike, skeleton, *, chunk_frames: int = CHUNK_FRAMES,
                 compression: str | None = "gzip", compression_opts: int | None = 1, **options: Any):
        DatasetWriter.__init__(self, path, skeleton, **options)
        self._open_output(chunk_frames, compression, compression_opts)

    def _write_clip(self, info: ClipInfo, arrays: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> None:
        g = self._clip_group(info, arrays, labels, {"fps": info.fps, "num_frames": info.num_frames})
        g.create_dataset("offsets", data=info.offsets)
        g.create_dataset("end_site_joints", data=np.array(sorted(info.end_sites), dtype=np.int32))
        g.create_dataset("end_site_offsets", data=np.array([info.end_sites[k] for k in sorted(info.end_sites)],
                                                           dtype=np.float64).reshape(-1, 3))
        self._check_written()

    def _write_tables(self) -> None:
        sk = self._file.create_group("skeleton")
        sk.create_dataset("names", data=np.array(self.skeleton.names, dtype=object), dtype=h5py.string_dtype())
        sk.create_dataset("parents", data=self.skeleton.parents.astype(np.int32))
        sk.create_dataset("offsets", data=next(iter(self.clips.values())).offsets)


def _strs(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(values)]


def open_file(path: Path) -> h5py.File:
    """``path`` opened for reading; DatasetError when it is not an HDF5 file."""
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"not a readable HDF5 file: {exc}", path) from None


def clip_rows(f: h5py.File) -> list[tuple[dict[str, Any], h5py.Group]]:
    """Each clip group under ``/clips`` (in order) with the clip table entries every kind of dataset has:
    name, fps, num_frames, start (clips counted one after the other), labels, frame_labels."""
    rows, start = [], 0
    for name, g in f["clips"].items():
        n = int(g.attrs["num_frames"])
        rows.append(({"name": name, "fps": float(g.attrs["fps"]), "num_frames": n, "start": start,
                      "labels": {k: str(v) for k, v in g["labels"].attrs.items()},
                      "frame_labels": list(g["frame_labels"].keys())}, g))
        start += n
    return rows


def check_layout(f: h5py.File, clips: Sequence[Any], shapes: Any, path: Path) -> None:
    """Raise DatasetError unless every clip group holds the datasets ``shapes(row)`` names (``{name: shape}``)
    with those shapes, and its frame labels with one value per frame (metadata only: no chunk is read)."""
    for info, g in zip(clips, f["clips"].values(), strict=True):
        wanted = dict(shapes(info))
        wanted.update({f"frame_labels/{name}": (info.num_frames,) for name in info.frame_labels})
        for name, shape in wanted.items():
            d = g.get(name)
            if not isinstance(d, h5py.Dataset):
                raise DatasetError(f"damaged dataset: /clips/{info.name}/{name} is missing", path)
            if d.shape != shape:
                raise DatasetError(f"damaged dataset: /clips/{info.name}/{name} has shape {d.shape}, "
                                   f"expected {shape}", path)


def read_frame_label(g: h5py.Group, name: str, type_name: str | None, start: int, stop: int) -> np.ndarray:
    """Frames ``[start, stop)`` of frame label ``name`` of clip group ``g`` (text as a numpy str array)."""
    d = g["frame_labels"][name]
    return np.asarray(d.asstr()[start:stop], dtype=str) if type_name == "string" else d[start:stop]


class HDF5Input:
    """The HDF5 side of a reader (mixed into a ClipTable): the file, its header read from attributes and groups,
    the clip groups checked against the clip table, and frames read by chunk. Subclasses implement ``_header``
    (the header in the shape of the Parquet JSON), ``_init_table`` and ``_shapes``."""

    path: Path
    clips: list[Any]
    frame_label_types: dict[str, str]

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        self._file = open_file(path)
        try:
            try:
                header = self._header(str(path))
            except (KeyError, TypeError, ValueError, OSError) as exc:
                raise DatasetError(f"damaged dataset header: {type(exc).__name__}: {exc}", path) from None
            self._init_table(path, header)
            check_layout(self._file, self.clips, self._shapes, self.path)
        except DatasetError:
            self._file.close()
            raise

    def _header(self, path: str) -> dict[str, Any]:
        raise NotImplementedError

    def _init_table(self, path: Path, header: dict[str, Any]) -> None:
        """Check ``header`` and set up the clip table (the ClipTable subclass's ``__init__``)."""
        raise NotImplementedError

    def _shapes(self, info: Any) -> dict[str, tuple[int, ...]]:
        """Shape of each float32 array that clip ``info`` stores (frame axis first)."""
        raise NotImplementedError

    def _read(self, info: Any, start: int, stop: int, fields: Sequence[str]) -> dict[str, np.ndarray]:
        g = self._file["clips"][info.name]
        return {f: read_frame_label(g, f, self.frame_label_types.get(f), start, stop) if f in info.frame_labels
                else g[f][start:stop] for f in fields}

    def close(self) -> None:
        self._file.close()
        super().close()  # type: ignore[misc]


class HDF5Dataset(HDF5Input, Dataset):
    """An HDF5 dataset opened for reading (chunks are read on demand)."""

    format_name = "hdf5"

    def _init_table(self, path: Path, header: dict[str, Any]) -> None:
        Dataset.__init__(self, path, *parse_header(header, str(path)))

    def _shapes(self, info: ClipInfo) -> dict[str, tuple[int, ...]]:
        out = {f: (info.num_frames, *field_shape(f, self.skeleton.num_joints)) for f in self.fields
               if f != "local_translations" or info.local_translations}
        out.update({name: (info.num_frames, *shape) for name, shape in self.extras.items()})
        return out

    def _header(self, path: str) -> dict[str, Any]:
        """The file's attributes and clip groups in the shape of the Parquet JSON header."""
        f, a = self._file, self._file.attrs
        if a.get("format") != FORMAT_TAG:
            raise DatasetError(f"not an optiq dataset (root attribute format = {a.get('format')!r}, expected "
                               f"{FORMAT_TAG!r})", path)
        clips = []
        for row, g in clip_rows(f):
            joints = g["end_site_joints"][()]
            clips.append({**row, "offsets": g["offsets"][()],
                          "end_sites": dict(zip(joints.tolist(), g["end_site_offsets"][()], strict=True)),
                          "local_translations": "local_translations" in g})
        sk = f["skeleton"]
        # The dataset's skeleton is the first clip's (as in the Parquet header), end sites included.
        return {
            "format": FORMAT_TAG, "schema_version": int(a["schema_version"]),
            "skeleton": {"names": _strs(sk["names"][()]), "parents": sk["parents"][()], "offsets": sk["offsets"][()],
                         "end_sites": clips[0]["end_sites"] if clips else {}},
            "fields": _strs(a["fields"]), "frame_labels": json.loads(a["frame_label_types"]), "clips": clips,
            "extras": json.loads(a.get("extras", "{}")),
        }

    def _chunk_bounds(self, info: ClipInfo, max_frames: int | None) -> list[int]:
        chunk = self._file["clips"][info.name]["rotations"].chunks[0]
        step = max(chunk, (max_frames or chunk) // chunk * chunk)
        return [*range(0, info.num_frames, step), info.num_frames]


class HDF5Format(DatasetFormat):
    """The ``hdf5`` dataset format (see DatasetFormat)."""

    name = "hdf5"
    dataset = HDF5Dataset
    writer_class = HDF5Writer
