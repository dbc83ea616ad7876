"""Parquet datasets: one row per frame, fixed-size list columns, small row groups (docs/dataset-format.md).

Float columns are BYTE_STREAM_SPLIT + zstd without dictionaries (dictionaries do not pay on motion floats);
row groups hold at most ``row_group_frames`` frames of one clip, so a random window decodes one or two groups.
The dataset header (skeleton, clip table, schema version) is JSON in the key-value metadata under ``optiq``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DatasetError
from .base import MOTION_FIELDS, ClipInfo, Dataset, DatasetFormat, DatasetWriter, field_shape, parse_header

METADATA_KEY = b"optiq"
LABEL_PREFIX = "label_"
ROW_GROUP_FRAMES = 1024


def _list_type(size: int) -> pa.DataType:
    return pa.list_(pa.field("element", pa.float32(), nullable=False), size)


def _label_type(dtype: np.dtype) -> pa.DataType:
    return pa.string() if dtype.kind in "USO" else pa.from_numpy_dtype(dtype)


class ParquetWriter(DatasetWriter):
    """Streams clips into a Parquet file; see DatasetWriter for the arguments."""

    def __init__(self, path: str | os.PathLike, skeleton, *, row_group_frames: int = ROW_GROUP_FRAMES,
                 compression: str = "zstd", **options: Any):
        super().__init__(path, skeleton, **options)
        self.row_group_frames = row_group_frames
        j = skeleton.num_joints
        fields = [pa.field("clip", pa.string(), nullable=False), pa.field("frame", pa.int32(), nullable=False)]
        for name in self.fields():
            size = int(np.prod(field_shape(name, j)))
            # Clips without local translations hold nulls in that column.
            fields.append(pa.field(name, _list_type(size), nullable=name == "local_translations"))
        for name, dtype in self.frame_label_dtypes.items():
            fields.append(pa.field(LABEL_PREFIX + name, _label_type(dtype)))
        self.schema = pa.schema(fields)
        strings = ["clip"] + [LABEL_PREFIX + k for k, v in self.frame_label_dtypes.items() if v.kind in "USO"]
        self._writer = pq.ParquetWriter(
            self.path, self.schema, compression=compression, use_dictionary=strings,
            column_encoding={f"{f}.list.element": "BYTE_STREAM_SPLIT" for f in self.fields()},
            write_statistics=["clip", "frame"],
        )

    def _write_clip(self, info: ClipInfo, arrays: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> None:
        n = info.num_frames
        cols: list[pa.Array] = [pa.array(np.full(n, info.name, dtype=object), pa.string()),
                                pa.array(np.arange(n, dtype=np.int32))]
        for name in self.fields():
            typ = self.schema.field(name).type
            if name in arrays:
                flat = np.ascontiguousarray(arrays[name]).reshape(-1)
                cols.append(pa.FixedSizeListArray.from_arrays(pa.array(flat), type=typ))
            else:
                cols.append(pa.nulls(n, typ))
        for name, dtype in self.frame_label_dtypes.items():
            typ = _label_type(dtype)
            if name in labels:
                values = labels[name].astype(str if dtype.kind in "USO" else dtype)
                cols.append(pa.array(values, typ))
            else:
                cols.append(pa.nulls(n, typ))
        self._writer.write_table(pa.Table.from_arrays(cols, schema=self.schema), row_group_size=self.row_group_frames)

    def _finish(self) -> None:
        try:
            self._writer.add_key_value_metadata({METADATA_KEY.decode(): json.dumps(self.dataset_json())})
        finally:
            self._writer.close()

    def _abort(self) -> None:
        self._writer.close()


def _values(arr: pa.Array, dtype: np.dtype) -> np.ndarray:
    """A writable numpy copy of a primitive arrow array without nulls. (``Array.to_numpy`` imports pandas,
    100 MB of memory, on first use.)"""
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * np.dtype(dtype).itemsize).copy()


class ParquetDataset(Dataset):
    """A Parquet dataset opened for reading (row groups are read on demand)."""

    format_name = "parquet"

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        try:
            self._file = pq.ParquetFile(path, memory_map=False)
        except (pa.ArrowException, OSError) as exc:
            raise DatasetError(f"not a readable Parquet file: {exc}", path) from None
        raw = (self._file.metadata.metadata or {}).get(METADATA_KEY)
        if raw is None:
            self._file.close()
            raise DatasetError("not an optiq dataset: no 'optiq' entry in the Parquet key-value metadata", path)
        try:
            header = json.loads(raw)
        except ValueError as exc:
            self._file.close()
            raise DatasetError(f"damaged dataset header (invalid JSON: {exc})", path) from None
        skeleton, clips, fields, label_types = parse_header(header, str(path))
        super().__init__(path, skeleton, clips, fields, label_types)
        md = self._file.metadata
        if md.num_rows != self.num_frames:
            self._file.close()
            raise DatasetError(f"damaged dataset: the clip table counts {self.num_frames} frames, the file holds "
                               f"{md.num_rows} rows", path)
        sizes = np.array([md.row_group(i).num_rows for i in range(md.num_row_groups)], dtype=np.int64)
        self._rg_starts = np.concatenate(([0], np.cumsum(sizes)))

    def _read(self, info: ClipInfo, start: int, stop: int, fields: Sequence[str]) -> dict[str, np.ndarray]:
        a, b = info.start + start, info.start + stop
        g0 = int(np.searchsorted(self._rg_starts, a, "right")) - 1
        g1 = int(np.searchsorted(self._rg_starts, b - 1, "right")) - 1
        columns = [f if f in MOTION_FIELDS else LABEL_PREFIX + f for f in fields]
        table = self._file.read_row_groups(range(g0, g1 + 1), columns=columns, use_threads=False)
        table = table.slice(a - int(self._rg_starts[g0]), b - a)
        j = self.skeleton.num_joints
        out = {}
        for f, col in zip(fields, columns, strict=True):
            arr = table.column(col).combine_chunks()
            if f in MOTION_FIELDS:
                out[f] = _values(arr.flatten(), np.float32).reshape(b - a, *field_shape(f, j))
            else:
                dtype = self.frame_label_types[f]
                out[f] = (np.asarray(arr.to_pylist(), dtype=str if dtype == "string" else dtype)
                          if dtype in ("string", "bool") else _values(arr, np.dtype(dtype)))
        return out

    def _chunk_bounds(self, info: ClipInfo, max_frames: int | None) -> list[int]:
        inside = self._rg_starts[(self._rg_starts > info.start) & (self._rg_starts < info.start + info.num_frames)]
        bounds = [0, *(inside - info.start).tolist(), info.num_frames]
        if max_frames:
            bounds = sorted({x for a, b in zip(bounds[:-1], bounds[1:], strict=False) for x in range(a, b, max_frames)}
                            | {info.num_frames})
        return [int(x) for x in bounds]

    def close(self) -> None:
        self._file.close()


class ParquetFormat(DatasetFormat):
    """The ``parquet`` dataset format (see DatasetFormat)."""

    name = "parquet"
    dataset = ParquetDataset
    writer_class = ParquetWriter
