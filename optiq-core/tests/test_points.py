"""optiq.Points (markers and keypoints) and points datasets: missing points stay missing, Parquet and HDF5 read
back exactly and without optiq (docs/dataset-format.md), convert and info through the CLI, version 1 still reads."""

from __future__ import annotations

import json
import re

import h5py
import numpy as np
import optiq
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from optiq.cli.main import build_cli
from optiq.datasets import open_dataset, write_dataset
from optiq.errors import DatasetError, OptiqError

QUALISYS = "c3d/c3dorg_qualisys_Walking_Hybrid_1_1.c3d"
PYOMECA = "c3d/pyomeca_markers_analogs.c3d"
OPENPOSE = "keypoints2d/pose2sim_demo_cam01_openpose_body25b_json"


def run(*args):
    return CliRunner().invoke(build_cli(), [str(a) for a in args])


@pytest.fixture(scope="module")
def walk(data_dir):
    return optiq.load_points(data_dir / QUALISYS)[0]


@pytest.fixture(scope="module")
def keypoints(data_dir):
    """The first 20 frames of the OpenPose BODY_25B JSON as 2D Points, read here with json: the first person
    of each frame, confidence 0 -> missing (a 2D design check; the OpenPose loader is a later issue)."""
    files = sorted((data_dir / OPENPOSE).glob("*.json"))[:20]
    rows = [np.asarray(json.loads(f.read_text())["people"][0]["pose_keypoints_2d"]).reshape(-1, 3) for f in files]
    arr = np.stack(rows)
    names = [f"kp{i}" for i in range(arr.shape[1])]
    return optiq.Points(arr[..., :2], names, 60, confidence=arr[..., 2], edges=[("kp5", "kp7"), (7, 9)],
                        image_size=(1080, 1920), name="cam01"), arr


# --- the type ----------------------------------------------------------------------------------------------------
def test_missing_points_are_nan_with_confidence_zero(keypoints):
    pts, arr = keypoints
    zero = arr[..., 2] == 0
    assert zero.any()  # OpenPose writes (0, 0, 0) for keypoints it did not find
    assert np.isnan(pts.positions[zero]).all() and np.array_equal(~pts.valid, zero)
    np.testing.assert_array_equal(pts.positions[~zero], arr[..., :2][~zero])
    assert (pts.dim, pts.unit, pts.image_size, pts.edges.tolist()) == (2, "px", (1080, 1920), [[5, 7], [7, 9]])


def test_bad_points_are_refused_in_one_line():
    pos = np.zeros((4, 2, 3))
    with pytest.raises(OptiqError, match=r"confidence outside \[0, 1\]"):
        optiq.Points(pos, ["a", "b"], 30, confidence=np.full((4, 2), 1.5))
    with pytest.raises(OptiqError, match="edge 0 names 'c', which is not a point"):
        optiq.Points(pos, ["a", "b"], 30, edges=[("a", "c")])
    with pytest.raises(OptiqError, match="point name 'a' is used twice"):
        optiq.Points(pos, ["a", "a"], 30)
    with pytest.raises(OptiqError, match=r"expected \[T, K, 2\] or \[T, K, 3\]"):
        optiq.Points(np.zeros((4, 2, 4)), ["a", "b"], 30)
    with pytest.raises(OptiqError, match="frame 2: position is infinite"):
        optiq.Points(np.where(np.arange(4)[:, None, None] == 2, np.inf, pos), ["a", "b"], 30)
    with pytest.raises(OptiqError, match="proper rotation"):
        optiq.Points(pos, ["a", "b"], 30).transformed(np.diag([1.0, 1.0, -1.0]))


