"""What every dataset format shares: the clip table, the reading API and the writer's bookkeeping.

A dataset holds clips of one skeleton topology (joint names and parents). Bone lengths differ between
performers, so each clip keeps its own rest offsets; the dataset's skeleton carries the first clip's offsets.
Motion arrays are float32 on disk and float64 in the Clips a dataset returns. The on-disk layout (schema
version 1; version 3 adds per-frame extra arrays) is specified in docs/dataset-format.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .. import quat
from ..clip import Clip
from ..errors import DatasetError, SkeletonMismatchError
from ..names import check_name
from ..skeleton import Skeleton

SCHEMA_VERSION = 1
#: Version 1 plus per-frame extra arrays (``extras``: a simulated character's qpos and qvel). Writers write it only
#: when a dataset has extras, so a dataset without them stays readable by optiq versions that read version 1.
#: (Version 2 is the points datasets' layout, ``kind: "points"``.)
EXTRAS_SCHEMA_VERSION = 3
READ_VERSIONS = (SCHEMA_VERSION, EXTRAS_SCHEMA_VERSION)
FORMAT_TAG = "optiq-dataset"

# Per-frame motion arrays: name -> shape after the frame axis ("J" = number of joints).
MOTION_FIELDS: dict[str, tuple[Any, ...]] = {
    "root_translation": (3,),
    "rotations": ("J", 4),
    "local_translations": ("J", 3),
    "linear_velocities": ("J", 3),
    "angular_velocities": ("J", 3),
}
VELOCITY_FIELDS = ("linear_velocities", "angular_velocities")
CLIP_FIELDS = ("root_translation", "rotations", "local_translations")


def field_shape(name: str, num_joints: int) -> tuple[int, ...]:
    """Shape of one frame of motion field ``name`` for a skeleton of ``num_joints`` joints."""
    return tuple(num_joints if d == "J" else d for d in MOTION_FIELDS[name])


@dataclass(frozen=True, eq=False)
class ClipInfo:
    """One row of a dataset's clip table (what is known about a clip without reading its frames).

    offsets: ``[J, 3]`` metres, the clip's rest offsets. end_sites: ``{joint: [3]}`` metres. start: the clip's
    first row in the file (Parquet rows; clips are stored one after the other). frame_labels: the names of the
    clip's frame labels. local_translations: whether the clip stores per-frame local translations.
    """

    name: str
    fps: float
    num_frames: int
    offsets: np.ndarray
    end_sites: dict[int, np.ndarray] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    frame_labels: tuple[str, ...] = ()
    local_translations: bool = False
    start: int = 0

    def __repr__(self) -> str:
        return (f"ClipInfo({self.name!r}, frames={self.num_frames}, fps={self.fps:g}, labels={len(self.labels)}, "
                f"frame_labels={len(self.frame_labels)})")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fps": self.fps,
            "num_frames": self.num_frames,
            "start": self.start,
            "offsets": self.offsets.tolist(),
            "end_sites": {str(k): v.tolist() for k, v in self.end_sites.items()},
            "labels": dict(self.labels),
            "frame_labels": list(self.frame_labels),
            "local_translations": self.local_translations,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ClipInfo:
        return cls(
            name=str(d["name"]),
            fps=float(d["fps"]),
            num_frames=int(d["num_frames"]),
            offsets=np.asarray(d["offsets"], dtype=np.float64).reshape(-1, 3),
            end_sites={int(k): np.asarray(v, dtype=np.float64) for k, v in d.get("end_sites", {}).items()},
            labels={str(k): str(v) for k, v in d.get("labels", {}).items()},
            frame_labels=tuple(d.get("frame_labels", ())),
            local_translations=bool(d.get("local_translations", False)),
            start=int(d.get("start", 0)),
        )


class Chunk(NamedTuple):
    """A piece of a clip yielded by ``Dataset.stream``: the clip's name, the first frame's index, the frames."""

    clip: str
    start: int
    data: Clip


def check_topology(skeleton: Skeleton, reference: Skeleton, what: str, path: str | os.PathLike | None = None,
                   reference_what: str = "the dataset") -> None:
    """Raise SkeletonMismatchError unless ``skeleton`` has the joint names and parents of ``reference``.

    The message names ``what`` (a clip), the file when given, and the first joint that differs.
    """
    if skeleton.same_topology(reference):
        return
    a, b = skeleton.names, reference.names
    for j in range(max(len(a), len(b))):
        name_a = a[j] if j < len(a) else None
        name_b = b[j] if j < len(b) else None
        if name_a != name_b:
            detail = (f"joint {j} is {name_a!r}, expected {name_b!r}" if name_a and name_b
                      else f"{len(a)} joints, expected {len(b)} (joint {j} {name_a or name_b!r} "
                           f"{'is extra' if name_a else 'is missing'})")
            break
        if skeleton.parents[j] != reference.parents[j]:
            pa, pb = int(skeleton.parents[j]), int(reference.parents[j])
            detail = f"joint {j} {name_a!r} has parent {a[pa]!r}, expected {b[pb]!r}"
            break
    raise SkeletonMismatchError(f"{what}: skeleton differs from {reference_what}: {detail}", path)


def check_new_clip(name: str, labels: Mapping[str, str], num_frames: int, known: Mapping[str, Any],
                   path: str | os.PathLike) -> None:
    """Raise DatasetError unless a clip (or points take) of ``name``, clip ``labels`` and ``num_frames`` can join
    a dataset whose clips are ``known``: names follow ``check_name``, are unique, and a clip has frames."""
    check_name(name, "clip name", path)
    for key in labels:
        check_name(key, f"clip {name!r}: clip label key", path)
    if name in known:
        raise DatasetError(f"two clips are named {name!r}; clip names must be unique in a dataset", path)
    if num_frames == 0:
        raise DatasetError(f"clip {name!r} has no frames; a dataset holds clips of at least one frame", path)


def check_finite(arrays: Mapping[str, np.ndarray], clip: str, joint_names: Sequence[str],
                 path: str | os.PathLike, first_frame: int = 0, stored: bool = False) -> None:
    """Raise DatasetError naming ``clip``, the first frame and joint (and the field) where a float32 motion array
    (frame axis first: ``[T, 3]`` or ``[T, J, k]``; its frame 0 is the clip's ``first_frame``) is NaN or infinite.
    stored: the arrays were read from the dataset at ``path`` (the message says it is damaged)."""
    for name, arr in arrays.items():
        if name not in MOTION_FIELDS:
            continue
        ok = np.isfinite(arr)
        if ok.all():
            continue
        # argmin finds the first False: the first bad value in frame order.
        idx = np.unravel_index(int(np.argmin(ok)), arr.shape)
        joint = joint_names[idx[1]] if arr.ndim == 3 else joint_names[0]
        value = arr[idx]
        if stored:
            message = f"damaged dataset: {name} holds {value}, expected finite numbers"
        else:
            what = "NaN" if np.isnan(value) else f"{value} (beyond float32's range of +-3.4e38, or infinite)"
            message = f"{name} is {what}; a dataset holds finite float32 values (check --scale and the unit)"
        raise DatasetError(message, path, f"clip {clip!r}, frame {first_frame + int(idx[0])}, joint {joint!r}")


class TableWriter:
    """What every dataset writer shares (skeleton clips here, points takes in ``points.py``): the frame label
    columns, the clip table and the file's lifetime. Use as a context manager, or call ``close()``; ``abort()``
    discards the file. Formats write to the path they are given: callers that want an atomic result pass a
    temporary path (``write_dataset`` does). Subclasses implement ``_write_clip``, ``_finish`` and ``_abort``.

    frame_labels: name -> numpy dtype of the frame label columns. ``fields_reserved`` names the arrays stored per
    frame; a frame label may not take one of those names (reading returns both in one dict, by name).
    """

    fields_reserved: tuple[str, ...] = ()

    def __init__(self, path: str | os.PathLike, frame_labels: Mapping[str, Any] | None = None):
        self.path = Path(path)
        self.frame_label_dtypes = {check_name(k, "frame label name", path): np.dtype(v)
                                   for k, v in (frame_labels or {}).items()}
        clash = sorted(set(self.frame_label_dtypes) & set(self.fields_reserved))
        if clash:
            raise DatasetError(f"frame label names {', '.join(clash)} are names of stored fields; rename them", path)
        self.clips: dict[str, Any] = {}
        self.num_rows = 0

    def _check_new(self, name: str, labels: Mapping[str, str], num_frames: int,
                   frame_labels: Mapping[str, Any]) -> None:
        """Raise DatasetError unless a clip of these names and size can be added (see ``check_new_clip``)."""
        check_new_clip(name, labels, num_frames, self.clips, self.path)
        undeclared = sorted(set(frame_labels) - set(self.frame_label_dtypes))
        if undeclared:
            raise DatasetError(f"clip {name!r}: frame labels {', '.join(undeclared)} were not declared "
                               f"when the dataset writer was created", self.path)

    def _append(self, info: Any, arrays: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> None:
        """Write one checked clip and add its row (``info.name``, ``info.num_frames``) to the clip table."""
        self._write_clip(info, arrays, labels)
        self.clips[info.name] = info
        self.num_rows += info.num_frames

    def frame_label_types(self) -> dict[str, str]:
        """The header's ``frame_labels``: name -> ``string`` or numpy's dtype name."""
        return {k: _dtype_name(v) for k, v in self.frame_label_dtypes.items()}

    def close(self) -> None:
        """Finish the file (writes the header and clip table); raises DatasetError when no clip was added."""
        self._finish()

    def abort(self) -> None:
        """Stop writing and remove the partial file."""
        self._abort()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
            return
        try:
            self.close()
        except BaseException:  # finishing failed (a full disk): the file is incomplete
            self.path.unlink(missing_ok=True)
            raise

    def _check_not_empty(self) -> None:
        if not self.clips:
            raise DatasetError("no clips to write", self.path)

    def header(self) -> dict[str, Any]:
        """The dataset header as stored (docs/dataset-format.md); DatasetError when no clip was added."""
        raise NotImplementedError

    def _write_clip(self, info: Any, arrays: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def _abort(self) -> None:
        raise NotImplementedError


class DatasetWriter(TableWriter):
    """Writes skeleton clips one at a time (memory: one clip), so a dataset can be larger than RAM.

    The columns are fixed when the writer is created: ``frame_labels`` (name -> numpy dtype) and whether
    ``local_translations`` and ``velocities`` (world linear and angular velocities, computed per clip) are
    stored. See TableWriter for the lifetime.
    """

    fields_reserved = tuple(MOTION_FIELDS)

    def __init__(self, path: str | os.PathLike, skeleton: Skeleton, *, frame_labels: Mapping[str, Any] | None = None,
                 local_translations: bool = False, velocities: bool = False,
                 extras: Mapping[str, Sequence[int]] | None = None):
        super().__init__(path, frame_labels)
        self.skeleton = skeleton
        self.local_translations = local_translations
        self.velocities = velocities
        self.extras = check_extras(extras or {}, self.frame_label_dtypes, path)

    def add(self, clip: Clip, stored: Mapping[str, np.ndarray] | None = None,
            extras: Mapping[str, np.ndarray] | None = None) -> ClipInfo:
        """Append ``clip``; its skeleton must have the dataset's topology and its frame labels must be declared.

        stored: arrays to store as given instead of computing them (velocities copied from another dataset).
        extras: one array ``[T, *shape]`` per extra declared when the writer was created (every clip has each).
        """
        self._check_new(clip.name, clip.labels, clip.num_frames, clip.frame_labels)
        check_topology(clip.skeleton, self.skeleton, f"clip {clip.name!r}", clip.labels.get("source"))
        if clip.local_translations is not None and not self.local_translations:
            raise DatasetError(f"clip {clip.name!r} has local translations but the writer was created without "
                               f"local_translations=True", self.path)
        info = ClipInfo(clip.name, clip.fps, clip.num_frames, clip.skeleton.offsets.copy(),
                        dict(clip.skeleton.end_sites), dict(clip.labels), tuple(clip.frame_labels),
                        clip.local_translations is not None, self.num_rows)
        if not np.isfinite(info.offsets).all():
            j = int(np.argmin(np.isfinite(info.offsets).all(axis=1)))
            raise DatasetError(f"clip {clip.name!r}: the rest offset of joint {clip.skeleton.names[j]!r} is not "
                               f"finite", self.path)
        arrays = self.arrays_of(clip, skip=tuple(stored or ()))
        arrays.update({k: np.asarray(v, dtype=np.float32) for k, v in (stored or {}).items() if k in self.fields()})
        check_finite(arrays, clip.name, self.skeleton.names, self.path)
        arrays.update(self._extra_arrays(clip, extras or {}))
        self._append(info, arrays, clip.frame_labels)
        return info

    def _extra_arrays(self, clip: Clip, extras: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The float32 extras of ``clip``, checked: exactly the declared names, ``[T, *shape]``, finite."""
        if set(extras) != set(self.extras):
            missing, unknown = sorted(set(self.extras) - set(extras)), sorted(set(extras) - set(self.extras))
            raise DatasetError(f"clip {clip.name!r}: extras {', '.join(missing or unknown)} "
                               f"{'are missing' if missing else 'were not declared when the writer was created'}",
                               self.path)
        out = {}
        for name, shape in self.extras.items():
            with np.errstate(over="ignore"):
                arr = np.asarray(extras[name], dtype=np.float32)
            if arr.shape != (clip.num_frames, *shape):
                raise DatasetError(f"clip {clip.name!r}: extra {name!r} has shape {arr.shape}, expected "
                                   f"{(clip.num_frames, *shape)}", self.path)
            bad = ~np.isfinite(arr.reshape(clip.num_frames, -1)).all(axis=1)
            if bad.any():
                raise DatasetError(f"extra {name!r} is not finite; a dataset holds finite float32 values", self.path,
                                   f"clip {clip.name!r}, frame {int(np.argmax(bad))}")
            out[name] = arr
        return out

    def arrays_of(self, clip: Clip, skip: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """The float32 arrays stored for ``clip`` (frame axis first), velocities computed when asked for
        (unless named in ``skip``). Values beyond float32 become inf here: ``add`` refuses them, naming the place."""
        with np.errstate(over="ignore"):  # overflow is reported by check_finite, with the clip, frame and joint
            out = {"root_translation": clip.root_translation.astype(np.float32),
                   "rotations": clip.rotations.astype(np.float32)}
            if clip.local_translations is not None:
                out["local_translations"] = clip.local_translations.astype(np.float32)
        if self.velocities and not set(VELOCITY_FIELDS) <= set(skip):
            # Velocities of values that do not fit are meaningless: report the values themselves first.
            check_finite(out, clip.name, self.skeleton.names, self.path)
            pos, rot = clip.forward_kinematics()
            with np.errstate(over="ignore"):
                out["linear_velocities"] = clip.linear_velocities(pos).astype(np.float32)
                out["angular_velocities"] = clip.angular_velocities(rot).astype(np.float32)
        return out

    def header(self) -> dict[str, Any]:
        """The dataset header (skeleton topology, first clip's offsets, clip table) as stored in JSON."""
        self._check_not_empty()
        first = next(iter(self.clips.values()))
        out = {
            "format": FORMAT_TAG,
            "schema_version": EXTRAS_SCHEMA_VERSION if self.extras else SCHEMA_VERSION,
            "skeleton": {"names": list(self.skeleton.names), "parents": self.skeleton.parents.tolist(),
                         "offsets": first.offsets.tolist(),
                         "end_sites": {str(k): v.tolist() for k, v in first.end_sites.items()}},
            "fields": self.fields(),
            "frame_labels": self.frame_label_types(),
            "num_frames": self.num_rows,
            "clips": [c.to_json() for c in self.clips.values()],
        }
        if self.extras:
            out["extras"] = {k: list(v) for k, v in self.extras.items()}
        return out

    def fields(self) -> list[str]:
        """Names of the motion fields this writer stores."""
        out = ["root_translation", "rotations"]
        if self.local_translations:
            out.append("local_translations")
        if self.velocities:
            out.extend(VELOCITY_FIELDS)
        return out


def _dtype_name(dtype: np.dtype) -> str:
    """A dtype as the schema names it: ``string`` for any text, else numpy's name (``int64``, ``float32``)."""
    return "string" if dtype.kind in "USO" else dtype.name


def check_header_tag(header: Mapping[str, Any], version: int | Sequence[int], path: str | os.PathLike) -> None:
    """Raise DatasetError unless ``header`` carries the optiq format tag and a schema ``version`` (one, or any
    of several)."""
    if header.get("format") != FORMAT_TAG:
        raise DatasetError(f"not an optiq dataset (format tag {header.get('format')!r}, expected {FORMAT_TAG!r})",
                           path)
    versions = (version,) if isinstance(version, int) else tuple(version)
    if header.get("schema_version") not in versions:
        raise DatasetError(f"schema_version {header.get('schema_version')!r} is not one this optiq reads "
                           f"({', '.join(map(str, versions))}); install the optiq version that wrote it", path)


def check_extras(extras: Mapping[str, Sequence[int]], frame_labels: Mapping[str, Any],
                 path: str | os.PathLike | None) -> dict[str, tuple[int, ...]]:
    """Extra per-frame arrays as declared (name -> shape of one frame), checked: names follow ``check_name`` and
    are neither motion fields nor frame labels; shapes are tuples of positive ints."""
    out = {}
    for name, shape in extras.items():
        check_name(name, "extra array name", path)
        if name in MOTION_FIELDS or name in frame_labels:
            raise DatasetError(f"extra array {name!r} has the name of a motion field or a frame label", path)
        try:
            dims = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            dims = ()
        if not dims or min(dims) < 1:
            raise DatasetError(f"extra array {name!r}: shape {shape!r} is not a list of positive sizes", path)
        out[name] = dims
    return out


def parse_header(header: Mapping[str, Any], path: str) -> tuple[Skeleton, list[ClipInfo], list[str], dict[str, str],
                                                                dict[str, tuple[int, ...]]]:
    """Check a dataset header's format tag and version (1, or 3 with extras); return skeleton, clips, fields,
    frame label types and extras (name -> shape of one frame; empty for version 1)."""
    check_header_tag(header, READ_VERSIONS, path)
    try:
        sk = header["skeleton"]
        clips = [ClipInfo.from_json(c) for c in header["clips"]]
        skeleton = Skeleton(sk["names"], sk["parents"], sk["offsets"],
                            {int(k): v for k, v in sk.get("end_sites", {}).items()})
        labels = dict(header.get("frame_labels", {}))
        extras = header.get("extras", {}) if header["schema_version"] == EXTRAS_SCHEMA_VERSION else {}
        return skeleton, clips, list(header["fields"]), labels, check_extras(extras, labels, path)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DatasetError(f"damaged dataset header: {type(exc).__name__}: {exc}", path) from None


class ClipTable:
    """What every dataset reader shares (skeleton clips here, points takes in ``points.py``): the clip table
    (``ds.clips``, rows with ``name``, ``fps``, ``num_frames``, ``start``, ``labels``, ``frame_labels``), lookup by
    name or index, frame ranges checked before reading, and the file's lifetime. Use as a context manager.

    Subclasses implement ``_read`` and ``_row_problem``, and name in ``read_errors`` the exceptions their library
    raises on damaged data (reported as DatasetError naming the file, clip and frames).
    """

    format_name = "?"
    read_errors: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError)

    def __init__(self, path: str | os.PathLike, clips: Sequence[Any], frame_label_types: Mapping[str, str]):
        self.path = Path(path)
        self.clips = list(clips)
        self.frame_label_types = dict(frame_label_types)
        self._by_name = {c.name: c for c in self.clips}
        self._closed = False
        check_clip_rows(self.clips, self.frame_label_types, self._row_problem, self.path)

    @property
    def clip_names(self) -> list[str]:
        return [c.name for c in self.clips]

    @property
    def num_frames(self) -> int:
        """Frames of all clips together."""
        return sum(c.num_frames for c in self.clips)

    @property
    def labels(self) -> dict[str, list[str]]:
        """Every clip label key with the sorted values it takes across clips."""
        return label_values(self.clips)

    def info(self, clip: str | int) -> Any:
        """The clip table row of ``clip`` (a name or an index)."""
        if isinstance(clip, (int, np.integer)):
            if not -len(self.clips) <= clip < len(self.clips):
                raise DatasetError(f"clip index {clip} is out of range ({len(self.clips)} clips)", self.path)
            return self.clips[int(clip)]
        try:
            return self._by_name[clip]
        except KeyError:
            names = ", ".join(self.clip_names[:20]) + (", ..." if len(self.clips) > 20 else "")
            raise DatasetError(f"no clip {clip!r}; clips: {names}", self.path) from None

    def __len__(self) -> int:
        return len(self.clips)

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def _read_frames(self, info: Any, start: int, stop: int | None, fields: Sequence[str]) -> dict[str, np.ndarray]:
        """Frames ``[start, stop)`` (default: to the end) of ``fields`` of the clip of row ``info`` as stored
        (``_read``), after checking that the dataset is open and the frames exist; a library error on damaged data
        becomes one DatasetError naming the clip and frames."""
        self._check_open()
        stop = info.num_frames if stop is None else stop
        if not 0 <= start < stop <= info.num_frames:
            raise DatasetError(f"clip {info.name!r} has {info.num_frames} frames; frames {start}:{stop} do not fit",
                               self.path)
        try:
            return self._read(info, start, stop, fields)
        except self.read_errors as exc:
            raise DatasetError(f"damaged dataset: cannot read {', '.join(fields)}: {type(exc).__name__}: "
                               f"{str(exc).strip() or 'no detail'}", self.path,
                               f"clip {info.name!r}, frames {start}:{stop}") from None

    def _read(self, info: Any, start: int, stop: int, fields: Sequence[str]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _row_problem(self, row: Any) -> str | None:
        """What is wrong with a clip table row beyond what every format checks (None: nothing)."""
        return None

    def close(self) -> None:
        """Release the file; reading afterwards raises DatasetError. Subclasses release their file, then call
        this."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise DatasetError("dataset is closed; open it again to read", self.path)

    def __enter__(self) -> ClipTable:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Dataset(ClipTable):
    """A read-only dataset of clips of one skeleton topology. Open one with ``optiq.open_dataset(path)``.

    ``ds.clips`` is the clip table (ClipInfo), ``ds.read_clip(name)`` a whole clip, ``ds.window(name, start,
    length)`` a piece, ``ds.windows(length, stride)`` every window with random access, ``ds.stream()`` the whole
    dataset in storage-sized pieces (memory bounded by one piece). Reading never loads the whole file.
    Subclasses implement ``_read`` and ``_chunk_bounds`` (see ClipTable).
    """

    def __init__(self, path: str | os.PathLike, skeleton: Skeleton, clips: Sequence[ClipInfo],
                 fields: Sequence[str], frame_label_types: Mapping[str, str],
                 extras: Mapping[str, tuple[int, ...]] | None = None):
        self.skeleton = skeleton
        self.fields = tuple(fields)
        #: Extra per-frame arrays (schema version 3): name -> shape of one frame; read them with ``arrays``.
        self.extras = dict(extras or {})
        self._skeletons: dict[str, Skeleton] = {}
        check_fields(self.fields, path)
        super().__init__(path, clips, frame_label_types)

    @property
    def has_velocities(self) -> bool:
        return all(f in self.fields for f in VELOCITY_FIELDS)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, clips={len(self)}, frames={self.num_frames}, "
                f"joints={self.skeleton.num_joints})")

    def _row_problem(self, row: ClipInfo) -> str | None:
        j = self.skeleton.num_joints
        if row.offsets.shape != (j, 3) or not np.isfinite(row.offsets).all():
            return f"has rest offsets of shape {row.offsets.shape} or not finite ([{j}, 3] finite expected)"
        return None

    def clip_skeleton(self, clip: str | int) -> Skeleton:
        """The skeleton of one clip: the dataset's topology with the clip's own rest offsets."""
        info = self.info(clip)
        if info.name not in self._skeletons:
            self._skeletons[info.name] = Skeleton(self.skeleton.names, self.skeleton.parents, info.offsets,
                                                  info.end_sites)
        return self._skeletons[info.name]

    # --- reading -------------------------------------------------------------------------------------------
    def arrays(self, clip: str | int, start: int = 0, stop: int | None = None,
               fields: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Frames ``[start, stop)`` of ``clip`` as stored: float32 motion fields (``rotations [T, J, 4]`` wxyz,
        ``root_translation [T, 3]`` m, ``local_translations [T, J, 3]`` m, ``linear_velocities [T, J, 3]`` m/s,
        ``angular_velocities [T, J, 3]`` rad/s, each only when stored), the extras (``[T, *shape]``, e.g. a
        character's ``qpos``) and the clip's frame labels under their names. fields: a subset of names to read
        (default all the clip has)."""
        info = self.info(clip)
        available = [f for f in self.fields if f != "local_translations" or info.local_translations]
        available += [*self.extras, *info.frame_labels]
        wanted = available if fields is None else [f for f in fields if f in available]
        out = self._read_frames(info, start, stop, wanted)
        # Writers refuse non-finite values, so one here means the file was damaged or written by another tool.
        check_finite(out, info.name, self.skeleton.names, self.path, first_frame=start, stored=True)
        return out

    def window(self, clip: str | int, start: int, length: int) -> Clip:
        """Frames ``[start, start + length)`` of ``clip`` as a Clip (float64, unit quaternions, the clip's labels
        and name)."""
        return self._clip(self.info(clip), start, start + length)

    def read_clip(self, clip: str | int) -> Clip:
        """The whole clip (float64)."""
        info = self.info(clip)
        return self._clip(info, 0, info.num_frames)

    __getitem__ = read_clip

    def iter_clips(self) -> Iterator[Clip]:
        """Every clip in order, one in memory at a time."""
        for info in self.clips:
            yield self._clip(info, 0, info.num_frames)

    def windows(self, length: int, stride: int | None = None, clips: Sequence[str] | None = None) -> WindowSet:
        """Every window of ``length`` frames, starts ``stride`` apart (default ``length``), in clips that are long
        enough; a sequence with ``len`` and random access ``[i]`` -> Clip."""
        self._check_open()
        return WindowSet(self, length, stride or length, clips)

    def stream(self, max_frames: int | None = None) -> Iterator[Chunk]:
        """The whole dataset in order as Chunks of at most one storage unit (a Parquet row group, an HDF5
        chunk run of ``max_frames``), so memory stays bounded whatever the file's size."""
        self._check_open()
        for info in self.clips:
            bounds = self._chunk_bounds(info, max_frames)
            for a, b in zip(bounds[:-1], bounds[1:], strict=False):
                yield Chunk(info.name, a, self._clip(info, a, b))

    def _clip(self, info: ClipInfo, start: int, stop: int) -> Clip:
        fields = [*CLIP_FIELDS, *info.frame_labels]
        return self.clip_from_arrays(info.name, self.arrays(info.name, start, stop, fields))

    def clip_from_arrays(self, clip: str | int, arr: Mapping[str, np.ndarray]) -> Clip:
        """A Clip (float64) of ``clip`` from frames read with ``arrays`` (its motion fields and frame labels)."""
        info = self.info(clip)
        return Clip(
            self.clip_skeleton(info.name), info.fps,
            # Renormalised: float32 storage leaves norms 1e-7 off unit, which ill-conditions angle comparisons.
            arr["root_translation"].astype(np.float64), quat.normalize(arr["rotations"].astype(np.float64)),
            arr["local_translations"].astype(np.float64) if "local_translations" in arr else None,
            name=info.name, labels=dict(info.labels),
            frame_labels={k: arr[k] for k in info.frame_labels},
        )

    def _chunk_bounds(self, info: ClipInfo, max_frames: int | None) -> list[int]:
        raise NotImplementedError

    # --- summary and lifetime ------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """What ``optiq data info --json`` prints: sizes, skeleton, fps, labels and the clip table."""
        out = summarize(self.path, self.format_name, EXTRAS_SCHEMA_VERSION if self.extras else SCHEMA_VERSION,
                        self.skeleton, self.clips, self.fields, self.frame_label_types)
        if self.extras:
            out["extras"] = {k: list(v) for k, v in self.extras.items()}
        return out


def check_fields(fields: Sequence[str], path: str | os.PathLike) -> None:
    """Raise DatasetError unless a skeleton dataset header's ``fields`` are known motion fields, rotations and
    root_translation among them."""
    unknown = sorted(set(fields) - set(MOTION_FIELDS))
    missing = sorted({"root_translation", "rotations"} - set(fields))
    if unknown or missing:
        raise DatasetError(f"damaged dataset header: fields {', '.join(unknown or missing)} "
                           f"{'are unknown' if unknown else 'are missing'}", path)


def check_clip_rows(clips: Sequence[Any], frame_label_types: Mapping[str, str],
                    row_problem: Callable[[Any], str | None], path: str | os.PathLike) -> None:
    """Raise DatasetError unless a clip table read from ``path`` is consistent: unique clip names, clips of at
    least one frame stored one after the other from row 0 (``start``), positive finite fps, declared frame labels,
    and nothing that ``row_problem(row)`` names. Cheap: no frames are read, one pass over the rows.
    Names are not held to ``check_name`` here: files written before the rule still open."""
    row = 0
    seen: set[str] = set()
    for i, c in enumerate(clips):
        problem = None
        if c.name in seen:
            problem = "has the name of an earlier clip (clip names are unique)"
        elif c.num_frames < 1:
            problem = f"has {c.num_frames} frames (at least 1 expected)"
        elif c.start != row:
            problem = f"starts at row {c.start}, expected {row} (clips are stored one after the other)"
        elif not (np.isfinite(c.fps) and c.fps > 0):
            problem = f"has fps {c.fps} (a positive number expected)"
        elif undeclared := sorted(set(c.frame_labels) - set(frame_label_types)):
            problem = f"has frame labels {', '.join(undeclared)} that the header does not declare"
        else:
            problem = row_problem(c)
        if problem:
            raise DatasetError(f"damaged dataset header: clip {i} {c.name!r} {problem}", path)
        row += c.num_frames
        seen.add(c.name)


def label_values(clips: Sequence[ClipInfo | Clip]) -> dict[str, list[str]]:
    """Every clip label key of ``clips`` with the sorted values it takes across them."""
    out: dict[str, set[str]] = {}
    for c in clips:
        for k, v in c.labels.items():
            out.setdefault(k, set()).add(v)
    return {k: sorted(v) for k, v in sorted(out.items())}


def summarize(path: str | os.PathLike, format_name: str, schema_version: int | None, skeleton: Skeleton,
              clips: Sequence[ClipInfo | Clip], fields: Sequence[str],
              frame_label_types: Mapping[str, str]) -> dict[str, Any]:
    """The ``optiq data info --json`` object of a dataset's clip table, or of the clips of a motion file."""
    return {
        "path": str(path),
        "format": format_name,
        "schema_version": schema_version,
        "num_clips": len(clips),
        "num_frames": sum(c.num_frames for c in clips),
        "fps": sorted({c.fps for c in clips}),
        "fields": list(fields),
        "skeleton": {"num_joints": skeleton.num_joints, "names": list(skeleton.names),
                     "parents": skeleton.parents.tolist()},
        "labels": label_values(clips),
        "frame_labels": dict(frame_label_types),
        "clips": [{"name": c.name, "num_frames": c.num_frames, "fps": c.fps,
                   "duration_s": (c.num_frames - 1) / c.fps, "labels": dict(c.labels),
                   "frame_labels": list(c.frame_labels)} for c in clips],
    }


class WindowSet(Sequence):
    """Windows of a dataset: ``len(ws)``, ``ws[i]`` -> Clip (random access), iteration in order.

    ``ws.clip_index [N]`` and ``ws.starts [N]`` say where each window comes from (index into ``ds.clips``,
    first frame).
    """

    def __init__(self, ds: Dataset, length: int, stride: int, clips: Sequence[str] | None = None):
        if length < 1 or stride < 1:
            raise DatasetError(f"window length and stride must be positive, got {length} and {stride}", ds.path)
        self.dataset, self.length, self.stride = ds, int(length), int(stride)
        chosen = range(len(ds.clips)) if clips is None else [ds.clips.index(ds.info(c)) for c in clips]
        idx, starts = [], []
        for i in chosen:
            n = ds.clips[i].num_frames - self.length
            if n >= 0:
                s = np.arange(0, n + 1, self.stride)
                idx.append(np.full(len(s), i))
                starts.append(s)
        self.clip_index = np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64)
        self.starts = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.starts)

    def __repr__(self) -> str:
        return f"WindowSet(length={self.length}, stride={self.stride}, count={len(self)})"

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} of {len(self)}")
        return self.dataset.window(int(self.clip_index[i]), int(self.starts[i]), self.length)


class DatasetFormat:
    """A dataset format as registered through ``optiq_register_formats``: ``open(path) -> Dataset`` and
    ``writer(path, skeleton, *, frame_labels, local_translations, velocities, **options) -> DatasetWriter``.
    Subclasses name their ``dataset`` and ``writer_class``."""

    name = "?"
    dataset: type[Dataset] = Dataset
    writer_class: type[DatasetWriter] = DatasetWriter

    @classmethod
    def open(cls, path: str | os.PathLike) -> Dataset:
        return cls.dataset(path)

    @classmethod
    def writer(cls, path: str | os.PathLike, skeleton: Skeleton, **options: Any) -> DatasetWriter:
        return cls.writer_class(path, skeleton, **options)
