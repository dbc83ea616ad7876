"""Video -> COCO-17 2D keypoints of one person as ``optiq.Points`` (the loader ``video`` registers).

Frames are decoded by the ffmpeg optiq ships (imageio-ffmpeg's binary, writing straight into the estimator's
process), which applies the rotation metadata of phone videos, so the pixels are those of the upright picture;
the frame rate is the video's and each decoded frame is one keypoint frame. The estimator is MediaPipe Pose
(optiq_video.estimator), its 33 landmarks reduced to COCO-17 (optiq_video.landmarks).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from optiq.errors import ParseError
from optiq.keypoints import get_layout
from optiq.loaders.keypoints2d import drop_border
from optiq.points import Points

from .estimator import MEDIAPIPE_REQUIREMENT, Estimator
from .landmarks import COCO17_FROM_MEDIAPIPE


def load_video(path: str | os.PathLike, *, border: float = 1.0, python: str | None = None) -> list[Points]:
    """The COCO-17 keypoints of the person MediaPipe Pose finds in each frame of the video ``path``.

    Returns one Points: ``[T, 17, 2]`` pixel positions (x right, y down, origin top-left of the upright picture),
    ``[T, 17]`` confidence = MediaPipe's landmark visibility in [0, 1], T = the video's frame count, fps = its
    frame rate, image_size = (width, height) after rotation. Missing (confidence 0, NaN position): every point of
    a frame where no person was found, and points less than ``border`` pixels from the picture's edge or outside
    it (MediaPipe extrapolates a landmark it cannot see beyond the edge; see keypoints2d.drop_border). python:
    the estimator's interpreter (default: optiq_video.estimator.estimator_python).
    Labels: ``source``, ``format=video``, ``layout=coco17``, ``estimator``. Frame labels: ``people`` (1 where a
    person was found, else 0) and ``detection`` (0 where found, -1 where not), as the OpenPose loader's.
    """
    path = Path(path)
    with Estimator(python, source=path) as estimator:
        fps, (width, height) = probe(path)  # while the estimator imports MediaPipe
        marks = estimator.run(decode_command(path), width, height)
    if not len(marks):
        raise ParseError("ffmpeg decoded no frame; expected a video with at least one", path)
    coco = marks[:, COCO17_FROM_MEDIAPIPE].astype(np.float64)  # [T, 17, 3]
    det = np.concatenate([coco[..., :2] * (width, height), coco[..., 2:]], axis=2)
    det[..., 2] = np.clip(np.nan_to_num(det[..., 2]), 0.0, 1.0)
    det = drop_border(det, (width, height), float(border))
    found = np.isfinite(marks[:, 0, 0])
    lay = get_layout("coco17")
    return [Points(det[..., :2], lay.names, fps, confidence=det[..., 2], edges=lay.edges,
                   image_size=(width, height), name=path.stem,
                   labels={"source": path.name, "format": "video", "layout": lay.name,
                           "estimator": f"{MEDIAPIPE_REQUIREMENT} pose, model_complexity=1"},
                   frame_labels={"people": found.astype(np.int64), "detection": np.where(found, 0, -1)})]


def probe(path: Path) -> tuple[float, tuple[int, int]]:
    """``(fps, (width, height))`` of the video ``path`` (optiq.loaders.keypoints2d.open_video: size after rotation),
    without video_meta's frame count, which decodes the whole video a second time (about a tenth of the
    extraction's time); the frame count here is the frames decoded, each once (decode_command)."""
    from optiq.loaders.keypoints2d import open_video

    fps, size, reader = open_video(path)
    reader.close()
    return fps, size


def decode_command(path: str | os.PathLike) -> list[str]:
    """The ffmpeg command (imageio-ffmpeg's binary, the one optiq ships) that writes the frames of ``path`` to
    its stdout as RGB24: the upright picture (ffmpeg applies the rotation metadata by default) and every decoded
    frame once (``-fps_mode passthrough``: a constant-rate output would duplicate frames where timestamps leave
    gaps, 33 pictures out of a 30-frame stream copy of the shared video)."""
    import imageio_ffmpeg

    return [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-map", "0:v:0",
            "-pix_fmt", "rgb24", "-f", "rawvideo", "-fps_mode", "passthrough", "-"]
