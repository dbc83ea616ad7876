"""Parquet datasets: one row per frame, fixed-size list columns, small row groups (docs/dataset-format.md).

Float columns are BYTE_STREAM_SPLIT + zstd without dictionaries (dictionaries do not pay on motion floats);
row groups hold at most ``row_group_frames`` frames of one clip, so a random window decodes one or two groups.
The dataset header (skeleton, clip table, schema version) is JSON in the key-value metadata under ``optiq``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DatasetError
from .base import Dataset, DatasetFormat, DatasetWriter, field_shape, parse_header

METADATA_KEY = b"optiq"
LABEL_PREFIX = "label_"
ROW_GROUP_FRAMES = 1024


def _list_type(size: int) -> pa.DataType:
    return pa.list_(pa.field("element", pa.float32(), nullable=False), size)


def _label_type(dtype: np.dtype) -> pa.DataType:
    return pa.string() if dtype.kind in "USO" else pa.from_numpy_dtype(dtype)


class ParquetOutput:
    """The Parquet side of a writer (mixed into a TableWriter): one row per frame with ``clip`` and ``frame``,
    a fixed-size float32 list column per stored array, a ``label_<name>`` column per frame label, and the header
    as JSON under ``optiq`` in the key-value metadata. Row groups hold at most ``row_group_frames`` frames."""

    path: Path
    frame_label_dtypes: dict[str, np.dtype]
    header: Callable[[], dict[str, Any]]  # the TableWriter's

    def _open_output(self, columns: dict[str, int], row_group_frames: int, compression: str,
                     nullable: Sequence[str] = ()) -> None:
        """columns: array name -> values per frame (list size); nullable: columns some clips leave empty."""
        self.row_group_frames = row_group_frames
        fields = [pa.field("clip", pa.string(), nullable=False), pa.field("frame", pa.int32(), nullable=False)]
        fields += [pa.field(name, _list_type(size), nullable=name in nullable) for name, size in columns.items()]
        fields += [pa.field(LABEL_PREFIX + name, _label_type(d)) for name, d in self.frame_label_dtypes.items()]
        self.schema = pa.schema(fields)
        self._arrays = list(columns)
        strings = ["clip"] + [LABEL_PREFIX + k for k, v in self.frame_label_dtypes.items() if v.kind in "USO"]
        self._writer = pq.ParquetWriter(
            self.path, self.schema, compression=compression, use_dictionary=strings,
            column_encoding={f"{f}.list.element": "BYTE_STREAM_SPLIT" for f in columns},
            write_statistics=["clip", "frame"],
            # zstd frames carry no checksum: flipped bytes can decode to wrong numbers without an error.
            write_page_checksum=True,
        )

    def _write_clip(self, info: Any, arrays: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> None:
        """The frames of clip ``info``: ``arrays`` (frame axis first; a column it lacks holds nulls) and frame
        ``labels`` (a declared label the clip lacks holds nulls)."""
        n = info.num_frames
        cols: list[pa.Array] = [pa.array(np.full(n, info.name, dtype=object), pa.string()),
                                pa.array(np.arange(n, dtype=np.int32))]
        for name in self._arrays:
            typ = self.schema.field(name).type
            if name in arrays:
                flat = np.ascontiguousarray(arrays[name]).reshape(-1)
                cols.append(pa.FixedSizeListArray.from_arrays(pa.array(flat), type=typ))
            else:
                cols.append(pa.nulls(n, typ))
        for name, dtype in self.frame_label_dtypes.items():
            typ = _label_type(dtype)
            cols.append(pa.array(labels[name].astype(str if dtype.kind in "USO" else dtype), typ) if name in labels
                        else pa.nulls(n, typ))
        self._writer.write_table(pa.Table.from_arrays(cols, schema=self.schema), row_group_size=self.row_group_frames)

    def _finish(self) -> None:
        """Store the header and close the file (always)."""
        try:
            self._writer.add_key_value_metadata({METADATA_KEY.decode(): json.dumps(self.header())})
        finally:
            self._writer.close()

    def _abort(self) -> None:
        self._writer.close()


class ParquetWriter(ParquetOutput, DatasetWriter):
    """Streams clips into a Parquet file; see DatasetWriter and ParquetOutput for the arguments."""

    def __init__(self, path: str | os.PathLike, skeleton, *, row_group_frames: int = ROW_GROUP_FRAMES,
                 compression: str = "zstd", **options: Any):
        DatasetWriter.__init__(self, path, skeleton, **options)
        j = skeleton.num_joints
        # Clips without local translations hold nulls in that column. Extras are columns like the motion fields.
        columns = {f: int(np.prod(field_shape(f, j))) for f in self.fields()}
        columns.update({name: int(np.prod(shape)) for name, shape in self.extras.items()})
        self._open_output(columns, row_group_frames, compression, nullable=("local_translations",))


def _values(arr: pa.Array, dtype: np.dtype) -> np.ndarray:
    """A writable numpy copy of a primitive arrow array without nulls. (``Array.to_numpy`` imports pandas,
    100 MB of memory, on first use.)"""
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * np.dtype(dtype).itemsize).copy()


class ParquetInput:
    """The Parquet side of a reader (mixed into a ClipTable): the file opened with page checksums verified, its
    JSON header, the row layout checked against the clip table, and frames read by row group."""

    path: Path
    clips: list[Any]
    frame_label_types: dict[str, str]
    num_frames: int

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        try:
            self._file = pq.ParquetFile(path, memory_map=False, page_checksum_verification=True)
        except (pa.ArrowException, OSError) as exc:
            raise DatasetError(f"not a readable Parquet file: {exc}", path) from None
        try:
            raw = (self._file.metadata.metadata or {}).get(METADATA_KEY)
            if raw is None:
                raise DatasetError("not an optiq dataset: no 'optiq' entry in the Parquet key-value metadata", path)
            try:
                header = json.loads(raw)
            except ValueError as exc:
                raise DatasetError(f"damaged dataset header (invalid JSON: {exc})", path) from None
            self._init_table(path, header)
            self._check_layout({name: int(np.prod(shape)) for name, shape in self._frame_shapes().items()})
        except DatasetError:
            self._file.close()
            raise

    def _init_table(self, path: Path, header: dict[str, Any]) -> None:
        """Check ``header`` and set up the clip table (the ClipTable subclass's ``__init__``)."""
        raise NotImplementedError

    def _frame_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of one frame of each stored float32 array (every one the dataset may hold)."""
        raise NotImplementedError

    def _check_layout(self, sizes: dict[str, int]) -> None:
        """Raise DatasetError unless the file's rows and columns are the ones the header describes: as many rows
        as the clip table's frames, a fixed-size float32 list column of ``sizes[name]`` values per stored array, a
        column per frame label (metadata only: no page is read). Then index the row groups."""
        md = self._file.metadata
        if md.num_rows != self.num_frames:
            raise DatasetError(f"damaged dataset: the clip table counts {self.num_frames} frames, the file holds "
                               f"{md.num_rows} rows", self.path)
        schema = self._file.schema_arrow
        for f, size in sizes.items():
            if f not in schema.names:
                raise DatasetError(f"damaged dataset: the column {f!r} is missing", self.path)
            got = schema.field(f).type
            if not (pa.types.is_fixed_size_list(got) and got.list_size == size and got.value_type == pa.float32()):
                raise DatasetError(f"damaged dataset: the column {f!r} is {got}, expected {_list_type(size)}",
                                   self.path)
        for name in self.frame_label_types:
            if LABEL_PREFIX + name not in schema.names:
                raise DatasetError(f"damaged dataset: the column {LABEL_PREFIX + name!r} is missing", self.path)
        rows = np.array([md.row_group(i).num_rows for i in range(md.num_row_groups)], dtype=np.int64)
        self._rg_starts = np.concatenate(([0], np.cumsum(rows)))

    def _read(self, info: Any, start: int, stop: int, fields: Sequence[str]) -> dict[str, np.ndarray]:
        """Frames ``[start, stop)`` of clip ``info``: the float32 arrays of ``_frame_shapes`` and frame labels
        for the other ``fields``; only the row groups that hold them are read."""
        shapes = self._frame_shapes()
        a, b = info.start + start, info.start + stop
        g0 = int(np.searchsorted(self._rg_starts, a, "right")) - 1
        g1 = int(np.searchsorted(self._rg_starts, b - 1, "right")) - 1
        columns = [f if f in shapes else LABEL_PREFIX + f for f in fields]
        table = self._file.read_row_groups(range(g0, g1 + 1), columns=columns, use_threads=False)
        table = table.slice(a - int(self._rg_starts[g0]), b - a)
        out = {}
        for f, col in zip(fields, columns, strict=True):
            arr = table.column(col).combine_chunks()
            if f in shapes:
                out[f] = _values(arr.flatten(), np.float32).reshape(b - a, *shapes[f])
            else:
                dtype = self.frame_label_types[f]
                out[f] = (np.asarray(arr.to_pylist(), dtype=str if dtype == "string" else dtype)
                          if dtype in ("string", "bool") else _values(arr, np.dtype(dtype)))
        return out

    def _chunk_bounds(self, info: Any, max_frames: int | None) -> list[int]:
        inside = self._rg_starts[(self._rg_starts > info.start) & (self._rg_starts < info.start + info.num_frames)]
        bounds = [0, *(inside - info.start).tolist(), info.num_frames]
        if max_frames:
            bounds = sorted({x for a, b in zip(bounds[:-1], bounds[1:], strict=False) for x in range(a, b, max_frames)}
                            | {info.num_frames})
        return [int(x) for x in bounds]

    def close(self) -> None:
        self._file.close()
        super().close()  # type: ignore[misc]


class ParquetDataset(ParquetInput, Dataset):
    """A Parquet dataset opened for reading (row groups are read on demand)."""

    format_name = "parquet"
    read_errors = (pa.ArrowException, OSError, ValueError, KeyError)

    def _init_table(self, path: Path, header: dict[str, Any]) -> None:
        Dataset.__init__(self, path, *parse_header(header, str(path)))

    def _frame_shapes(self) -> dict[str, tuple[int, ...]]:
        return {**{f: field_shape(f, self.skeleton.num_joints) for f in self.fields}, **self.extras}


class ParquetFormat(DatasetFormat):
    """The ``parquet`` dataset format (see DatasetFormat)."""

    name = "parquet"
    dataset = ParquetDataset
    writer_class = ParquetWriter
