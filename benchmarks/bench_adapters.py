"""What a pretrained motion model costs inside RL (issue 11): per control step of ``optiq/Track-v0``, the encoder's
forward pass (batch 1, as a policy acting in one env; one torch thread) and the ``prior`` adapter's whole next-pose
prediction (normalise, forward, decode, PD targets), for model sizes from a small MLP to a 64-frame transformer,
each as a ratio to the env's own control step (``implicit_pd``, 20 physics substeps at 600 Hz, the zero action);
and the env step with the ``feature`` and ``prior`` adapters against the plain env, interleaved in rounds.

The models are built untrained (the cost does not depend on the weights) on the DeepMimic humanoid's feature rows
(179 numbers). Rows: ``value`` microseconds, ``ratio`` to the plain env step (``vs``).

Run: ``python benchmarks/bench_adapters.py [--quick]`` or ``python benchmarks/run.py --only adapters``.
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
#: (name, arch, model config, frames of history the encoder reads)
SIZES = [("mlp 4 frames, 64 wide", "mlp", {"context": 4, "hidden": 64, "layers": 1}, 4),
         ("mlp 4 frames, 256 wide x 3 (exp_bootstrap)", "mlp", {"context": 4, "hidden": 256, "layers": 3}, 4),
         ("mlp 8 frames, 512 wide x 3", "mlp", {"context": 8, "hidden": 512, "layers": 3}, 8),
         ("transformer 16 frames (default size)", "transformer", {"context": 16}, 16),
         ("transformer 64 frames (default size)", "transformer", {"context": 64}, 64)]


def _model(arch: str, config: dict, folder: Path, walk: str) -> Path:
    """An untrained checkpoint of ``arch`` on the DeepMimic character's features (the walk's skeleton and
    statistics, so the adapter accepts it)."""
    import optiq
    import torch
    from optiq.features import FeatureSpec, Normalizer, featurize, resolve_spec
    from optiq_models.checkpoint import save_checkpoint
    from optiq_models.nets import build_model

    clip = optiq.load_clip(walk)
    spec = resolve_spec(clip, FeatureSpec())
    rows = featurize(clip, spec)
    torch.manual_seed(0)
    model = build_model(arch, rows.shape[1], None, config)
    path = folder / f"{arch}_{abs(hash(str(config)))}.pt"
    save_checkpoint(path, model, feature_spec=spec, normalizer=Normalizer.fit([rows]), skeleton=clip.skeleton,
                    extra={"fps": [clip.fps]})
    return path


def _step_us(env, steps: int) -> float:
    """Median microseconds per control step over segments of ``steps`` zero-action steps from fixed frames."""
    zero = np.zeros(env.action_space.shape)
    times = []
    for start in (0, 10, 20):
        env.reset(seed=0, options={"frame": start})
        t0 = time.perf_counter()
        for _ in range(steps):
            env.step(zero)
        times.append((time.perf_counter() - t0) / steps)
    return statistics.median(times) * 1e6


def run(quick: bool = False) -> list[dict]:
    import torch
    from optiq_rl.adapters import encoder_cost
    from optiq_rl.train import make_env

    torch.set_num_threads(1)
    walk = str(data_root() / WALK)
    env_kwargs = {"reference": walk, "character": "deepmimic", "control": "implicit_pd",
                  "max_tracking_error": None, "fall_termination": False, "max_seconds": 5.0}
    rounds, steps = (2, 20) if quick else (5, 60)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = {name: (_model(arch, cfg, folder, walk), frames) for name, arch, cfg, frames in SIZES}
        plain = make_env("optiq/Track-v0", env_kwargs)
        small = models[SIZES[1][0]][0]
        feature = make_env("optiq/Track-v0", env_kwargs, adapter={"pretrained": str(small), "mode": "feature"})
        prior = make_env("optiq/Track-v0", {**env_kwargs, "action_mode": "residual"},
                         adapter={"pretrained": str(small), "mode": "prior"})
        base, feat, pri = [], [], []
        for _ in range(rounds):  # interleaved: the machine's load changes all three alike
            base.append(_step_us(plain, steps))
            feat.append(_step_us(feature, steps))
            pri.append(_step_us(prior, steps))
        env_us = statistics.median(base)
        rows.append({"name": "Track-v0 control step (implicit_pd)", "value": env_us, "unit": "us"})
        rows.append({"name": "  with the feature adapter (history)", "value": statistics.median(feat), "unit": "us",
                     "ratio": statistics.median(f / b for f, b in zip(feat, base, strict=True)),
                     "vs": "plain step"})
        rows.append({"name": "  with the prior adapter (mlp 256 x 3)", "value": statistics.median(pri), "unit": "us",
                     "ratio": statistics.median(p / b for p, b in zip(pri, base, strict=True)),
                     "vs": "plain step"})
        for name, (path, frames) in models.items():
            e = make_env("optiq/Track-v0", {**env_kwargs, "action_mode": "residual"},
                         adapter={"pretrained": str(path), "mode": "prior", "history": frames})
            cost = encoder_cost(e.prior, frames, repeats=20 if quick else 200)
            e.close()
            rows.append({"name": f"encoder: {name} ({cost['encoder_parameters'] / 1e6:.2f} M)",
                         "value": cost["encoder_us"], "unit": "us", "ratio": cost["encoder_us"] / env_us,
                         "vs": "env step"})
            rows.append({"name": f"prior next pose: {name}", "value": cost["prior_us"], "unit": "us",
                         "ratio": cost["prior_us"] / env_us, "vs": "env step"})
        for e in (plain, feature, prior):
            e.close()
    return [{**r, "value": round(r["value"]), **({"ratio": round(r["ratio"], 2)} if "ratio" in r else {})}
            for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print_rows("adapters: cost per control step (us), ratio to the env's step", run(args.quick))


if __name__ == "__main__":
    main()
