"""Evaluation of a policy: ``evaluate(policy, episodes=20, out="report.json")``.

Every env: return, episode length, terminations (episodes that ended early, not by the time limit or the end
of the clip) and falls among them (the env's ``fell``: a fall body on the ground; Humanoid-v5: termination). ``optiq/Track-v0`` adds the protocol of PHC / UHC, computed from the joints' world positions of the
body and of the reference at the same frame:

- ``success``: the fraction of episodes whose mean body error (mean over joints of ``|p - p_ref|``) stays under
  0.5 m at every step and that end without termination;
- ``mpjpe_global_mm``: mean over steps and joints of ``|p - p_ref|`` (mm);
- ``mpjpe_local_mm``: the same with both poses relative to their root (root-relative MPJPE, mm);
- ``accel_error_mm``: mean of ``|a - a_ref|`` with ``a`` the second difference of the positions over control
  steps (mm / step^2, as PHC reports it per frame).

``optiq/Locomotion-v0`` adds ``velocity_error`` (m/s, mean of ``|v_xy - v_target|``) and ``energy`` (mean cost of
transport, the motors' mechanical power over m g |v|).

The report is docs/viz.md's version 2: an ``rl`` section with the metrics per policy (and the zero-action
baseline when asked), and a ``curves`` section: the learning curves from the ``.progress.jsonl`` files of
training, the mean return over runs (seeds) against env steps with their standard deviation, on a common grid.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from optiq.atomic import atomic_text, check_output_path

from .train import Policy, beside, load_policy, rollout

SUCCESS_M = 0.5  # PHC / UHC: a tracked clip fails when the mean body error passes 0.5 m
REPORT_VERSION = 2


class _ZeroPolicy:
    """The zero action: with residual PD targets (``_reference_pd_env``), the PD controller held at the
    reference."""

    def __init__(self, policy: Policy):
        self.shape = policy.model.action_space.shape

    def act(self, obs, deterministic: bool = True):
        return np.zeros(self.shape, dtype=np.float32)


def evaluate(policy: str | os.PathLike | Policy, *, env: str | None = None, episodes: int = 20, seed: int = 0,
             deterministic: bool = True, baseline: bool = False, curves: Sequence[str | os.PathLike] | None = None,
             out: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run ``episodes`` episodes (seeds ``seed, seed + 1, ...``) and return the report (written to ``out``)."""
    if out is not None:
        check_output_path(out, suffixes=(".json",), inputs=[os.fspath(policy)] if not isinstance(policy, Policy)
                          else [])
    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    e = pol.make_env(env)
    try:
        env_id = env or pol.meta["env"]
        policies = {"policy": run_episodes(pol, e, episodes, seed, deterministic)}
        if baseline:
            held = _reference_pd_env(pol, env, e)
            try:
                policies["zero action"] = run_episodes(_ZeroPolicy(pol), held, episodes, seed, True)
            finally:
                if held is not e:
                    held.close()
    finally:
        e.close()
    report: dict[str, Any] = {"version": REPORT_VERSION, "title": f"{Path(pol.path).name} on {env_id}",
                              "rl": {"env": env_id, "policy": os.fspath(pol.path), "episodes": episodes,
                                     "steps_trained": pol.meta["steps"], "policies": policies}}
    runs = [Path(p) for p in (curves or [pol.path])]
    curve = learning_curves(runs)
    if curve is not None:
        report["curves"] = curve
    if out is not None:
        with atomic_text(out, suffixes=(".json",)) as fh:
            json.dump(report, fh, indent=1)
    return report


def _reference_pd_env(pol: Policy, env_id: str | None, env):
    """The env the zero-action baseline runs in: Track-v0 with residual PD targets (and PD control where the
    policy sends torques), so that the zero action holds the PD controller at the reference whatever the policy's
    action mode; any other env as it is."""
    config = getattr(env.unwrapped, "config", None)
    if not hasattr(env.unwrapped, "references") or (config.action_mode == "residual" and config.control != "torque"):
        return env
    return pol.make_env(env_id, {"action_mode": "residual",
                                 "control": "spd" if config.control == "torque" else config.control})


