"""Checkpoints: bit-exact round trips, weights-only loading, atomic writes, resume state, files that are not
checkpoints, a committed format-1 file that must keep loading, skeleton checks, and `optiq model info/export`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import optiq
import pytest
import torch
from click.testing import CliRunner
from optiq.cli.main import build_cli
from optiq.features import FeatureSpec, Normalizer
from optiq_models.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from optiq_models.nets import LabelVocab, build_model

WALK = "deepmimic/humanoid3d_walk.txt"  # 15 joints, 30 fps, 39 frames
VOCAB = LabelVocab({"movement": ["walk", "run"], "style": ["happy", "sad"]})
TINY = {"transformer": {"context": 16, "d_model": 32, "layers": 2, "heads": 2},
        "unet": {"window": 8, "chunk": 8, "channels": [16, 32]}, "mlp": {"hidden": 32, "layers": 1}}


def walk_windows(clip: optiq.Clip, f: int) -> torch.Tensor:
    """Real motion as model input ``[2, 12, f]``: world joint positions of a walk, flattened, cut to f numbers."""
    pos = clip.world_positions().reshape(clip.num_frames, -1)[:, :f].astype(np.float32)
    pos = (pos - pos.mean(0)) / (pos.std(0) + 1e-6)
    return torch.from_numpy(np.stack([pos[:12], pos[20:32]]))


@pytest.fixture(scope="module")
def walk(data_dir) -> optiq.Clip:
    return optiq.load_clip(data_dir / WALK)


def trained(arch: str, x: torch.Tensor, steps: int = 3):
    """A model a few optimizer steps away from its initialisation (so no weight is still a zero init), with the
    optimizer that made them."""
    torch.manual_seed(0)
    model = build_model(arch, x.shape[2], VOCAB, TINY[arch])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    cond = VOCAB.encode_batch([{"movement": "run"}, {"style": "sad"}])
    for _ in range(steps):
        loss = (model(x[:, :-1], cond) - x[:, 1:]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), opt, cond


def save(path, model, walk, **kw):
    norm = Normalizer(np.linspace(-1, 1, model.feature_dim), np.linspace(0.5, 2, model.feature_dim))
    return save_checkpoint(path, model, config={"lr": 0.01, "arch": "x"}, feature_spec=FeatureSpec(rotation="quat"),
                           normalizer=norm, skeleton=walk.skeleton, split={"train": ["a", "b"], "test": ["c"]}, **kw)


@pytest.mark.parametrize("arch", ["mlp", "transformer", "unet"])
def test_round_trip_is_bit_exact(arch, walk, tmp_path):
    x = walk_windows(walk, 45)
    model, _, cond = trained(arch, x)
    path = save(tmp_path / "m.pt", model, walk)
    raw = torch.load(path, weights_only=True)  # nothing in the file needs code to load
    assert (raw["format"], raw["format_version"], raw["arch"]) == ("optiq-model", FORMAT_VERSION, arch)
    loaded, ckpt = load_checkpoint(path)
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)
    with torch.no_grad():
        assert torch.equal(model(x, cond), loaded(x, cond))
        assert torch.equal(model.rollout(x, 9, cond), loaded.rollout(x, 9, cond))
    assert ckpt.vocab == VOCAB and ckpt.model_config == model.config_dict() and not loaded.training
    assert ckpt.skeleton.allclose(walk.skeleton, atol=0) and ckpt.skeleton.names == walk.skeleton.names
    assert isinstance(ckpt.normalizer, Normalizer) and ckpt.feature_spec == FeatureSpec(rotation="quat")
    assert np.array_equal(ckpt.normalizer.mean, np.linspace(-1, 1, 45).astype(np.float32))
    assert np.array_equal(ckpt.normalizer.std, np.linspace(0.5, 2, 45).astype(np.float32))
    assert ckpt.split == {"train": ["a", "b"], "test": ["c"]} and ckpt.config == {"lr": 0.01, "arch": "x"}
    assert ckpt.versions == {"optiq": "0.1.0", "optiq_models": "0.1.0", "torch": str(torch.__version__)}


def test_resume_state_continues_exactly(walk, tmp_path):
    """Optimizer and RNG state saved in ``extra`` continue training exactly as if it had not stopped (and loading a
    checkpoint, which builds a model, leaves the global RNG alone)."""
    x = walk_windows(walk, 45)
    model, opt, cond = trained("mlp", x)
    gen = np.random.default_rng(7)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 ** s)
    opt.step()  # one more step (the last gradients) so that the saved schedule is not at its start
    sched.step()
    path = save(tmp_path / "m.pt", model, walk, extra={"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                                                        "rng": rng_state(gen), "step": 3})

    def more_steps(m, o, sc, g):
        m.train()
        for _ in range(3):
            noise = torch.randn(x.shape) * 0.01 + float(g.random())  # draws from torch's and numpy's RNG
            loss = (m(x[:, :-1] + noise[:, :-1], cond) - x[:, 1:]).pow(2).mean()
            o.zero_grad()
            loss.backward()
            o.step()
            sc.step()
        return m.state_dict()

    ckpt_model, ckpt = load_checkpoint(path)
    uninterrupted = more_steps(model, opt, sched, gen)
    opt2 = torch.optim.AdamW(ckpt_model.parameters(), lr=1e-2)
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, lambda s: 0.5 ** s)  # before loading: it resets the lr
    opt2.load_state_dict(ckpt.extra["optimizer"])
    sched2.load_state_dict(ckpt.extra["scheduler"])
    gen2 = np.random.default_rng(0)
    set_rng_state(ckpt.extra["rng"], gen2)
    resumed = more_steps(ckpt_model, opt2, sched2, gen2)
    assert sched2.get_last_lr() == sched.get_last_lr() and sched.get_last_lr()[0] == 1e-2 / 16
    assert ckpt.extra["step"] == 3
    assert all(torch.equal(uninterrupted[k], resumed[k]) for k in uninterrupted)


def test_write_is_atomic_and_refuses_what_would_not_load_safely(walk, tmp_path):
    x = walk_windows(walk, 45)
    model, _, _ = trained("mlp", x)
    path = save(tmp_path / "m.pt", model, walk)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"checkpoint\['extra'\]\['rng'\] is a numpy.ndarray; a checkpoint "
                                              r"holds only tensors and plain values"):
        save(path, model, walk, extra={"rng": np.zeros(3)})
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["m.pt"]
    with pytest.raises(optiq.OptiqError, match=r"output folder '.*missing' does not exist"):
        save(tmp_path / "missing" / "m.pt", model, walk)


def test_files_that_are_not_checkpoints_fail_in_one_line(walk, tmp_path):
    x = walk_windows(walk, 45)
    model, _, _ = trained("mlp", x)
    good = save(tmp_path / "m.pt", model, walk).read_bytes()
    cases = {
        "truncated.pt": (good[: len(good) // 2], r"not an optiq model checkpoint, or truncated \("),
        "text.pt": (b"hello\n", r"not an optiq model checkpoint \(not a torch zip archive\)"),
        "empty.pt": (b"", r"not a torch zip archive"),
    }
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    torch.save({"format": "optiq-model", "format_version": FORMAT_VERSION + 1}, tmp_path / "newer.pt")
    for name, (data, _) in cases.items():
        (tmp_path / name).write_bytes(data)
    cases["other.pt"] = (None, r"a torch file without format 'optiq-model'")
    cases["newer.pt"] = (None, rf"format {FORMAT_VERSION + 1} was written by a newer optiq-models; this one reads "
                               rf"formats 1..{FORMAT_VERSION}")
    cases["nothing.pt"] = (None, r"no such checkpoint file")
    for name, (_, message) in cases.items():
        with pytest.raises(CheckpointError, match=message) as info:
            read_checkpoint(tmp_path / name)
        assert "\n" not in str(info.value) and str(info.value).startswith(str(tmp_path / name))


def test_skeleton_mismatch_names_both(walk, data_dir, tmp_path):
    model, _, _ = trained("mlp", walk_windows(walk, 45))
    _, ckpt = load_checkpoint(save(tmp_path / "m.pt", model, walk))
    ckpt.check_skeleton(walk.skeleton)  # the same topology passes
    bandai = optiq.load_clip(data_dir / "corpora/bandai_namco/data/dataset-1_walk_normal_001.bvh")
    with pytest.raises(optiq.SkeletonMismatchError,
                       match=r"trained on a skeleton of 15 joints \(root, chest, neck, \.\.\.\) but the data has 22 "
                             r"joints \(joint_Root, Hips, Spine, \.\.\.\): joint 0 is 'root' vs 'joint_Root'"):
        ckpt.check_skeleton(bandai.skeleton)


# --- format 1 stays readable ---------------------------------------------------------------------------------------
# What a format-1 file holds, written out here rather than committed as a binary: a renamed key or layer, or a
# reader that forgets format 1, fails this list. Change it only with a new format version and a reader for this one.
FORMAT1_KEYS = ["arch", "config", "extra", "feature_dim", "feature_spec", "format", "format_version", "kind",
                "model_config", "normalizer", "skeleton", "split", "state_dict", "target", "versions", "vocab"]
FORMAT1_MLP_LAYERS = [
    "encoder.blocks.0.fc1.bias", "encoder.blocks.0.fc1.weight", "encoder.blocks.0.fc2.bias",
    "encoder.blocks.0.fc2.weight", "encoder.blocks.0.film.proj.bias", "encoder.blocks.0.film.proj.weight",
    "encoder.blocks.0.norm.bias", "encoder.blocks.0.norm.weight", "encoder.inp.bias", "encoder.inp.weight",
    "encoder.inp_film.proj.bias", "encoder.inp_film.proj.weight", "encoder.labels.tables.movement.weight",
    "encoder.labels.tables.style.weight", "encoder.norm.bias", "encoder.norm.weight", "head.bias", "head.weight"]


def write_format1_file(path: Path, walk: optiq.Clip) -> None:
    """A small format-1 mlp checkpoint; the probe input and the output the model gave are stored in it."""
    torch.manual_seed(0)
    model = build_model("mlp", 12, VOCAB, {"context": 2, "hidden": 8, "layers": 1, "cond_dim": 4})
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    model.eval()
    probe = walk_windows(walk, 12)
    cond = VOCAB.encode_batch([{"movement": "run", "style": "sad"}, {"movement": "walk"}])
    with torch.no_grad():
        out = model(probe, cond)
    save(path, model, walk, extra={"probe": probe, "probe_cond": cond, "probe_out": out})


def test_first_format_checkpoint_keeps_loading(walk, tmp_path):
    """A format-1 file holds exactly the keys and layer names of format 1 (so a file a user saved with 0.1.0 has
    what this reader looks for), and loads and predicts as it did when written."""
    path = tmp_path / "mlp_format1.pt"
    write_format1_file(path, walk)
    raw = torch.load(path, weights_only=True)
    assert sorted(raw) == FORMAT1_KEYS and sorted(raw["state_dict"]) == FORMAT1_MLP_LAYERS
    model, ckpt = load_checkpoint(path)
    assert ckpt.format_version == 1 and ckpt.arch == "mlp" and ckpt.vocab == VOCAB
    assert ckpt.skeleton.num_joints == 15 and ckpt.skeleton.names[:2] == ("root", "chest")
    with torch.no_grad():
        assert torch.equal(model(ckpt.extra["probe"], ckpt.extra["probe_cond"]), ckpt.extra["probe_out"])
    assert path.stat().st_size < 50_000


# --- the CLI -------------------------------------------------------------------------------------------------------
def run_cli(*args: str):
    return CliRunner().invoke(build_cli(), list(args), catch_exceptions=False)


def test_model_info(walk, tmp_path):
    model, _, _ = trained("transformer", walk_windows(walk, 45))
    path = save(tmp_path / "m.pt", model, walk)
    result = run_cli("model", "info", str(path))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{path}: transformer (next_state), {model.num_parameters():,} parameters, format 1"
    assert "  labels: movement = run, walk; style = happy, sad" in lines
    assert lines[2].startswith("  feature spec: rotation=quat, contacts=False")
    assert "  skeleton: 15 joints (root, chest, neck, right_shoulder, ...)" in lines
    assert "  split: train 2, test 1" in lines
    summary = json.loads(run_cli("model", "info", str(path), "--json").output)
    assert (summary["context"], summary["encoder_features_dim"], summary["feature_dim"]) == (16, 32, 45)
    bad = run_cli("model", "info", str(tmp_path / "none.pt"))
    assert bad.exit_code == 2 and bad.output == f"optiq: error: {tmp_path / 'none.pt'}: no such checkpoint file\n"


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize(("arch", "fmt"), [("mlp", "torchscript"), ("transformer", "torchscript"),
                                           ("unet", "torchscript"), ("transformer", "onnx")])
def test_export_gives_the_eager_one_step_outputs(arch, fmt, walk, tmp_path):
    """The exported one-step predictor, loaded back by its own runtime (torch.jit, onnxruntime), matches the
    eager model with labels to 1e-5 on real windows and another batch size than the traced one."""
    x = walk_windows(walk, 45)
    model, _, _ = trained(arch, x)
    path = save(tmp_path / "m.pt", model, walk)
    out = tmp_path / ("m.onnx" if fmt == "onnx" else "m_ts.pt")
    result = run_cli("model", "export", str(path), "--format", fmt, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{out}: {fmt} one-step predictor; max |export - eager| = ")
    window = torch.cat([x, x.flip(0), x])[:, -model.context:]  # batch 6; the unet's window is 8 of the 12
    if window.shape[1] < model.context:
        window = torch.cat([window[:, :1].expand(-1, model.context - window.shape[1], -1), window], 1)
    labels = torch.tensor([[1, 0], [2, 1], [0, 2], [1, 1], [2, 2], [0, 0]])
    with torch.no_grad():
        expected = model.predict_chunk(window, {"movement": labels[:, 0], "style": labels[:, 1]})
    if fmt == "torchscript":
        got = torch.jit.load(str(out))(window, labels)
    else:
        ort = pytest.importorskip("onnxruntime")
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(None, {"x": window.numpy(), "labels": labels.numpy()})[0])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_export_errors_are_one_line(walk, tmp_path):
    model, _, _ = trained("mlp", walk_windows(walk, 45))
    path = save(tmp_path / "m.pt", model, walk)
    missing = run_cli("model", "export", str(path), "--out", str(tmp_path / "no" / "m_ts.pt"))
    assert missing.exit_code == 2 and "output folder" in missing.output and "does not exist" in missing.output
    same = run_cli("model", "export", str(path), "--out", str(path))
    assert same.exit_code == 2 and "is the input file" in same.output
    suffix = run_cli("model", "export", str(path), "--format", "onnx", "--out", str(tmp_path / "m.pt2"))
    assert suffix.exit_code == 2 and "expected .onnx" in suffix.output
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]
