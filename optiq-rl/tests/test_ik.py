"""Retargeting by inverse kinematics (mink) of real walks onto the DeepMimic humanoid, Gymnasium's Humanoid-v5 and
the AMP humanoid: checked with MuJoCo's own kinematics, the models' joint ranges and geometry, not the solver's
own bookkeeping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optiq
import pytest
from optiq import quat
from optiq_rl.characters import character
from optiq_rl.ik import IKOptions, retarget_ik
from optiq_rl.jointmap import JointMapError, load_joint_map
from optiq_rl.retarget import body_positions

FRAMES = slice(1, 61)  # half a second of the CMU walk at 120 fps, after its T-pose frame 0


@pytest.fixture(scope="module")
def cmu(data_dir):
    return optiq.load_clip(data_dir / "bvh" / "cmu_12_01_walk_pybvh.bvh")


@pytest.fixture(scope="module")
def bandai(data_dir):
    return optiq.load_clip(data_dir / "corpora" / "bandai_namco" / "data" / "dataset-1_walk_normal_001.bvh")


@pytest.fixture(scope="module")
def humanoid_v5():
    import gymnasium

    return character(Path(gymnasium.__file__).parent / "envs" / "mujoco" / "assets" / "humanoid.xml")


@pytest.fixture(scope="module")
def cmu_on_deepmimic(cmu):
    return retarget_ik(cmu, character("deepmimic"), load_joint_map("cmu_to_deepmimic"), frames=FRAMES)


def _pair_index(jm, source):
    return [p.source for p in jm.pairs].index(source)


def test_mapped_bodies_reach_the_scaled_source_joints(cmu_on_deepmimic, cmu):
    r = cmu_on_deepmimic
    char = r.character
    # Where MuJoCo puts the bodies (an independent forward kinematics of the solved qpos).
    xpos = body_positions(char, r.qpos)
    for source in ("LeftFoot", "RightFoot", "LeftHand", "RightHand"):
        i = _pair_index(r.joint_map, source)
        body = char.body_names.index(r.joint_map.pairs[i].body)
        err = np.linalg.norm(xpos[:, body] - r.targets[:, i], axis=1)
        assert err.max() < 0.025, (source, err.max())  # feet and hands within 2.5 cm of the (scaled) source
        assert np.allclose(xpos[:, body], r.reached[:, i], atol=1e-9)
    # The targets are the source joints under one similarity transform: distances scale by r.scale.
    pos = cmu.forward_kinematics()[0][FRAMES]
    names = cmu.skeleton.names
    a, b = _pair_index(r.joint_map, "LeftFoot"), _pair_index(r.joint_map, "RightHand")
    src = np.linalg.norm(pos[:, names.index("LeftFoot")] - pos[:, names.index("RightHand")], axis=1)
    assert np.allclose(np.linalg.norm(r.targets[:, a] - r.targets[:, b], axis=1), r.scale * src, atol=1e-9)
    assert 1.0 < r.scale < 1.2  # the DeepMimic humanoid is taller than CMU subject 12's mapped joints
    assert r.metrics["end_effectors"]["LeftFoot"]["end_effector"]
    assert r.metrics["end_effectors"]["LeftFoot"]["max_mm"] < 25


def test_first_frame_aligned_to_the_characters_rest(cmu, data_dir):
    """Calibrated on the T-pose (frame 0), the root starts above the rest root, facing the character's rest
    heading: the hips' left-right axis is the character's (DeepMimic: left is -x)."""
    char = character("deepmimic")
    r = retarget_ik(cmu, char, load_joint_map("cmu_to_deepmimic"), frames=slice(0, 2))
    xpos = body_positions(char, r.qpos)
    names = char.body_names
    # The hips' target is above the rest root; the body stays within the two skeletons' difference of proportions.
    assert np.allclose(r.targets[0, _pair_index(r.joint_map, "Hips"), :2], 0.0, atol=1e-12)
    assert np.linalg.norm(xpos[0, names.index("root"), :2]) < 0.08
    lateral = xpos[0, names.index("left_hip")] - xpos[0, names.index("right_hip")]
    assert lateral[0] < -0.15 and abs(lateral[1]) < 0.03


@pytest.mark.parametrize("target", ["deepmimic", "humanoid_v5"])
def test_the_walk_goes_where_the_character_faces(bandai, humanoid_v5, target):
    """The Bandai-Namco walk heads along +x with its hips square to it; retargeted, it heads where the character
    faces at rest: +y for the DeepMimic humanoid (left is -x), +x for Humanoid-v5 (left is +y)."""
    char = character("deepmimic") if target == "deepmimic" else humanoid_v5
    r = retarget_ik(bandai[:60], char, load_joint_map(f"bandai_to_{target}"))
    travel = r.qpos[-1, :2] - r.qpos[0, :2]
    heading = np.degrees(np.arctan2(travel[1], travel[0]))
    assert abs(heading - (90.0 if target == "deepmimic" else 0.0)) < 4.0, heading
    assert np.linalg.norm(travel) > 1.0  # two seconds of walking


def test_joint_limits_hold(cmu_on_deepmimic, humanoid_v5, bandai):
    m = cmu_on_deepmimic.character.model()
    q = cmu_on_deepmimic.qpos
    balls = np.flatnonzero((m.jnt_type == 1) & m.jnt_limited.astype(bool))
    for j in balls:  # a ball joint's range bounds its rotation angle
        a = m.jnt_qposadr[j]
        angle = 2 * np.arccos(np.clip(np.abs(q[:, a]) / np.linalg.norm(q[:, a:a + 4], axis=1), 0, 1))
        assert angle.max() <= m.jnt_range[j, 1] + 1e-6
    r = retarget_ik(bandai[:40], humanoid_v5, load_joint_map("bandai_to_humanoid_v5"))
    m = humanoid_v5.model()
    hinges = np.flatnonzero(m.jnt_type == 3)
    values = r.qpos[:, m.jnt_qposadr[hinges]]
    lo, hi = m.jnt_range[hinges].T
    assert np.all(values >= lo - 1e-6) and np.all(values <= hi + 1e-6)
    assert r.metrics["limit_violations"] == 0
    assert r.metrics["end_effectors"]["Foot_L"]["mean_mm"] < 50


def _lowest_foot(char, qpos):
    """Lowest point of the foot boxes of the DeepMimic humanoid, from MuJoCo's geom poses and box sizes."""
    import mujoco

    m = char.model()
    d = mujoco.MjData(m)
    feet = [g for g in range(m.ngeom) if "ankle" in mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, m.geom_bodyid[g])]
    out = []
    for row in qpos:
        d.qpos[:] = row
        mujoco.mj_kinematics(m, d)
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        out.append(min((d.geom_xpos[g] + (d.geom_xmat[g].reshape(3, 3) @ (corners * m.geom_size[g]).T).T)[:, 2].min()
                       for g in feet))
    return np.array(out)


