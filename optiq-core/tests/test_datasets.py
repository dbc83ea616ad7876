"""Datasets: Parquet and HDF5 hold the same data, read without optiq by following docs/dataset-format.md,
windows, streaming, labels, skeleton checks and bad dataset files."""

from __future__ import annotations

import json
import tracemalloc

import h5py
import numpy as np
import optiq
import pandas as pd
import pyarrow.parquet as pq
import pytest
from optiq import quat
from optiq.datasets import open_dataset, write_dataset
from optiq.datasets.labels import relabel
from optiq.errors import DatasetError, ParseError, SkeletonMismatchError

CMU = ["cmu_01_14_bvhtodeepmimic", "cmu_02_01_bvhtodeepmimic", "cmu_12_01_walk_pybvh"]


@pytest.fixture(scope="module")
def cmu_clips(data_dir):
    """The three CMU MotionBuilder-friendly takes (one topology, three performers), with frame labels."""
    clips = [optiq.load_clip(data_dir / "bvh" / f"{n}.bvh", drop_tpose=True) for n in CMU]
    walk = clips[1]
    clips[1] = walk.with_labels({"movement": "walk"}, {
        "phase": np.linspace(0.0, 1.0, walk.num_frames),
        "foot": np.where(np.arange(walk.num_frames) % 60 < 30, "left", "right"),
        "step": np.arange(walk.num_frames) // 60,
    })
    return clips


@pytest.fixture(scope="module")
def both(cmu_clips, tmp_path_factory):
    """One conversion written to both formats (small row groups and chunks, so windows cross them)."""
    d = tmp_path_factory.mktemp("ds")
    pq_path = write_dataset(d / "ds.parquet", cmu_clips, velocities=True, row_group_frames=100)
    h5_path = write_dataset(d / "ds.h5", cmu_clips, velocities=True, chunk_frames=64)
    return pq_path, h5_path


def test_parquet_and_hdf5_hold_the_same_data(both, cmu_clips):
    with open_dataset(both[0]) as a, open_dataset(both[1]) as b:
        assert a.clip_names == b.clip_names == CMU
        assert a.fields == b.fields
        assert a.frame_label_types == b.frame_label_types == {"phase": "float64", "foot": "string", "step": "int64"}
        # The dataset's skeleton is the first clip's, end sites included, in both formats.
        first = cmu_clips[0].skeleton
        for ds in (a, b):
            np.testing.assert_array_equal(ds.skeleton.offsets, first.offsets)
            assert sorted(ds.skeleton.end_sites) == sorted(first.end_sites) and len(first.end_sites) == 7
            for j, offset in first.end_sites.items():
                np.testing.assert_array_equal(ds.skeleton.end_sites[j], offset)
        for name, src in zip(CMU, cmu_clips, strict=True):
            ra, rb = a.arrays(name), b.arrays(name)
            assert ra.keys() == rb.keys()
            for key in ra:
                np.testing.assert_array_equal(ra[key], rb[key], err_msg=key)
            ca, cb = a.read_clip(name), b.read_clip(name)
            for c in (ca, cb):
                assert c.fps == src.fps and c.labels == src.labels and c.num_frames == src.num_frames
                # Per-clip rest offsets (bone lengths differ between performers) are kept exactly.
                np.testing.assert_array_equal(c.skeleton.offsets, src.skeleton.offsets)
                assert c.skeleton.end_sites.keys() == src.skeleton.end_sites.keys()
                # float32 on disk: relative precision 6e-8.
                np.testing.assert_allclose(c.rotations, src.rotations, atol=1e-7)
                np.testing.assert_allclose(c.root_translation, src.root_translation, rtol=1e-7, atol=1e-7)
                for k, v in src.frame_labels.items():
                    np.testing.assert_array_equal(c.frame_labels[k], v)
                    assert c.frame_labels[k].dtype.kind == v.dtype.kind
            # Stored velocities are the clip's own finite differences.
            np.testing.assert_allclose(ra["linear_velocities"], src.linear_velocities(), rtol=1e-5, atol=1e-5)
        assert not np.array_equal(a.read_clip(0).skeleton.offsets, a.read_clip(1).skeleton.offsets)
        np.testing.assert_array_equal(a.skeleton.offsets, cmu_clips[0].skeleton.offsets)


