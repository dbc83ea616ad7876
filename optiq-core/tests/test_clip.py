"""The Clip data model on real clips: kinematics, velocities, resampling, editing, mirroring, smoothing, axes."""

from __future__ import annotations

import numpy as np
import pytest
from optiq import Clip, OptiqError, Skeleton, SkeletonMismatchError, quat
from optiq.axes import LENGTH_UNITS, Y_UP_TO_Z_UP, axis_matrix, guess_up_axis, length_scale
from optiq.loaders.bvh import load_bvh
from scipy.spatial.transform import Rotation, Slerp

WALK = "cmu_02_01_bvhtodeepmimic.bvh"


@pytest.fixture(scope="module")
def walk(data_dir) -> Clip:
    """The CMU 02_01 walk without its T-pose frame: 343 frames at 120 fps."""
    return load_bvh(data_dir / "bvh" / WALK, drop_tpose=True)[0]


def to_scipy(q: np.ndarray) -> Rotation:
    return Rotation.from_quat(np.asarray(q).reshape(-1, 4)[:, [1, 2, 3, 0]])


def same_rotation(a: np.ndarray, b: np.ndarray, atol: float = 1e-12) -> None:
    a, b = np.asarray(a).reshape(-1, 4), np.asarray(b).reshape(-1, 4)
    err = np.minimum(np.abs(a - b).max(axis=-1), np.abs(a + b).max(axis=-1))
    assert err.max() <= atol, err.max()


