"""``optiq model``: inspect and export model checkpoints. Imports only click at module level; torch is imported
when a command runs, so ``optiq --help`` and ``optiq plugins list`` stay light."""

from __future__ import annotations

import json

import click


@click.group()
def model() -> None:
    """Model checkpoints: what they hold, and export to TorchScript or ONNX (optiq-models)."""


@model.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info(path: str, as_json: bool) -> None:
    """What checkpoint PATH holds: architecture, sizes, labels, skeleton, split, versions."""
    from .checkpoint import load_checkpoint

    net, ckpt = load_checkpoint(path)
    summary = describe(net, ckpt)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{path}: {summary['arch']} ({summary['kind']}), {summary['parameters']:,} parameters, "
               f"format {summary['format_version']}")
    click.echo(f"  features: F = {summary['feature_dim']}, context {summary['context']} frames, "
               f"encoder features_dim {summary['encoder_features_dim']}")
    if summary["feature_spec"]:
        click.echo("  feature spec: " + ", ".join(f"{k}={v}" for k, v in summary["feature_spec"].items()))
    labels = summary["labels"]
    click.echo("  labels: " + ("; ".join(f"{k} = {', '.join(v)}" for k, v in labels.items()) if labels else "none"))
    if summary["frame_labels"]:
        click.echo("  frame labels: " + ", ".join(summary["frame_labels"])
                   + "".join(f"; {k}: float{' (cyclic)' if v.get('cyclic') else ''}"
                             for k, v in summary["float_labels"].items()))
    sk = summary["skeleton"]
    click.echo(f"  skeleton: {sk['joints']} joints ({', '.join(sk['names'][:4])}{', ...' if sk['joints'] > 4 else ''})"
               if sk else "  skeleton: none stored")
    if summary["split"]:
        click.echo("  split: " + ", ".join(f"{k} {v}" for k, v in summary["split"].items()))
    click.echo("  model config: " + ", ".join(f"{k}={v}" for k, v in summary["model_config"].items()))
    click.echo("  versions: " + ", ".join(f"{k} {v}" for k, v in summary["versions"].items()))


def describe(net, ckpt) -> dict:
    """The JSON-able summary ``optiq model info`` prints."""
    split = ckpt.split if isinstance(ckpt.split, dict) else {}
    counts = {k: len(v) for k, v in split.items() if isinstance(v, list)}
    sk = ckpt.skeleton
    spec = ckpt.feature_spec
    spec = spec.to_dict() if hasattr(spec, "to_dict") else spec if isinstance(spec, dict) else {}
    return {
        "arch": ckpt.arch, "target": ckpt.target, "kind": ckpt.kind, "format_version": ckpt.format_version,
        "parameters": sum(p.numel() for p in net.parameters()), "feature_dim": ckpt.feature_dim,
        "feature_spec": spec,
        "context": int(getattr(net, "context", 0)),
        "encoder_features_dim": int(getattr(getattr(net, "encoder", None), "features_dim", 0)),
        "labels": {k: v[1:] for k, v in ckpt.vocab.labels.items()},
        "frame_labels": list(ckpt.vocab.frame), "float_labels": dict(ckpt.vocab.floats),
        "skeleton": None if sk is None else {"joints": sk.num_joints, "names": list(sk.names)},
        "split": counts, "model_config": {k: (list(v) if isinstance(v, tuple) else v)
                                          for k, v in ckpt.model_config.items()},
        "versions": ckpt.versions, "extra": sorted(ckpt.extra),
    }


@model.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["torchscript", "onnx"]), default="torchscript",
              show_default=True, help="TorchScript (.pt) or ONNX (.onnx, checked with onnxruntime).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output file (.pt or .onnx).")
def export(path: str, fmt: str, out: str) -> None:
    """Export the one-step predictor of checkpoint PATH: ``next = f(x [B, context, F], labels [B, L],
    values [B, Lf])`` (labels and values where the model has them).

    The export is compared with the eager model on random windows and labels before it is written (at most
    1e-5 apart); the rollout loop stays in Python.
    """
    from .export import export_model

    diff = export_model(path, out, fmt)
    click.echo(f"{out}: {fmt} one-step predictor; max |export - eager| = {diff:.2g} on random windows")
