"""``optiq eval rl`` and ``optiq_rl.evaluate``: the report's fields for Humanoid-v5 and for tracking (PHC / UHC
metrics checked against values computed by hand), learning curves over seeds, and the report read by
``optiq viz plots`` as version 2 (version 1 still read)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from optiq_rl.evaluate import learning_curves, tracking_metrics
from optiq_rl.train import RLConfig, load_policy, train

TINY = {"algo_kwargs.n_steps": 64, "algo_kwargs.batch_size": 64, "algo_kwargs.n_epochs": 1,
        "policy.net_arch": [32, 32], "tensorboard": False}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two seeds of a tiny Humanoid-v5 run (the learning curve's spread) and a tiny Track-v0 run on the walk."""
    folder = tmp_path_factory.mktemp("eval")
    out = []
    for seed in (0, 1):
        cfg = RLConfig().updated({"env": "Humanoid-v5", "total_steps": 256, "seed": seed, **TINY})
        out.append(train(cfg, folder / f"h{seed}.zip").out)
    return out


@pytest.fixture(scope="module")
def track_policy(tmp_path_factory, data_dir):
    walk = data_dir / "deepmimic" / "humanoid3d_walk.txt"
    cfg = RLConfig().updated({"env": "optiq/Track-v0", "env_kwargs.reference": str(walk), "total_steps": 64,
                              **TINY})
    return train(cfg, tmp_path_factory.mktemp("track") / "walk.zip").out


def test_tracking_metrics_by_hand():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(20, 15, 3))
    shift = np.array([0.3, 0.4, 0.0])  # 0.5 m away everywhere, same pose
    m = tracking_metrics(ref + shift, ref, terminated=False)
    assert m["mpjpe_global_mm"] == pytest.approx(500.0) and m["mpjpe_local_mm"] == pytest.approx(0.0, abs=1e-9)
    assert m["accel_error_mm"] == pytest.approx(0.0, abs=1e-9)
    assert m["success_episode"] == 0.0  # 0.5 m is not under 0.5 m
    m = tracking_metrics(ref + 0.5 * shift, ref, terminated=False)
    assert m["success_episode"] == 1.0 and m["mpjpe_global_mm"] == pytest.approx(250.0)
    assert tracking_metrics(ref, ref, terminated=True)["success_episode"] == 0.0  # a fall fails the clip
    bent = ref.copy()
    bent[10, 3] += [0.0, 0.0, 0.01]  # one joint 1 cm off at one frame: acceleration error 2 + 1 + 1 cm over 3 steps
    m = tracking_metrics(bent, ref, terminated=False)
    assert m["accel_error_mm"] == pytest.approx((20.0 + 10.0 + 10.0) / (18 * 15))
    assert m["mpjpe_local_mm"] == pytest.approx(10.0 / (20 * 15))


def test_eval_humanoid_report(cli, runs, tmp_path):
    out = tmp_path / "report.json"
    result = CliRunner().invoke(cli, ["eval", "rl", "--policy", str(runs[0]), "--episodes", "2", "--out", str(out),
                                      "--curve", str(runs[0]), "--curve", str(runs[1])])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["version"] == 2 and report["rl"]["env"] == "Humanoid-v5" and report["rl"]["steps_trained"] == 256
    m = report["rl"]["policies"]["policy"]
    assert {"return", "return_std", "length", "falls"} <= set(m) and 0 <= m["falls"] <= 2 and m["length"] > 0
    curves = report["curves"]
    assert curves["runs"] == 2 and curves["unit"] == "env steps"
    assert curves["steps"][0] == 64 and curves["steps"][-1] == 256  # one progress row per 64-step rollout
    # The mean and spread over the two seeds, from their progress files.
    ends = [json.loads(p.with_name(p.stem + ".progress.jsonl").read_text().splitlines()[-1])["return_mean"]
            for p in runs]
    assert curves["series"]["return"][-1] == pytest.approx(np.mean(ends))
    assert curves["std"]["return"][-1] == pytest.approx(np.std(ends))
    assert learning_curves([tmp_path / "none.zip"]) is None


