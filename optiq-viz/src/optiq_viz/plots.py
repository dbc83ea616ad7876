"""Plots of results and of clips: error against rollout horizon and per-joint errors from an evaluation report,
joint-angle curves and frame-label timelines; written as HTML or, with kaleido and Chromium, PNG.

The report is a JSON object of named series (docs/viz.md, "Evaluation report"):
``{"version": 2, "horizon": {"steps": [...], "series": {name: [...]}, "std": {name: [...]}},
"per_joint": {"joints": [...], "series": {...}, "std": {...}}, "curves": {"steps": [...], "series": {...},
"std": {...}}}``. Version 2 adds ``curves`` (learning curves: env steps on x, mean and spread over seeds);
version 1 reports are still read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from optiq import Clip, OptiqError, ParseError, quat
from optiq.atomic import atomic_path, atomic_text, check_output_path
from plotly.subplots import make_subplots

REPORT_VERSION = 2
#: Report versions read: 1 (horizon, per_joint) and 2 (and curves).
READ_VERSIONS = (1, 2)
#: Sections of a report and the key of their x axis.
SECTIONS = {"horizon": "steps", "per_joint": "joints", "curves": "steps"}
# plotly's D3 palette: series, clips and label values take their colours from it in order.
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f")
# Label values take softer colours (ColorBrewer Set2), so that they are not mistaken for clips in a 3D view.
LABEL_PALETTE = ("#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494", "#b3b3b3")
# The usual RGB = XYZ convention for the three Euler angle curves.
AXIS_COLORS = {"X": "#d62728", "Y": "#2ca02c", "Z": "#1f77b4"}
# A float frame label with more distinct values than this is drawn as a curve, not as coloured runs.
MAX_CATEGORIES = 12
TEMPLATE = "plotly_white"
#: What ``write_figure`` writes: HTML, or PNG through kaleido.
PLOT_SUFFIXES = (".html", ".htm", ".png")


# --- the evaluation report ---------------------------------------------------------------------------------
def load_report(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check an evaluation report (docs/viz.md); see ``check_report`` for what comes back."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OptiqError(f"cannot read the report: {exc.strerror}", path) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"not valid JSON: {exc.msg}", path, f"line {exc.lineno} column {exc.colno}") from None
    return check_report(data, path)


def check_report(report: Mapping[str, Any], source: str | os.PathLike | None = None) -> dict[str, Any]:
    """A checked copy of a report: ``{"version", "title", "horizon"?, "per_joint"?, "curves"?}``.

    ``horizon``: ``steps [S]`` float64, ``unit``, ``metric``, ``series`` and ``std``: ``name -> [S]`` float64
    (``null`` becomes NaN, a gap). ``per_joint``: ``joints`` (names), ``metric``, ``series``/``std`` ``[J]``.
    ``curves`` (version 2): like ``horizon``, ``steps`` the env steps of training, ``series`` the mean over
    runs and ``std`` their spread. Other keys (``rl``: the metrics of a policy) are kept as they are.
    A wrong shape or type raises ParseError naming ``source`` and the key.
    """
    if not isinstance(report, Mapping):
        raise ParseError("expected a JSON object with a 'version' key", source)
    version = report.get("version")
    if version not in READ_VERSIONS or isinstance(version, bool):
        raise ParseError(f"unsupported report version {version!r}; expected "
                         f"{' or '.join(map(str, READ_VERSIONS))}", source, "key 'version'")
    out: dict[str, Any] = {**{k: v for k, v in report.items() if k not in SECTIONS}, "version": version,
                           "title": str(report.get("title") or "")}
    sections = [s for s in SECTIONS if version >= 2 or s != "curves"]
    for section in sections:
        if section in report:
            out[section] = _check_section(report[section], section, SECTIONS[section], source)
    if not any(s in out for s in sections):
        raise ParseError(f"expected a {' or a '.join(repr(s) for s in sections)} section", source)
    return out


def _check_section(sec: Any, section: str, axis: str, source) -> dict[str, Any]:
    def fail(message: str, key: str) -> ParseError:
        return ParseError(message, source, f"key '{key}'")

    if not isinstance(sec, Mapping):
        raise fail("expected an object", section)
    ticks = _as_list(sec.get(axis))
    if not isinstance(ticks, list) or not ticks:
        raise fail("expected a non-empty list", f"{section}.{axis}")
    if axis == "steps":
        ticks = _numbers(ticks, len(ticks), f"{section}.{axis}", source)
        if not np.all(np.isfinite(ticks)):
            raise fail("expected finite numbers", f"{section}.{axis}")
    elif not all(isinstance(t, str) for t in ticks):
        raise fail("expected joint names (strings)", f"{section}.{axis}")
    series = sec.get("series")
    if not isinstance(series, Mapping) or not series:
        raise fail("expected an object of named series", f"{section}.series")
    checked = {str(k): _numbers(v, len(ticks), f"{section}.series.{k}", source) for k, v in series.items()}
    std = sec.get("std", {})
    if not isinstance(std, Mapping):
        raise fail("expected an object of named series", f"{section}.std")
    spreads = {}
    for name, values in std.items():
        if name not in checked:
            raise fail(f"no series {name!r} in {section}.series", f"{section}.std.{name}")
        spreads[str(name)] = _numbers(values, len(ticks), f"{section}.std.{name}", source)
    return {axis: ticks, "series": checked, "std": spreads, "metric": str(sec.get("metric") or "error"),
            "unit": str(sec.get("unit") or "frames")}


def _as_list(values: Any) -> Any:
    # An already checked report holds arrays: checking it again must give the same report.
    return values.tolist() if isinstance(values, np.ndarray) else list(values) if isinstance(values, tuple) else values


def _numbers(values: Any, n: int, key: str, source) -> np.ndarray:
    values = _as_list(values)
    if not isinstance(values, list) or len(values) != n:
        got = f"{len(values)} values" if isinstance(values, list) else type(values).__name__
        raise ParseError(f"expected a list of {n} numbers (one per entry of its axis), got {got}", source,
                         f"key '{key}'")
    bad = [i for i, v in enumerate(values) if v is not None and (isinstance(v, bool) or not isinstance(v, int | float))]
    if bad:
        raise ParseError(f"entry {bad[0]} is {values[bad[0]]!r}, expected a number or null", source, f"key '{key}'")
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def plot_errors(report: Mapping[str, Any]) -> go.Figure:
    """Error against rollout horizon (one line per series) and per-joint errors (grouped bars), with the
    ``std`` of a series as error bars; one row per section present in ``report`` (checked with check_report)."""
    report = check_report(report)
    sections = [s for s in SECTIONS if s in report]
    titles = {"horizon": "error against rollout horizon", "per_joint": "error per joint",
              "curves": "learning curve (mean and spread over runs)"}
    fig = make_subplots(rows=len(sections), cols=1, subplot_titles=[titles[s] for s in sections],
                        vertical_spacing=0.18)
    shown: set[str] = set()
    names = list(dict.fromkeys(n for s in sections for n in report[s]["series"]))
    for row, section in enumerate(sections, start=1):
        sec = report[section]
        for name, values in sec["series"].items():
            color = PALETTE[names.index(name) % len(PALETTE)]
            err = dict(type="data", array=sec["std"][name], visible=True) if name in sec["std"] else None
            common = dict(name=name, legendgroup=name, showlegend=name not in shown, error_y=err)
            if section == "curves":
                _add_band(fig, sec["steps"], values, sec["std"].get(name), color, name, row)
                fig.add_trace(go.Scatter(x=sec["steps"], y=values, mode="lines", line=dict(color=color),
                                         name=name, legendgroup=name, showlegend=name not in shown),
                              row=row, col=1)
            elif section == "horizon":
                fig.add_trace(go.Scatter(x=sec["steps"], y=values, mode="lines+markers", line=dict(color=color),
                                         **common), row=row, col=1)
            else:
                fig.add_trace(go.Bar(x=list(sec["joints"]), y=values, marker_color=color, **common), row=row, col=1)
            shown.add(name)
        xtitle = {"horizon": f"rollout horizon ({sec['unit']})", "per_joint": "joint", "curves": sec["unit"]}[section]
        fig.update_xaxes(title_text=xtitle, row=row, col=1)
        fig.update_yaxes(title_text=sec["metric"], rangemode="normal" if section == "curves" else "tozero", row=row,
                         col=1)
    fig.update_layout(template=TEMPLATE, title=report.get("title") or None, barmode="group",
                      height=360 * len(sections) + 80)
    return fig


def _add_band(fig: go.Figure, x: np.ndarray, mean: np.ndarray, std: np.ndarray | None, color: str, name: str,
              row: int) -> None:
    """The spread ``mean +- std`` as a translucent band under a curve (nothing without ``std``)."""
    if std is None:
        return
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    xs = np.concatenate([x, x[::-1]])
    ys = np.concatenate([mean + std, (mean - std)[::-1]])
    fig.add_trace(go.Scatter(x=xs, y=ys, fill="toself", fillcolor=f"rgba({r},{g},{b},0.2)", line=dict(width=0),
                             hoverinfo="skip", legendgroup=name, showlegend=False), row=row, col=1)


# --- joint angles --------------------------------------------------------------------------------------------
def joint_angles(clip: Clip, joint: str, kind: str = "euler", order: str = "ZYX") -> np.ndarray:
    """Local rotation of ``joint`` in degrees: ``[T, 3]`` Euler angles (intrinsic ``order``, ``[:, i]`` about axis
    ``order[i]``, unwrapped over time so that curves do not jump by 360) for ``kind="euler"``, or ``[T]`` the
    angle of the rotation away from the rest pose, in [0, 180], for ``kind="angle"``."""
    try:
        j = clip.skeleton.index(joint)
    except KeyError:
        raise OptiqError(f"clip {clip.name!r} has no joint {joint!r}; joints: {', '.join(clip.skeleton.names)}") \
            from None
    q = clip.rotations[:, j]
    if kind == "angle":
        return np.degrees(quat.angle_between(q, quat.identity(q.shape[:-1])))
    if kind != "euler":
        raise OptiqError(f"unknown angle kind {kind!r}; expected 'euler' or 'angle'")
    try:
        euler = quat.to_euler(q, order)
    except ValueError as exc:
        raise OptiqError(f"bad Euler order {order!r}: {exc}") from None
    return np.degrees(np.unwrap(euler, axis=0))


def plot_joint_angles(clip: Clip, joints: Sequence[str], *, kind: str = "euler", order: str = "ZYX",
                      timeline: bool = True) -> go.Figure:
    """Curves of the local rotation of each of ``joints`` over time (seconds), in degrees, one row per joint
    (see ``joint_angles`` for ``kind`` and ``order``), and the clip's frame-label timeline beneath when
    ``timeline`` and the clip has frame labels."""
    if not joints:
        raise OptiqError("name at least one joint to plot its angles")
    angles = [joint_angles(clip, j, kind, order) for j in joints]
    with_timeline = timeline and bool(clip.frame_labels)
    rows = len(joints) + with_timeline
    heights = [1.0] * len(joints) + ([0.25 + 0.12 * len(clip.frame_labels)] if with_timeline else [])
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, row_heights=heights, vertical_spacing=0.06,
                        subplot_titles=[*joints, "frame labels"][:rows])
    t = np.arange(clip.num_frames) / clip.fps
    for row, (joint, a) in enumerate(zip(joints, angles, strict=True), start=1):
        if kind == "angle":
            fig.add_trace(go.Scatter(x=t, y=a, mode="lines", name=f"{joint} angle", line=dict(color=PALETTE[0]),
                                     showlegend=False), row=row, col=1)
        else:
            for i, axis in enumerate(order.upper()):
                fig.add_trace(go.Scatter(x=t, y=a[:, i], mode="lines", name=f"about {axis}", legendgroup=axis,
                                         showlegend=row == 1, line=dict(color=AXIS_COLORS[axis])), row=row, col=1)
        fig.update_yaxes(title_text="degrees", row=row, col=1)
    if with_timeline:
        add_label_timeline(fig, [clip], row=rows)
    fig.update_xaxes(title_text="time (s)", row=rows, col=1)
    what = f"Euler angles ({order.upper()}, intrinsic)" if kind == "euler" else "rotation angle from the rest pose"
    fig.update_layout(template=TEMPLATE, height=240 * len(joints) + 140 * with_timeline + 100,
                      title=f"{clip.name}: local {what}")
    return fig


# --- frame-label timelines -----------------------------------------------------------------------------------
def plot_label_timeline(clips: Clip | Sequence[Clip]) -> go.Figure:
    """The frame labels of ``clips`` over time (seconds): one row per clip and label, runs of equal values as
    coloured bars (a float label with many values as a curve); a clip without frame labels shows its extent."""
    clips = [clips] if isinstance(clips, Clip) else list(clips)
    fig = make_subplots(rows=1, cols=1)
    rows = add_label_timeline(fig, clips, row=1)
    fig.update_xaxes(title_text="time (s)")
    fig.update_layout(template=TEMPLATE, height=130 + 36 * rows, title="frame labels")
    return fig


def timeline_rows(clips: Sequence[Clip]) -> int:
    """Rows of the timeline of ``clips``: one per clip and frame label, one for a clip without frame labels."""
    return sum(max(1, len(c.frame_labels)) for c in clips)


def add_label_timeline(fig: go.Figure, clips: Sequence[Clip], *, row: int, col: int = 1) -> int:
    """Draw the timeline of ``clips`` into the xy subplot (``row``, ``col``) of ``fig``; rows are numbered from
    0 at the top (y axis reversed). Returns the number of rows."""
    names: list[str] = []
    for clip in clips:
        prefix = f"{clip.name}: " if len(clips) > 1 else ""
        if not clip.frame_labels:
            names.append(clip.name)
            _add_runs(fig, np.array(["no frame labels"]), np.array([0]), np.array([clip.num_frames]), clip,
                      len(names) - 1, "frames", row, col, colors=["#dddddd"])
        for label in sorted(clip.frame_labels):
            names.append(prefix + label)
            _add_label_row(fig, clip, label, len(names) - 1, row, col)
    end = max(c.num_frames / c.fps for c in clips)
    fig.update_xaxes(range=[0.0, end], row=row, col=col)
    fig.update_yaxes(tickvals=list(range(len(names))), ticktext=names, range=[len(names) - 0.5, -0.5],
                     fixedrange=True, showgrid=False, zeroline=False, row=row, col=col)
    fig.update_layout(uniformtext=dict(minsize=9, mode="hide"))
    return len(names)


def _add_label_row(fig: go.Figure, clip: Clip, label: str, y: int, row: int, col: int) -> None:
    values = clip.frame_labels[label]
    if values.dtype.kind in "SO":
        values = values.astype(str)
    if values.dtype.kind == "f" and len(np.unique(values)) > MAX_CATEGORIES:
        lo, hi = np.nanmin(values), np.nanmax(values)
        scaled = y + 0.35 - 0.7 * (values - lo) / (hi - lo if hi > lo else 1.0)
        fig.add_trace(go.Scatter(x=np.arange(clip.num_frames) / clip.fps, y=scaled, mode="lines",
                                 line=dict(color=PALETTE[0], width=1.5), showlegend=False,
                                 customdata=values, hovertemplate=f"{label} = %{{customdata:.4g}}<extra></extra>"),
                      row=row, col=col)
        return
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate(([0], change))
    stops = np.concatenate((change, [clip.num_frames]))
    run_values = values[starts]
    _, which = np.unique(run_values, return_inverse=True)
    colors = [LABEL_PALETTE[i % len(LABEL_PALETTE)] for i in which.reshape(-1)]
    _add_runs(fig, run_values, starts, stops, clip, y, label, row, col, colors)


def _add_runs(fig, values, starts, stops, clip, y, label, row, col, colors) -> None:
    fps = clip.fps
    text = [str(v) for v in values]
    hover = [f"{label} = {v}<br>frames {a}-{b - 1} ({a / fps:.2f}-{b / fps:.2f} s)"
             for v, a, b in zip(text, starts.tolist(), stops.tolist(), strict=True)]
    fig.add_trace(go.Bar(orientation="h", y=np.full(len(starts), float(y)), base=starts / fps,
                         x=(stops - starts) / fps, width=0.7, marker=dict(color=colors, line=dict(width=0)),
                         text=text, textposition="inside", insidetextanchor="middle", hovertext=hover,
                         hoverinfo="text", showlegend=False, name=label), row=row, col=col)


# --- writing -------------------------------------------------------------------------------------------------
def write_figure(fig: go.Figure, out: str | os.PathLike, *, width: int | None = None,
                 height: int | None = None, inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Write ``fig`` atomically as HTML (``.html``/``.htm``, plotly.js embedded: works offline) or PNG (``.png``,
    through kaleido, which drives Chrome or Chromium). ``out`` may not be one of ``inputs`` (the files the plot
    was made from). Returns the path."""
    out = check_output_path(out, suffixes=PLOT_SUFFIXES, inputs=inputs)
    if out.suffix.lower() == ".png":
        png = _png_bytes(fig, out, width, height)
        with atomic_path(out, suffixes=PLOT_SUFFIXES, inputs=inputs) as tmp:
            tmp.write_bytes(png)
        return out
    html = fig.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False})
    with atomic_text(out, suffixes=PLOT_SUFFIXES, inputs=inputs) as fh:
        fh.write(html)
    return out


