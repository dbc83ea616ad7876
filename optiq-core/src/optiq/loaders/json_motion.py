"""The optiq JSON motion format (docs/json-motion.md): one clip per file, for tools outside Python.

Arrays are stored column-wise (``frames.rotations`` is ``[T][J][4]``), floats with ``repr`` precision, so a
clip written and read back is bit-identical. Files may be written Y up or in another length unit by other tools
(``units``); they are converted to metres, Z up on load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_text
from ..axes import axis_matrix, length_scale
from ..clip import Clip
from ..errors import OptiqError, ParseError
from ..names import check_name
from ..skeleton import Skeleton

FORMAT = "optiq-motion"
VERSION = 1


def sniff_json(path: Path, head: bytes) -> bool:
    """A JSON object whose ``format`` is ``optiq-motion`` (the writer puts it first)."""
    return head.lstrip().startswith(b"{") and b'"optiq-motion"' in head


def _label_list(values: np.ndarray, key: str) -> list:
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise OptiqError(f"frame label {key!r} holds NaN or inf, which JSON cannot store")
    if values.dtype.kind in "fiub":
        return values.tolist()
    return values.astype(str).tolist()


def clip_to_document(clip: Clip) -> dict:
    """The JSON document (plain dict) for ``clip``; see docs/json-motion.md."""
    sk = clip.skeleton
    frames = {"root_translation": clip.root_translation.tolist(), "rotations": clip.rotations.tolist()}
    if clip.local_translations is not None:
        frames["local_translations"] = clip.local_translations.tolist()
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": clip.name,
        "fps": clip.fps,
        "num_frames": clip.num_frames,
        "units": {"length": "m", "angle": "rad", "up": "z", "quaternion": "wxyz"},
        "skeleton": {
            "names": list(sk.names),
            "parents": sk.parents.tolist(),
            "offsets": sk.offsets.tolist(),
            "end_sites": {str(k): v.tolist() for k, v in sorted(sk.end_sites.items())},
        },
        "frames": frames,
        "labels": dict(clip.labels),
        "frame_labels": {k: _label_list(v, k) for k, v in clip.frame_labels.items()},
    }


def write_json(clip: Clip, path: str | os.PathLike, **_ignored) -> None:
    """Write ``clip`` as optiq JSON (metres, Z up, wxyz), atomically: the file appears only when complete."""
    text = json.dumps(clip_to_document(clip), separators=(",", ":"), allow_nan=False)
    with atomic_text(path) as fh:
        fh.write(text)
        fh.write("\n")


def _json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for messages."""
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
             dict: "an object", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def _need(d: object, key: str, path: Path, where: str = ""):
    if not isinstance(d, dict) or key not in d:
        raise ParseError(f"missing key {key!r}", path, where + key)
    return d[key]


