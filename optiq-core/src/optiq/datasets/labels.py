"""Labelling a dataset: clip labels for clips matching a pattern, frame labels from a JSON file.

The frame labels file (docs/dataset-format.md, "Frame labels file") maps clip names to labels; a label is
either one value per frame or ``{"segments": [[start, stop, value], ...], "default": value}`` with half-open
frame ranges. Every label must cover exactly the clip's frames.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, check_output_path
from ..contacts import auto_labels, find_feet
from ..errors import DatasetError, ParseError
from ..names import check_name
from . import format_for, merged_label_dtype, open_dataset
from .base import MOTION_FIELDS, Dataset


def read_frame_labels(path: str | os.PathLike, ds: Dataset) -> dict[str, dict[str, np.ndarray]]:
    """Parse a frame labels file against the clips of ``ds``: ``{clip: {label: array [T]}}``.

    Raises ParseError naming the file, the clip and the label when a label does not fit its clip's frames.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ParseError(f"cannot read frame labels file: {exc.strerror}", path) from None
    except json.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON: {exc.msg}", path, f"line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise ParseError("JSON nested too deeply (a labels file is 3 to 4 levels deep)", path) from None
    if not isinstance(doc, dict):
        raise ParseError("expected an object {clip name: {label: values}}", path)
    out = {}
    for clip, labels in doc.items():
        if clip not in ds:
            raise ParseError(f"clip {clip!r} is not in the dataset {ds.path}", path, f"clip {clip!r}")
        if not isinstance(labels, dict):
            raise ParseError("expected an object {label: values}", path, f"clip {clip!r}")
        n = ds.info(clip).num_frames
        for name in labels:
            check_name(name, "frame label name", path, error=ParseError)
            if name in MOTION_FIELDS:
                raise ParseError(f"frame label name {name!r} is a motion field name; rename it", path,
                                 f"clip {clip!r}")
        out[clip] = {name: _label_values(values, n, path, f"clip {clip!r}, label {name!r}")
                     for name, values in labels.items()}
    return out


def _label_values(spec: Any, n: int, path: Path, where: str) -> np.ndarray:
    if isinstance(spec, list):
        if len(spec) != n:
            raise ParseError(f"{len(spec)} values, but the clip has {n} frames (one value per frame expected)",
                             path, where)
        return _array(spec, path, where)
    if not isinstance(spec, dict) or not isinstance(spec.get("segments"), list):
        raise ParseError("expected a list of one value per frame or {\"segments\": [[start, stop, value], ...]}",
                         path, where)
    segments = spec["segments"]
    covered = np.zeros(n, dtype=bool)
    values: list[Any] = [spec.get("default")] * n
    for k, seg in enumerate(segments):
        if not (isinstance(seg, list) and len(seg) == 3 and all(isinstance(x, int) and not isinstance(x, bool) for x in seg[:2])):
            raise ParseError(f"segment {k} is {seg!r}, expected [start, stop, value] with integer frames",
                             path, where)
        a, b, v = seg
        if not 0 <= a < b <= n:
            raise ParseError(f"segment {k} covers frames {a}:{b}, but the clip has frames 0:{n}", path, where)
        values[a:b] = [v] * (b - a)
        covered[a:b] = True
    if "default" not in spec and not covered.all():
        raise ParseError(f"frame {int(np.argmin(covered))} is in no segment and there is no \"default\"",
                         path, where)
    return _array(values, path, where)


def _array(values: list[Any], path: Path, where: str) -> np.ndarray:
    kinds = {type(v) for v in values}
    if kinds <= {bool} or kinds <= {int, float} or kinds <= {str}:
        return np.asarray(values)
    names = ", ".join(sorted(k.__name__ for k in kinds))
    raise ParseError(f"values must all be numbers, all booleans or all strings; found {names}", path, where)


