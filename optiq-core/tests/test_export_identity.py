"""Export -> load is the identity: for a real file of every loader, ``save_clip(clip, "x.bvh")`` then ``load_clip``
gives back the same joints in the same order, the same fps, the same up axis and the same world positions (so the
same length unit), and so does the JSON export.

Every loaded clip lists its joints in depth-first pre-order (``optiq.io.load``; docs/loaders.md, "Joint order"),
checked here against a depth-first walk of the parent indices written in plain Python.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import optiq
import pytest
from optiq.axes import length_scale
from optiq.loaders.bvh import load_bvh, rotation_orders
from optiq.loaders.common import snap_fps
from optiq.loaders.deepmimic import load_deepmimic
from test_npy_traj import _spec_and_rows  # the NPY trajectory file built from two real DeepMimic clips

HAS_FBX = importlib.util.find_spec("optiq_fbx") is not None

# One real file per loader, and every BVH dialect of data/bvh plus the two BVH corpora.
# DeepMimic, FBX and Blender-made clips list joints in an order that is not depth-first; cmu_tpose.npy is Z up;
# the CMU FBX files hold a rest skeleton that the BVH unit guess reads as millimetres (not their 0.01 m label).
FILES = [
    "bvh/bvhio_example.bvh",
    "bvh/cmu1_jumping_jacks.bvh",
    "bvh/cmu_02_01_bvhtodeepmimic.bvh",
    "bvh/cmu_131_01_start_walk_stop_maxfriendly.bvh",
    "bvh/fair1_jumping.bvh",
    "bvh/pybvh_test2_YXZ.bvh",
    "bvh/pymo_AV_8Walk_Meredith_HVHA_Rep1.bvh",
    "bvh/sfu_0005_Walking001.bvh",
    "corpora/bandai_namco/data/dataset-1_bow_active_001.bvh",
    "corpora/cmu_iclone/subjects/001/001_01.bvh",
    "asf_amc/cmu_02_01_walk.amc",
    "deepmimic/humanoid3d_walk.txt",
    "npy/amp/amp_humanoid_walk.npy",
    "npy/amp/cmu_tpose.npy",
    pytest.param("fbx/01_01_cmu.fbx", marks=pytest.mark.skipif(not HAS_FBX, reason="optiq_fbx not installed")),
    pytest.param("fbx/assimp_huesitos.fbx", marks=pytest.mark.skipif(not HAS_FBX, reason="optiq_fbx not installed")),
    pytest.param("fbx/ufbx_blender_293_barbarian_7400_binary.fbx",
                 marks=pytest.mark.skipif(not HAS_FBX, reason="optiq_fbx not installed")),
]


def depth_first_names(names, parents) -> tuple[str, ...]:
    """Names in depth-first pre-order from the root, children in their listed order (plain recursion)."""
    out: list[str] = []

    def visit(j: int) -> None:
        out.append(names[j])
        for k, p in enumerate(parents):
            if p == j:
                visit(k)

    visit(0)
    return tuple(out)


def load_quietly(path: Path, **options) -> optiq.Clip:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FBX notes and weak unit guesses are not what is tested here
        return optiq.load_clip(path, **options)


def assert_same_clip(back: optiq.Clip, clip: optiq.Clip) -> None:
    assert back.skeleton.names == clip.skeleton.names
    np.testing.assert_array_equal(back.skeleton.parents, clip.skeleton.parents)
    assert back.num_frames == clip.num_frames
    assert back.fps == clip.fps
    if "up" in clip.labels:
        assert back.labels["up"] == clip.labels["up"]
    np.testing.assert_allclose(back.world_positions(), clip.world_positions(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(back.skeleton.rest_positions(), clip.skeleton.rest_positions(), rtol=0, atol=1e-4)


def export_and_load(clip: optiq.Clip, path: Path) -> optiq.Clip:
    optiq.save_clip(clip, path)
    return load_quietly(path)


@pytest.mark.parametrize("name", FILES)
def test_bvh_export_loads_back_as_the_same_clip(data_dir, tmp_path, name):
    clip = load_quietly(data_dir / name)
    assert clip.skeleton.names == depth_first_names(clip.skeleton.names, clip.skeleton.parents.tolist())
    assert_same_clip(export_and_load(clip, tmp_path / "out.bvh"), clip)


@pytest.mark.parametrize("name", ["deepmimic/humanoid3d_walk.txt", "bvh/cmu_131_01_start_walk_stop_maxfriendly.bvh"])
def test_json_export_loads_back_as_the_same_clip(data_dir, tmp_path, name):
    clip = load_quietly(data_dir / name)
    back = export_and_load(clip, tmp_path / "out.json")
    assert_same_clip(back, clip)
    # And on to BVH: the JSON loader's clip exports as well.
    assert_same_clip(export_and_load(back, tmp_path / "again.bvh"), clip)


def test_npy_trajectory_export_loads_back(data_dir, tmp_path):
    spec, rows = _spec_and_rows(data_dir, "xyzw")
    np.save(tmp_path / "walk_run.npy", rows)
    (tmp_path / "walk_run.spec.json").write_text(json.dumps(spec))
    clips = optiq.load(tmp_path / "walk_run.npy")
    assert len(clips) == 2
    for k, clip in enumerate(clips):
        assert clip.skeleton.names == depth_first_names(spec["skeleton"]["names"], spec["skeleton"]["parents"])
        assert_same_clip(export_and_load(clip, tmp_path / f"clip{k}.bvh"), clip)


def test_the_unit_written_is_the_label_when_it_reads_back(data_dir, tmp_path):
    """A CMU-unit BVH is written in CMU units again (bit-exact offsets), an SFU one in inches."""
    for name, unit in [("cmu_02_01_bvhtodeepmimic.bvh", "cmu"), ("sfu_0005_Walking001.bvh", "inch")]:
        src = data_dir / "bvh" / name
        clip = load_quietly(src)
        optiq.save_clip(clip, tmp_path / name)
        back = load_bvh(tmp_path / name)[0]
        assert back.labels["length_unit"] == unit
        first = lambda p: next(ln for ln in p.read_text().splitlines() if "OFFSET" in ln).split()  # noqa: E731
        np.testing.assert_allclose(np.array(first(tmp_path / name)[1:], float), np.array(first(src)[1:], float),
                                   atol=1e-6)


def test_an_fbx_clip_comes_back_at_its_own_size(data_dir, tmp_path):
    """The reported case: an FBX clip (label 0.01 m) exported to BVH came back 10x smaller; its rest skeleton
    reads as millimetres to the BVH unit guess, so the writer writes millimetres."""
    pytest.importorskip("optiq_fbx")
    clip = load_quietly(data_dir / "fbx" / "07_01_cmu.fbx")
    back = export_and_load(clip, tmp_path / "walk.bvh")
    height = np.ptp(clip.world_positions()[..., 2])
    assert np.ptp(back.world_positions()[..., 2]) == pytest.approx(height, rel=1e-6)
    assert length_scale(back.labels["length_unit"])[0] == pytest.approx(0.001)


def test_frame_time_gives_back_the_exact_rate(tmp_path, data_dir):
    """Rates as loaders give them (whole, NTSC N*1000/1001 as snap_fps computes it, or any other) come back
    exactly, where eight decimals of Frame Time alone (``0.00834167``) would not for most of them."""
    clip = load_quietly(data_dir / "bvh" / "cmu1_jumping_jacks.bvh")
    for fps in (30.0, 120.0, snap_fps(120000 / 1001), snap_fps(24000 / 1001), 47.3, 37.5, 100.0 / 3.0, 29.5):
        back = export_and_load(clip.replace(fps=fps), tmp_path / "rate.bvh")
        assert back.fps == fps


def test_depth_first_reorders_everything_and_keeps_labels(data_dir):
    """A BVH clip (mixed per-joint Euler orders, end sites) listed breadth-first, then back to depth-first, is the
    clip it started as; already depth-first, the clip itself is returned."""
    clip = load_bvh(data_dir / "bvh" / "cmu_131_01_start_walk_stop_maxfriendly.bvh")[0]
    clip = clip.with_labels(frame_labels={"frame": np.arange(clip.num_frames)})
    assert clip.depth_first() is clip
    sk = clip.skeleton
    depth = [0] * sk.num_joints
    for j in range(1, sk.num_joints):
        depth[j] = depth[sk.parents[j]] + 1
    breadth_first = sorted(range(sk.num_joints), key=lambda j: (depth[j], j))
    moved = clip.with_joint_order([sk.names[j] for j in breadth_first])
    assert moved.skeleton.names != sk.names
    assert rotation_orders(moved) == [rotation_orders(clip)[j] for j in breadth_first]
    back = moved.depth_first()
    assert back.skeleton.names == sk.names
    np.testing.assert_array_equal(back.skeleton.parents, sk.parents)
    np.testing.assert_array_equal(back.skeleton.offsets, sk.offsets)
    assert back.skeleton.end_sites.keys() == sk.end_sites.keys()
    for j, off in sk.end_sites.items():
        np.testing.assert_array_equal(back.skeleton.end_sites[j], off)
    np.testing.assert_array_equal(back.rotations, clip.rotations)
    np.testing.assert_array_equal(back.frame_labels["frame"], clip.frame_labels["frame"])
    assert back.labels == clip.labels


def test_depth_first_moves_local_translations(data_dir):
    """DeepMimic lists joints out of depth-first order; a clip with per-frame local translations keeps each
    joint's own translations through the reorder, and its world positions per joint name."""
    clip = load_deepmimic(data_dir / "deepmimic" / "humanoid3d_walk.txt")[0]
    clip = clip.replace(local_translations=clip.local_offsets() * 1.1)
    back = clip.depth_first()
    idx = [clip.skeleton.index(n) for n in back.skeleton.names]
    np.testing.assert_array_equal(back.local_translations, clip.local_translations[:, idx])
    np.testing.assert_allclose(back.world_positions(), clip.world_positions()[:, idx], atol=1e-12)


def test_a_unit_the_reader_never_guesses_falls_back_to_centimetres(data_dir, tmp_path):
    """Feet are no candidate of the reader's unit guess, so a clip labelled ft is written in the next unit that
    reads back (cm), in its labelled up axis (Z), and loads back at its own size."""
    clip = load_quietly(data_dir / "bvh" / "cmu_02_01_bvhtodeepmimic.bvh").with_labels({"length_unit": "ft", "up": "z"})
    back = export_and_load(clip, tmp_path / "walk.bvh")
    assert (back.labels["length_unit"], back.labels["up"]) == ("cm", "z")
    np.testing.assert_allclose(back.world_positions(), clip.world_positions(), atol=1e-5)
