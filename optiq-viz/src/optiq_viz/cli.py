"""``optiq viz``: the command group; each subcommand lives beside the renderer it wraps and imports plotly or
ffmpeg only when it runs."""

from __future__ import annotations

import click

from .cli_html import plotly_cmd, plots_cmd
from .cli_video import video_cmd


@click.group()
def viz() -> None:
    """Look at motion: interactive HTML skeletons, plots, MP4 videos."""


viz.add_command(plotly_cmd)
viz.add_command(plots_cmd)
viz.add_command(video_cmd)
