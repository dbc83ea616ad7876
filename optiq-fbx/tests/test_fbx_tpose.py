"""drop_tpose on FBX: the CMU takes start with one T-pose frame (arms out sideways at shoulder height) before the
capture; io.load drops it with optiq.tpose's rule, as it does for BVH."""

from __future__ import annotations

import numpy as np
import optiq
import pytest


def _speeds(clip: optiq.Clip) -> np.ndarray:
    """Fastest joint per frame step ``[T-1]``, in body heights per second (the loader's length unit drops out)."""
    height = np.ptp(clip.skeleton.rest_positions(), axis=0).max()
    return np.linalg.norm(np.diff(clip.world_positions(), axis=0), axis=-1).max(axis=1) * clip.fps / height


def _arm_span(clip: optiq.Clip, frame: int) -> float:
    """Hand-to-hand distance at ``frame`` over the rest skeleton's height."""
    p = clip.world_positions()[frame]
    names = clip.skeleton.names
    height = np.ptp(clip.skeleton.rest_positions(), axis=0).max()
    return float(np.linalg.norm(p[names.index("LeftHand")] - p[names.index("RightHand")]) / height)


@pytest.mark.parametrize("name", ["01_01_cmu.fbx", "07_01_cmu.fbx", "08_02_cmu.fbx", "09_11_cmu.fbx"])
def test_cmu_takes_lose_their_leading_tpose(data_dir, name):
    path = data_dir / "fbx" / name
    (clip,) = optiq.load(path)
    (dropped,) = optiq.load(path, drop_tpose=True)
    assert dropped.num_frames == clip.num_frames - 1 and dropped.labels["dropped_tpose"] == "1"
    np.testing.assert_array_equal(dropped.world_positions(), clip.world_positions()[1:])
    # The dropped frame is a T-pose: the hands about one body height apart (measured: 0.89-0.92), the first
    # captured frame is not (0.25-0.42).
    assert _arm_span(clip, 0) > 0.8 and _arm_span(dropped, 0) < 0.6
    # Frame 0 -> 1 was a jump: the fastest joint at 55-65 body heights per second (01_01: 55, that is 1459
    # file-metres/s), against a median of 0.8-4.3 over the take; the new frame 0 moves like the capture
    # (0.1-3.6, walks and runs start mid-stride: at most 1.1 times the median).
    assert _speeds(clip)[0] > 30
    assert _speeds(dropped)[0] < 1.5 * np.median(_speeds(dropped))


def test_01_01_new_first_frame_is_slow(data_dir):
    """01_01 (2752 frames = the 2751 frames of CMU's take plus the template): after the drop, the fastest joint
    at frame 0 moves at 0.096 body heights per second, 0.12 of the take's median step."""
    (dropped,) = optiq.load(data_dir / "fbx" / "01_01_cmu.fbx", drop_tpose=True)
    assert dropped.num_frames == 2751
    speed = _speeds(dropped)
    assert speed[0] < 0.15 and speed[0] < 0.2 * np.median(speed)


@pytest.mark.parametrize("name", ["assimp_huesitos.fbx", "ufbx_blender_293_barbarian_7400_binary.fbx",
                                  "ufbx_maya_anim_interpolation_7700_binary.fbx"])
def test_clips_without_a_tpose_keep_every_frame(data_dir, name):
    (clip,) = optiq.load(data_dir / "fbx" / name, drop_tpose=True)
    assert clip.num_frames == {"assimp_huesitos.fbx": 40, "ufbx_blender_293_barbarian_7400_binary.fbx": 63,
                               "ufbx_maya_anim_interpolation_7700_binary.fbx": 61}[name]
    assert "dropped_tpose" not in clip.labels
