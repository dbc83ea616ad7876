"""Evaluation and generation on a fixed tiny model and real Bandai-Namco takes: the baselines' errors equal
values computed here independently from the clips, the report is what ``optiq viz plots`` reads, continuous
rollouts keep each clip's frame count and skeleton, and bad inputs fail with one clear line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from optiq import OptiqError, SkeletonMismatchError, load_clip, open_dataset
from optiq.features import FeatureSpec, Normalizer, feature_layout, featurize
from optiq_models import data as D
from optiq_models.checkpoint import save_checkpoint
from optiq_models.evaluate import evaluate, make_windows, run
from optiq_models.generate import generate
from optiq_models.nets import build_model

TEST = ["dataset-1_run_old_001", "dataset-1_walk_happy_001", "dataset-1_walk_old_001"]




@pytest.fixture(scope="module")
def tiny_model(walk_run, tmp_path_factory):
    """An untrained MLP (context 4, seed 0) conditioned on content, with TEST as its test split."""
    folder = tmp_path_factory.mktemp("model")
    source = D.open_source(walk_run, cache_dir=folder)
    spec = FeatureSpec()
    store = D.build_store(source, spec, cache_dir=folder)
    train = [n for n in source.names if n not in TEST]
    normalizer = Normalizer.fit(store.iter_clips(train))
    vocab = D.build_vocab([source.labels[n] for n in train], ["content"])
    torch.manual_seed(0)
    model = build_model("mlp", store.dim, vocab, {"hidden": 16, "layers": 1})
    out = folder / "tiny.pt"
    save_checkpoint(out, model, config={"arch": "mlp"}, feature_spec=spec, normalizer=normalizer, vocab=vocab,
                    skeleton=source.skeleton, split=D.Split(train, [], TEST).to_json())
    source.close()
    return out, folder


def test_baselines_equal_values_computed_from_the_clips(walk_run, tiny_model, tmp_path):
    model, cache = tiny_model
    h, stride, ctx = 30, 10, 4
    report = evaluate(model, walk_run, split="test", horizon=h, stride=stride, cache_dir=cache)
    # Independently: the windows' first predicted frames t0 = 4, 14, ... (t0 + 30 <= T), root-relative joint
    # positions of the features (metres, heading frame) and the hips' world path from forward kinematics.
    spec = FeatureSpec()
    zero, const, root = [], [], []
    with open_dataset(walk_run) as ds:
        for name in TEST:
            clip = ds.read_clip(name)
            pos_slice = feature_layout(clip.skeleton, spec).slices["positions"]
            p = featurize(clip, spec)[:, pos_slice].reshape(clip.num_frames, -1, 3).astype(np.float64)
            hips = clip.world_positions()[:, clip.skeleton.index("Hips"), :2]
            for t0 in range(ctx, clip.num_frames - h + 1, stride):
                zero.append(np.linalg.norm(p[t0] - p[t0 - 1], axis=-1).mean())
                const.append(np.linalg.norm(p[t0] - (2 * p[t0 - 1] - p[t0 - 2]), axis=-1).mean())
                root.append(np.linalg.norm(hips[t0 - 1 + h] - hips[t0 - 1]))
    series = report["horizon"]["series"]
    assert report["windows"] == len(zero) and report["clips"] == 3
    # Zero-velocity at horizon 1 is the mean frame-to-frame displacement of the joints (about 25 mm here).
    assert series["zero-velocity"][0] == pytest.approx(1000 * np.mean(zero), abs=2e-3)
    assert series["constant-velocity"][0] == pytest.approx(1000 * np.mean(const), abs=2e-3)
    assert 10 < series["zero-velocity"][0] < 60
    # Zero-velocity leaves the root where it was: its global error is the distance the hips really went.
    assert report["rollout"]["root_error_m"]["zero-velocity"][-1] == pytest.approx(np.mean(root), rel=1e-3)
    # The untrained residual MLP adds small noise to the last frame: near zero-velocity at step 1.
    assert abs(series["mlp"][0] - series["zero-velocity"][0]) < 0.5 * series["zero-velocity"][0]
    assert report["per_label"]["content=walk"]["windows"] + report["per_label"]["content=run"]["windows"] == \
        report["windows"]
    assert set(report["single_step"]) == {"pos_mse", "vel_mse", "residual_r2", "mpjpe_mm"}
    assert report["single_step"]["mpjpe_mm"] == pytest.approx(series["mlp"][0], abs=1e-2)


def test_report_and_predictions_are_what_the_viewers_read(walk_run, tiny_model, tmp_path):
    from optiq_viz.plots import load_report, plot_errors

    model, cache = tiny_model
    out, pred = tmp_path / "report.json", tmp_path / "pred.parquet"
    run(model, walk_run, split="test", horizon=12, stride=20, out=out, pred=pred, cache_dir=cache)
    checked = load_report(out)
    assert list(checked["horizon"]["series"]) == ["mlp", "zero-velocity", "constant-velocity"]
    assert checked["horizon"]["steps"].tolist() == list(range(1, 13))
    assert len(checked["per_joint"]["joints"]) == 21 and "Hips" not in checked["per_joint"]["joints"]
    plot_errors(checked)
    raw = json.loads(out.read_text())
    assert raw["rollout"]["rollout_over_single_step"] > 0 and "mlp" in raw["rollout"]["growth_exponent"]
    with open_dataset(pred) as p, open_dataset(walk_run) as ds:
        assert p.clip_names == TEST
        for name in TEST:
            truth, rolled = ds.read_clip(name), p.read_clip(name)
            assert rolled.num_frames == truth.num_frames and rolled.skeleton.same_topology(truth.skeleton)
            # The context frames are the clip's own, placed where the clip is.
            np.testing.assert_allclose(rolled.world_positions()[:4], truth.world_positions()[:4], atol=1e-3)


def test_short_clips_are_skipped_with_a_note(walk_run, tiny_model):
    model, cache = tiny_model
    source = D.open_source(walk_run, cache_dir=cache)
    store = D.build_store(source, FeatureSpec(), cache_dir=cache)
    lengths = {n: source.num_frames(n) for n in TEST}
    h = sorted(lengths.values())[0] - 4 + 1  # one frame more than the shortest clip can give
    win = make_windows(store, TEST, 4, h, 10)
    assert [s["clip"] for s in win.skipped] == [min(lengths, key=lengths.get)]
    assert "shorter than context + horizon" in win.skipped[0]["reason"]
    with pytest.raises(OptiqError, match="no clip has the 100004 frames"):
        make_windows(store, TEST, 4, 100_000, 10)
    source.close()


def test_generate_writes_the_context_then_the_rollout(walk_run, tiny_model, tmp_path):
    model, cache = tiny_model
    out = tmp_path / "run.bvh"
    clip = generate(model, f"{walk_run}:dataset-1_walk_happy_001", labels={"content": "run"}, frames=20,
                    out=out, cache_dir=cache)
    assert clip.num_frames == 24
    back = load_clip(out)
    assert back.num_frames == 24 and back.skeleton.names == clip.skeleton.names
    with pytest.raises(OptiqError, match="label content='jump' is unknown to the model; known values: run, walk"):
        generate(model, f"{walk_run}:dataset-1_walk_happy_001", labels={"content": "jump"}, frames=5,
                 out=tmp_path / "x.bvh", cache_dir=cache)
    with pytest.raises(OptiqError, match="not conditioned on label 'movement'"):
        generate(model, f"{walk_run}:dataset-1_walk_happy_001", labels={"movement": "run"}, frames=5,
                 cache_dir=cache)
    with pytest.raises(OptiqError, match="no clip 'nope'"):
        generate(model, f"{walk_run}:nope", frames=5, cache_dir=cache)
    with pytest.raises(OptiqError, match="expected DATASET:CLIP"):
        generate(model, "walks.parquet", frames=5)
    assert not (tmp_path / "x.bvh").exists()


def test_another_skeleton_or_split_fails_with_one_line(data_dir, walk_run, tiny_model, tmp_path):
    from optiq import write_dataset

    model, cache = tiny_model
    other = tmp_path / "cmu.parquet"
    write_dataset(other, [load_clip(data_dir / "bvh" / "cmu_12_01_walk_pybvh.bvh")])
    with pytest.raises(SkeletonMismatchError, match=r"skeleton differs from the model .*tiny.pt"):
        evaluate(model, other, split="all", cache_dir=cache)
    with pytest.raises(OptiqError, match="of the model's test split is not in this dataset"):
        _split_missing(model, walk_run, cache, tmp_path)
    with pytest.raises(OptiqError, match="the model's val split is empty"):
        evaluate(model, walk_run, split="val", cache_dir=cache)


def _split_missing(model, walk_run, cache, tmp_path):
    """Evaluate the model's test split on a dataset that lacks one of its clips."""
    from optiq import write_dataset

    with open_dataset(walk_run) as ds:
        clips = [ds.read_clip(n) for n in ds.clip_names if n != TEST[0]]
    smaller = tmp_path / "smaller.parquet"
    write_dataset(smaller, clips)
    evaluate(model, smaller, split="test", cache_dir=cache)
