"""State features (optiq.features) and foot contacts (optiq.contacts) on real clips: CMU BVH walks, the DeepMimic
walk, Bandai-Namco takes and an AMP .npy walk.

Measured here (max over frames and joints of |world position after featurize -> defeaturize - original|, worst of
the three encodings, float32 features): CMU 02_01 walk 0.00007 mm, CMU 01_14 (2339 frames, 19 s) 0.00013 mm,
DeepMimic walk 0.00005 mm, Bandai walk 0.00026 mm, Bandai dash 0.00022 mm, AMP walk 0.00004 mm. The tests assert
0.01 mm.
"""

from __future__ import annotations

import json

import numpy as np
import optiq
import pytest
from optiq import OptiqError, SkeletonMismatchError, quat
from optiq.contacts import auto_labels, find_feet, foot_contacts, gait_phase, leg_length
from optiq.features import (
    ROTATIONS,
    FeatureSpec,
    Normalizer,
    decode_rotations,
    defeaturize,
    detect_root,
    encode_rotations,
    feature_layout,
    featurize,
    hinge_angles,
    real_to_sim,
    resolve_spec,
    sim_to_real,
    start_pose,
)
from optiq.loaders.npy_traj import load_npy_traj, read_spec
from optiq.skeleton import Skeleton

CLIPS = {
    "cmu_walk": "bvh/cmu_02_01_bvhtodeepmimic.bvh",
    "cmu_long": "bvh/cmu_01_14_bvhtodeepmimic.bvh",
    "deepmimic_walk": "deepmimic/humanoid3d_walk.txt",
    "bandai_walk": "corpora/bandai_namco/data/dataset-1_walk_normal_001.bvh",
    "bandai_dash": "corpora/bandai_namco/data/dataset-1_dash_normal_001.bvh",  # joint_Root moves as well as Hips
    "amp_walk": "npy/amp/amp_humanoid_walk.npy",
}
BANDAI = "corpora/bandai_namco/data"


def _load(data_dir, key):
    return optiq.load(data_dir / CLIPS[key])[0]


def _turned(clip: optiq.Clip, angle: float, shift) -> optiq.Clip:
    """The same motion turned by ``angle`` about world Z and moved by ``shift``: the top joint carries it."""
    qz = quat.from_axis_angle(np.array([0.0, 0.0, 1.0]), angle)
    rot = clip.rotations.copy()
    rot[:, 0] = quat.qmul(qz, rot[:, 0])
    return clip.replace(root_translation=quat.rotate(qz, clip.root_translation) + np.asarray(shift), rotations=rot)


# --- round trip, invariance, causality -------------------------------------------------------------------------
@pytest.mark.parametrize("rotation", list(ROTATIONS))
@pytest.mark.parametrize("key", list(CLIPS))
def test_round_trip_reproduces_world_positions(data_dir, key, rotation):
    clip = _load(data_dir, key)
    spec = FeatureSpec(rotation=rotation, contacts=True)
    feats = featurize(clip, spec)
    layout = feature_layout(clip.skeleton, spec)
    assert feats.dtype == np.float32 and feats.shape == (clip.num_frames, layout.dim)
    position, yaw = start_pose(clip, spec)
    back = defeaturize(feats, clip.skeleton, spec, clip.fps, start_position=position, start_yaw=yaw)
    err = np.abs(back.world_positions() - clip.world_positions()).max()
    assert err < 1e-5, f"{key} {rotation}: {err * 1000:.4f} mm"
    # The contact flags come back as frame labels.
    flags = foot_contacts(clip)
    for k, foot in enumerate(layout.feet):
        np.testing.assert_array_equal(back.frame_labels[f"contact_{foot}"], flags[:, k])
    # Features of the rebuilt clip are the features (defeaturize is a right inverse too).
    np.testing.assert_allclose(featurize(back, spec), feats, atol=1e-4)  # velocities: 1e-7 m x 120 fps


