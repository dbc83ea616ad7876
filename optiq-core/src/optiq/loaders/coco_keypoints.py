"""COCO-17 keypoint JSON -> 2D keypoints of one person as Points.

Two layouts of the same records (cocodataset.org/#format-data, #format-results): a results file (a JSON list of
``{"image_id", "category_id", "keypoints": [x, y, score] x 17, "score"}``, what detectors such as mmpose and
Detectron2 write) and an annotations file (an object with ``images`` and ``annotations``, whose third number per
keypoint is a visibility flag v: 0 not labelled, 1 labelled but hidden, 2 visible). Each image is a frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ParseError
from ..keypoints import LAYOUTS
from ..points import Points
from .keypoints2d import drop_border, follow_subject, read_json, timing


def sniff_coco_keypoints(path: Path, head: bytes) -> bool:
    """A JSON list of records with ``image_id`` and ``keypoints``, or an object with ``images``/``annotations``."""
    text = head.lstrip()
    if b'"optiq-motion"' in head:
        return False
    if text.startswith(b"["):
        return b'"image_id"' in head and b'"keypoints"' in head
    return text.startswith(b"{") and (b'"annotations"' in head or b'"images"' in head)


def load_coco_keypoints(path: str | Path, *, person: int = 0, fps: float | None = None,
                        image_size: str | tuple[int, int] | None = None, video: str | None = None,
                        border: float = 1.0) -> list[Points]:
    """The keypoints of one person in a COCO-17 keypoint JSON file as one Points.

    Returns ``[T, 17, 2]`` pixel positions (x right, y down) and ``[T, 17]`` confidence, COCO-17 names and edges.
    Frames: a results file's ``image_id``s, which must be consecutive integers (frame numbers); an annotations
    file's ``images`` in ``id`` order (an image without a person is a frame where the subject is missing).
    Confidence: a results file's score (in [0, 1]); in an annotations file 1 where v > 0, else 0 (v is a flag,
    not a probability). person, fps, image_size, video, border: as for the OpenPose loader (docs/video.md); an
    annotations file's image size is its images' ``width`` and ``height`` when they are all the same.
    Labels: ``source``, ``format=coco``, ``layout=coco17``, ``person``. Frame labels: ``people``, ``detection``.
    """
    path = Path(path)
    doc = _read(path)
    lay = LAYOUTS["coco17"]
    if isinstance(doc, list):
        records, where, flags = doc, "", False
        ids = _image_ids(records, where, path)
        frame_ids = np.unique(ids) if len(ids) else ids
        if len(frame_ids) and (np.diff(frame_ids) != 1).any():
            i = int(np.argmax(np.diff(frame_ids) != 1))
            raise ParseError(f"image_id jumps from {frame_ids[i]} to {frame_ids[i + 1]}: frames missing; expected "
                             "consecutive image ids (one per video frame)", path)
        file_size = None
    elif isinstance(doc, dict) and isinstance(doc.get("annotations"), list) and isinstance(doc.get("images"), list):
        records, where, flags = doc["annotations"], "annotations", True
        ids = _image_ids(records, where, path)
        images = doc["images"]
        frame_ids = np.sort(_image_ids(images, "images", path, key="id"))
        sizes = {(im.get("width"), im.get("height")) for im in images}
        file_size = next(iter(sizes)) if len(sizes) == 1 and None not in next(iter(sizes)) else None
        unknown = np.setdiff1d(ids, frame_ids)
        if unknown.size:
            raise ParseError(f"image_id {unknown[0]} is not in the images list", path, where)
    else:
        raise ParseError('expected a JSON list of keypoint results or an object with "images" and "annotations" '
                         "(COCO keypoint format)", path)
    if not len(frame_ids):
        raise ParseError("no frames: the file holds no keypoint records and no images", path)
    kp = _keypoints(records, where, path, lay.num_points)
    if flags:
        kp[..., 2] = (kp[..., 2] > 0).astype(np.float64)
    elif ((kp[..., 2] < 0) | (kp[..., 2] > 1)).any():
        i = int(np.argmax(((kp[..., 2] < 0) | (kp[..., 2] > 1)).any(axis=1)))
        raise ParseError("keypoint score outside [0, 1]; expected a confidence", path, f"{where}[{i}].keypoints")
    rate, size = timing(path, len(frame_ids), fps, image_size if image_size is not None else file_size, video)
    kp = drop_border(kp, size, float(border))
    # Records grouped by frame: a stable sort keeps each frame's records in file order (detection indices).
    frame_of = np.searchsorted(frame_ids, ids)
    order = np.argsort(frame_of, kind="stable")
    frames = np.split(kp[order], np.searchsorted(frame_of[order], np.arange(1, len(frame_ids))))
    subject, chosen = follow_subject(frames, int(person), path)
    return [Points(subject[..., :2], lay.names, rate, confidence=subject[..., 2], edges=lay.edges, image_size=size,
                   name=path.stem, labels={"source": path.name, "format": "coco", "layout": lay.name,
                                           "person": str(person)},
                   frame_labels={"people": np.array([len(f) for f in frames], dtype=np.int64), "detection": chosen})]


def _read(path: Path):
    return read_json(path, "COCO keypoint JSON")


def _image_ids(records: list, where: str, path: Path, key: str = "image_id") -> np.ndarray:
    """``[N]`` int64 ``key`` (the image id) of each record."""
    ids = np.empty(len(records), dtype=np.int64)
    for i, r in enumerate(records):
        value = r.get(key) if isinstance(r, dict) else None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParseError(f"expected an integer {key}", path, f"{where}[{i}]")
        ids[i] = value
    return ids


def _keypoints(records: list, where: str, path: Path, k: int) -> np.ndarray:
    """``[N, k, 3]`` keypoints of the records, each checked to be ``3 * k`` finite numbers."""
    out = np.empty((len(records), k, 3))
    for i, r in enumerate(records):
        try:
            arr = np.asarray(r.get("keypoints"), dtype=np.float64)
        except (TypeError, ValueError):
            arr = np.empty(0)
        if arr.shape != (3 * k,) or not np.isfinite(arr).all():
            raise ParseError(f"expected {3 * k} numbers (x, y, v for each of the {k} COCO keypoints)", path,
                             f"{where}[{i}].keypoints")
        out[i] = arr.reshape(k, 3)
    return out