def test_resample_keeps_missing_missing(walk):
    half = walk.resample(120)
    # 240 -> 120 fps: every new frame is an old frame (weight 0), so values and gaps are those of walk[::2].
    assert half.num_frames == 336 and half.fps == 120
    np.testing.assert_array_equal(half.positions, walk.positions[::2])
    np.testing.assert_array_equal(half.confidence, walk.confidence[::2])
    third = walk.resample(96)  # 2.5 old frames per new frame: half of the new frames lie between two old ones
    src = np.arange(third.num_frames) * 2.5
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, walk.num_frames - 1)
    between = src != i0
    needs = walk.valid[i0] & np.where(between[:, None], walk.valid[i1], True)
    np.testing.assert_array_equal(third.valid, needs)  # a new frame needing a missing old frame is missing
    mid = (walk.positions[i0] + walk.positions[i1]) / 2
    ok = third.valid & between[:, None]
    np.testing.assert_allclose(third.positions[ok], mid[ok], rtol=0, atol=1e-12)


def test_slice_and_transform(walk):
    part = walk[100:200:2]
    assert (part.num_frames, part.fps) == (50, 120)
    np.testing.assert_array_equal(part.positions, walk.positions[100:200:2])
    turned = walk.transformed(np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), 1000.0, unit="mm")
    np.testing.assert_allclose(turned.positions[..., 0], -walk.positions[..., 1] * 1000, rtol=1e-12)
    assert turned.unit == "mm" and np.array_equal(turned.valid, walk.valid)


# --- datasets ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def written(walk, keypoints, tmp_path_factory):
    d = tmp_path_factory.mktemp("points")
    labelled = walk.with_labels({"trial": "walk"}, {"phase": np.linspace(0, 1, walk.num_frames),
                                                    "foot": np.where(np.arange(walk.num_frames) < 300, "l", "r")})
    takes = [labelled, walk[:100].replace(name="start")]
    paths = [write_dataset(d / "m.parquet", takes, row_group_frames=128), write_dataset(d / "m.h5", takes),
             write_dataset(d / "k.h5", [keypoints[0]])]
    return takes, paths


def test_points_datasets_read_back_exactly(written):
    takes, paths = written
    for path in paths[:2]:
        with open_dataset(path) as ds:
            assert (ds.clip_names, ds.names, ds.dim, ds.unit) == (["c3dorg_qualisys_Walking_Hybrid_1_1", "start"],
                                                                  takes[0].names, 3, "m")
            for t in takes:
                back = ds.read_points(t.name)
                np.testing.assert_array_equal(back.positions, t.positions.astype(np.float32).astype(np.float64))
                np.testing.assert_array_equal(back.confidence, t.confidence)
                assert back.labels == t.labels and back.fps == t.fps
                for k, v in t.frame_labels.items():
                    np.testing.assert_array_equal(back.frame_labels[k], v)
            window = ds.window(0, 120, 20)  # crosses a 128-frame Parquet row group
            np.testing.assert_array_equal(window.positions, ds.read_points(0).positions[120:140])
            with pytest.raises(DatasetError, match="holds no Clips; read 'x' with read_points"):
                ds.read_clip("x")
    with open_dataset(paths[2]) as ds:
        back = ds.read_points("cam01")
        assert back.image_size == (1080, 1920) and back.edges.tolist() == [[5, 7], [7, 9]] and back.unit == "px"


def test_points_datasets_read_without_optiq(written):
    """The recipes of docs/dataset-format.md ("Points datasets") with plain pyarrow and h5py."""
    takes, (pq_path, h5_path, _) = written
    walk = takes[0]
    pf = pq.ParquetFile(pq_path)
    header = json.loads(pf.metadata.metadata[b"optiq"])
    assert (header["schema_version"], header["kind"]) == (2, "points")
    K, D = len(header["points"]["names"]), header["points"]["dim"]
    clip = next(c for c in header["clips"] if c["name"] == walk.name)
    rows = pq.read_table(pq_path).slice(clip["start"], clip["num_frames"])
    positions = rows.column("positions").combine_chunks().flatten().to_numpy().reshape(-1, K, D)
    np.testing.assert_array_equal(positions, walk.positions.astype(np.float32))
    with h5py.File(h5_path, "r") as f:
        assert (f.attrs["schema_version"], f.attrs["kind"]) == (2, "points")
        assert list(f["points/names"].asstr()[()]) == list(walk.names)
        g = f["clips"][walk.name]
        np.testing.assert_array_equal(g["positions"][()], walk.positions.astype(np.float32))
        np.testing.assert_array_equal(g["confidence"][()], walk.confidence.astype(np.float32))
        assert g.attrs["fps"] == 240 and dict(g["labels"].attrs)["trial"] == "walk"


