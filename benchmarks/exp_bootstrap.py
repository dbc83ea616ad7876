"""Does RL that starts from a pretrained motion model learn faster than RL from scratch? (issue 11)

The grid: tasks x conditions x seeds, each run its own job (``optiq_rl.train.train`` then ``evaluate``) writing one
small JSON under ``benchmarks/results/bootstrap/`` (its learning curve, its evaluation, its wall time; never a
checkpoint). Runs whose JSON exists are skipped, so the grid fills across sessions; ``--jobs N`` runs N at a time.
``--report`` reads every JSON and writes the tables (``docs/results.md``, between the ``exp_bootstrap`` markers) and
a report of the curves for ``optiq viz plots``. Analyses of the first seed's policies: ``--diagnose`` (the zero
action under each base of the PD targets), ``--probe`` (linear probes: what the encoder's features add to the
observation), ``--style-check`` (the model's error, what ``style``'s reward reads, on each policy), ``--videos``
(the conditions side by side; three frames of it committed as ``benchmarks/results/bootstrap_TASK_video_frames.png``).
``--equal-return`` measures the policies the task-only runs keep every 100k env steps (``keep_checkpoints``; from
the seed-1 runs on), so that the motion's likeness to the data is compared at equal task return. ``--model-eval``
evaluates the pretrained model on its held-out clips into ``benchmarks/results/bootstrap_model_eval.json``.

Tasks (the DeepMimic humanoid, MuJoCo's own PD: ``implicit_pd``, residual actions of 0.5 rad per unit in every
condition):

- ``track``: ``optiq/Track-v0`` on the DeepMimic walk (``track_deepmimic_walk`` config);
- ``loco``: ``optiq/Locomotion-v0``, task-only reward, target speeds of walking to running (1-3 m/s), starting on
  frames of the walk (``locomotion_deepmimic`` config, ``action_mode: residual`` on the rest pose).
- ``humanoid`` (only with ``--tasks humanoid``): Gymnasium's ``Humanoid-v5`` with its own reward (``ppo_humanoid``
  config), its motors driven through the same residual PD targets in every condition (``adapter.actions: pd``),
  with a model of its own body: the Bandai-Namco takes retarget to it at its 66.67 Hz control rate and the same MLP
  trained on them (``motion_h5.pt`` beside the DeepMimic model, made once).

Conditions (``adapters.py``): ``scratch`` (the encoder's architecture, fresh weights), ``feature`` (pretrained
encoder, frozen for the first ``--freeze`` steps, then at 0.1 x the learning rate), ``prior`` (the model's next pose
as the base of the residual targets), ``hint`` (the model's next feature row as one more input; this project's own
mode, added after ``--diagnose`` showed the prediction is a worse base than Track-v0's reference), ``style`` (a
reward for motion the model predicts well, task-only rewards only: not run on ``track``).

The pretrained model (``--prepare``, once): an MLP next-state model (context 4 frames, 256 wide, 3 blocks: its
encoder costs about 0.6 ms per call at batch 1, ``bench_adapters.py``) trained for ``--model-steps`` on the
DeepMimic walk, run and jog and the Bandai-Namco locomotion takes (walk, walk-back/left/right, run, dash; CC BY-NC
4.0, benchmarks only), all retargeted to the DeepMimic humanoid at 30 fps (the env's control rate). A step budget,
not minutes, so that a lost model is made again to the same recipe (CPU training is not bit-exact across machines:
``--model-eval`` records each model's held-out errors under its sha256, and each run's JSON names the digest of the
model it used). The results of November 2026 used a model made under a 15-minute budget, which stopped at 2,390
steps; it was lost with its machine on 2026-12-01, and the two runs made after (loco style, seeds 1 and 2) used one
re-made by the recipe (held-out errors within 1% at one frame, 4% and 8% lower at 12 and 30 frames).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import ROOT, data_root, write_section

RESULTS = ROOT / "benchmarks" / "results" / "bootstrap"
TASKS = ("track", "loco")
#: Tasks run only when asked for (``--tasks humanoid``): Humanoid-v5's own reward, a model of its own body.
EXTRA_TASKS = ("humanoid",)
CONDITIONS = ("scratch", "feature", "prior", "hint", "style")
STYLE_SCALE_FIRST = 20.0  # style's first scale (its run: results/bootstrap_style20); the grid uses the default
#: (task, condition) pairs the grid leaves out: tracking's reward already asks for the reference's motion.
SKIPPED = {("track", "style")}
START, END = "<!-- exp_bootstrap:start -->", "<!-- exp_bootstrap:end -->"


def optiq_cli() -> str:
    return str(Path(sys.executable).with_name("optiq"))


def humanoid_body() -> Path:
    """Gymnasium's Humanoid-v5 MJCF (the character of the ``humanoid`` task)."""
    import gymnasium

    return Path(gymnasium.__file__).parent / "envs" / "mujoco" / "assets" / "humanoid.xml"


def model_for(task: str, model: Path) -> Path:
    """The pretrained model of ``task``: ``model`` (the DeepMimic humanoid's), or for ``humanoid`` the model of
    Humanoid-v5's body beside it (``prepare_humanoid``)."""
    return model.with_name("motion_h5.pt") if task == "humanoid" else model


def data_folder(task: str, work: Path, model: Path) -> Path:
    """Where the task's retargeted motion data lie: ``work``, or for ``humanoid`` beside its model."""
    return model_for(task, model).parent if task == "humanoid" else work


def prepare_humanoid(work: Path, steps: int) -> Path:
    """``work/motion_h5.pt`` (made once): the Bandai-Namco locomotion takes retargeted to Humanoid-v5's body at its
    control rate (0.015 s: 66.67 fps) with the built-in map, and the same MLP trained on them for ``steps``."""
    model = work / "motion_h5.pt"
    if model.is_file():
        return model
    prepare_data(work)
    o = optiq_cli()
    steps_ = [
        [o, "-q", "rl", "retarget", "--in", str(work / "bandai_loco.parquet"), "--character", str(humanoid_body()),
         "--map", "bandai_to_humanoid_v5", "--fps", "66.6667", "--out", str(work / "bandai_h5.parquet")],
        [o, "-q", "train", "model", "--config", "mlp", "--data", str(work / "bandai_h5.parquet"), "--out", str(model),
         "--max_steps", str(steps), "--model.hidden", "256", "--model.layers", "3", "--model.context", "4",
         "--device", "cpu"],
    ]
    _run_missing(steps_)
    return model


def _run_missing(commands: list[list[str]]) -> None:
    """Run each command whose ``--out`` does not exist yet."""
    for cmd in commands:
        out = Path(cmd[cmd.index("--out") + 1])
        if not out.exists():
            print("+", " ".join(cmd[:4]), "...", out.name, flush=True)
            subprocess.run(cmd, check=True)


