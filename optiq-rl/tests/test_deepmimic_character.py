"""The DeepMimic humanoid as MJCF: the numbers of the character file in MuJoCo's compiled model, the built-in
data file equal to the file it was made from, and an independent MJCF of the same humanoid (MimicKit's) agreeing
on bone offsets, PD gains and torque limits."""

from __future__ import annotations

import json
import warnings

import mujoco
import numpy as np
import pytest
from optiq.errors import OptiqWarning, ParseError
from optiq_rl.characters import character
from optiq_rl.characters.deepmimic import (
    DATA_PATH,
    HumanoidDef,
    build_character,
    deepmimic_character,
    read_character_file,
)


def _name(m, kind, i):
    return mujoco.mj_id2name(m, kind, i)


def test_builtin_data_is_the_character_file(character_file):
    with warnings.catch_warnings():
        warnings.simplefilter("error", OptiqWarning)  # every joint of humanoid3d has DeepMimic's gains
        spec = read_character_file(character_file)
    builtin = json.loads(DATA_PATH.read_text())
    spec.name, spec.source = builtin["name"], builtin["source"]
    assert spec.to_json() == builtin
    assert build_character(spec).mjcf_xml == character("deepmimic").mjcf_xml


def test_model_has_the_files_joints_shapes_and_masses(character_file, ground_gap):
    doc = json.loads(character_file.read_text())
    char = deepmimic_character(character_file)
    m = char.model()
    # 1 free root + 8 ball joints + 4 hinges (knees, elbows); the wrists are fixed.
    assert (m.nq, m.nv, m.nu, m.njnt, m.nbody) == (7 + 8 * 4 + 4, 6 + 8 * 3 + 4, 28, 13, 16)
    masses = {b["Name"]: b["Mass"] for b in doc["BodyDefs"]}
    ids = char.body_ids()
    assert dict(zip(char.joint_names, m.body_mass[ids].round(9), strict=True)) == masses
    assert m.body_mass.sum() == pytest.approx(45.0)
    knee = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "right_knee")
    assert m.jnt_type[knee] == mujoco.mjtJoint.mjJNT_HINGE
    assert m.jnt_range[knee].tolist() == [-3.14, 0.0]
    chest = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "chest")
    assert (m.jnt_type[chest], m.jnt_range[chest, 1]) == (mujoco.mjtJoint.mjJNT_BALL, 1.2)
    # Sizes as DeepMimic's cShape: sphere diameter, capsule diameter + cylinder length, box full extents.
    geom = {_name(m, mujoco.mjtObj.mjOBJ_GEOM, g): g for g in range(m.ngeom)}
    assert m.geom_size[geom["root"], 0] == pytest.approx(0.09)
    assert m.geom_size[geom["right_hip"], :2] == pytest.approx([0.055, 0.15])
    assert m.geom_size[geom["right_ankle"]] == pytest.approx([0.0885, 0.0275, 0.045])
    # Standing: the lowest geom (a foot box) touches the ground in the rest pose.
    assert ground_gap(m) == pytest.approx(0.0, abs=1e-9)  # MuJoCo's collision distance to the floor
    assert char.fall_bodies == ("root", "chest", "neck")


def test_gains_and_torque_limits_per_actuator(character_file):
    char = deepmimic_character(character_file)
    gains = dict(zip(char.actuator_names(), zip(char.kp, char.kd, char.torque_limits, strict=True), strict=True))
    assert gains["chest_x"] == (1000, 100, 200) and gains["neck_z"] == (100, 10, 50)
    assert gains["left_hip_y"] == (500, 50, 200) and gains["right_knee"] == (500, 50, 150)
    assert gains["right_ankle_x"] == (400, 40, 90) and gains["left_shoulder_z"] == (400, 40, 100)
    assert gains["left_elbow"] == (300, 30, 60)
    m = char.model()
    assert np.array_equal(m.actuator_ctrlrange[:, 1], char.torque_limits)
    # Each motor's control is a torque in N m on one degree of freedom, which actuator_dofs names.
    data = mujoco.MjData(m)
    dofs = char.actuator_dofs()
    assert sorted(dofs.tolist()) == list(range(6, 34))  # every dof but the free root's six, once
    for a in range(m.nu):
        data.ctrl[:] = 0.0
        data.ctrl[a] = 7.0
        mujoco.mj_forward(m, data)
        assert np.flatnonzero(data.qfrc_actuator).tolist() == [dofs[a]] and data.qfrc_actuator[dofs[a]] == 7.0