@pytest.mark.parametrize("key", ["cmu_walk", "bandai_walk", "bandai_dash", "amp_walk"])
def test_heading_and_position_invariant(data_dir, key):
    clip = _load(data_dir, key)
    feats = featurize(clip, FeatureSpec(contacts=True))
    turned = _turned(clip, 2.0, [3.0, -1.5, 0.0])
    assert np.abs(turned.world_positions() - clip.world_positions()).max() > 1.0  # it did move
    np.testing.assert_allclose(featurize(turned, FeatureSpec(contacts=True)), feats, atol=2e-5)
    # Rebuilt with the other start, the rows give the turned clip.
    position, yaw = start_pose(turned)
    back = defeaturize(feats, clip.skeleton, FeatureSpec(contacts=True), clip.fps, start_position=position,
                       start_yaw=yaw)
    assert np.abs(back.world_positions() - turned.world_positions()).max() < 1e-5


@pytest.mark.parametrize("key", ["cmu_walk", "bandai_walk"])
def test_causal(data_dir, key):
    """Changing frames after t never changes rows up to t; frame 0's velocities and yaw rate are 0."""
    clip = _load(data_dir, key)
    spec = FeatureSpec(contacts=True)
    feats = featurize(clip, spec)
    layout = feature_layout(clip.skeleton, spec)
    rng = np.random.default_rng(0)
    for t in (0, 1, 57, clip.num_frames - 2):
        rot = clip.rotations.copy()
        rot[t + 1:] = quat.normalize(rng.normal(size=rot[t + 1:].shape))
        trans = clip.root_translation.copy()
        trans[t + 1:] += rng.normal(size=trans[t + 1:].shape)
        local = None if clip.local_translations is None else clip.local_translations.copy()
        if local is not None:
            local[t + 1:, 1] += rng.normal(size=local[t + 1:, 1].shape)
        changed = featurize(clip.replace(rotations=rot, root_translation=trans, local_translations=local), spec)
        np.testing.assert_array_equal(changed[:t + 1], feats[:t + 1])
        assert np.abs(changed[t + 1] - feats[t + 1]).max() > 1e-3  # the change is seen from t + 1 on
    for name in ("root_velocity", "yaw_rate", "velocities"):
        assert not feats[0, layout.slices[name]].any()


def test_layout_groups_cover_every_feature_once(data_dir):
    clip = _load(data_dir, "cmu_walk")
    j = clip.num_joints
    for rotation, e in ROTATIONS.items():
        layout = feature_layout(clip.skeleton, FeatureSpec(rotation=rotation, contacts=True))
        assert layout.dim == 1 + 3 + 1 + e + (j - 1) * (e + 6) + 2
        assert [s.stop - s.start for s in layout.slices.values()] == [1, 3, 1, e, (j - 1) * e, (j - 1) * 3,
                                                                      (j - 1) * 3, 2]
        both = np.sort(np.concatenate([layout.groups["pos"], layout.groups["vel"]]))
        np.testing.assert_array_equal(both, np.arange(layout.dim))
        vel = set(layout.groups["vel"].tolist())
        assert vel == set(range(1, 5)) | set(range(layout.slices["velocities"].start, layout.slices["velocities"].stop))
    assert layout.feet == ("left", "right") and len(layout.joints) == j - 1


def test_6d_gram_schmidt_gives_rotations():
    rng = np.random.default_rng(1)
    q = quat.normalize(rng.normal(size=(500, 4)))
    for rotation in ROTATIONS:
        back = decode_rotations(encode_rotations(q, rotation), rotation)
        assert quat.angle_between(back, q).max() < 1e-7
    # Any six numbers (a network's output) decode to a unit quaternion; a small perturbation stays close.
    noisy = encode_rotations(q, "6d") + rng.normal(scale=0.01, size=(500, 6))
    out = decode_rotations(noisy, "6d")
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=1e-12)
    assert quat.angle_between(out, q).max() < 0.1


