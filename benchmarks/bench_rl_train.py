"""optiq-rl training speed (issue 9, section 5): PPO env steps/s through ``optiq train rl`` (``optiq_rl.train``,
which the command wraps) against plain Stable-Baselines3 on Humanoid-v5 with the same network, n_envs, n_steps,
VecNormalize and torch threads (goal >= 0.9x); env steps/s of DummyVecEnv against SubprocVecEnv for Humanoid-v5
and optiq/Track-v0 (how ``vec_env`` was chosen); video frames/s of the MuJoCo renderer.

Both PPO sides time ``learn`` only (not the imports or building the envs), interleaved in rounds; the ratio is the
median of the per-round ratios. The vec-env rows step random actions for the same number of steps each.

Run: ``python benchmarks/bench_rl_train.py [--quick]`` or ``python benchmarks/run.py --only rl_train [--quick]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import data_root, print_rows

WALK = "deepmimic/humanoid3d_walk.txt"
NET = [64, 64]


def _optiq_ppo(folder: Path, steps: int, n_envs: int, n_steps: int) -> float:
    from optiq_rl.train import RLConfig, train

    cfg = RLConfig().updated({"env": "Humanoid-v5", "total_steps": steps, "n_envs": n_envs, "tensorboard": False,
                              "algo_kwargs.n_steps": n_steps, "algo_kwargs.batch_size": 64,
                              "policy.net_arch": NET, "checkpoint_interval": 0})
    return train(cfg, folder / "bench.zip").steps_per_second


def _plain_ppo(steps: int, n_envs: int, n_steps: int) -> float:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)  # as optiq train rl's default torch_threads
    venv = VecNormalize(make_vec_env("Humanoid-v5", n_envs=n_envs, seed=0))
    model = PPO("MlpPolicy", venv, n_steps=n_steps, batch_size=64, policy_kwargs={"net_arch": NET}, seed=0,
                device="cpu")
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    venv.close()
    return model.num_timesteps / seconds


def _vec_steps(env_id: str, kwargs: dict, cls_name: str, n_envs: int, steps: int) -> float:
    from optiq_rl.train import RLConfig, make_vec_env

    cfg = RLConfig().updated({"env": env_id, "env_kwargs": kwargs, "n_envs": n_envs, "vec_env": cls_name})
    venv = make_vec_env(cfg)
    rng = np.random.default_rng(0)
    venv.reset()
    actions = rng.uniform(-1, 1, (steps // n_envs, n_envs, *venv.action_space.shape)).astype(np.float32)
    start = time.perf_counter()
    for a in actions:
        venv.step(a)
    seconds = time.perf_counter() - start
    venv.close()
    return len(actions) * n_envs / seconds


def _video_fps(folder: Path, frames: int) -> float:
    from optiq_rl.render import render_policy
    from optiq_rl.train import RLConfig, train

    cfg = RLConfig().updated({"env": "optiq/Track-v0", "env_kwargs.reference": str(data_root() / WALK),
                              "total_steps": 64, "algo_kwargs.n_steps": 64, "policy.net_arch": [16, 16],
                              "tensorboard": False, "env_kwargs.fall_termination": False,
                              "env_kwargs.max_tracking_error": None})
    policy = train(cfg, folder / "video.zip").out
    start = time.perf_counter()
    video = render_policy(policy, folder / "video.mp4", max_steps=frames)
    return video.frames / (time.perf_counter() - start)


def run(quick: bool = False) -> list[dict]:
    steps, rounds, n_envs, n_steps = (1024, 1, 2, 256) if quick else (8192, 3, 2, 1024)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ours, plain = [], []
        for _ in range(rounds):
            ours.append(_optiq_ppo(folder, steps, n_envs, n_steps))
            plain.append(_plain_ppo(steps, n_envs, n_steps))
        ratio = statistics.median(a / b for a, b in zip(ours, plain, strict=True))
        rows.append({"name": f"PPO Humanoid-v5 optiq train rl ({n_envs} envs)", "value": statistics.median(ours),
                     "unit": "steps/s", "ratio": ratio, "vs": "plain SB3"})
        rows.append({"name": f"PPO Humanoid-v5 plain SB3 ({n_envs} envs)", "value": statistics.median(plain),
                     "unit": "steps/s"})
        walk = {"reference": str(data_root() / WALK)}
        for env_id, kwargs in (("Humanoid-v5", {}), ("optiq/Track-v0", walk)):
            n = 2000 if quick else 6000
            dummy = _vec_steps(env_id, kwargs, "dummy", 2, n)
            sub = _vec_steps(env_id, kwargs, "subproc", 2, n)
            rows.append({"name": f"{env_id} DummyVecEnv, 2 envs", "value": dummy, "unit": "steps/s",
                         "ratio": dummy / sub, "vs": "SubprocVecEnv"})
            rows.append({"name": f"{env_id} SubprocVecEnv, 2 envs", "value": sub, "unit": "steps/s"})
        rows.append({"name": "MuJoCo video 640x480 (Track-v0)", "value": _video_fps(folder, 30 if quick else 120),
                     "unit": "frames/s"})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print_rows("optiq-rl training", [{**r, "value": f"{r['value']:.4g}",
                                      "ratio": f"{r['ratio']:.2f}" if "ratio" in r else ""} for r in run(args.quick)])


if __name__ == "__main__":
    main()
