"""``optiq train rl`` and ``optiq_rl.train``: a short PPO run saves, reloads with its normalisation and acts the
same; ``--resume`` continues the step count; configs with overrides; bad input is one line, exit 2, nothing
written. Runs are a few hundred env steps (seconds)."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from optiq_rl.train import CONFIGS, ConfigError, RLConfig, load_config, load_policy, read_meta, train

#: A tiny run: 2 envs x 64 steps per update, small networks, no TensorBoard (speed).
TINY = {"algo_kwargs.n_steps": 64, "algo_kwargs.batch_size": 64, "algo_kwargs.n_epochs": 2,
        "policy.net_arch": [32, 32], "tensorboard": False, "n_envs": 2}


@pytest.fixture(scope="module")
def humanoid_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "humanoid.zip"
    cfg = RLConfig().updated({"env": "Humanoid-v5", "total_steps": 256, "checkpoint_interval": 128, **TINY})
    return train(cfg, out), out


def test_short_ppo_saves_reloads_with_normalisation_and_acts_the_same(humanoid_run):
    result, out = humanoid_run
    assert result.steps == 256 and out.is_file()
    trained = result.model  # the in-memory SB3 model and its VecNormalize, as training left them
    vn = trained.get_env()
    policy = load_policy(out)
    meta = policy.meta
    assert meta["env"] == "Humanoid-v5" and meta["algo"] == "ppo" and meta["steps"] == 256
    assert np.array_equal(meta["normalize"]["obs_mean"], vn.obs_rms.mean)
    assert np.array_equal(meta["normalize"]["obs_var"], vn.obs_rms.var)
    assert meta["normalize"]["obs_count"] == vn.obs_rms.count > 256  # statistics were learnt, and kept
    env = policy.make_env()
    obs = np.stack([env.reset(seed=s)[0] for s in range(8)])
    env.close()
    want, _ = trained.predict(vn.normalize_obs(obs), deterministic=True)
    assert np.array_equal(policy.act(obs), want)
    # SB3's own loader reads the file as a plain SB3 zip (optiq.json is one more member).
    from stable_baselines3 import PPO

    plain = PPO.load(out, device="cpu")
    assert np.array_equal(plain.predict(vn.normalize_obs(obs), deterministic=True)[0], want)


def test_progress_log_and_checkpoint(humanoid_run):
    result, out = humanoid_run
    rows = [json.loads(x) for x in out.with_name("humanoid.progress.jsonl").read_text().splitlines()]
    assert [r["steps"] for r in rows] == [128, 256]  # one line per rollout of 2 x 64 steps
    assert all(r["steps_per_s"] > 0 for r in rows)
    assert read_meta(out.with_name("humanoid.checkpoint.zip"))["steps"] == 256


def test_keep_checkpoints_keeps_a_loadable_policy_at_each(tmp_path):
    out = tmp_path / "humanoid.zip"
    cfg = RLConfig().updated({"env": "Humanoid-v5", "total_steps": 384, "checkpoint_interval": 128,
                              "keep_checkpoints": True, **TINY})
    train(cfg, out)
    kept = sorted(p.name for p in tmp_path.glob("humanoid.[0-9]*.zip"))
    assert kept == ["humanoid.128.zip", "humanoid.256.zip", "humanoid.384.zip"]
    assert [read_meta(tmp_path / k)["steps"] for k in kept] == [128, 256, 384]
    env = load_policy(out).make_env()
    obs = env.reset(seed=0)[0][None]
    env.close()
    # the last one kept is the policy the run ends with; an earlier one acts otherwise (it learnt less)
    assert np.array_equal(load_policy(tmp_path / kept[-1]).act(obs), load_policy(out).act(obs))
    assert not np.array_equal(load_policy(tmp_path / kept[0]).act(obs), load_policy(out).act(obs))


def test_resume_continues_the_step_count(humanoid_run, tmp_path):
    _, first = humanoid_run
    out = tmp_path / "humanoid.zip"
    out.write_bytes(first.read_bytes())
    (tmp_path / "humanoid.progress.jsonl").write_bytes(first.with_name("humanoid.progress.jsonl").read_bytes())
    before = read_meta(out)
    cfg = RLConfig().updated({"env": "Humanoid-v5", "total_steps": 384, "checkpoint_interval": 0, **TINY})
    result = train(cfg, out, resume=True)
    after = read_meta(out)
    assert before["steps"] == 256 and result.steps == after["steps"] == 384  # 128 more steps, not 384
    assert after["normalize"]["obs_count"] > before["normalize"]["obs_count"]  # statistics continued too
    rows = [json.loads(x)["steps"] for x in (tmp_path / "humanoid.progress.jsonl").read_text().splitlines()]
    assert rows == [128, 256, 384]


def test_resume_after_a_kill_drops_the_rows_past_the_checkpoint(humanoid_run, tmp_path):
    """A run killed after its last checkpoint had logged rollouts the resumed run does again: the curve keeps the
    rows up to the checkpoint, so its steps stay increasing."""
    _, first = humanoid_run
    out = tmp_path / "humanoid.zip"
    (tmp_path / "humanoid.checkpoint.zip").write_bytes(first.with_name("humanoid.checkpoint.zip").read_bytes())
    rows = first.with_name("humanoid.progress.jsonl").read_text().splitlines()
    killed = [*rows, json.dumps({**json.loads(rows[-1]), "steps": 384})]  # logged, then killed before saving
    (tmp_path / "humanoid.progress.jsonl").write_text("\n".join(killed) + "\n")
    cfg = RLConfig().updated({"env": "Humanoid-v5", "total_steps": 384, "checkpoint_interval": 0, **TINY})
    result = train(cfg, out, resume=True)
    assert result.steps == 384
    steps = [json.loads(x)["steps"] for x in (tmp_path / "humanoid.progress.jsonl").read_text().splitlines()]
    assert steps == [128, 256, 384]


def test_resume_without_anything_to_resume_fails(fails, tmp_path):
    out = tmp_path / "none.zip"
    fails(["train", "rl", "--env", "Humanoid-v5", "--total-steps", "64", "--out", str(out), "--resume"],
          "no checkpoint none.checkpoint.zip", out)


def test_track_env_through_the_command(cli, data_dir, tmp_path):
    walk = data_dir / "deepmimic" / "humanoid3d_walk.txt"
    out = tmp_path / "track.zip"
    args = ["train", "rl", "--env", "optiq/Track-v0", "--reference", str(walk), "--character", "deepmimic",
            "--total-steps", "128", "--n-envs", "1", "--seed", "3", "--out", str(out),
            *[w for k, v in TINY.items() if k != "n_envs" for w in (f"--{k}", json.dumps(v))]]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{out}: 128 env steps")
    meta = read_meta(out)
    assert meta["env"] == "optiq/Track-v0" and meta["character"] == "deepmimic"
    # An absolute path as given (a symlinked data folder stays as the user named it).
    assert meta["reference"] == os.path.abspath(walk) and meta["config"]["seed"] == 3
    assert meta["config"]["algo_kwargs"]["gamma"] == 0.95  # no --config: Track-v0's shipped track_deepmimic_walk
    with zipfile.ZipFile(out) as z:
        assert {"data", "policy.pth", "optiq.json"} <= set(z.namelist())
    policy = load_policy(out)
    env = policy.make_env()  # from the file alone
    assert env.observation_space.shape == policy.model.observation_space.shape
    env.close()


def test_config_files_and_overrides():
    cfg = load_config("track_deepmimic_walk", ["algo_kwargs.learning_rate=3e-5", "total_steps=2e6"])
    assert cfg.env == "optiq/Track-v0" and cfg.algo_kwargs["gamma"] == 0.95
    assert cfg.algo_kwargs["learning_rate"] == 3e-5 and cfg.total_steps == 2_000_000
    assert cfg.policy["net_arch"] == {"pi": [1024, 512], "vf": [1024, 512]}
    for path in sorted(CONFIGS.glob("*.yaml")):
        load_config(path).check()  # every shipped config is valid
    with pytest.raises(ConfigError, match="unknown key 'bogus'"):
        load_config(None, ["bogus=1"])
    with pytest.raises(ConfigError, match="key 'n_envs' must be int"):
        load_config(None, ["n_envs=two"])


def test_bad_input_is_one_line(fails, humanoid_run, tmp_path):
    out = tmp_path / "p.zip"
    base = ["train", "rl", "--env", "Humanoid-v5", "--total-steps", "64", "--out", str(out)]
    fails([*base, "--bogus", "1"], "unknown key 'bogus'", out)
    fails([*base, "--algo_kwargs.bogus", "1"], "unknown ppo setting(s) algo_kwargs.bogus", out)
    fails([*base, "--config", "nope"], "no config file 'nope'", out)
    fails(["train", "rl", "--env", "optiq/Track-v0", "--total-steps", "64", "--out", str(out)],
          "needs reference", out)
    _, policy = humanoid_run  # a Humanoid-v5 policy in another env: the observation shapes differ
    report = tmp_path / "r.json"
    line = fails(["eval", "rl", "--policy", str(policy), "--env", "optiq/Locomotion-v0", "--episodes", "1",
                  "--out", str(report)], "trained on Humanoid-v5 (observation (348,)", report)
    assert "optiq/Locomotion-v0 has observation" in line
    fails(["eval", "rl", "--policy", str(tmp_path / "missing.zip")], "no such policy file")
    (tmp_path / "other.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    fails(["eval", "rl", "--policy", str(tmp_path / "other.zip")], "not a policy file")


def test_sac_runs_with_tensorboard_logs(tmp_path):
    cfg = RLConfig().updated({"env": "Humanoid-v5", "algo": "sac", "total_steps": 64, "tensorboard": True,
                              "algo_kwargs.learning_starts": 32, "algo_kwargs.batch_size": 16,
                              "policy.net_arch": [16, 16]})
    result = train(cfg, tmp_path / "sac.zip")
    policy = load_policy(result.out)
    assert policy.meta["algo"] == "sac" and result.steps == 64
    if __import__("importlib").util.find_spec("tensorboard"):  # SB3's TensorBoard logs beside the policy
        assert list((tmp_path / "sac.tb").rglob("events.out.tfevents.*"))
    env = policy.make_env()
    obs, _ = env.reset(seed=0)
    assert policy.act(obs).shape == env.action_space.shape
    env.close()

    # The replay buffer is saved beside the policy and reloaded on resume: the resumed run starts from the 64
    # transitions it had (not from an empty buffer) and adds its own.
    assert (tmp_path / "sac.replay.pkl").is_file()
    more = cfg.updated({"total_steps": 96})
    again = train(more, tmp_path / "sac.zip", resume=True)
    assert again.steps == 96 and again.model.replay_buffer.size() == 96


def test_mlflow_tracking(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    cfg = RLConfig().updated({"env": "Humanoid-v5", "total_steps": 128, "track": "mlflow", **TINY})
    out = tmp_path / "tracked.zip"
    train(cfg, out)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = mlflow.tracking.MlflowClient()
    run = client.search_runs([client.get_experiment_by_name("optiq-rl").experiment_id])[0]
    assert run.info.status == "FINISHED" and run.data.params["env"] == "Humanoid-v5"
    rows = [json.loads(x) for x in out.with_name("tracked.progress.jsonl").read_text().splitlines()]
    history = client.get_metric_history(run.info.run_id, "return_mean")
    assert [(m.step, m.value) for m in history] == [(r["steps"], pytest.approx(r["return_mean"])) for r in rows]


def test_resume_in_another_env_is_one_line(fails, humanoid_run, tmp_path):
    _, first = humanoid_run
    out = tmp_path / "h.zip"
    out.write_bytes(first.read_bytes())
    line = fails(["train", "rl", "--env", "optiq/Locomotion-v0", "--total-steps", "512", "--out", str(out),
                  "--resume", "--tensorboard", "false"], "cannot resume in env optiq/Locomotion-v0")
    assert line.startswith(f"optiq: error: {out}")


def test_policy_file_stores_file_settings_as_absolute_paths(data_dir, monkeypatch):
    """A reference and a character given relative to the working folder are found again from another one; a
    registered character name stays a name."""
    from pathlib import Path

    from optiq_rl.train import env_settings

    folder = data_dir / "deepmimic"
    monkeypatch.chdir(folder)
    stored = env_settings("optiq/Track-v0", {"reference": ["humanoid3d_walk.txt"], "character": "humanoid3d_character.txt"})
    assert Path(stored["reference"][0]).is_absolute() and Path(stored["character"]).is_absolute()
    assert Path(stored["reference"][0]).samefile(folder / "humanoid3d_walk.txt")
    assert Path(stored["character"]).samefile(folder / "humanoid3d_character.txt")
    assert env_settings("optiq/Track-v0", {"character": "deepmimic"})["character"] == "deepmimic"


def test_reward_schedule_follows_the_training_progress(data_dir, tmp_path):
    """Track-v0 with ``reward_schedule: tracking_to_task``: before every rollout the trainer tells the envs how far
    the run is, so the weights move (the last of 4 rollouts of 64 steps starts at 192 / 256 = 0.75)."""
    cfg = RLConfig().updated({"env": "optiq/Track-v0", "total_steps": 256, "n_envs": 1,
                              "env_kwargs.reference": str(data_dir / "deepmimic" / "humanoid3d_walk.txt"),
                              "env_kwargs.reward_schedule": "tracking_to_task",
                              **{k: v for k, v in TINY.items() if k != "n_envs"}})
    venv = train(cfg, tmp_path / "scheduled.zip").model.get_env()
    assert venv.get_attr("progress") == [0.75]
    weights = venv.get_attr("reward_fn")[0].weights
    # tracking_to_task: the tracking weights times 0.1 at 2/3 and 0 at 1, linear between: x0.075 at 0.75.
    assert weights["pose"] == pytest.approx(0.65 * 0.075) and weights["task"] == pytest.approx(0.925)


def test_a_character_object_is_stored_by_name_or_file(data_dir, tmp_path):
    """A Character passed as an object (the Python API) is stored as the name or file that rebuilds the same
    MJCF; one built in Python that nothing rebuilds is one line saying how to store it, before any training."""
    import dataclasses

    from optiq_rl.characters import character
    from optiq_rl.train import PolicyError, env_settings

    assert env_settings("optiq/Track-v0", {"character": character("deepmimic")})["character"] == "deepmimic"
    path = data_dir / "deepmimic" / "humanoid3d_character.txt"
    stored = env_settings("optiq/Track-v0", {"character": character(path)})["character"]
    assert os.path.samefile(stored, path)
    changed = dataclasses.replace(character("deepmimic"), mjcf_xml=character("deepmimic").mjcf_xml.replace(
        'name="chest"', 'name="torso"', 1))
    with pytest.raises(PolicyError, match=r"Character.save\('body.xml'\)"):
        env_settings("optiq/Track-v0", {"character": changed})
    with pytest.raises(PolicyError, match="built in Python"):
        train(RLConfig(env="optiq/Track-v0", env_kwargs={"character": changed}, total_steps=64),
              tmp_path / "p.zip")
    assert not (tmp_path / "p.zip").exists()
