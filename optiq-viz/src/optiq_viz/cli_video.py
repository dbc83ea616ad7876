"""``optiq viz video``: a frame-exact MP4 of one or more clips (from a dataset or a motion file), optionally
against a prediction.

Only click and optiq are imported here; numpy rendering and ffmpeg load when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click
from optiq.cli.params import FPS, Degrees


@click.command("video")
@click.option("--in", "--dataset", "source", type=click.Path(path_type=Path),
              help="A dataset (.parquet, .h5) or a motion file (any loader: .bvh, .fbx, ...).")
@click.option("--policy", type=click.Path(path_type=Path, dir_okay=False),
              help="Instead of --in: a policy file (optiq train rl) acting in its env, drawn by the renderer "
                   "registered for policies (optiq-rl's MuJoCo renderer).")
@click.option("--keypoints", type=click.Path(path_type=Path),
              help="2D keypoints (a points dataset, or a keypoint file) to draw over --on-video; with --in, that "
                   "clip (the motion lifted from them: optiq data lift) is drawn beside the video.")
@click.option("--on-video", type=click.Path(path_type=Path, dir_okay=False),
              help="With --keypoints: the video they were detected in; the output has its frames, rate and size.")
@click.option("--env", "env_id", help="With --policy: run it in this env instead of its own.")
@click.option("--episodes", default=1, show_default=True, type=click.IntRange(min=1),
              help="With --policy: episodes, one after the other.")
@click.option("--steps", type=click.IntRange(min=1), help="With --policy: at most this many steps per episode.")
@click.option("--clip", "clip_names", multiple=True,
              help="Clip to draw (default: the first); repeat to overlay several clips in one view.")
@click.option("--pred", type=click.Path(path_type=Path),
              help="Prediction of the first clip (a motion file or dataset): same skeleton and frame count.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output .mp4 (H.264, yuv420p).")
@click.option("--fps", type=FPS, help="Resample the clip(s) to this frame rate first.")
@click.option("--size", default="640x480", show_default=True,
              help="WIDTHxHEIGHT of the whole video, even numbers; side-by-side panels split the width.")
@click.option("--camera", type=click.Choice(["fixed", "follow"]), default="fixed", show_default=True,
              help="fixed: frame the whole motion; follow: keep the root in the centre.")
@click.option("--layout", type=click.Choice(["overlay", "side-by-side"]), default="overlay", show_default=True,
              help="All clips in one view, or one panel per clip.")
@click.option("--azimuth", type=Degrees(), help="Camera azimuth in degrees from +x towards +y (default: side view).")
@click.option("--elevation", type=Degrees(-85.0, 85.0), default=20.0, show_default=True,
              help="Camera elevation in degrees, -85 to 85.")
@click.pass_context
def video_cmd(ctx: click.Context, source: Path | None, policy: Path | None, keypoints: Path | None,
              on_video: Path | None, env_id: str | None, episodes: int, steps: int | None,
              clip_names: tuple[str, ...], pred: Path | None, out: Path, fps: float | None, size: str, camera: str,
              layout: str, azimuth: float | None, elevation: float) -> None:
    """Write a frame-exact H.264 MP4 of clips: N frames at F fps give exactly N frames at F fps.

    Clips are drawn in blue, orange, green, ... in order; a prediction comes right after the first clip
    (orange). Several clips share one camera. With --policy instead of --in: the policy acting in its env, one
    frame per control step at the control rate (the renderer registered for policies draws it). With
    --keypoints and --on-video: the keypoints drawn over the video's own frames, one output frame per video frame.
    """
    from optiq.atomic import check_output_path

    from .cli_html import echo_note
    from .inputs import load_clips, load_prediction
    from .video import VIDEO_SUFFIXES, parse_size, render_video

    quiet = (ctx.find_root().obj or {}).get("quiet", True)
    if keypoints is not None or on_video is not None:
        if keypoints is None or on_video is None or policy is not None:
            raise click.UsageError("--keypoints and --on-video go together, without --policy")
        beside = load_clips(source, (), note=echo_note)[0] if source is not None else None
        video = _keypoints_video(keypoints, on_video, out, clip_names, progress=not quiet, beside=beside,
                                 inputs=[source] if source is not None else [], camera=camera, azimuth=azimuth,
                                 elevation=elevation)
        click.echo(f"wrote {video.path}: {video.frames} frames at {video.fps} fps ({float(video.fps):g}), "
                   f"{video.width}x{video.height}; keypoints over {on_video.name}"
                   + (f", {beside.name} beside" if beside is not None else ""))
        return
    if (source is None) == (policy is None):
        raise click.UsageError("give one of --in FILE or --policy POLICY")
    if policy is not None:
        video = _policy_video(policy, out, env_id, episodes, steps, parse_size(size), progress=not quiet)
        click.echo(f"wrote {video.path}: {video.frames} frames at {video.fps} fps ({float(video.fps):g}), "
                   f"{video.width}x{video.height}; {policy.name}")
        return

    inputs = [p for p in (source, pred) if p is not None]
    check_output_path(out, suffixes=VIDEO_SUFFIXES, inputs=inputs)
    width_height = parse_size(size)
    clips = load_clips(source, clip_names, note=echo_note)
    if pred is not None:
        clips.insert(1, load_prediction(pred, clips[0]))
    video = render_video(clips, out, size=width_height, camera=camera, layout=layout, fps=fps, azimuth=azimuth,
                         elevation=elevation, progress=not quiet, inputs=inputs)
    names = ", ".join(c.name for c in clips)
    click.echo(f"wrote {video.path}: {video.frames} frames at {video.fps} fps ({float(video.fps):g}), "
               f"{video.width}x{video.height}; {names}")


def _keypoints_video(keypoints: Path, on_video: Path, out: Path, clip_names: tuple[str, ...], progress: bool,
                     beside=None, inputs: list[Path] = (), **camera):
    """The keypoints of a points dataset (clip ``clip_names[0]``, default the first) or keypoint file over the
    frames of ``on_video``; ``beside``, a clip drawn to the right (``overlay.render_keypoints_on_video``)."""
    import optiq
    from optiq.plugins import registry

    from .overlay import render_keypoints_on_video

    suffix = keypoints.suffix.lower()
    if registry("format").find(lambda c: suffix in c.meta.get("suffixes", ())):
        with optiq.open_dataset(keypoints) as ds:
            if not hasattr(ds, "read_points"):
                raise optiq.OptiqError("holds clips, not keypoints (a points dataset is expected)", keypoints)
            points = ds.read_points(clip_names[0] if clip_names else 0)
    else:
        points = optiq.load_points(keypoints)[0]
    return render_keypoints_on_video(points, on_video, out, progress=progress, inputs=[keypoints, *inputs],
                                     beside=beside, **camera)


def _policy_video(policy: Path, out: Path, env_id: str | None, episodes: int, steps: int | None,
                  size: tuple[int, int], progress: bool):
    """The video of a policy by the renderer registered with ``inputs=("policy",)`` (optiq-rl's ``mujoco``)."""
    from optiq import OptiqError
    from optiq.plugins import registry

    found = registry("renderer").find(lambda c: "policy" in (c.meta.get("inputs") or ()))
    if not found:
        raise OptiqError('--policy needs a renderer of policies: pip install "optiq[rl]" (optiq-rl)')
    render = found[0].load()
    return render(policy, out, env=env_id, episodes=episodes, max_steps=steps, size=size, progress=progress)
