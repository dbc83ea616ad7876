"""OpenPose JSON (``--write_json``: one file per frame) -> 2D keypoints of one person as Points.

A folder of such files is one recording: ``optiq data convert --in folder/`` reads it as one input (the loader
registers ``folder=``, see optiq.io.loader_for), not as one input per frame.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import OptiqError, ParseError
from ..keypoints import LAYOUTS, Layout, get_layout, layouts_with
from ..points import Points
from .keypoints2d import drop_border, follow_subject, read_json, timing

# The frame number OpenPose puts at the end of each file name: video_000000000012_keypoints.json, cam01.0012.json.
FRAME_NUMBER = re.compile(r"(\d+)(?:_keypoints)?$")


def is_openpose_folder(path: Path) -> bool:
    """A folder whose first ``*.json`` file (by name) is a JSON object with OpenPose's ``people`` list and its
    ``version`` or ``pose_keypoints_2d`` (so that a folder of optiq JSON motions or label files is not one)."""
    first = min(path.glob("*.json"), default=None)
    if first is None:
        return False
    try:
        with open(first, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return (head.lstrip().startswith(b"{") and b'"people"' in head and b'"optiq-motion"' not in head
            and (b'"version"' in head or b'"pose_keypoints_2d"' in head))


def load_openpose(path: str | Path, *, layout: str = "auto", person: int = 0, fps: float | None = None,
                  image_size: str | tuple[int, int] | None = None, video: str | None = None,
                  border: float = 1.0) -> list[Points]:
    """The keypoints of one person in an OpenPose JSON folder (or one JSON file: one frame) as one Points.

    Returns ``[T, K, 2]`` pixel positions (x right, y down), ``[T, K]`` confidence, named and with edges after the
    layout (optiq.keypoints). T = the number of files, which must be numbered without gaps.
    layout: ``"auto"`` (by the number of points: 18 COCO-18, 25 BODY_25 or BODY_25B, told apart by where
    points 1-4 lie: beside the nose (eyes and ears, BODY_25B) or not (neck and right arm, BODY_25)), or a name.
    person: which person to follow (0: the largest and most confident in the first frame with people; see
    keypoints2d.follow_subject). fps, image_size (``"1080x1920"``): OpenPose writes neither; give them, or
    ``video`` (the video the keypoints come from) to read them from it. border: points less than this many pixels
    from the image edge are missing (keypoints2d.drop_border); 0 keeps them.
    Labels: ``source``, ``format=openpose``, ``layout``, ``person``. Frame labels: ``people`` (detections in the
    file) and ``detection`` (the index in the file's ``people`` list of the followed person, -1 when absent).
    """
    path = Path(path)
    files = frame_files(path)
    frames = [_read_frame(f) for f in files]
    counts = {d.shape[1] for d in frames if len(d)}
    if len(counts) > 1:
        f = next(f for f, d in zip(files, frames, strict=True) if len(d) and d.shape[1] != min(counts))
        raise ParseError(f"people have {sorted(counts)} points in different files; expected one layout", f)
    k = counts.pop() if counts else 0
    if not k:
        raise ParseError(f"no person in any of the {len(files)} frames", path)
    lay = _layout(layout, k, frames, path)
    rate, size = timing(path, len(frames), fps, image_size, video)
    frames = [drop_border(d, size, float(border)) for d in frames]
    subject, chosen = follow_subject(frames, int(person), path)
    return [Points(subject[..., :2], lay.names, rate, confidence=subject[..., 2], edges=lay.edges,
                   image_size=size, name=path.stem if path.is_file() else path.name,
                   labels={"source": path.name, "format": "openpose", "layout": lay.name, "person": str(person)},
                   frame_labels={"people": np.array([len(d) for d in frames], dtype=np.int64),
                                 "detection": chosen})]


def frame_files(path: Path) -> list[Path]:
    """The frame files of an OpenPose folder in frame order (the number at the end of each name), checked to
    be numbered without gaps or repeats; a single file is a one-frame recording."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise OptiqError("no such file or folder", path)
    numbered = []
    for f in sorted(path.glob("*.json")):
        m = FRAME_NUMBER.search(f.stem)
        if m is None:
            raise ParseError("expected a frame number at the end of the file name (OpenPose writes "
                             "<video>_000000000012_keypoints.json)", f)
        numbered.append((int(m.group(1)), f))
    if not numbered:
        raise ParseError("no OpenPose JSON files (*.json) in the folder", path)
    numbered.sort()
    numbers = np.array([n for n, _ in numbered])
    steps = np.diff(numbers)
    if (steps != 1).any():
        i = int(np.argmax(steps != 1))
        what = "repeated" if steps[i] == 0 else f"missing ({numbers[i] + 1} to {numbers[i + 1] - 1})"
        raise ParseError(f"frame numbers jump from {numbers[i]} ({numbered[i][1].name}) to {numbers[i + 1]} "
                         f"({numbered[i + 1][1].name}): frames {what}; expected one file per frame", path)
    return [f for _, f in numbered]


def _read_frame(path: Path) -> np.ndarray:
    """``[P, K, 3]`` (x, y, confidence) of every person in one OpenPose JSON file."""
    doc = read_json(path, "OpenPose JSON")
    people = doc.get("people") if isinstance(doc, dict) else None
    if not isinstance(people, list):
        raise ParseError('expected a JSON object with a "people" list (OpenPose --write_json)', path)
    rows = []
    for i, p in enumerate(people):
        values = p.get("pose_keypoints_2d") if isinstance(p, dict) else None
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            arr = np.empty(0)
        if arr.ndim != 1 or arr.size == 0 or arr.size % 3 or not np.isfinite(arr).all():
            raise ParseError("expected a list of x, y, confidence numbers (3 per keypoint)", path,
                             f"people[{i}].pose_keypoints_2d")
        rows.append(arr.reshape(-1, 3))
    if len({r.shape[0] for r in rows}) > 1:
        raise ParseError(f"people have {sorted({r.shape[0] for r in rows})} keypoints; expected one layout", path)
    if not rows:
        return np.zeros((0, 0, 3))
    out = np.stack(rows)
    # OpenPose's scores can exceed 1 by a little; a negative one is no detection.
    out[..., 2] = np.clip(out[..., 2], 0.0, 1.0)
    return out


def _layout(name: str, k: int, frames: list[np.ndarray], path: Path) -> Layout:
    """The layout named, checked against the ``k`` points per person, or the one ``k`` implies."""
    if name != "auto":
        lay = get_layout(name)
        if lay.num_points != k:
            raise OptiqError(f"layout {lay.name} has {lay.num_points} points, the files {k} per person", path)
        return lay
    found = layouts_with(k)
    if not found or k == 17:  # 17 points is COCO-17, which OpenPose does not write
        known = ", ".join(f"{lay.name} ({lay.num_points})" for lay in LAYOUTS.values() if lay.name != "coco17")
        raise ParseError(f"{k} keypoints per person is no OpenPose layout; known: {known}", path)
    if len(found) == 1:
        return found[0]
    det = np.concatenate([d for d in frames if len(d)])
    seen = det[..., 2] > 0
    dist = np.linalg.norm(det[..., :2] - det[:, :1, :2], axis=2)
    near = seen & seen[:, :1]
    first, last = dist[:, 1:5][near[:, 1:5]], dist[:, 15:19][near[:, 15:19]]
    if not first.size or not last.size:
        raise OptiqError("25 keypoints per person: BODY_25 or BODY_25B cannot be told from these frames; give "
                         "layout=body25 or layout=body25b", path)
    # BODY_25B: points 1-4 are eyes and ears (beside the nose), 15-18 ankles, neck and head top; BODY_25: 1-4
    # are the neck and right arm, 15-18 the eyes and ears.
    return LAYOUTS["body25b" if np.median(first) < np.median(last) else "body25"]
