"""``optiq csvmotion``: the example plugin's CLI. Imports only click; the work is imported when a command runs."""

from __future__ import annotations

import click


@click.group()
def csvmotion() -> None:
    """csvmotion files (example plugin)."""


@csvmotion.command()
@click.argument("path", type=click.Path(dir_okay=False))
def info(path: str) -> None:
    """Frames, joints and fps of a csvmotion file."""
    from .csvmotion import load_csvmotion

    clip = load_csvmotion(path)[0]
    click.echo(f"{path}: {clip.num_frames} frames, {clip.num_joints} joints, {clip.fps:g} fps")


@csvmotion.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
def convert(source: str, out: str) -> None:
    """Convert the first clip of any motion file optiq reads into csvmotion."""
    import optiq

    from .csvmotion import write_csvmotion

    clip = optiq.load_clip(source)
    write_csvmotion(clip, out)
    click.echo(f"{out}: {clip.num_frames} frames, {clip.num_joints} joints")