# --- the root ------------------------------------------------------------------------------------------------
def test_bandai_root_is_the_hips(data_dir):
    """joint_Root stays at the origin (or slides along in a few takes): every take uses the hips, at walking
    height, at the speeds of its content (runs about 2.3 m/s and walks 1.1 m/s in the data)."""
    speeds: dict[str, list[float]] = {}
    files = sorted((data_dir / BANDAI).glob("dataset-1_*.bvh"))
    assert len(files) == 158
    for path in files:
        clip = optiq.load(path)[0]
        assert clip.skeleton.names[detect_root(clip)] == "Hips", path.name
        feats = featurize(clip)
        layout = feature_layout(clip.skeleton)
        assert clip.skeleton.names[layout.root] == "Hips"
        assert 0.8 < feats[:, layout.slices["root_height"]].mean() < 1.0, path.name
        v = feats[1:, layout.slices["root_velocity"]]
        speeds.setdefault(path.name.split("_")[1], []).append(float(v[:, 0].mean()))
    assert 0.9 < np.mean(speeds["walk"]) < 1.3
    assert 1.8 < np.mean(speeds["run"]) < 2.8
    assert np.mean(speeds["walk-back"]) < -0.5  # forward is the hips' heading: a walk backwards is negative
    # Built on the dummy root instead, the features would stand on the floor.
    clip = optiq.load(data_dir / CLIPS["bandai_walk"])[0]
    wrong = featurize(clip, FeatureSpec(root="joint_Root"))
    assert abs(wrong[:, 0]).max() < 1e-6


def _with_static_reference(clip: optiq.Clip) -> optiq.Clip:
    """``clip`` hung under a still "world" joint that also holds a "prop": the skeleton alone cannot tell which
    of world's two children carries the body."""
    sk = clip.skeleton
    j = sk.num_joints
    parents = np.concatenate(([-1], sk.parents + 1, [0]))
    parents[1] = 0
    offsets = np.vstack(([0.0, 0.0, 0.0], sk.offsets, [1.0, 0.0, 0.0]))
    skeleton = Skeleton(("world", *sk.names, "prop"), parents, offsets)
    rot = np.concatenate((quat.identity((clip.num_frames, 1)), clip.rotations, quat.identity((clip.num_frames, 1))), 1)
    local = np.broadcast_to(offsets, (clip.num_frames, j + 2, 3)).copy()
    local[:, 1] = clip.root_translation
    return optiq.Clip(skeleton, clip.fps, np.zeros((clip.num_frames, 3)), rot, local, name="with_prop")


def test_root_detected_from_motion_must_be_named(data_dir):
    clip = _with_static_reference(_load(data_dir, "deepmimic_walk"))
    assert clip.skeleton.names[detect_root(clip)] == "root"
    with pytest.raises(OptiqError, match=r"carried by 'root', not by 'world'.*FeatureSpec\(root='root'\)"):
        featurize(clip)
    spec = resolve_spec(clip)
    assert spec.root == "root"
    feats = featurize(clip, spec)
    position, yaw = start_pose(clip, spec)
    back = defeaturize(feats, clip.skeleton, spec, clip.fps, start_position=position, start_yaw=yaw)
    assert np.abs(back.world_positions() - clip.world_positions()).max() < 1e-5


# --- errors, spec ---------------------------------------------------------------------------------------------
def test_spec_json_and_errors(data_dir):
    spec = FeatureSpec(rotation="expmap", contacts=True, root="Hips", sim_to_real_idx=(2, 0), real_dof=3)
    assert FeatureSpec.from_json(spec.to_json()) == spec
    assert FeatureSpec.from_json(json.loads(spec.to_json())) == spec
    with pytest.raises(OptiqError, match="rotation 'euler' is unknown; expected one of 6d, quat, expmap"):
        FeatureSpec(rotation="euler")
    with pytest.raises(OptiqError, match="unknown key 'rotations'"):
        FeatureSpec.from_json('{"rotations": "6d"}')
    with pytest.raises(OptiqError, match="distinct indices in"):
        FeatureSpec(sim_to_real_idx=(0, 3), real_dof=3)
    clip = _load(data_dir, "cmu_walk")
    with pytest.raises(SkeletonMismatchError, match="root 'pelvis' is not a joint"):
        featurize(clip, FeatureSpec(root="pelvis"))
    feats = featurize(clip)
    assert feats.shape[1] == feature_layout(clip.skeleton).dim == 371
    with pytest.raises(SkeletonMismatchError, match=r"expected \(T, 371\) for this skeleton of 31 joints"):
        defeaturize(feats[:, :-1], clip.skeleton, FeatureSpec(), clip.fps)
    feats[7, 3] = np.nan
    with pytest.raises(OptiqError, match="row 7: features are not finite"):
        defeaturize(feats, clip.skeleton, FeatureSpec(), clip.fps)


