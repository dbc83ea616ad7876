"""What the 2D keypoint loaders (OpenPose JSON folders, COCO keypoint JSON) share: the frame rate and image size
(options, or read from the video the keypoints were detected in), the image-border rule, and following one
person through frames of several detections.

Detections are ``[P, K, 3]`` arrays per frame: x, y in pixels (origin top-left, y down) and a confidence in
[0, 1]; a point with confidence 0 is missing whatever its coordinates (OpenPose writes ``(0, 0, 0)`` for it).
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OptiqError, ParseError

# A detection whose box overlaps the subject's last box by less than this (intersection over union) is someone
# else: at video rates a person's box moves by a few percent of its size per frame.
MIN_IOU = 0.1
# A detection whose box lies within the subject's last box grown by this fraction of its size (on every side) is
# a piece of the subject that the detector split off (OpenPose gives the legs and the upper body as two people in
# frame 37 of the shared Pose2Sim demo): it fills the points the followed detection lacks.
FRAGMENT_MARGIN = 0.1


def read_json(path: Path, what: str) -> Any:
    """The JSON document of ``path``; a file that cannot be read, is not JSON or not UTF-8 is one ParseError line
    naming the place and ``what`` was expected (``"OpenPose JSON"``)."""
    import json

    try:
        return json.loads(path.read_bytes())
    except OSError as exc:
        raise ParseError(f"cannot read file: {exc.strerror}", path) from None
    except json.JSONDecodeError as exc:
        raise ParseError(f"not JSON: {exc.msg}", path, f"line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError as exc:
        raise ParseError(f"not UTF-8 text; expected {what}", path, f"byte {exc.start}") from None


def open_video(video: str | Path) -> tuple[float, tuple[int, int], Any]:
    """``(fps, (width, height), frames)``: imageio-ffmpeg's reader of a video file, its frame rate and the size of the
    frames ffmpeg decodes (after the rotation metadata of phone videos is applied: ffmpeg rotates by default, so it is
    the size of the picture the keypoints were detected in), and the generator of its RGB24 frames (bytes; close it).
    A file ffmpeg cannot read, or one without a frame rate, is one ParseError line."""
    import imageio_ffmpeg

    video = Path(video)
    if not video.is_file():
        raise OptiqError(f"video {video} does not exist", video)
    log = logging.getLogger("imageio_ffmpeg")
    level = log.level
    # imageio-ffmpeg logs a warning when the decoded size differs from the stored one: for a rotated phone video
    # that is the rotation being applied, which is what is wanted here.
    log.setLevel(logging.ERROR)
    try:
        reader = imageio_ffmpeg.read_frames(str(video))
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration, IndexError, AttributeError) as exc:
        # imageio-ffmpeg raises OSError/RuntimeError with ffmpeg's whole log, or fails parsing a log without a
        # video stream: one line is what the user needs.
        raise ParseError(f"ffmpeg cannot read {video} as a video ({type(exc).__name__})", video) from None
    finally:
        log.setLevel(level)
    fps = float(meta.get("fps") or 0)
    if not np.isfinite(fps) or fps <= 0:
        reader.close()
        raise ParseError(f"the video {video} states no frame rate", video)
    return fps, (int(meta["size"][0]), int(meta["size"][1])), reader


def video_meta(video: str | Path) -> tuple[float, tuple[int, int], int]:
    """``(fps, (width, height), frames)`` of a video file (``open_video``'s rate and size, and the frame count,
    which decodes the whole video once more)."""
    import imageio_ffmpeg

    fps, size, reader = open_video(video)
    reader.close()
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
    return fps, size, int(frames)


def parse_image_size(value: Any, path: Path) -> tuple[int, int] | None:
    """``image_size`` as ``(width, height)`` pixels from ``"1080x1920"``, ``"1080,1920"`` or a pair; None stays."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = re.split(r"[x,X ]+", value.strip())
    else:
        parts = list(value) if isinstance(value, (list, tuple)) else [value]
    try:
        size = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        size = ()
    if len(size) != 2 or min(size) <= 0:
        raise OptiqError(f"image_size {value!r}: expected WIDTHxHEIGHT in pixels, e.g. 1080x1920", path)
    return size  # type: ignore[return-value]


def timing(path: Path, frames: int, fps: float | None, image_size: Any, video: str | Path | None,
           ) -> tuple[float, tuple[int, int] | None]:
    """The frame rate and image size of ``frames`` keypoint frames: the options when given, else the video's.

    Keypoint JSON states neither, so without ``fps`` or ``video`` the loader stops rather than assume a rate.
    A video whose frame count differs from the keypoints' is refused: its frames would not be the keypoints'.
    """
    size = parse_image_size(image_size, path)
    if video is not None:
        v_fps, v_size, v_frames = video_meta(video)
        if v_frames != frames:
            raise OptiqError(f"the video {video} has {v_frames} frames and the keypoints {frames}; expected "
                             "the video the keypoints were detected in", path)
        fps = v_fps if fps is None else fps
        size = v_size if size is None else size
    if fps is None:
        raise OptiqError("keypoint JSON states no frame rate: give fps= (--option fps=60) or the video the "
                         "keypoints come from (--option video=run.mp4)", path)
    fps = float(fps)
    if not np.isfinite(fps) or fps <= 0:
        raise OptiqError(f"fps {fps} must be positive", path)
    return fps, size