def test_agrees_with_mimickits_humanoid(character_file, data_dir, mimickit):
    """MimicKit's own MJCF of this humanoid (another author, hinges instead of ball joints): same bones,
    same PD gains as its joint stiffness and damping, same torque limits except the elbows (MimicKit 70 N m)."""
    names, to_mimickit = mimickit
    ours = deepmimic_character(character_file)
    theirs = character(data_dir / "mjcf" / "mimickit" / "humanoid.xml")
    rest = ours.skeleton().offsets
    tm = theirs.model()
    for j, name in enumerate(ours.joint_names[1:], start=1):
        b = mujoco.mj_name2id(tm, mujoco.mjtObj.mjOBJ_BODY, names[name])
        assert np.linalg.norm(rest[j]) == pytest.approx(np.linalg.norm(tm.body_pos[b]), abs=1e-6), name
        if not name.endswith(("elbow", "wrist")):  # MimicKit's rest pose holds the arms out (a T-pose)
            assert to_mimickit @ rest[j] == pytest.approx(tm.body_pos[b], abs=1e-6), name
        dofs = np.flatnonzero(tm.jnt_bodyid == b)
        acts = [i for i, a in enumerate(ours.actuator_names()) if a.rsplit("_", 1)[0] == name or a == name]
        assert set(tm.jnt_stiffness[dofs]) == set(ours.kp[acts]), name
        assert set(tm.dof_damping[tm.jnt_dofadr[dofs]]) == set(ours.kd[acts]), name
        limits = {float(x) for x in tm.jnt_actfrcrange[dofs, 1]}
        assert limits == set(ours.torque_limits[acts]) or name.endswith("elbow"), name


def test_builtin_needs_no_shared_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("OPTIQ_TEST_DATA", str(tmp_path / "nowhere"))
    monkeypatch.chdir(tmp_path)
    char = character("deepmimic")
    assert char.name == "deepmimic" and char.model().nu == 28
    assert HumanoidDef.from_json(json.loads(DATA_PATH.read_text())).joints[4].limits == [[-3.14, 0.0]]


def test_bad_character_files(tmp_path, character_file):
    with pytest.raises(ParseError, match="does not exist"):
        read_character_file(tmp_path / "missing.txt")
    doc = json.loads(character_file.read_text())
    doc["Skeleton"]["Joints"][3]["Type"] = "prismatic"
    bad = tmp_path / "bad.txt"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ParseError, match=r"bad.txt: Skeleton.Joints\[3\]: Type 'prismatic'"):
        read_character_file(bad)
    doc = json.loads(character_file.read_text())
    doc["BodyDefs"][5]["Mass"] = -1
    bad.write_text(json.dumps(doc))
    with pytest.raises(ParseError, match=r"BodyDefs\[5\]: Mass must be positive"):
        read_character_file(bad)
    doc = json.loads(character_file.read_text())
    doc["Skeleton"]["Joints"][2]["Name"] = "head"
    bad.write_text(json.dumps(doc))
    with pytest.warns(OptiqWarning, match="no PD gains for joint.s. head"):
        spec = read_character_file(bad)
    assert spec.joints[2].gains == [125.0, 12.5]  # 2.5 x its torque limit of 50 N m, kd = kp / 10


def test_forward_is_where_the_walk_goes(character_file, data_dir):
    """``Character.forward``: the DeepMimic walk travels along the humanoid's facing (its root's heading plus
    ``forward``), for the built-in character, one built from the file, and one read back from its MJCF."""
    import optiq
    from optiq.features import _yaw

    walk = optiq.load_clip(data_dir / "deepmimic" / "humanoid3d_walk.txt")
    travel = walk.root_translation[-1] - walk.root_translation[0]
    heading = float(np.mean(_yaw(walk.rotations[:, 0])))
    for char in (character("deepmimic"), deepmimic_character(character_file)):
        ahead = heading + char.forward
        assert np.degrees(abs(np.arctan2(travel[1], travel[0]) - ahead)) < 2.0
        assert char.forward == pytest.approx(np.pi / 2, abs=1e-12)