# --- normalizer -----------------------------------------------------------------------------------------------
def test_normalizer_streams_guards_and_round_trips(data_dir):
    arrays = [featurize(_load(data_dir, k)) for k in ("cmu_walk", "cmu_long")]
    fitted = Normalizer.fit(a for a in arrays)  # a generator: nothing is kept
    whole = np.concatenate(arrays).astype(np.float64)
    np.testing.assert_allclose(fitted.mean, whole.mean(axis=0), rtol=1e-6, atol=1e-6)
    std = whole.std(axis=0)
    np.testing.assert_allclose(fitted.std, np.where(std < 1e-5, 1.0, std), rtol=1e-5, atol=1e-6)
    # CMU's LHipJoint has no rotation channels: its 6D rotation never varies, so std 1 and normalised rows 0.
    clip = _load(data_dir, "cmu_walk")
    layout = feature_layout(clip.skeleton)
    j = list(layout.joints).index(clip.skeleton.index("LHipJoint"))
    cols = np.arange(layout.slices["rotations"].start, layout.slices["rotations"].stop)[6 * j:6 * j + 6]
    assert (whole[:, cols] == whole[0, cols]).all()
    np.testing.assert_array_equal(fitted.std[cols], 1.0)
    np.testing.assert_allclose(fitted.mean[cols], [1, 0, 0, 0, 1, 0], atol=1e-7)
    z = fitted.normalize(arrays[0])
    assert np.isfinite(z).all() and not z[:, cols].any()
    np.testing.assert_allclose(fitted.denormalize(z), arrays[0], atol=1e-4)
    norm = fitted
    again = Normalizer.from_json(norm.to_json())
    np.testing.assert_array_equal(again.mean, norm.mean)
    np.testing.assert_array_equal(again.std, norm.std)
    with pytest.raises(OptiqError, match="no frames to fit on"):
        Normalizer.fit([])
    # A floor on the std: features that vary less than min_std get min_std, constant ones still 1.
    floored = Normalizer.fit(arrays, min_std=0.05)
    np.testing.assert_allclose(floored.std, np.where(std < 1e-5, 1.0, np.maximum(std, 0.05)), rtol=1e-5, atol=1e-6)
    assert ((std > 1e-5) & (std < 0.05)).any() and (floored.std[cols] == 1.0).all()
    with pytest.raises(OptiqError, match="input has 3 features, expected"):
        norm.normalize(np.zeros((2, 3)))


def test_normalizer_takes_torch_tensors(data_dir):
    torch = pytest.importorskip("torch")
    feats = featurize(_load(data_dir, "cmu_walk"))
    norm = Normalizer.fit([feats])
    x = torch.from_numpy(feats).reshape(4, 86, -1)
    z = norm.normalize(x)
    assert isinstance(z, torch.Tensor) and z.dtype == torch.float32 and z.shape == x.shape
    np.testing.assert_allclose(z.reshape(len(feats), -1).numpy(), norm.normalize(feats), atol=1e-5)
    np.testing.assert_allclose(norm.denormalize(z).numpy(), x.numpy(), atol=1e-4)


# --- contacts and phase ----------------------------------------------------------------------------------------
def _onsets(flags: np.ndarray, min_frames: int) -> np.ndarray:
    """Touch-downs of contact runs of at least min_frames frames (independent of optiq.contacts)."""
    starts = [t for t in range(1, len(flags)) if flags[t] and not flags[t - 1]
              and flags[t:t + min_frames].all()]
    return np.array(starts)


