"""``optiq data lift``: real 3D clips projected to 2D with a known weak-perspective camera, noised, with points
dropped, lifted back and compared with the clip itself (the independent truth: the BVH's own joint positions)."""

from __future__ import annotations

import numpy as np
import optiq
import pytest
from click.testing import CliRunner
from optiq import quat
from optiq.cli.main import build_cli
from optiq.keypoints import COCO17_NAMES
from optiq_video.lift import (
    FLEXION,
    _ancestors,
    _chain,
    _hinges,
    deepmimic_skeleton,
    joint_map,
    lift,
    reference_pose,
    still_feet,
)

CMU_WALK = "bvh/cmu_12_01_walk_pybvh.bvh"
BANDAI_RUN = "corpora/bandai_namco/data/dataset-1_run_active_001.bvh"
BANDAI_WALK = "corpora/bandai_namco/data/dataset-1_walk_normal_001.bvh"
CMU_OTHER = "bvh/cmu_01_14_bvhtodeepmimic.bvh"   # CMU's joint names, another motion (subject 1)
CHARACTER = "deepmimic/humanoid3d_character.txt"
SIZE = (1080, 1920)
SCALE = 400.0          # px/m of the test camera
YAW = np.radians(30)   # the camera looks 30 degrees off the world's +Y axis, horizontally


def camera_frame(positions: np.ndarray) -> np.ndarray:
    """World positions ``[T, J, 3]`` in the test camera's frame (the camera looking along +Y)."""
    c, s = np.cos(YAW), np.sin(YAW)
    return positions @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]).T


def project(clip: optiq.Clip, noise: float = 0.02, drop: float = 0.1, seed: int = 0) -> optiq.Points:
    """COCO-17 keypoints of ``clip`` seen by the test camera: Gaussian pixel noise of ``noise`` times the
    person's height (issue 12's detector error is 2.5-3.6%), a fraction ``drop`` of points missing."""
    pos = camera_frame(clip.world_positions())
    rng = np.random.default_rng(seed)
    kp = np.full((clip.num_frames, len(COCO17_NAMES), 2), np.nan)
    sigma = noise * np.ptp(pos[0, :, 2]) * SCALE
    for name, j in joint_map(clip.skeleton).items():
        k = COCO17_NAMES.index(name)
        kp[:, k, 0] = SCALE * (pos[:, j, 0] - pos[:, 0, 0].mean()) + SIZE[0] / 2
        kp[:, k, 1] = -SCALE * (pos[:, j, 2] - 1.0) + SIZE[1] / 2
    kp += rng.normal(0.0, sigma, kp.shape)
    conf = np.where(np.isfinite(kp[..., 0]) & (rng.random(kp.shape[:2]) >= drop), 1.0, 0.0)
    return optiq.Points(kp, COCO17_NAMES, clip.fps, confidence=conf, image_size=SIZE, name=clip.name)


def mpjpe_mm(truth: optiq.Clip, lifted: optiq.Clip) -> tuple[float, float]:
    """Mean per-joint position error (mm) over the matched joints: root-relative (each frame's joints less their
    mean), and the same after one similarity transform (rotation, scale, translation; Procrustes) for the whole
    clip."""
    idx = list(joint_map(truth.skeleton).values())
    a = camera_frame(truth.world_positions())[:, idx]
    b = lifted.world_positions()[:, idx]
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    root_rel = 1000 * np.linalg.norm(a - b, axis=-1).mean()
    x, y = b.reshape(-1, 3), a.reshape(-1, 3)
    u, s, vt = np.linalg.svd(x.T @ y)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ d @ vt
    aligned = (s * np.diag(d)).sum() / (x ** 2).sum() * x @ r
    return root_rel, 1000 * np.linalg.norm(aligned - y, axis=-1).mean()


@pytest.fixture(scope="module")
def cmu_walk(data_dir) -> optiq.Clip:
    # 120 fps -> 30 fps (a video's rate), the first 3 s.
    return optiq.load_clip(data_dir / CMU_WALK).slice(0, 360, 4)