def run_episodes(pol, env, episodes: int, seed: int, deterministic: bool) -> dict[str, float]:
    """The metrics of ``episodes`` episodes of ``pol`` (means over episodes; see the module's docstring)."""
    inner = env.unwrapped
    tracking = hasattr(inner, "references")
    locomotion = hasattr(inner, "target_velocity")
    rows = []
    for i in range(episodes):
        trace: list[tuple[np.ndarray, np.ndarray]] = []
        loco: list[tuple[float, float]] = []

        def on_step(e, info, trace=trace, loco=loco):
            if tracking:
                trace.append((inner._body.pos.copy(), inner.ref.pos[inner.frame].copy()))
            if locomotion:
                v = inner.sim.data.qvel[:2]
                loco.append((float(np.hypot(*(v - info["target_velocity"]))), -float(info["value_energy"])))

        ep = rollout(pol, env, seed=seed + i, deterministic=deterministic, on_step=on_step)
        # A fall: the env's own word where it has one (the optiq envs: a fall body touched the ground; Track-v0
        # also terminates on a tracking error), else termination (Humanoid-v5: unhealthy, its torso too low).
        fell = bool(ep["infos"][-1].get("fell", ep["terminated"])) if ep["terminated"] else False
        row = {"return": ep["return"], "length": ep["length"], "fall": float(fell),
               "termination": float(ep["terminated"])}
        if tracking:
            row.update(tracking_metrics(np.stack([a for a, _ in trace]), np.stack([b for _, b in trace]),
                                        ep["terminated"]))
        if locomotion and loco:
            row["velocity_error"], row["energy"] = np.mean(loco, axis=0).tolist()
        rows.append(row)
    keys = rows[0].keys()
    out = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    out["return_std"] = float(np.std([r["return"] for r in rows]))
    out["falls"] = int(sum(r["fall"] for r in rows))
    out["terminations"] = int(sum(r["termination"] for r in rows))
    del out["fall"], out["termination"]
    if tracking:
        out["success"] = out.pop("success_episode")
    return out


def tracking_metrics(pos: np.ndarray, ref: np.ndarray, terminated: bool) -> dict[str, float]:
    """PHC / UHC metrics of one episode: ``pos``, ``ref`` ``[T, J, 3]`` world joint positions (m) of the body
    and of the reference at the same steps; ``terminated`` whether it ended early (a fall or too far off)."""
    err = np.linalg.norm(pos - ref, axis=-1)                                  # [T, J] m
    local = np.linalg.norm((pos - pos[:, :1]) - (ref - ref[:, :1]), axis=-1)  # root-relative
    out = {"mpjpe_global_mm": 1000.0 * float(err.mean()), "mpjpe_local_mm": 1000.0 * float(local.mean()),
           "success_episode": float(not terminated and bool((err.mean(-1) < SUCCESS_M).all())),
           "max_body_error_m": float(err.max())}
    if len(pos) >= 3:
        acc = pos[2:] - 2.0 * pos[1:-1] + pos[:-2]
        acc_ref = ref[2:] - 2.0 * ref[1:-1] + ref[:-2]
        out["accel_error_mm"] = 1000.0 * float(np.linalg.norm(acc - acc_ref, axis=-1).mean())
    else:
        out["accel_error_mm"] = float("nan")
    return out


def read_progress(policy: str | os.PathLike) -> list[dict[str, Any]]:
    """The training curve of a policy file: the rows of ``<stem>.progress.jsonl`` beside it ([] when none)."""
    path = beside(policy, ".progress.jsonl")
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r.get("return_mean") is not None]


def learning_curves(policies: Sequence[Path], points: int = 50) -> dict[str, Any] | None:
    """The ``curves`` section: mean and std over runs of the mean episode return, on ``points`` env-step ticks
    up to the shortest run (each run interpolated linearly); None when no run has a curve."""
    runs = [read_progress(p) for p in policies]
    runs = [r for r in runs if r]
    if not runs:
        return None
    end = min(r[-1]["steps"] for r in runs)
    start = max(r[0]["steps"] for r in runs)
    ticks = np.unique(np.linspace(start, end, points).round()) if end > start else np.array([float(end)])
    ys = np.stack([np.interp(ticks, [x["steps"] for x in r], [x["return_mean"] for x in r]) for r in runs])
    return {"steps": ticks.tolist(), "metric": "mean episode return", "unit": "env steps", "runs": len(runs),
            "series": {"return": ys.mean(0).tolist()}, "std": {"return": ys.std(0).tolist()}}
