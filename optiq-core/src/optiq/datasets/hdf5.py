"""HDF5 datasets: a group per clip with chunked float32 datasets, labels as attributes (docs/dataset-format.md).

Everything a reader needs is plain HDF5 (attributes, datasets, groups in insertion order), so h5py users read
it without optiq. Chunks hold ``chunk_frames`` frames: a random window touches one or two chunks per field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import DatasetError
from .base import FORMAT_TAG, MOTION_FIELDS, ClipInfo, Dataset, DatasetFormat, DatasetWriter, parse_header

CHUNK_FRAMES = 256


class HDF5Writer(DatasetWriter):
    """Streams clips into an HDF5 file; see DatasetWriter for the arguments.

    chunk_frames: frames per chunk. compression: an h5py filter (``"gzip"`` is readable by every HDF5
    library; ``"lzf"`` only by h5py) or None; compression_opts: its level.
    """

    def __init__(self, path: str | os.PathLike, skeleton, *, chunk_frames: int = CHUNK_FRAMES,
                 compression: str | None = "gzip", compression_opts: int | None = 1, **options: Any):
        super().__init__(path, skeleton, **options)
        self.chunk_frames = chunk_frames
        self.filters = {"compression": compression, "compression_opts": compression_opts if compression else None,
                        "shuffle": compression is not None}
        self._file = h5py.File(self.path, "w", track_order=True)
        self._file.attrs["format"] = FORMAT_TAG
        self._clips = self._file.create_group("clips", track_order=True)

    def _write_clip(self, info: ClipInfo, arrays: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> None:
        g = self._clips.create_group(info.name, track_order=True)
        g.attrs["fps"] = info.fps
        g.attrs["num_frames"] = info.num_frames
        g.create_dataset("offsets", data=info.offsets)
        g.create_dataset("end_site_joints", data=np.array(sorted(info.end_sites), dtype=np.int32))
        g.create_dataset("end_site_offsets", data=np.array([info.end_sites[k] for k in sorted(info.end_sites)],
                                                           dtype=np.float64).reshape(-1, 3))
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

    def _finish(self) -> None:
        try:
            header = self.dataset_json()
            a = self._file.attrs
            a["schema_version"] = header["schema_version"]
            a["num_frames"] = header["num_frames"]
            a["fields"] = header["fields"]
            a["frame_label_types"] = json.dumps(header["frame_labels"])
            sk = self._file.create_group("skeleton")
            sk.create_dataset("names", data=np.array(self.skeleton.names, dtype=object), dtype=h5py.string_dtype())
            sk.create_dataset("parents", data=self.skeleton.parents.astype(np.int32))
            first = next(iter(self.clips.values()))
            sk.create_dataset("offsets", data=first.offsets)
        finally:
            self._file.close()

    def _abort(self) -> None:
        self._file.close()


def _strs(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(values)]


class HDF5Dataset(Dataset):
    """An HDF5 dataset opened for reading (chunks are read on demand)."""

    format_name = "hdf5"

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        try:
            self._file = h5py.File(path, "r")
        except OSError as exc:
            raise DatasetError(f"not a readable HDF5 file: {exc}", path) from None
        try:
            header = self._header(str(path))
        except (KeyError, TypeError, ValueError) as exc:
            self._file.close()
            raise DatasetError(f"damaged dataset: {type(exc).__name__}: {exc}", path) from None
        except DatasetError:
            self._file.close()
            raise
        super().__init__(path, *parse_header(header, str(path)))

    def _header(self, path: str) -> dict[str, Any]:
        """The file's attributes and clip groups in the shape of the Parquet JSON header."""
        f, a = self._file, self._file.attrs
        if a.get("format") != FORMAT_TAG:
            raise DatasetError(f"not an optiq dataset (root attribute format = {a.get('format')!r}, expected "
                               f"{FORMAT_TAG!r})", path)
        clips, start = [], 0
        for name, g in f["clips"].items():
            n = int(g.attrs["num_frames"])
            joints = g["end_site_joints"][()]
            clips.append({
                "name": name, "fps": float(g.attrs["fps"]), "num_frames": n, "start": start,
                "offsets": g["offsets"][()],
                "end_sites": dict(zip(joints.tolist(), g["end_site_offsets"][()], strict=True)),
                "labels": {k: str(v) for k, v in g["labels"].attrs.items()},
                "frame_labels": list(g["frame_labels"].keys()),
                "local_translations": "local_translations" in g,
            })
            start += n
        sk = f["skeleton"]
        return {
            "format": FORMAT_TAG, "schema_version": int(a["schema_version"]),
            "skeleton": {"names": _strs(sk["names"][()]), "parents": sk["parents"][()], "offsets": sk["offsets"][()]},
            "fields": _strs(a["fields"]), "frame_labels": json.loads(a["frame_label_types"]), "clips": clips,
        }

    def _read(self, info: ClipInfo, start: int, stop: int, fields: Sequence[str]) -> dict[str, np.ndarray]:
        g = self._file["clips"][info.name]
        out = {}
        for f in fields:
            if f in MOTION_FIELDS:
                out[f] = g[f][start:stop]
            elif self.frame_label_types.get(f) == "string":
                out[f] = np.asarray(g["frame_labels"][f].asstr()[start:stop], dtype=str)
            else:
                out[f] = g["frame_labels"][f][start:stop]
        return out

    def _chunk_bounds(self, info: ClipInfo, max_frames: int | None) -> list[int]:
        chunk = self._file["clips"][info.name]["rotations"].chunks[0]
        step = max(chunk, (max_frames or chunk) // chunk * chunk)
        return [*range(0, info.num_frames, step), info.num_frames]

    def close(self) -> None:
        self._file.close()


class HDF5Format(DatasetFormat):
    """The ``hdf5`` dataset format (see DatasetFormat)."""

    name = "hdf5"
    dataset = HDF5Dataset
    writer_class = HDF5Writer