def test_parquet_read_with_plain_pyarrow_and_pandas_as_documented(both, cmu_clips):
    path = both[0]
    meta = json.loads(pq.ParquetFile(path).metadata.metadata[b"optiq"])
    assert meta["format"] == "optiq-dataset" and meta["schema_version"] == 1
    j = len(meta["skeleton"]["names"])
    assert j == 31 and meta["skeleton"]["parents"][0] == -1
    table = pq.read_table(path)
    assert table.num_rows == sum(c.num_frames for c in cmu_clips) == meta["num_frames"]
    walk = next(c for c in meta["clips"] if c["name"] == CMU[1])
    rows = table.slice(walk["start"], walk["num_frames"])
    assert set(rows.column("clip").to_pylist()) == {CMU[1]}
    assert rows.column("frame").to_pylist() == list(range(walk["num_frames"]))
    rot = rows.column("rotations").combine_chunks().flatten().to_numpy().reshape(-1, j, 4)
    np.testing.assert_allclose(rot, cmu_clips[1].rotations, atol=1e-7)
    np.testing.assert_array_equal(np.array(walk["offsets"]), cmu_clips[1].skeleton.offsets)
    assert walk["labels"]["movement"] == "walk" and walk["fps"] == 120.0

    df = pd.read_parquet(path)
    sel = df[df["clip"] == CMU[1]].sort_values("frame")
    root = np.stack(sel["root_translation"].to_numpy())
    np.testing.assert_allclose(root, cmu_clips[1].root_translation, rtol=1e-7, atol=1e-7)
    assert sel["label_foot"].tolist() == cmu_clips[1].frame_labels["foot"].tolist()
    # Clips without a frame label hold nulls in its column.
    assert df[df["clip"] == CMU[0]]["label_phase"].isna().all()
    # Float columns are BYTE_STREAM_SPLIT without dictionary pages; the row groups are small.
    md = pq.ParquetFile(path).metadata
    col = next(md.row_group(0).column(i) for i in range(md.num_columns)
               if md.row_group(0).column(i).path_in_schema == "rotations.list.element")
    assert "BYTE_STREAM_SPLIT" in col.encodings and not col.has_dictionary_page
    assert max(md.row_group(i).num_rows for i in range(md.num_row_groups)) == 100


def test_hdf5_read_with_plain_h5py_as_documented(both, cmu_clips):
    with h5py.File(both[1], "r") as f:
        assert f.attrs["format"] == "optiq-dataset" and f.attrs["schema_version"] == 1
        names = [n.decode() for n in f["skeleton/names"][()]]
        assert names == list(cmu_clips[0].skeleton.names)
        assert list(f["clips"]) == CMU
        for src in cmu_clips:
            g = f["clips"][src.name]
            assert g.attrs["fps"] == src.fps and g.attrs["num_frames"] == src.num_frames
            assert g["rotations"].dtype == np.float32 and g["rotations"].chunks[0] == 64
            np.testing.assert_allclose(g["rotations"][()], src.rotations, atol=1e-7)
            np.testing.assert_array_equal(g["offsets"][()], src.skeleton.offsets)
            assert dict(g["labels"].attrs) == src.labels
        fl = f["clips"][CMU[1]]["frame_labels"]
        assert fl["foot"].asstr()[()].tolist() == cmu_clips[1].frame_labels["foot"].tolist()
        np.testing.assert_array_equal(fl["phase"][()], cmu_clips[1].frame_labels["phase"])


