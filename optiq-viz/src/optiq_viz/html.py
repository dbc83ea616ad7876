"""Interactive 3D skeleton animation: a plotly figure with play/pause, a frame slider and a frame-label timeline,
written as one HTML page that works offline (docs/viz.md).

Each skeleton is one polyline trace through every bone (NaN breaks where the line restarts at a branching joint),
so a frame is a single float32 array per clip and axis; plotly (>= 6) stores those as base64 typed arrays: 31 joints
with 7 end sites x 300 frames take 0.44 MB of the page besides plotly.js.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from optiq import Clip, OptiqError
from optiq.atomic import atomic_text, check_output_path
from plotly.subplots import make_subplots

from .inputs import check_prediction
from .plots import PALETTE, TEMPLATE, add_label_timeline, timeline_rows

MAX_FRAMES = 600
DIV_ID = "optiq-skeleton"
GROUND_COLOR = "#9e9e9e"
#: What ``render_html`` writes.
HTML_SUFFIXES = (".html", ".htm")
#: The shared bundle that ``plotlyjs="beside"`` pages load from their folder.
PLOTLYJS = "plotly.min.js"


class DecimationWarning(UserWarning):
    """A clip had more frames than the page shows; every k-th frame is drawn."""


def skeleton_path(parents: np.ndarray) -> np.ndarray:
    """One polyline through every bone of a tree: ``[P]`` node indices in depth-first order, ``-1`` where the
    line breaks to restart at a branching node. ``parents``: ``[N]``, parents before children, root ``-1``."""
    parents = np.asarray(parents)
    children: list[list[int]] = [[] for _ in parents]
    for j in range(1, len(parents)):
        children[parents[j]].append(j)
    path = [0]
    stack = children[0][::-1]
    while stack:
        j = stack.pop()
        if path[-1] != parents[j]:
            path += [-1, int(parents[j])]
        path.append(j)
        stack.extend(children[j][::-1])
    return np.array(path, dtype=np.int64)


def skeleton_points(clip: Clip) -> tuple[np.ndarray, list[str]]:
    """The clip's skeleton polyline: points ``[T, P, 3]`` float32 metres (world, Z up; NaN at breaks), end sites
    included, and the hover name of each of the ``P`` points (``""`` at breaks)."""
    fk = clip.forward_kinematics()
    sk = clip.skeleton
    ends = sorted(sk.end_sites)
    pos, parents = fk[0], sk.parents
    names = list(sk.names)
    if ends:
        sites = clip.end_site_positions(fk)
        pos = np.concatenate((pos, np.stack([sites[j] for j in ends], axis=1)), axis=1)
        parents = np.concatenate((parents, ends))
        names += [f"{sk.names[j]} (end site)" for j in ends]
    path = skeleton_path(parents)
    points = pos[:, np.maximum(path, 0)].astype(np.float32)
    points[:, path < 0] = np.nan
    return points, [names[i] if i >= 0 else "" for i in path]


def display_frames(clips: Sequence[Clip], max_frames: int = MAX_FRAMES) -> tuple[np.ndarray, list[np.ndarray], int, int]:
    """The frames the page shows: times ``[N]`` seconds on the grid of the highest fps, each clip's frame index
    ``[N]`` at those times (its last frame once it has ended), the decimation step and the frame count before
    decimation (``N = ceil(total / step) <= max_frames``)."""
    if max_frames < 2:
        raise OptiqError(f"max_frames must be at least 2, got {max_frames}")
    fps = max(c.fps for c in clips)
    total = int(np.floor(max(c.duration for c in clips) * fps + 1e-6)) + 1
    step = max(1, math.ceil(total / max_frames))
    times = np.arange(0, total, step) / fps
    index = [np.minimum(np.rint(times * c.fps).astype(np.int64), c.num_frames - 1) for c in clips]
    return times, index, step, total


def plot_skeleton(clips: Clip | Sequence[Clip], pred: Clip | Sequence[Clip] | None = None, *,
                  max_frames: int = MAX_FRAMES, title: str | None = None) -> go.Figure:
    """A 3D animation of ``clips`` overlaid (``pred[i]``, when given, is the prediction of ``clips[i]``: same
    topology and frame count), each in its own colour, with play/pause, a frame slider, a ground plane, equal
    axis scale, Z up, joint names on hover and the clips' frame-label timeline under it.

    More than ``max_frames`` frames are decimated to every k-th frame: the title says so and a
    DecimationWarning is issued. Positions travel as float32 typed arrays.
    """
    clips = [clips] if isinstance(clips, Clip) else list(clips)
    preds = [] if pred is None else [pred] if isinstance(pred, Clip) else list(pred)
    if not clips:
        raise OptiqError("plot_skeleton needs at least one clip")
    for clip in clips + preds:
        if clip.num_frames == 0:
            raise OptiqError(f"clip {clip.name!r} is empty (0 frames)")
    if len(preds) > len(clips):
        raise OptiqError(f"{len(preds)} predictions for {len(clips)} clips")
    tracks = []
    for i, clip in enumerate(clips):
        tracks.append((clip, clip.name))
        if i < len(preds):
            check_prediction(preds[i], clip)
            tracks.append((preds[i], f"{clip.name} (prediction)"))
    times, index, step, total = display_frames([c for c, _ in tracks], max_frames)
    note = ""
    if step > 1:
        note = f"showing every {ordinal(step)} frame of {total}"
        warnings.warn(f"{' vs '.join(c.name for c in clips)}: {note} (max_frames={max_frames})", DecimationWarning,
                      stacklevel=2)
    points = [skeleton_points(c) for c, _ in tracks]
    rows = timeline_rows(clips)
    timeline = min(0.3, 0.05 + 0.035 * rows)
    fig = make_subplots(rows=2, cols=1, specs=[[{"type": "scene"}], [{"type": "xy"}]],
                        row_heights=[1 - timeline, timeline], vertical_spacing=0.07)
    lo, hi, ground = _bounds([p for p, _ in points])
    fig.add_trace(_ground(lo, hi, ground), row=1, col=1)
    # Stored as [N, 3, P] so that each frame's x, y and z are contiguous float32 rows.
    shown = [np.ascontiguousarray(p[idx].transpose(0, 2, 1)) for (p, _), idx in zip(points, index, strict=True)]
    for k, ((_, name), (_, hover), xyz) in enumerate(zip(tracks, points, shown, strict=True)):
        color = PALETTE[k % len(PALETTE)]
        fig.add_trace(go.Scatter3d(
            x=xyz[0, 0], y=xyz[0, 1], z=xyz[0, 2], mode="lines+markers", name=name, text=hover,
            line=dict(color=color, width=6), marker=dict(color=color, size=3),
            hovertemplate="%{text}<br>x %{x:.3f} m<br>y %{y:.3f} m<br>z %{z:.3f} m<extra>" + name + "</extra>",
        ), row=1, col=1)
    add_label_timeline(fig, clips, row=2)
    fig.add_trace(go.Scatter(x=np.zeros(2, np.float32), y=[-0.5, rows - 0.5], mode="lines", showlegend=False,
                             line=dict(color="black", width=2), hoverinfo="skip", name="now"), row=2, col=1)
    animated = [*range(1, 1 + len(tracks)), len(fig.data) - 1]
    fig.frames = [go.Frame(name=str(i), traces=animated, data=[
        *(go.Scatter3d(x=xyz[i, 0], y=xyz[i, 1], z=xyz[i, 2]) for xyz in shown),
        go.Scatter(x=np.full(2, times[i], np.float32)),
    ]) for i in range(len(times))]
    fps = max(c.fps for c, _ in tracks)
    _layout(fig, lo, hi, labels=[str(round(t * fps)) for t in times], frame_ms=1000.0 * step / fps,
            title=title or _title(clips, preds, note), timeline_rows=rows)
    return fig


def _bounds(points: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, float]:
    """Axis ranges holding every point of every frame, padded, floor included; and the floor height (z = 0, or
    the lowest point when the motion goes below it)."""
    lo = np.min([np.nanmin(p, axis=(0, 1)) for p in points], axis=0).astype(np.float64)
    hi = np.max([np.nanmax(p, axis=(0, 1)) for p in points], axis=0).astype(np.float64)
    ground = min(0.0, float(lo[2]))
    lo[2] = ground
    pad = 0.05 * float(np.max(hi - lo)) + 0.05
    return lo - pad, hi + pad, ground


def _ground(lo: np.ndarray, hi: np.ndarray, z: float) -> go.Mesh3d:
    return go.Mesh3d(x=[lo[0], hi[0], hi[0], lo[0]], y=[lo[1], lo[1], hi[1], hi[1]], z=[z] * 4, i=[0, 0],
                     j=[1, 2], k=[2, 3], color=GROUND_COLOR, opacity=0.25, hoverinfo="skip", name="ground",
                     showlegend=False, flatshading=True)


def _title(clips: list[Clip], preds: list[Clip], note: str) -> str:
    c = clips[0]
    what = " vs ".join(x.name for x in clips) + (" with prediction" if preds else "")
    parts = [what, f"{c.num_joints} joints", f"{c.num_frames} frames at {nice_fps(c.fps)} fps"]
    return " · ".join(parts) + (f"<br><sub>{note}</sub>" if note else "")


def _layout(fig: go.Figure, lo: np.ndarray, hi: np.ndarray, *, labels: list[str], frame_ms: float, title: str,
            timeline_rows: int) -> None:
    extent = hi - lo
    axis = dict(showbackground=False, gridcolor="#dddddd", zerolinecolor="#bbbbbb")
    fig.update_scenes(
        xaxis=dict(range=[lo[0], hi[0]], title="x (m)", **axis), yaxis=dict(range=[lo[1], hi[1]], title="y (m)", **axis),
        zaxis=dict(range=[lo[2], hi[2]], title="z (m)", **axis),
        # Equal scale: each axis is drawn in proportion to its range (fixed, so it does not jump while playing).
        aspectmode="manual", aspectratio=dict(zip("xyz", (extent / extent.max()).tolist(), strict=True)),
        camera=dict(up=dict(x=0, y=0, z=1), eye=dict(x=0.65, y=-1.05, z=0.4)),
    )
    step_args = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
    play = dict(label="▶ play", method="animate", args=[None, dict(
        mode="immediate", fromcurrent=True, frame=dict(duration=frame_ms, redraw=True), transition=dict(duration=0))])
    pause = dict(label="❚❚ pause", method="animate", args=[[None], step_args])
    fig.update_layout(
        template=TEMPLATE, title=dict(text=title, x=0.02), height=780 + 24 * timeline_rows,
        margin=dict(l=40, r=20, t=70, b=110), legend=dict(x=1, xanchor="right", y=1),
        updatemenus=[dict(type="buttons", direction="left", showactive=False, x=0, xanchor="left", y=0,
                          yanchor="top", pad=dict(t=55), buttons=[play, pause])],
        sliders=[dict(active=0, x=0.16, len=0.84, y=0, yanchor="top", pad=dict(t=40),
                      currentvalue=dict(prefix="frame ", visible=True),
                      steps=[dict(method="animate", label=label, args=[[str(i)], step_args])
                             for i, label in enumerate(labels)])],
    )
    fig.update_xaxes(title_text="time (s)", row=2, col=1)


def render_html(clips: Clip | Sequence[Clip], out: str | os.PathLike, *, pred: Clip | Sequence[Clip] | None = None,
                max_frames: int = MAX_FRAMES, title: str | None = None, plotlyjs: str = "embed",
                inputs: Sequence[str | os.PathLike] = (), **_ignored) -> Path:
    """The ``plotly`` renderer: ``plot_skeleton`` written atomically to ``out`` (``.html``/``.htm``, not one of
    ``inputs``: the files the clips came from) as one HTML page. ``plotlyjs``: ``"embed"`` (plotly.js, 4.8 MB,
    inside the page) or ``"beside"`` (a shared ``plotly.min.js`` next to the page, written atomically when
    missing). Both work offline. Returns the path."""
    if plotlyjs not in ("embed", "beside"):
        raise OptiqError(f"unknown plotlyjs mode {plotlyjs!r}; expected 'embed' or 'beside'")
    out = check_output_path(out, suffixes=HTML_SUFFIXES, inputs=inputs)
    fig = plot_skeleton(clips, pred, max_frames=max_frames, title=title)
    # "directory" makes the page load plotly.min.js from its own folder; plotly would also write that bundle,
    # but not atomically, so the page is made as text here and both files go through atomic writes.
    html = fig.to_html(include_plotlyjs=True if plotlyjs == "embed" else "directory", full_html=True,
                       auto_play=False, div_id=DIV_ID, config={"displaylogo": False})
    if plotlyjs == "beside":
        _write_plotlyjs(out.parent / PLOTLYJS, inputs)
    with atomic_text(out, suffixes=HTML_SUFFIXES, inputs=inputs) as fh:
        fh.write(html)
    return out


def _write_plotlyjs(path: Path, inputs: Sequence[str | os.PathLike]) -> None:
    """The plotly.js bundle at ``path``, written once per folder (an existing one is shared, as plotly does)."""
    if path.exists():
        return
    from plotly.offline import get_plotlyjs

    with atomic_text(path, suffixes=(".js",), inputs=inputs) as fh:
        fh.write(get_plotlyjs())


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ``11th``, ``22nd``."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def nice_fps(fps: float) -> str:
    """``120`` or ``119.88``."""
    return str(round(fps)) if math.isclose(fps, round(fps)) else f"{fps:.2f}".rstrip("0").rstrip(".")
