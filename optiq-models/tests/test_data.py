"""Training data: labels from Bandai-Namco names, splits that keep takes and mirrors together, the feature
memory map and the window sampler, on real Bandai-Namco takes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from optiq import OptiqError
from optiq.features import FeatureSpec, Normalizer, featurize
from optiq_models import data as D

STYLES = ("active", "angry", "childish", "happy", "old", "proud")




def test_bandai_labels_from_names():
    assert D.bandai_labels("dataset-1_walk-back_happy_002") == {"content": "walk-back", "style": "happy"}
    assert D.bandai_labels("dataset-1_dance-long_not-confident_001_mirror") == {"content": "dance-long",
                                                                                "style": "not-confident"}
    assert D.bandai_labels("cmu_02_01") == {}
    # Stored labels win over the name.
    assert D.clip_labels("dataset-1_run_old_001", {"content": "jog"}) == {"content": "jog", "style": "old"}


def test_split_keeps_mirrors_with_originals_and_is_deterministic():
    names = [f"dataset-1_{c}_{s}_001{m}" for c in ("walk", "run", "bow") for s in STYLES for m in ("", "_mirror")]
    labels = {n: D.bandai_labels(n) for n in names}
    a = D.make_split(names, labels, by="label:content", test_ratio=0.2, val_ratio=0.2, seed=3)
    assert a.to_json() == D.make_split(names, labels, by="label:content", test_ratio=0.2, val_ratio=0.2,
                                       seed=3).to_json()
    assert sorted(a.train + a.val + a.test) == sorted(names)
    side = {n: s for s in ("train", "val", "test") for n in getattr(a, s)}
    for n in names:
        if n.endswith("_mirror"):
            assert side[n] == side[D.original_name(n)], n
    # Stratified: every content has held-out takes (round(0.2 * 6) = 1 take = 2 clips with its mirror).
    for content in ("walk", "run", "bow"):
        assert sum(labels[n]["content"] == content for n in a.test) == 2
    assert a.to_json() == D.Split.from_json(json.loads(json.dumps(a.to_json()))).to_json()


def test_split_by_regex_holds_out_the_matching_takes():
    names = [f"dataset-1_walk_{s}_001" for s in STYLES] + ["dataset-1_walk_old_001_mirror"]
    split = D.make_split(names, {}, by="regex:_(old|happy)_", val_ratio=0.0)
    assert split.test == ["dataset-1_walk_happy_001", "dataset-1_walk_old_001", "dataset-1_walk_old_001_mirror"]
    assert split.val == [] and len(split.train) == 4
    with pytest.raises(OptiqError, match="no clip has label 'movement'; labels: content, style"):
        D.make_split(names, {n: D.bandai_labels(n) for n in names}, by="label:movement")
    with pytest.raises(OptiqError, match="expected clip, label:KEY or regex:PATTERN"):
        D.make_split(names, {}, by="subject")


def test_feature_store_holds_each_clips_features_and_is_reused(walk_run, tmp_path):
    source = D.open_source(walk_run, cache_dir=tmp_path)
    spec = FeatureSpec()
    store = D.build_store(source, spec, cache_dir=tmp_path)
    assert store.names == source.names and len(store.names) == 12
    assert isinstance(store.features, np.memmap)
    name = "dataset-1_run_happy_001"
    expected = featurize(source.dataset.read_clip(name), spec)
    np.testing.assert_array_equal(store.clip(name), expected)
    assert store.labels[store.index[name]]["content"] == "run"  # derived from the name: the file had none
    cached = sorted(tmp_path.glob("features/*.f32"))
    assert len(cached) == 1
    mtime = os.stat(cached[0]).st_mtime_ns
    again = D.build_store(source, spec, cache_dir=tmp_path)
    assert os.stat(cached[0]).st_mtime_ns == mtime  # read back, not featurized again
    np.testing.assert_array_equal(again.clip(name), expected)
    # Another spec is another cache entry.
    quat = D.build_store(source, FeatureSpec(rotation="quat"), cache_dir=tmp_path)
    assert quat.dim < store.dim and len(list(tmp_path.glob("features/*.f32"))) == 2
    source.close()


def test_sampler_windows_are_normalised_slices_of_clips_with_their_labels(walk_run, tmp_path):
    source = D.open_source(walk_run, cache_dir=tmp_path)
    store = D.build_store(source, FeatureSpec(), cache_dir=tmp_path)
    train = [n for n in store.names if not n.endswith("_old_001")]
    norm = Normalizer.fit(store.iter_clips(train))
    vocab = D.build_vocab([store.labels[store.index[n]] for n in train], ["content"])
    sampler = D.WindowSampler(store, train, 40, norm, vocab, np.random.default_rng(0))
    x, cond = sampler.sample(8)
    assert x.shape == (8, 40, store.dim) and x.dtype == np.float32
    for b in range(8):
        raw = norm.denormalize(x[b])
        # Find the window in the clips of the training side: an exact slice of one clip, whose label is cond's.
        hits = [(n, s) for n in train for s in [_find(store.clip(n), raw)] if s is not None]
        assert len(hits) == 1, hits
        content = store.labels[store.index[hits[0][0]]]["content"]
        assert vocab.labels["content"][cond["content"][b]] == content
    # The same seed draws the same windows.
    again, _ = D.WindowSampler(store, train, 40, norm, vocab, np.random.default_rng(0)).sample(8)
    np.testing.assert_array_equal(x, again)
    with pytest.raises(OptiqError, match="no clip has the 100000 frames"):
        D.WindowSampler(store, train, 100_000, norm, vocab, np.random.default_rng(0))
    with pytest.raises(OptiqError, match="no training clip has it; labels in the data: .*content"):
        D.build_vocab([store.labels[0]], ["movement"])
    source.close()


def _find(clip: np.ndarray, window: np.ndarray) -> int | None:
    """Start of ``window [L, F]`` inside ``clip [T, F]`` (float32 round trip through normalisation)."""
    n = len(window)
    for s in range(len(clip) - n + 1):
        if np.allclose(clip[s:s + n], window, atol=1e-4, rtol=1e-4):
            return s
    return None


def test_open_source_converts_motion_files_once(data_dir, tmp_path):
    bandai = data_dir / "corpora" / "bandai_namco" / "data"
    files = [bandai / "dataset-1_walk_normal_001.bvh", bandai / "dataset-1_run_proud_001.bvh"]
    source = D.open_source(files, cache_dir=tmp_path)
    assert source.names == ["dataset-1_walk_normal_001", "dataset-1_run_proud_001"]
    assert source.labels["dataset-1_run_proud_001"]["style"] == "proud"
    first = source.path
    source.close()
    again = D.open_source(files, cache_dir=tmp_path)
    assert again.path == first and len(list(tmp_path.glob("datasets/*.parquet"))) == 1
    again.close()


def test_open_source_merges_datasets_of_one_skeleton(data_dir, tmp_path):
    import optiq

    bandai = data_dir / "corpora" / "bandai_namco" / "data"
    walk, run, bow = (optiq.load_clip(bandai / f"dataset-1_{n}_001.bvh") for n in ("walk_normal", "run_proud",
                                                                                  "bow_happy"))
    a = optiq.write_dataset(tmp_path / "a.parquet", [walk, run])
    b = optiq.write_dataset(tmp_path / "b.h5", [bow])
    source = D.open_source([a, b], cache_dir=tmp_path / "cache")
    assert source.names == [walk.name, run.name, bow.name]
    assert source.labels[bow.name]["content"] == "bow"
    got = source.read_clip(run.name)
    # The dataset's float32 precision (a second write re-rounds normalised quaternions by an ulp).
    assert np.abs(got.rotations - run.rotations).max() < 1e-6
    assert np.abs(got.root_translation - run.root_translation).max() < 1e-5
    source.close()
    with pytest.raises(OptiqError, match="also in"):
        D.open_source([a, a], cache_dir=tmp_path / "cache")
    with pytest.raises(OptiqError, match="mixes datasets and motion files"):
        D.open_source([a, bandai / "dataset-1_walk_normal_001.bvh"], cache_dir=tmp_path / "cache")
    dm = optiq.write_dataset(tmp_path / "dm.parquet", [optiq.load_clip(data_dir / "deepmimic" /
                                                                       "humanoid3d_walk.txt")])
    with pytest.raises(OptiqError, match="humanoid3d_walk"):
        D.open_source([a, dm], cache_dir=tmp_path / "cache")