def test_points_datasets_share_the_skeleton_datasets_checks(written, walk, tmp_path):
    """Points datasets are written and read by the same machinery as skeleton datasets: Parquet page checksums,
    the closed check, frame label names that would shadow a stored field, damaged values named by place."""
    _, (pq_path, h5_path, _) = written
    column = pq.ParquetFile(pq_path).metadata.row_group(1).column(2)  # frames 128:256 of the first take
    assert column.path_in_schema == "positions.list.element" and "BYTE_STREAM_SPLIT" in column.encodings
    flipped = tmp_path / "flipped.parquet"
    data = bytearray(pq_path.read_bytes())
    data[column.data_page_offset + column.total_compressed_size // 2] ^= 0xFF
    flipped.write_bytes(data)
    with open_dataset(flipped) as ds:
        assert ds.read_points("start").num_frames == 100  # other row groups still read
        # zstd has no checksum of its own: the page CRC is what turns flipped bytes into an error.
        with pytest.raises(DatasetError, match=r"frames 0:672: damaged dataset: cannot read positions.*CRC"):
            ds.read_points(0)
    for path in (pq_path, h5_path):
        ds = open_dataset(path)
        ds.close()
        with pytest.raises(DatasetError, match=rf"^{re.escape(str(path))}: dataset is closed; open it again"):
            ds.read_points(0)
    with pytest.raises(DatasetError, match="frame label names confidence are names of stored fields; rename them"):
        write_dataset(tmp_path / "x.h5", [walk.with_labels(frame_labels={"confidence": np.zeros(walk.num_frames)})])
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(h5_path.read_bytes())
    with h5py.File(damaged, "r+") as f:
        f["clips/start/confidence"][7, 3] = 2.5
    with open_dataset(damaged) as ds:
        with pytest.raises(DatasetError, match=rf"clip 'start', frame 7, point '{walk.names[3]}': damaged dataset: "
                                               r"position .* with confidence 2.5, expected"):
            ds.read_points("start")
        assert ds.read_points(0).num_frames == walk.num_frames  # the other take still reads
    with h5py.File(damaged, "r+") as f:
        del f["clips/start/confidence"]
    with pytest.raises(DatasetError, match="damaged dataset: /clips/start/confidence is missing"):
        open_dataset(damaged)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.h5", "flipped.parquet"]


def test_points_dataset_header_is_checked_on_open(written, tmp_path):
    _, (pq_path, _, _) = written
    header = json.loads(pq.ParquetFile(pq_path).metadata.metadata[b"optiq"])
    header["clips"][1]["start"] = 5
    table = pq.read_table(pq_path)
    bad = tmp_path / "bad.parquet"
    pq.write_table(table.replace_schema_metadata({b"optiq": json.dumps(header)}), bad)
    with pytest.raises(DatasetError, match=r"damaged dataset header: clip 1 'start' starts at row 5, expected 672"):
        open_dataset(bad)


def test_version_1_skeleton_datasets_still_read(data_dir, tmp_path):
    # A clip label named "kind" does not make a skeleton dataset look like a points dataset.
    clip = optiq.load_clip(data_dir / "bvh" / "bvhio_example.bvh").with_labels({"kind": "points"})
    for suffix in ("parquet", "h5"):
        path = write_dataset(tmp_path / f"s.{suffix}", [clip])
        with open_dataset(path) as ds:
            assert ds.summary()["schema_version"] == 1 and ds.read_clip(0).num_frames == clip.num_frames
            assert ds.labels["kind"] == ["points"] and ds.labels["up"] == ["y"]


def test_points_and_clips_do_not_mix(data_dir, walk, tmp_path):
    clip = optiq.load_clip(data_dir / "bvh" / "bvhio_example.bvh")
    with pytest.raises(DatasetError, match="cannot write Points"):
        write_dataset(tmp_path / "x.parquet", [walk, clip])
    with pytest.raises(DatasetError, match="point set differs from the first clip's: point 0 is 'boite:gauche_ext'"):
        write_dataset(tmp_path / "x.h5", [walk, optiq.load_points(data_dir / PYOMECA)[0]])
    assert list(tmp_path.iterdir()) == []


def test_a_format_without_points_support_is_named(walk, tmp_path):
    from optiq.datasets.hdf5 import HDF5Format
    from optiq.datasets.points import write_points_dataset

    class CsvFormat(HDF5Format):
        name = "csv"

    with pytest.raises(DatasetError, match="dataset format 'csv' does not store points; use .parquet, .h5 or .hdf5"):
        write_points_dataset(tmp_path / "x.csv", [walk], CsvFormat)
    assert list(tmp_path.iterdir()) == []


# --- CLI -----------------------------------------------------------------------------------------------------------
def test_convert_and_info_through_the_cli(data_dir, walk, tmp_path):
    out = tmp_path / "m.parquet"
    r = run("data", "convert", "--in", data_dir / QUALISYS, "--out", out, "--fps", 120, "--label", "lab=qualisys")
    assert r.exit_code == 0, r.output
    assert r.output.endswith("wrote " + str(out) + ": 1 clips, 336 frames from 1 files\n")
    with open_dataset(out) as ds:
        back = ds.read_points(0)
    np.testing.assert_array_equal(back.positions, walk.positions[::2].astype(np.float32))
    assert back.labels["lab"] == "qualisys"
    info = json.loads(run("data", "info", out, "--json").stdout)
    assert (info["kind"], info["num_frames"], info["fps"], info["points"]["num_points"]) == ("points", 336, [120.0], 25)
    assert info["valid_fraction"] == pytest.approx(walk.valid[::2].mean())
    text = run("data", "info", out).output
    assert "points: 25 (3D, m): R_ASIS, L_ASIS," in text
    worst = walk.names[int(np.argmin(walk.valid[::2].mean(axis=0)))]
    assert f"least present: {worst} {walk.valid[::2].mean(axis=0).min():.1%}" in text


@pytest.mark.parametrize("flag", [["--drop-tpose"], ["--compute-velocities"], ["--smooth", "6"],
                                  ["--root", "R_ASIS"]])
def test_skeleton_steps_are_refused_for_markers(data_dir, tmp_path, flag):
    out = tmp_path / "m.h5"
    r = run("data", "convert", "--in", data_dir / PYOMECA, "--out", out, *flag)
    assert r.exit_code == 2
    assert r.output == f"optiq: error: {flag[0]} does not apply to marker files (points have no skeleton)\n"
    assert not out.exists()


def test_markers_and_skeleton_files_do_not_mix_in_a_conversion(data_dir, tmp_path):
    r = run("data", "convert", "--in", data_dir / PYOMECA, data_dir / "bvh" / "bvhio_example.bvh",
            "--out", tmp_path / "m.parquet")
    assert r.exit_code == 2 and "cannot convert marker files" in r.output and r.output.count("\n") == 1


def test_skeleton_commands_refuse_a_points_dataset(written, tmp_path):
    _, (pq_path, h5_path, _) = written
    label = run("data", "label", "--in", pq_path, "--out", tmp_path / "l.parquet", "--label", "a=b")
    assert label.exit_code == 2
    assert label.output == (f"optiq: error: {pq_path}: a points dataset (markers, no skeleton) has no skeleton; "
                            "this reads skeleton datasets\n")
    export = run("data", "export", h5_path, "--clip", "start", "--out", tmp_path / "x.bvh")
    assert export.exit_code == 2 and "holds no Clips; read 'start' with read_points" in export.output
    assert list(tmp_path.iterdir()) == []
