"""The same CMU take in two formats agrees (issue 2, section 7).

``asf_amc/cmu_02.asf`` + ``cmu_02_01_walk.amc`` and ``bvh/cmu_02_01_bvhtodeepmimic.bvh`` hold the CMU 02_01 walk;
BVH frame k+1 is AMC frame k (BVH frame 0 is a T-pose) and the BVH length unit is the ASF unit (0.0254/0.45 m).
A BVH joint X corresponds to the ASF bone that STARTS at X. The BVH drops two ASF bone offsets (the thorax's,
under its Neck and Shoulders, and each wrist's, under FingerBase and Thumb), so only the hips, legs, toes,
LowerBack, Spine and Spine1 coincide in position; every world rotation coincides.

Two checks: optiq's ASF/AMC loader against a separate forward kinematics written here from the ASF/AMC text
(scipy rotations and 4x4 matrices, no optiq parsing), then optiq's ASF/AMC clip against optiq's BVH clip.
"""

from __future__ import annotations

import numpy as np
import optiq
import pytest
from optiq import quat
from scipy.spatial.transform import Rotation

CMU_UNIT = 0.0254 / 0.45
# Rows: optiq's axes (Z up) in the ASF's axes (Y up): optiq (x, y, z) = file (z, x, y).
P = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])

BVH_TO_ASF = {
    "Hips": "root", "LHipJoint": "lhipjoint", "LeftUpLeg": "lfemur", "LeftLeg": "ltibia", "LeftFoot": "lfoot",
    "LeftToeBase": "ltoes", "RHipJoint": "rhipjoint", "RightUpLeg": "rfemur", "RightLeg": "rtibia",
    "RightFoot": "rfoot", "RightToeBase": "rtoes", "LowerBack": "lowerback", "Spine": "upperback",
    "Spine1": "thorax", "Neck": "lowerneck", "Neck1": "upperneck", "Head": "head", "LeftShoulder": "lclavicle",
    "LeftArm": "lhumerus", "LeftForeArm": "lradius", "LeftHand": "lwrist", "LeftFingerBase": "lhand",
    "LeftHandIndex1": "lfingers", "LThumb": "lthumb", "RightShoulder": "rclavicle", "RightArm": "rhumerus",
    "RightForeArm": "rradius", "RightHand": "rwrist", "RightFingerBase": "rhand", "RightHandIndex1": "rfingers",
    "RThumb": "rthumb",
}
# The 14 joints whose ASF bone starts where the BVH joint is, plus the two toe tips (end sites): 16 points.
SAME_PLACE = ["Hips", "LHipJoint", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", "RHipJoint", "RightUpLeg",
              "RightLeg", "RightFoot", "RightToeBase", "LowerBack", "Spine", "Spine1"]
TOE_TIPS = ["LeftToeBase", "RightToeBase"]
# Joints whose BVH position lacks the thorax offset, and those that lack the thorax and a wrist offset.
AFTER_THORAX = ["Neck", "Neck1", "Head", "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand", "RightShoulder",
                "RightArm", "RightForeArm", "RightHand"]
AFTER_WRIST = {"LeftFingerBase": "lwrist", "LeftHandIndex1": "lwrist", "LThumb": "lwrist",
               "RightFingerBase": "rwrist", "RightHandIndex1": "rwrist", "RThumb": "rwrist"}


@pytest.fixture(scope="module")
def paths(data_dir):
    return (data_dir / "asf_amc" / "cmu_02.asf", data_dir / "asf_amc" / "cmu_02_01_walk.amc",
            data_dir / "bvh" / "cmu_02_01_bvhtodeepmimic.bvh")


@pytest.fixture(scope="module")
def amc_clip(paths):
    return optiq.load_clip(paths[1])


@pytest.fixture(scope="module")
def bvh_clip(paths):
    return optiq.load_clip(paths[2], unit="cmu")


# --- a separate forward kinematics, straight from the text ------------------------------------------------


