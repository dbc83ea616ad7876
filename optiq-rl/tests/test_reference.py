"""Reference datasets: retargeted motion as an ordinary optiq dataset on the character's skeleton with qpos and
qvel per frame (dataset schema version 3 extras); files of schema version 1 keep reading; ``optiq rl retarget``
end to end and its bad input (one line, exit 2, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optiq
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from optiq.datasets import EXTRAS_SCHEMA_VERSION, SCHEMA_VERSION, open_dataset, write_dataset
from optiq.errors import DatasetError
from optiq_rl.characters import character
from optiq_rl.retarget import body_positions, clip_to_qpos, load_reference, qpos_to_clip


@pytest.fixture(scope="module")
def walk(data_dir):
    return optiq.load_clip(data_dir / "deepmimic" / "humanoid3d_walk.txt")


@pytest.fixture(scope="module")
def humanoid_v5_path():
    import gymnasium

    return Path(gymnasium.__file__).parent / "envs" / "mujoco" / "assets" / "humanoid.xml"


def _header(path):
    if path.suffix == ".parquet":
        return json.loads(pq.ParquetFile(path).metadata.metadata[b"optiq"])
    import h5py

    with h5py.File(path, "r") as f:
        return {"schema_version": int(f.attrs["schema_version"]), "extras": json.loads(f.attrs.get("extras", "{}"))}


@pytest.mark.parametrize("suffix", [".parquet", ".h5"])
def test_extras_round_trip_as_schema_version_3(walk, tmp_path, suffix):
    qpos, qvel = clip_to_qpos(walk, character("deepmimic"))
    path = tmp_path / f"ref{suffix}"
    write_dataset(path, [walk], extras=[{"qpos": qpos, "qvel": qvel}])
    header = _header(path)
    assert header["schema_version"] == EXTRAS_SCHEMA_VERSION == 3
    assert header["extras"] == {"qpos": [43], "qvel": [34]}
    with open_dataset(path) as ds:
        assert ds.extras == {"qpos": (43,), "qvel": (34,)} and ds.summary()["schema_version"] == 3
        got = ds.arrays(0, 5, 20, fields=["qpos", "qvel"])
        assert np.array_equal(got["qpos"], qpos[5:20].astype(np.float32))
        assert np.array_equal(got["qvel"], qvel[5:20].astype(np.float32))
        # The clip itself reads as from any dataset.
        assert np.allclose(ds.read_clip(0).rotations, walk.rotations, atol=1e-6)


@pytest.mark.parametrize("suffix", [".parquet", ".h5"])
def test_schema_version_1_files_keep_reading(walk, tmp_path, suffix):
    """A dataset without extras is written exactly as version 1 was (no 'extras' key, version 1), so optiq
    versions that read only version 1 read it, and this one reads version-1 files."""
    path = tmp_path / f"plain{suffix}"
    write_dataset(path, [walk])
    header = _header(path)
    assert header["schema_version"] == SCHEMA_VERSION == 1 and not header.get("extras")
    with open_dataset(path) as ds:
        assert ds.extras == {} and list(ds.arrays(0)) == ["root_translation", "rotations"]
        assert ds.read_clip(0).num_frames == 39
    with pytest.raises(DatasetError, match="not a reference dataset: no qpos, qvel per frame"):
        load_reference(path)


def test_extras_are_checked(walk, tmp_path):
    q = np.zeros((walk.num_frames, 43))
    with pytest.raises(DatasetError, match="extra 'qpos' has shape \\(38, 43\\), expected \\(39, 43\\)"):
        write_dataset(tmp_path / "a.parquet", [walk], extras=[{"qpos": q[1:]}])
    q[7, 3] = np.nan
    with pytest.raises(DatasetError, match="clip 'humanoid3d_walk', frame 7: extra 'qpos' is not finite"):
        write_dataset(tmp_path / "b.parquet", [walk], extras=[{"qpos": q}])
    with pytest.raises(DatasetError, match="extra array 'rotations' has the name of a motion field"):
        write_dataset(tmp_path / "c.parquet", [walk], extras=[{"rotations": q}])
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("which", ["deepmimic", "humanoid_v5"])
def test_qpos_to_clip_matches_mujoco(which, walk, data_dir, humanoid_v5_path):
    """The dataset clip's own forward kinematics puts every joint where MuJoCo puts its body, also for a body
    whose rest frames are rotated (Humanoid-v5's waist and pelvis)."""
    from optiq_rl.ik import retarget_ik
    from optiq_rl.jointmap import load_joint_map

    if which == "deepmimic":
        char = character("deepmimic")
        qpos = clip_to_qpos(walk, char)[0]
    else:
        char = character(humanoid_v5_path)
        cmu = optiq.load_clip(data_dir / "bvh" / "cmu_12_01_walk_pybvh.bvh")
        qpos = retarget_ik(cmu, char, load_joint_map("cmu_to_humanoid_v5"), frames=slice(1, 21)).qpos
    clip = qpos_to_clip(char, qpos, 30.0, "x")
    assert clip.skeleton.names == char.skeleton().names
    assert np.abs(clip.forward_kinematics()[0] - body_positions(char, qpos)).max() < 1e-9


def test_retarget_same_topology_needs_no_map(cli, walk, data_dir, tmp_path):
    out = tmp_path / "ref.parquet"
    src = data_dir / "deepmimic" / "humanoid3d_walk.txt"
    result = CliRunner().invoke(cli, ["rl", "retarget", "--in", str(src), "--character", "deepmimic", "--out",
                                      str(out), "--json"])
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)["humanoid3d_walk"]
    assert m["frames"] == 39 and m["max_mm"] < 1e-9 and m["limit_violations"] == 0
    clip, qpos, qvel = load_reference(out)
    want_q, want_v = clip_to_qpos(walk, character("deepmimic"))
    assert np.abs(qpos - want_q).max() < 1e-6 and np.abs(qvel - want_v).max() < 1e-4
    assert clip.labels["character"] == "deepmimic" and clip.labels["retarget"] == "direct"
    # The dataset clip is the walk: joint positions equal the source's (float32 storage).
    src_pos = walk.forward_kinematics()[0][:, [walk.skeleton.index(n) for n in clip.skeleton.names]]
    assert np.abs(clip.forward_kinematics()[0] - src_pos).max() < 1e-5


