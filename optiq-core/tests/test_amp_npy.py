"""The AMP poselib .npy loader: every real file against numpy's own unpickling of it (trusted repo data, read
here with np.load(allow_pickle=True) as the independent second reader), velocities against the ones poselib stored,
global-rotation files, T-pose semantics, a malicious pickle that must not run, and broken files."""

from __future__ import annotations

import pickle
import pickletools

import numpy as np
import optiq
import pytest
from optiq import ParseError, quat
from optiq.loaders.amp_npy import load_amp_npy, sniff_amp_npy
from optiq.loaders.npy_traj import sniff_npy_traj
from scipy.ndimage import gaussian_filter1d

AMP = ("npy", "amp")


def _trusted(path) -> dict:
    """numpy's own reading of a file from the shared data folder (trusted; never do this with user files)."""
    return np.load(path, allow_pickle=True).item()


def _arr(v) -> np.ndarray:
    return np.asarray(v["arr"] if isinstance(v, dict) else v, dtype=np.float64)


def _files(data_dir):
    return sorted((data_dir / AMP[0] / AMP[1]).glob("*.npy"))


def test_every_file_as_numpy_reads_it(data_dir):
    files = _files(data_dir)
    assert len(files) == 7
    for path in files:
        d = _trusted(path)
        clip = optiq.load_clip(path)
        rot = _arr(d["rotation"])
        names = [str(n) for n in d["skeleton_tree"]["node_names"]]
        assert clip.num_frames == (rot.shape[0] if rot.ndim == 3 else 1), path.name
        assert clip.skeleton.names == tuple(names)
        assert clip.skeleton.parents.tolist() == _arr(d["skeleton_tree"]["parent_indices"]).astype(int).tolist()
        if "fps" in d:
            assert clip.fps == float(np.asarray(d["fps"])) == 60.0
        assert clip.labels["poselib_type"] == d["__name__"]
        if path.name.startswith("amp_humanoid"):
            assert clip.num_joints == 15
            assert clip.labels["up"] == "z" and clip.labels["length_unit"] == "m"
            # Z-up metres: the file's local xyzw rotations are the clip's wxyz ones, and FK puts the root at
            # root_translation.
            want = rot.reshape(clip.num_frames, 15, 4)[..., [3, 0, 1, 2]]
            want /= np.linalg.norm(want, axis=-1, keepdims=True)
            assert np.allclose(np.abs(np.sum(want * clip.rotations, axis=-1)), 1.0, atol=1e-12)
            np.testing.assert_allclose(clip.world_positions()[:, 0],
                                       _arr(d["root_translation"]).reshape(-1, 3), atol=1e-12)
            np.testing.assert_allclose(clip.skeleton.offsets, _arr(d["skeleton_tree"]["local_translation"]),
                                       atol=1e-12)


@pytest.mark.parametrize("name", ["walk", "run", "hop", "cartwheel"])
def test_velocities_agree_with_poselib(data_dir, name):
    """poselib stores global_velocity = gaussian_filter1d(np.gradient(world positions), sigma=2) * fps and
    global_angular_velocity = the same filter over forward differences of world rotations. optiq's finite
    differences of its own FK, filtered the same way, must reproduce them: this checks FK, the xyzw -> wxyz
    order and the local-rotation convention on every frame and joint."""
    path = data_dir / AMP[0] / AMP[1] / f"amp_humanoid_{name}.npy"
    d = _trusted(path)
    clip = load_amp_npy(path)[0]
    pos, rot = clip.forward_kinematics()
    lin = gaussian_filter1d(clip.linear_velocities(pos), 2, axis=0, mode="nearest")
    fwd = quat.to_rotvec(quat.qmul(rot[1:], quat.conj(rot[:-1]))) * clip.fps
    ang = gaussian_filter1d(np.concatenate((fwd, np.zeros_like(fwd[:1]))), 2, axis=0, mode="nearest")
    lin_err = np.linalg.norm(lin - _arr(d["global_velocity"]), axis=-1)
    ang_err = np.linalg.norm(ang - _arr(d["global_angular_velocity"]), axis=-1)
    # Measured: linear at most 9e-6 m/s, angular at most 4e-3 rad/s (float32 files).
    assert lin_err.max() < 1e-4
    assert ang_err.max() < 1e-2
    # Unfiltered central differences differ from poselib's smoothed ones by 6-12% (median): a real difference
    # in method, not an error, so the raw comparison is only bounded loosely.
    raw = np.median(np.linalg.norm(clip.linear_velocities(pos) - _arr(d["global_velocity"]), axis=-1))
    assert raw < 0.2 * np.median(np.linalg.norm(_arr(d["global_velocity"]), axis=-1))


