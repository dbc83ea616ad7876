"""``optiq data``: convert, label, inspect and export datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..errors import OptiqError
from ..names import check_name
from .params import FACTOR, FPS, HERTZ


@click.group()
def data() -> None:
    """Convert motion files into datasets, label them, inspect and export clips."""


def _parse_labels(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise OptiqError(f"--label {item!r}: expected key=value")
        out[check_name(key.strip(), f"--label {item!r}: key", error=OptiqError)] = value
    return out


@data.command("convert")
@click.option("--in", "inputs", multiple=True, metavar="PATHS...",
              help="Motion files, folders or glob patterns (repeat --in, or list paths after it).")
@click.argument("more_inputs", nargs=-1, metavar="")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="ds.parquet, ds.h5 or ds.hdf5.")
@click.option("--fps", type=FPS, help="Resample every clip to this frame rate (slerp for rotations).")
@click.option("--compute-velocities", is_flag=True, help="Store world linear and angular velocities.")
@click.option("--smooth", type=HERTZ, metavar="HZ", help="Zero-phase Butterworth low-pass cut-off (order 4).")
@click.option("--drop-tpose", is_flag=True, help="Drop a leading T-pose frame (CMU MotionBuilder BVH).")
@click.option("--loader", help="Loader name or module:attr (default: by suffix and content).")
@click.option("--unit", help="Length unit of the files: m, cm, mm, inch, cmu or metres per unit (default: guessed "
              "per file, then the guess of most frames for all files of one loader and skeleton).")
@click.option("--up", type=click.Choice(["y", "z"], case_sensitive=False),
              help="Up axis of the files (default: guessed like --unit).")
@click.option("--option", "loader_options", multiple=True, metavar="KEY=VALUE",
              help="Loader option (repeatable), e.g. character=humanoid3d.txt, stack=Take1; values true/false/"
                   "numbers are read as JSON, others as text.")
@click.option("--scale", type=FACTOR,
              help="Multiply every length after loading (e.g. 0.0564444 for the CMU FBX files, which hold CMU units).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Clip label for every clip.")
@click.option("--recursive", "-r", is_flag=True, help="Also take motion files in the subfolders of --in folders.")
@click.option("--root", metavar="JOINT", help="Make JOINT the root: drop the joints above it, folding their "
              "transforms into it (world positions unchanged).")
@click.option("--joints", metavar="A,B,...", help="Keep only these joints (connected: one of them above all "
              "others); dropped joints' transforms are folded into the joints below them.")
@click.option("--rename", type=click.Path(dir_okay=False), metavar="MAP.json",
              help='Rename joints: a JSON object {"old name": "new name"}.')
@click.option("--skip-bad", is_flag=True, help="Report bad files and convert the rest (default: stop at the first); "
              "with several skeletons, keep the one most files have.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="Worker processes (default: one per CPU).")
@click.pass_context
def convert_cmd(ctx: click.Context, inputs, more_inputs, out, fps, compute_velocities, smooth, drop_tpose, loader,
                unit, up, loader_options, scale, labels, recursive, root, joints, rename, skip_bad, jobs) -> None:
    """Convert motion files into one dataset (one skeleton topology)."""
    from ..convert import ConvertOptions, convert

    paths = list(inputs) + list(more_inputs)
    if not paths:
        raise OptiqError("no input: give motion files, folders or patterns with --in")
    options = ConvertOptions(loader=loader, unit=unit, up=up and up.lower(), scale=scale, drop_tpose=drop_tpose,
                             smooth=smooth, fps=fps, labels=_parse_labels(labels),
                             options=_parse_loader_options(loader_options), root=root,
                             joints=_parse_joints(joints), rename=_read_rename(rename))

    def on_skip(path: Path, message: str) -> None:
        click.echo(f"optiq: skipped: {message}", err=True)

    def on_warning(message: str) -> None:
        click.echo(f"optiq: warning: {message}", err=True)

    result = convert(paths, out, options, velocities=compute_velocities, skip_bad=skip_bad, jobs=jobs,
                     progress=not ctx.obj["quiet"], on_skip=on_skip, recursive=recursive, on_warning=on_warning)
    skipped = f", {len(result.skipped)} bad files skipped" if result.skipped else ""
    click.echo(f"wrote {out}: {len(result.clips)} clips, {result.num_frames} frames from "
               f"{len(result.files) - len(result.skipped)} files{skipped}")


def _parse_loader_options(items: tuple[str, ...]) -> dict[str, Any]:
    """``--option KEY=VALUE`` items as loader keyword options: a JSON scalar (true, 3, 0.5, null) is read as
    one, anything else is kept as text (a file name, a stack name)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise OptiqError(f"--option {item!r}: expected KEY=VALUE with KEY a loader option name")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        out[key] = parsed if parsed is None or isinstance(parsed, (bool, int, float, str)) else value
    return out


