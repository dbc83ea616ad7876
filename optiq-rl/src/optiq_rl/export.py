"""Export of a policy for real-time control without SB3: ``export_policy("p.zip", "p.onnx", "onnx")``.

The exported function is the deterministic actor with VecNormalize's observation normalisation folded in::

    action [B, A] = actor(clip((obs [B, D] - mean) / sqrt(var + eps), -clip_obs, clip_obs))

with ``obs`` the env's raw observation (float32). PPO: the Gaussian's mean, clipped to the action space (what
SB3's ``predict(deterministic=True)`` returns). SAC: ``tanh`` of the mean, scaled to the action space. Before it is
written, the export is compared with SB3's ``predict(normalised obs, deterministic=True)`` on observations spread
as the training's (mean +- 3 std); more than 1e-5 apart is an error and nothing is written. The latency of one
step (batch 1, one CPU thread) is measured on the written file, with onnxruntime for ONNX.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from optiq.atomic import atomic_path
from optiq.errors import OptiqError
from torch import nn

from .train import Policy, load_policy

FORMATS = {"onnx": (".onnx",), "torchscript": (".pt", ".ts")}
TOLERANCE = 1e-5


class ExportedActor(nn.Module):
    """``obs [B, D]`` float32 (raw) -> ``action [B, A]``: normalisation, the actor's network, the action bounds."""

    def __init__(self, policy: Policy):
        super().__init__()
        stats, model = policy.meta["normalize"], policy.model
        dim = int(np.prod(model.observation_space.shape))
        mean = np.asarray(stats["obs_mean"], dtype=np.float64) if stats["norm_obs"] else np.zeros(dim)
        var = np.asarray(stats["obs_var"], dtype=np.float64) if stats["norm_obs"] else np.ones(dim) - stats["epsilon"]
        # Folded into one scale and shift (float64 first, so the float32 result matches VecNormalize's).
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("inv_std", torch.as_tensor(1.0 / np.sqrt(var + stats["epsilon"]), dtype=torch.float32))
        self.clip_obs = float(stats["clip_obs"]) if stats["norm_obs"] else float("inf")
        space = model.action_space
        self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32))
        self.sac = policy.meta["algo"] == "sac"
        self.policy = (model.policy.actor if self.sac else model.policy).eval()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = torch.clamp((obs - self.mean) * self.inv_std, -self.clip_obs, self.clip_obs)
        if self.sac:
            actor = self.policy
            a = torch.tanh(actor.mu(actor.latent_pi(actor.extract_features(x, actor.features_extractor))))
            return self.low + 0.5 * (a + 1.0) * (self.high - self.low)
        p = self.policy
        latent = p.mlp_extractor.forward_actor(p.extract_features(x, p.pi_features_extractor))
        return torch.clamp(p.action_net(latent), self.low, self.high)


def export_policy(path: str | os.PathLike, out: str | os.PathLike, fmt: str = "onnx", *,
                  samples: int = 256, seed: int = 0) -> dict[str, Any]:
    """Write the actor of policy file ``path`` to ``out`` as ``fmt`` (onnx | torchscript), atomically. Returns
    ``observation_dim``, ``action_dim``, ``max_diff`` (to SB3) and ``latency_us`` (batch 1, one thread)."""
    if fmt not in FORMATS:
        raise OptiqError(f"unknown export format {fmt!r}; expected {', '.join(FORMATS)}")
    policy = load_policy(path)
    if policy.config.adapter:
        # Its actor reads the feature history that the adapter keeps in Python (and, for prior, a second network
        # makes the PD targets): a single [B, D] -> [B, A] graph would not be the policy.
        raise OptiqError("a policy trained with a pretrained motion model (--pretrained) reads the adapter's feature "
                         "history: its export is not supported yet; run it with optiq eval rl / optiq viz video",
                         path)
    actor = ExportedActor(policy)
    obs = sample_observations(policy, samples, seed)
    expected, _ = policy.model.predict(policy.normalize(obs), deterministic=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with atomic_path(out, suffixes=FORMATS[fmt], inputs=(path,)) as tmp:
            run = _torchscript(actor, obs, tmp) if fmt == "torchscript" else _onnx(actor, obs, tmp)
            diff = float(np.abs(run(obs) - expected).max())
            if not diff <= TOLERANCE:
                raise OptiqError(f"the {fmt} export differs from SB3's predict by {diff:.3g} (> {TOLERANCE:g})",
                                 out)
            latency = _latency(run, obs[:1])
    finally:
        torch.set_num_threads(threads)
    return {"observation_dim": obs.shape[1], "action_dim": expected.shape[1], "max_diff": diff,
            "latency_us": latency * 1e6, "format": fmt, "out": Path(out)}


def sample_observations(policy: Policy, n: int, seed: int = 0) -> np.ndarray:
    """``[n, D]`` float32 raw observations spread as the training's (normal, VecNormalize's mean and std; clipping
    is exercised by the tails)."""
    stats = policy.meta["normalize"]
    rng = np.random.default_rng(seed)
    mean, std = np.asarray(stats["obs_mean"]), np.sqrt(np.asarray(stats["obs_var"]))
    return (mean + 3.0 * std * rng.standard_normal((n, mean.size))).astype(np.float32)


def _torchscript(actor: ExportedActor, obs: np.ndarray, tmp: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.13 deprecates TorchScript; it still works
        traced = torch.jit.trace(actor, torch.from_numpy(obs[:2]), check_trace=False)
        torch.jit.save(traced, str(tmp))
        loaded = torch.jit.load(str(tmp))

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return loaded(torch.from_numpy(x)).numpy()

    return run


def _onnx(actor: ExportedActor, obs: np.ndarray, tmp: Path):
    try:
        import onnxruntime
    except ImportError:
        raise OptiqError('ONNX export needs onnx, onnxscript and onnxruntime: pip install "optiq-rl[onnx]"') \
            from None
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(actor, (torch.from_numpy(obs[:2]),), dynamo=True, input_names=["obs"],
                                        output_names=["action"], dynamic_shapes={"obs": {0: torch.export.Dim("batch")}},
                                        verbose=False)
    finally:
        quiet.setLevel(level)
    program.save(str(tmp))
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(tmp), opts, providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {"obs": x})[0]

    return run


def _latency(run, obs: np.ndarray, repeats: int = 200) -> float:
    """Median seconds of one call of ``run`` on a batch of one."""
    for _ in range(20):
        run(obs)
    times = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        run(obs)
        times[i] = time.perf_counter() - t0
    return float(np.median(times))
