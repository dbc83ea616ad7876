"""drop_tpose for every loader: optiq.tpose's rule, applied by io.load to loaders that do not take the option
(DeepMimic, plugins) and by the BVH reader itself, with the same result."""

from __future__ import annotations

import sys
import types

import numpy as np
import optiq
import pytest
from optiq.loaders.bvh import load_bvh
from optiq.tpose import drop_leading_tpose, has_leading_tpose


@pytest.fixture
def strict_plugin(monkeypatch):
    """A ``module:attr`` loader that takes the path and nothing else (no ``**options``), as a plugin may: it
    reads BVH without any T-pose handling of its own."""
    module = types.ModuleType("tpose_test_plugin")

    def load(path):
        return load_bvh(path)

    module.load = load
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return f"{module.__name__}:load"


def test_a_loader_without_the_option_gets_the_bvh_result(data_dir, strict_plugin):
    """CMU 02_01 (the data README: 344 frames, frame 0 a T-pose): through a loader that does not know
    drop_tpose, io.load drops the same frame the BVH reader drops, and passes nothing the loader cannot take."""
    path = data_dir / "bvh" / "cmu_02_01_bvhtodeepmimic.bvh"
    (generic,) = optiq.load(path, strict_plugin, drop_tpose=True)
    own = load_bvh(path, drop_tpose=True)[0]
    assert generic.num_frames == own.num_frames == 343
    assert generic.labels["dropped_tpose"] == "1"
    np.testing.assert_array_equal(generic.rotations, own.rotations)
    np.testing.assert_array_equal(generic.root_translation, own.root_translation)
    assert optiq.load(path, strict_plugin)[0].num_frames == 344


def test_deepmimic_walk_keeps_every_frame(data_dir):
    """A looped DeepMimic walk has no template frame: all 39 frames (the file's Frames list) stay."""
    path = data_dir / "deepmimic" / "humanoid3d_walk.txt"
    (clip,) = optiq.load(path, drop_tpose=True)
    assert clip.num_frames == 39 and "dropped_tpose" not in clip.labels


@pytest.mark.parametrize("take", ["001/001_01.bvh", "002/002_01.bvh", "003/003_02.bvh", "005/005_13.bvh"])
def test_iclone_takes_have_no_template_frame_to_drop(data_dir, take):
    """The iClone CMU takes here: their README says frame 0 is an added T-pose, but these files hold as many
    frames as cmu_index.csv's "Frames 60fps" lists for the capture alone, and frame 0 -> 1 moves the joints no
    faster than the capture does: drop_tpose keeps every frame."""
    path = data_dir / "corpora" / "cmu_iclone" / "subjects" / take
    (clip,) = optiq.load(path, drop_tpose=True)
    subject, trial = (int(x) for x in path.stem.split("_"))
    rows = (data_dir / "corpora" / "cmu_iclone" / "cmu_index.csv").read_text().splitlines()
    listed = next(int(r.split(",")[-3]) for r in rows[1:] if r.startswith(f"{subject},{trial},"))
    assert clip.num_frames == listed and "dropped_tpose" not in clip.labels
    speed = np.linalg.norm(np.diff(clip.world_positions(), axis=0), axis=-1).max(axis=1)  # [T-1] fastest joint
    assert speed[0] <= np.percentile(speed, 95)


def test_short_or_still_clips_are_kept():
    rest = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (2, 3, 1))
    assert not has_leading_tpose(rest)  # two frames: nothing to compare the first step with
    assert not has_leading_tpose(np.tile(rest[:1], (10, 1, 1)))  # no motion at all


def test_drop_leading_tpose_returns_the_clip_itself_when_there_is_none(data_dir):
    clip = optiq.load_clip(data_dir / "deepmimic" / "humanoid3d_walk.txt")
    assert drop_leading_tpose(clip) is clip