def _parse_joints(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise OptiqError(f"--joints {text!r}: expected joint names separated by commas")
    return names


def _read_rename(path: str | None) -> dict[str, str]:
    """The ``--rename`` map: a JSON object of joint name -> new name."""
    if path is None:
        return {}
    try:
        mapping = json.loads(Path(path).read_text())
    except OSError as exc:
        raise OptiqError(f"cannot read the rename map: {exc.strerror}", path) from None
    except json.JSONDecodeError as exc:
        raise OptiqError(f"line {exc.lineno}: not JSON: {exc.msg}", path) from None
    except UnicodeDecodeError as exc:
        raise OptiqError(f"byte {exc.start}: not UTF-8 text; expected a JSON object", path) from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) and v for v in mapping.values()):
        raise OptiqError('expected a JSON object {"old joint name": "new joint name", ...}', path)
    return mapping


@data.command("label")
@click.option("--in", "src", required=True, type=click.Path(dir_okay=False), help="The dataset to label.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The labelled dataset (may be --in).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Clip label (repeatable).")
@click.option("--clips", "patterns", multiple=True, metavar="PATTERN",
              help="Give --label only to clips whose name matches (fnmatch, repeatable; default all).")
@click.option("--frame-labels", type=click.Path(dir_okay=False),
              help="JSON frame labels file (docs/dataset-format.md).")
@click.option("--auto", "auto", multiple=True, type=click.Choice(["contacts", "phase"]),
              help="Frame labels from the motion: foot contacts (contact_<foot>) or gait phase in [0, 1) "
                   "(repeatable; only clips matching --clips).")
def label_cmd(src, out, labels, patterns, frame_labels, auto) -> None:
    """Add clip labels and frame labels; writes a new dataset atomically."""
    from ..atomic import check_output_path
    from ..datasets.labels import relabel

    parsed = _parse_labels(labels)
    if not parsed and not frame_labels and not auto:
        raise OptiqError("nothing to do: give --label KEY=VALUE, --frame-labels FILE and/or --auto KIND")
    # --out may be --in (relabelling in place is atomic), never the labels file.
    check_output_path(out, inputs=[frame_labels] if frame_labels else ())
    relabel(src, out, labels=parsed, clips=patterns, frame_labels=frame_labels, auto=auto)
    click.echo(f"wrote {out}")


@data.command("info")
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--loader", help="For a motion file: loader name or module:attr (default: by suffix and content).")
@click.option("--option", "loader_options", multiple=True, metavar="KEY=VALUE",
              help="For a motion file: loader option (repeatable), as for data convert (e.g. fps=60).")
