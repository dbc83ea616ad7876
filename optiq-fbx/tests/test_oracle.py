"""Our FBX reader against ufbx (the C library, run in a forked child: see ufbx_oracle.py), on every file in
data/fbx: world joint positions within 1e-5 of the motion's extent and local rotations within 1e-3 degrees, every
frame and joint."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from optiq import quat
from optiq_fbx.loader import load_fbx

sys.path.insert(0, str(Path(__file__).parent))
import ufbx_oracle  # noqa: E402

FILES = ["01_01_cmu.fbx", "07_01_cmu.fbx", "08_02_cmu.fbx", "09_11_cmu.fbx", "assimp_huesitos.fbx",
         "ufbx_blender_293_barbarian_7400_binary.fbx", "ufbx_maya_anim_interpolation_7700_ascii.fbx",
         "ufbx_maya_anim_interpolation_7700_binary.fbx"]


@pytest.fixture(scope="session")
def fbx_results(data_dir):
    """Per file: (our clips, ufbx's oracle result), computed once per session."""
    cache = {}

    def get(name):
        if name not in cache:
            path = data_dir / "fbx" / name
            cache[name] = (load_fbx(path), ufbx_oracle.oracle_positions(path))
        return cache[name]

    return get


def test_every_data_file_is_covered(data_dir):
    assert sorted(p.name for p in (data_dir / "fbx").glob("*.fbx")) == sorted(FILES)


@pytest.mark.parametrize("name", FILES)
def test_world_positions_match_ufbx(fbx_results, name):
    clips, oracle = fbx_results(name)
    assert [c.labels["stack"] for c in clips] == list(oracle["stacks"])
    for clip in clips:
        expected, _ = ufbx_oracle.as_clip_motion(oracle, clip.labels["stack"], clip.skeleton)
        got = clip.world_positions()
        assert got.shape == expected.shape
        extent = float(np.ptp(expected.reshape(-1, 3), axis=0).max())
        err = np.abs(got - expected).max()
        assert err <= 1e-5 * max(extent, 1e-9), f"{name}: max error {err:.3g} m, extent {extent:.3g} m"


@pytest.mark.parametrize("name", FILES)
def test_local_rotations_match_ufbx(fbx_results, name):
    """ufbx's world rotations (polar part of its world matrices, in optiq axes) folded exactly as the Clip defines
    its rotations: world relative to the default pose, then relative to the parent joint."""
    clips, oracle = fbx_results(name)
    for clip in clips:
        _, expected = ufbx_oracle.as_clip_motion(oracle, clip.labels["stack"], clip.skeleton)
        err = np.degrees(quat.angle_between(clip.rotations, expected)).max()
        assert err <= 1e-3, f"{name}: max local rotation error {err:.3g} degrees"


def test_ascii_and_binary_interpolation_scene_agree(fbx_results):
    (a,), _ = fbx_results("ufbx_maya_anim_interpolation_7700_ascii.fbx")
    (b,), _ = fbx_results("ufbx_maya_anim_interpolation_7700_binary.fbx")
    assert a.num_frames == b.num_frames == 61
    np.testing.assert_array_equal(a.world_positions(), b.world_positions())
    np.testing.assert_array_equal(a.rotations, b.rotations)
