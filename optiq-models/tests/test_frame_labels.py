"""Frame labels as conditioning: gait phase (a float in [0, 1), written by ``optiq data label --auto phase``) read
per frame from a real dataset, embedded continuously across its wrap, saved with the model, and given per frame
in training, evaluation, generation and export."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from optiq import OptiqError, open_dataset
from optiq.contacts import auto_labels
from optiq_models import data as D
from optiq_models.checkpoint import load_checkpoint
from optiq_models.evaluate import continued_frame_labels, evaluate, load_model
from optiq_models.export import export_model
from optiq_models.nets import LabelEmbedding, LabelVocab
from optiq_models.train import load_config, train

TINY = ["model.hidden=32", "model.layers=1", "window=16", "batch_size=16", "warmup_steps=10", "lr=3e-3",
        "labels=[content]", "frame_labels=[phase,contact_left]", "split_by=label:content", "eval_interval=40",
        "rollout_fraction=0.5"]


@pytest.fixture(scope="module")
def phased(walk_run, tmp_path_factory):
    """The walk/run dataset with frame labels from the clips' own foot contacts: ``phase`` (float) and
    ``contact_left`` / ``contact_right`` (categorical: bool)."""
    from optiq import write_dataset

    ds = open_dataset(walk_run)
    clips = []
    for name in ds.clip_names:
        clip = ds.read_clip(name)
        clips.append(clip.replace(frame_labels={**clip.frame_labels, **auto_labels(clip, "phase"),
                                                **auto_labels(clip, "contacts")}))
    out = tmp_path_factory.mktemp("phase") / "walk_run_phase.parquet"
    write_dataset(out, clips)
    return out


@pytest.fixture(scope="module")
def phase_model(phased, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("phase_model")
    cfg = load_config("mlp", [*TINY, "max_steps=80"])
    train(cfg, phased, tmp / "m.pt", cache_dir=tmp / "cache", progress=False)
    return tmp / "m.pt"


def test_the_store_reads_phase_per_frame(phased, tmp_path):
    src = D.open_source(phased)
    from optiq.features import FeatureSpec, resolve_spec

    spec = resolve_spec(src.read_clip(src.names[0]), FeatureSpec())
    store = D.build_store(src, spec, cache_dir=tmp_path)
    ds = open_dataset(phased)
    for name in ds.clip_names[:3]:
        expected = np.asarray(ds.read_clip(name).frame_labels["phase"], np.float32)
        np.testing.assert_array_equal(store.clip_frame_labels(name)["phase"], expected)
    vocab = D.build_vocab([src.labels[n] for n in src.names], ["content"], ["phase"], store, src.names)
    # Gait phase lies in [0, 1) and wraps at every left touch-down: it is recorded as cyclic.
    assert vocab.floats == {"phase": {"cyclic": True}} and vocab.frame == ["phase"]
    assert LabelVocab.from_json(vocab.to_json()) == vocab
    # A reused cache gives the same labels.
    again = D.build_store(src, spec, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.frame_labels["phase"], store.frame_labels["phase"])
    with pytest.raises(OptiqError, match="no such frame label.*phase"):
        D.build_vocab([src.labels[n] for n in src.names], [], ["gait"], store, src.names)


def test_phase_is_embedded_continuously_across_its_wrap():
    vocab = LabelVocab({}, floats={"phase": {"cyclic": True}})
    emb = LabelEmbedding(vocab, 8, dropout=0.0).eval()
    torch.nn.init.normal_(emb.float_maps["phase"].weight)
    torch.nn.init.normal_(emb.float_unknown["phase"])
    # A cyclic label enters as (sin 2 pi x, cos 2 pi x): 0.999 sits next to 0.001 and far from 0.5.
    near = emb({"phase": torch.tensor([[0.999], [0.001], [0.5]])}, 3, 1)[:, 0]
    assert (near[0] - near[1]).norm() < 0.1 * (near[0] - near[2]).norm()
    # NaN (and an absent label) means unknown: the learnt "no value" vector.
    unknown = emb({"phase": torch.tensor([[math.nan]])}, 1, 1)[0, 0]
    torch.testing.assert_close(unknown, emb.float_unknown["phase"].detach())
    torch.testing.assert_close(emb(None, 1, 1)[0, 0], unknown)


def test_a_phase_conditioned_model_trains_evaluates_and_exports(phased, phase_model, tmp_path):
    model, ck = load_checkpoint(phase_model)
    assert ck.vocab.frame == ["contact_left", "phase"] and ck.vocab.floats["phase"]["cyclic"]
    assert ck.vocab.labels["contact_left"] == ["<unknown>", "False", "True"]
    # Training moved the phase map off zero (it was given the phase of every frame).
    assert model.encoder.labels.float_maps["phase"].weight.abs().sum() > 0
    x = torch.zeros(2, 4, model.feature_dim)
    cond = {"content": torch.tensor([1, 1]), "contact_left": torch.tensor([[1] * 4, [1] * 4]),
            "phase": torch.tensor([[0.1] * 4, [0.6] * 4])}
    out = model.eval().predict_next(x, cond)
    assert not torch.allclose(out[0], out[1]), "the phase must change the prediction"

    report = evaluate(phase_model, phased, split="test", horizon=10, stride=5, cache_dir=tmp_path)
    assert report["windows"] > 0 and len(report["horizon"]["series"]["mlp"]) == 10

    for fmt, suffix in (("torchscript", ".pt"), ("onnx", ".onnx")):
        assert export_model(phase_model, tmp_path / f"m{suffix}", fmt) <= 1e-5


def test_generation_carries_phase_on_at_the_context_rate(phased, phase_model):
    loaded = load_model(phase_model)
    clip = open_dataset(phased).read_clip("dataset-1_walk_happy_001")
    truth = np.asarray(clip.frame_labels["phase"], np.float64)
    labels = continued_frame_labels(loaded.model.vocab, clip, 30, 60)["phase"]
    np.testing.assert_array_equal(labels[:30], truth[:30].astype(np.float32))
    rate = np.median(np.mod(np.diff(truth[:30]), 1.0))
    np.testing.assert_allclose(labels[30:], np.mod(truth[29] + rate * np.arange(1, 31), 1.0), atol=1e-6)
    assert labels.min() >= 0 and labels.max() < 1
    # A categorical frame label holds its last context value (index into the vocabulary).
    contact = continued_frame_labels(loaded.model.vocab, clip, 30, 60)["contact_left"]
    index = {"False": 1, "True": 2}
    assert contact[:30].tolist() == [index[str(v)] for v in clip.frame_labels["contact_left"][:30]]
    assert (contact[30:] == contact[29]).all()