@pytest.mark.parametrize("which", [0, 1])
def test_windows_random_access(both, cmu_clips, which):
    with open_dataset(both[which]) as ds:
        ws = ds.windows(64, 50)
        # Counted independently: floor((T - L) / S) + 1 windows per clip.
        assert len(ws) == sum((c.num_frames - 64) // 50 + 1 for c in cmu_clips)
        for i in (0, 7, len(ws) // 2, len(ws) - 1):
            w = ws[i]
            src = cmu_clips[int(ws.clip_index[i])]
            s = int(ws.starts[i])
            assert w.name == src.name and w.num_frames == 64 and w.labels == src.labels
            np.testing.assert_allclose(w.rotations, src.rotations[s:s + 64], atol=1e-7)
            for k, v in src.frame_labels.items():
                np.testing.assert_array_equal(w.frame_labels[k], v[s:s + 64])
        # A window across a row-group / chunk boundary (groups of 100, chunks of 64 frames).
        w = ds.window(CMU[1], 90, 20)
        np.testing.assert_allclose(w.root_translation, cmu_clips[1].root_translation[90:110], rtol=1e-7, atol=1e-7)
        assert len(ds.windows(400, clips=[CMU[1]])) == 0
        with pytest.raises(DatasetError, match=r"has 343 frames; frames 330:394 do not fit"):
            ds.window(CMU[1], 330, 64)
        with pytest.raises(DatasetError, match="no clip 'nope'; clips: cmu_01_14"):
            ds.read_clip("nope")


@pytest.mark.parametrize("which", [0, 1])
def test_stream_reads_in_pieces_and_covers_everything(both, cmu_clips, which):
    with open_dataset(both[which]) as ds:
        pieces = list(ds.stream())
        unit = 100 if which == 0 else 64
        assert max(len(p.data) for p in pieces) == unit
        for src in cmu_clips:
            mine = [p for p in pieces if p.clip == src.name]
            assert [p.start for p in mine] == list(range(0, src.num_frames, unit))
            rot = np.concatenate([p.data.rotations for p in mine])
            np.testing.assert_allclose(rot, src.rotations, atol=1e-7)
        whole = [c.num_frames for c in ds.iter_clips()]
        assert whole == [c.num_frames for c in cmu_clips]


@pytest.mark.parametrize("suffix", [".parquet", ".h5"])
def test_stream_memory_stays_bounded(tmp_path, suffix):
    """Stream a dataset written clip by clip: memory is one piece, not the file (Parquet: one row group per read)."""
    from optiq.datasets import format_for

    rng = np.random.default_rng(0)
    skeleton = optiq.Skeleton([f"j{i}" for i in range(24)], [-1] + list(range(23)), rng.normal(size=(24, 3)))
    path = tmp_path / f"big{suffix}"
    n_clips, frames = 20, 3000
    with format_for(path).writer(path, skeleton) as w:
        for k in range(n_clips):
            rot = quat.normalize(rng.normal(size=(frames, 24, 4)))
            w.add(optiq.Clip(skeleton, 30, rng.normal(size=(frames, 3)), rot, name=f"c{k}"))
    total_bytes = n_clips * frames * (24 * 4 + 3) * 8  # the whole dataset as float64 clips
    with open_dataset(path) as ds:
        reads = []
        if suffix == ".parquet":
            original = ds._file.read_row_groups
            ds._file.read_row_groups = lambda groups, **kw: (reads.append(list(groups)), original(groups, **kw))[1]
        tracemalloc.start()
        frames_seen = sum(len(c.data) for c in ds.stream())
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert frames_seen == n_clips * frames
    piece_bytes = 1024 * (24 * 4 + 3) * 8  # one row group as float64
    assert peak < 6 * piece_bytes < total_bytes / 8, (peak, total_bytes)
    if suffix == ".parquet":
        assert reads and all(len(g) == 1 for g in reads) and len(reads) == n_clips * 3  # 3000 frames: row groups of 1024, 1024, 952


def test_local_translations_stored_only_where_present(tmp_path, cmu_clips):
    src = cmu_clips[2]
    moving = src.replace(name="moving", local_translations=src.local_offsets() * 1.01)
    for suffix in (".parquet", ".h5"):
        path = write_dataset(tmp_path / f"lt{suffix}", [src, moving])
        with open_dataset(path) as ds:
            assert "local_translations" in ds.fields
            assert ds.read_clip(src.name).local_translations is None
            np.testing.assert_allclose(ds.read_clip("moving").local_translations[:, 1:],
                                       moving.local_translations[:, 1:], rtol=1e-7)


def test_skeleton_mismatch_names_clip_and_first_joint(tmp_path, cmu_clips, data_dir):
    other = optiq.load_clip(data_dir / "bvh" / "fair1_jumping.bvh")
    with pytest.raises(SkeletonMismatchError, match=r"clip 'fair1_jumping'.*joint 1 is 'Spine', expected 'LHipJoint'"):
        write_dataset(tmp_path / "x.parquet", [cmu_clips[0], other])
    sk = cmu_clips[0].skeleton
    parents = sk.parents.copy()
    parents[5] = 3  # LeftToeBase hangs from LeftLeg instead of LeftFoot
    bad = cmu_clips[0].replace(name="bent", skeleton=optiq.Skeleton(sk.names, parents, sk.offsets))
    with pytest.raises(SkeletonMismatchError, match=r"joint 5 'LeftToeBase' has parent 'LeftLeg', expected 'LeftFoot'"):
        write_dataset(tmp_path / "x.h5", [cmu_clips[0], bad])
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_nothing(tmp_path, cmu_clips, monkeypatch):
    from optiq.datasets.hdf5 import HDF5Writer

    def boom(self, info, arrays, labels):
        raise OSError("disk full")

    monkeypatch.setattr(HDF5Writer, "_write_clip", boom)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(tmp_path / "x.h5", cmu_clips)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DatasetError, match="two clips are named"):
        write_dataset(tmp_path / "y.parquet", [cmu_clips[0], cmu_clips[0]])
    assert list(tmp_path.iterdir()) == []


def test_relabel_clip_and_frame_labels(both, tmp_path):
    phases = {CMU[2]: {"phase": list(np.linspace(0, 1, 523)),
                       "contact": {"segments": [[0, 100, "left"], [100, 200, "right"]], "default": "air"}}}
    labels_file = tmp_path / "phases.json"
    labels_file.write_text(json.dumps(phases))
    out = relabel(both[1], tmp_path / "labelled.parquet", labels={"movement": "walking"}, clips=["*walk*"],
                  frame_labels=labels_file)
    with open_dataset(both[1]) as src, open_dataset(out) as ds:
        assert ds.info(CMU[2]).labels["movement"] == "walking"
        assert ds.info(CMU[1]).labels["movement"] == "walk"  # no 'walk' in its name: keeps its label
        assert "movement" not in ds.info(CMU[0]).labels
        c = ds.read_clip(CMU[2])
        np.testing.assert_allclose(c.frame_labels["phase"], np.linspace(0, 1, 523))
        contact = c.frame_labels["contact"]
        assert list(contact[[0, 99, 100, 199, 200, 522]]) == ["left", "left", "right", "right", "air", "air"]
        # Stored velocities and motion are copied bit for bit.
        for name in CMU:
            np.testing.assert_array_equal(ds.arrays(name)["angular_velocities"], src.arrays(name)["angular_velocities"])
            np.testing.assert_array_equal(ds.arrays(name)["rotations"], src.arrays(name)["rotations"])


@pytest.mark.parametrize("doc, message", [
    ({CMU[1]: {"phase": [0.0] * 300}}, r"clip 'cmu_02_01_bvhtodeepmimic', label 'phase': 300 values, but the clip has 343"),
    ({CMU[1]: {"c": {"segments": [[0, 400, "x"]]}}}, r"segment 0 covers frames 0:400, but the clip has frames 0:343"),
    ({CMU[1]: {"c": {"segments": [[0, 10, "x"]]}}}, r"frame 10 is in no segment"),
    ({"nope": {"c": [1]}}, r"clip 'nope' is not in the dataset"),
])
def test_frame_labels_that_do_not_fit(both, tmp_path, doc, message):
    labels_file = tmp_path / "phases.json"
    labels_file.write_text(json.dumps(doc))
    with pytest.raises(ParseError, match=message) as err:
        relabel(both[0], tmp_path / "out.h5", frame_labels=labels_file)
    assert str(labels_file) in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["phases.json"]


def test_opening_bad_files(tmp_path, both, data_dir):
    with pytest.raises(DatasetError, match="dataset does not exist"):
        open_dataset(tmp_path / "missing.parquet")
    fake = tmp_path / "fake.parquet"
    fake.write_bytes((data_dir / "bvh" / "cmu_02_01_bvhtodeepmimic.bvh").read_bytes()[:5000])
    with pytest.raises(DatasetError, match="not a readable Parquet file"):
        open_dataset(fake)
    fake_h5 = tmp_path / "fake.h5"
    fake_h5.write_bytes(b"HIERARCHY\n")
    with pytest.raises(DatasetError, match="not a readable HDF5 file"):
        open_dataset(fake_h5)
    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(plain)
    with pytest.raises(DatasetError, match="no 'optiq' entry"):
        open_dataset(plain)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(both[0].read_bytes()[:-100])
    with pytest.raises(DatasetError, match=str(truncated)):
        open_dataset(truncated)
    newer = tmp_path / "newer.h5"
    newer.write_bytes(both[1].read_bytes())
    with h5py.File(newer, "a") as f:
        f.attrs["schema_version"] = 2
    with pytest.raises(DatasetError, match="schema_version 2 is not one this optiq reads"):
        open_dataset(newer)


@pytest.mark.parametrize("suffix", [".parquet", ".h5"])
def test_an_empty_clip_is_refused_and_nothing_is_written(data_dir, tmp_path, suffix):
    clip = optiq.load_clip(data_dir / "bvh" / "cmu_02_01_bvhtodeepmimic.bvh")
    empty = clip.replace(rotations=clip.rotations[:0], root_translation=clip.root_translation[:0], name="empty")
    out = tmp_path / f"ds{suffix}"
    with pytest.raises(optiq.DatasetError, match="'empty' has no frames"):
        optiq.write_dataset(out, [clip, empty])
    assert list(tmp_path.iterdir()) == []
