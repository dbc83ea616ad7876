"""Adapters (``optiq_rl.adapters``): a pretrained motion model of optiq-models in the RL loop.

A tiny MLP next-state model is trained for seconds on the DeepMimic walk and run (the character's own clips, in
their own joint order); the adapter must read the simulated body as ``featurize`` reads the clip (to 1e-5), every
mode must train, save, reload and act the same, ``feature`` must keep the pretrained weights through SB3's build
and the encoder's own learning rate through its updates, ``prior`` with a zero residual must play the model's
prediction, and every model that cannot serve is one line, exit 2, nothing written."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from optiq_rl.adapters import MotionAdapter, encoders
from optiq_rl.train import RLConfig, load_policy, make_env, train

#: A tiny run: 2 envs x 64 steps per update, small networks, no TensorBoard (speed).
TINY = {"algo_kwargs.n_steps": 64, "algo_kwargs.batch_size": 64, "algo_kwargs.n_epochs": 2,
        "policy.net_arch": [32, 32], "tensorboard": False, "n_envs": 2}


@pytest.fixture(scope="module")
def walk(data_dir):
    return str(data_dir / "deepmimic" / "humanoid3d_walk.txt")


@pytest.fixture(scope="module")
def motion_model(data_dir, tmp_path_factory):
    """An MLP next-state model (context 4, 64 wide) trained 60 steps on the DeepMimic walk and run (30 fps)."""
    from optiq_models.train import load_config as model_config
    from optiq_models.train import train as train_model

    out = tmp_path_factory.mktemp("model") / "dm.pt"
    cfg = model_config("mlp", {"max_steps": 60, "model.hidden": 64, "model.layers": 1, "test_ratio": 0.0,
                               "val_ratio": 0.0, "eval_interval": 1000, "ckpt_interval": 1000, "batch_size": 16})
    files = [data_dir / "deepmimic" / f"humanoid3d_{m}.txt" for m in ("walk", "run")]
    train_model(cfg, files, out, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    return out


def test_the_adapters_are_registered():
    from optiq.plugins import registry
    from optiq_rl import adapters

    reg = registry("adapter")
    assert reg.load("motion-history") is adapters.MotionAdapter
    assert reg.load("motion-encoder") is adapters.MotionExtractor
    assert reg.load("motion-policy") is adapters.MotionPolicy
    assert reg.load("torque-pd") is adapters.TorquePD


def track(walk, model, mode="feature", **env):
    kwargs = {"reference": walk, "character": "deepmimic", "control": "implicit_pd", "rsi": False, **env}
    return make_env("optiq/Track-v0", kwargs, adapter={"pretrained": str(model), "mode": mode})


def test_adapter_reads_the_simulated_body_as_featurize_reads_the_clip(walk, motion_model):
    import optiq
    from optiq.features import featurize

    env = track(walk, motion_model)
    base = env.unwrapped
    ref, sim = base.ref, base.sim
    clip = optiq.load_clip(walk)  # the clip in its own joint order, which the model was trained in
    assert env.prior.features.skeleton.names == clip.skeleton.names != tuple(sim.char.joint_names)
    want = featurize(clip, env.prior.ckpt.feature_spec)  # [T, F]
    # Kinematic playback: each control step puts the body on the reference's next frame instead of simulating.
    frame = {"t": 0}

    def play():
        frame["t"] += 1
        sim.set_state(ref.qpos[frame["t"]], ref.qvel[frame["t"]])

    sim.advance = play
    obs, _ = env.reset(seed=0)
    assert obs["history"].shape == (env.frames, want.shape[1]) and env.frames == 4
    assert (obs["history"] == obs["history"][-1]).all()  # after a reset: the first state repeated
    rows = [obs["history"][-1]]
    # The walk loops: its last frame is the next cycle's first, which the looped reference plays from there on.
    for _ in range(clip.num_frames - 2):
        before = obs["history"]
        obs, *_ = env.step(np.zeros(env.action_space.shape))
        assert np.array_equal(obs["history"][:-1], before[1:])  # oldest first, one row in per step
        rows.append(obs["history"][-1])
    rows = np.array(rows)
    assert np.abs(rows - want[:len(rows)]).max() < 1e-5
    vel = env.prior.layout.slices["velocities"]
    assert np.abs(rows[1:, vel]).max() > 0.5  # moving joints: velocities (m/s) are in the rows compared
    env.close()


def test_prior_with_a_zero_residual_targets_the_models_prediction(walk, motion_model):
    env = track(walk, motion_model, mode="prior", action_mode="residual")
    base = env.unwrapped
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        want = env.prior.next_qpos(obs["history"], base.sim.data.qpos)
        obs, *_ = env.step(np.zeros(env.action_space.shape))
        got = base.sim.controller.target  # [nq]; the free root's 7 entries drive no motor
        assert np.abs(got[7:] - want[7:]).max() < 1e-12
        assert np.abs(got[7:] - base.ref.qpos[base.frame][7:]).max() > 1e-3  # not the reference's pose
    # The prediction is the model's: its rotations decoded and written as the character's qpos.
    row = env.prior.next_row(obs["history"])
    assert np.isfinite(row).all() and row.shape == (env.prior.features.dim,)
    env.close()


@pytest.mark.parametrize("mode", ["scratch", "feature", "prior", "hint", "style"])
def test_each_mode_trains_saves_reloads_and_acts_the_same(walk, motion_model, tmp_path, mode):
    out = tmp_path / f"{mode}.zip"
    cfg = RLConfig().updated({"env": "optiq/Track-v0", "total_steps": 256, **TINY,
                              "env_kwargs": {"reference": walk, "character": "deepmimic", "control": "implicit_pd"},
                              "adapter": {"pretrained": str(motion_model), "mode": mode, "freeze_steps": 128}})
    result = train(cfg, out)
    assert result.steps == 256
    policy = load_policy(out)
    assert policy.meta["config"]["adapter"]["mode"] == mode
    assert policy.meta["normalize"]["obs_key"] == "obs"
    env = policy.make_env()
    assert isinstance(env, MotionAdapter)
    if mode == "feature":
        from optiq.errors import OptiqError
        from optiq_rl.export import export_policy

        with pytest.raises(OptiqError, match="export is not supported yet"):
            export_policy(out, tmp_path / "a.onnx")
        assert not (tmp_path / "a.onnx").exists()
    obs = [env.reset(seed=s)[0] for s in range(4)]
    batch = {k: np.stack([o[k] for o in obs]) for k in obs[0]}
    env.close()
    trained, vn = result.model, result.model.get_env()
    want, _ = trained.predict(vn.normalize_obs(batch), deterministic=True)
    assert np.array_equal(policy.act(batch), want)
    if mode == "scratch":  # the policy's own motion, as likeness.py measures it
        from optiq_rl.likeness import rollout_motion

        (m,) = rollout_motion(policy, episodes=1)
        assert m.rows.shape[1] == env.prior.features.dim and len(m.rows) == len(m.pos) > 2
        assert np.isfinite(m.rows).all() and m.pos.shape[1:] == (15, 3)
    # The history is not renormalised by VecNormalize: it reaches the encoder raw.
    assert np.array_equal(vn.normalize_obs(batch)["history"], batch["history"])


def test_feature_mode_keeps_the_pretrained_weights_and_the_encoders_rate(walk, motion_model, tmp_path):
    from optiq_models.checkpoint import read_checkpoint

    ckpt = read_checkpoint(motion_model)
    pretrained = {k[len("encoder."):]: v for k, v in ckpt.state_dict.items() if k.startswith("encoder.")}
    snapshots = []

    from stable_baselines3.common.callbacks import BaseCallback

    class Snap(BaseCallback):
        def _on_training_start(self):
            snapshots.append(("start", self.num_timesteps, _state(self.model)))

        def _on_rollout_end(self):
            snapshots.append(("rollout", self.num_timesteps, _state(self.model)))

        def _on_step(self):
            return True

    cfg = RLConfig().updated({"env": "optiq/Track-v0", "total_steps": 512, **TINY,
                              "algo_kwargs.learning_rate": 1e-3,
                              "env_kwargs": {"reference": walk, "character": "deepmimic", "control": "implicit_pd"},
                              "adapter": {"pretrained": str(motion_model), "mode": "feature", "freeze_steps": 256,
                                          "encoder_lr_scale": 0.25}})
    result = train(cfg, tmp_path / "f.zip", callbacks=[Snap()])
    # After SB3's build (and its orthogonal initialisation): the checkpoint's weights, exactly.
    start = snapshots[0][2]
    assert all(torch.equal(start[k], v) for k, v in pretrained.items())
    by_step = {steps: state for _, steps, state in snapshots}
    # Frozen until 256 env steps (updates at 128 and 256 happen with the encoder frozen)...
    assert all(torch.equal(by_step[256][k], v) for k, v in pretrained.items())
    # ... trained after (the update after the rollout that ends at 384 steps).
    final = _state(result.model)
    assert any(not torch.equal(final[k], v) for k, v in pretrained.items())
    # The encoder's group learns at 0.25 x the rate SB3 set at the last update; the rest at the rate.
    groups = result.model.policy.optimizer.param_groups
    lr = result.model.lr_schedule(result.model._current_progress_remaining)
    assert [g["lr"] for g in groups] == pytest.approx([lr, 0.25 * lr])
    enc = {id(p) for e in encoders(result.model.policy) for p in e.parameters()}
    assert {id(p) for p in groups[1]["params"]} == enc


def _state(model):
    (enc,) = encoders(model.policy)
    return {k: v.detach().clone() for k, v in enc.state_dict().items()}


def test_scratch_starts_from_fresh_weights(walk, motion_model, tmp_path):
    from optiq_models.checkpoint import read_checkpoint

    cfg = RLConfig().updated({"env": "optiq/Track-v0", "total_steps": 128, **TINY,
                              "env_kwargs": {"reference": walk, "character": "deepmimic", "control": "implicit_pd"},
                              "adapter": {"pretrained": str(motion_model), "mode": "scratch"}})
    result = train(cfg, tmp_path / "s.zip")
    ckpt = read_checkpoint(motion_model)
    state = _state(result.model)
    assert all(not torch.equal(state[k], ckpt.state_dict[f"encoder.{k}"]) for k in state if k.endswith("weight"))


def test_hint_observes_the_prediction_and_keeps_the_envs_base(walk, motion_model):
    """``hint``: the model's predicted next row is an input (normalised like the history inside the extractor),
    and the PD targets turn from the env's own base (Track-v0: the reference's next frame), not the prediction."""
    from optiq_rl.adapters import MotionExtractor

    env = track(walk, motion_model, mode="hint", action_mode="residual")
    base = env.unwrapped
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        assert np.array_equal(obs["hint"], env.prior.next_row(obs["history"]).astype(np.float32))
        obs, *_ = env.step(np.zeros(env.action_space.shape))
        assert base.action_base is None
        got = base.sim.controller.target
        assert np.abs(got[7:] - base.ref.qpos[base.frame][7:]).max() < 1e-12  # the reference's pose
    ext = MotionExtractor(env.observation_space, **env.prior.extractor_kwargs())
    f = env.prior.features.dim
    batch = {k: torch.as_tensor(v)[None] for k, v in obs.items()}
    out = ext(batch)
    assert out.shape == (1, env.observation_space["obs"].shape[0] + env.prior.features_dim + f)
    want = (torch.as_tensor(obs["hint"]) - ext.mean) / ext.std
    assert torch.allclose(out[0, -f:], want)
    env.close()


def test_style_rewards_what_the_model_predicts_and_reports_the_task_apart(walk, motion_model):
    """``style``: after a step the reward is the env's plus ``w exp(-k e)``, ``e`` the model's normalised squared
    error on the row just reached, predicted from the rows before it; the env's reward and the episode's own return
    stay in the infos, and ``rollout`` (evaluation) reports the task's return."""
    from optiq_rl.train import rollout

    env = track(walk, motion_model, mode="style", action_mode="residual")
    plain = track(walk, motion_model, mode="hint", action_mode="residual")  # the same env, no style reward
    obs, _ = env.reset(seed=0)
    plain.reset(seed=0)
    w, k, std = env.config.style_weight, env.config.style_scale, env.prior.std.astype(np.float64)
    zero = np.zeros(env.action_space.shape)
    task, styles = 0.0, []
    for _ in range(5):
        pred = env.prior.next_row(obs["history"])  # from the rows before the step
        obs, reward, terminated, truncated, info = env.step(zero)
        _, want_task, *_ = plain.step(zero)
        e = np.mean(((obs["history"][-1].astype(np.float64) - pred) / std) ** 2)
        assert info["task_reward"] == want_task
        assert info["style_reward"] == pytest.approx(w * np.exp(-k * e), rel=1e-6)
        assert 0.0 < info["style_reward"] <= w
        assert reward == pytest.approx(want_task + info["style_reward"], rel=1e-12)
        task += want_task
        styles.append(info["style_reward"])
    assert len(set(styles)) > 1  # the body's motion changes what the model expects
    env.unwrapped.max_steps = 6  # end the episode at the next step: its task return comes in the info
    *_, terminated, truncated, info = env.step(zero)
    assert truncated and info["task_return"] == pytest.approx(task + info["task_reward"], rel=1e-12)
    env.close()
    plain.close()

    class Zero:  # a policy of zero actions, for rollout
        def act(self, obs, deterministic=True):
            return np.zeros(env.action_space.shape, np.float32)

    env = track(walk, motion_model, mode="style", action_mode="residual")
    ep = rollout(Zero(), env, seed=3)
    assert ep["return"] == pytest.approx(sum(i["task_reward"] for i in ep["infos"][1:]), rel=1e-12)
    assert ep["infos"][-1]["task_return"] == pytest.approx(ep["return"], rel=1e-12)
    env.close()


