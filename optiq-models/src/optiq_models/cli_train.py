"""``optiq train model``, ``optiq eval model`` and ``optiq generate``: thin shells over train.py, evaluate.py and
generate.py. ``add_commands(cli)`` attaches them (called from the package's ``optiq_register_commands`` hook)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import click
from optiq.cli.params import PositiveFloat
from optiq.config import parse_overrides


def _progress(ctx: click.Context) -> bool:
    return not (ctx.find_root().obj or {}).get("quiet", False)


def _labels(items: Sequence[str]) -> dict[str, str] | None:
    from optiq.cli.params import parse_labels

    return parse_labels(items)


@click.command("model", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--config", "config", metavar="FILE|NAME",
              help="YAML config: a file, or a shipped one by name (mlp, transformer, unet).")
@click.option("--data", "data", multiple=True, required=True, metavar="PATH",
              help="A dataset (.parquet, .h5) or motion files / folders (converted once, cached); repeatable.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The model checkpoint (.pt).")
@click.option("--arch", help="Architecture: a registered model name or module:Class (overrides the config).")
@click.option("--resume", is_flag=True, help="Continue a stopped run from the state saved beside --out.")
@click.option("--max-minutes", type=PositiveFloat(), help="Wall-clock budget in minutes.")
@click.option("--max-steps", type=click.IntRange(min=1), help="Optimisation steps (and length of the schedule).")
@click.option("--device", help="cpu (default), cuda, cuda:N, mps.")
@click.option("--labels", help="Clip labels to condition on, comma-separated (e.g. content,style).")
@click.option("--split-by", help="clip (default), label:KEY (stratified) or regex:PATTERN (held-out takes).")
@click.option("--test-ratio", type=click.FloatRange(0, 1, max_open=True), help="Held-out fraction (0.15).")
@click.option("--seed", type=int, help="Seed of split, sampling and initialisation.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Feature cache (default ~/.cache/optiq).")
@click.pass_context
def train_model(ctx: click.Context, config, data, out, arch, resume, max_minutes, max_steps, device, labels,
                split_by, test_ratio, seed, cache_dir) -> None:
    """Train a next-state motion model. Any config key can follow as --KEY VALUE (e.g. --lr 1e-3,
    --model.d_model 256); an unknown key or a wrong type is an error naming it."""
    from .train import load_config, train

    named = {"arch": arch, "max_minutes": max_minutes, "max_steps": max_steps, "device": device,
             "labels": labels, "split_by": split_by, "test_ratio": test_ratio, "seed": seed}
    cfg = load_config(config, parse_overrides(ctx.args)).updated({k: v for k, v in named.items() if v is not None},
                                                                  "command line")
    result = train(cfg, list(data), out, resume=resume, cache_dir=cache_dir, progress=_progress(ctx))
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
        return
    best = "none" if result.best_val is None else f"{result.best_val:.4f}"
    what = "reconstruction" if getattr(result.model, "kind", "next_state") == "tokenizer" else "rollout"
    click.echo(f"{result.out}: {result.steps} steps ({result.stopped}), best validation {what} error {best}")


@click.command("model")
@click.option("--model", "model", required=True, type=click.Path(dir_okay=False), help="Checkpoint (.pt).")
@click.option("--data", "data", multiple=True, required=True, metavar="PATH",
              help="Dataset (or motion files) to evaluate on; repeatable, as in optiq train model (several datasets "
                   "are merged).")
@click.option("--split", default="test", show_default=True, type=click.Choice(["test", "val", "train", "all"]),
              help="Clips: a side of the split saved with the model, or all clips of --data.")
@click.option("--horizon", default=60, show_default=True, type=click.IntRange(min=1), help="Rollout frames.")
@click.option("--stride", default=10, show_default=True, type=click.IntRange(min=1),
              help="Frames between window starts.")
@click.option("--out", type=click.Path(dir_okay=False), help="Report JSON (docs/viz.md version 1).")
@click.option("--pred", type=click.Path(dir_okay=False),
              help="One continuous rollout per clip: a dataset (.parquet, .h5).")
@click.option("--steer", "steer", multiple=True, metavar="NAME=VALUE[,NAME=VALUE]",
              help="A label set to roll out under (repeatable; the first is the reference of the speed ratio): "
                   "adds a steering section to the report.")
@click.option("--steer-from", "steer_from", metavar="NAME=VALUE",
              help="Steer from the windows of the split's clips with this label (e.g. content=walk).")
@click.option("--guidance", default=0.0, show_default=True, type=float,
              help="Classifier-free guidance scale of the steering rollouts.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False))
def eval_model(model, data, split, horizon, stride, out, pred, steer, steer_from, guidance, device,
               cache_dir) -> None:
    """Evaluate a model: single-step and rollout errors against zero- and constant-velocity baselines; for a
    tokenizer (vqvae), reconstruction errors, codebook usage and perplexity."""
    from .evaluate import run

    sets = [_labels(item.split(",")) for item in steer]
    origin = _labels([steer_from]) if steer_from else None
    report = run(model, list(data) if len(data) > 1 else data[0], split=split, horizon=horizon, stride=stride, out=out, pred=pred,
                 cache_dir=cache_dir, device=device, steer=sets, steer_from=origin, guidance=guidance)
    if report.get("kind") == "tokenizer":
        _echo_reconstruction(report)
        return
    series = report["horizon"]["series"]
    for h in sorted({1, min(12, horizon), min(30, horizon), horizon}):
        cells = ", ".join(f"{k} {v[h - 1]:.1f}" for k, v in series.items())
        click.echo(f"MPJPE at {h} frames (mm): {cells}")
    ss = report["single_step"]
    click.echo(f"single step: residual R2 {ss['residual_r2']:.3f}, MPJPE {ss['mpjpe_mm']:.1f} mm; "
               f"{report['windows']} windows from {report['clips']} clips, {len(report['skipped'])} skipped")
    for key, row in report.get("steering", {}).get("rollouts", {}).items():
        click.echo(f"steering {key}: speed {row['speed']:.2f} m/s ({row['ratio']:.2f}x), "
                   f"forward {row['forward']:+.2f} m/s over {row['windows']} windows")


def _echo_reconstruction(report: dict) -> None:
    """The tokenizer's report in three lines (``evaluate.reconstruction_report``)."""
    r, cb = report["reconstruction"], report["codebook"]
    click.echo(f"reconstruction MPJPE {r['mpjpe_mm']:.1f} mm (mean pose {r['mean-pose_mpjpe_mm']:.1f}), root "
               f"{r['root_error_m']:.3f} m, velocity {r['velocity_error_m_s']:.3f} m/s, acceleration "
               f"{r['acceleration_error_m_s2']:.2f} m/s^2 (truth's {r['truth_acceleration_m_s2']:.2f})")
    click.echo("codebook usage " + ", ".join(f"{u:.0f}%" for u in cb["usage_percent"]) + " of "
               f"{cb['size']} codes, perplexity " + ", ".join(f"{p:.0f}" for p in cb["perplexity"]))
    click.echo(f"{report['clips']} clips, {report['frames']} frames, {cb['tokens']} codes")


