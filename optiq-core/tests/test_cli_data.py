"""``optiq data convert|label|info|export`` through the real CLI, on the real CMU BVH files."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import optiq
import pytest
from click.testing import CliRunner
from optiq import quat
from optiq.cli.main import build_cli
from optiq.datasets import open_dataset
from optiq.plugins import PluginManager, set_manager

CMU = ["cmu_01_14_bvhtodeepmimic", "cmu_02_01_bvhtodeepmimic", "cmu_12_01_walk_pybvh"]


def run(*args: str):
    return CliRunner().invoke(build_cli(), [str(a) for a in args])


def bvh_header(path):
    """Joint count, frame count and fps as the BVH text states them (read without optiq)."""
    text = path.read_text()
    joints = len(re.findall(r"^\s*(ROOT|JOINT)\s", text, flags=re.M))
    frames = int(re.search(r"Frames:\s*(\d+)", text).group(1))
    fps = 1.0 / float(re.search(r"Frame Time:\s*([\d.]+)", text).group(1))
    return joints, frames, fps


@pytest.fixture(scope="module")
def cmu_files(data_dir):
    return [data_dir / "bvh" / f"{n}.bvh" for n in CMU]


@pytest.fixture(scope="module")
def converted(cmu_files, tmp_path_factory):
    d = tmp_path_factory.mktemp("conv")
    for out in ("ds.parquet", "ds.h5"):
        r = run("data", "convert", "--in", *cmu_files, "--out", d / out, "--drop-tpose", "--compute-velocities",
                "--label", "subject=cmu", "--jobs", "1")
        assert r.exit_code == 0, r.output
    return d / "ds.parquet", d / "ds.h5"


def test_convert_info_matches_the_files(converted, cmu_files):
    for path in converted:
        r = run("data", "info", path, "--json")
        assert r.exit_code == 0, r.output
        info = json.loads(r.stdout)
        assert [c["name"] for c in info["clips"]] == CMU
        for c, f in zip(info["clips"], cmu_files, strict=True):
            joints, frames, fps = bvh_header(f)
            assert c["num_frames"] == frames - 1  # the leading T-pose frame is dropped
            assert c["fps"] == pytest.approx(fps, rel=1e-5)
            assert c["labels"]["subject"] == "cmu" and c["labels"]["source"] == f.name
            assert info["skeleton"]["num_joints"] == joints
        assert info["num_frames"] == sum(bvh_header(f)[1] - 1 for f in cmu_files)
        assert info["fields"] == ["root_translation", "rotations", "linear_velocities", "angular_velocities"]
        assert info["labels"]["subject"] == ["cmu"]
    text = run("data", "info", converted[0]).stdout
    assert "clips: 3, frames: 3204" in text and "skeleton: 31 joints: Hips, LHipJoint" in text
    assert re.search(r"cmu_02_01_bvhtodeepmimic\s+343\s+120\s+2\.85", text)


def test_both_formats_from_one_conversion_are_equal(converted):
    with open_dataset(converted[0]) as a, open_dataset(converted[1]) as b:
        for name in CMU:
            ra, rb = a.arrays(name), b.arrays(name)
            assert ra.keys() == rb.keys() and len(ra) == 4
            for k in ra:
                np.testing.assert_array_equal(ra[k], rb[k])
            assert a.info(name).labels == b.info(name).labels


def test_convert_resamples_and_smooths(cmu_files, tmp_path):
    out = tmp_path / "s.h5"
    r = run("data", "convert", "--in", cmu_files[1], "--out", out, "--drop-tpose", "--smooth", "6", "--fps", "30")
    assert r.exit_code == 0, r.output
    src = optiq.load_clip(cmu_files[1], drop_tpose=True)
    with open_dataset(out) as ds:
        c = ds.read_clip(0)
    assert c.fps == 30 and c.num_frames == int((src.num_frames - 1) / 4) + 1  # 120 -> 30 fps keeps every 4th
    expected = src.smooth(6).resample(30)
    np.testing.assert_allclose(c.rotations, expected.rotations, atol=1e-7)
    # Smoothing did something: the raw frames differ from the smoothed ones by more than float32 noise.
    assert np.abs(src.root_translation[::4] - c.root_translation).max() > 1e-4


def test_folder_with_a_bad_file_stops_or_skips(cmu_files, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(cmu_files[1], folder / "a_walk.bvh")
    shutil.copy(cmu_files[2], folder / "c_walk.bvh")
    lines = cmu_files[0].read_text().splitlines(keepends=True)
    (folder / "b_broken.bvh").write_text("".join(lines[:400]))  # truncated in the MOTION block
    out = tmp_path / "out" / "ds.parquet"
    out.parent.mkdir()
    r = run("data", "convert", "--in", folder, "--out", out, "--jobs", "2")
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("optiq: error: ")
    assert "b_broken.bvh" in r.stderr and "line 400" in r.stderr and "truncated" in r.stderr
    assert list(out.parent.iterdir()) == []

    r = run("data", "convert", "--in", folder, "--out", out, "--skip-bad", "--jobs", "2")
    assert r.exit_code == 0, r.output
    assert "skipped" in r.stderr and "b_broken.bvh" in r.stderr
    assert "2 clips" in r.stdout and "1 bad files skipped" in r.stdout
    with open_dataset(out) as ds:
        assert ds.clip_names == ["a_walk", "c_walk"]


def test_mixed_skeletons_stop_with_the_file_and_joint(cmu_files, data_dir, tmp_path):
    out = tmp_path / "ds.h5"
    r = run("data", "convert", "--in", cmu_files[1], data_dir / "bvh" / "fair1_jumping.bvh", "--out", out)
    assert r.exit_code == 2
    assert "fair1_jumping.bvh" in r.stderr and "joint 1 is 'Spine', expected 'LHipJoint'" in r.stderr
    assert not out.exists()
    r = run("data", "convert", "--in", str(data_dir / "bvh" / "cmu_*.bvh"), "--out", out, "--skip-bad", "-j", "1")
    assert r.exit_code == 0, r.output
    assert "cmu_131_01_start_walk_stop_maxfriendly.bvh" in r.stderr  # the 3dsMax dialect: other joints
    with open_dataset(out) as ds:
        assert ds.clip_names == CMU


@pytest.mark.parametrize("args, message", [
    (["--out", "{tmp}/missing/ds.parquet"], "output folder '{tmp}/missing' does not exist"),
    (["--out", "{tmp}/ds.csv"], "no dataset format for .csv"),
    (["--in", "{tmp}/nothing*.bvh", "--out", "{tmp}/ds.h5"], "no file matches it as a pattern"),
    (["--label", "novalue", "--out", "{tmp}/ds.h5"], "--label 'novalue': expected key=value"),
])
def test_convert_usage_errors(cmu_files, tmp_path, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    r = run("data", "convert", "--in", cmu_files[1], *args)
    assert r.exit_code == 2
    assert r.stderr == f"optiq: error: {message.format(tmp=tmp_path)}\n" or message.format(tmp=tmp_path) in r.stderr
    assert r.stderr.count("\n") == 1
    assert [p for p in tmp_path.iterdir()] == []


def test_export_round_trip_to_bvh(converted, tmp_path):
    out = tmp_path / "walk.bvh"
    r = run("data", "export", converted[0], "--clip", CMU[1], "--out", out)
    assert r.exit_code == 0, r.output
    back = optiq.load_clip(out)
    with open_dataset(converted[0]) as ds:
        clip = ds.read_clip(CMU[1])
    assert back.num_frames == clip.num_frames and back.skeleton.names == clip.skeleton.names
    assert quat.angle_between(back.rotations, clip.rotations).max() < 1e-5
    np.testing.assert_allclose(back.root_translation, clip.root_translation, atol=1e-5)
    np.testing.assert_allclose(back.world_positions(), clip.world_positions(), atol=1e-5)


def test_export_errors(converted, tmp_path):
    # Core's plugin only: the hint a user without optiq-fbx sees, whether or not this venv has optiq-fbx.
    previous = set_manager(PluginManager(discover=False))
    try:
        r = run("data", "export", converted[1], "--clip", CMU[1], "--out", tmp_path / "x.fbx")
    finally:
        set_manager(previous)
    assert r.exit_code == 2 and 'install "optiq[fbx]"' in r.stderr
    r = run("data", "export", converted[1], "--clip", "nope", "--out", tmp_path / "x.bvh")
    assert r.exit_code == 2 and "no clip 'nope'; clips: cmu_01_14_bvhtodeepmimic" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_label_command(converted, tmp_path):
    labels_file = tmp_path / "phases.json"
    labels_file.write_text(json.dumps({CMU[1]: {"phase": {"segments": [[0, 343, "stance"]]}}}))
    out = tmp_path / "labelled.h5"
    r = run("data", "label", "--in", converted[0], "--out", out, "--label", "movement=walk", "--clips", "*walk*",
            "--clips", "cmu_02_*", "--frame-labels", labels_file)
    assert r.exit_code == 0, r.output
    info = json.loads(run("data", "info", out, "--json").stdout)
    movement = {c["name"]: c["labels"].get("movement") for c in info["clips"]}
    assert movement == {CMU[0]: None, CMU[1]: "walk", CMU[2]: "walk"}
    assert info["frame_labels"] == {"phase": "string"}

    labels_file.write_text(json.dumps({CMU[2]: {"phase": [0.5] * 100}}))
    bad_out = tmp_path / "bad.parquet"
    r = run("data", "label", "--in", converted[0], "--out", bad_out, "--frame-labels", labels_file)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert str(labels_file) in r.stderr and "clip 'cmu_12_01_walk_pybvh'" in r.stderr and "523 frames" in r.stderr
    assert not bad_out.exists()
    r = run("data", "label", "--in", converted[0], "--out", bad_out, "--label", "a=b", "--clips", "zzz*")
    assert r.exit_code == 2 and "no clip matches zzz*" in r.stderr and not bad_out.exists()


def test_info_of_a_motion_file_lists_its_clips(data_dir):
    """`optiq data info` on a motion file (not a dataset) reports what the file states."""
    path = data_dir / "bvh" / "cmu_131_01_start_walk_stop_maxfriendly.bvh"
    text = path.read_text()
    frames = int(text.split("Frames:")[1].split()[0])
    joints = text.count("JOINT ") + text.count("ROOT ")
    result = run("data", "info", path, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["format"] == "motion file (loader bvh)" and info["schema_version"] is None
    assert (info["num_clips"], info["num_frames"], info["fps"]) == (1, frames, [120.0])
    assert info["skeleton"]["num_joints"] == joints
    table = run("data", "info", path)
    assert table.exit_code == 0 and f"clips: 1, frames: {frames}" in table.output


def test_convert_reorders_joints_listed_in_another_order(data_dir, tmp_path):
    """Two files of one skeleton whose joints are listed in different orders go into one dataset."""
    src = data_dir / "bvh" / "cmu_02_01_bvhtodeepmimic.bvh"
    clip = optiq.load_clip(src)
    names = list(clip.skeleton.names)
    reordered = clip.with_joint_order([names[0], *names[6:11], *names[1:6], *names[11:]]).replace(name="swapped")
    optiq.save_clip(reordered, tmp_path / "swapped.bvh")
    out = tmp_path / "ds.h5"
    result = run("data", "convert", "--in", src, tmp_path / "swapped.bvh", "--out", out)
    assert result.exit_code == 0, result.output
    with optiq.open_dataset(out) as ds:
        a, b = ds.read_clip(clip.name), ds.read_clip("swapped")
    assert a.skeleton.names == b.skeleton.names == tuple(names)
    np.testing.assert_allclose(b.world_positions(), a.world_positions(), atol=1e-4)


def test_convert_scale_multiplies_every_length(data_dir, tmp_path):
    """--scale multiplies offsets, root and world positions; rotations are unchanged."""
    src = data_dir / "bvh" / "sfu_0005_Walking001.bvh"
    clip = optiq.load_clip(src)
    out = tmp_path / "half.h5"
    result = run("data", "convert", "--in", src, "--out", out, "--scale", "0.5")
    assert result.exit_code == 0, result.output
    with optiq.open_dataset(out) as ds:
        half = ds.read_clip(clip.name)
    np.testing.assert_allclose(half.world_positions(), 0.5 * clip.world_positions(), atol=1e-5)
    np.testing.assert_allclose(np.abs(np.sum(half.rotations * clip.rotations, axis=-1)), 1.0, atol=1e-6)
    bad = run("data", "convert", "--in", src, "--out", tmp_path / "x.h5", "--scale", "0")
    assert bad.exit_code == 2 and not (tmp_path / "x.h5").exists()


def test_label_writes_through_a_symlink(converted, tmp_path):
    """`data label --out link.parquet` replaces the file the link points to; the link stays a link."""
    real = tmp_path / "store" / "ds.parquet"
    real.parent.mkdir()
    shutil.copy(converted[0], real)
    link = tmp_path / "link.parquet"
    link.symlink_to(real)
    r = run("data", "label", "--in", converted[0], "--out", link, "--label", "movement=walk")
    assert r.exit_code == 0, r.output
    assert link.is_symlink() and link.resolve() == real
    with open_dataset(real) as ds:
        assert {c.labels["movement"] for c in ds.clips} == {"walk"} and ds.clip_names == CMU
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["ds.parquet", "link.parquet", "store"]
    # In place through the link (a documented feature): still atomic, still a link.
    r = run("data", "label", "--in", link, "--out", link, "--label", "subject=cmu2")
    assert r.exit_code == 0, r.output
    with open_dataset(real) as ds:
        assert {c.labels["subject"] for c in ds.clips} == {"cmu2"}
    assert link.is_symlink() and not [p for p in real.parent.iterdir() if p.name.endswith(".part")]


def test_export_refuses_to_overwrite_its_dataset(converted, tmp_path):
    """An export whose --out is the dataset itself (here through a symlink named .json) is refused."""
    data = tmp_path / "ds.parquet"
    shutil.copy(converted[0], data)
    link = tmp_path / "x.json"
    link.symlink_to(data)
    before = data.read_bytes()
    r = run("data", "export", data, "--clip", CMU[1], "--out", link)
    assert r.exit_code == 2
    assert r.stderr == f"optiq: error: {link}: output is the input file {data}; choose another output\n"
    assert data.read_bytes() == before and link.is_symlink()


def test_cli_docs_list_every_convert_option_as_help_shows_it():
    """docs/cli.md holds `optiq data convert --help`'s options block word for word (line breaks aside: they
    follow the terminal width), so an option added, renamed or re-described fails here until the docs follow."""
    from pathlib import Path

    r = CliRunner().invoke(build_cli(), ["data", "convert", "--help"])
    assert r.exit_code == 0, r.output
    options = r.output[r.output.index("Options:"):].rstrip()
    assert "--jobs" in options and "--rename" in options
    docs = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    assert " ".join(options.split()) in " ".join(docs.split())


def test_label_auto_contacts_and_phase(converted, tmp_path):
    """``data label --auto contacts --auto phase`` stores the contact detector's flags and the gait phase as frame
    labels of the clips matching --clips (the others get none), equal to ``auto_labels`` of the stored clip; on
    the real walks both feet spend between 30% and 80% of the frames on the ground."""
    from optiq.contacts import auto_labels

    out = tmp_path / "auto.h5"
    r = run("data", "label", "--in", converted[0], "--out", out, "--auto", "contacts", "--auto", "phase",
            "--clips", "*walk*")
    assert r.exit_code == 0, r.output
    with open_dataset(out) as ds:
        assert ds.frame_label_types == {"contact_left": "bool", "contact_right": "bool", "phase": "float32"}
        for name in ds.clip_names:
            clip = ds.read_clip(name)
            if "walk" not in name:
                assert clip.frame_labels == {}
                continue
            expected = {**auto_labels(clip, "contacts"), **auto_labels(clip, "phase")}
            assert set(clip.frame_labels) == set(expected)
            for key, values in expected.items():
                np.testing.assert_array_equal(clip.frame_labels[key], values)
            for foot in ("contact_left", "contact_right"):
                assert 0.3 < clip.frame_labels[foot].mean() < 0.8
            assert 0.0 <= clip.frame_labels["phase"].min() and clip.frame_labels["phase"].max() < 1.0
    r = run("data", "label", "--in", converted[0], "--out", tmp_path / "x.parquet", "--auto", "gait")
    assert r.exit_code == 2 and "'gait' is not one of 'contacts', 'phase'" in r.stderr