@pytest.fixture(scope="module")
def cmu_skeleton(data_dir, cmu_walk, tmp_path_factory) -> str:
    """A dataset of the walk's skeleton moving as another CMU clip moves: the skeleton the fit keeps and a mean
    pose (``--pose mean``) that is not the truth's."""
    other = optiq.load_clip(data_dir / CMU_OTHER)
    assert other.skeleton.names == cmu_walk.skeleton.names
    moving = optiq.Clip(cmu_walk.skeleton, other.fps, other.root_translation, other.rotations, name="other")
    return str(optiq.write_dataset(tmp_path_factory.mktemp("cmu") / "skeleton.parquet", [moving]))


def planted(truth: optiq.Clip) -> dict[str, np.ndarray]:
    """``{ankle point: [T-1] bool}``: the truth's ankle still from frame t to t+1 (under 0.3 m/s) and within 5 cm
    of its lowest height in the clip."""
    out = {}
    for side, j in joint_map(truth.skeleton).items():
        if side.endswith("ankle"):
            p = truth.world_positions()[:, j]
            speed = np.linalg.norm(np.diff(p, axis=0), axis=-1) * truth.fps
            out[side] = (speed < 0.3) & (p[1:, 2] < p[:, 2].min() + 0.05)
    return out


def planted_speed(truth: optiq.Clip, lifted: optiq.Clip) -> float:
    """Mean speed (m/s) of the lifted clip's ankles in the frames where the truth's are planted."""
    speeds = []
    for side, mask in planted(truth).items():
        j = lifted.skeleton.names.index(truth.skeleton.names[joint_map(truth.skeleton)[side]])
        v = np.linalg.norm(np.diff(lifted.world_positions()[:, j], axis=0), axis=-1) * lifted.fps
        speeds.append(v[mask])
    return float(np.concatenate(speeds).mean())


def test_joint_map_finds_each_family_by_name(data_dir, cmu_walk):
    bandai = optiq.load_clip(data_dir / BANDAI_RUN).skeleton
    maxfriendly = optiq.load_clip(data_dir / "bvh/cmu_131_01_start_walk_stop_maxfriendly.bvh").skeleton
    deepmimic = deepmimic_skeleton(data_dir / CHARACTER)
    names = {key: {p: sk.names[j] for p, j in joint_map(sk).items()}
             for key, sk in [("cmu", cmu_walk.skeleton), ("bandai", bandai), ("max", maxfriendly),
                             ("deepmimic", deepmimic)]}
    assert all(len(m) == 12 for m in names.values()), names
    # CMU's and Bandai-Namco's "shoulder" is the clavicle; the shoulder joint is the upper arm's.
    assert [names[k]["left_shoulder"] for k in names] == ["LeftArm", "UpperArm_L", "LeftShoulder", "left_shoulder"]
    assert [names[k]["right_knee"] for k in names] == ["RightLeg", "LowerLeg_R", "RightKnee", "right_knee"]
    assert [names[k]["left_ankle"] for k in names] == ["LeftFoot", "Foot_L", "LeftAnkle", "left_ankle"]


def test_deepmimic_skeleton_is_the_loaders(data_dir):
    loaded = optiq.load_clip(data_dir / "deepmimic/humanoid3d_walk.txt").skeleton
    built = deepmimic_skeleton(data_dir / CHARACTER)
    # optiq.load_clip orders joints depth first; the character file lists the legs before the arms.
    order = [built.names.index(n) for n in loaded.names]
    assert sorted(built.names) == sorted(loaded.names)
    assert [built.names[built.parents[j]] if j else None for j in order] == [
        loaded.names[p] if p >= 0 else None for p in loaded.parents]
    np.testing.assert_allclose(built.offsets[order], loaded.offsets, atol=1e-12)


