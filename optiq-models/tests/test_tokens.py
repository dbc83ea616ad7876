"""``optiq tokens encode|decode`` and ``optiq eval model`` for a tokenizer, on a tiny VQ-VAE trained for a few
hundred steps on real Bandai-Namco walks and runs: the tokens file pandas reads, decoding to BVH and datasets,
decode(encode) against the model's own forward pass, the reconstruction report against a mean-pose baseline,
and every bad input: one line ``optiq: error: ...``, exit 2, no output file."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from click.testing import CliRunner
from optiq import load_clip, open_dataset, write_dataset
from optiq.features import defeaturize, featurize
from optiq_models import data as D
from optiq_models import tokens as T
from optiq_models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from optiq_models.evaluate import evaluate, load_model, reconstruction_errors
from optiq_models.nets import build_model
from optiq_models.train import load_config, train

TINY = {"max_steps": 200, "window": 32, "batch_size": 16, "lr": 3e-3, "warmup_steps": 10, "eval_interval": 100,
        "eval_windows": 16, "split_by": "label:content", "seed": 0, "model.width": 32, "model.depth": 1,
        "model.code_dim": 16, "model.codebook_size": 32}


@pytest.fixture(scope="module")
def cli():
    from optiq.cli.main import build_cli

    root = build_cli()
    assert {"encode", "decode"} <= set(root.commands["tokens"].commands)
    return root


@pytest.fixture(scope="module")
def vq(walk_run, tmp_path_factory):
    """A VQ-VAE (one code per 4 frames, 32 codes) trained 200 steps with the shipped vqvae config's loop."""
    folder = tmp_path_factory.mktemp("vq")
    out = folder / "vq.pt"
    result = train(load_config("vqvae", TINY), walk_run, out, cache_dir=folder / "cache", progress=False)
    assert result.steps == TINY["max_steps"]
    return out, folder / "cache"


def _variant(model, out, seed: int = 1, **changes):
    """An untrained model saved with ``model``'s feature spec, normaliser, skeleton and split, its config changed
    by ``changes`` (another architecture with ``arch=``)."""
    ck = read_checkpoint(model)
    arch, split = changes.pop("arch", "vqvae"), changes.pop("split", ck.split)
    config = {**ck.model_config, **changes} if arch == "vqvae" else changes
    torch.manual_seed(seed)
    net = build_model(arch, ck.feature_dim, ck.vocab, config)
    save_checkpoint(out, net, config={**ck.config, "arch": arch}, feature_spec=ck.feature_spec,
                    normalizer=ck.normalizer, vocab=ck.vocab, skeleton=ck.skeleton, split=split)
    return out


