"""2D keypoints drawn over the frames of the video they were detected in: the first sanity check of any
video-to-keypoints run (``optiq viz video --keypoints kp.parquet --on-video run.mp4 --out preview.mp4``).

Frame-exact: frame t of the output is frame t of the video with keypoint frame t drawn on it, at the video's
exact frame rate (encoded by video.encode). Frames are decoded by imageio-ffmpeg's ffmpeg, which applies the
rotation metadata of phone videos, so the picture is the one the keypoints' pixel coordinates refer to. Each point
and edge is drawn with its confidence as opacity (an edge: the lower of its two ends); missing points are not drawn.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from optiq import Clip, OptiqError, Points
from optiq.atomic import atomic_path, check_output_path

from . import raster
from .video import PALETTE, SEPARATOR, VIDEO_SUFFIXES, Video, encode, exact_fps, iter_frames

#: Edges in the first palette colour, points in white over them, so both show on any background.
EDGE_COLOR = PALETTE[0]
POINT_COLOR = (255, 255, 255)
#: Frames decoded and drawn per batch (a 1080x1920 frame is 6 MB; the canvas adds 8 MB per frame).
BATCH_FRAMES = 8


def read_video(path: str | os.PathLike) -> tuple[dict, Iterator[bytes]]:
    """The video's ``fps`` and ``size`` = (width, height) after rotation, and its RGB24 frames
    (optiq.loaders.keypoints2d.open_video)."""
    from optiq.loaders.keypoints2d import open_video

    fps, size, frames = open_video(path)
    return {"fps": fps, "size": size}, frames


def draw_keypoints(frames: np.ndarray, positions: np.ndarray, confidence: np.ndarray, edges: np.ndarray) -> None:
    """Draw keypoints over ``frames [B, H, W, 3]`` uint8 in place.

    positions: ``[B, K, 2]`` pixels (NaN: missing, not drawn); confidence: ``[B, K]`` in [0, 1], the opacity;
    edges: ``[E, 2]`` point indices. Line half-width and dot radius follow the frame size (3 and 6 px at 1080).
    """
    b, height, width = frames.shape[:3]
    line = max(1.0, min(height, width) / 360)
    dot = 2.0 * line
    frame = np.repeat(np.arange(b), len(edges))
    canvas = raster.Canvas(b, height, width, max_radius=dot)
    weight = np.minimum(confidence[:, edges[:, 0]], confidence[:, edges[:, 1]]).reshape(-1)
    canvas.segments(positions[:, edges[:, 0]].reshape(-1, 2), positions[:, edges[:, 1]].reshape(-1, 2), frame,
                    line, weight)
    canvas.composite(frames, EDGE_COLOR)
    k = positions.shape[1]
    canvas = raster.Canvas(b, height, width, max_radius=dot)
    canvas.dots(positions.reshape(-1, 2), np.repeat(np.arange(b), k), dot, confidence.reshape(-1))
    canvas.composite(frames, POINT_COLOR)


def render_keypoints_on_video(points: Points, video: str | os.PathLike, out: str | os.PathLike, *, crf: int = 18,
                              progress: bool = False, inputs: Sequence[str | os.PathLike] = (),
                              beside: Clip | None = None, camera: str = "follow", azimuth: float | None = None,
                              elevation: float = 20.0) -> Video:
    """Write ``out`` (.mp4, atomically): every frame of ``video`` with the matching frame of ``points`` drawn on it.

    points: 2D keypoints in the video's pixels (``Points.dim == 2``), one frame per video frame. The output has the
    video's frame count, exact frame rate and size (an odd width or height loses its last pixel column or row:
    H.264 yuv420p needs even sizes). A frame count, rate or image size that differs from the video's is an
    OptiqError before anything is written. beside: a clip with one frame per video frame at the video's rate (the
    3D motion lifted from these keypoints: ``optiq data lift``), drawn in a panel as wide as the video to its
    right (the output is then twice as wide), with the camera options of ``video.render_video`` (default a side
    view following the root, which shows the depth one view does not).
    """
    check_output_path(out, suffixes=VIDEO_SUFFIXES, inputs=[*inputs, video])
    if points.dim != 2:
        raise OptiqError(f"points {points.name!r} are {points.dim}D; --on-video draws 2D keypoints (pixels)")
    import imageio_ffmpeg

    meta, frames = read_video(video)
    count, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
    width, height = (int(v) for v in meta["size"])
    rate = exact_fps(float(meta.get("fps") or 0))
    problems = []
    if count != points.num_frames:
        problems.append(f"{count} frames, the keypoints {points.num_frames}")
    if abs(float(rate) - points.fps) > 1e-3 * points.fps:
        problems.append(f"{float(rate):g} fps, the keypoints {points.fps:g}")
    if points.image_size is not None and tuple(points.image_size) != (width, height):
        problems.append(f"{width}x{height} pixels, the keypoints {points.image_size[0]}x{points.image_size[1]}")
    if problems:
        frames.close()
        raise OptiqError(f"the video has {'; '.join(problems)}: expected the video the keypoints were detected in",
                         video)
    even = (width // 2 * 2, height // 2 * 2)
    if beside is not None:
        if beside.num_frames != count or abs(beside.fps - float(rate)) > 1e-3 * float(rate):
            frames.close()
            raise OptiqError(f"clip {beside.name!r} has {beside.num_frames} frames at {beside.fps:g} fps, the video "
                             f"{count} at {float(rate):g}: expected the clip lifted from these keypoints")
        panel = iter_frames([beside], size=even, camera=camera, azimuth=azimuth, elevation=elevation)
    from tqdm import tqdm

    try:
        with tqdm(total=count, unit="frame", desc="drawing", disable=not progress, leave=False) as bar, \
                atomic_path(out, suffixes=VIDEO_SUFFIXES, inputs=[*inputs, video]) as tmp:
            drawn = _drawn(frames, points, width, height, even, bar)
            if beside is not None:
                drawn = _side_by_side(drawn, panel)
            written = encode(drawn, tmp, rate, crf=crf, name=out)
    finally:
        frames.close()
    if written != count:  # ffmpeg decoded fewer frames than it counted: the output would not be frame-exact
        raise OptiqError(f"decoded {written} frames of {count}", video)
    return Video(Path(out), written, rate, even[0] * (2 if beside is not None else 1), even[1])


def _side_by_side(left: Iterator[np.ndarray], right: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """Batches ``[B, H, W_left + W_right, 3]``: each batch of ``left`` beside as many frames of ``right`` (whose
    batches may be of other sizes), a 2-pixel separator between them."""
    spare = np.zeros((0,), np.uint8)
    for batch in left:
        parts, have = ([spare] if len(spare) else []), len(spare)
        while have < len(batch):
            more = next(right)
            parts.append(more)
            have += len(more)
        frames = np.concatenate(parts) if len(parts) > 1 else parts[0]
        spare = frames[len(batch):]
        out = np.concatenate([batch, frames[:len(batch)]], axis=2)
        out[:, :, batch.shape[2] - 1:batch.shape[2] + 1] = SEPARATOR
        yield out


def _drawn(frames: Iterator[bytes], points: Points, width: int, height: int, even: tuple[int, int],
           bar) -> Iterator[np.ndarray]:
    """Batches ``[B, H, W, 3]`` of video frames with their keypoints drawn, at most the keypoints' frame count."""
    start = 0
    while start < points.num_frames:
        raw = [f for _, f in zip(range(BATCH_FRAMES), frames, strict=False)]
        if not raw:
            return
        batch = np.frombuffer(b"".join(raw), np.uint8).reshape(len(raw), height, width, 3)
        batch = np.array(batch[:, :even[1], :even[0]])
        stop = start + len(raw)
        draw_keypoints(batch, points.positions[start:stop], points.confidence[start:stop], points.edges)
        bar.update(len(raw))
        yield batch
        start = stop