def _read_asf(path):
    bones, parent, section, cur = {}, {}, None, None
    for line in path.read_text().splitlines():
        tok = line.replace("(", " ").replace(")", " ").split()
        if not tok or tok[0].startswith("#"):
            continue
        if tok[0].startswith(":"):
            section = tok[0]
            if section == ":root":
                assert "order TX TY TZ RX RY RZ" in path.read_text()
        elif section == ":bonedata":
            if tok[0] == "begin":
                cur = {"dof": []}
            elif tok[0] == "end":
                bones[cur["name"]] = cur
            elif tok[0] in ("name", "length"):
                cur[tok[0]] = tok[1] if tok[0] == "name" else float(tok[1])
            elif tok[0] in ("direction", "axis"):
                cur[tok[0]] = np.array(tok[1:4], dtype=float)
            elif tok[0] == "dof":
                cur["dof"] = tok[1:]
        elif section == ":hierarchy" and tok[0] not in ("begin", "end"):
            parent.update({child: tok[0] for child in tok[1:]})
    return bones, parent


def _read_amc(path):
    frames = []
    for line in path.read_text().splitlines():
        tok = line.split()
        if not tok or tok[0][0] in ":#":
            continue
        if len(tok) == 1:
            frames.append({})
        else:
            frames[-1][tok[0]] = np.array(tok[1:], dtype=float)
    return frames


def _homogeneous(rot=None, trans=None, n=1):
    """``[n, 4, 4]`` matrices from rotations ``[n, 3, 3]`` or ``[3, 3]`` and translations ``[n, 3]`` or ``[3]``."""
    if rot is not None and np.ndim(rot) == 3:
        n = len(rot)
    m = np.tile(np.eye(4), (n, 1, 1))
    if rot is not None:
        m[:, :3, :3] = rot
    if trans is not None:
        m[:, :3, 3] = trans
    return m


def independent_fk(asf_path, amc_path):
    """World 4x4 transforms of every bone's own axis frame (origin at the bone's start), per Acclaim:
    ``W_b = W_parent C_parent^-1 T(parent bone vector) C_b M_b``, rotations about fixed axes in the order listed.
    Returns ({name: [T, 4, 4]}, {name: [3, 3] C}, bones) in ASF units and axes."""
    bones, parent = _read_asf(asf_path)
    frames = _read_amc(amc_path)
    n = len(frames)
    root = np.stack([f["root"] for f in frames])
    world = {"root": _homogeneous(Rotation.from_euler("xyz", root[:, 3:], degrees=True).as_matrix(), root[:, :3])}
    axis = {"root": np.eye(3)}
    vector = {"root": np.zeros(3)}
    pending = list(bones)
    while pending:
        name = next(b for b in pending if parent[b] in world)
        pending.remove(name)
        b, p = bones[name], parent[name]
        axis[name] = Rotation.from_euler("xyz", b["axis"], degrees=True).as_matrix()
        if b["dof"]:
            vals = np.stack([f[name] for f in frames])
            motion = Rotation.from_euler("".join(d[1] for d in b["dof"]), vals, degrees=True).as_matrix()
        else:
            motion = np.eye(3)
        step = _homogeneous(axis[p].T) @ _homogeneous(trans=vector[p]) @ _homogeneous(axis[name] @ motion, n=n)
        world[name] = world[p] @ step
        # ``direction`` is a unit vector printed to six digits: normalise it, as the Acclaim definition says.
        vector[name] = b["direction"] / np.linalg.norm(b["direction"]) * b["length"]
    return world, axis, vector