def test_lift_cmu_walk_recovers_it(cmu_walk, cmu_skeleton, tmp_path):
    skeleton_ds = cmu_skeleton
    points = project(cmu_walk)
    kp = tmp_path / "kp.parquet"
    optiq.write_dataset(kp, [points])
    out = tmp_path / "ref.parquet"
    r = CliRunner().invoke(build_cli(), ["data", "lift", "--in", str(kp), "--skeleton", str(skeleton_ds),
                                         "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "frames/s" in r.output and "90 frames" in r.output and "still-foot frames" in r.output, r.output
    with optiq.open_dataset(out) as ds:
        lifted = ds.read_clip(0)
    assert lifted.skeleton.names == cmu_walk.skeleton.names and lifted.num_frames == 90
    err = lifted.frame_labels["reprojection_error"]
    # Noise of sigma px per coordinate: a perfect fit is about sigma * sqrt(pi / 2) from the noisy points.
    sigma = 0.02 * np.ptp(cmu_walk.world_positions()[0, :, 2]) * SCALE
    assert err.shape == (90,) and 0.5 * sigma < np.mean(err) < 2.0 * sigma
    root_rel, procrustes = mpjpe_mm(cmu_walk, lifted)
    # Measured 2026-11-30: about 69 mm root-relative and 68 mm after Procrustes (docs/video.md); 83 and 75 mm
    # from the rest pose without limits or still feet.
    assert root_rel < 90 and procrustes < 85, (root_rel, procrustes)
    # Standing on the ground: in the frames where the truth's ankle is planted, the lifted foot's lowest joint
    # (the toes' end or the ankle) is on Z = 0 within 3 cm, and nothing sinks far below it.
    world = lifted.world_positions()
    heights = []
    for side, mask in planted(cmu_walk).items():
        ankle = joint_map(lifted.skeleton)[side]
        foot = [j for j in range(lifted.skeleton.num_joints) if ankle in _ancestors(lifted.skeleton, j)]
        heights.append(world[1:][mask][:, foot, 2].min(axis=1))
    assert abs(np.median(np.concatenate(heights))) < 0.03 and world[..., 2].min() > -0.08


def test_still_feet_are_found_and_held(cmu_walk, data_dir):
    """Still feet found in the keypoints are the truth's planted feet, and holding them stops the sliding that
    one view leaves in depth."""
    points = project(cmu_walk)
    names = tuple(points.names)
    found = still_feet(names, np.nan_to_num(points.positions), points.confidence, SCALE, points.fps)
    truth = planted(cmu_walk)
    hits = np.array([truth[names[k]][t] for t, k in found])
    # Measured: 58 pairs found, 98% of them planted in the truth, of 68 planted pairs.
    assert len(found) > 0.5 * sum(m.sum() for m in truth.values()) and hits.mean() > 0.9, (len(found), hits.mean())
    reference = reference_pose([optiq.load_clip(data_dir / CMU_OTHER)])
    held = planted_speed(cmu_walk, lift(points, cmu_walk.skeleton, reference=reference).clip)
    free = planted_speed(cmu_walk, lift(points, cmu_walk.skeleton, reference=reference, feet=0.0).clip)
    # Measured: 0.14 m/s held, 0.49 m/s free (the truth: under 0.3 by definition, 0.05 median).
    assert held < 0.25 and held < 0.6 * free, (held, free)


@pytest.mark.parametrize("name", ["cmu", "bandai"])
def test_hinge_axes_describe_the_real_knees_and_elbows(name, data_dir, cmu_walk):
    """The knee and elbow axes and reference flexion found from the skeleton and its mean pose fit the truth's own
    rotations: flexion within FLEXION in every frame, the knees nearly pure hinges."""
    if name == "cmu":
        clip, ref = cmu_walk, reference_pose([optiq.load_clip(data_dir / CMU_OTHER)])
    else:
        clip, ref = optiq.load_clip(data_dir / BANDAI_RUN), reference_pose([optiq.load_clip(data_dir / BANDAI_WALK)])
    sk = clip.skeleton
    joints = joint_map(sk)
    base, _, free = _chain(sk, joints)
    pose = optiq.Clip(sk, 30.0, np.zeros((1, 3)), ref[None].copy())
    above = _ancestors(sk, base)[1:]
    pose.rotations[0, above] = quat.identity((len(above),))
    pos, rot = pose.forward_kinematics()
    hinge, axis, flex_ref = _hinges(sk, joints, free, pos[0], rot[0])
    assert [sk.names[free[h]] for h in hinge] == [sk.names[sk.parents[joints[p]]] for p in (
        "left_ankle", "right_ankle", "left_wrist", "right_wrist")]
    for h, a, f0 in zip(hinge, axis, flex_ref, strict=True):
        j = free[h]
        turn = quat.to_rotvec(quat.qmul(quat.conj(ref[j]), clip.rotations[:, j]))
        flex = f0 + turn @ a
        assert FLEXION[0] - 0.02 < flex.min() and flex.max() < FLEXION[1], (sk.names[j], np.degrees(flex))
        off = np.degrees(np.median(np.linalg.norm(turn - (turn @ a)[:, None] * a, axis=-1)))
        # Measured: knees 0-1 degrees off their axis; elbows 0 (CMU), 19-24 (Bandai-Namco's run, arms bent 60-125
        # degrees: its forearm twist lives in the elbow joint).
        assert off < (5 if "Leg" in sk.names[j] else 30), (sk.names[j], off)


def test_lift_bandai_run_within_its_looser_bound(data_dir):
    clip = optiq.load_clip(data_dir / BANDAI_RUN)
    # Bandai-Namco's rest pose has every bone along its parent's Y axis: the fit starts from a walk's mean pose.
    reference = reference_pose([optiq.load_clip(data_dir / BANDAI_WALK)])
    lifted = lift(project(clip), clip.skeleton, reference=reference).clip
    root_rel, procrustes = mpjpe_mm(clip, lifted)
    # The run is the failure case of one view: measured about 209 mm root-relative and after Procrustes, with a
    # good reprojection (15 px for 10.5 px noise); 277 / 238 mm from the rest pose (docs/video.md).
    assert root_rel < 250 and procrustes < 250, (root_rel, procrustes)


def error_line(args: list[str]) -> str:
    r = CliRunner().invoke(build_cli(), args)
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    return r.output


def test_keypoints_with_no_person_are_refused(cmu_walk, tmp_path):
    skeleton_ds = optiq.write_dataset(tmp_path / "skeleton.parquet", [cmu_walk])
    points = project(cmu_walk)
    kp = tmp_path / "kp.parquet"
    optiq.write_dataset(kp, [points.replace(confidence=np.zeros_like(points.confidence))])
    out = tmp_path / "ref.parquet"
    line = error_line(["data", "lift", "--in", str(kp), "--skeleton", str(skeleton_ds), "--out", str(out)])
    assert line.startswith(f"optiq: error: {kp}: points 'cmu_12_01_walk_pybvh', frames 0-89: no person")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kp.parquet", "skeleton.parquet"]


def test_skeleton_without_matching_joints_is_refused(cmu_walk, tmp_path):
    spine = cmu_walk.subset(["Hips", "LowerBack", "Spine", "Spine1", "Neck", "Neck1", "Head"])
    skeleton_ds = optiq.write_dataset(tmp_path / "spine.parquet", [spine])
    kp = tmp_path / "kp.parquet"
    optiq.write_dataset(kp, [project(cmu_walk)])
    out = tmp_path / "ref.parquet"
    line = error_line(["data", "lift", "--in", str(kp), "--skeleton", str(skeleton_ds), "--out", str(out)])
    assert line.startswith(f"optiq: error: {skeleton_ds}: joints: 0 of the skeleton's joints"), line
    assert not out.exists()


def test_lift_deepmimic_walk_on_the_character_file(data_dir, tmp_path):
    clip = optiq.load_clip(data_dir / "deepmimic/humanoid3d_walk.txt")
    kp = tmp_path / "kp.parquet"
    optiq.write_dataset(kp, [project(clip)])
    out = tmp_path / "ref.h5"
    r = CliRunner().invoke(build_cli(), ["data", "lift", "--in", str(kp), "--skeleton", str(data_dir / CHARACTER),
                                         "--out", str(out), "--quiet"])
    assert r.exit_code == 0 and r.output == "", r.output
    with optiq.open_dataset(out) as ds:
        lifted = ds.read_clip(0)
    # The character file's joint order (legs before arms), not the loader's depth-first one: match by name.
    order = [lifted.skeleton.names.index(n) for n in clip.skeleton.names]
    lifted = optiq.Clip(clip.skeleton, lifted.fps, lifted.root_translation, lifted.rotations[:, order])
    root_rel, procrustes = mpjpe_mm(clip, lifted)
    # Measured 2026-11-30: about 83 mm root-relative, 72 mm after Procrustes (110 / 111 mm without the limits).
    assert root_rel < 110 and procrustes < 100, (root_rel, procrustes)