def drop_border(det: np.ndarray, image_size: tuple[int, int] | None, border: float) -> np.ndarray:
    """``det`` ``[..., K, 3]`` with points less than ``border`` pixels from the image edge made missing
    (confidence 0). Detectors clamp a point they place outside the picture onto its edge and still give it a
    confidence (OpenPose: the nose at x = 0 with confidence 0.6-0.7 in the shared Pose2Sim data), so a coordinate
    at the edge is not a measurement. Without an image size only the left and top edges are known."""
    x, y = det[..., 0], det[..., 1]
    at_edge = (x < border) | (y < border)
    if image_size is not None:
        at_edge |= (x > image_size[0] - 1 - border) | (y > image_size[1] - 1 - border)
    out = det.copy()
    out[..., 2] = np.where(at_edge, 0.0, out[..., 2])
    return out


def boxes(det: np.ndarray) -> np.ndarray:
    """``[P, 4]`` boxes (x0, y0, x1, y1) of the confident points of ``det`` ``[P, K, 3]``; NaN for a detection
    without any."""
    seen = det[..., 2] > 0
    x = np.where(seen, det[..., 0], np.nan)
    y = np.where(seen, det[..., 1], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: a detection without a confident point
        return np.stack([np.nanmin(x, 1), np.nanmin(y, 1), np.nanmax(x, 1), np.nanmax(y, 1)], axis=1)


def iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of ``box`` ``[4]`` with each of ``others`` ``[P, 4]`` (0 for NaN boxes)."""
    w = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = w * h
    union = _area(box) + _area(others) - inter
    with np.errstate(all="ignore"):
        return np.nan_to_num(np.where(union > 0, inter / union, 0.0))


def rank_people(det: np.ndarray) -> np.ndarray:
    """Detections of one frame ``[P, K, 3]`` ordered best first: by box area times mean confidence over all K
    points (the largest, most completely and confidently seen person: the subject of a video filmed for them)."""
    area = np.nan_to_num(_area(boxes(det)))
    return np.argsort(-(area * det[..., 2].mean(axis=1)), kind="stable")


def _area(b: np.ndarray) -> np.ndarray:
    """Areas of boxes ``[..., 4]`` (x0, y0, x1, y1) in square pixels."""
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def follow_subject(frames: Sequence[np.ndarray], person: int, path: Path,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One person followed through ``frames`` (each ``[P_t, K, 3]``, P_t >= 0).

    The subject is chosen in the first frame with a detection: ``person`` = 0 is the first of ``rank_people``,
    1 the second, and so on. In each later frame it is the detection whose box overlaps the subject's last box
    most (at least MIN_IOU), plus the points it lacks from detections lying inside that box (FRAGMENT_MARGIN);
    a frame without such a detection has the subject missing (confidence 0), never someone else.
    Returns ``[T, K, 3]`` and ``[T]`` int: the index of the followed detection in each frame's list, -1 if none.
    """
    k = next((f.shape[1] for f in frames if f.shape[0]), 0)
    out = np.zeros((len(frames), k, 3))
    chosen = np.full(len(frames), -1, dtype=np.int64)
    start = next((t for t, f in enumerate(frames) if len(f)), None)
    if start is None:
        raise ParseError(f"no person in any of the {len(frames)} frames", path)
    ranked = rank_people(frames[start])
    if not 0 <= person < len(ranked):
        raise OptiqError(f"person={person}: the first frame with people (frame {start}) has {len(ranked)}; "
                         f"expected 0 to {len(ranked) - 1}", path)
    out[start] = frames[start][ranked[person]]
    chosen[start] = ranked[person]
    last = boxes(out[start][None])[0]
    # Sequential by nature (each frame is matched against the subject's box in the one before); the work per
    # frame is a few vector operations over its P detections.
    for t in range(start + 1, len(frames)):
        det = frames[t]
        if not len(det):
            continue
        b = boxes(det)
        overlap = iou(last, b)
        best = int(np.argmax(overlap))
        if overlap[best] < MIN_IOU:
            continue
        out[t] = det[best]
        chosen[t] = best
        grow = FRAGMENT_MARGIN * np.array([-1, -1, 1, 1]) * np.tile([last[2] - last[0], last[3] - last[1]], 2)
        outer = last + grow
        inside = (b[:, 0] >= outer[0]) & (b[:, 1] >= outer[1]) & (b[:, 2] <= outer[2]) & (b[:, 3] <= outer[3])
        inside[best] = False
        for q in np.flatnonzero(inside):
            fill = (out[t, :, 2] <= 0) & (det[q, :, 2] > 0)
            out[t, fill] = det[q, fill]
        last = boxes(out[t][None])[0]
    return out, chosen