@pytest.mark.parametrize("key", ["cmu_walk", "bandai_walk", "deepmimic_long_walk", "amp_walk"])
def test_walk_contacts_alternate_and_phase_cycles(data_dir, key):
    if key == "deepmimic_long_walk":  # the 39-frame DeepMimic walk holds a single touch-down: too short for a phase
        clip = optiq.load(data_dir / "corpora/deepmimic_more/long/humanoid3d_long_walk1.txt",
                          character=data_dir / "deepmimic/humanoid3d_character.txt")[0]
    elif key == "cmu_walk":  # frame 0 is a T-pose, from which both feet jump into the walk
        clip = optiq.load(data_dir / CLIPS[key], drop_tpose=True)[0]
    else:
        clip = _load(data_dir, key)
    feet = find_feet(clip.skeleton)
    assert list(feet)[:2] == ["left", "right"]
    assert 0.8 < leg_length(clip.skeleton) < 1.2
    flags = foot_contacts(clip)
    assert flags.shape == (clip.num_frames, 2) and flags.dtype == bool
    stance = flags.mean(axis=0)
    assert ((stance > 0.4) & (stance < 0.8)).all(), stance  # a walk stands on each foot about 60% of the time
    assert flags.any(axis=1).mean() > 0.9  # and nearly always on one of them
    min_frames = max(1, round(0.1 * clip.fps))
    left, right = _onsets(flags[:, 0], min_frames), _onsets(flags[:, 1], min_frames)
    merged = sorted([(t, 0) for t in left] + [(t, 1) for t in right])
    assert len(merged) >= 2
    sides = [s for _, s in merged]
    assert all(a != b for a, b in zip(sides[:-1], sides[1:], strict=True)), merged  # left, right, left, ...
    phase = auto_labels(clip, "phase")["phase"]
    assert phase.shape == (clip.num_frames,) and ((phase >= 0) & (phase < 1)).all()
    step = np.diff(phase)
    wraps = np.flatnonzero(step < -0.5) + 1
    assert (step[step >= -0.5] > 0).all()  # increasing within a cycle
    inside = wraps[(wraps >= left.min() - min_frames) & (wraps <= left.max() + min_frames)]
    assert len(inside) >= len(left) - 1
    for w in inside:  # a cycle starts at a left touch-down (gait_phase also closes lifts shorter than min_frames)
        assert np.abs(left - w).min() <= min_frames, (w, left)
    mid = right[(right > left.min()) & (right < left.max())]
    assert len(mid) and np.abs(phase[mid] - 0.5).max() < 0.1


def test_contacts_are_fewer_in_a_run_and_labels(data_dir):
    walk = optiq.load(data_dir / "deepmimic/humanoid3d_walk.txt")[0]
    run = optiq.load(data_dir / "deepmimic/humanoid3d_run.txt")[0]
    assert foot_contacts(run).mean() < 0.6 * foot_contacts(walk).mean()
    labels = auto_labels(walk, "contacts")
    assert sorted(labels) == ["contact_left", "contact_right"]
    np.testing.assert_array_equal(np.stack([labels["contact_left"], labels["contact_right"]], 1), foot_contacts(walk))
    with pytest.raises(OptiqError, match="unknown automatic label 'gait'; expected contacts or phase"):
        auto_labels(walk, "gait")
    # Standing still: no touch-down, phase 0.
    still = walk.replace(rotations=np.repeat(walk.rotations[:1], 30, 0),
                         root_translation=np.repeat(walk.root_translation[:1], 30, 0))
    assert not gait_phase(foot_contacts(still)).any()


