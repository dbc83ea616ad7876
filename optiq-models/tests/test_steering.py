"""Label steering on real clips: a tiny MLP trained for seconds on Bandai-Namco walks and runs, rolled out from the
same walking contexts with ``content=walk`` and ``content=run``, runs faster under the run label. The speeds that
``steering`` reads from the predicted features are checked against the hips' world positions of the same rollouts
turned into clips (``clip_rollout``: features -> motion -> forward kinematics)."""

from __future__ import annotations

import numpy as np
import pytest
from optiq import OptiqError
from optiq_models import data as D
from optiq_models.evaluate import clip_rollout, load_model, steering
from optiq_models.train import load_config, train

# Input noise (normalised units) on the context is the lever that lets the label override the context's speed
# (docs/models.md, "Label steering"); without it quick models copy the context.
STEER = ["model.hidden=128", "model.layers=2", "window=16", "batch_size=32", "warmup_steps=20", "lr=3e-3",
         "labels=[content]", "split_by=label:content", "eval_interval=100", "input_noise=1.0", "noise_group=vel",
         "model.label_dropout=0.3", "rollout_fraction=0.5", "seed=0"]


@pytest.fixture(scope="module")
def steered(walk_run, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("steer")
    cfg = load_config("mlp", [*STEER, "max_steps=800"])
    train(cfg, walk_run, tmp / "m.pt", cache_dir=tmp / "cache", progress=False)
    return tmp / "m.pt", tmp / "cache"


def test_the_run_label_speeds_up_a_walking_context(walk_run, steered):
    path, cache = steered
    loaded = load_model(path)
    source = D.open_source(walk_run, cache_dir=cache)
    walks = [n for n in source.names if source.labels[n]["content"] == "walk"]
    result = steering(loaded, source, walks, [{"content": "walk"}, {"content": "run"}], horizon=60, stride=20,
                      cache_dir=cache)
    walk, run = result["content=walk"], result["content=run"]
    assert walk["windows"] == run["windows"] > 10
    # Measured with seeds 0, 1, 2: 1.47x, 1.54x, 1.82x (walk 0.82-1.30 m/s); without input noise 0.9-1.1x. The
    # data's walks move at about 1.1 m/s and its runs at 2.3 m/s; the test asks for the direction with a margin,
    # the benchmark measures the 1.5x (docs/results.md).
    assert run["speed"] > 1.25 * walk["speed"], result
    assert run["ratio"] == pytest.approx(run["speed"] / walk["speed"], rel=1e-3)
    # The walking context keeps moving forwards under its own label (forward is measured along the velocity of the
    # context's last frame, which sways with the gait: measured 0.42 m/s of 0.86).
    assert walk["forward"] > 0.2

    # The same rollout as a clip: the hips' horizontal speed from world positions agrees with the features'.
    name = walks[0]
    ctx = loaded.model.context
    for label in ("walk", "run"):
        clip = clip_rollout(loaded, source, name, frames=60, labels={"content": label})
        hips = clip.world_positions()[ctx - 1:, clip.skeleton.index("Hips"), :2]
        world_speed = np.linalg.norm(np.diff(hips, axis=0), axis=1).mean() * clip.fps
        one = steering(loaded, source, [name], [{"content": label}], horizon=60, stride=10_000, cache_dir=cache)
        assert world_speed == pytest.approx(one[f"content={label}"]["speed"], rel=0.05)
    source.close()


def test_steering_refuses_an_unknown_label(walk_run, steered):
    path, cache = steered
    source = D.open_source(walk_run, cache_dir=cache)
    with pytest.raises(OptiqError, match="known values: run, walk"):
        steering(load_model(path), source, source.names, [{"content": "swim"}], cache_dir=cache)
    source.close()


def test_eval_model_steer_adds_a_steering_section(walk_run, steered, tmp_path):
    from click.testing import CliRunner
    from optiq.cli.main import build_cli

    path, cache = steered
    cli = build_cli()
    report = tmp_path / "r.json"
    args = ["eval", "model", "--model", str(path), "--data", str(walk_run), "--split", "all", "--horizon", "60",
            "--stride", "20", "--cache-dir", str(cache), "--steer", "content=walk", "--steer", "content=run",
            "--steer-from", "content=walk", "--out", str(report)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    import json

    section = json.loads(report.read_text())["steering"]
    assert section["from"] == {"content": "walk"} and section["guidance"] == 0.0
    # The same numbers as the Python API on the same clips and windows.
    source = D.open_source(walk_run, cache_dir=cache)
    walks = [n for n in source.names if source.labels[n]["content"] == "walk"]
    expected = steering(load_model(path), source, walks, [{"content": "walk"}, {"content": "run"}], horizon=60,
                        stride=20, cache_dir=cache)
    source.close()
    assert section["rollouts"] == expected
    assert "steering content=run: speed" in result.output

    for extra, message in ((["--steer", "content=swim"], "known values: run, walk"),
                           (["--steer", "content=run", "--steer-from", "content=swim"], "no clip of the all split")):
        bad = CliRunner().invoke(cli, [*args[:-2], *extra, "--out", str(tmp_path / "bad.json")])
        assert bad.exit_code == 2, bad.output
        assert bad.stderr.strip().startswith("optiq: error:") and message in bad.stderr, bad.stderr
        assert not (tmp_path / "bad.json").exists()
