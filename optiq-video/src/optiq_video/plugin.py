"""Hook implementations only: the video loader as a lazy "module:attr" target (importing this module imports
neither the estimator nor ffmpeg)."""

from __future__ import annotations

import optiq


@optiq.hookimpl
def optiq_register_loaders(register):
    # output="points": a video gives optiq.Points (2D keypoints), not Clips; convert writes a points dataset.
    # The suffixes are the containers phones, cameras and screen recorders write (core's install hint names them
    # too: optiq.registry.INSTALL_HINTS).
    register("video", "optiq_video.extract:load_video", suffixes=(".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm"),
             output="points",
             description="video -> COCO-17 2D keypoints of one person (MediaPipe Pose 0.10.14, Points in pixels)")


@optiq.hookimpl
def optiq_register_commands(cli):
    # "data" is core's own group (not one of the shared train/eval groups): add to it when it is there.
    from optiq_video.cli import lift_command

    group = cli.commands.get("data")
    if group is not None:
        group.add_command(lift_command)
