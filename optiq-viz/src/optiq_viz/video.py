"""Frame-exact H.264 MP4 videos of skeletons, rendered with numpy and encoded by imageio-ffmpeg's ffmpeg.

A clip of N frames at F fps gives an MP4 of exactly N frames at F fps: frames are piped raw to ffmpeg with the
frame rate as an exact fraction (``120000/1001`` for NTSC 119.88) and ``-fps_mode passthrough``, so ffmpeg
neither duplicates nor drops a frame (moviepy's ``ImageSequenceClip`` picks frames by float time and can).

Rendering is vectorised: every joint of every frame is projected at once, and bones, joint dots and a ground
grid are rasterised a batch of frames at a time (optiq_viz.raster). The camera is perspective, looks at the
motion from ``azimuth``/``elevation`` and either frames the whole motion (``fixed``) or follows the root
(``follow``). Several clips are overlaid in one view in distinct colours, or drawn side by side in panels that
split the video's width and share one camera scale.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from optiq import Clip, OptiqError
from optiq.atomic import DISK_FULL_TEXT, atomic_path, check_output_path
from optiq.errors import DiskFullError

from . import raster

#: Clip colours in order (RGB): the first clip (the ground truth) blue, the second (a prediction) orange.
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75))
BACKGROUND = (248, 248, 248)
GRID = (200, 200, 200)
SEPARATOR = (160, 160, 160)
CAMERAS = ("fixed", "follow")
LAYOUTS = ("overlay", "side-by-side")
#: What ``render_video`` writes: ffmpeg is told the container (``-f mp4``), so the name must say so too.
VIDEO_SUFFIXES = (".mp4",)
VERTICAL_FOV = np.radians(40.0)
#: Pixels of the panel per batch: a batch's coverage buffers and sample arrays stay in the tens of megabytes.
BATCH_PIXELS = 6_000_000


@dataclass(frozen=True)
class Video:
    """What ``render_video`` wrote: ``frames`` frames of ``width x height`` at exactly ``fps`` frames/s."""

    path: Path
    frames: int
    fps: Fraction
    width: int
    height: int


@dataclass(frozen=True)
class _Figure:
    """One clip ready to draw: projected points ``[T, K, 2]`` pixels (joints then end sites), bones as
    ``(parent, child)`` point indices ``[E, 2]``, and the first ``joints`` points get dots."""

    pixels: np.ndarray
    bones: np.ndarray
    joints: int
    color: tuple[int, int, int]


@dataclass(frozen=True)
class _Panel:
    width: int
    figures: list[_Figure]
    grid: np.ndarray  # [T or 1, L, 2, 2] pixel end points of the ground grid lines


def exact_fps(fps: float) -> Fraction:
    """The frame rate as the fraction it stands for: ``119.88011988...`` -> ``120000/1001``, ``30.0`` -> ``30``.

    Raises OptiqError for a rate that is not positive and finite."""
    if not np.isfinite(fps) or fps <= 0:
        raise OptiqError(f"frame rate must be positive, got {fps}")
    return Fraction(float(fps)).limit_denominator(1001 * 1000)


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> ``(W, H)``: positive even integers (H.264 yuv420p needs even sizes), 16 to 7680."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise OptiqError(f"--size must be WIDTHxHEIGHT in pixels, e.g. 640x480; got {text!r}")
    return check_size((int(parts[0]), int(parts[1])))


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = (int(v) for v in size)
    if not (16 <= w <= 7680 and 16 <= h <= 7680) or w % 2 or h % 2:
        raise OptiqError(f"video size must be even numbers of pixels from 16 to 7680 (H.264 yuv420p), got {w}x{h}")
    return w, h


def _prepare(clips: Clip | Sequence[Clip], fps: float | None) -> list[Clip]:
    clips = [clips] if isinstance(clips, Clip) else list(clips)
    if not clips:
        raise OptiqError("no clips to render")
    for c in clips:
        if c.num_frames == 0:
            raise OptiqError(f"clip {c.name!r} is empty (0 frames)")
    if fps is not None:
        exact_fps(fps)
        clips = [c.resample(float(fps)) for c in clips]
    rates = {round(c.fps, 9) for c in clips}
    if len(rates) > 1:
        listed = ", ".join(f"{c.name!r} {c.fps:g}" for c in clips)
        raise OptiqError(f"clips have different frame rates ({listed}); resample them to one with fps (--fps)")
    return clips


def _points(clip: Clip, frames: int) -> tuple[np.ndarray, np.ndarray, int]:
    """World points ``[frames, J + E, 3]`` (joints, then end sites), bones ``[E', 2]`` and the joint count.
    A clip shorter than ``frames`` holds its last pose."""
    fk = clip.forward_kinematics()
    pos, parents = fk[0], clip.skeleton.parents
    sites = sorted(clip.skeleton.end_sites)
    ends = clip.end_site_positions(fk)
    points = np.concatenate([pos] + [ends[j][:, None] for j in sites], axis=1) if sites else pos
    j = clip.num_joints
    bones = [(int(parents[c]), c) for c in range(1, j)] + [(s, j + i) for i, s in enumerate(sites)]
    held = np.minimum(np.arange(frames), clip.num_frames - 1)
    return points[held], np.asarray(bones, dtype=np.int64).reshape(-1, 2), j


def _view_axes(azimuth: float, elevation: float) -> np.ndarray:
    """Rows right, up, forward ``[3, 3]`` of a camera at ``azimuth`` (from +x towards +y) and ``elevation``
    (above the ground) in radians, looking at its target; Z is up."""
    toward_camera = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                              np.sin(elevation)])
    forward = -toward_camera
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return np.stack((right, np.cross(right, forward), forward))


def auto_azimuth(clip: Clip) -> float:
    """A side view of the root's travel, turned 30 degrees towards its front (radians); -60 degrees for a clip
    that stays in place (under 0.3 m of horizontal travel)."""
    travel = clip.root_translation[-1, :2] - clip.root_translation[0, :2]
    heading = np.arctan2(travel[1], travel[0]) if np.linalg.norm(travel) > 0.3 else 0.0
    return float(heading - np.radians(60.0))


def _distance(rel: np.ndarray, axes: np.ndarray, focal: float, width: int, height: int) -> float:
    """The camera distance (m) at which every point of ``rel [..., 3]`` (relative to the target) is inside the
    panel with a 6 % margin: ``|x| <= tan_x * (d + z)`` per point, solved for ``d``."""
    cam = rel.reshape(-1, 3) @ axes.T
    tan_x = 0.44 * width / focal
    tan_y = 0.44 * height / focal
    need = np.maximum(np.abs(cam[:, 0]) / tan_x, np.abs(cam[:, 1]) / tan_y) - cam[:, 2]
    near = 0.2 - cam[:, 2]
    return float(max(need.max(), near.max(), 0.5))


def _project(points: np.ndarray, target: np.ndarray, axes: np.ndarray, distance: float, focal: float,
             width: int, height: int) -> np.ndarray:
    """Pixels ``[T, K, 2]`` of ``points [T, K, 3]`` seen from ``distance`` metres before ``target [T, 3]``;
    points less than 5 cm in front of the camera are NaN (not drawn)."""
    cam = (points - target[:, None]) @ axes.T
    depth = cam[..., 2] + distance
    with np.errstate(divide="ignore", invalid="ignore"):
        x = width / 2 + focal * cam[..., 0] / depth
        y = height / 2 - focal * cam[..., 1] / depth
    out = np.stack((x, y), axis=-1)
    out[depth < 0.05] = np.nan
    return out


def _grid_lines(centre: np.ndarray, half: float, spacing: float) -> np.ndarray:
    """World end points ``[T, L, 2, 3]`` of ground (z = 0) grid lines of a square of half-width ``half`` metres
    around ``centre [T, 2 or 3]``, on multiples of ``spacing`` so they stay fixed in the world while the
    camera moves."""
    count = int(np.floor(2 * half / spacing)) + 2
    lines = []
    for axis in (0, 1):
        first = np.floor((centre[:, axis] - half) / spacing)
        at = (first[:, None] + np.arange(count)) * spacing  # [T, count]
        lo = np.broadcast_to(centre[:, 1 - axis, None] - half, at.shape)
        ends = np.zeros((*at.shape, 2, 3))
        ends[..., axis] = at[..., None]
        ends[..., 0, 1 - axis] = lo
        ends[..., 1, 1 - axis] = lo + 2 * half
        lines.append(ends)
    return np.concatenate(lines, axis=1)


def _layout(clips: list[Clip], size: tuple[int, int], camera: str, layout: str, azimuth: float | None,
            elevation: float) -> tuple[list[_Panel], int]:
    """Panels with every figure and the grid projected, and the number of video frames."""
    frames = max(c.num_frames for c in clips)
    width, height = size
    groups = [[i] for i in range(len(clips))] if layout == "side-by-side" else [list(range(len(clips)))]
    widths = np.diff(np.linspace(0, width, len(groups) + 1).round().astype(int))
    drawn = [_points(c, frames) for c in clips]
    every = np.concatenate([d[0] for d in drawn], axis=1)  # [T, K_all, 3]
    lo, hi = every.reshape(-1, 3).min(axis=0), every.reshape(-1, 3).max(axis=0)
    centre = (lo + hi) / 2
    az = auto_azimuth(clips[0]) if azimuth is None else np.radians(azimuth)
    axes = _view_axes(az, np.radians(elevation))
    focal = height / 2 / np.tan(VERTICAL_FOV / 2)
    targets = []
    for group in groups:
        if camera == "follow":
            target = clips[group[0]].root_translation[np.minimum(np.arange(frames), clips[group[0]].num_frames - 1)]
            target = np.column_stack((target[:, :2], np.full(frames, centre[2])))
        else:
            target = np.broadcast_to(centre, (frames, 3))
        targets.append(target)
    # One distance for all panels, so side-by-side figures are drawn at the same scale.
    distance = max(_distance(np.concatenate([drawn[i][0] for i in g], axis=1) - t[:, None], axes, focal, w, height)
                   for g, t, w in zip(groups, targets, widths, strict=True))
    extent = float(np.max(hi[:2] - lo[:2])) if camera == "fixed" else 2.0
    spacing = next(s for s in (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0) if s >= extent / 10) if extent < 500 else 100.0
    # The grid square (half-width 0.7 distance) is pushed 0.8 distance away from the camera: its nearest corner
    # is then at most 0.19 distance nearer than the target along the view, so all of it stays in front of the
    # camera, and it reaches 1.5 distances beyond the target (further, lines crowd towards the horizon).
    half = 0.7 * distance
    away = axes[2, :2] / np.linalg.norm(axes[2, :2]) * 0.8 * distance
    panels = []
    for g, target, w in zip(groups, targets, widths, strict=True):
        grid_target = target[:1] if camera == "fixed" else target
        grid = _grid_lines(grid_target[:, :2] + away, half, spacing)
        t, lines = grid.shape[:2]
        grid_px = _project(grid.reshape(t, lines * 2, 3), grid_target, axes, distance, focal, int(w), height)
        figures = [_Figure(_project(drawn[i][0], target, axes, distance, focal, int(w), height), drawn[i][1],
                           drawn[i][2], PALETTE[i % len(PALETTE)]) for i in g]
        panels.append(_Panel(int(w), figures, grid_px.reshape(t, lines, 2, 2)))
    return panels, frames


def _draw_panel(panel: _Panel, start: int, stop: int, height: int) -> np.ndarray:
    """Frames ``[stop - start, H, W_panel, 3]`` uint8 of one panel."""
    b = stop - start
    line = max(1.0, height / 200)
    if len(panel.grid) == 1:
        # A fixed camera sees the same grid in every frame: draw it once.
        frames = np.repeat(_draw_grid(panel.grid, panel.width, height), b, axis=0)
    else:
        frames = _draw_grid(panel.grid[start:stop], panel.width, height)
    for fig in panel.figures:
        px = fig.pixels[start:stop]
        canvas = raster.Canvas(b, height, panel.width, max_radius=1.7 * line)
        canvas.segments(px[:, fig.bones[:, 0]].reshape(-1, 2), px[:, fig.bones[:, 1]].reshape(-1, 2),
                        np.repeat(np.arange(b), len(fig.bones)), line)
        canvas.dots(px[:, :fig.joints].reshape(-1, 2), np.repeat(np.arange(b), fig.joints), 1.7 * line)
        canvas.composite(frames, fig.color)
    return frames


def _draw_grid(grid: np.ndarray, width: int, height: int) -> np.ndarray:
    """Background frames ``[T, H, W, 3]`` uint8 with the grid lines ``[T, L, 2, 2]`` (pixels) drawn in."""
    t, lines = grid.shape[:2]
    frames = np.empty((t, height, width, 3), dtype=np.uint8)
    frames[0] = BACKGROUND
    frames[1:] = frames[0]
    canvas = raster.Canvas(t, height, width, max_radius=0.5)
    canvas.segments(grid[:, :, 0].reshape(-1, 2), grid[:, :, 1].reshape(-1, 2), np.repeat(np.arange(t), lines), 0.5)
    canvas.composite(frames, GRID)
    return frames


def iter_frames(clips: Clip | Sequence[Clip], *, size: tuple[int, int] = (640, 480), camera: str = "fixed",
                layout: str = "overlay", fps: float | None = None, azimuth: float | None = None,
                elevation: float = 20.0) -> Iterator[np.ndarray]:
    """The video's frames in batches ``[B, H, W, 3]`` uint8 RGB, in order (see ``render_video`` for options)."""
    clips = _prepare(clips, fps)
    width, height = check_size(size)
    if camera not in CAMERAS:
        raise OptiqError(f"camera must be one of {', '.join(CAMERAS)}, got {camera!r}")
    if layout not in LAYOUTS:
        raise OptiqError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if azimuth is not None and not np.isfinite(azimuth):
        raise OptiqError(f"camera azimuth must be a finite number of degrees, got {azimuth}")
    if not -85.0 <= elevation <= 85.0:
        raise OptiqError(f"camera elevation must be between -85 and 85 degrees, got {elevation:g}")
    panels, frames = _layout(clips, (width, height), camera, layout, azimuth, elevation)
    batch = max(1, BATCH_PIXELS // (width * height))
    edges = np.cumsum([p.width for p in panels])[:-1]
    for start in range(0, frames, batch):
        stop = min(start + batch, frames)
        parts = [_draw_panel(p, start, stop, height) for p in panels]
        out = np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]
        for x in edges:
            out[:, :, x - 1:x + 1] = SEPARATOR
        yield out


def render_frames(clips: Clip | Sequence[Clip], **options) -> np.ndarray:
    """Every frame of the video ``[T, H, W, 3]`` uint8 RGB, in memory (options as ``render_video``)."""
    return np.concatenate(list(iter_frames(clips, **options)), axis=0)


def encode(batches: Iterable[np.ndarray], path: str | os.PathLike, fps: Fraction, *, crf: int = 18,
           preset: str = "veryfast", name: str | os.PathLike | None = None) -> int:
    """Pipe uint8 RGB frame batches ``[B, H, W, 3]`` (even W and H) to ffmpeg as H.264 yuv420p MP4 at ``path``.

    Every frame piped becomes exactly one frame of the file: the input rate is the exact fraction ``fps`` and
    ``-fps_mode passthrough`` keeps ffmpeg from duplicating or dropping frames. Returns the frame count.
    Raises OptiqError naming ``name`` (default ``path``; the final path when ``path`` is a temporary file) with
    ffmpeg's last message when it fails (the caller removes the partial file); DiskFullError when ffmpeg says
    the disk is full or is killed by a file size limit (SIGXFSZ).
    imageio_ffmpeg.write_frames would not report a failing ffmpeg (it ignores the exit status), so the
    bundled executable is run here directly.
    """
    import imageio_ffmpeg

    batches = iter(batches)
    first = next(batches)
    height, width = first.shape[1:3]
    # The rate goes in as "-r N/D" before "-i": the input time base is then exactly D/N. (The rawvideo
    # demuxer's own "-framerate 120000/1001" came out as 120 fps with the bundled ffmpeg 9.)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
           "-an", "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
           "-fps_mode", "passthrough", "-movflags", "+faststart", "-f", "mp4", str(path)]
    count = 0
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
        try:
            with contextlib.suppress(BrokenPipeError):  # ffmpeg died: its exit status and log say why
                for batch in _chain(first, batches):
                    proc.stdin.write(np.ascontiguousarray(batch, dtype=np.uint8).data)
                    count += len(batch)
                proc.stdin.close()
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            # After ffmpeg died, stdin is still open (its close() above was skipped, or failed on the flush).
            with contextlib.suppress(OSError):
                proc.stdin.close()
        if code != 0:
            log.seek(0)
            text = log.read().decode(errors="replace")
            if code == -signal.SIGXFSZ or DISK_FULL_TEXT.search(text):
                raise DiskFullError(f"no space left on device writing {path if name is None else name}")
            lines = [s for s in text.splitlines() if s.strip()]
            raise OptiqError(f"ffmpeg failed (exit status {code}): {lines[-1] if lines else 'no message'}",
                             path if name is None else name)
    return count


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def render_video(clips: Clip | Sequence[Clip], out: str | os.PathLike, *, size: tuple[int, int] = (640, 480),
                 camera: str = "fixed", layout: str = "overlay", fps: float | None = None,
                 azimuth: float | None = None, elevation: float = 20.0, crf: int = 18,
                 progress: bool = False, inputs: Sequence[str | os.PathLike] = ()) -> Video:
    """Write an H.264 MP4 (yuv420p) of ``clips`` to ``out``, atomically; returns what was written.

    clips: one clip or several (e.g. ground truth then prediction), drawn in PALETTE's colours in order; they
    must share a frame rate (or pass ``fps``). The video has as many frames as the longest clip; a shorter clip
    holds its last pose. size: ``(W, H)`` of the whole video, even. camera: ``"fixed"`` frames the whole motion,
    ``"follow"`` keeps each panel's first clip's root in the centre (the ground grid stays fixed in the world, so
    travel and drift stay visible). layout: ``"overlay"`` draws all clips in one view, ``"side-by-side"`` one
    panel per clip, splitting the width ``W`` into equal panels with one shared camera scale. fps: resample every
    clip to this rate first (``Clip.resample``). azimuth (degrees from +x towards +y; default a side view of the
    first clip's travel) and elevation (degrees above the ground) place the camera. crf: x264 quality (0-51,
    lower is better). progress: a tqdm bar of rendered frames on stderr. inputs: the files the clips came from;
    ``out`` (which must end in ``.mp4``) may not be one of them.
    """
    check_output_path(out, suffixes=VIDEO_SUFFIXES, inputs=inputs)
    clips = _prepare(clips, fps)
    size = check_size(size)
    rate = exact_fps(clips[0].fps)
    frames = iter_frames(clips, size=size, camera=camera, layout=layout, azimuth=azimuth, elevation=elevation)
    first = next(frames)  # option errors surface before a file is opened
    from tqdm import tqdm

    total = max(c.num_frames for c in clips)
    with tqdm(total=total, unit="frame", desc="rendering", disable=not progress, leave=False) as bar, \
            atomic_path(out, suffixes=VIDEO_SUFFIXES, inputs=inputs) as tmp:
        count = encode(_counted(_chain(first, frames), bar), tmp, rate, crf=crf, name=out)
    return Video(Path(out), count, rate, size[0], size[1])


def _counted(batches: Iterator[np.ndarray], bar) -> Iterator[np.ndarray]:
    """Pass batches of frames ``[B, H, W, 3]`` through, advancing the progress bar by each batch's size."""
    for batch in batches:
        bar.update(len(batch))
        yield batch
