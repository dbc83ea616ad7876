"""``optiq viz video``: a frame-exact MP4 of a dataset clip, optionally against a prediction.

Only click and optiq are imported here; numpy rendering and ffmpeg load when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command("video")
@click.option("--dataset", required=True, type=click.Path(path_type=Path), help="Dataset (.parquet, .h5).")
@click.option("--clip", "clip_name", required=True, help="Name of the clip to draw.")
@click.option("--pred", type=click.Path(path_type=Path),
              help="Prediction of the clip (a motion file or dataset): same skeleton and frame count.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output .mp4 (H.264, yuv420p).")
@click.option("--fps", type=float, help="Resample the clip(s) to this frame rate first.")
@click.option("--size", default="640x480", show_default=True,
              help="WIDTHxHEIGHT of the whole video, even numbers; side-by-side panels split the width.")
@click.option("--camera", type=click.Choice(["fixed", "follow"]), default="fixed", show_default=True,
              help="fixed: frame the whole motion; follow: keep the root in the centre.")
@click.option("--layout", type=click.Choice(["overlay", "side-by-side"]), default="overlay", show_default=True,
              help="Ground truth and prediction in one view or in two panels.")
@click.option("--azimuth", type=float, help="Camera azimuth in degrees from +x towards +y (default: side view).")
@click.option("--elevation", type=float, default=20.0, show_default=True, help="Camera elevation in degrees.")
@click.pass_context
def video_cmd(ctx: click.Context, dataset: Path, clip_name: str, pred: Path | None, out: Path, fps: float | None,
              size: str, camera: str, layout: str, azimuth: float | None, elevation: float) -> None:
    """Write a frame-exact H.264 MP4 of a clip: N frames at F fps give exactly N frames at F fps.

    The clip is drawn in blue, the prediction in orange.
    """
    from optiq.atomic import check_output_path

    from .inputs import load_dataset_clips, load_prediction
    from .video import parse_size, render_video

    check_output_path(out)
    width_height = parse_size(size)
    clips = load_dataset_clips(dataset, [clip_name])
    if pred is not None:
        clips.append(load_prediction(pred, clips[0]))
    quiet = (ctx.find_root().obj or {}).get("quiet", True)
    video = render_video(clips, out, size=width_height, camera=camera, layout=layout, fps=fps, azimuth=azimuth,
                         elevation=elevation, progress=not quiet)
    click.echo(f"wrote {video.path}: {video.frames} frames at {video.fps} fps ({float(video.fps):g}), "
               f"{video.width}x{video.height}")
