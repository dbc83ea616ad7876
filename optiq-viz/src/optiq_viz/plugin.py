"""Hook implementations only: renderers as lazy "module:attr" targets and the `optiq viz` command group."""

from __future__ import annotations

import optiq


@optiq.hookimpl
def optiq_register_renderers(register):
    register("plotly", "optiq_viz.html:render_html", suffixes=(".html", ".htm"),
             description="interactive 3D skeleton animation (play/pause, slider, overlays, label timeline)")
    register("plots", "optiq_viz.plots:render_plots", suffixes=(".html", ".htm", ".png"),
             description="error vs horizon, per-joint errors, joint-angle curves, label timelines")
    register("video", "optiq_viz.video:render_video", suffixes=(".mp4",),
             description="frame-exact H.264 MP4 of the skeleton (follow or fixed camera, side by side or overlaid)")


@optiq.hookimpl
def optiq_register_commands(cli):
    from optiq_viz.cli import viz

    cli.add_command(viz)