def test_feet_on_the_ground(cmu_on_deepmimic, cmu):
    low = _lowest_foot(cmu_on_deepmimic.character, cmu_on_deepmimic.qpos)
    assert abs(low.min()) < 1e-9  # ground="clip": the lowest foot point over the clip is at z = 0
    assert cmu_on_deepmimic.metrics["penetration_mm"] < 1.0
    r = retarget_ik(cmu, cmu_on_deepmimic.character, load_joint_map("cmu_to_deepmimic"), IKOptions(ground="frame"),
                    frames=FRAMES)
    low = _lowest_foot(r.character, r.qpos)
    # ground="frame": a walk always has a foot down, so every frame's lowest foot point is at z = 0.
    assert np.abs(low).max() < 1e-9


def test_orientation_task_keeps_the_pelvis_upright(cmu_on_deepmimic, cmu):
    """The root carries an orientation task: its rotation follows the source hips' rotation since frame 0."""
    r = cmu_on_deepmimic
    root = r.qpos[:, 3:7]
    hips = cmu.forward_kinematics()[1][:, 0]
    turned = quat.qmul(hips[FRAMES], quat.conj(hips[0]))
    tilt = lambda q: np.degrees(np.arccos(np.clip(quat.rotate(q, np.array([0, 0, 1.0]))[:, 2], -1, 1)))  # noqa: E731
    assert np.abs(tilt(root) - tilt(turned)).max() < 3.0


def test_isaacgym_map_drives_the_amp_humanoid(cmu, data_dir, amp_humanoid):
    amp = amp_humanoid
    jm = load_joint_map(data_dir / "retarget" / "isaacgymenvs_retarget_cmu_to_amp.json")
    r = retarget_ik(cmu, amp, jm, frames=slice(1, 31))
    assert r.qpos.shape == (30, amp.model().nq) and r.metrics["limit_violations"] == 0
    # Same proportions (the map's scale is 1: optiq's loader already converted CMU units to metres).
    assert r.scale == 1.0 and r.metrics["end_effectors"]["LeftFoot"]["mean_mm"] < 40


def test_published_bvhtodeepmimic_map_retargets_the_sfu_walk(data_dir):
    sfu = optiq.load_clip(data_dir / "bvh" / "sfu_0005_Walking001.bvh")
    jm = load_joint_map(data_dir / "retarget" / "bvhtodeepmimic_settings_sfu_to_deepmimic.json")
    r = retarget_ik(sfu, character("deepmimic"), jm, frames=slice(0, 60))
    assert r.metrics["limit_violations"] == 0 and r.metrics["penetration_mm"] < 1.0
    assert r.metrics["end_effectors"]["LeftFoot"]["mean_mm"] < 80  # the map drives no hand: feet are its ends


def test_a_map_naming_missing_joints_is_refused(bandai):
    with pytest.raises(JointMapError, match="joint\\(s\\) Spine1, Neck1, LeftUpLeg, .* missing from clip"):
        retarget_ik(bandai, character("deepmimic"), load_joint_map("cmu_to_deepmimic"))


def test_a_rotation_offset_turns_the_body(bandai):
    """A pair's ``rotation`` is the body's rotation (relative to its rest) when the source is at the calibration
    frame: 0.3 rad about x on the root pitches the solved root by that much against the map without it."""
    import dataclasses

    jm = load_joint_map("bandai_to_deepmimic")
    tilt = tuple(quat.from_axis_angle(np.array([1.0, 0.0, 0.0]), np.array(0.3)).tolist())
    tilted = dataclasses.replace(jm, pairs=tuple(dataclasses.replace(p, rotation=tilt) if p.body == "root" else p
                                                 for p in jm.pairs))
    plain = retarget_ik(bandai[:3], character("deepmimic"), jm)
    turned = retarget_ik(bandai[:3], character("deepmimic"), tilted)
    rel = quat.to_rotvec(quat.qmul(quat.conj(plain.qpos[:, 3:7]), turned.qpos[:, 3:7]))
    assert np.allclose(rel, [0.3, 0.0, 0.0], atol=0.02), rel