def test_prior_on_locomotion_turns_residuals_from_the_prediction(motion_model):
    env = make_env("optiq/Locomotion-v0", {"character": "deepmimic", "control": "implicit_pd",
                                           "action_mode": "residual"},
                   adapter={"pretrained": str(motion_model), "mode": "prior"})
    obs, _ = env.reset(seed=1)
    base = env.unwrapped
    want = env.prior.next_qpos(obs["history"], base.sim.data.qpos)
    assert np.array_equal(base.action_base, want)
    env.step(np.zeros(env.action_space.shape))
    assert np.abs(base.sim.controller.target[7:] - want[7:]).max() < 1e-12
    env.close()


def test_models_that_cannot_serve_are_one_line(fails, cli, walk, motion_model, data_dir, tmp_path):
    out = tmp_path / "p.zip"
    base = ["train", "rl", "--env", "optiq/Track-v0", "--reference", walk, "--character", "deepmimic",
            "--total-steps", "64", "--out", out]
    # Not a checkpoint.
    fails([*base, "--pretrained", walk], "not an optiq model checkpoint", out)
    fails([*base, "--pretrained", tmp_path / "none.pt"], "no such checkpoint file", out)
    # Prior on an env that takes absolute targets, and on Humanoid-v5 (torques).
    loco = ["train", "rl", "--env", "optiq/Locomotion-v0", "--total-steps", "64", "--out", out]
    fails([*loco, "--pretrained", motion_model, "--adapter-mode", "prior"], "env_kwargs.action_mode=residual", out)
    # A label the model does not have.
    fails([*base, "--pretrained", motion_model, "--label", "movement=run"], "not conditioned on label", out)
    # An adapter mode without a model.
    fails([*base, "--adapter-mode", "feature"], "need a pretrained motion model", out)
    fails([*base, "--freeze-steps", "10"], "freeze_steps=10", out)
    # Settings out of range.
    fails([*base, "--pretrained", motion_model, "--adapter.history", "0"], "history must be a whole number >= 1", out)
    fails([*base, "--pretrained", motion_model, "--adapter.encoder_lr_scale", "-1"], "encoder_lr_scale must be", out)
    fails([*base, "--pretrained", motion_model, "--adapter.mode", "bc"], "adapter mode 'bc' is unknown", out)