def test_feet_found_without_names(data_dir):
    """Renamed joints: the feet are the leaf joints lowest in the rest pose."""
    clip = _load(data_dir, "deepmimic_walk")
    renamed = clip.renamed({n: f"j{i}" for i, n in enumerate(clip.skeleton.names)})
    feet = find_feet(renamed.skeleton)
    names = {renamed.skeleton.names[j] for v in feet.values() for j in v}
    want = {f"j{clip.skeleton.names.index(n)}" for n in ("left_ankle", "right_ankle")}
    assert names == want


# --- robot dofs -------------------------------------------------------------------------------------------------
def _deepmimic_trajectory(data_dir, tmp_path):
    """The DeepMimic walk as an NPY trajectory: each spherical joint three hinge dofs (intrinsic Z, Y, X angles
    from scipy), each knee and elbow one hinge about z (docs/npy-trajectories.md)."""
    from scipy.spatial.transform import Rotation

    joints = json.loads((data_dir / "deepmimic/humanoid3d_character.txt").read_text())["Skeleton"]["Joints"]
    frames = np.array(json.loads((data_dir / "deepmimic/humanoid3d_walk.txt").read_text())["Frames"])
    dofs, cols, c = [], [], 8
    for j in joints[1:]:
        if j["Type"] == "spherical":
            dofs += [{"name": f"{j['Name']}_{a}", "joint": j["Name"], "axis": a} for a in "zyx"]
            cols.append(Rotation.from_quat(frames[:, c:c + 4][:, [1, 2, 3, 0]]).as_euler("ZYX"))
            c += 4
        elif j["Type"] == "revolute":
            dofs.append({"name": j["Name"], "joint": j["Name"], "axis": "z"})
            cols.append(frames[:, c:c + 1])
            c += 1
    spec = {"format": "optiq-npy-trajectory-spec", "version": 1, "up": "y", "unit": "m",
            "skeleton": {"names": [j["Name"] for j in joints], "parents": [j["Parent"] for j in joints],
                         "offsets": [[0.0, 0.0, 0.0]] + [[j["AttachX"], j["AttachY"], j["AttachZ"]]
                                                         for j in joints[1:]]},
            "dofs": dofs}
    t = len(frames)
    rows = np.hstack([np.arange(t)[:, None] * frames[0, 0], frames[:, 1:8], *cols, np.zeros((t, 1))])
    np.save(tmp_path / "walk.npy", rows)
    (tmp_path / "walk.spec.json").write_text(json.dumps(spec))
    return tmp_path / "walk.npy", rows[:, 8:-1]


def test_robot_dofs_and_dof_map(data_dir, tmp_path):
    path, dof_cols = _deepmimic_trajectory(data_dir, tmp_path)
    clip = load_npy_traj(path)[0]
    tspec = read_spec(path.with_name("walk.spec.json"))
    n = dof_cols.shape[1]
    assert n == 3 * 8 + 4
    angles = hinge_angles(clip, tspec)
    np.testing.assert_allclose(np.angle(np.exp(1j * (angles - dof_cols))), 0.0, atol=1e-9)
    # A robot that lists the same dofs in reverse order, with 3 more it does not simulate.
    idx = tuple(range(n + 2, 2, -1))
    spec = FeatureSpec(rotation="quat", sim_to_real_idx=idx, real_dof=n + 3)
    real = sim_to_real(angles, spec)
    assert real.shape == (clip.num_frames, n + 3) and not real[:, :3].any()
    np.testing.assert_array_equal(real[:, n + 2], angles[:, 0])
    np.testing.assert_array_equal(real_to_sim(real, spec), angles.astype(real.dtype))
    with pytest.raises(OptiqError, match="sim_to_real_idx names 28 simulation dofs, the data has 27"):
        sim_to_real(angles[:, 1:], spec)
    # Robot features in every encoding invert to the same bodies.
    for rotation in ROTATIONS:
        s = FeatureSpec(rotation=rotation, sim_to_real_idx=idx, real_dof=n + 3)
        position, yaw = start_pose(clip, s)
        back = defeaturize(featurize(clip, s), clip.skeleton, s, clip.fps, start_position=position, start_yaw=yaw)
        assert np.abs(back.world_positions() - clip.world_positions()).max() < 1e-5