def info_cmd(path, as_json, loader, loader_options) -> None:
    """Clips, frames, fps, skeleton and labels of a dataset, or of a motion file (every clip it holds, such as
    the animation stacks of an FBX file), or of a folder read as one recording (OpenPose JSON)."""
    from ..datasets import open_dataset
    from ..plugins import registry

    suffix = Path(path).suffix.lower()
    if loader or loader_options or not registry("format").find(lambda c: suffix in c.meta.get("suffixes", ())):
        s = _motion_file_summary(path, loader, _parse_loader_options(loader_options))
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
    points = s.get("kind") == "points"  # a points dataset or marker file: markers, no skeleton
    if points:
        _echo_points(s)
    else:
        sk = s["skeleton"]
        click.echo(f"skeleton: {sk['num_joints']} joints: {', '.join(sk['names'])}")
    click.echo(f"fields: {', '.join(s['fields'])}")
    if s.get("extras"):  # schema version 3: per-frame arrays beside the motion fields (a character's qpos, qvel)
        click.echo(f"extras: {', '.join(f'{k} {v}' for k, v in s['extras'].items())}")
    for key, values in s["labels"].items():
        click.echo(f"label {key}: {', '.join(_short(v) for v in values[:10])}{' ...' if len(values) > 10 else ''}")
    for key, dtype in s["frame_labels"].items():
        click.echo(f"frame label {key}: {dtype}")
    rows = [("CLIP", "FRAMES", "FPS", "SECONDS", *(("PRESENT",) if points else ()), "LABELS")]
    for c in s["clips"]:
        labels = " ".join(f"{k}={_short(v)}" for k, v in c["labels"].items())
        present = (f"{c['valid_fraction']:.1%}",) if points else ()
        rows.append((c["name"], str(c["num_frames"]), f"{c['fps']:g}", f"{c['duration_s']:.2f}", *present, labels))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo("  ".join([*(x.ljust(w) for x, w in zip(r, widths, strict=False)), r[-1]]).rstrip())


def _echo_points(s: dict) -> None:
    """The point set lines of ``info``: names, dimension and unit, and how complete the trajectories are."""
    p = s["points"]
    click.echo(f"points: {p['num_points']} ({p['dim']}D, {p['unit']}): {', '.join(p['names'])}")
    sizes = sorted({tuple(c["image_size"]) for c in s["clips"] if c.get("image_size")})
    if sizes:  # 2D keypoints: the pixels of which picture
        click.echo(f"image size: {', '.join(f'{w}x{h}' for w, h in sizes)} px (width x height)")
    worst = sorted(s["valid_by_point"].items(), key=lambda kv: kv[1])[:3]
    click.echo(f"present: {s['valid_fraction']:.1%} of point samples (missing: confidence 0, NaN position); "
               f"least present: {', '.join(f'{n} {v:.1%}' for n, v in worst)}")


def _motion_file_summary(path: str, loader: str | None, options: dict[str, Any]) -> dict:
    """The ``info`` of a motion file, in the layout of ``Dataset.summary()`` (schema_version None)."""
    from ..datasets.base import summarize
    from ..io import load, loader_for

    cap = loader_for(path, loader)
    if cap.meta.get("output") == "points":
        return _points_file_summary(path, loader, cap.name, options)
    clips = load(path, loader, **options)
    frame_labels = {k: str(v.dtype) for c in clips for k, v in c.frame_labels.items()}
    fields = ["root_translation", "rotations"]
    if any(c.local_translations is not None for c in clips):
        fields.append("local_translations")
    return summarize(path, f"motion file (loader {cap.name})", None, clips[0].skeleton, clips, fields, frame_labels)


def _points_file_summary(path: str, loader: str | None, name: str, options: dict[str, Any]) -> dict:
    """The ``info`` of a marker or keypoint file (C3D, OpenPose), in the layout of ``PointsDataset.summary()``."""
    from ..datasets.points import info_of, points_summary
    from ..points import load_points

    takes = load_points(path, loader, **options)
    first = takes[0]
    frame_labels = {k: str(v.dtype) for t in takes for k, v in t.frame_labels.items()}
    return points_summary(path, f"points file (loader {name})", None, first.names, first.dim, first.unit,
                          first.edges, [info_of(t) for t in takes], frame_labels)


def _short(text: str, size: int = 32) -> str:
    return text if len(text) <= size else text[: size - 3] + "..."


@data.command("export")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--clip", "clip_name", required=True, help="Name of the clip to export.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="x.bvh, x.json or any writable format.")
def export_cmd(path, clip_name, out) -> None:
    """Write one clip of a dataset to a motion file."""
    from ..atomic import check_output_path
    from ..datasets import open_dataset
    from ..io import save_clip

    # save_clip refuses a suffix no writer takes (with what to install); here: the output is not the dataset.
    check_output_path(out, inputs=[path])
    with open_dataset(path) as ds:
        clip = ds.read_clip(clip_name)
    save_clip(clip, out)
    click.echo(f"wrote {out}: clip {clip_name!r}, {clip.num_frames} frames")