@click.command("generate")
@click.option("--model", "model", required=True, type=click.Path(dir_okay=False), help="Checkpoint (.pt).")
@click.option("--context", required=True, metavar="DATASET:CLIP", help="Clip whose first frames start it.")
@click.option("--context-frames", type=click.IntRange(min=1), help="Frames of context (default: the model's).")
@click.option("--label", "labels", multiple=True, metavar="NAME=VALUE", help="Label to steer with (repeatable).")
@click.option("--frames", default=300, show_default=True, type=click.IntRange(min=1), help="Frames to generate.")
@click.option("--guidance", default=0.0, show_default=True, type=float,
              help="Classifier-free guidance scale (0: plain conditional).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Motion file (.bvh, .json).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False))
def generate_cmd(model, context, context_frames, labels, frames, guidance, out, device, cache_dir) -> None:
    """Roll a model out freely from the first frames of a clip, steered by labels."""
    from .generate import generate

    clip = generate(model, context, labels=_labels(labels), frames=frames, context_frames=context_frames,
                    guidance=guidance, out=out, cache_dir=cache_dir, device=device)
    click.echo(f"{out}: {clip.num_frames} frames at {clip.fps:g} fps")


def add_commands(cli: click.Group) -> None:
    """Attach ``optiq train model``, ``optiq eval model`` and ``optiq generate`` to ``cli``."""
    from optiq.cli.groups import shared_group

    shared_group(cli, "train").add_command(train_model)
    shared_group(cli, "eval").add_command(eval_model)
    cli.add_command(generate_cmd)
