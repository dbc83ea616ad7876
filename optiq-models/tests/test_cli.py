"""``optiq train model``, ``optiq eval model`` and ``optiq generate`` end to end on real Bandai-Namco takes, the
shared ``train``/``eval`` groups, and bad input: one line ``optiq: error: ...``, exit 2, no partial file."""

from __future__ import annotations

import json

import click
import pytest
import torch
from click.testing import CliRunner
from optiq.cli.groups import eval_group, shared_group, train_group
from optiq.config import parse_overrides
from optiq_models.cli_train import add_commands

TINY = ["--config", "mlp", "--max-steps", "12", "--labels", "content", "--split-by", "label:content",
        "--model.hidden", "16", "--model.layers=1", "window=8", "--batch-size", "4", "--eval-interval", "6",
        "--eval-windows", "4", "--val-horizon", "6"]



@pytest.fixture(scope="module")
def cli():
    from optiq.cli.main import build_cli

    root = build_cli()  # optiq_models.plugin attaches the commands to core's shared groups
    assert "model" in root.commands["train"].commands and "model" in root.commands["eval"].commands
    return root



@pytest.fixture(scope="module")
def trained(cli, walk_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    out = folder / "m.pt"
    result = CliRunner().invoke(cli, ["train", "model", "--data", str(walk_run), "--out", str(out),
                                      "--cache-dir", str(folder / "cache"), *TINY])
    assert result.exit_code == 0, result.output
    return out, folder


def _fails(cli, args, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("optiq: error: "), lines
    assert message in lines[0], lines[0]
    return lines[0]


def test_train_writes_model_split_and_metrics(trained):
    out, folder = trained
    assert out.is_file() and (folder / "m.split.json").is_file() and (folder / "m.resume.pt").is_file()
    lines = (folder / "m.metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 12
    ck = torch.load(out, weights_only=True)
    assert ck["config"]["window"] == 8 and ck["config"]["labels"] == ["content"]


def test_eval_and_generate(cli, trained, walk_run, tmp_path):
    model, folder = trained
    report, pred = tmp_path / "r.json", tmp_path / "p.parquet"
    result = CliRunner().invoke(cli, ["eval", "model", "--model", str(model), "--data", str(walk_run), "--split",
                                      "test", "--horizon", "10", "--out", str(report), "--pred", str(pred),
                                      "--cache-dir", str(folder / "cache")])
    assert result.exit_code == 0, result.output
    assert "MPJPE at 10 frames (mm): mlp " in result.output and "zero-velocity" in result.output
    assert json.loads(report.read_text())["horizon"]["steps"][-1] == 10 and pred.is_file()
    out = tmp_path / "run.bvh"
    result = CliRunner().invoke(cli, ["generate", "--model", str(model), "--context",
                                      f"{walk_run}:dataset-1_walk_happy_001", "--label", "content=run",
                                      "--frames", "15", "--out", str(out), "--cache-dir", str(folder / "cache")])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "19 frames at 30 fps" in result.output


def test_bad_input_is_one_line_and_exit_2(cli, trained, walk_run, tmp_path):
    model, folder = trained
    base = ["train", "model", "--data", str(walk_run), "--cache-dir", str(folder / "cache")]
    _fails(cli, [*base, "--out", str(tmp_path / "m.pt"), *TINY, "--lrr", "1"], "unknown key 'lrr'")
    _fails(cli, [*base, "--out", str(tmp_path / "m.pt"), *TINY, "--batch-size", "many"],
           "key 'batch_size' must be int, got 'many'")
    _fails(cli, [*base, "--out", str(tmp_path / "no" / "m.pt"), *TINY], "does not exist")
    _fails(cli, [*base, "--out", str(tmp_path / "m.pt"), *TINY, "--labels", "movement"],
           "asked to condition on label 'movement'")
    _fails(cli, [*base, "--out", str(tmp_path / "m.pt"), *TINY, "--model.width", "3"], "unknown key 'width'")
    _fails(cli, ["generate", "--model", str(model), "--context", f"{walk_run}:dataset-1_walk_happy_001",
                 "--label", "content=fly", "--frames", "5", "--out", str(tmp_path / "g.bvh")],
           "known values: run, walk")
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(model.read_bytes()[:1000])
    _fails(cli, ["eval", "model", "--model", str(truncated), "--data", str(walk_run)], str(truncated))
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "g.bvh").exists()


def test_shared_groups_are_reused_not_clashed():
    root = click.Group("root")
    assert shared_group(root, "train") is train_group and shared_group(root, "train") is train_group
    assert shared_group(root, "eval") is eval_group
    add_commands(root)
    assert "model" in train_group.commands and "model" in eval_group.commands and "generate" in root.commands
    with pytest.raises(KeyError, match="shared groups: train, eval"):
        shared_group(root, "data")


def test_override_words():
    assert parse_overrides(["--lr", "1e-3", "--model.d_model=64", "window=8", "--rollout-backprop"]) == \
        ["lr=1e-3", "model.d_model=64", "window=8", "rollout-backprop=true"]