def _auto_label_types(kinds: Sequence[str], skeleton) -> dict[str, np.dtype]:
    """The frame labels ``auto_labels`` writes for ``kinds`` on ``skeleton``, with their dtypes (declared before
    the first clip is written)."""
    out: dict[str, np.dtype] = {}
    for kind in kinds:
        if kind == "contacts":
            out.update({f"contact_{foot}": np.dtype(bool) for foot in find_feet(skeleton)})
        elif kind == "phase":
            out["phase"] = np.dtype(np.float32)
        else:
            raise DatasetError(f"unknown automatic label {kind!r}; expected contacts or phase")
    return out


def relabel(src: str | os.PathLike, out: str | os.PathLike, *, labels: Mapping[str, str] | None = None,
            clips: Sequence[str] | None = None, frame_labels: str | os.PathLike | None = None,
            auto: Sequence[str] = (), format: str | None = None) -> Path:
    """Write a copy of dataset ``src`` to ``out`` (format by suffix: this also converts) with labels added.

    labels: clip labels given to every clip whose name matches one of the ``clips`` patterns (fnmatch; all
    clips by default). frame_labels: a frame labels file. auto: frame labels computed from the motion of the
    matching clips (``"contacts"``: ``contact_<foot>`` bool per foot; ``"phase"``: gait phase float32 in
    [0, 1); see ``optiq.contacts.auto_labels``). Stored motion arrays, velocities included, are copied bit for
    bit. Returns ``out``. The write is atomic; ``out`` may equal ``src``.
    """
    check_output_path(out)
    for key in labels or {}:
        check_name(key, "clip label key", None)
    fmt = format_for(out, format)
    with open_dataset(src) as ds:
        chosen = set(ds.clip_names)
        if clips:
            chosen = {n for n in ds.clip_names if any(fnmatch.fnmatchcase(n, p) for p in clips)}
            if not chosen:
                raise DatasetError(f"no clip matches {', '.join(clips)}; clips: {', '.join(ds.clip_names[:20])}",
                                   src)
        added = read_frame_labels(frame_labels, ds) if frame_labels else {}
        types = {k: np.dtype(str) if t == "string" else np.dtype(t) for k, t in ds.frame_label_types.items()}
        for per_clip in added.values():
            for name, arr in per_clip.items():
                merged = merged_label_dtype([*([types[name]] if name in types else []), arr.dtype])
                if merged is None:
                    raise ParseError(f"frame label {name!r} holds text in some clips and numbers in others",
                                     frame_labels)
                types[name] = merged
        for name, dtype in _auto_label_types(auto, ds.skeleton).items():
            if name in types and merged_label_dtype([types[name], dtype]) is None:
                raise DatasetError(f"frame label {name!r} already holds text; --auto {name} would add numbers", src)
            types[name] = dtype if name not in types else merged_label_dtype([types[name], dtype])
        with atomic_path(out) as tmp:
            writer = fmt.writer(tmp, ds.skeleton, frame_labels=types,
                                local_translations=any(c.local_translations for c in ds.clips),
                                velocities=ds.has_velocities,
                                # Extras (schema version 3: a character's qpos, qvel) are kept as stored.
                                **({"extras": ds.extras} if ds.extras else {}))
            with writer:
                for info in ds.clips:
                    stored = ds.arrays(info.name)  # read once: the clip and the arrays copied as stored
                    clip = ds.clip_from_arrays(info.name, stored)
                    if clip.name in chosen and labels:
                        clip = clip.with_labels(dict(labels))
                    if clip.name in added:
                        clip = clip.with_labels(frame_labels=added[clip.name])
                    if clip.name in chosen and auto:
                        clip = clip.with_labels(frame_labels={k: v for kind in auto
                                                              for k, v in auto_labels(clip, kind).items()})
                    # The stored float32 arrays are copied as they are (no float64 round trip).
                    writer.add(clip, {k: v for k, v in stored.items() if k in MOTION_FIELDS},
                               extras={k: stored[k] for k in ds.extras} or None)
    return Path(out)