def chain(n_frames: int, fps: float, omega: float) -> Clip:
    """A root spinning about Z at ``omega`` rad/s with a 1 m arm along X and a fixed child on it."""
    t = np.arange(n_frames) / fps
    rot = np.zeros((n_frames, 2, 4))
    rot[:, 0] = np.stack((np.cos(omega * t / 2), 0 * t, 0 * t, np.sin(omega * t / 2)), axis=-1)
    rot[:, 1, 0] = 1.0
    sk = Skeleton(("root", "arm"), [-1, 0], [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    return Clip(sk, fps, np.zeros((n_frames, 3)), rot)


# --- forward kinematics -------------------------------------------------------------------------------------------
def test_forward_kinematics_matches_scipy_chains(walk):
    """World rotations as products of scipy Rotations along each parent chain; positions by scipy's apply."""
    pos, rot = walk.forward_kinematics()
    sk = walk.skeleton
    world: list[Rotation] = []
    ref_pos = np.empty_like(pos)
    for j in range(sk.num_joints):
        local = to_scipy(walk.rotations[:, j])
        p = sk.parents[j]
        if p < 0:
            world.append(local)
            ref_pos[:, j] = walk.root_translation
        else:
            world.append(world[p] * local)
            ref_pos[:, j] = ref_pos[:, p] + world[p].apply(sk.offsets[j])
        same_rotation(rot[:, j], world[j].as_quat()[:, [3, 0, 1, 2]], atol=1e-12)
    np.testing.assert_allclose(pos, ref_pos, atol=1e-12)
    assert pos.flags.c_contiguous and rot.flags.c_contiguous


def test_forward_kinematics_with_local_translations(walk):
    rng = np.random.default_rng(0)
    local = walk.local_offsets() + rng.normal(scale=0.01, size=(walk.num_frames, walk.num_joints, 3))
    moved = walk.replace(local_translations=local)
    pos, rot = moved.forward_kinematics()
    np.testing.assert_array_equal(rot, walk.world_rotations())
    for j in range(1, walk.num_joints):
        p = walk.skeleton.parents[j]
        np.testing.assert_allclose(pos[:, j], pos[:, p] + quat.rotate(rot[:, p], local[:, j]), atol=1e-12)


def test_analytic_chain_positions():
    clip = chain(50, 100.0, 2.0)
    t = np.arange(50) / 100.0
    np.testing.assert_allclose(clip.world_positions()[:, 1], np.stack((np.cos(2 * t), np.sin(2 * t), 0 * t), -1),
                               atol=1e-12)


# --- velocities ---------------------------------------------------------------------------------------------------
def test_velocities_of_an_analytic_spin():
    fps, omega = 100.0, 2.0
    clip = chain(50, fps, omega)
    t = np.arange(50) / fps
    exact = np.stack((-omega * np.sin(omega * t), omega * np.cos(omega * t), 0 * t), -1)
    lin = clip.linear_velocities()[:, 1]
    dt = 1 / fps
    # Central differences are exact to O(dt^2 omega^3 / 6) inside, one-sided to O(dt omega^2 / 2) at the ends.
    np.testing.assert_allclose(lin[1:-1], exact[1:-1], atol=omega**3 * dt**2 / 6 * 1.01)
    np.testing.assert_allclose(lin[[0, -1]], exact[[0, -1]], atol=omega**2 * dt / 2 * 1.01)
    ang = clip.angular_velocities()
    np.testing.assert_allclose(ang, np.broadcast_to([0.0, 0.0, omega], ang.shape), atol=1e-9)


def test_linear_and_angular_velocities_agree_on_a_real_walk(walk):
    """For a rotation-only joint, v_child = v_parent + omega_parent x (p_child - p_parent)."""
    pos, rot = walk.forward_kinematics()
    lin = walk.linear_velocities(pos)
    ang = walk.angular_velocities(rot)
    par = walk.skeleton.parents[1:]
    predicted = lin[:, par] + np.cross(ang[:, par], pos[:, 1:] - pos[:, par])
    err = np.abs(predicted - lin[:, 1:])[2:-2]
    speed = np.abs(lin).max()
    assert err.max() < 0.03 * speed, (err.max(), speed)
    assert np.median(err) < 0.001 * speed


def test_velocities_of_a_single_frame_are_zero(walk):
    one = walk[:1]
    assert not one.linear_velocities().any() and not one.angular_velocities().any()


# --- resampling, slicing, concatenation ---------------------------------------------------------------------------
def test_resample_to_double_rate_and_back(walk):
    up = walk.resample(240)
    assert up.num_frames == 2 * walk.num_frames - 1 and up.fps == 240
    assert up.duration == pytest.approx(walk.duration)
    same_rotation(up.rotations[::2], walk.rotations)
    # The new frames are slerp and linear midpoints (scipy's Slerp as the reference).
    k = np.arange(walk.num_frames - 1)
    for j in (0, 3, 17):
        ref = np.stack([Slerp([0, 1], to_scipy(walk.rotations[i:i + 2, j]))([0.5]).as_quat()[0] for i in k])
        same_rotation(up.rotations[1::2, j], ref[:, [3, 0, 1, 2]], atol=1e-12)
    np.testing.assert_allclose(up.root_translation[1::2],
                               0.5 * (walk.root_translation[:-1] + walk.root_translation[1:]), atol=1e-12)
    back = up.resample(120)
    same_rotation(back.rotations, walk.rotations)
    np.testing.assert_allclose(back.world_positions(), walk.world_positions(), atol=1e-12)


def test_resample_30_to_120_and_back(data_dir):
    clip = load_bvh(data_dir / "bvh" / "cmu1_jumping_jacks.bvh")[0]
    assert clip.fps == 30
    up = clip.resample(120)
    assert up.num_frames == 4 * (clip.num_frames - 1) + 1
    back = up.resample(30)
    assert back.num_frames == clip.num_frames
    same_rotation(back.rotations, clip.rotations, atol=1e-12)
    np.testing.assert_allclose(back.root_translation, clip.root_translation, atol=1e-12)


def test_resample_keeps_frame_labels_at_the_nearest_frame(walk):
    labelled = walk.with_labels(frame_labels={"idx": np.arange(walk.num_frames)})
    down = labelled.resample(30)
    np.testing.assert_array_equal(down.frame_labels["idx"], np.arange(0, walk.num_frames, 4))
    same_rotation(down.rotations, walk.rotations[::4])
    with pytest.raises(OptiqError, match="target fps must be positive"):
        walk.resample(0)


def test_slice(walk):
    part = walk[10:50]
    assert part.num_frames == 40 and part.fps == walk.fps
    np.testing.assert_array_equal(part.rotations, walk.rotations[10:50])
    half = walk.slice(0, None, 2)
    assert half.fps == 60 and half.num_frames == (walk.num_frames + 1) // 2
    with pytest.raises(OptiqError, match="is empty"):
        walk.slice(400, 500)
    with pytest.raises(TypeError, match="slice"):
        walk[3]


def test_concatenate_restores_the_clip(walk, data_dir):
    a = walk[:100].with_labels({"take": "a"}, {"phase": np.ones(100, dtype=np.int64)})
    b = walk[100:]
    joined = Clip.concatenate([a, b], name="joined")
    assert joined.num_frames == walk.num_frames and joined.name == "joined"
    np.testing.assert_array_equal(joined.rotations, walk.rotations)
    np.testing.assert_array_equal(joined.root_translation, walk.root_translation)
    assert "take" not in joined.labels and joined.labels["source"] == walk.labels["source"]
    np.testing.assert_array_equal(joined.frame_labels["phase"], np.r_[np.ones(100), np.zeros(walk.num_frames - 100)])
    other = load_bvh(data_dir / "bvh" / "sfu_0005_Walking001.bvh")[0]
    with pytest.raises(SkeletonMismatchError, match="skeleton differs"):
        Clip.concatenate([walk, other])
    with pytest.raises(OptiqError, match="at 60 fps"):
        Clip.concatenate([walk, walk.slice(0, None, 2)])


# --- mirroring ----------------------------------------------------------------------------------------------------
def symmetric(clip: Clip, perm: np.ndarray, axis: int) -> Clip:
    """The clip on a left/right symmetric version of its skeleton (each pair's offsets averaged across the plane)."""
    flip = np.ones(3)
    flip[axis] = -1.0
    sk = clip.skeleton
    off = 0.5 * (sk.offsets + sk.offsets[perm] * flip)
    ends = {j: 0.5 * (e + sk.end_sites[int(perm[j])] * flip) for j, e in sk.end_sites.items()}
    return clip.replace(skeleton=Skeleton(sk.names, sk.parents, off, ends))


def test_mirror_twice_is_the_identity(walk):
    twice = walk.mirror().mirror()
    same_rotation(twice.rotations, walk.rotations)
    np.testing.assert_allclose(twice.root_translation, walk.root_translation, atol=1e-15)


def test_mirrored_walk_swaps_and_reflects_the_feet(walk):
    perm = walk.skeleton.mirror_pairs()
    axis = walk.lateral_axis(perm)
    assert axis == 1  # the file's X (left/right) is optiq's Y after the Y-up -> Z-up map
    sym = symmetric(walk, perm, axis)
    mirrored = sym.mirror()
    flip = np.array([1.0, -1.0, 1.0])
    pos, mpos = sym.world_positions(), mirrored.world_positions()
    left, right = sym.skeleton.index("LeftFoot"), sym.skeleton.index("RightFoot")
    np.testing.assert_allclose(mpos[:, left], pos[:, right] * flip, atol=1e-12)
    np.testing.assert_allclose(mpos[:, right], pos[:, left] * flip, atol=1e-12)
    np.testing.assert_allclose(mpos, pos[:, perm] * flip, atol=1e-12)
    # The feet really move: the check is not about a standing pose.
    assert np.ptp(pos[:, left, 0]) > 0.5


def test_mirror_needs_pairs():
    sk = Skeleton(("a", "b"), [-1, 0], [[0, 0, 0], [0, 0, 1.0]])
    clip = Clip(sk, 30, np.zeros((2, 3)), quat.identity((2, 2)))
    with pytest.raises(OptiqError, match="no left/right joint pairs"):
        clip.mirror()


# --- smoothing ----------------------------------------------------------------------------------------------------
def test_butterworth_passes_slow_motion_and_removes_fast_jitter(walk):
    t = np.arange(walk.num_frames) / walk.fps
    slow = np.stack((0.3 * np.sin(2 * np.pi * 0.5 * t), 0.2 * np.cos(2 * np.pi * 0.8 * t), 0.9 + 0 * t), -1)
    jitter = 0.01 * np.sin(2 * np.pi * 30.0 * t)[:, None]
    inner = slice(40, -40)  # away from filtfilt's padded ends
    kept = walk.replace(root_translation=slow).smooth(6.0)
    np.testing.assert_allclose(kept.root_translation[inner], slow[inner], atol=1e-4)
    cleaned = walk.replace(root_translation=slow + jitter).smooth(6.0)
    residual = cleaned.root_translation - slow
    assert np.abs(residual[inner]).max() < 1e-4  # the 1 cm 30 Hz jitter is gone
    assert np.abs((slow + jitter - slow)[inner]).max() > 0.009  # and it was there before
    np.testing.assert_allclose(np.linalg.norm(cleaned.rotations, axis=-1), 1.0, atol=1e-12)
    # On the real rotations the filter keeps the motion (a median change under a degree) and removes roughness:
    # the frame-to-frame second differences shrink.
    assert np.degrees(np.median(quat.angle_between(cleaned.rotations, walk.rotations)[inner])) < 1.0
    rough = [np.abs(np.diff(quat.make_continuous(c.rotations), 2, axis=0)).sum() for c in (walk, cleaned)]
    assert rough[1] < 0.5 * rough[0], rough


@pytest.mark.parametrize("cutoff", [60.0, 75.0, 0.0, -1.0])
def test_smooth_cutoff_must_be_below_nyquist(walk, cutoff):
    with pytest.raises(OptiqError, match="Nyquist frequency 60 Hz"):
        walk.smooth(cutoff)


def test_smooth_needs_enough_frames(walk):
    with pytest.raises(OptiqError, match="too few to filter"):
        walk[:10].smooth(5.0)


# --- axes and units -----------------------------------------------------------------------------------------------
def test_axis_matrices():
    m = axis_matrix("y")
    np.testing.assert_array_equal(m, Y_UP_TO_Z_UP)
    np.testing.assert_array_equal(m @ [0, 1, 0], [0, 0, 1])  # up stays up
    np.testing.assert_array_equal(m @ [0, 0, 1], [1, 0, 0])  # Y-up forward +Z faces +X
    assert np.linalg.det(m) == pytest.approx(1.0)
    np.testing.assert_array_equal(axis_matrix("Z"), np.eye(3))
    with pytest.raises(ValueError, match="expected 'y' or 'z'"):
        axis_matrix("x")


def test_transformed_equals_loading_with_conversion(data_dir):
    path = data_dir / "bvh" / WALK
    raw = load_bvh(path, unit=1.0, up="z")[0]  # the file's own axes and numbers
    converted = load_bvh(path)[0]
    assert converted.labels["length_unit"] == "cmu" and converted.labels["up"] == "y"
    manual = raw.transformed(Y_UP_TO_Z_UP, LENGTH_UNITS["cmu"])
    np.testing.assert_allclose(manual.world_positions(), converted.world_positions(), atol=1e-12)
    np.testing.assert_allclose(raw.world_positions() @ Y_UP_TO_Z_UP.T * LENGTH_UNITS["cmu"],
                               converted.world_positions(), atol=1e-12)
    with pytest.raises(ValueError, match="proper rotation"):
        raw.transformed(np.diag([1.0, 1.0, -1.0]))


@pytest.mark.parametrize("name", ["cmu_02_01_bvhtodeepmimic.bvh", "fair1_jumping.bvh", "sfu_0005_Walking001.bvh"])
def test_loaded_clips_stand_up_along_z(data_dir, name):
    clip = load_bvh(data_dir / "bvh" / name)[0]
    pos = clip.world_positions()
    head = clip.skeleton.index("Head")
    up = (pos[:, head] - pos[:, 0]).mean(axis=0)
    assert up[2] > 0.3 and up[2] > 2 * np.abs(up[:2]).max(), up
    height = np.ptp(clip.skeleton.rest_positions()[:, 2])
    assert 1.0 < height < 2.1, height


def test_unit_guessing():
    assert length_scale("auto", 170.0) == (0.01, "cm")
    assert length_scale("auto", 1.75) == (1.0, "m")
    assert length_scale("auto", 67.0) == (0.0254, "inch")
    assert length_scale("auto", 30.0)[1] == "cmu"  # 30 CMU units = 1.69 m
    assert length_scale("mm") == (0.001, "mm")
    assert length_scale(0.5) == (0.5, "0.5 m")
    with pytest.raises(ValueError, match="unknown length unit 'furlong'"):
        length_scale("furlong")


def test_up_axis_guess_without_names_is_y():
    sk = Skeleton(("a", "b"), [-1, 0], [[0, 0, 0], [0, 0, 1.0]])
    assert guess_up_axis(sk) == "y"
    named = Skeleton(("hips", "spine"), [-1, 0], [[0, 0, 0], [0, 0, 1.0]])
    assert guess_up_axis(named) == "z"


def test_joint_order_changes_only_the_listing(data_dir):
    """Reordering joints (siblings' subtrees swapped) keeps every joint's world motion."""
    clip = load_bvh(data_dir / "bvh" / "cmu_02_01_bvhtodeepmimic.bvh")[0]
    names = list(clip.skeleton.names)
    # Hips, then the right leg before the left leg, then the rest: still parents before children.
    left, right = names[1:6], names[6:11]
    order = [names[0], *right, *left, *names[11:]]
    moved = clip.with_joint_order(order)
    assert moved.skeleton.names == tuple(order)
    before = dict(zip(names, np.moveaxis(clip.world_positions(), 1, 0), strict=True))
    after = dict(zip(order, np.moveaxis(moved.world_positions(), 1, 0), strict=True))
    for name in names:
        np.testing.assert_allclose(after[name], before[name], atol=1e-12)
    assert len(moved.skeleton.end_sites) == len(clip.skeleton.end_sites)
    with pytest.raises(SkeletonMismatchError, match="parents"):
        clip.with_joint_order([names[0], names[2], names[1], *names[3:]])  # a child before its parent
    with pytest.raises(SkeletonMismatchError, match="root"):
        clip.with_joint_order([names[1], names[0], *names[2:]])