def _numbers(value: object, shape: tuple[int, ...], path: Path, where: str) -> np.ndarray:
    """``value`` as a float array of ``shape`` (``-1`` = any length); names the first bad frame otherwise."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    ok = arr is not None and arr.ndim == len(shape) and all(s in (-1, a) for s, a in zip(shape, arr.shape, strict=True))
    if not ok:
        if isinstance(value, list) and len(shape) > 1:
            for i, item in enumerate(value):
                _numbers(item, shape[1:], path, f"{where}[{i}]")
        want = "x".join("T" if s == -1 else str(s) for s in shape)
        raise ParseError(f"expected a [{want}] array of numbers", path, where)
    bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1) if arr.size else np.zeros(0, bool)
    if bad.any():
        raise ParseError("holds NaN or inf (expected finite numbers)", path, f"{where}[{int(np.argmax(bad))}]")
    return arr


def document_to_clip(doc: object, path: Path) -> Clip:
    """A Clip from a parsed optiq JSON document; ParseError names the key (and frame) that is wrong."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ParseError(f'expected an object with "format": "{FORMAT}"', path, "format")
    version = _need(doc, "version", path)
    if version != VERSION or isinstance(version, bool):
        raise ParseError(f"unsupported version {version!r}; this optiq reads version {VERSION}", path, "version")
    fps = _need(doc, "fps", path)
    # JSON true is a Python int: booleans are not numbers here.
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not np.isfinite(fps) or fps <= 0:
        raise ParseError(f"fps must be a positive number, got {fps!r}", path, "fps")
    sk = _need(doc, "skeleton", path)
    names = _need(sk, "names", path, "skeleton.")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ParseError("expected a non-empty list of joint names", path, "skeleton.names")
    j = len(names)
    parents = _numbers(_need(sk, "parents", path, "skeleton."), (j,), path, "skeleton.parents")
    if not np.array_equal(parents, np.round(parents)):
        raise ParseError("parents must be integers (joint indices, -1 for the root)", path, "skeleton.parents")
    offsets = _numbers(_need(sk, "offsets", path, "skeleton."), (j, 3), path, "skeleton.offsets")
    end_sites_raw = sk.get("end_sites", {})
    if not isinstance(end_sites_raw, dict):
        raise ParseError("expected an object {joint index: [x, y, z]}", path, "skeleton.end_sites")
    end_sites = {}
    for k, v in end_sites_raw.items():
        if not k.isdigit() or int(k) >= j:
            raise ParseError(f"key {k!r} is not a joint index below {j}", path, "skeleton.end_sites")
        end_sites[int(k)] = _numbers(v, (3,), path, f"skeleton.end_sites.{k}")
    try:
        skeleton = Skeleton(names, parents.astype(np.int64), offsets, end_sites)
    except OptiqError as exc:
        raise ParseError(exc.message, path, "skeleton") from None

    frames = _need(doc, "frames", path)
    rot = _numbers(_need(frames, "rotations", path, "frames."), (-1, j, 4), path, "frames.rotations")
    t = len(rot)
    if t == 0:
        raise ParseError("no frames", path, "frames.rotations")
    root = _numbers(_need(frames, "root_translation", path, "frames."), (t, 3), path, "frames.root_translation")
    local = None
    if "local_translations" in frames:
        local = _numbers(frames["local_translations"], (t, j, 3), path, "frames.local_translations")
    norms = np.linalg.norm(rot, axis=-1)
    if np.any(norms < 1e-6):
        i, jj = (int(x) for x in np.argwhere(norms < 1e-6)[0])
        raise ParseError(f"joint {names[jj]!r} has a zero quaternion", path, f"frames.rotations[{i}]")
    # Rotations written by optiq are unit already; dividing would change their last bit, so only fix others.
    if np.abs(norms - 1.0).max() > 1e-12:
        rot = rot / norms[..., None]

    labels = doc.get("labels", {})
    if not isinstance(labels, dict):
        raise ParseError("expected an object of string labels", path, "labels")
    for key, value in labels.items():
        if not isinstance(value, str):
            raise ParseError(f"expected a string, got {_json_type(value)} (clip labels are strings: write "
                             f"\"{key}\": \"{value}\" if that is meant)", path, f"labels.{key}")
    name = doc.get("name", path.stem)
    if not isinstance(name, str):
        raise ParseError(f"expected a string, got {_json_type(name)}", path, "name")
    # Names a dataset could not store are refused here, naming this file, not later naming the dataset.
    check_name(name, "clip name", path, error=ParseError)
    for key in labels:
        check_name(key, "clip label key", path, error=ParseError)
    frame_labels_raw = doc.get("frame_labels") or {}
    if not isinstance(frame_labels_raw, dict):
        raise ParseError("expected an object {name: [T values]}", path, "frame_labels")
    frame_labels = {}
    for key, values in frame_labels_raw.items():
        check_name(key, "frame label name", path, error=ParseError)
        try:
            arr = np.asarray(values)
        except ValueError:  # ragged nested lists
            arr = np.asarray(None)
        if arr.shape != (t,) or arr.dtype.kind not in "biufU":
            raise ParseError(f"expected {t} values (one per frame, all numbers, all booleans or all strings)",
                             path, f"frame_labels.{key}")
        frame_labels[key] = arr
    clip = Clip(skeleton, float(fps), root, rot, local, name=name, labels=dict(labels), frame_labels=frame_labels)
    return _to_optiq_units(clip, doc.get("units", {}), path)


def _to_optiq_units(clip: Clip, units: object, path: Path) -> Clip:
    if not isinstance(units, dict):
        raise ParseError("expected an object", path, "units")
    if units.get("quaternion", "wxyz") != "wxyz" or units.get("angle", "rad") != "rad":
        raise ParseError("optiq JSON stores quaternions wxyz and angles in radians", path, "units")
    up, length = units.get("up", "z"), units.get("length", "m")
    if up == "z" and length == "m":
        return clip
    try:
        scale, _ = length_scale(length)
        matrix = axis_matrix(up)
    except ValueError as exc:
        raise ParseError(str(exc), path, "units") from None
    return clip.transformed(matrix, scale)


def load_json(path: str | os.PathLike, **_ignored) -> list[Clip]:
    """Read an optiq JSON motion file into one Clip (metres, Z up, wxyz)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParseError(f"cannot read file: {exc.strerror}", path) from None
    except UnicodeDecodeError:
        raise ParseError("not UTF-8 text", path) from None
    if not text.strip():
        raise ParseError("file is empty", path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON ({exc.msg}; the file may be truncated)", path,
                         f"line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise ParseError("JSON nested too deeply (an optiq motion file is at most 4 levels deep)", path) from None
    return [document_to_clip(doc, path)]
