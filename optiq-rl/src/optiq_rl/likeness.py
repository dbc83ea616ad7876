"""How much a policy's motion looks like the motion data (issue 11's measures for task-only rewards).

Three numbers, each for the policy's trajectories and, as the reference level, for the data's own clips:

- ``prediction_mm``: the motion model's own one-step prediction error on the motion: the mean distance (mm) between
  the root-relative joint positions it predicts for the next frame and those that follow (its ``features``
  ``positions`` slice: joints relative to the root, in the heading frame). Motion like the data the model learnt is
  motion it predicts well.
- ``foot_sliding_mps``: the mean horizontal speed (m/s) of the feet (joints named ``*ankle*`` or ``*foot*``) while
  they touch the ground: in frames where a foot is lower than the ``contact_height`` (m) above the data's standing
  foot height (the median over the data's clips of each clip's lowest foot position), default 2 cm, the same
  threshold for policy and data.
- ``angle_w1_deg``: the 1-Wasserstein distance (degrees) between the distribution of each joint's rotation angle
  (the angle of its local rotation, over all frames) in the policy's motion and in the data, averaged over joints
  (``scipy.stats.wasserstein_distance``); 0 when the two visit the same poses as often.

Trajectories come from ``rollout_motion`` (a policy with an adapter, its own env) or from clips (``clip_motion``);
both give feature rows in the model's layout and the joints' world positions, in the model's joint order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Motion:
    """One trajectory: raw feature rows ``rows [T, F]`` (the model's layout) and world joint positions
    ``pos [T, J, 3]`` (m, the model's joint order), at the model's frame rate."""

    rows: np.ndarray
    pos: np.ndarray


def rollout_motion(policy, episodes: int = 5, seed: int = 0, deterministic: bool = True) -> list[Motion]:
    """The motion of ``episodes`` episodes of ``policy`` (a ``train.Policy`` trained with an adapter) in its env."""
    from .adapters import AdapterError, MotionAdapter

    env = policy.make_env()
    try:
        if not isinstance(env, MotionAdapter):
            raise AdapterError("the policy has no motion-model adapter: train it with --pretrained", policy.path)
        out = []
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            rows, pos = [obs["history"][-1].copy()], [env.joint_positions()]
            done = False
            while not done:
                obs, _, terminated, truncated, _ = env.step(policy.act(obs, deterministic))
                rows.append(obs["history"][-1].copy())
                pos.append(env.joint_positions())
                done = terminated or truncated
            out.append(Motion(np.array(rows), np.array(pos)))
        return out
    finally:
        env.close()


def clip_motion(clips: Sequence, prior) -> list[Motion]:
    """The motion of ``clips`` (on the model's skeleton, any joint order: reordered by name) for ``prior``
    (``adapters.MotionPrior``)."""
    from optiq.features import featurize

    names = list(prior.features.skeleton.names)
    out = []
    for clip in clips:
        index = np.array([clip.skeleton.names.index(n) for n in names])
        rows = featurize(clip, prior.ckpt.feature_spec)
        out.append(Motion(rows[:, _row_order(prior, clip)] if not np.array_equal(index, np.arange(len(index)))
                          else rows, clip.world_positions()[:, index]))
    return out


def _row_order(prior, clip) -> np.ndarray:
    """Column order that turns ``clip``'s feature rows (its joint order) into the model's (same layout, joints
    permuted in the per-joint slices)."""
    from optiq.features import feature_layout

    theirs = feature_layout(clip.skeleton, prior.ckpt.feature_spec)
    mine = prior.layout
    cols = np.arange(mine.dim)
    names = list(prior.features.skeleton.names)
    their_names = list(clip.skeleton.names)
    for key in ("rotations", "positions", "velocities"):
        s_mine, s_theirs = mine.slices[key], theirs.slices[key]
        width = (s_mine.stop - s_mine.start) // len(mine.joints)
        src = np.arange(s_theirs.start, s_theirs.stop).reshape(len(theirs.joints), width)
        their_joint = {their_names[j]: k for k, j in enumerate(theirs.joints)}
        cols[s_mine] = np.concatenate([src[their_joint[names[j]]] for j in mine.joints])
    return cols


def prediction_error_mm(motions: Sequence[Motion], prior) -> float:
    """Mean over frames and joints of the distance (mm) between the model's next-frame prediction of the
    root-relative joint positions and the next frame's (``positions`` slice), one forward pass per trajectory."""
    import torch

    sl = prior.layout.slices["positions"]
    errs = []
    model = prior.model
    for m in motions:
        if len(m.rows) <= prior.context:
            continue
        x = torch.from_numpy(((m.rows - prior.mean) / prior.std).astype(np.float32))[None]
        with torch.inference_mode():
            pred = model(x, prior.cond(1, len(m.rows)))[0].numpy() * prior.std + prior.mean  # [T, F]: frame t+1
        k = prior.context - 1  # the first position with a full window of real frames
        p = pred[k:-1, sl].reshape(-1, 3)
        t = m.rows[k + 1:, sl].reshape(-1, 3)
        errs.append(np.linalg.norm(p - t, axis=-1))
    return 1000.0 * float(np.concatenate(errs).mean()) if errs else float("nan")


def feet(names: Sequence[str]) -> list[int]:
    """Indices of the feet: joints named like an ankle or a foot (not a toe)."""
    return [i for i, n in enumerate(names) if ("ankle" in n.lower() or "foot" in n.lower()) and "toe" not in n.lower()]


def foot_sliding(motions: Sequence[Motion], foot: Sequence[int], fps: float, ground: float,
                 contact_height: float = 0.02) -> float:
    """Mean horizontal speed (m/s) of ``foot`` joints over the frames where they are below ``ground +
    contact_height`` (m): central differences inside each trajectory."""
    speeds = []
    for m in motions:
        if len(m.pos) < 3:
            continue
        p = m.pos[:, foot]  # [T, K, 3]
        v = np.linalg.norm(p[2:, :, :2] - p[:-2, :, :2], axis=-1) * fps / 2.0  # [T - 2, K]
        low = p[1:-1, :, 2] < ground + contact_height
        speeds.append(v[low])
    s = np.concatenate(speeds) if speeds else np.zeros(0)
    return float(s.mean()) if s.size else float("nan")


def joint_angles(motions: Sequence[Motion], prior) -> np.ndarray:
    """Rotation angles ``[N, J - 1]`` (radians, in [0, pi]) of every joint's local rotation, all frames."""
    from optiq.features import decode_rotations

    lay = prior.layout
    rows = np.concatenate([m.rows for m in motions])
    q = decode_rotations(rows[:, lay.slices["rotations"]].reshape(len(rows), len(lay.joints), -1), prior.rotation)
    return 2.0 * np.arccos(np.clip(np.abs(q[..., 0]), 0.0, 1.0))


def angle_distance_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over joints of the 1-Wasserstein distance (degrees) between angle samples ``a [N, J]``, ``b [M, J]``."""
    from scipy.stats import wasserstein_distance

    return float(np.degrees(np.mean([wasserstein_distance(a[:, j], b[:, j]) for j in range(a.shape[1])])))


def likeness(policy_motion: Sequence[Motion], data_motion: Sequence[Motion], prior,
             contact_height: float = 0.02) -> dict[str, float]:
    """The three measures for the policy's motion and for the data's (see the module docstring)."""
    foot = feet(prior.features.skeleton.names)
    # The feet's height when they stand: the median over the data's clips of each clip's lowest foot position
    # (the clips are grounded one by one; one that dips lower must not move the threshold for all).
    ground = float(np.median([m.pos[:, foot, 2].min() for m in data_motion])) if foot else 0.0
    fps = prior.features.fps
    data_angles = joint_angles(data_motion, prior)
    return {"prediction_mm": prediction_error_mm(policy_motion, prior),
            "data_prediction_mm": prediction_error_mm(data_motion, prior),
            "foot_sliding_mps": foot_sliding(policy_motion, foot, fps, ground, contact_height) if foot else float("nan"),
            "data_foot_sliding_mps": foot_sliding(data_motion, foot, fps, ground, contact_height) if foot
            else float("nan"),
            "angle_w1_deg": angle_distance_deg(joint_angles(policy_motion, prior), data_angles),
            "frames": int(sum(len(m.rows) for m in policy_motion))}
