"""Reference motion on a character, same topology: DeepMimic clips on the generated DeepMimic humanoid with zero
retargeting error (MuJoCo's own kinematics against the clip's forward kinematics), qvel equal to
``mj_differentiatePos``, hinges by Euler decomposition checked against MuJoCo, and clips that do not fit."""

from __future__ import annotations

import mujoco
import numpy as np
import optiq
import pytest
from optiq import quat
from optiq.errors import SkeletonMismatchError
from optiq.skeleton import Skeleton
from optiq_rl.characters import Character, CharacterError, character
from optiq_rl.characters.deepmimic import deepmimic_character
from optiq_rl.retarget import body_positions, check_fit, clip_to_qpos, hinge_angles


def _error(clip, char) -> float:
    """Largest distance (metres) between a body in MuJoCo and its joint in the clip's own forward kinematics."""
    qpos, _ = clip_to_qpos(clip, char)
    return float(np.abs(body_positions(char, qpos) - clip.world_positions()[:, check_fit(clip, char)]).max())


@pytest.mark.parametrize("which", ["file", "builtin"])
def test_deepmimic_clips_play_with_zero_error(deepmimic_clips, character_file, which):
    char = deepmimic_character(character_file) if which == "file" else character("deepmimic")
    assert [c.num_frames for c in deepmimic_clips] == [39, 25, 3936]
    for clip in deepmimic_clips:
        assert _error(clip, char) < 1e-12  # measured 4e-16 (walk), 4e-16 (run), 1.2e-15 (long walk)


def test_qpos_layout_and_qvel_against_mujoco(deepmimic_clips):
    clip = deepmimic_clips[0]
    char = character("deepmimic")
    m = char.model()
    qpos, qvel = clip_to_qpos(clip, char)
    assert qpos.shape == (39, m.nq) and qvel.shape == (39, m.nv)
    assert qpos[:, :3] == pytest.approx(clip.root_translation)
    knee = m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "right_knee")]
    assert qpos[:, knee].max() <= 0.0 < -qpos[:, knee].min()  # a knee bends one way (range -3.14..0)
    expected = np.empty_like(qvel)
    for t in range(len(qpos)):
        a, b = max(t - 1, 0), min(t + 1, len(qpos) - 1)
        mujoco.mj_differentiatePos(m, expected[t], (b - a) * clip.dt, qpos[a], qpos[b])
    assert np.abs(qvel - expected).max() < 1e-9
    # The root's linear velocity is the clip's own (central differences of the root position).
    assert qvel[:, :3] == pytest.approx(clip.linear_velocities()[:, 0], abs=1e-9)


def test_three_hinge_joints_of_another_authors_mjcf(deepmimic_clips, data_dir, mimickit):
    """The walk on MimicKit's humanoid (chest, neck, hips, ankles as three hinges, knees as one): legs, chest and
    head land where the clip puts them (its arms rest in a T-pose, so they differ by design)."""
    names, to_mimickit = mimickit
    clip = deepmimic_clips[0].transformed(to_mimickit).renamed(names)
    char = character(data_dir / "mjcf" / "mimickit" / "humanoid.xml")
    qpos, _ = clip_to_qpos(clip, char)
    pos = body_positions(char, qpos)
    ref = clip.world_positions()[:, check_fit(clip, char)]
    legs = [j for j, n in enumerate(char.joint_names) if not n.endswith(("arm", "hand"))]
    assert len(legs) == 9
    assert np.abs(pos[:, legs] - ref[:, legs]).max() < 1e-5


XML = """<mujoco><worldbody>
<body name="root" pos="0 0 1"><freejoint/><geom type="sphere" size="0.1"/>
  <body name="a" pos="0 0.2 0" quat="0.9 0.3 -0.2 0.1"><geom type="sphere" size="0.05"/>
    <joint name="a1" type="hinge" axis="0 0 1"/><joint name="a2" type="hinge" axis="1 1 0"/>
    <joint name="a3" type="hinge" axis="1 -1 0"/>
    <body name="b" pos="0.3 0 0"><geom type="sphere" size="0.05"/>
      <joint name="b1" type="hinge" axis="0 1 0"/><joint name="b2" type="hinge" axis="1 0 0"/>
      <body name="c" pos="0 0 -0.3" quat="0.7 0 0.7 0"><geom type="sphere" size="0.05"/>
        <joint name="c1" type="hinge" axis="0 1 1"/>
        <body name="d" pos="0.2 0 0"><geom type="sphere" size="0.05"/></body>
</body></body></body></body></worldbody></mujoco>"""