def prepare_data(work: Path) -> None:
    """The Bandai-Namco locomotion takes as one dataset, ``work/bandai_loco.parquet`` (made once)."""
    work.mkdir(parents=True, exist_ok=True)
    bandai = data_root() / "corpora" / "bandai_namco" / "data"
    takes = sorted(str(p) for c in ("walk", "walk-back", "walk-left", "walk-right", "run", "dash")
                   for p in bandai.glob(f"dataset-1_{c}_*.bvh"))
    _run_missing([[optiq_cli(), "-q", "data", "convert", "--in", *takes, "--out", str(work / "bandai_loco.parquet")]])


def prepare(work: Path, steps: int) -> Path:
    """The pretrained model ``work/motion_dm.pt`` (made once): data retargeted to the DeepMimic humanoid, then an
    MLP next-state model trained for ``steps`` optimiser steps."""
    model = work / "motion_dm.pt"
    if model.is_file():
        return model
    prepare_data(work)
    data = data_root()
    dm = [str(data / "deepmimic" / f"humanoid3d_{m}.txt") for m in ("walk", "run", "jog")]
    o = optiq_cli()
    steps = [
        [o, "-q", "rl", "retarget", "--in", str(work / "bandai_loco.parquet"), "--character", "deepmimic", "--map",
         "bandai_to_deepmimic", "--out", str(work / "bandai_dm.parquet")],
        [o, "-q", "data", "convert", "--in", *dm, "--out", str(work / "dm_loco.parquet")],
        [o, "-q", "rl", "retarget", "--in", str(work / "dm_loco.parquet"), "--character", "deepmimic", "--out",
         str(work / "dm_ref.parquet")],
        [o, "-q", "train", "model", "--config", "mlp", "--data", str(work / "dm_ref.parquet"), "--data",
         str(work / "bandai_dm.parquet"), "--out", str(model), "--max_steps", str(steps), "--model.hidden", "256",
         "--model.layers", "3", "--model.context", "4", "--device", "cpu"],
    ]
    _run_missing(steps)
    return model


#: Per task, env settings over the ones below (``--env-kwargs TASK JSON``: a variant of the grid, to be run with its
#: own ``--work`` and ``--results``).
ENV_OVERRIDES: dict[str, dict] = {}


def run_config(task: str, condition: str, seed: int, model: Path, steps: int, freeze: int) -> dict:
    """The RL config (overrides of the task's shipped config) of one run."""
    walk = str(data_root() / "deepmimic" / "humanoid3d_walk.txt")
    # Task-only rewards keep a policy every 50k env steps (``--equal-return``: the likeness at equal task return).
    common = {"total_steps": steps, "seed": seed, "n_envs": 2, "tensorboard": False, "checkpoint_interval": 50_000,
              "keep_checkpoints": task != "track",
              "adapter": {"pretrained": str(model_for(task, model)), "mode": condition, "freeze_steps": freeze,
                          "encoder_lr_scale": 0.1}}
    extra = ENV_OVERRIDES.get(task, {})
    if task == "humanoid":
        # Its motors take torques: every condition acts through the same PD targets (TorquePD), residual on the
        # rest pose or, for prior, on the model's pose.
        common["adapter"]["actions"] = "pd"
        return {"config": "ppo_humanoid", **common, "env_kwargs": dict(extra)}
    if task == "track":
        return {"config": "track_deepmimic_walk", **common,
                "env_kwargs": {"reference": walk, "character": "deepmimic", "control": "implicit_pd",
                               "reward": "deepmimic", "action_mode": "residual", **extra}}
    return {"config": "locomotion_deepmimic", **common,
            "env_kwargs": {"character": "deepmimic", "control": "implicit_pd", "action_mode": "residual",
                           "init_reference": walk, "speed_range": [1.0, 3.0], **extra}}


def one_run(task: str, condition: str, seed: int, model: Path, steps: int, freeze: int, work: Path,
            episodes: int) -> Path:
    """Train and evaluate one run; its JSON (curve, evaluation, wall time) goes to RESULTS atomically."""
    import torch
    from optiq_rl.adapters import AdapterConfig
    from optiq_rl.evaluate import evaluate
    from optiq_rl.train import load_config, train

    torch.set_num_threads(1)
    name = f"{task}_{condition}_s{seed}"
    spec = run_config(task, condition, seed, model, steps, freeze)
    cfg = load_config(spec.pop("config"), spec)
    out = work / "runs" / name / "policy.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt = out.parent / "policy.checkpoint.zip"
    resumed = 0
    if ckpt.exists():  # a run a session's end interrupted: on from its last checkpoint
        from optiq_rl.train import read_meta

        resumed = int(read_meta(ckpt)["steps"])
    t0 = time.perf_counter()
    result = train(cfg, out, resume=resumed > 0)
    wall = time.perf_counter() - t0  # of this process only: a resumed run's earlier part is not counted
    report = evaluate(out, episodes=episodes, seed=1000)
    row = {"task": task, "condition": condition, "seed": seed, "env": cfg.env, "total_steps": result.steps,
           "wall_s": wall, "steps_per_s": result.steps_per_second, "freeze_steps": freeze, "resumed_from": resumed,
           "curve": [[r["steps"], r["return_mean"], r["length_mean"]] for r in _curve(out)],
           "eval": report["rl"]["policies"]["policy"], "eval_episodes": episodes,
           "model": str(model_for(task, model)), "model_sha256": _sha256(model_for(task, model)),
           "env_kwargs": cfg.env_kwargs, "algo_kwargs": cfg.algo_kwargs,
           "adapter": {**AdapterConfig().__dict__, **spec["adapter"]}}
    row["likeness"] = motion_likeness(task, out, data_folder(task, work, model), episodes)
    return write_row(row, RESULTS / f"{name}.json")


def diagnose(model: Path, episodes: int, steps: int = 300) -> Path:
    """No learning: the zero action (zero residual) under each base of the PD targets, ``episodes`` episodes of at
    most ``steps`` control steps per task: the env's own base (Track-v0: the reference's next frame; Locomotion-v0:
    the rest pose; the base of ``scratch`` and ``feature``) and the motion model's prediction (``prior``). How long
    the character stays up, the return, and for locomotion the speed it reaches: what each condition starts from.
    Written to ``RESULTS / "diagnose.json"``."""
    from optiq_rl.train import load_config, make_env

    rows = []
    for task in TASKS:
        for condition in ("scratch", "prior"):
            spec = run_config(task, condition, 0, model, 0, 0)
            cfg = load_config(spec.pop("config"), spec)
            env = make_env(cfg.env, cfg.env_kwargs, adapter=cfg.adapter)
            zero = np.zeros(env.action_space.shape, np.float32)
            lengths, returns, speeds = [], [], []
            for episode in range(episodes):
                env.reset(seed=2000 + episode)
                total, speed = 0.0, []
                while len(speed) < steps:
                    _, reward, terminated, truncated, info = env.step(zero)
                    total += float(reward)
                    speed.append(float(info.get("speed", np.nan)))
                    if terminated or truncated:
                        break
                lengths.append(len(speed))
                returns.append(total)
                speeds.append(float(np.mean(speed)))
            env.close()
            rows.append({"task": task, "base": "env" if condition == "scratch" else "prior", "episodes": episodes,
                         "max_steps": steps, "length": lengths, "return": returns, "speed": speeds})
            print(f"{task} {rows[-1]['base']}: length {np.mean(lengths):.0f}, return {np.mean(returns):.1f}",
                  flush=True)
    return write_row({"rows": rows, "model": str(model)}, RESULTS.parent / "bootstrap_diagnose.json")