def test_independent_fk_agrees_with_loader(paths, amc_clip):
    world, axis, vector = independent_fk(paths[0], paths[1])
    s = amc_clip.skeleton
    pos, rot = amc_clip.forward_kinematics()
    tips = amc_clip.end_site_positions()
    assert len(world) == s.num_joints == 31
    for name, w in world.items():
        j = s.index(name)
        # optiq stores the world-aligned frame: the bone's axis frame with its rest orientation C removed.
        r_file = w[:, :3, :3] @ axis[name].T
        np.testing.assert_allclose(pos[:, j], (w[:, :3, 3] @ P.T) * CMU_UNIT, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(quat.to_matrix(rot[:, j]), P @ r_file @ P.T, atol=1e-9, err_msg=name)
        if j in tips:
            tip = w[:, :3, 3] + r_file @ vector[name]
            np.testing.assert_allclose(tips[j], (tip @ P.T) * CMU_UNIT, atol=1e-9, err_msg=name)


# --- ASF/AMC against BVH ----------------------------------------------------------------------------------


def _matched(amc_clip, bvh_clip):
    assert bvh_clip.num_frames == amc_clip.num_frames + 1 == 344
    assert set(bvh_clip.skeleton.names) == set(BVH_TO_ASF)
    bvh = bvh_clip.slice(1)  # BVH frame k+1 is AMC frame k
    return bvh, [bvh.skeleton.index(n) for n in BVH_TO_ASF], [amc_clip.skeleton.index(a) for a in BVH_TO_ASF.values()]


def test_same_points_within_1mm(amc_clip, bvh_clip):
    bvh, bi, ai = _matched(amc_clip, bvh_clip)
    pb, pa = bvh.world_positions(), amc_clip.world_positions()
    names = list(BVH_TO_ASF)
    idx = [names.index(n) for n in SAME_PLACE]
    points_b = np.concatenate([pb[:, [bi[k] for k in idx]],
                               np.stack([bvh.end_site_positions()[bvh.skeleton.index(n)] for n in TOE_TIPS], 1)], 1)
    tips_a = amc_clip.end_site_positions()
    points_a = np.concatenate([pa[:, [ai[k] for k in idx]],
                               np.stack([tips_a[amc_clip.skeleton.index(BVH_TO_ASF[n])] for n in TOE_TIPS], 1)], 1)
    assert points_a.shape == (343, 16, 3)
    dist = np.linalg.norm(points_a - points_b, axis=-1)
    assert dist.max() < 1e-3, f"max {dist.max() * 1000:.4f} mm"


def test_world_rotations_within_0_01_degrees(amc_clip, bvh_clip):
    bvh, bi, ai = _matched(amc_clip, bvh_clip)
    ang = np.degrees(quat.angle_between(bvh.world_rotations()[:, bi], amc_clip.world_rotations()[:, ai]))
    assert ang.shape == (343, 31)
    assert ang.max() < 0.01, f"max {ang.max():.6f} deg at {list(BVH_TO_ASF)[int(np.argmax(ang.max(0)))]}"


def test_upper_body_offset_is_the_dropped_bones(amc_clip, bvh_clip):
    """The neck, head, arms and hands are away by exactly the thorax (and wrist) bone vectors the BVH omits."""
    bvh, _, _ = _matched(amc_clip, bvh_clip)
    pb = bvh.world_positions()
    pa, ra = amc_clip.forward_kinematics()
    s = amc_clip.skeleton

    def bone_vector(name):  # world vector of an ASF bone = its first child's offset, rotated
        j = s.index(name)
        return quat.rotate(ra[:, j], s.offsets[s.children(j)[0]])

    thorax = bone_vector("thorax")
    for name in AFTER_THORAX:
        gap = pa[:, s.index(BVH_TO_ASF[name])] - pb[:, bvh.skeleton.index(name)]
        np.testing.assert_allclose(gap, thorax, atol=1e-3, err_msg=name)
    for name, wrist in AFTER_WRIST.items():
        gap = pa[:, s.index(BVH_TO_ASF[name])] - pb[:, bvh.skeleton.index(name)]
        np.testing.assert_allclose(gap, thorax + bone_vector(wrist), atol=1e-3, err_msg=name)
    np.testing.assert_allclose(np.linalg.norm(thorax, axis=-1), 2.06807 * CMU_UNIT, atol=1e-6)