def test_hinges_recover_mujocos_own_angles(tmp_path):
    """Poses made by MuJoCo from random hinge angles (|angle| < pi/2, bodies with rotated rest frames), turned into
    an optiq clip, give those angles back."""
    path = tmp_path / "hinges.xml"
    path.write_text(XML)
    char = character(path)
    m = char.model()
    rng = np.random.default_rng(0)
    qpos = np.broadcast_to(m.qpos0, (50, m.nq)).copy()
    qpos[:, 7:] = rng.uniform(-1.5, 1.5, (50, m.nq - 7))
    qpos[:, 3:7] = quat.normalize(rng.normal(size=(50, 4)))
    data = mujoco.MjData(m)
    mujoco.mj_kinematics(m, data)
    rest = data.xquat[char.body_ids()].copy()
    world = np.empty((50, 5, 4))
    for t in range(50):
        data.qpos[:] = qpos[t]
        mujoco.mj_kinematics(m, data)
        world[t] = quat.qmul(data.xquat[char.body_ids()], quat.conj(rest))  # rotation from the rest pose
    sk = char.skeleton()
    local = world.copy()
    local[:, 1:] = quat.qmul(quat.conj(world[:, sk.parents[1:]]), world[:, 1:])
    clip = optiq.Clip(sk, 30.0, qpos[:, :3], local)
    got, _ = clip_to_qpos(clip, char)
    assert np.abs(got[:, 7:] - qpos[:, 7:]).max() < 1e-9
    assert np.abs(body_positions(char, got) - clip.world_positions()).max() < 1e-9


def test_one_hinge_is_the_twist():
    axis = np.array([[0.0, 0.0, 1.0]])
    angles = np.array([-3.0, -1.0, 0.0, 0.5, 3.1])
    rotations = quat.from_axis_angle(axis[0], angles)
    assert hinge_angles(rotations, axis)[:, 0] == pytest.approx(angles)
    assert hinge_angles(-rotations, axis)[:, 0] == pytest.approx(angles)  # either sign of the quaternion
    with pytest.raises(CharacterError, match="not orthogonal"):
        hinge_angles(rotations, np.array([[1.0, 0, 0], [1.0, 1.0, 0]]))


def test_clips_that_do_not_fit(data_dir, deepmimic_clips):
    char = character("deepmimic")
    cmu = optiq.load_clip(data_dir / "bvh" / "cmu_12_01_walk_pybvh.bvh")
    with pytest.raises(SkeletonMismatchError, match="does not fit character 'deepmimic': missing joint.s. root, chest"):
        clip_to_qpos(cmu, char)
    walk = deepmimic_clips[0]
    moved = Skeleton(walk.skeleton.names, np.where(np.arange(15) == 2, 0, walk.skeleton.parents),
                     walk.skeleton.offsets)
    with pytest.raises(SkeletonMismatchError, match="joint.s. neck hang from other parents"):
        clip_to_qpos(walk.replace(skeleton=moved), char)
    with pytest.raises(CharacterError, match=r"qpos has shape \(3, 5\), expected \(T, 43\)"):
        body_positions(char, np.zeros((3, 5)))


def test_character_of_the_wrong_size_is_refused():
    char = character("deepmimic")
    with pytest.raises(CharacterError, match="kp has 3 values, expected one per actuator .28."):
        Character("x", char.mjcf_xml, char.joint_names, [1, 2, 3], char.kd, char.torque_limits)


def test_attach_rotations_fold_as_the_loader_folds_them(data_dir, character_file, tmp_path):
    """A character file whose joints have attach rotations (humanoid3d has none): the walk loaded against it with
    optiq's DeepMimic loader still plays on the MJCF built from it with no error (rotated hinge axes included)."""
    import json

    doc = json.loads(character_file.read_text())
    for j, (x, y, z) in {1: (0.3, -0.2, 0.1), 3: (0.0, 0.4, -0.3), 4: (0.2, 0.0, 0.5), 7: (-0.4, 0.3, 0.0)}.items():
        doc["Skeleton"]["Joints"][j].update(AttachThetaX=x, AttachThetaY=y, AttachThetaZ=z)
    doc["Skeleton"]["Joints"][0].update(AttachThetaY=0.7)
    rotated = tmp_path / "rotated_character.txt"
    rotated.write_text(json.dumps(doc))
    clip = optiq.load_clip(data_dir / "deepmimic" / "humanoid3d_walk.txt", character=rotated)
    assert _error(clip, deepmimic_character(rotated)) < 1e-8  # measured 1.1e-9: rotated offsets, 9 digits in MJCF
