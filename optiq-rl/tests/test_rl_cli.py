"""``optiq rl character`` and ``optiq rl info`` end to end, and bad input: one line ``optiq: error: ...``, exit 2,
nothing written."""

from __future__ import annotations

import json

import numpy as np
import optiq
from click.testing import CliRunner
from optiq.skeleton import Skeleton
from optiq_rl.characters import character


def test_character_from_deepmimic_file(cli, character_file, tmp_path):
    out = tmp_path / "body.xml"
    result = CliRunner().invoke(cli, ["rl", "character", "--deepmimic", str(character_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    # It faces +y at rest: DeepMimic walks along its +x heading reference, which the axis change turns to +y.
    assert result.stdout.strip() == f"{out}: 15 joints, 28 motors, 45.0 kg, nq 43, nv 34, faces 90 deg from +x at rest"
    assert np.array_equal(character(out).kp, character("deepmimic").kp)


def test_character_from_dataset(cli, data_dir, tmp_path):
    clip = optiq.load_clip(data_dir / "bvh" / "cmu_12_01_walk_pybvh.bvh")[:10]
    ds = optiq.write_dataset(tmp_path / "walk.parquet", [clip])
    out = tmp_path / "cmu.xml"
    result = CliRunner().invoke(cli, ["rl", "character", "--from", str(ds), "--total-mass", "80", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "31 joints, 90 motors, 80.0 kg" in result.stdout
    assert character(out).joint_names == clip.skeleton.names


def test_info(cli):
    result = CliRunner().invoke(cli, ["rl", "info", "deepmimic", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["nq"], info["nv"], info["nu"], info["mass_kg"]) == (43, 34, 28, 45.0)
    assert info["actuators"][:3] == ["chest_x", "chest_y", "chest_z"] and info["kp"][:3] == [1000.0] * 3


def test_bad_input(fails, tmp_path):
    out = tmp_path / "body.xml"
    fails(["rl", "character", "--from", str(tmp_path / "missing.parquet"), "--out", str(out)],
          "missing.parquet: dataset does not exist", out)
    fails(["rl", "character", "--deepmimic", str(tmp_path / "missing.txt"), "--out", str(out)],
          "missing.txt: character file does not exist", out)
    bad = tmp_path / "bad.xml"
    bad.write_text("<mujoco><worldbody><bodyx/></worldbody></mujoco>")
    fails(["rl", "info", str(bad)], f"{bad}: MuJoCo cannot load it: XML Error: Schema violation")
    one = optiq.Clip(Skeleton(("root",), [-1], np.zeros((1, 3))), 30, np.zeros((5, 3)), np.tile([1.0, 0, 0, 0], (5, 1, 1)))
    ds = optiq.write_dataset(tmp_path / "one.parquet", [one])
    fails(["rl", "character", "--from", str(ds), "--out", str(out)], "skeleton has 1 joint(s)", out)
    fails(["rl", "character", "--out", str(out)], "give one of --from DATASET or --deepmimic FILE", out)
