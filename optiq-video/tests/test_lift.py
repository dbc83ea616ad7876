"""``optiq data lift``: real 3D clips projected to 2D with a known weak-perspective camera, noised, with points
dropped, lifted back and compared with the clip itself (the independent truth: the BVH's own joint positions)."""

from __future__ import annotations

import numpy as np
import optiq
import pytest
from click.testing import CliRunner
from optiq.cli.main import build_cli
from optiq.keypoints import COCO17_NAMES
from optiq_video.lift import deepmimic_skeleton, joint_map, lift

CMU_WALK = "bvh/cmu_12_01_walk_pybvh.bvh"
BANDAI_RUN = "corpora/bandai_namco/data/dataset-1_run_active_001.bvh"
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


def test_lift_cmu_walk_recovers_it(cmu_walk, tmp_path):
    skeleton_ds = optiq.write_dataset(tmp_path / "skeleton.parquet", [cmu_walk])
    points = project(cmu_walk)
    kp = tmp_path / "kp.parquet"
    optiq.write_dataset(kp, [points])
    out = tmp_path / "ref.parquet"
    r = CliRunner().invoke(build_cli(), ["data", "lift", "--in", str(kp), "--skeleton", str(skeleton_ds),
                                         "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "frames/s" in r.output and "90 frames" in r.output, r.output
    with optiq.open_dataset(out) as ds:
        lifted = ds.read_clip(0)
    assert lifted.skeleton.names == cmu_walk.skeleton.names and lifted.num_frames == 90
    err = lifted.frame_labels["reprojection_error"]
    # Noise of sigma px per coordinate: a perfect fit is about sigma * sqrt(pi / 2) from the noisy points.
    sigma = 0.02 * np.ptp(cmu_walk.world_positions()[0, :, 2]) * SCALE
    assert err.shape == (90,) and 0.5 * sigma < np.mean(err) < 2.0 * sigma
    root_rel, procrustes = mpjpe_mm(cmu_walk, lifted)
    # Measured 2026-11-30: about 83 mm root-relative and 76 mm after Procrustes (docs/video.md).
    assert root_rel < 110 and procrustes < 100, (root_rel, procrustes)
    # Standing on the ground: the lowest joint of the clip at Z = 0.
    assert abs(lifted.world_positions()[..., 2].min()) < 1e-5  # float32 on disk


def test_lift_bandai_run_within_its_looser_bound(data_dir):
    clip = optiq.load_clip(data_dir / BANDAI_RUN)
    lifted = lift(project(clip), clip.skeleton).clip
    root_rel, procrustes = mpjpe_mm(clip, lifted)
    # The run is the failure case of one view: measured about 277 mm root-relative, 238 mm after Procrustes,
    # with a good reprojection (14 px for 10.5 px noise): the depth of the body is mirrored (docs/video.md).
    assert root_rel < 320 and procrustes < 280, (root_rel, procrustes)


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
    # Measured 2026-11-30: about 110 mm root-relative, 111 mm after Procrustes.
    assert root_rel < 140 and procrustes < 140, (root_rel, procrustes)