def _png_bytes(fig: go.Figure, out: Path, width: int | None, height: int | None) -> bytes:
    try:
        import kaleido  # noqa: F401
    except ImportError:
        raise OptiqError('PNG output needs kaleido: pip install "optiq-viz[png]" (or write .html)', out) from None
    try:
        return fig.to_image(format="png", width=width or fig.layout.width or 1000,
                            height=height or fig.layout.height or 600)
    except RuntimeError as exc:
        # kaleido 1.x drives an installed Chrome/Chromium; plotly reports a missing one as a RuntimeError.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OptiqError("PNG output needs Chrome or Chromium for kaleido (Debian: apt-get install chromium; "
                         f"or set BROWSER_PATH): {first}", out) from None


def render_plots(source: Clip | Mapping[str, Any] | str | os.PathLike, out: str | os.PathLike, *,
                 joints: Sequence[str] = (), kind: str = "euler", order: str = "ZYX",
                 inputs: Sequence[str | os.PathLike] = (), **_ignored) -> Path:
    """The ``plots`` renderer. ``source`` a report (a path to its JSON, or the dict): error plots; a Clip:
    joint-angle curves of ``joints`` with its label timeline, or only the timeline when no joint is named.
    Written to ``out`` (.html or .png; not one of ``inputs``) atomically; returns the path."""
    check_output_path(out, suffixes=PLOT_SUFFIXES, inputs=inputs)
    if isinstance(source, Clip):
        if joints:
            fig = plot_joint_angles(source, list(joints), kind=kind, order=order)
        elif source.frame_labels:
            fig = plot_label_timeline([source])
        else:
            raise OptiqError(f"clip {source.name!r} has no frame labels to plot; name joints for angle curves")
    elif isinstance(source, Mapping):
        fig = plot_errors(source)
    else:
        fig = plot_errors(load_report(source))
    return write_figure(fig, out, inputs=inputs)