def _ridge_r2(x: np.ndarray, y: np.ndarray, train: np.ndarray) -> float:
    """Held-out R^2 (variance-weighted over the columns of ``y [N, K]``) of a ridge regression of ``y`` on
    ``x [N, D]``, fitted on the rows ``train`` (bool ``[N]``) and scored on the rest. The columns of ``x`` are
    standardised on the training rows; the penalty is chosen from a grid on the last fifth of the training rows."""
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-8
    x = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])

    def fit(rows, lam):
        a, b = x[rows], y[rows]
        reg = lam * np.eye(a.shape[1])
        reg[-1, -1] = 0.0  # the intercept is not penalised
        return np.linalg.solve(a.T @ a + reg, a.T @ b)

    def r2(rows, w):
        err = ((y[rows] - x[rows] @ w) ** 2).sum()
        return 1.0 - err / ((y[rows] - y[rows].mean(0)) ** 2).sum()

    idx = np.flatnonzero(train)
    cut = idx[int(len(idx) * 0.8)]
    fit_rows, val_rows = train & (np.arange(len(x)) < cut), train & (np.arange(len(x)) >= cut)
    lam = max((10.0 ** k for k in range(-2, 5)), key=lambda lam: r2(val_rows, fit(fit_rows, lam)))
    return float(r2(~train, fit(train, lam)))


def probe(work: Path, model: Path, task: str = "track", episodes: int = 20) -> Path:
    """Why the pretrained encoder adds little: linear probes on the states that the trained ``scratch`` policy
    of ``task`` (seed 0) visits. Targets: that policy's actions (deterministic, ``[nu]``) and the discounted
    return from each state (the critic's target, gamma of the run; where an episode was cut at its time limit its
    last 100 steps are left out of this one, their return being cut short by the clock, which no state shows).
    Inputs: the env's observation alone, and with the pretrained encoder's features of the last frames, with a
    randomly initialised encoder's (the same network: what extra random features alone buy a linear fit), with the
    model's predicted next row (``hint``) and with the raw history the encoder reads. Ridge regression, held-out
    R^2 on the last 30% of the episodes. Written to ``RESULTS.parent / f"bootstrap_probe_{task}.json"``."""
    import torch
    from optiq_models.nets import build_model
    from optiq_rl.train import load_policy

    policy = load_policy(work / "runs" / f"{task}_scratch_s0" / "policy.zip")
    env = policy.make_env()
    prior, gamma = env.prior, float(policy.config.algo_kwargs.get("gamma", 0.99))
    obs_rows, hist_rows, actions, returns, episode, clocked = [], [], [], [], [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=4000 + i)
        rewards, done = [], False
        while not done:
            action = policy.act(obs, True)
            obs_rows.append(obs["obs"].copy())
            hist_rows.append(obs["history"].copy())
            actions.append(np.asarray(action, np.float64))
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(float(reward))
            done = terminated or truncated
        ret, acc = np.empty(len(rewards)), 0.0
        for k in range(len(rewards) - 1, -1, -1):  # discounted return-to-go, cut at the episode's end
            acc = rewards[k] + gamma * acc
            ret[k] = acc
        returns.append(ret)
        episode += [i] * len(rewards)
        cut = np.zeros(len(rewards), bool)
        if truncated and not terminated:
            cut[-100:] = True
        clocked.append(cut)
    env.close()
    obs_x, hist, act = np.array(obs_rows), np.array(hist_rows, np.float32), np.array(actions)
    ret, keep = np.concatenate(returns)[:, None], ~np.concatenate(clocked)
    train = np.array(episode) < int(round(episodes * 0.7))
    x_norm = torch.from_numpy((hist - prior.mean) / prior.std)
    cond = prior.cond(len(hist), hist.shape[1])
    c = prior.ckpt
    with torch.inference_mode():
        pretrained = prior.model.encoder(x_norm, cond).numpy()
        hint = prior.model.predict_next(x_norm, cond, prior.guidance).numpy()
        torch.manual_seed(0)
        random_net = build_model(c.arch, int(c.feature_dim), c.vocab, dict(c.model_config)).eval()
        random_feat = random_net.encoder(x_norm, cond).numpy()
    inputs = {"observation": obs_x, "+ pretrained encoder": np.hstack([obs_x, pretrained]),
              "+ random encoder": np.hstack([obs_x, random_feat]), "+ predicted next row (hint)":
              np.hstack([obs_x, hint]), "+ raw history": np.hstack([obs_x, hist.reshape(len(hist), -1)]),
              "pretrained encoder alone": pretrained}
    rows = []
    for name, x in inputs.items():
        per_action = [_ridge_r2(x, act[:, [k]], train) for k in range(act.shape[1])]
        rows.append({"input": name, "width": int(x.shape[1]), "r2_actions": _ridge_r2(x, act, train),
                     "r2_actions_median": float(np.median(per_action)),
                     "r2_return": _ridge_r2(x[keep], ret[keep], train[keep])})
        print(f"{task} probe {name}: actions R2 {rows[-1]['r2_actions']:.3f} (median over actions "
              f"{rows[-1]['r2_actions_median']:.3f}), return R2 {rows[-1]['r2_return']:.3f}", flush=True)
    return write_row({"task": task, "policy": f"{task}_scratch_s0", "episodes": episodes, "steps": len(act),
                      "return_steps": int(keep.sum()), "action_std": act.std(0).tolist(),
                      "train_episodes": int(round(episodes * 0.7)), "gamma": gamma, "model": str(model), "rows": rows},
                     RESULTS.parent / f"bootstrap_probe_{task}.json")


def _sha256(path: Path) -> str:
    """The model file's digest: which pretrained model a run used (a re-made model is not the same one)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_row(row: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(row, indent=1, default=str))
    os.replace(tmp, path)
    return path


_DATA: dict = {}


def motion_likeness(task: str, policy_path: Path, work: Path, episodes: int) -> dict:
    """``likeness.py``'s measures of the policy's motion (``episodes`` deterministic episodes) against the motion
    data the task's model was trained on (the retargeted datasets in ``work``)."""
    from optiq import open_dataset
    from optiq_rl.likeness import clip_motion, likeness, rollout_motion
    from optiq_rl.train import load_policy

    policy = load_policy(policy_path)
    env = policy.make_env()
    prior = env.prior
    env.close()
    if task not in _DATA:
        clips = []
        names = ("bandai_h5.parquet",) if task == "humanoid" else ("dm_ref.parquet", "bandai_dm.parquet")
        for name in names:
            if (work / name).exists():
                with open_dataset(work / name) as ds:
                    clips += [ds.read_clip(n) for n in ds.clip_names]
        _DATA[task] = clip_motion(clips, prior)
    return likeness(rollout_motion(policy, episodes, seed=2000), _DATA[task], prior)