def test_eval_tracking_report_with_baseline(cli, track_policy, tmp_path):
    out = tmp_path / "track.json"
    result = CliRunner().invoke(cli, ["eval", "rl", "--policy", str(track_policy), "--episodes", "2",
                                      "--baseline", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    for name in ("policy", "zero action"):
        m = report["rl"]["policies"][name]
        assert {"success", "mpjpe_global_mm", "mpjpe_local_mm", "accel_error_mm", "falls"} <= set(m)
        assert 0.0 <= m["success"] <= 1.0 and m["mpjpe_global_mm"] < 1000.0 * m["max_body_error_m"] + 1e-6
    # The zero action's numbers again, by hand: the same seeds (0, 1), the bodies' MuJoCo positions against the
    # reference frame the env scored each step on, and the env's own per-step largest error (info["body_error"]).
    env = load_policy(track_policy).make_env()
    mpjpe, worst = [], []
    for seed in (0, 1):
        env.reset(seed=seed)
        inner, errors, largest, done = env.unwrapped, [], 0.0, False
        while not done:
            _, _, terminated, truncated, info = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
            errors.append(np.linalg.norm(inner.sim.data.xpos[inner.sim.char.body_ids()]
                                         - inner.ref.pos[info["frame"]], axis=-1))
            largest, done = max(largest, info["body_error"]), terminated or truncated
        mpjpe.append(1000.0 * np.mean(errors))
        worst.append(largest)
    env.close()
    zero = report["rl"]["policies"]["zero action"]
    assert zero["mpjpe_global_mm"] == pytest.approx(np.mean(mpjpe), rel=1e-9)
    assert zero["max_body_error_m"] == pytest.approx(np.mean(worst), rel=1e-9)


def test_viz_plots_reads_version_2_and_1(cli, runs, tmp_path):
    from optiq_viz.plots import check_report, plot_errors

    out = tmp_path / "report.json"
    assert CliRunner().invoke(cli, ["eval", "rl", "--policy", str(runs[0]), "--episodes", "1", "--out",
                                    str(out)]).exit_code == 0
    html = tmp_path / "plots.html"
    result = CliRunner().invoke(cli, ["viz", "plots", "--report", str(out), "--out", str(html)])
    assert result.exit_code == 0, result.output
    fig = plot_errors(json.loads(out.read_text()))
    band, line = fig.data[:2]  # the spread as a filled band under the mean curve
    assert band.fill == "toself" and list(line.x) == json.loads(out.read_text())["curves"]["steps"]
    v1 = {"version": 1, "horizon": {"steps": [1, 2], "series": {"model": [1.0, 2.0]}}}
    assert check_report(v1)["version"] == 1
    v1_curves = {**v1, "curves": {"steps": [1], "series": {"return": [1.0]}}}
    assert "curves" not in check_report(v1_curves)  # curves are a version 2 section


def test_eval_locomotion_velocity_and_energy(tmp_path):
    from optiq_rl.evaluate import evaluate

    cfg = RLConfig().updated({"env": "optiq/Locomotion-v0", "total_steps": 64, **TINY})
    policy = train(cfg, tmp_path / "loco.zip").out
    m = evaluate(policy, episodes=1)["rl"]["policies"]["policy"]
    # The same episode by hand (seed 0, deterministic actions): |v_xy - v_target| and the cost of transport from
    # MuJoCo's state: sum |torque x joint speed| / (m g max(|v|, 0.1 m/s)).
    pol = load_policy(policy)
    env = pol.make_env()
    obs, _ = env.reset(seed=0)
    sim, speed_errors, cots, done = env.unwrapped.sim, [], [], False
    mass = sim.model.body_mass.sum()
    while not done:
        obs, _, terminated, truncated, info = env.step(pol.act(obs))
        v = sim.data.qvel[:2]
        speed_errors.append(np.linalg.norm(v - info["target_velocity"]))
        power = np.abs(sim.data.qfrc_actuator[sim.controller.dofs] * sim.data.qvel[sim.controller.dofs]).sum()
        cots.append(power / (mass * 9.81 * max(np.linalg.norm(v), 0.1)))
        done = terminated or truncated
    env.close()
    assert m["length"] == len(cots) >= 1
    assert m["velocity_error"] == pytest.approx(np.mean(speed_errors), rel=1e-9)
    assert m["energy"] == pytest.approx(np.mean(cots), rel=1e-6) and m["energy"] > 0.0


def test_baseline_holds_the_reference_whatever_the_action_mode(track_policy, data_dir, tmp_path):
    """The zero-action baseline is the PD controller held at the reference: for a policy trained with absolute
    targets (whose zero action is the middle of every joint's range) it runs with residual targets, so it gives
    the numbers of a residual policy's baseline, episode for episode."""
    from optiq_rl.evaluate import evaluate

    walk = data_dir / "deepmimic" / "humanoid3d_walk.txt"
    cfg = RLConfig().updated({"env": "optiq/Track-v0", "env_kwargs.reference": str(walk),
                              "env_kwargs.action_mode": "absolute", "total_steps": 64, **TINY})
    absolute = train(cfg, tmp_path / "absolute.zip").out
    theirs = evaluate(absolute, episodes=2, baseline=True)["rl"]["policies"]["zero action"]
    ours = evaluate(track_policy, episodes=2, baseline=True)["rl"]["policies"]["zero action"]
    assert theirs == ours and ours["length"] > 5  # held at the reference, the body stands a while
