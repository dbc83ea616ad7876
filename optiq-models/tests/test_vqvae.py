"""The motion VQ-VAE on real Bandai-Namco takes: it overfits one clip, dead codes come back to life, tokens round
trip, every quantizer trains, residual codebooks reconstruct better than one, the checkpoint loads with
``weights_only=True``, bad windows are one clear error, the CLI trains it, and a stopped run resumes exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from optiq_models.checkpoint import load_checkpoint, save_checkpoint
from optiq_models.nets import VQVAE
from optiq_models.nets.base import ConfigError
from optiq_models.nets.quantizers import Quantizer
from optiq_models.train import ConfigError as TrainConfigError
from optiq_models.train import frame_velocity_loss, load_config, resume_path, train

TINY = ["model.width=32", "model.depth=1", "model.code_dim=16", "model.codebook_size=64", "window=16",
        "batch_size=16", "lr=2e-3", "warmup_steps=5", "log_interval=1", "eval_interval=20", "eval_windows=16"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def walk_windows(data_dir):
    """One real walk (Bandai-Namco, 30 fps, 146 frames) as normalised feature rows cut into 32-frame windows
    every 4 frames: ``[29, 32, F]``."""
    from optiq import load_clip
    from optiq.features import FeatureSpec, Normalizer, featurize, resolve_spec

    clip = load_clip(data_dir / "corpora" / "bandai_namco" / "data" / "dataset-1_walk_active_001.bvh")
    rows = featurize(clip, resolve_spec(clip, FeatureSpec()))
    x = torch.from_numpy(np.asarray(Normalizer.fit([rows]).normalize(rows), dtype=np.float32))
    return x.unfold(0, 32, 4).permute(0, 2, 1).contiguous()


def _tiny(feature_dim, **over):
    torch.manual_seed(0)
    cfg = {"width": 32, "depth": 1, "code_dim": 16, "codebook_size": 64, **over}
    return VQVAE(feature_dim, **cfg)


def _fit(model, x, steps, lr=3e-3):
    """``steps`` of Adam on the reconstruction of ``x`` (MSE) + the model's own term; returns the model."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        model.train()
        loss = (model(x) - x).pow(2).mean() + model.last_aux["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def _mse(model, x):
    with torch.no_grad():
        model.eval()
        return float((model(x) - x).pow(2).mean())


def test_a_tiny_vqvae_overfits_one_clip(walk_windows):
    x = walk_windows
    model = _tiny(x.shape[2])
    model.train()
    model(x)  # seeds the codebook from the encoder outputs
    before = _mse(model, x)
    after = _mse(_fit(model, x, 200), x)
    # Measured: 0.97 -> 0.10 (normalised units, 9.6x) in 200 steps, about 4 s on one core.
    assert after < before / 5, (before, after)
    assert model.last_aux["usage"] > 0.2


def test_dead_code_reset_revives_unused_codes(walk_windows):
    model = _tiny(walk_windows.shape[2])
    with torch.no_grad():
        z = model.encoder.latents(walk_windows).reshape(-1, 16)  # real encoder outputs, [N, 16]
    used = {}
    for mode in ("ema_reset", "ema"):
        torch.manual_seed(0)
        q = Quantizer(64, 16, mode)
        q.train()
        q(z)  # the first batch seeds every code
        with torch.no_grad():  # kill half the codebook: far from every latent, counted never
            q.codebook[32:] = 1e3
            if q.ema:
                q.ema_sum[32:] = 1e3 * q.ema_count[32:, None]
            q.ema_count[32:] = 0.0
        before = int(q.nearest(z).unique().numel())
        dead_before = int(q.dead().sum())
        q(z)  # one training step on the same latents
        used[mode] = (before, int(q.nearest(z).unique().numel()), dead_before, int(q.dead().sum()))
    before, after, dead_before, dead_after = used["ema_reset"]
    assert before <= 32 and dead_before >= 32
    assert dead_after == 0 and after >= before + 16, used  # the dead codes now sit on latents and are chosen
    assert used["ema"][1] <= 32 and used["ema"][3] >= 32, used  # without the reset they stay dead


def test_encode_decode_round_trip(walk_windows):
    x = walk_windows[:4]
    model = _tiny(x.shape[2], num_quantizers=3, quantize_dropout=0.2)
    model.train()
    model(walk_windows)
    model.eval()
    with torch.no_grad():
        ids = model.encode(x)
        assert ids.shape == (4, 32 // 4, 3) and ids.dtype == torch.int64
        assert int(ids.min()) >= 0 and int(ids.max()) < 64
        assert torch.equal(model.decode(ids), model(x))
        assert model.decode(ids[..., :1]).shape == x.shape
        assert model.encoder(x[:, :30]).shape == (4, model.encoder.features_dim)
    assert model.code_counts().shape == (3, 64)
    with pytest.raises(ConfigError, match=r"token ids must lie in \[0, 64\)"):
        model.decode(ids + 64)
    with pytest.raises(ConfigError, match="multiple of its downsampling 4"):
        model(x[:, :30])


def test_frame_velocity_loss_compares_differences_of_frames(walk_windows):
    x = walk_windows[:2]
    w = torch.ones(x.shape[2])
    assert float(frame_velocity_loss(x + 0.5, x, w)) == pytest.approx(0.0, abs=1e-9)  # an offset moves no frame
    jitter = x + 0.1 * torch.tensor([1.0, -1.0]).repeat(16)[None, :, None]
    assert float(frame_velocity_loss(jitter, x, w)) == pytest.approx(0.5 * 0.2 ** 2, rel=1e-4)


@pytest.mark.parametrize("quantizer", ["ema_reset", "ema", "reset", "orig"])
def test_every_quantizer_trains(walk_windows, walk_run, tmp_path, cache, quantizer):
    x = walk_windows
    model = _tiny(x.shape[2], quantizer=quantizer)
    model.train()
    model(x)
    before = _mse(model, x)
    after = _mse(_fit(model, x, 60), x)
    # Measured after 80 steps: 5.2x (ema_reset), 5.6x (ema), 5.9x (reset), 3.9x (orig).
    assert after < before / 2.5, (quantizer, before, after)
    # And in the training loop, with the codebook (a parameter for reset and orig) in its checkpoint.
    cfg = load_config("vqvae", [*TINY, f"model.quantizer={quantizer}", "max_steps=8", "eval_interval=4"])
    result = train(cfg, walk_run, tmp_path / "vq.pt", cache_dir=cache, progress=False)
    assert all(np.isfinite(h["loss"]) for h in result.history)
    _, ck = load_checkpoint(tmp_path / "vq.pt")
    assert ck.kind == "tokenizer" and ck.model_config["quantizer"] == quantizer
    assert "val_recon" in ck.extra


def test_residual_codebooks_quantize_better_and_quantize_dropout_uses_fewer(walk_windows):
    # What residual codebooks buy: latents closer to their (summed) codes. Measured after 60 steps, relative
    # squared error |z - z_q|^2 / |z|^2: 0.18 with one codebook of 16 codes; 0.11, 0.072, 0.055, 0.044 with the
    # first 1..4 of four (the reconstruction of this tiny, short-trained decoder hardly differs: 0.25 vs 0.24).
    x = walk_windows
    errors = {}
    for q in (1, 4):
        model = _fit(_tiny(x.shape[2], codebook_size=16, num_quantizers=q, quantize_dropout=0.5), x, 60).eval()
        with torch.no_grad():
            z = model.encoder.latents(x).reshape(-1, 16)
            ids = model.quantizer.encode(z)
            errors[q] = [float((z - model.quantizer.decode(ids[:, :k])).pow(2).sum() / z.pow(2).sum())
                         for k in range(1, q + 1)]
    assert errors[4][-1] < 0.5 * errors[1][0], errors
    assert all(b < a for a, b in zip(errors[4], errors[4][1:], strict=False)), errors  # each codebook refines
    model = _tiny(x.shape[2], num_quantizers=4, quantize_dropout=1.0)
    model.train()
    depths = []
    for _ in range(20):
        model(x[:4])
        depths.append(model.last_aux["depth"])
    assert set(depths) == {1, 2, 3, 4}  # q uniform in 1..4
    model.eval()
    model(x[:4])
    assert model.last_aux["depth"] == 4  # evaluation always uses every codebook


def test_checkpoint_loads_weights_only_and_reconstructs_identically(walk_windows, tmp_path):
    model = _tiny(walk_windows.shape[2], num_quantizers=2)
    model.train()
    model(walk_windows)
    path = save_checkpoint(tmp_path / "vq.pt", model)
    raw = torch.load(path, weights_only=True)
    assert raw["kind"] == "tokenizer" and "quantizer.layers.1.codebook" in raw["state_dict"]
    loaded, ck = load_checkpoint(path)
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(walk_windows), model(walk_windows))
        assert torch.equal(loaded.encode(walk_windows), model.encode(walk_windows))
    assert torch.equal(loaded.code_counts(), model.code_counts())


def test_a_window_that_is_not_a_multiple_of_the_downsampling_is_one_error(walk_run, tmp_path, cache):
    for window in (30, 2):
        with pytest.raises(TrainConfigError, match=rf"key 'window' \({window}\) must be a multiple of the tokenizer's "
                                              r"downsampling \(4 frames per code\)"):
            train(load_config("vqvae", [*TINY, f"window={window}"]), walk_run, tmp_path / "vq.pt", cache_dir=cache)
    assert not list(tmp_path.iterdir())


def test_the_cli_trains_a_vqvae_from_a_motion_file(data_dir, tmp_path):
    from click.testing import CliRunner
    from optiq.cli.main import build_cli

    bandai = data_dir / "corpora" / "bandai_namco" / "data"
    out = tmp_path / "x.pt"
    args = ["train", "model", "--config", "vqvae", "--out", str(out), "--max-steps", "20",
            "--cache-dir", str(tmp_path / "cache"), "--model.width", "16", "--model.depth", "1",
            "--model.code_dim", "8", "--model.codebook_size", "32", "--batch-size", "4", "--eval-interval", "10",
            "--eval-windows", "4"]
    for name in ("walk_active", "walk_angry", "run_active", "run_angry"):
        args += ["--data", str(bandai / f"dataset-1_{name}_001.bvh")]
    result = CliRunner().invoke(build_cli(), args)
    assert result.exit_code == 0, result.output
    _, ck = load_checkpoint(out)
    assert ck.kind == "tokenizer" and ck.config["max_steps"] == 20
    lines = [json.loads(t) for t in out.with_name("x.metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 20 and {"perplexity", "usage", "recon"} <= set(lines[-1])


def test_resume_equals_an_uninterrupted_run(walk_run, tmp_path, cache):
    # Residual codebooks with quantize-dropout: torch's generator (dropout depth, re-seeded codes) and numpy's
    # (windows) both matter, and the codebooks live in buffers that the state must carry.
    cfg = load_config("vqvae", [*TINY, "max_steps=30", "ckpt_interval=10", "eval_interval=10",
                                "model.num_quantizers=2", "model.quantize_dropout=0.5"])
    whole = train(cfg, walk_run, tmp_path / "whole.pt", cache_dir=cache, progress=False)

    def stop(step, metrics):
        if step == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, walk_run, tmp_path / "cut.pt", cache_dir=cache, progress=False, callback=stop)
    resumed = train(cfg, walk_run, tmp_path / "cut.pt", cache_dir=cache, progress=False, resume=True)
    assert resumed.steps == whole.steps == 30
    a = torch.load(resume_path(tmp_path / "whole.pt"), weights_only=True)["model"]
    b = torch.load(resume_path(tmp_path / "cut.pt"), weights_only=True)["model"]
    assert a.keys() == b.keys() and "quantizer.layers.0.ema_count" in a
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.best_val == whole.best_val


DDP_SCRIPT = """
import os, sys, torch
torch.set_num_threads(1)
from optiq_models.train import load_config, train
r = train(load_config("vqvae", sys.argv[4:]), sys.argv[1], sys.argv[2], cache_dir=sys.argv[3], progress=False)
state = r.model.state_dict()
with open(os.path.join(os.path.dirname(sys.argv[2]), "rank" + os.environ["RANK"] + ".txt"), "w") as fh:
    fh.write(" ".join(f"{k}={state[k].double().sum().item():.12e}" for k in sorted(state)))
    fh.write(f" loss={r.history[0]['loss']:.12e}")
"""


def test_two_process_ddp_keeps_one_codebook(walk_run, tmp_path, cache):
    import os
    import subprocess
    import sys

    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    # Residual codebooks with quantize-dropout and dead-code reset: every random choice and every statistic of
    # the codebooks must agree between the ranks, or their codebooks drift apart.
    over = [*TINY, "max_steps=12", "eval_interval=6", "model.num_quantizers=2", "model.quantize_dropout=0.5"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
           str(walk_run), str(tmp_path / "ddp.pt"), str(cache), *over]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    r0, r1 = (dict(t.split("=") for t in (tmp_path / f"rank{r}.txt").read_text().split()) for r in (0, 1))
    loss0, loss1 = r0.pop("loss"), r1.pop("loss")
    assert loss0 != loss1  # each rank trains on its own shard
    assert "quantizer.layers.1.codebook" in r0 and r0 == r1  # yet weights and codebooks are the same


def test_trains_from_an_npy_trajectory_file_with_expmap_rotations(data_dir, tmp_path, cache):
    """``--data walk_run.npy``: the NPY trajectory format (``[time, root_pos, root_rot (wxyz), dof_pos, flag]``
    with its dof-map spec) of DeepMimic's walk and run, split at the transition flag into two clips, trains a
    tokenizer directly, with expmap rotation features; the checkpoint's feature spec says expmap and its tokens
    decode to both clips' lengths."""
    from optiq_models.tokens import encode_clips

    joints = json.loads((data_dir / "deepmimic" / "humanoid3d_character.txt").read_text())["Skeleton"]["Joints"]
    from scipy.spatial.transform import Rotation

    dofs, blocks = [], []
    for j in joints[1:]:
        if j["Type"] == "spherical":
            dofs += [{"name": f"{j['Name']}_{a}", "joint": j["Name"], "axis": a} for a in "zyx"]
        elif j["Type"] == "revolute":
            dofs.append({"name": j["Name"], "joint": j["Name"], "axis": [0, 0, 1]})
    for k, name in enumerate(("humanoid3d_walk.txt", "humanoid3d_run.txt")):
        frames = np.array(json.loads((data_dir / "deepmimic" / name).read_text())["Frames"])
        cols, c = [], 8
        for j in joints[1:]:
            if j["Type"] == "spherical":  # DeepMimic's wxyz quaternion as intrinsic Z, Y, X angles
                cols.append(Rotation.from_quat(frames[:, c:c + 4][:, [1, 2, 3, 0]]).as_euler("ZYX"))
                c += 4
            elif j["Type"] == "revolute":
                cols.append(frames[:, c:c + 1])
                c += 1
        flag = np.zeros((len(frames), 1))
        flag[0] = float(k > 0)
        time = np.arange(len(frames))[:, None] * frames[0, 0]
        blocks.append(np.hstack([time, frames[:, 1:4], frames[:, 4:8], *cols, flag]))
    spec = {"format": "optiq-npy-trajectory-spec", "version": 1, "up": "y", "unit": "m", "root_rot_order": "wxyz",
            "skeleton": {"names": [j["Name"] for j in joints], "parents": [j["Parent"] for j in joints],
                         "offsets": [[0.0, 0.0, 0.0]] + [[j["AttachX"], j["AttachY"], j["AttachZ"]]
                                                          for j in joints[1:]]},
            "dofs": dofs}
    path = tmp_path / "walk_run.npy"
    np.save(path, np.vstack(blocks))
    (tmp_path / "walk_run.spec.json").write_text(json.dumps(spec))
    cfg = load_config("vqvae", [*TINY, "rotation=expmap", "max_steps=20", "test_ratio=0", "val_ratio=0"])
    result = train(cfg, [path], tmp_path / "vq.pt", cache_dir=cache, progress=False)
    assert result.steps == 20
    _, ck = load_checkpoint(tmp_path / "vq.pt")
    assert ck.kind == "tokenizer" and ck.feature_spec.rotation == "expmap"
    table = encode_clips(tmp_path / "vq.pt", [path], cache_dir=cache)
    lengths = [len(json.loads((data_dir / "deepmimic" / n).read_text())["Frames"])
               for n in ("humanoid3d_walk.txt", "humanoid3d_run.txt")]
    assert sorted(table.column("frames").to_pylist()) == sorted(lengths)
    assert all(len(t) == -(-n // 4) for t, n in zip(table.column("tokens").to_pylist(),
                                                       table.column("frames").to_pylist(), strict=True))
