"""``optiq rl export``: the deterministic actor with VecNormalize folded in runs without SB3 (onnxruntime,
TorchScript) and gives SB3's ``predict(normalised obs, deterministic=True)`` to 1e-5 on observations of the env."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from optiq_rl.train import RLConfig, load_policy, normalize, train


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory):
    cfg = RLConfig().updated({"env": "Humanoid-v5", "total_steps": 128, "algo_kwargs.n_steps": 128,
                              "algo_kwargs.batch_size": 64, "algo_kwargs.n_epochs": 1, "tensorboard": False,
                              "policy.net_arch": [64, 64]})
    return train(cfg, tmp_path_factory.mktemp("export") / "p.zip").out


def _env_observations(policy, n=64):
    """Raw observations from rollouts of the policy (not the export's own samples) and SB3's actions for them,
    normalised by a VecNormalize that holds the stored statistics."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    env = policy.make_env()
    obs, _ = env.reset(seed=5)
    rows = []
    for _ in range(n):
        rows.append(obs)
        obs, _, term, trunc, _ = env.step(policy.act(obs))
        if term or trunc:
            obs, _ = env.reset()
    vn = normalize(DummyVecEnv([lambda: env]), policy.config, policy.meta["normalize"], training=False)
    obs = np.stack(rows).astype(np.float32)
    want, _ = policy.model.predict(vn.normalize_obs(obs), deterministic=True)
    vn.close()
    return obs, want


@pytest.mark.parametrize("fmt,suffix", [("onnx", ".onnx"), ("torchscript", ".pt")])
def test_export_matches_sb3(policy_file, tmp_path, fmt, suffix):
    from optiq.cli.main import build_cli

    out = tmp_path / f"actor{suffix}"
    result = CliRunner().invoke(build_cli(), ["rl", "export", str(policy_file), "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "us per step" in result.stdout  # the measured latency is printed
    obs, want = _env_observations(load_policy(policy_file))
    if fmt == "onnx":
        import onnxruntime

        got = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"obs": obs})[0]
    else:
        import warnings

        import torch

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript; it works
            got = torch.jit.load(str(out))(torch.from_numpy(obs)).numpy()
    assert got.shape == want.shape and np.abs(got - want).max() <= 1e-5


def test_export_bad_suffix_is_one_line(policy_file, tmp_path):
    from optiq.cli.main import build_cli

    result = CliRunner().invoke(build_cli(), ["rl", "export", str(policy_file), "--format", "onnx", "--out",
                                              str(tmp_path / "a.pt")])
    assert result.exit_code == 2 and "expected .onnx" in result.stderr
    assert not (tmp_path / "a.pt").exists()


def test_export_sac_matches_sb3(tmp_path):
    import onnxruntime
    from optiq_rl.export import export_policy

    cfg = RLConfig().updated({"env": "Humanoid-v5", "algo": "sac", "total_steps": 64, "tensorboard": False,
                              "algo_kwargs.learning_starts": 32, "algo_kwargs.batch_size": 16,
                              "policy.net_arch": [32, 32]})
    path = train(cfg, tmp_path / "sac.zip").out
    result = export_policy(path, tmp_path / "sac.onnx", "onnx")
    assert result["max_diff"] <= 1e-5 and result["latency_us"] > 0
    obs, want = _env_observations(load_policy(path), n=16)  # tanh-squashed, scaled to the action space
    got = onnxruntime.InferenceSession(str(tmp_path / "sac.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"obs": obs})[0]
    assert np.abs(got - want).max() <= 1e-5