def _ok(cli, args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def _fails(cli, args, message):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("optiq: error: "), lines
    assert message in lines[0], lines[0]


def _test_side(model):
    return json.loads(model.with_name("vq.split.json").read_text())["test"]


def test_encode_writes_one_row_per_clip_that_pandas_reads(cli, vq, walk_run, tmp_path):
    model, cache = vq
    out = tmp_path / "tokens.parquet"
    printed = _ok(cli, ["tokens", "encode", "--model", model, "--data", walk_run, "--out", out, "--split", "test",
                        "--cache-dir", cache])
    test = _test_side(model)
    df = pd.read_parquet(out)
    assert list(df["clip"]) == test and f"{len(test)} clips" in printed
    net, _ = load_checkpoint(model)
    with open_dataset(walk_run) as ds:
        for _, row in df.iterrows():
            frames = ds.info(row["clip"]).num_frames
            ids = np.stack(row["tokens"])  # pandas gives an array of per-code arrays
            assert row["frames"] == frames and row["fps"] == 30.0
            assert ids.shape == (math.ceil(frames / 4), 1) and ids.min() >= 0 and ids.max() < 32
            assert (row["downsample"], row["codebook_size"], row["num_quantizers"]) == (4, 32, 1)
            assert row["model"] == T.fingerprint(net) and len(row["model"]) == 16
            assert row["content"] in ("walk", "run") and row["clip"].startswith(f"dataset-1_{row['content']}_")
    # A trained codebook spreads the clips over many codes (an untrained one maps everything to code 0).
    assert len(np.unique(np.concatenate([np.stack(t) for t in df["tokens"]]))) >= 8


def test_decode_writes_bvh_and_datasets_on_the_model_skeleton(cli, vq, walk_run, tmp_path):
    model, cache = vq
    tokens = tmp_path / "tokens.parquet"
    _ok(cli, ["tokens", "encode", "--model", model, "--data", walk_run, "--out", tokens, "--split", "test",
              "--cache-dir", cache])
    one = tmp_path / "one.parquet"
    T.write_tokens(T.read_tokens(tokens).slice(0, 1), one)
    bvh = tmp_path / "recon.bvh"
    _ok(cli, ["tokens", "decode", "--model", model, "--tokens", one, "--out", bvh])
    first = _test_side(model)[0]
    with open_dataset(walk_run) as ds:
        truth = ds.read_clip(first)
        back = load_clip(bvh)
        assert back.num_frames == truth.num_frames and back.fps == truth.fps
        assert back.skeleton.names == truth.skeleton.names
        assert np.array_equal(back.skeleton.parents, truth.skeleton.parents)
        # Decoded where the clip starts: the hips' first position within a few cm of the truth's.
        hips = truth.skeleton.index("Hips")
        assert np.linalg.norm(back.world_positions()[0, hips] - truth.world_positions()[0, hips]) < 0.1
        out = tmp_path / "recon.parquet"
        printed = _ok(cli, ["tokens", "decode", "--model", model, "--tokens", tokens, "--out", out])
        with open_dataset(out) as rec:
            assert rec.clip_names == _test_side(model) and f"{len(rec.clip_names)} clip(s)" in printed
            for name in rec.clip_names:
                assert rec.info(name).num_frames == ds.info(name).num_frames
                assert rec.read_clip(name).labels["content"] == D.bandai_labels(name)["content"]


def test_decode_of_encode_is_the_forward_reconstruction(vq, walk_run):
    model, cache = vq
    loaded = load_model(model, kinds=("tokenizer",))
    table = T.encode_clips(loaded, walk_run, "test", cache_dir=cache)
    clips = T.decode_tokens(loaded, table)
    rows = {r["clip"]: r for r in table.select(["clip", "start_position", "start_yaw"]).to_pylist()}
    assert [c.name for c in clips] == list(rows) == _test_side(model)
    per_clip = evaluate(loaded, walk_run, split="test", cache_dir=cache)["per_clip"]
    sl = loaded.layout.slices["positions"]
    source = D.open_source(walk_run, cache_dir=cache)
    store = D.build_store(source, loaded.spec, cache_dir=cache)
    try:
        for clip in clips:
            raw = np.asarray(store.clip(clip.name))
            x = torch.from_numpy(np.asarray(loaded.normalizer.normalize(raw), dtype=np.float32))[None]
            pad = -x.shape[1] % 4
            x = torch.cat([x, x[:, -1:].expand(1, pad, -1)], dim=1)  # the last frame repeated
            with torch.no_grad():
                y = loaded.model(x)[0, :len(raw)].numpy()
            row = rows[clip.name]
            ref = defeaturize(loaded.normalizer.denormalize(y), loaded.checkpoint.skeleton, loaded.spec, 30.0,
                              start_position=row["start_position"], start_yaw=row["start_yaw"])
            assert clip.num_frames == len(raw)
            assert np.abs(clip.world_positions() - ref.world_positions()).max() < 1e-4  # metres
            # The evaluation's error of the clip is that of the forward reconstruction (root-relative, mm).
            rec = loaded.normalizer.denormalize(y)[:, sl].reshape(len(raw), -1, 3)
            mpjpe = 1000 * np.linalg.norm(rec - raw[:, sl].reshape(len(raw), -1, 3), axis=-1).mean()
            assert per_clip[clip.name] == pytest.approx(mpjpe, abs=2e-3) and mpjpe > 10
    finally:
        source.close()


def test_eval_report_beats_the_mean_pose_and_counts_the_codebook(cli, vq, walk_run, tmp_path):
    from optiq_viz.plots import check_report

    model, cache = vq
    report = evaluate(model, walk_run, split="train", cache_dir=cache)
    r, cb = report["reconstruction"], report["codebook"]
    assert report["kind"] == "tokenizer" and report["clips"] == len(json.loads(
        model.with_name("vq.split.json").read_text())["train"])
    assert all(math.isfinite(v) for v in r.values())
    # 200 steps fit the training clips: well below the mean pose of the training split (measured 0.68).
    assert r["mpjpe_mm"] < 0.8 * r["mean-pose_mpjpe_mm"]
    # The per-clip errors, weighted by frames, are the overall error.
    with open_dataset(walk_run) as ds:
        frames = {n: ds.info(n).num_frames for n in report["per_clip"]}
    weighted = sum(report["per_clip"][n] * f for n, f in frames.items()) / sum(frames.values())
    assert weighted == pytest.approx(r["mpjpe_mm"], rel=1e-3)
    assert cb["tokens"] == sum(math.ceil(f / 4) for f in frames.values())
    assert 25 <= cb["usage_percent"][0] <= 100 and 1 < cb["perplexity"][0] <= 32
    walk, run = report["per_label"]["content=walk"], report["per_label"]["content=run"]
    assert walk["clips"] + run["clips"] == report["clips"] and walk["frames"] + run["frames"] == report["frames"]
    checked = check_report(report)  # what optiq viz plots reads: the per-joint section
    assert len(checked["per_joint"]["joints"]) == 21 and "mean-pose" in checked["per_joint"]["series"]
    # The CLI: the same numbers, and --pred writes each held-out clip's reconstruction.
    out, pred = tmp_path / "r.json", tmp_path / "pred.parquet"
    printed = _ok(cli, ["eval", "model", "--model", model, "--data", walk_run, "--split", "test", "--out", out,
                        "--pred", pred, "--cache-dir", cache])
    assert "reconstruction MPJPE" in printed and "codebook usage" in printed
    assert json.loads(out.read_text())["split"] == "test"
    with open_dataset(pred) as rec, open_dataset(walk_run) as ds:
        assert rec.clip_names == _test_side(model)
        assert all(rec.info(n).num_frames == ds.info(n).num_frames for n in rec.clip_names)


def test_reconstruction_errors_of_a_known_jitter(vq, walk_run):
    """A reconstruction that is the truth plus e metres alternating in sign every frame on every joint's x:
    MPJPE e, velocity error 2 e fps, acceleration error 4 e fps^2, the root untouched."""
    loaded = load_model(vq[0], kinds=("tokenizer",))
    with open_dataset(walk_run) as ds:
        clip = ds.read_clip(ds.clip_names[0])
    truth = featurize(clip, loaded.spec)
    e, sl = 0.002, loaded.layout.slices["positions"]
    recon = truth.copy()
    recon[:, sl.start:sl.stop:3] += e * (-1.0) ** np.arange(len(truth))[:, None]
    row = reconstruction_errors(recon, truth, loaded.layout, 30.0)
    assert row["joints"].mean() / row["frames"] == pytest.approx(1000 * e, rel=1e-4)
    assert row["vel"] / row["vel_n"] == pytest.approx(2 * e * 30, rel=1e-4)
    assert row["acc"] / row["acc_n"] == pytest.approx(4 * e * 30 ** 2, rel=1e-4)
    assert row["root"] == 0.0 and row["truth_acc"] / row["acc_n"] > 1.0  # a walk accelerates its limbs


def test_residual_tokens_decode_with_fewer_codebooks(vq, walk_run, tmp_path):
    model, cache = vq
    rvq = _variant(model, tmp_path / "rvq.pt", num_quantizers=3)
    table = T.encode_clips(rvq, walk_run, "test", cache_dir=cache)
    ids = np.stack(table.column("tokens")[0].as_py())
    assert ids.shape[1] == 3 and table.column("num_quantizers")[0].as_py() == 3
    first = table.slice(0, 1)
    coarse = first.set_column(first.column_names.index("tokens"), "tokens",
                              pa.array([ids[:, :1].tolist()], pa.list_(pa.list_(pa.int32()))))
    coarse = coarse.set_column(coarse.column_names.index("num_quantizers"), "num_quantizers",
                               pa.array([1], pa.int32()))
    clip = T.decode_tokens(rvq, coarse)[0]
    assert clip.num_frames == first.column("frames")[0].as_py()


def test_bad_input_is_one_line_exit_2_and_writes_nothing(cli, vq, walk_run, tmp_path):
    model, cache = vq
    tokens = tmp_path / "tokens.parquet"
    _ok(cli, ["tokens", "encode", "--model", model, "--data", walk_run, "--out", tokens, "--split", "test",
              "--cache-dir", cache])
    out = tmp_path / "out.parquet"

    def decode_fails(m, t, message):
        _fails(cli, ["tokens", "decode", "--model", m, "--tokens", t, "--out", out], message)
        assert not out.exists()

    def encode_fails(m, data, message, *extra):
        _fails(cli, ["tokens", "encode", "--model", m, "--data", data, "--out", out, "--cache-dir", cache, *extra],
               message)
        assert not out.exists()

    # Tokens from another model: each mismatch says which.
    decode_fails(_variant(model, tmp_path / "k64.pt", codebook_size=64), tokens,
                 "tokens from another model: codebook_size 32, this model's is 64")
    decode_fails(_variant(model, tmp_path / "d2.pt", down_t=1), tokens,
                 "tokens from another model: downsample 4, this model's is 2")
    decode_fails(_variant(model, tmp_path / "same.pt"), tokens, "tokens from another model: made by model")
    # Ids out of range, and a row whose frames do not fit its codes.
    table = T.read_tokens(tokens)
    ids = table.column("tokens").to_pylist()
    ids[1][2][0] = 32
    bad = tmp_path / "bad.parquet"
    T.write_tokens(table.set_column(table.column_names.index("tokens"), "tokens",
                                    pa.array(ids, pa.list_(pa.list_(pa.int32())))), bad)
    decode_fails(model, bad, "token id 32 at code 2 is out of range [0, 32)")
    short = tmp_path / "short.parquet"
    T.write_tokens(table.set_column(table.column_names.index("frames"), "frames",
                                    pa.array([3] * table.num_rows, pa.int32())), short)
    decode_fails(model, short, "has 3 frames, fewer than the 4 frames per code")
    T.write_tokens(table.slice(0, 0), bad)
    decode_fails(model, bad, "the tokens file holds no clip")
    # A clip shorter than the downsampling, no clip at all, a model that is not a tokenizer.
    with open_dataset(walk_run) as ds:
        clip = ds.read_clip(ds.clip_names[0])
    tiny = tmp_path / "tiny.parquet"
    write_dataset(tiny, [clip, clip.slice(0, 3).replace(name="three_frames")])
    encode_fails(model, tiny, "clip 'three_frames' has 3 frames, fewer than the 4 frames per code")
    (tmp_path / "empty").mkdir()
    encode_fails(model, tmp_path / "empty", "no motion files")
    with open_dataset(walk_run) as ds:
        split = D.Split(list(ds.clip_names), [], []).to_json()
    encode_fails(_variant(model, tmp_path / "noval.pt", split=split), walk_run, "split is empty", "--split", "val")
    mlp = _variant(model, tmp_path / "mlp.pt", arch="mlp", hidden=8, layers=1)
    encode_fails(mlp, walk_run, "is a next_state model, not a tokenizer")
    decode_fails(mlp, tokens, "is a next_state model, not a tokenizer")
    # Commands of next-state models refuse a tokenizer, and a tokenizer has nothing to steer.
    _fails(cli, ["generate", "--model", model, "--context", f"{walk_run}:{clip.name}", "--out", tmp_path / "g.bvh"],
           "model of kind 'tokenizer'")
    _fails(cli, ["eval", "model", "--model", model, "--data", walk_run, "--steer", "content=run", "--out", out],
           "a tokenizer reconstructs the clips it reads")
    assert not out.exists() and not (tmp_path / "g.bvh").exists()
