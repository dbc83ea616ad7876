"""``optiq data lift``: 2D keypoints -> a 3D reference clip (``optiq_video.lift``).

Only click and optiq are imported here; numpy and scipy load when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command("lift")
@click.option("--in", "source", required=True, type=click.Path(path_type=Path),
              help="2D keypoints: a points dataset (.parquet, .h5) or a keypoint file or folder (COCO, OpenPose).")
@click.option("--skeleton", "skeleton_spec", required=True,
              help="The skeleton to fit: a dataset of clips (its first clip's skeleton), a DeepMimic character "
                   "file (humanoid3d_character.txt), or 'deepmimic' (the file in $OPTIQ_DEEPMIMIC_CHARACTER).")
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The lifted clip: a dataset (.parquet, .h5) with the frame label reprojection_error (px).")
@click.option("--clip", "clip_name", help="The keypoints' clip in a points dataset (default: the first).")
@click.option("--height", type=click.FloatRange(min=0.3, max=3.0),
              help="The person's height in metres: the skeleton is scaled to it (default: its own size).")
@click.option("--pose", type=click.Choice(["mean", "rest"]), default="mean", show_default=True,
              help="The pose the fit starts from and is pulled towards: the --skeleton dataset's mean pose, or the "
                   "skeleton's rest pose (a character file has only its rest pose).")
@click.option("--smooth", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Weight of the joints' acceleration against the reprojection error.")
@click.option("--limits", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Weight of the knees' and elbows' hinge and flexion range (0: no limits).")
@click.option("--feet", default=10.0, show_default=True, type=click.FloatRange(min=0),
              help="Weight of the speed of an ankle where its keypoint stands still on the ground (0: free).")
@click.option("--quiet", is_flag=True, help="Print nothing on success.")
def lift_command(source: Path, skeleton_spec: str, out: Path, clip_name: str | None, height: float | None,
                 pose: str, smooth: float, limits: float, feet: float, quiet: bool) -> None:
    """Fit a skeleton of known bone lengths to COCO-17 2D keypoints (weak-perspective camera, one view) and
    write the 3D clip. Prints the frames/s of the fit and the mean reprojection error."""
    import time

    import numpy as np
    import optiq
    from optiq.atomic import check_output_path

    from .lift import lift, read_skeleton

    check_output_path(out, inputs=[source])
    points = _read_points(source, clip_name)
    skeleton, reference = read_skeleton(skeleton_spec, pose=pose)
    start = time.perf_counter()
    try:
        result = lift(points, skeleton, reference=reference, height=height, smooth=smooth, limits=limits,
                      feet=feet)
    except optiq.SkeletonMismatchError as exc:
        # The lifting knows only arrays: name the file that did not fit.
        raise optiq.SkeletonMismatchError(exc.message, exc.path or skeleton_spec, exc.where) from None
    except optiq.OptiqError as exc:
        raise optiq.OptiqError(exc.message, exc.path or source, exc.where) from None
    seconds = time.perf_counter() - start
    optiq.write_dataset(out, [result.clip])
    if not quiet:
        err = result.reprojection_error
        click.echo(f"wrote {out}: {points.num_frames} frames, {skeleton.num_joints} joints, "
                   f"{len(result.joints)} keypoints matched, {result.still_frames} still-foot frames; "
                   f"reprojection error mean {np.nanmean(err):.1f} px, "
                   f"max {np.nanmax(err):.1f} px; camera {result.scale:.1f} px/m; "
                   f"{points.num_frames / seconds:.1f} frames/s")


def _read_points(source: Path, clip_name: str | None):
    """The keypoints of a points dataset (clip ``clip_name``, default the first) or of a keypoint file."""
    import optiq
    from optiq.plugins import registry

    suffix = source.suffix.lower()
    if source.is_file() and registry("format").find(lambda c: suffix in c.meta.get("suffixes", ())):
        with optiq.open_dataset(source) as ds:
            if not hasattr(ds, "read_points"):
                raise optiq.OptiqError("holds clips, not keypoints (a points dataset is expected)", source)
            return ds.read_points(clip_name if clip_name is not None else 0)
    return optiq.load_points(source)[0]