def fill_likeness(work: Path, model: Path, episodes: int) -> None:
    """Add the likeness measures to results that lack them (runs made before they existed), from the policies
    kept in ``work``."""
    for path in sorted(RESULTS.glob("*.json")):
        row = json.loads(path.read_text())
        policy = work / "runs" / f"{row['task']}_{row['condition']}_s{row['seed']}" / "policy.zip"
        if "likeness" not in row and policy.is_file():
            row["likeness"] = motion_likeness(row["task"], policy, data_folder(row["task"], work, model), episodes)
            write_row(row, path)
            print("likeness:", path.name, row["likeness"], flush=True)


def _curve(policy: Path) -> list[dict]:
    from optiq_rl.evaluate import read_progress

    return read_progress(policy)


def grid(tasks, conditions, seeds) -> list[tuple[str, str, int]]:
    """Runs without a result yet, seed-major so that every condition gets its first seed first."""
    return [(t, c, s) for s in seeds for t in tasks for c in conditions
            if (t, c) not in SKIPPED and not (RESULTS / f"{t}_{c}_s{s}.json").exists()]


def side_by_side(work: Path, task: str, seed: int, steps: int = 300) -> Path | None:
    """One video of the ``task`` policies of ``seed``, every condition at the same budget, side by side (left to
    right in ``CONDITIONS`` order; 480x360 each, the same episode seed), the reference as a ghost for tracking."""
    import imageio_ffmpeg
    from optiq_rl.render import render_policy
    from optiq_viz.video import encode, exact_fps

    policies = [(c, work / "runs" / f"{task}_{c}_s{seed}" / "policy.zip") for c in CONDITIONS]
    policies = [(c, p) for c, p in policies if p.is_file()]
    if len(policies) < 2:
        return None
    clips, fps = [], None
    for cond, path in policies:
        one = work / "videos" / f"{task}_{cond}_s{seed}.mp4"
        one.parent.mkdir(parents=True, exist_ok=True)
        video = render_policy(path, one, episodes=1, seed=3000, size=(480, 360), max_steps=steps)
        fps = video.fps
        reader = imageio_ffmpeg.read_frames(str(one))
        meta = next(reader)
        w, h = meta["size"]
        clips.append([np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader])
    n = max(len(c) for c in clips)
    frames = np.stack([np.concatenate([c[min(i, len(c) - 1)] for c in clips], axis=1) for i in range(n)])
    out = work / "videos" / f"{task}_s{seed}_{'_'.join(c for c, _ in policies)}.mp4"
    encode([frames], out, exact_fps(float(fps)))
    video_frames(out, RESULTS.parent / f"bootstrap_{task}_video_frames.png")
    return out


def video_frames(video: Path, png: Path, at: tuple[int, ...] | None = None, width: int | None = None) -> Path:
    """Frames ``at`` (clamped to the last; default: a third, two thirds and the last of the video, frames 100, 200
    and 299 of a 300-frame one) of ``video`` stacked top to bottom, scaled to ``width`` px (default two thirds of the
    video's: 320 px per condition): the committed still of a side-by-side video (the MP4 stays in the work
    folder)."""
    import imageio_ffmpeg
    from PIL import Image

    reader = imageio_ffmpeg.read_frames(str(video))
    w, h = next(reader)["size"]
    frames = [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader]
    n = len(frames)
    at = (n // 3, 2 * n // 3, n - 1) if at is None else at
    picked = np.concatenate([frames[min(i, n - 1)] for i in at], axis=0)
    image = Image.fromarray(picked)
    width = width or round(w * 2 / 3)
    image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(f".{png.name}.tmp.png")
    image.save(tmp)
    os.replace(tmp, png)
    return png


# --- the report ------------------------------------------------------------------------------------------------
def load_results() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]