def test_global_rotation_file_is_made_local(data_dir):
    """cmu_tpose.npy stores world rotations (is_local False): FK of the local rotations must give them back."""
    path = data_dir / AMP[0] / AMP[1] / "cmu_tpose.npy"
    d = _trusted(path)
    assert d["is_local"] is False
    clip = load_amp_npy(path, up="z")[0]
    assert clip.labels["length_unit"] == "cmu"
    want = _arr(d["rotation"])[:, [3, 0, 1, 2]]
    want /= np.linalg.norm(want, axis=-1, keepdims=True)
    dots = np.abs(np.sum(clip.world_rotations()[0] * want, axis=-1))
    assert np.allclose(dots, 1.0, atol=1e-9)
    # A standing T-pose, Z up, CMU units scaled to metres: about 1.5 m from toes to head.
    pos = clip.world_positions()[0]
    assert 1.3 < np.ptp(pos[:, 2]) < 1.9


def test_tpose_file_is_a_pose_relative_to_the_arms_down_rest(data_dir):
    """Poselib has no pre-rotations: identity rotations give local_translation's pose (AMP humanoid: arms hanging
    down), and the T-pose file holds rotations that lift the arms to shoulder height."""
    clip = load_amp_npy(data_dir / AMP[0] / AMP[1] / "amp_humanoid_tpose.npy")[0]
    sk = clip.skeleton
    hands = [sk.index("right_hand"), sk.index("left_hand")]
    shoulders = [sk.index("right_upper_arm"), sk.index("left_upper_arm")]
    rest = sk.rest_positions()
    assert (rest[hands, 2] < rest[shoulders, 2] - 0.4).all()
    pose = clip.world_positions()[0]
    assert np.allclose(pose[hands, 2], pose[shoulders, 2], atol=0.05)
    assert (np.abs(pose[hands, 1]) > 0.6).all()


def test_sniffers_tell_poselib_from_trajectories(data_dir, tmp_path):
    path = data_dir / AMP[0] / AMP[1] / "amp_humanoid_walk.npy"
    head = path.read_bytes()[:4096]
    assert sniff_amp_npy(path, head) and not sniff_npy_traj(path, head)
    plain = tmp_path / "traj.npy"
    np.save(plain, np.zeros((4, 12)))
    head = plain.read_bytes()[:4096]
    assert sniff_npy_traj(plain, head) and not sniff_amp_npy(plain, head)
    with pytest.raises(ParseError, match=r"traj\.npy: header: holds a plain float64 array"):
        load_amp_npy(plain)


class _Payload:
    """Unpickling this runs os.system (the classic pickle exploit)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.npy"
    np.save(evil, np.array({"rotation": _Payload(marker)}, dtype=object), allow_pickle=True)
    # The file really carries the exploit: its pickle stream names os.system (posix.system on Linux).
    raw = evil.read_bytes()
    stream = raw[raw.index(b"\n") + 1:]
    globals_named = {arg for op, arg, _ in pickletools.genops(stream) if op.name in ("GLOBAL", "STACK_GLOBAL")}
    assert any("system" in str(g) for g in globals_named) or b"system" in stream
    with pytest.raises(ParseError, match=r"evil\.npy: pickle: refused to unpickle (posix|os)\.system"):
        load_amp_npy(evil)
    assert not marker.exists()


def test_broken_files(data_dir, tmp_path):
    real = (data_dir / AMP[0] / AMP[1] / "amp_humanoid_run.npy").read_bytes()
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    with pytest.raises(ParseError, match=r"empty\.npy: file is empty"):
        load_amp_npy(empty)
    cut = tmp_path / "cut.npy"
    cut.write_bytes(real[: len(real) // 2])
    with pytest.raises(ParseError, match=r"cut\.npy: pickle: truncated or corrupt pickle"):
        load_amp_npy(cut)
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not numpy at all" * 10)
    with pytest.raises(ParseError, match=r"junk\.npy: header: not a numpy \.npy file"):
        load_amp_npy(junk)

    d = _trusted(data_dir / AMP[0] / AMP[1] / "amp_humanoid_run.npy")

    def save(name, edit):
        doc = pickle.loads(pickle.dumps(d))
        edit(doc)
        path = tmp_path / name
        np.save(path, np.array(doc, dtype=object), allow_pickle=True)
        return path

    with pytest.raises(ParseError, match=r"nosk\.npy: skeleton_tree: missing key 'skeleton_tree'"):
        load_amp_npy(save("nosk.npy", lambda doc: doc.pop("skeleton_tree")))
    with pytest.raises(ParseError, match=r"norot\.npy: rotation: missing key 'rotation'"):
        load_amp_npy(save("norot.npy", lambda doc: doc.pop("rotation")))

    def nan(doc):
        doc["rotation"]["arr"][17, 3, 1] = np.nan

    with pytest.raises(ParseError, match=r"nan\.npy: frame 17: rotation is not finite"):
        load_amp_npy(save("nan.npy", nan))

    def short(doc):
        doc["root_translation"]["arr"] = doc["root_translation"]["arr"][:-1]

    with pytest.raises(ParseError, match=r"short\.npy: rotation: .* do not fit 15 joints"):
        load_amp_npy(save("short.npy", short))
