"""A body for any optiq skeleton: capsules along bones, box feet, ball joints with limits, masses by volume summing
to the total mass, standing on the ground; BVH walks play on the body of their own skeleton with no error."""

from __future__ import annotations

import mujoco
import numpy as np
import optiq
import pytest
from optiq.skeleton import Skeleton
from optiq_rl.characters import CharacterError, character
from optiq_rl.characters.skeleton import BodyOptions, character_from_skeleton
from optiq_rl.retarget import body_positions, check_fit, clip_to_qpos, fit_clip

CMU_WALK = "bvh/cmu_12_01_walk_pybvh.bvh"  # 31 joints (Hips root, LHipJoint, LeftUpLeg, ...)
BANDAI_WALK = "corpora/bandai_namco/data/dataset-1_walk_normal_001.bvh"  # still joint_Root above a moving Hips


@pytest.fixture(scope="module")
def cmu(data_dir):
    return optiq.load_clip(data_dir / CMU_WALK)[:120]


def test_body_of_a_bvh_skeleton(cmu, ground_gap):
    char = character_from_skeleton(cmu.skeleton, "cmu", BodyOptions(total_mass=60.0))
    m = char.model()
    j = cmu.num_joints
    assert (m.nq, m.nv, m.nu) == (7 + 4 * (j - 1), 6 + 3 * (j - 1), 3 * (j - 1))
    assert m.body_mass.sum() == pytest.approx(60.0)
    balls = m.jnt_type == mujoco.mjtJoint.mjJNT_BALL
    assert balls.sum() == j - 1 and np.all(m.jnt_range[balls] == [0.0, 2.5])
    geoms = {mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g): m.geom_type[g] for g in range(m.ngeom)}
    assert geoms["LeftFoot_foot"] == geoms["RightToeBase_foot"] == mujoco.mjtGeom.mjGEOM_BOX
    assert geoms["LeftUpLeg_0"] == mujoco.mjtGeom.mjGEOM_CAPSULE
    assert ground_gap(m) == pytest.approx(0.0, abs=1e-9)  # MuJoCo's collision distance to the floor
    assert "LeftFoot" not in char.fall_bodies and "Head" in char.fall_bodies
    # Gains grow with the mass a joint carries: the hip (a whole leg) above the ankle (a foot).
    kp = dict(zip(char.actuator_names(), char.kp, strict=True))
    assert 300 < kp["LeftFoot_x"] < kp["LeftUpLeg_x"] <= 1000
    assert char.torque_limits == pytest.approx(0.3 * char.kp) and char.kd == pytest.approx(char.kp / 10)


def test_a_walk_plays_on_its_own_body(cmu):
    char = character_from_skeleton(cmu.skeleton, "cmu")
    qpos, _ = clip_to_qpos(cmu, char)
    err = np.abs(body_positions(char, qpos) - cmu.world_positions()[:, check_fit(cmu, char)]).max()
    assert err < 1e-6  # measured 9.3e-10 on the whole clip (offsets written with 9 significant digits)


def test_dataset_body_is_rooted_where_the_motion_is(data_dir, tmp_path):
    clip = optiq.load_clip(data_dir / BANDAI_WALK)[:90]
    ds = optiq.write_dataset(tmp_path / "walk.parquet", [clip])
    char = character(ds)  # a dataset path: the body of its skeleton
    assert char.joint_names[0] == "Hips" and "joint_Root" not in char.joint_names
    assert char.model().body_mass.sum() == pytest.approx(70.0)
    played = fit_clip(clip, char)
    qpos, _ = clip_to_qpos(clip, char)
    err = np.abs(body_positions(char, qpos) - played.world_positions()[:, check_fit(played, char)]).max()
    assert err < 1e-6  # measured 1.7e-7
    assert np.ptp(qpos[:, :2], axis=0).max() > 0.5  # the body walks (the root moves through the world)


def test_a_skeleton_with_no_joints_is_refused():
    with pytest.raises(CharacterError, match="skeleton has 1 joint.s.; a body needs a root and at least one"):
        character_from_skeleton(Skeleton(("root",), [-1], np.zeros((1, 3))))