def smoothed(curve: list, window: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Env steps and the mean return over the last ``window`` rollouts at each (a running mean: one rollout's
    few episodes are noisy)."""
    c = np.array([[s, r] for s, r, _ in curve if r is not None], dtype=np.float64)
    if len(c) == 0:
        return np.zeros(0), np.zeros(0)
    k = np.ones(min(window, len(c))) / min(window, len(c))
    y = np.convolve(c[:, 1], k, mode="valid")
    return c[len(c) - len(y):, 0], y


def final_return(curve: list, fraction: float = 0.1) -> float:
    """Mean return of the last ``fraction`` of the rollouts."""
    r = [x[1] for x in curve if x[1] is not None]
    return float(np.mean(r[-max(1, int(len(r) * fraction)):])) if r else float("nan")


def steps_to(curve: list, level: float) -> float:
    """Env steps until the smoothed return first reaches ``level`` (inf: never)."""
    x, y = smoothed(curve)
    hit = np.flatnonzero(y >= level)
    return float(x[hit[0]]) if len(hit) else float("inf")


def table(results: list[dict]) -> tuple[list[str], dict]:
    lines, numbers = [], {}
    for task in TASKS + EXTRA_TASKS:
        rows = [r for r in results if r["task"] == task]
        if not rows:
            continue
        scratch = [r for r in rows if r["condition"] == "scratch"]
        level = float(np.mean([final_return(r["curve"]) for r in scratch])) if scratch else float("nan")
        base = float(np.median([steps_to(r["curve"], level) for r in scratch])) if scratch else float("nan")
        # The rise, not the plateau: steps to three quarters of scratch's final return.
        base75 = float(np.median([steps_to(r["curve"], 0.75 * level) for r in scratch])) if scratch else float("nan")
        keys = {"track": ["success", "mpjpe_global_mm", "mpjpe_local_mm"], "loco": ["velocity_error", "energy"]}.get(
            task, ["length"])
        # wall: a run's steps at its rate (a resumed run's process timed only its part)
        lines += [f"**{task}** ({rows[0]['env']}; {rows[0]['total_steps']:,} env steps per run; scratch's final "
                  f"return {level:.1f})", "",
                  "| condition | seeds | final return | env steps to scratch's final return | ratio to scratch | "
                  "ratio at 75% of it | eval return | " + " | ".join(keys) + " | env steps/s | wall (min) |",
                  "|---" * (9 + len(keys)) + "|"]
        for cond in CONDITIONS:
            rs = [r for r in rows if r["condition"] == cond]
            if not rs:
                continue
            fin = [final_return(r["curve"]) for r in rs]
            reach = [steps_to(r["curve"], level) for r in rs]
            med = float(np.median(reach))
            med75 = float(np.median([steps_to(r["curve"], 0.75 * level) for r in rs]))
            ratio75 = f"{med75 / base75:.2f}" if np.isfinite(med75) and np.isfinite(base75) and base75 > 0 else "-"
            ev = {k: [r["eval"].get(k, float("nan")) for r in rs] for k in ["return", *keys]}
            numbers[f"{task}/{cond}"] = {"seeds": len(rs), "final_return": fin, "steps_to_scratch_final": reach,
                                         "ratio": med / base if base and np.isfinite(base) else None,
                                         **{f"eval_{k}": v for k, v in ev.items()}}
            ratio = f"{med / base:.2f}" if np.isfinite(med) and np.isfinite(base) and base > 0 else "-"
            reach_txt = ", ".join("never" if not np.isfinite(v) else f"{v / 1e3:.0f}k" for v in reach)
            cells = [f"{np.mean(v):.3g} ± {np.std(v):.2g}" for v in ev.values()]
            numbers[f"{task}/{cond}"]["ratio_75"] = med75 / base75 if base75 and np.isfinite(base75) else None
            lines.append(f"| {cond} | {len(rs)} | {np.mean(fin):.1f} ± {np.std(fin):.1f} | {reach_txt} | {ratio} | "
                         f"{ratio75} | "
                         + " | ".join(cells) + f" | {np.mean([r['steps_per_s'] for r in rs]):.0f} | "
                         f"{np.mean([r['total_steps'] / r['steps_per_s'] for r in rs]) / 60:.0f} |")
        lines.append("")
        liked = [r for r in rows if r.get("likeness")]
        if liked:
            d = liked[0]["likeness"]
            lines += [f"How the {task} policies move against the motion data (`likeness.py`; the data itself: model "
                      f"prediction error {d['data_prediction_mm']:.1f} mm, foot sliding "
                      f"{d['data_foot_sliding_mps']:.3f} m/s):", "",
                      "| condition | task's eval return | model's prediction error (mm) | foot sliding (m/s) | "
                      "joint-angle W1 to the data (deg) |", "|---|---|---|---|---|"]
            for cond in CONDITIONS:
                rs = [r["likeness"] for r in liked if r["condition"] == cond]
                if rs:
                    # the task's return beside the likeness: the second goal compares at equal task return
                    ret = [r["eval"]["return"] for r in liked if r["condition"] == cond]
                    cells = [f"{np.mean(ret):.3g} ± {np.std(ret):.2g}"] + [
                        f"{np.mean([x[k] for x in rs]):.3g} ± {np.std([x[k] for x in rs]):.2g}"
                        for k in ("prediction_mm", "foot_sliding_mps", "angle_w1_deg")]
                    lines.append(f"| {cond} ({len(rs)}) | " + " | ".join(cells) + " |")
                    numbers.setdefault(f"{task}/{cond}", {})["likeness"] = rs
            lines.append("")
    return lines, numbers


def curves_report(results: list[dict], task: str, points: int = 60) -> dict | None:
    """A report (docs/viz.md version 2) with one learning curve per condition: mean and std over seeds."""
    rows = [r for r in results if r["task"] == task]
    if not rows:
        return None
    end = min(r["curve"][-1][0] for r in rows if r["curve"])
    ticks = np.linspace(0, end, points)
    series, std = {}, {}
    for cond in CONDITIONS:
        rs = [r for r in rows if r["condition"] == cond and r["curve"]]
        if not rs:
            continue
        ys = np.stack([np.interp(ticks, *smoothed(r["curve"])) for r in rs])
        series[f"{cond} ({len(rs)} seeds)"], std[f"{cond} ({len(rs)} seeds)"] = ys.mean(0).tolist(), ys.std(0).tolist()
    return {"version": 2, "title": f"exp_bootstrap: {task} ({rows[0]['env']})",
            "curves": {"steps": ticks.tolist(), "metric": "mean episode return", "unit": "env steps",
                       "series": series, "std": std}}


#: Each pretrained model's evaluation on its held-out clips (``--model-eval``), committed: the model itself is not.
MODEL_EVAL = RESULTS.parent / "bootstrap_model_eval.json"
HORIZONS = (1, 12, 30)


def model_eval(work: Path, model: Path) -> Path:
    """``optiq eval model`` on ``model`` (its test split of ``work``'s two datasets, 30-frame rollouts), its
    root-relative MPJPE (mm) at 1, 12 and 30 frames for the model and both baselines recorded in ``MODEL_EVAL``
    under the model file's sha256 (an entry of the same digest is replaced)."""
    out = work / f"{model.stem}_eval.json"
    subprocess.run([optiq_cli(), "-q", "eval", "model", "--model", str(model), "--data", str(work / "dm_ref.parquet"),
                    "--data", str(work / "bandai_dm.parquet"), "--split", "test", "--horizon", "30", "--out",
                    str(out)], check=True)
    r = json.loads(out.read_text())
    series = r["horizon"]["series"]
    entry = {"model": str(model), "sha256": _sha256(model), "clips": r["clips"], "made": time.strftime("%Y-%m-%d"),
             "mpjpe_mm": {str(h): {k: round(float(v[h - 1]), 2) for k, v in series.items()} for h in HORIZONS}}
    book = json.loads(MODEL_EVAL.read_text()) if MODEL_EVAL.exists() else {"models": []}
    same = [m for m in book["models"] if m["sha256"] == entry["sha256"]]
    if same and "note" in same[0]:  # a note written by hand on the entry (where the model came from) stays
        entry["note"] = same[0]["note"]
    book["models"] = [m for m in book["models"] if m["sha256"] != entry["sha256"]] + [entry]
    return write_row(book, MODEL_EVAL)


def model_lines(rows: list[dict]) -> list[str]:
    """What each pretrained model predicts on its held-out clips (``MODEL_EVAL``), and which runs used it."""
    if not MODEL_EVAL.exists():
        return []
    out = []
    for m in json.loads(MODEL_EVAL.read_text())["models"]:
        cells = "; ".join(f"{h} frames: " + ", ".join(f"{k} {v:.1f}" for k, v in row.items())
                          for h, row in m["mpjpe_mm"].items())
        used = [f"{r['task']} {r['condition']} s{r['seed']}" for r in rows if r.get("model_sha256") == m["sha256"]]
        which = (f"the runs {', '.join(used)}" if used else m.get("runs", "no run of the grid"))
        out += [f"The pretrained model (MLP, 4 frames, 256 x 3; {m['note'] + '; ' if m.get('note') else ''}used by "
                f"{which}) on its {m['clips']} held-out clips, root-relative MPJPE (mm) of its rollout against the "
                f"baselines: {cells} (`exp_bootstrap.py --model-eval`: `optiq eval model --model motion_dm.pt --data "
                "dm_ref.parquet --data bandai_dm.parquet --split test --horizon 30`).", ""]
    return out


def diagnose_lines() -> list[str]:
    """The table of ``--diagnose``'s results, when they exist."""
    path = RESULTS.parent / "bootstrap_diagnose.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    rows = data["rows"]
    out = ["What each condition starts from: the zero action under each base of the PD targets, no learning "
           f"(`--diagnose`, {rows[0]['episodes']} episodes of at most {rows[0]['max_steps']} control steps, "
           "mean ± std):", "",
           "| task | base of the PD targets | control steps until the end | return | speed (m/s) |",
           "|---|---|---|---|---|"]
    names = {("track", "env"): "the reference's next frame (scratch, feature)",
             ("loco", "env"): "the rest pose (scratch, feature)"}
    for r in rows:
        base = names.get((r["task"], r["base"]), "the model's prediction (prior)")
        speed = "" if r["task"] == "track" else f"{np.mean(r['speed']):.2f} ± {np.std(r['speed']):.2f}"
        out.append(f"| {r['task']} | {base} | {np.mean(r['length']):.0f} ± {np.std(r['length']):.0f} | "
                   f"{np.mean(r['return']):.1f} ± {np.std(r['return']):.1f} | {speed} |")
    return [*out, ""]


def _windows(rows: np.ndarray, t0: int) -> np.ndarray:
    """The windows ``[N, t0, F]`` of ``t0`` rows before each of the rows ``t0..`` of ``rows [T, F]``."""
    from numpy.lib.stride_tricks import sliding_window_view

    return sliding_window_view(rows[:-1], t0, axis=0).transpose(0, 2, 1)


def _model_error(prior, windows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Squared errors ``[N, F]`` of the model's predictions (``next_row``'s, one batch) after ``windows [N, t0, F]``
    of the rows ``rows [N, F]`` (raw units), in the model's normalised feature units: the mean over F is what
    ``style`` mode's reward reads."""
    import torch

    x = torch.from_numpy(((windows - prior.mean) / prior.std).astype(np.float32))
    with torch.inference_mode():
        y = prior.model.predict_next(x, prior.cond(len(x), windows.shape[1]), prior.guidance).numpy()
    return ((rows - prior.mean) / prior.std - y) ** 2


def style_check(work: Path, model: Path, task: str = "loco", seed: int = 0, episodes: int = 10) -> Path | None:
    """What ``style`` mode's reward sees on each condition's trained policy (``task``, ``seed``): on ``episodes``
    deterministic episodes (the likeness measure's seeds), the model's one-step error per transition (normalised,
    as the reward reads it; also per feature group) and the style reward it would earn per step (0.5 exp(-k e),
    k the first scale tried, 20, and the default). The first style run's policy is read from
    ``work.parent / "boot_style20"``. Did ``style`` lower the error it is paid for, and where? Written to
    ``RESULTS.parent / f"bootstrap_probe_style_{task}.json"``."""
    import torch
    from optiq_rl.adapters import AdapterConfig
    from optiq_rl.likeness import rollout_motion
    from optiq_rl.train import load_policy

    torch.set_num_threads(1)  # beside the grid's runs, one core at most
    cfg = AdapterConfig()
    scales = (STYLE_SCALE_FIRST, cfg.style_scale)
    rows_out = []
    # the grid's policies, and the first style run (scale 20), kept in its own work folder
    policies = [(c, work / "runs" / f"{task}_{c}_s{seed}" / "policy.zip") for c in CONDITIONS]
    policies.append((f"style, scale {STYLE_SCALE_FIRST:g}",
                     work.parent / "boot_style20" / "runs" / f"{task}_style_s{seed}" / "policy.zip"))
    for cond, path in policies:
        if not path.is_file():
            continue
        policy = load_policy(path)
        env = policy.make_env()
        prior = env.prior
        env.close()
        t0 = prior.context
        errs = [_model_error(prior, _windows(m.rows, t0), m.rows[t0:])
                for m in rollout_motion(policy, episodes, seed=2000) if len(m.rows) > t0]
        sq = np.concatenate(errs)  # [N, F]
        e = sq.mean(1)
        groups = {k: float(np.median(sq[:, sl].mean(1))) for k, sl in prior.layout.slices.items()}
        rows_out.append({"condition": cond, "transitions": len(e), "median": float(np.median(e)),
                         "mean_style_reward": {f"{k:g}": float(np.mean(cfg.style_weight * np.exp(-k * e)))
                                               for k in scales}, "groups": groups})
        print("style check:", rows_out[-1], flush=True)
    if not rows_out:
        return None
    return write_row({"task": task, "seed": seed, "episodes": episodes, "rows": rows_out},
                     RESULTS.parent / f"bootstrap_probe_style_{task}.json")


#: Eval-return levels of ``--equal-return`` (loco's eval return: at most 300 control steps of 0.5 velocity + 0.1
#: heading + 0.4 alive at best), and how near a kept policy's return must be to stand for a level: half their
#: spacing, so that every return belongs to one level.
EQUAL_LEVELS, EQUAL_TOLERANCE = tuple(float(x) for x in range(20, 181, 20)), 10.0
EQUAL_EVERY = 100_000  # env steps between the kept policies measured


def equal_return(work: Path, task: str = "loco", episodes: int = 10) -> Path | None:
    """The likeness at equal task return (the issue's second goal): each run of ``task`` with kept policies
    (``keep_checkpoints``, ``WORK/runs/RUN/policy.N.zip``) has its policy every ``EQUAL_EVERY`` env steps (the
    first kept past each multiple) measured as the final ones are (``evaluate``: ``episodes`` deterministic episodes
    from seed 1000; ``likeness``: from seed 2000); the final policy's numbers come from the run's JSON. Points
    already measured are kept (the file grows as the grid does). Written to
    ``RESULTS.parent / f"bootstrap_equal_return_{task}.json"``: per run, a list of
    ``{steps, return, length, velocity_error, likeness}``."""
    import torch
    from optiq_rl.evaluate import evaluate

    torch.set_num_threads(1)  # beside the grid's runs, one core at most
    path = RESULTS.parent / f"bootstrap_equal_return_{task}.json"
    found = json.loads(path.read_text()) if path.exists() else {"task": task, "episodes": episodes, "runs": {}}
    for res in sorted(RESULTS.glob(f"{task}_*.json")):
        row = json.loads(res.read_text())
        name = res.stem
        folder = work / "runs" / name
        kept = sorted((int(p.name.split(".")[1]), p) for p in folder.glob("policy.[0-9]*.zip"))
        # checkpoints fall at the first update past each 50k: the first past each multiple of EQUAL_EVERY
        first = {}
        for n, p in kept:
            if n >= EQUAL_EVERY and n < row["total_steps"]:
                first.setdefault(n // EQUAL_EVERY, (n, p))
        kept = sorted(first.values())  # none for the runs made before keep_checkpoints: their final policy only
        points = found["runs"].setdefault(name, {"condition": row["condition"], "seed": row["seed"], "points": []})
        done = {pt["steps"] for pt in points["points"]}
        final = {"steps": row["total_steps"], "return": row["eval"]["return"], "length": row["eval"]["length"],
                 "velocity_error": row["eval"].get("velocity_error"), "likeness": row.get("likeness")}
        new = [final] if row["total_steps"] not in done else []
        for n, p in kept:
            if n in done:
                continue
            ev = evaluate(p, episodes=episodes, seed=1000)["rl"]["policies"]["policy"]
            new.append({"steps": n, "return": ev["return"], "length": ev["length"],
                        "velocity_error": ev.get("velocity_error"),
                        "likeness": motion_likeness(task, p, data_folder(task, work, Path(row["model"])), episodes)})
            print("equal return:", name, new[-1], flush=True)
        points["points"] = sorted(points["points"] + new, key=lambda pt: pt["steps"])
        write_row(found, path)  # after each run: a stopped measurement keeps what it has
    return path if found["runs"] else None


def equal_return_lines() -> list[str]:
    """The table of ``--equal-return``: per condition and return level, the kept policies whose evaluation return is
    within ``EQUAL_TOLERANCE`` of the level (the nearest one of each run), their likeness averaged over runs."""
    out = []
    for task in TASKS:
        path = RESULTS.parent / f"bootstrap_equal_return_{task}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        out += [f"The {task} policies' motion at equal task return (`--equal-return`: each run's policy kept every "
                f"{EQUAL_EVERY // 1000}k env steps, evaluated as the final ones; per run the one whose evaluation "
                f"return is nearest the level, if within {EQUAL_TOLERANCE:g} of it; mean over the runs "
                "matched; the seed-0 runs, made before policies were kept, with their final policy only):", "",
                "| return level | condition | runs matched | at env steps | their eval return | model's prediction "
                "error (mm) | foot sliding (m/s) | joint-angle W1 to the data (deg) |", "|---" * 8 + "|"]
        for level in EQUAL_LEVELS:
            for cond in CONDITIONS:
                picked = []
                for run in data["runs"].values():
                    if run["condition"] != cond:
                        continue
                    near = [pt for pt in run["points"] if pt.get("likeness")
                            and -EQUAL_TOLERANCE <= pt["return"] - level < EQUAL_TOLERANCE]
                    if near:
                        picked.append(min(near, key=lambda pt: abs(pt["return"] - level)))
                if not picked:
                    continue
                like = {k: np.mean([pt["likeness"][k] for pt in picked])
                        for k in ("prediction_mm", "foot_sliding_mps", "angle_w1_deg")}
                out.append(f"| {level:g} | {cond} | {len(picked)} | "
                           + ", ".join(f"{pt['steps'] // 1000}k" for pt in picked) + " | "
                           + ", ".join(f"{pt['return']:.0f}" for pt in picked)
                           + f" | {like['prediction_mm']:.1f} | {like['foot_sliding_mps']:.3f} | "
                           f"{like['angle_w1_deg']:.1f} |")
        out.append("")
    return out


def still_check(work: Path, model: Path, frames: int = 60) -> Path:
    """Would the model's one-step prediction error make a style reward (AMP-like, the model in place of a
    discriminator)? Its error (mean squared, in the model's normalised feature units) on the transitions of the
    motion data it was trained on (the DeepMimic clips and the Bandai-Namco takes on the DeepMimic humanoid; at most
    ``frames`` per clip), against poses of the same clips held still (every 10th frame of each, repeated).
    Written to ``RESULTS.parent / "bootstrap_probe_still.json"``."""
    from optiq import open_dataset
    from optiq_rl import character
    from optiq_rl.adapters import MotionPrior
    from optiq_rl.likeness import clip_motion

    prior = MotionPrior(model, character("deepmimic"), 30.0)
    clips = []
    for name in ("dm_ref.parquet", "bandai_dm.parquet"):
        with open_dataset(work / name) as ds:
            clips += [ds.read_clip(n) for n in ds.clip_names]
    t0 = prior.context
    data, held = [], []
    for motion in clip_motion(clips, prior):
        rows = motion.rows[:t0 + frames]
        if len(rows) > t0:
            data += _model_error(prior, _windows(rows, t0), rows[t0:]).mean(1).tolist()
        still = rows[:frames:10]  # [K, F]: poses held still, each its own window of t0 copies
        held += _model_error(prior, np.repeat(still[:, None], t0, axis=1), still).mean(1).tolist()
    row = {"clips": len(clips), "transitions": len(data), "data_median": float(np.median(data)),
           "data_p90": float(np.percentile(data, 90)), "held": len(held), "held_median": float(np.median(held)),
           "held_p10": float(np.percentile(held, 10)), "held_share_below_data_median":
           float(np.mean(np.array(held) < np.median(data))), "model": str(model)}
    print("still check:", row, flush=True)
    return write_row(row, RESULTS.parent / "bootstrap_probe_still.json")


def probe_lines() -> list[str]:
    """The table of ``--probe``'s results, when they exist."""
    found = [json.loads(p.read_text()) for t in TASKS + EXTRA_TASKS
             if (p := RESULTS.parent / f"bootstrap_probe_{t}.json").exists()]
    if not found:
        return []
    out = ["What the encoder's features add to the observation (`--probe`: linear probes on the states the trained "
           "scratch policy of seed 0 visits, deterministic episodes; ridge regression, held-out R^2 on the last 30% "
           "of the episodes; targets: the policy's actions, variance-weighted and the median over the actions, "
           "and the discounted return from the state, without the last 100 steps of an episode cut by the "
           "clock):", "",
           "| task | input | width | R^2 actions | median over actions | R^2 return |", "|---|---|---|---|---|---|"]
    for data in found:
        for r in data["rows"]:
            out.append(f"| {data['task']} ({data['steps']} steps, {data['episodes']} episodes) | {r['input']} | "
                       f"{r['width']} | {r['r2_actions']:.3f} | {r['r2_actions_median']:.3f} | "
                       f"{r['r2_return']:.3f} |")
    still = RESULTS.parent / "bootstrap_probe_still.json"
    if still.exists():
        r = json.loads(still.read_text())
        out += ["", f"The model's one-step prediction error (mean squared, normalised features; `--probe`'s still "
                f"check) on {r['transitions']} transitions of its {r['clips']} training clips: median "
                f"{r['data_median']:.3f} (90th percentile {r['data_p90']:.3f}); on {r['held']} poses of them held "
                f"still: median {r['held_median']:.3f} (10th percentile {r['held_p10']:.4f}), "
                f"{100 * r['held_share_below_data_median']:.0f}% of them below the data's median."]
    for t in TASKS:
        path = RESULTS.parent / f"bootstrap_probe_style_{t}.json"
        if not path.exists():
            continue
        r = json.loads(path.read_text())
        keys = list(r["rows"][0]["groups"])
        out += ["", f"What `style`'s reward reads on each {t} policy of seed {r['seed']} (`--style-check`, "
                f"{r['episodes']} deterministic episodes): the model's one-step error per transition (normalised, "
                "median; then the median of each feature group's mean) and the style reward it pays per step "
                "(0.5 exp(-k e), mean):", "",
                "| condition | transitions | error | " + " | ".join(f"style reward, k = {k}" for k in
                                                              r["rows"][0]["mean_style_reward"]) + " | "
                + " | ".join(keys) + " |", "|---" * (3 + len(r["rows"][0]["mean_style_reward"]) + len(keys)) + "|"]
        for x in r["rows"]:
            out.append(f"| {x['condition']} | {x['transitions']} | {x['median']:.4f} | "
                       + " | ".join(f"{v:.3f}" for v in x["mean_style_reward"].values()) + " | "
                       + " | ".join(f"{x['groups'][k]:.3f}" for k in keys) + " |")
    return [*out, ""]


def report(argv: list[str], work: Path) -> None:
    results = load_results()
    lines, numbers = table(results)
    lines = model_lines(results) + diagnose_lines() + probe_lines() + lines + equal_return_lines()
    for task in TASKS + EXTRA_TASKS:
        rep = curves_report(results, task)
        if rep is not None:
            (RESULTS.parent / f"bootstrap_{task}_curves.json").write_text(json.dumps(rep, indent=1))
            try:  # the figure optiq viz plots draws of it, as PNG (kaleido and Chromium)
                from optiq_viz.plots import plot_errors, write_figure

                write_figure(plot_errors(rep), RESULTS.parent / f"bootstrap_{task}_curves.png")
            except Exception as exc:  # no Chromium: the JSON still holds every number
                print(f"no PNG of the {task} curves: {exc}")
    (RESULTS.parent / "bootstrap_summary.json").write_text(json.dumps(numbers, indent=1))
    print("\n".join(lines))
    cmd = "OPTIQ_TEST_DATA=/work/shared/data .venv/bin/python benchmarks/exp_bootstrap.py " + " ".join(argv)
    write_section(ROOT / "docs" / "results.md", START, END,
                  "## optiq-rl: RL from a pretrained motion model (scratch vs feature vs prior vs hint vs style)",
                  cmd.strip(),
                  [*lines, "Curves: `benchmarks/results/bootstrap_track_curves.png` and `_loco_` (drawn by `optiq viz "
                   "plots --report benchmarks/results/bootstrap_track_curves.json --out curves.html`): mean over "
                   "seeds of the running mean (5 rollouts) of the episode return, the band one standard deviation."])


def main(argv: list[str] | None = None) -> int:
    global RESULTS
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/work/runs/boot"), help="models, policies (not committed)")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=600_000, help="env steps per run")
    ap.add_argument("--freeze", type=int, default=100_000, help="env steps with the encoder frozen")
    ap.add_argument("--episodes", type=int, default=10, help="evaluation episodes per run")
    ap.add_argument("--model-steps", type=int, default=2400, help="training steps of the pretrained model")
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (one process each)")
    ap.add_argument("--max-runs", type=int, default=0, help="stop after this many runs (0: the whole grid)")
    ap.add_argument("--one", nargs=3, metavar=("TASK", "CONDITION", "SEED"), help="(internal) one run")
    ap.add_argument("--report", action="store_true", help="only write the tables and curves of the results there")
    ap.add_argument("--prepare-only", action="store_true", help="only make the pretrained model")
    ap.add_argument("--fill-likeness", action="store_true",
                    help="add the motion-likeness measures to results without them (from the kept policies)")
    ap.add_argument("--videos", action="store_true",
                    help="render the first seed's policies of each task side by side (WORK/videos/)")
    ap.add_argument("--diagnose", action="store_true",
                    help="only run the zero action under each base of the PD targets (no learning)")
    ap.add_argument("--probe", action="store_true",
                    help="only the linear probes of the encoder's features on the scratch policy's states (seed 0)")
    ap.add_argument("--model-eval", action="store_true",
                    help="only evaluate the pretrained model on its held-out clips (into bootstrap_model_eval.json)")
    ap.add_argument("--style-check", action="store_true",
                    help="only the model's error (what style's reward reads) on each condition's policy (seed 0)")
    ap.add_argument("--equal-return", action="store_true",
                    help="only measure the kept policies along each task-only run (the likeness at equal return)")
    ap.add_argument("--model", type=Path, help="a pretrained model to use instead of --prepare's")
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the runs' JSON files")
    ap.add_argument("--env-kwargs", nargs=2, action="append", default=[], metavar=("TASK", "JSON"),
                    help="env settings of TASK over the grid's (e.g. loco '{\"velocity_scale\": 0.25}'): a variant, "
                         "with its own --work and --results")
    args = ap.parse_args(argv)
    RESULTS = args.results
    for task, text in args.env_kwargs:
        if task not in TASKS + EXTRA_TASKS:
            ap.error(f"--env-kwargs: unknown task {task!r}; tasks: {', '.join(TASKS + EXTRA_TASKS)}")
        try:
            ENV_OVERRIDES[task] = dict(json.loads(text))
        except (ValueError, TypeError) as exc:
            ap.error(f"--env-kwargs {task}: expected a JSON object, got {text!r} ({exc})")
    if args.report:
        report(argv, args.work)
        return 0
    bad = sorted(set(args.tasks.split(",")) - set(TASKS + EXTRA_TASKS)) + sorted(
        set(args.conditions.split(",")) - set(CONDITIONS))
    if bad:
        ap.error(f"unknown task or condition {', '.join(bad)}; tasks: {', '.join(TASKS)}; conditions: "
                 f"{', '.join(CONDITIONS)}")
    model = args.model or prepare(args.work, args.model_steps)
    if "humanoid" in args.tasks.split(",") and not args.one:
        prepare_humanoid(model.parent, args.model_steps)
    if args.prepare_only:
        print(model)
        return 0
    if args.model_eval:
        print(model_eval(args.work, model))
        return 0
    if args.fill_likeness:
        fill_likeness(args.work, model, args.episodes)
        return 0
    if args.diagnose:
        print(diagnose(model, args.episodes))
        return 0
    if args.style_check:
        for task in args.tasks.split(","):
            print(style_check(args.work, model, task))
        return 0
    if args.equal_return:
        for task in args.tasks.split(","):
            if task != "track":
                print(equal_return(args.work, task, args.episodes))
        return 0
    if args.probe:
        print(still_check(args.work, model))
        for task in args.tasks.split(","):
            print(probe(args.work, model, task))
        return 0
    if args.videos:
        for task in args.tasks.split(","):
            print(side_by_side(args.work, task, int(args.seeds.split(",")[0])))
        return 0
    if args.one:
        t, c, s = args.one
        print(one_run(t, c, int(s), model, args.steps, args.freeze, args.work, args.episodes), flush=True)
        return 0
    todo = grid(args.tasks.split(","), args.conditions.split(","), [int(s) for s in args.seeds.split(",")])
    if args.max_runs:
        todo = todo[:args.max_runs]
    print(f"{len(todo)} runs to do: {', '.join(f'{t}_{c}_s{s}' for t, c, s in todo)}", flush=True)
    running: list[subprocess.Popen] = []
    args.work.mkdir(parents=True, exist_ok=True)  # with --model, nothing has made it yet
    for t, c, s in todo:
        while len(running) >= args.jobs:
            running = [p for p in running if p.poll() is None]
            time.sleep(5)
        cmd = [sys.executable, __file__, "--work", str(args.work), "--steps", str(args.steps), "--freeze",
               str(args.freeze), "--episodes", str(args.episodes), "--results", str(RESULTS), "--model", str(model),
               *(x for task, text in args.env_kwargs for x in ("--env-kwargs", task, text)), "--one", t, c, str(s)]
        log = open(args.work / f"{t}_{c}_s{s}.log", "a")
        running.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
    for p in running:
        p.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
