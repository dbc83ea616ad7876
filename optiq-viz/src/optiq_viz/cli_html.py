"""``optiq viz plotly`` and ``optiq viz plots``: interactive HTML skeletons and plots of reports and clips.

Only click and optiq are imported here; plotly loads when a command runs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import click
from optiq import OptiqError


@click.command("plotly")
@click.option("--in", "--dataset", "source", required=True, type=click.Path(path_type=Path),
              help="A dataset (.parquet, .h5) or a motion file (any loader: .bvh, .fbx, ...).")
@click.option("--clip", "clip_names", multiple=True,
              help="Clip to draw (default: the first); repeat to overlay several clips.")
@click.option("--pred", type=click.Path(path_type=Path),
              help="Prediction of the first clip (a motion file or dataset): same skeleton and frame count.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output .html page.")
@click.option("--max-frames", default=600, show_default=True, type=click.IntRange(min=2),
              help="Longer clips show every k-th frame (with a note on the page and a warning).")
@click.option("--title", help="Page title (default: clip names, joints, frames and fps).")
@click.option("--plotlyjs", type=click.Choice(["embed", "beside"]), default="embed", show_default=True,
              help="Embed plotly.js in the page, or share a plotly.min.js written next to it.")
def plotly_cmd(source: Path, clip_names: tuple[str, ...], pred: Path | None, out: Path, max_frames: int,
               title: str | None, plotlyjs: str) -> None:
    """Write an interactive 3D skeleton animation (play/pause, frame slider, label timeline) as one HTML page
    that works offline."""
    from optiq.atomic import check_output_path

    from .html import HTML_SUFFIXES, DecimationWarning, render_html
    from .inputs import load_clips, load_prediction

    inputs = [p for p in (source, pred) if p is not None]
    check_output_path(out, suffixes=HTML_SUFFIXES, inputs=inputs)
    clips = load_clips(source, clip_names, note=echo_note)
    prediction = load_prediction(pred, clips[0]) if pred is not None else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DecimationWarning)
        path = render_html(clips, out, pred=prediction, max_frames=max_frames, title=title, plotlyjs=plotlyjs,
                           inputs=inputs)
    for w in caught:
        click.echo(f"optiq: warning: {w.message}", err=True)
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


def echo_note(message: str) -> None:
    """Tell the user something worth knowing that is not a problem (on stderr, one line)."""
    click.echo(f"optiq: note: {message}", err=True)


@click.command("plots")
@click.option("--report", type=click.Path(path_type=Path),
              help="Evaluation report JSON (docs/viz.md): error against horizon and per joint.")
@click.option("--in", "--dataset", "source", type=click.Path(path_type=Path),
              help="A dataset or a motion file holding the clip to plot.")
@click.option("--clip", "clip_name", help="Clip whose joint angles and frame labels to plot (default: the first).")
@click.option("--joints", help="Comma-separated joint names for angle curves, e.g. LeftUpLeg,LeftLeg.")
@click.option("--angles", type=click.Choice(["euler", "angle"]), default="euler", show_default=True,
              help="Euler angles of the local rotation, or its angle from the rest pose (degrees).")
@click.option("--order", default="ZYX", show_default=True, help="Euler order (intrinsic) for --angles euler.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output .html, or .png (kaleido).")
def plots_cmd(report: Path | None, source: Path | None, clip_name: str | None, joints: str | None, angles: str,
              order: str, out: Path) -> None:
    """Plot an evaluation report (--report), or a clip's joint angles and frame-label timeline
    (--in FILE [--clip NAME] [--joints])."""
    from optiq.atomic import check_output_path

    from .inputs import load_clips
    from .plots import PLOT_SUFFIXES, render_plots

    inputs = [p for p in (report, source) if p is not None]
    check_output_path(out, suffixes=PLOT_SUFFIXES, inputs=inputs)
    if report is not None and (source is not None or clip_name is not None):
        raise OptiqError("give either --report or --in with --clip, not both")
    if report is not None:
        path = render_plots(report, out, inputs=inputs)
    elif source is not None:
        (clip,) = load_clips(source, [clip_name] if clip_name else [], note=echo_note)
        names = [j.strip() for j in joints.split(",") if j.strip()] if joints else []
        try:
            path = render_plots(clip, out, joints=names, kind=angles, order=order, inputs=inputs)
        except OptiqError as exc:
            if exc.path is not None:
                raise
            raise OptiqError(exc.message, source, exc.where) from exc  # say which file the clip is from
    else:
        raise OptiqError("give --report FILE, or --in FILE (a dataset or motion file) with --clip NAME")
    click.echo(f"wrote {path}")
