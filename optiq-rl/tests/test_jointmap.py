"""Joint maps: optiq's JSON, the published maps of BvhToDeepMimic and IsaacGymEnvs read into the same object,
checked against real skeletons and characters; a map naming missing joints is one error listing them."""

from __future__ import annotations

import json

import numpy as np
import optiq
import pytest
from optiq_rl.characters import character
from optiq_rl.jointmap import JointMap, JointMapError, Pair, joint_map_names, load_joint_map, parse_joint_map


@pytest.fixture(scope="module")
def retarget_dir(data_dir):
    return data_dir / "retarget"


def _bodies(char):
    import mujoco

    m = char.model()
    return [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b) for b in range(m.nbody)]


def test_bvhtodeepmimic_settings_map_sfu_onto_deepmimic(retarget_dir, data_dir):
    jm = load_joint_map(retarget_dir / "bvhtodeepmimic_settings_sfu_to_deepmimic.json")
    assert len(jm.pairs) == 13 and jm.root == "Hips" and jm.file_scale == 0.0254 and jm.scale == 1.0
    pairs = {p.source: p for p in jm.pairs}
    # DeepMimic's joint "hip" is the root body; "right knee" is the character's right_knee.
    assert pairs["Hips"].body == "root" and pairs["Hips"].orientation == 1.0
    assert pairs["RightLeg"].body == "right_knee" and pairs["Spine"].body == "chest"
    assert pairs["LeftFoot"].body == "left_ankle" and pairs["LeftFoot"].orientation == 1.0
    assert jm.extra["rootRotJoints"] == {"root rot up": "Spine1", "root rot left": "LeftUpLeg"}
    sfu = optiq.load_clip(data_dir / "bvh" / "sfu_0005_Walking001.bvh")
    jm.check(sfu.skeleton.names, _bodies(character("deepmimic")))


def test_isaacgym_maps_cmu_and_sfu_onto_the_amp_humanoid(retarget_dir, data_dir, amp_humanoid):
    amp = amp_humanoid
    cmu_map = load_joint_map(retarget_dir / "isaacgymenvs_retarget_cmu_to_amp.json")
    sfu_map = load_joint_map(retarget_dir / "isaacgymenvs_retarget_sfu_to_amp.json")
    assert len(cmu_map.pairs) == len(sfu_map.pairs) == 15
    assert (cmu_map.file_scale, sfu_map.file_scale) == (0.056444, 0.01)
    assert cmu_map.extra["trim_frame_beg"] == 75 and cmu_map.extra["trim_frame_end"] == 372
    assert {p.body for p in cmu_map.pairs} == set(amp.joint_names)  # every AMP body is driven
    cmu = optiq.load_clip(data_dir / "bvh" / "cmu_12_01_walk_pybvh.bvh")
    assert cmu_map.root_source(cmu.skeleton) == "Hips"
    sfu = optiq.load_clip(data_dir / "bvh" / "sfu_0005_Walking001.bvh")
    cmu_map.check(cmu.skeleton.names, _bodies(amp))
    sfu_map.check(sfu.skeleton.names, _bodies(amp))


def test_builtin_maps_fit_their_sources_and_characters(data_dir):
    from pathlib import Path

    import gymnasium

    v5 = character(Path(gymnasium.__file__).parent / "envs" / "mujoco" / "assets" / "humanoid.xml")
    sources = {"cmu": optiq.load_clip(data_dir / "bvh" / "cmu_12_01_walk_pybvh.bvh"),
               "bandai": optiq.load_clip(data_dir / "corpora" / "bandai_namco" / "data"
                                         / "dataset-1_walk_normal_001.bvh")}
    chars = {"deepmimic": character("deepmimic"), "humanoid_v5": v5}
    assert joint_map_names() == sorted(f"{s}_to_{c}" for s in sources for c in chars)
    for name in joint_map_names():
        src, char = name.split("_to_")
        jm = load_joint_map(name)
        assert jm.scale == "height" and jm.name == name
        jm.check(sources[src].skeleton.names, _bodies(chars[char]))
        # Feet and hands are the end effectors of every built-in map.
        ends = jm.end_effectors(sources[src].skeleton)
        assert sum("Foot" in e for e in ends) == 2 and sum("Hand" in e for e in ends) == 2, ends


def test_missing_joints_are_listed_in_one_error(data_dir):
    jm = load_joint_map("cmu_to_deepmimic")
    bandai = optiq.load_clip(data_dir / "corpora" / "bandai_namco" / "data" / "dataset-1_walk_normal_001.bvh")
    with pytest.raises(JointMapError) as err:
        jm.check(bandai.skeleton.names, ["world", "root"], "clip 'walk'", "character 'x'")
    text = str(err.value)
    # Hips is in the Bandai skeleton; the CMU names are not.
    assert "joint(s) Spine1, Neck1, LeftUpLeg," in text and " Hips," not in text.split("missing from")[0]
    assert "missing from clip 'walk'" in text and "body(ies) chest, neck, left_hip" in text
    assert "missing from character 'x'" in text and "root," not in text


def test_optiq_json_round_trip_and_short_form():
    jm = JointMap((Pair("Hips", "root", 1.0, 1.0), Pair("LeftFoot", "left_ankle", 2.0, 0.5, (0.0, 0.0, 1.0, 0.0),
                                                         (0.0, 0.1, -0.05))), scale="height", name="t")
    back = parse_joint_map(json.loads(json.dumps(jm.to_json())), None)
    assert back == jm
    short = parse_joint_map({"joints": {"Hips": "root"}, "scale": 0.5}, None)
    assert short.pairs == (Pair("Hips", "root"),) and short.scale == 0.5
    # A rotation is normalised to a unit quaternion.
    rot = parse_joint_map({"joints": {"A": {"body": "b", "rotation": [2, 0, 0, 0]}}}, None).pairs[0].rotation
    assert np.allclose(rot, (1, 0, 0, 0))


@pytest.mark.parametrize(("data", "message"), [
    ({"joints": {"Hips": {"bone": "root"}}}, "joints.Hips: expected a body name or an object with 'body'"),
    ({"joints": {"Hips": {"body": "root", "weight": 1}}}, "joints.Hips: unknown key(s) weight"),
    ({"joints": {"Hips": {"body": "root", "position": -1}}}, "joints.Hips.position: expected a finite number >= 0"),
    ({"joints": {"Hips": {"body": "root", "offset": [0, 1]}}}, "joints.Hips.offset: expected a list of 3 numbers"),
    ({"joints": {"Hips": "root"}, "scale": 0}, "key 'scale': expected a positive number or \"height\""),
    ({"joints": {}}, "key 'joints': maps no joint"),
    ({"mapping": {}}, "not a joint map: expected 'joints' (optiq)"),
    ({"joints": {"Hips": "root"}, "version": 9}, "joint map version 9 is not one this optiq reads"),
    ({"joints": {"Hips": "root"}, "scael": "height"}, "unknown key(s) scael; expected format, version"),
])
def test_bad_maps_name_the_file_and_place(tmp_path, data, message):
    path = tmp_path / "map.json"
    path.write_text(json.dumps(data))
    with pytest.raises(JointMapError) as err:
        load_joint_map(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value), str(err.value)


def test_a_file_that_is_not_json_or_missing(tmp_path):
    bad = tmp_path / "map.json"
    bad.write_text("{ not json")
    with pytest.raises(JointMapError, match="not valid JSON"):
        load_joint_map(bad)
    with pytest.raises(JointMapError, match="joint map does not exist .* built-in map: bandai_to_deepmimic"):
        load_joint_map(tmp_path / "none.json")