def test_a_model_of_another_skeleton_says_how_to_retarget(fails, data_dir, tmp_path_factory, walk):
    from optiq_models.train import load_config as model_config
    from optiq_models.train import train as train_model

    model = tmp_path_factory.mktemp("bvh") / "bvh.pt"
    cfg = model_config("mlp", {"max_steps": 2, "model.hidden": 16, "model.layers": 1, "test_ratio": 0.0,
                               "val_ratio": 0.0})
    bvh = data_dir / "bvh" / "cmu1_jumping_jacks.bvh"
    train_model(cfg, [bvh], model, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    out = tmp_path_factory.mktemp("out") / "p.zip"
    line = fails(["train", "rl", "--env", "optiq/Track-v0", "--reference", walk, "--character", "deepmimic",
                  "--total-steps", "64", "--out", out, "--pretrained", model], "optiq rl retarget", out)
    assert "--character deepmimic" in line and "but character 'deepmimic' has 15 joints" in line


def test_a_model_of_another_frame_rate_is_one_line(fails, motion_model, walk, tmp_path):
    out = tmp_path / "p.zip"
    fails(["train", "rl", "--env", "optiq/Track-v0", "--reference", walk, "--character", "deepmimic",
           "--total-steps", "64", "--out", out, "--pretrained", motion_model, "--env_kwargs.control_hz", "60",
           "--env_kwargs.physics_hz", "600"], "trained on motion at 30 fps but the env steps at 60 Hz", out)


def test_a_tokenizer_cannot_serve(fails, data_dir, tmp_path_factory, walk):
    from optiq_models.train import load_config as model_config
    from optiq_models.train import train as train_model

    model = tmp_path_factory.mktemp("vq") / "vq.pt"
    cfg = model_config("vqvae", {"max_steps": 1, "model.width": 16, "model.codebook_size": 8, "model.code_dim": 8,
                                 "window": 16, "test_ratio": 0.0, "val_ratio": 0.0, "batch_size": 2})
    train_model(cfg, [data_dir / "deepmimic" / "humanoid3d_walk.txt"], model,
                cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    out = tmp_path_factory.mktemp("out") / "p.zip"
    fails(["train", "rl", "--env", "optiq/Track-v0", "--reference", walk, "--character", "deepmimic",
           "--total-steps", "64", "--out", out, "--pretrained", model, "--adapter-mode", "prior"],
          "a tokenizer model (vqvae) cannot serve adapter mode 'prior'", out)



def test_humanoid_v5_chain_retarget_train_and_feature_mode(cli, data_dir, tmp_path):
    """The headline command on Humanoid-v5: a walk retargeted to its body at its control rate (0.015 s: 66.67
    fps), a model trained on that, then ``optiq train rl --env Humanoid-v5 --pretrained ... --adapter-mode
    feature``."""
    from pathlib import Path

    import gymnasium
    from click.testing import CliRunner

    body = Path(gymnasium.__file__).parent / "envs" / "mujoco" / "assets" / "humanoid.xml"
    bvh = data_dir / "corpora" / "bandai_namco" / "data" / "dataset-1_walk_normal_001.bvh"
    ref, model, out = tmp_path / "ref.parquet", tmp_path / "m.pt", tmp_path / "humanoid_policy.zip"
    run = CliRunner()
    r = run.invoke(cli, ["-q", "rl", "retarget", "--in", str(bvh), "--character", str(body), "--map",
                         "bandai_to_humanoid_v5", "--frames", "0:40", "--fps", "66.6667", "--out", str(ref)])
    assert r.exit_code == 0, r.output
    from optiq_rl.retarget import load_reference

    clip, qpos, _ = load_reference(ref)
    assert abs(clip.fps - 66.6667) < 1e-6 and clip.num_frames == len(qpos) == 40
    r = run.invoke(cli, ["-q", "train", "model", "--config", "mlp", "--data", str(ref), "--out", str(model),
                         "--max_steps", "5", "--model.hidden", "32", "--model.layers", "1", "--test_ratio", "0",
                         "--val_ratio", "0", "--window", "16", "--batch_size", "4"])
    assert r.exit_code == 0, r.output
    r = run.invoke(cli, ["-q", "train", "rl", "--env", "Humanoid-v5", "--pretrained", str(model), "--adapter-mode",
                         "feature", "--total-steps", "128", "--out", str(out), "--algo_kwargs.n_steps", "64",
                         "--algo_kwargs.batch_size", "64", "--n-envs", "2", "--tensorboard", "false"])
    assert r.exit_code == 0, r.output
    policy = load_policy(out)
    env = policy.make_env()
    obs, _ = env.reset(seed=0)
    assert obs["history"].shape == (4, env.prior.features.dim)
    assert policy.act({k: v[None] for k, v in obs.items()}).shape == (1, 17)
    env.close()
    # prior on Humanoid-v5: its motors take torques, so the adapter's PD actions (SPD once per control step).
    prior = tmp_path / "humanoid_prior.zip"
    args = ["-q", "train", "rl", "--env", "Humanoid-v5", "--pretrained", str(model), "--adapter-mode", "prior",
            "--total-steps", "128", "--out", str(prior), "--algo_kwargs.n_steps", "64", "--algo_kwargs.batch_size",
            "64", "--n-envs", "2", "--tensorboard", "false"]
    r = run.invoke(cli, args)
    assert r.exit_code == 2 and "--adapter.actions pd" in r.stderr and not prior.exists()
    r = run.invoke(cli, [*args, "--adapter.actions", "pd"])
    assert r.exit_code == 0, r.output
    env = load_policy(prior).make_env()
    assert env.action_space.low.min() == -1.0  # the adapter's PD actions, not the env's torques (+-0.4)
    obs, _ = env.reset(seed=0)
    want = env.prior.next_qpos(obs["history"], env.unwrapped.data.qpos)
    env.step(np.zeros(17, dtype=np.float32))
    pd = env._pd.controller
    assert np.abs(pd.target[7:] - want[7:]).max() < 1e-12  # the zero residual targets the model's pose
    env.close()


def test_likeness_measures(walk, motion_model, data_dir):
    """The data against itself: the same prediction error, no angle distance; the kinematic playback of the walk
    (rows from the simulated body) measures as the clip does; a walk whose root glides 1 m/s sideways slides its
    feet by about 1 m/s more."""
    import optiq
    from optiq_rl.likeness import Motion, clip_motion, feet, foot_sliding, likeness

    env = track(walk, motion_model)
    prior = env.prior
    clip = optiq.load_clip(walk)
    data = clip_motion([clip], prior)
    same = likeness(data, data, prior)
    assert same["angle_w1_deg"] == 0.0 and same["prediction_mm"] == same["data_prediction_mm"] > 0
    assert same["foot_sliding_mps"] < 0.2  # a walk's feet stand on the ground (the ankles roll at heel-off)
    # The reference as the env plays it (the character's joint order, reordered to the model's).
    ref, sim = env.unwrapped.ref, env.unwrapped.sim
    n = clip.num_frames - 1  # the looped reference's first cycle
    played = sim.features.clip(ref.pos[:n], ref.rot[:n])  # MuJoCo's bodies, the character's joint order
    assert played.skeleton.names != clip.skeleton.names
    got = clip_motion([played], prior)[0]
    assert np.abs(got.rows - data[0].rows[:n]).max() < 1e-5 and np.abs(got.pos - data[0].pos[:n]).max() < 1e-6
    shifted = Motion(data[0].rows, data[0].pos + np.arange(len(data[0].pos))[:, None, None] / clip.fps
                     * np.array([1.0, 0.0, 0.0]))
    foot = feet(prior.features.skeleton.names)
    assert [prior.features.skeleton.names[i] for i in foot] == ["right_ankle", "left_ankle"]
    ground = float(data[0].pos[:, foot, 2].min())
    slide = foot_sliding([shifted], foot, clip.fps, ground) - foot_sliding(data, foot, clip.fps, ground)
    assert 0.8 < slide < 1.2
    env.close()


def test_labels_condition_the_prior(cli, data_dir, tmp_path):
    """A model conditioned on ``movement`` (the DeepMimic walk labelled walk, the run run): ``--label movement=run``
    reaches the model (another prediction than movement=walk for the same history) and the policy file."""
    import optiq
    from click.testing import CliRunner
    from optiq_models.train import load_config as model_config
    from optiq_models.train import train as train_model

    walk, run = (optiq.load_clip(data_dir / "deepmimic" / f"humanoid3d_{m}.txt").with_labels({"movement": m})
                 for m in ("walk", "run"))
    ds = optiq.write_dataset(tmp_path / "labelled.parquet", [walk, run])
    model = tmp_path / "labelled.pt"
    cfg = model_config("mlp", {"max_steps": 40, "model.hidden": 32, "model.layers": 1, "test_ratio": 0.0,
                               "val_ratio": 0.0, "labels": ["movement"], "batch_size": 8, "window": 16})
    train_model(cfg, ds, model, cache_dir=tmp_path / "cache", progress=False)
    envs = {m: make_env("optiq/Track-v0", {"reference": str(data_dir / "deepmimic" / "humanoid3d_walk.txt"),
                                           "character": "deepmimic", "rsi": False},
                        adapter={"pretrained": str(model), "mode": "prior", "labels": {"movement": m}})
            for m in ("walk", "run")}
    obs, _ = envs["walk"].reset(seed=0)
    rows = {m: e.prior.next_row(obs["history"]) for m, e in envs.items()}
    assert np.abs(rows["walk"] - rows["run"]).max() > 1e-4
    for e in envs.values():
        e.close()
    out = tmp_path / "p.zip"
    r = CliRunner().invoke(cli, ["-q", "train", "rl", "--env", "optiq/Track-v0", "--reference",
                                 str(data_dir / "deepmimic" / "humanoid3d_walk.txt"), "--character", "deepmimic",
                                 "--pretrained", str(model), "--adapter-mode", "prior", "--label", "movement=run",
                                 "--total-steps", "64", "--algo_kwargs.n_steps", "32", "--algo_kwargs.batch_size",
                                 "32", "--n-envs", "2", "--tensorboard", "false", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert load_policy(out).config.adapter["labels"] == {"movement": "run"}


def test_an_adapter_run_resumes(walk, motion_model, tmp_path):
    out = tmp_path / "r.zip"
    spec = {"env": "optiq/Track-v0", **TINY, "checkpoint_interval": 128,
            "env_kwargs": {"reference": walk, "character": "deepmimic", "control": "implicit_pd"},
            "adapter": {"pretrained": str(motion_model), "mode": "feature", "freeze_steps": 1000}}
    first = train(RLConfig().updated({**spec, "total_steps": 128}), out)
    frozen = _state(first.model)
    again = train(RLConfig().updated({**spec, "total_steps": 256}), out, resume=True)
    assert again.steps == 256 and again.curve[0]["steps"] == 256
    # Still within freeze_steps after the resume: the encoder has not moved, and its group keeps its scale.
    assert all(torch.equal(v, frozen[k]) for k, v in _state(again.model).items())
    assert again.model.policy.optimizer.param_groups[1]["lr_scale"] == 0.1
