"""``optiq data``: convert, label, inspect and export datasets."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import OptiqError


@click.group()
def data() -> None:
    """Convert motion files into datasets, label them, inspect and export clips."""


def _parse_labels(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise OptiqError(f"--label {item!r}: expected key=value")
        out[key.strip()] = value
    return out


@data.command("convert")
@click.option("--in", "inputs", multiple=True, metavar="PATHS...",
              help="Motion files, folders or glob patterns (repeat --in, or list paths after it).")
@click.argument("more_inputs", nargs=-1, metavar="")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="ds.parquet, ds.h5 or ds.hdf5.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), help="Resample every clip to this frame rate (slerp for rotations).")
@click.option("--compute-velocities", is_flag=True, help="Store world linear and angular velocities.")
@click.option("--smooth", type=click.FloatRange(min=0, min_open=True), metavar="HZ", help="Zero-phase Butterworth low-pass cut-off (order 4).")
@click.option("--drop-tpose", is_flag=True, help="Drop a leading T-pose frame (CMU MotionBuilder BVH).")
@click.option("--loader", help="Loader name or module:attr (default: by suffix and content).")
@click.option("--unit", help="Length unit of the files: m, cm, mm, inch, cmu or metres per unit (default: auto).")
@click.option("--scale", type=click.FloatRange(min=0, min_open=True),
              help="Multiply every length after loading (e.g. 0.0564444 for the CMU FBX files, which hold CMU units).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Clip label for every clip.")
@click.option("--skip-bad", is_flag=True, help="Report bad files and convert the rest (default: stop at the first).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="Worker processes (default: one per CPU).")
@click.pass_context
def convert_cmd(ctx: click.Context, inputs, more_inputs, out, fps, compute_velocities, smooth, drop_tpose, loader,
                unit, scale, labels, skip_bad, jobs) -> None:
    """Convert motion files into one dataset (one skeleton topology)."""
    from ..convert import ConvertOptions, convert

    paths = list(inputs) + list(more_inputs)
    if not paths:
        raise OptiqError("no input: give motion files, folders or patterns with --in")
    options = ConvertOptions(loader=loader, unit=unit, scale=scale, drop_tpose=drop_tpose, smooth=smooth, fps=fps,
                             labels=_parse_labels(labels))

    def on_skip(path: Path, message: str) -> None:
        click.echo(f"optiq: skipped: {message}", err=True)

    result = convert(paths, out, options, velocities=compute_velocities, skip_bad=skip_bad, jobs=jobs,
                     progress=not ctx.obj["quiet"], on_skip=on_skip)
    skipped = f", {len(result.skipped)} bad files skipped" if result.skipped else ""
    click.echo(f"wrote {out}: {len(result.clips)} clips, {result.num_frames} frames from "
               f"{len(result.files) - len(result.skipped)} files{skipped}")


@data.command("label")
@click.option("--in", "src", required=True, type=click.Path(dir_okay=False), help="The dataset to label.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The labelled dataset (may be --in).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Clip label (repeatable).")
@click.option("--clips", "patterns", multiple=True, metavar="PATTERN",
              help="Give --label only to clips whose name matches (fnmatch, repeatable; default all).")
@click.option("--frame-labels", type=click.Path(dir_okay=False),
              help="JSON frame labels file (docs/dataset-format.md).")
def label_cmd(src, out, labels, patterns, frame_labels) -> None:
    """Add clip labels and frame labels; writes a new dataset atomically."""
    from ..datasets.labels import relabel

    parsed = _parse_labels(labels)
    if not parsed and not frame_labels:
        raise OptiqError("nothing to do: give --label KEY=VALUE and/or --frame-labels FILE")
    relabel(src, out, labels=parsed, clips=patterns, frame_labels=frame_labels)
    click.echo(f"wrote {out}")


@data.command("info")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--loader", help="For a motion file: loader name or module:attr (default: by suffix and content).")
def info_cmd(path, as_json, loader) -> None:
    """Clips, frames, fps, skeleton and labels of a dataset, or of a motion file (every clip it holds, such as
    the animation stacks of an FBX file)."""
    from ..datasets import open_dataset
    from ..plugins import registry

    suffix = Path(path).suffix.lower()
    if loader or not registry("format").find(lambda c: suffix in c.meta.get("suffixes", ())):
        s = _motion_file_summary(path, loader)
    else:
        with open_dataset(path) as ds:
            s = ds.summary()
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    seconds = sum(c["duration_s"] for c in s["clips"])
    schema = f" (schema {s['schema_version']})" if s["schema_version"] is not None else ""
    click.echo(f"{s['path']}: {s['format']}{schema}")
    click.echo(f"clips: {s['num_clips']}, frames: {s['num_frames']} ({seconds:.1f} s), "
               f"fps: {', '.join(f'{x:g}' for x in s['fps'])}")
    sk = s["skeleton"]
    click.echo(f"skeleton: {sk['num_joints']} joints: {', '.join(sk['names'])}")
    click.echo(f"fields: {', '.join(s['fields'])}")
    for key, values in s["labels"].items():
        click.echo(f"label {key}: {', '.join(_short(v) for v in values[:10])}{' ...' if len(values) > 10 else ''}")
    for key, dtype in s["frame_labels"].items():
        click.echo(f"frame label {key}: {dtype}")
    rows = [("CLIP", "FRAMES", "FPS", "SECONDS", "LABELS")]
    for c in s["clips"]:
        labels = " ".join(f"{k}={_short(v)}" for k, v in c["labels"].items())
        rows.append((c["name"], str(c["num_frames"]), f"{c['fps']:g}", f"{c['duration_s']:.2f}", labels))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        click.echo("  ".join([*(x.ljust(w) for x, w in zip(r, widths, strict=False)), r[4]]).rstrip())


def _motion_file_summary(path: str, loader: str | None) -> dict:
    """The ``info`` of a motion file, in the layout of ``Dataset.summary()`` (schema_version None)."""
    from ..datasets.base import summarize
    from ..io import load, loader_for

    cap = loader_for(path, loader)
    clips = load(path, loader)
    frame_labels = {k: str(v.dtype) for c in clips for k, v in c.frame_labels.items()}
    fields = ["root_translation", "rotations"]
    if any(c.local_translations is not None for c in clips):
        fields.append("local_translations")
    return summarize(path, f"motion file (loader {cap.name})", None, clips[0].skeleton, clips, fields, frame_labels)


def _short(text: str, size: int = 32) -> str:
    return text if len(text) <= size else text[: size - 3] + "..."


@data.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--clip", "clip_name", required=True, help="Name of the clip to export.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="x.bvh, x.json or any writable format.")
def export_cmd(path, clip_name, out) -> None:
    """Write one clip of a dataset to a motion file."""
    from ..datasets import open_dataset
    from ..io import save_clip

    with open_dataset(path) as ds:
        clip = ds.read_clip(clip_name)
    save_clip(clip, out)
    click.echo(f"wrote {out}: clip {clip_name!r}, {clip.num_frames} frames")
