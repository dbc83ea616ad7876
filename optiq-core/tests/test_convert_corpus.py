"""Converting whole corpora: one unit and up axis per conversion, loader options, inputs that are not files,
mixed roots (``--root``, ``--joints``, ``--rename``), topology reports and streaming, on the real corpora."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import optiq
import pytest
from click.testing import CliRunner
from optiq.cli.main import build_cli
from optiq.datasets import open_dataset
from optiq.loaders.bvh import load_bvh

pytest_plugins = ["optiq.testing"]  # the optiq_plugins fixture

CMU_WALK = "bvh/cmu_02_01_bvhtodeepmimic.bvh"


def run(*args):
    return CliRunner().invoke(build_cli(), [str(a) for a in args])


@pytest.fixture(scope="module")
def bandai(data_dir):
    return data_dir / "corpora" / "bandai_namco" / "data"


@pytest.fixture(scope="module")
def iclone(data_dir):
    return data_dir / "corpora" / "cmu_iclone"


def bvh_root(path: Path) -> str:
    """The ROOT joint a BVH file names (read without optiq)."""
    return re.search(r"^\s*ROOT\s+(\S+)", path.read_text(), flags=re.M).group(1)


# --- one unit and one up axis --------------------------------------------------------------------------------

def test_bandai_folder_has_one_unit_and_up_axis(bandai, tmp_path):
    """The Bandai-Namco corpus is centimetres, Y up (its README); before, one conversion mixed inch/Y and cm/Z."""
    out = tmp_path / "bandai.parquet"
    r = run("data", "convert", "--in", bandai, "--out", out, "--jobs", "2")
    assert r.exit_code == 0, r.output
    with open_dataset(out) as ds:
        assert len(ds.clip_names) == len(list(bandai.glob("*.bvh"))) == 158
        assert {(c.labels["length_unit"], c.labels["up"]) for c in ds.clips} == {("cm", "y")}


ODD = {"dataset-1_walk_old_001", "dataset-1_walk_tired_001"}


def load_guessy(path, *, unit="auto", up="auto", drop_tpose=False):
    """The BVH loader, except that two takes are guessed in inches, Z up, when the caller does not say: what the
    rest-pose guess did for some Bandai-Namco takes."""
    if unit == "auto" and up == "auto" and Path(path).stem in ODD:
        unit, up = "inch", "z"
    return load_bvh(path, unit=unit, up=up, drop_tpose=drop_tpose)


def test_files_guessed_unlike_the_majority_are_reloaded(bandai, tmp_path, optiq_plugins):
    optiq_plugins({"optiq_register_loaders": lambda register: register("guessy", load_guessy, suffixes=(".bvh",))})
    files = sorted(bandai / f"dataset-1_walk_{style}_001.bvh"
                   for style in ("active", "angry", "normal", "happy", "old", "tired"))
    frames = {f.stem: int(re.search(r"Frames:\s*(\d+)", f.read_text()).group(1)) for f in files}
    assert sum(n for k, n in frames.items() if k in ODD) < sum(n for k, n in frames.items() if k not in ODD)
    majority = load_bvh(next(f for f in files if f.stem not in ODD))[0].labels
    out = tmp_path / "walks.parquet"
    r = run("data", "convert", "--in", *files, "--out", out, "--loader", "guessy", "--jobs", "1")
    assert r.exit_code == 0, r.output
    warning = [line for line in r.stderr.splitlines() if line.startswith("optiq: warning: ")]
    assert len(warning) == 1 and "2 of 6 files" in warning[0] and "length_unit=inch up=z" in warning[0]
    assert all(name + ".bvh" in warning[0] for name in ODD)
    with open_dataset(out) as ds:
        labels = {(c.labels["length_unit"], c.labels["up"]) for c in ds.clips}
        assert labels == {(majority["length_unit"], majority["up"])}
        for name in ODD:
            expected = load_bvh(bandai / f"{name}.bvh", unit=majority["length_unit"], up=majority["up"])[0]
            np.testing.assert_allclose(ds.read_clip(name).root_translation, expected.root_translation, atol=1e-5)

    r = run("data", "convert", "--in", *files, "--out", out, "--loader", "guessy", "--jobs", "1", "--unit", "cm",
            "--up", "y")
    assert r.exit_code == 0, r.output
    assert "warning" not in r.stderr  # what the user says is used for every file
    with open_dataset(out) as ds:
        assert {(c.labels["length_unit"], c.labels["up"]) for c in ds.clips} == {("cm", "y")}


def load_stated(path, *, unit=None, drop_tpose=False):
    """A loader whose files state their unit, as FBX files do (UnitScaleFactor): the ODD takes say inches."""
    stated = unit or ("inch" if Path(path).stem in ODD else "cm")
    return load_bvh(path, unit=stated, up="y", drop_tpose=drop_tpose)


def test_units_that_files_state_are_never_agreed_away(bandai, tmp_path, optiq_plugins):
    """Only guesses are agreed on: a file that states its unit (the loader's default is not "auto") keeps it,
    however many files state another, and nothing is re-loaded or reported."""
    optiq_plugins({"optiq_register_loaders": lambda register: register("stated", load_stated, suffixes=(".bvh",))})
    files = sorted(bandai / f"dataset-1_walk_{style}_001.bvh" for style in ("active", "angry", "normal", "old"))
    out = tmp_path / "walks.parquet"
    result = optiq.convert.convert(files, out, optiq.convert.ConvertOptions(loader="stated"), jobs=1,
                                   on_warning=pytest.fail)
    assert result.reloaded == {}
    with open_dataset(out) as ds:
        assert {c.name: c.labels["length_unit"] for c in ds.clips} == {
            f.stem: "inch" if f.stem in ODD else "cm" for f in files}


# --- loader options ------------------------------------------------------------------------------------------

def test_option_passes_loader_options_parsed_as_json_scalars(data_dir, tmp_path):
    path = data_dir / CMU_WALK
    frames = int(re.search(r"Frames:\s*(\d+)", path.read_text()).group(1))
    out = tmp_path / "ds.parquet"
    r = run("data", "convert", "--in", path, "--out", out, "--option", "drop_tpose=true", "--option", "up=z",
            "--option", "unit=0.0254")
    assert r.exit_code == 0, r.output
    with open_dataset(out) as ds:
        info = ds.clips[0]
        assert info.num_frames == frames - 1  # true is a bool: the T-pose frame 0 is dropped
        assert info.labels["up"] == "z" and info.labels["length_unit"] == "0.0254 m"


def test_unknown_loader_option_is_an_error_in_the_cli_and_in_python(data_dir, tmp_path):
    path = data_dir / CMU_WALK
    r = run("data", "convert", "--in", path, "--out", tmp_path / "ds.parquet", "--option", "drop_tposee=true")
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"optiq: error: {path}: loader 'bvh' ")
    assert "'drop_tposee'" in r.stderr and "it takes: drop_tpose, unit, up" in r.stderr
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(optiq.OptiqError, match="loader 'bvh' does not take option 'drop_tposee'"):
        optiq.load(path, drop_tposee=True)
    with pytest.raises(optiq.OptiqError, match="does not take option 'unit'; it takes: character, drop_tpose, fps"):
        optiq.load(data_dir / "deepmimic" / "humanoid3d_walk.txt", unit="cm")
    r = run("data", "convert", "--in", path, "--out", tmp_path / "ds.parquet", "--option", "novalue")
    assert r.exit_code == 2 and "--option 'novalue': expected KEY=VALUE" in r.stderr


def test_module_attr_loader_never_runs_a_shell(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "walk.bvh"
    script.write_text("#!/bin/sh\ntouch ran_as_shell\n")  # what os.system(path) would run
    script.chmod(0o755)
    for loader, message in [("os:system", "loader 'os:system' is not a load function"),
                            ("os:popen", "loader 'os:popen' is a function of the standard library module 'os'"),
                            ("pathlib:Path.unlink", "standard library module 'pathlib', not a load function"),
                            ("json:dumps", "loader 'json:dumps' is a function of the standard library module"),
                            ("optiq.axes:unit_name", "loader 'optiq.axes:unit_name' failed: TypeError: "),
                            ("numpy:ndim", "loader 'numpy:ndim' returned int, expected a list of Clip")]:
        r = run("data", "convert", "--in", script, "--out", tmp_path / "ds.parquet", "--loader", loader)
        assert r.exit_code == 2, (loader, r.output)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"optiq: error: {script}: "), r.stderr
        assert message in r.stderr
    assert not (tmp_path / "ran_as_shell").exists() and script.exists()  # not run, not deleted
    assert not (tmp_path / "ds.parquet").exists()


# --- inputs --------------------------------------------------------------------------------------------------

def test_fifo_input_is_refused_not_read(data_dir, tmp_path):
    fifo = tmp_path / "walk.bvh"
    os.mkfifo(fifo)
    r = run("data", "convert", "--in", fifo, "--out", tmp_path / "ds.parquet")
    assert r.exit_code == 2
    assert r.stderr == f"optiq: error: {fifo}: is a FIFO (named pipe), expected a regular motion file\n"
    with pytest.raises(optiq.OptiqError, match="is a FIFO"):
        optiq.load(fifo)
    # In a folder, a FIFO is not a motion file: the folder's real files convert.
    shutil.copy(data_dir / CMU_WALK, tmp_path / "real.bvh")
    r = run("data", "convert", "--in", tmp_path, "--out", tmp_path / "ds.parquet")
    assert r.exit_code == 0, r.output
    with open_dataset(tmp_path / "ds.parquet") as ds:
        assert ds.clip_names == ["real"]


def test_recursive_walks_subfolders(data_dir, tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    shutil.copy(data_dir / CMU_WALK, tmp_path / "a" / "deep" / "walk.bvh")
    shutil.copy(data_dir / "bvh" / "cmu_12_01_walk_pybvh.bvh", tmp_path / "top.bvh")
    out = tmp_path / "ds.parquet"
    r = run("data", "convert", "--in", tmp_path, "--out", out)
    assert r.exit_code == 0, r.output
    with open_dataset(out) as ds:
        assert ds.clip_names == ["top"]  # one level by default
    r = run("data", "convert", "--in", tmp_path, "--out", out, "--recursive")
    assert r.exit_code == 0, r.output
    with open_dataset(out) as ds:
        assert sorted(ds.clip_names) == ["top", "walk"]


def test_a_pattern_passes_over_files_that_are_not_motion(bandai, tmp_path):
    """``dataset-1_walk_normal_*`` also matches the corpus's label files (``*.json``, not optiq motion JSON); they
    are passed over as in a folder walk (before: the conversion stopped at the first of them)."""
    pattern = str(bandai / "dataset-1_walk_normal_*")
    takes = sorted(p.stem for p in bandai.glob("dataset-1_walk_normal_*.bvh"))
    assert takes and len(list(bandai.glob("dataset-1_walk_normal_*.json"))) == len(takes)
    out = tmp_path / "walks.parquet"
    r = run("data", "convert", "--in", pattern, "--out", out, "--jobs", "1")
    assert r.exit_code == 0, r.output
    with open_dataset(out) as ds:
        assert sorted(ds.clip_names) == takes
    r = run("data", "convert", "--in", str(bandai / "dataset-1_walk_normal_*.json"), "--out", out)
    assert r.exit_code == 2 and "no motion file matches the pattern" in r.stderr


# --- roots, joint subsets, renames ---------------------------------------------------------------------------

def world(clip, names):
    idx = [clip.skeleton.index(n) for n in names]
    pos, rot = clip.forward_kinematics()
    return pos[:, idx], rot[:, idx]


def test_rerooted_keeps_world_positions_on_real_files(iclone, bandai):
    extra = iclone / "subjects" / "002" / "002_01.bvh"
    assert bvh_root(extra) == "RL_BoneRoot"
    for path, root in [(extra, "CC_Base_Hip"), (bandai / "dataset-1_walk_old_001.bvh", "Hips")]:
        clip = optiq.load(path)[0]
        new = clip.rerooted(root)
        assert new.skeleton.names[0] == root and new.num_joints == clip.num_joints - 1
        pos, rot = world(clip, new.skeleton.names)
        new_pos, new_rot = new.forward_kinematics()
        np.testing.assert_allclose(new_pos, pos, atol=1e-6)
        np.testing.assert_allclose(np.abs(np.sum(new_rot * rot, axis=-1)), 1.0, atol=1e-9)
        np.testing.assert_allclose(new.root_translation, pos[:, 0], atol=1e-12)
        # Only the root was folded: the others keep the file's offsets (Bandai-Namco animates positions).
        assert (new.local_translations is None) == (clip.local_translations is None)


def test_subset_folds_dropped_joints_and_rename(iclone):
    clip = optiq.load(iclone / "subjects" / "001" / "001_01.bvh")[0]
    keep = [n for n in clip.skeleton.names if "Twist" not in n and "Share" not in n]
    assert len(keep) < clip.num_joints
    sub = clip.subset(keep)
    assert sub.skeleton.names == tuple(keep)
    pos, rot = world(clip, keep)
    new_pos, new_rot = sub.forward_kinematics()
    np.testing.assert_allclose(new_pos, pos, atol=1e-6)
    np.testing.assert_allclose(np.abs(np.sum(new_rot * rot, axis=-1)), 1.0, atol=1e-9)
    with pytest.raises(optiq.OptiqError, match="have no kept joint above them"):
        clip.subset(["CC_Base_L_Thigh", "CC_Base_R_Thigh"])
    renamed = sub.renamed({"CC_Base_Hip": "hips"})
    assert renamed.skeleton.names[0] == "hips" and renamed.skeleton.names[1:] == sub.skeleton.names[1:]
    with pytest.raises(optiq.OptiqError, match="cannot rename 'nope'"):
        sub.renamed({"nope": "x"})


def test_iclone_corpus_converts_into_one_dataset_with_root(iclone, tmp_path):
    """The 49 iClone CMU takes: 46 rooted at CC_Base_Hip and 3 with RL_BoneRoot above it (the corpus README)."""
    files = sorted((iclone / "subjects").rglob("*.bvh"))
    roots = [bvh_root(f) for f in files]
    assert len(files) == 49 and roots.count("RL_BoneRoot") == 3
    out = tmp_path / "iclone.h5"
    r = run("data", "convert", "--in", iclone, "--out", out, "--jobs", "2")
    assert r.exit_code == 2 and "no motion files in folder" in r.stderr  # only README, csv at the top

    r = run("data", "convert", "--in", iclone, "--recursive", "--out", out, "--root", "CC_Base_Hip", "--jobs", "2")
    assert r.exit_code == 0, r.output
    with open_dataset(out) as ds:
        assert sorted(ds.clip_names) == sorted(f.stem for f in files)
        assert ds.skeleton.names[0] == "CC_Base_Hip" and ds.skeleton.num_joints == 100
        moved = ds.read_clip("002_01")
    original = optiq.load(iclone / "subjects" / "002" / "002_01.bvh")[0]
    pos, _ = world(original, moved.skeleton.names)
    np.testing.assert_allclose(moved.world_positions(), pos, atol=1e-4)  # float32 on disk


def test_skip_bad_reports_the_topologies_found(iclone, tmp_path):
    files = [iclone / "subjects" / "001" / "001_01.bvh", iclone / "subjects" / "001" / "001_08.bvh",
             iclone / "subjects" / "002" / "002_01.bvh"]
    out = tmp_path / "ds.parquet"
    r = run("data", "convert", "--in", *files, "--out", out, "--skip-bad", "--jobs", "1")
    assert r.exit_code == 0, r.output
    warning = [line for line in r.stderr.splitlines() if line.startswith("optiq: warning: ")]
    assert len(warning) == 1
    assert ("2 files with root 'CC_Base_Hip', 100 joints (e.g. 001_01.bvh); 1 file with root 'RL_BoneRoot', "
            "101 joints (e.g. 002_01.bvh)") in warning[0]
    assert "--root JOINT" in warning[0]
    assert "optiq: skipped: " in r.stderr and "002_01.bvh" in r.stderr
    with open_dataset(out) as ds:
        assert ds.clip_names == ["001_01", "001_08"]
    r = run("data", "convert", "--in", *files, "--out", out, "--skip-bad", "--jobs", "1", "--root", "CC_Base_Hip")
    assert r.exit_code == 0 and "warning" not in r.stderr and "skipped" not in r.stderr
    with open_dataset(out) as ds:
        assert ds.clip_names == ["001_01", "001_08", "002_01"]


def test_joints_and_rename_options(data_dir, tmp_path):
    path = data_dir / CMU_WALK
    rename = tmp_path / "names.json"
    rename.write_text(json.dumps({"Hips": "pelvis"}))
    out = tmp_path / "ds.parquet"
    r = run("data", "convert", "--in", path, "--out", out, "--joints", "Hips,LeftUpLeg,LeftLeg,RightUpLeg,RightLeg",
            "--rename", rename)
    assert r.exit_code == 0, r.output
    with open_dataset(out) as ds:
        assert ds.skeleton.names == ("pelvis", "LeftUpLeg", "LeftLeg", "RightUpLeg", "RightLeg")
        clip = ds.read_clip(0)
    original = optiq.load(path)[0]
    pos, _ = world(original, ("Hips", "LeftUpLeg", "LeftLeg", "RightUpLeg", "RightLeg"))
    np.testing.assert_allclose(clip.world_positions(), pos, atol=1e-4)


@pytest.mark.parametrize("content, message", [
    (b'{"Hips": "pelvis",\n}', "line 2: not JSON: "),
    (b'{"Hips": "\xff"}', "byte 10: not UTF-8 text; expected a JSON object"),
    (b'["Hips", "pelvis"]', 'expected a JSON object {"old joint name": "new joint name", ...}'),
])
def test_a_bad_rename_map_is_one_line_naming_it(data_dir, tmp_path, content, message):
    rename = tmp_path / "names.json"
    rename.write_bytes(content)
    r = run("data", "convert", "--in", data_dir / CMU_WALK, "--out", tmp_path / "ds.parquet", "--rename", rename)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
    assert r.stderr.startswith(f"optiq: error: {rename}: ") and message in r.stderr, r.stderr
    assert not (tmp_path / "ds.parquet").exists()


# --- streaming -----------------------------------------------------------------------------------------------

def record_loads_and_adds(monkeypatch) -> list[tuple[str, str]]:
    """The ("load", file stem) and ("add", clip name) events of the conversions that follow, in order."""
    import optiq.convert
    from optiq.datasets.base import DatasetWriter

    events = []
    read = optiq.convert._read
    add = DatasetWriter.add
    monkeypatch.setattr(optiq.convert, "_read", lambda path, *a: events.append(("load", path.stem)) or read(path, *a))
    monkeypatch.setattr(DatasetWriter, "add", lambda self, clip, *a: events.append(("add", clip.name)) or
                        add(self, clip, *a))
    return events


def test_clips_are_written_as_they_are_loaded(data_dir, tmp_path, monkeypatch):
    """Each large file's clips reach the writer before the next file is loaded for writing (memory: one file)."""
    import optiq.convert

    events = record_loads_and_adds(monkeypatch)
    monkeypatch.setattr(optiq.convert, "KEEP_BYTES", 0)  # every file counts as large
    files = [data_dir / CMU_WALK, data_dir / "bvh" / "cmu_12_01_walk_pybvh.bvh"]
    result = optiq.convert.convert(files, tmp_path / "ds.h5", jobs=1)
    a, b = (f.stem for f in files)
    # The survey reads each file once (keeping no frames), then each is loaded and written in turn.
    assert events == [("load", a), ("load", b), ("load", a), ("add", a), ("load", b), ("add", b)]
    assert [c.name for c in result.clips] == [a, b] and result.num_frames == sum(c.num_frames for c in result.clips)


def test_small_files_are_read_once_and_written_the_same(data_dir, tmp_path, monkeypatch):
    """The survey keeps small files' clips (KEEP_BYTES) for the writer; the dataset is the one that reading every
    file twice writes, resampling included. Past KEEP_TOTAL_BYTES, files are read again."""
    import optiq.convert

    files = [data_dir / CMU_WALK, data_dir / "bvh" / "cmu_12_01_walk_pybvh.bvh"]
    a, b = (f.stem for f in files)
    options = optiq.convert.ConvertOptions(fps=24.0, drop_tpose=True)
    events = record_loads_and_adds(monkeypatch)
    optiq.convert.convert(files, tmp_path / "once.h5", options, jobs=1)
    assert events == [("load", a), ("load", b), ("add", a), ("add", b)]

    size = optiq.convert._frame_bytes(optiq.convert.load_file(files[0], replace(options, fps=None)))
    events.clear()
    monkeypatch.setattr(optiq.convert, "KEEP_TOTAL_BYTES", size)  # room for the first file's clips only
    optiq.convert.convert(files, tmp_path / "first.h5", options, jobs=1)
    assert events == [("load", a), ("load", b), ("add", a), ("load", b), ("add", b)]

    monkeypatch.setattr(optiq.convert, "KEEP_BYTES", 0)
    optiq.convert.convert(files, tmp_path / "twice.h5", options, jobs=1)
    with open_dataset(tmp_path / "once.h5") as once, open_dataset(tmp_path / "first.h5") as first, \
            open_dataset(tmp_path / "twice.h5") as twice:
        for name in (a, b):
            x, y, z = once.read_clip(name), first.read_clip(name), twice.read_clip(name)
            assert x.fps == y.fps == z.fps == 24.0 and x.labels == z.labels
            assert x.num_frames == z.num_frames and x.labels.get("dropped_tpose") == "1"
            for c in (x, y):
                np.testing.assert_array_equal(c.rotations, z.rotations)
                np.testing.assert_array_equal(c.root_translation, z.root_translation)