def test_retarget_bvh_with_a_map_prints_the_measurements(cli, data_dir, tmp_path, humanoid_v5_path):
    out = tmp_path / "ref.h5"
    src = data_dir / "corpora" / "bandai_namco" / "data" / "dataset-1_walk_normal_001.bvh"
    result = CliRunner().invoke(cli, ["rl", "retarget", "--in", str(src), "--character", str(humanoid_v5_path),
                                      "--map", "bandai_to_humanoid_v5", "--frames", "0:30", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("dataset-1_walk_normal_001: 30 frames on humanoid: error mean ")
    assert "limit violations 0 (max 0.000 rad); penetration 0.0 mm;" in lines[0]
    assert any(line.startswith("  Foot_L -> left_foot: mean ") for line in lines)
    assert lines[-1] == f"{out}: 1 clip(s), qpos 24 and qvel 23 per frame"
    clip, qpos, qvel = load_reference(out)
    assert qpos.shape == (30, 24) and qvel.shape == (30, 23) and clip.skeleton.num_joints == 13
    assert clip.labels["retarget"] == "ik:bandai_to_humanoid_v5"


def test_a_reference_dataset_is_labelled_like_any_other(cli, data_dir, tmp_path):
    """``optiq data label`` rewrites the dataset with new labels and keeps qpos and qvel as stored."""
    ref, labelled = tmp_path / "ref.parquet", tmp_path / "labelled.parquet"
    src = data_dir / "deepmimic" / "humanoid3d_run.txt"
    assert CliRunner().invoke(cli, ["rl", "retarget", "--in", str(src), "--character", "deepmimic",
                                    "--out", str(ref)]).exit_code == 0
    result = CliRunner().invoke(cli, ["data", "label", "--in", str(ref), "--out", str(labelled), "--label",
                                      "movement=run", "--auto", "contacts"])
    assert result.exit_code == 0, result.output
    clip, qpos, qvel = load_reference(labelled)
    _, qpos0, qvel0 = load_reference(ref)
    assert np.array_equal(qpos, qpos0) and np.array_equal(qvel, qvel0)
    assert clip.labels["movement"] == "run" and set(clip.frame_labels) == {"contact_left", "contact_right"}


def test_bad_input_is_one_line_and_writes_nothing(fails, data_dir, tmp_path):
    out = tmp_path / "ref.parquet"
    cmu = str(data_dir / "bvh" / "cmu_12_01_walk_pybvh.bvh")
    bad_xml = tmp_path / "bad.xml"
    bad_xml.write_text("<mujoco><worldbody><bodyx/></worldbody></mujoco>")
    fails(["rl", "retarget", "--in", cmu, "--character", str(bad_xml), "--map", "cmu_to_deepmimic",
           "--out", str(out)], "MuJoCo cannot load it: XML Error", out)
    bad_map = tmp_path / "map.json"
    bad_map.write_text(json.dumps({"joints": {"Hips": "root", "Pelvis": "root", "LeftFoot": "left_foot"}}))
    line = fails(["rl", "retarget", "--in", cmu, "--character", "deepmimic", "--map", str(bad_map),
                  "--out", str(out)], "joint map names joint(s) Pelvis missing from clip", out)
    assert "body(ies) left_foot missing from character 'deepmimic'" in line
    fails(["rl", "retarget", "--in", cmu, "--character", "deepmimic", "--out", str(out)],
          "does not fit character 'deepmimic': missing joint(s) root, chest", out)
