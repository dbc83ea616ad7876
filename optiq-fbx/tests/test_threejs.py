"""three.js as a second independent reader of the FBX writer: real clips exported with ``optiq.save_clip``, loaded
by three.js's FBXLoader in Node and played with its AnimationMixer (``tests/js/fbx_positions.mjs``), give the same
world joint positions as optiq's forward kinematics, every joint, every frame.

Needs ``node`` and ``npm ci --prefix tests/js`` (``make setup`` runs it): missing, the tests skip, or fail when the
``CI`` environment variable is set."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import optiq
import pytest
from optiq.axes import axis_matrix
from optiq_fbx.writer import write_fbx

JS = Path(__file__).resolve().parents[2] / "tests" / "js"
SCRIPT = JS / "fbx_positions.mjs"

# (path under data_dir, first frame, stop frame or None, frames, joints, fps), each file's counts as it states them.
CLIPS = {
    "cmu_bvh": ("bvh/cmu_01_14_bvhtodeepmimic.bvh", 1200, 1320, 120, 31, 120.0),
    "deepmimic": ("deepmimic/humanoid3d_cartwheel.txt", 0, None, 164, 15, 60.0),
    "amp_npy": ("npy/amp/amp_humanoid_run.npy", 0, None, 82, 15, 60.0),
}
# FBXLoader turns a Z-up file's scene -90 degrees about X into three.js's Y up: (x, y, z) -> (x, z, -y).
THREE_FROM_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def node_and_three() -> str:
    """The ``node`` executable, after checking that ``tests/js/node_modules`` holds the ``three`` that
    ``package-lock.json`` pins; skips (or fails with ``CI`` set) when either is missing."""
    node = shutil.which("node")
    pinned = json.loads((JS / "package-lock.json").read_text())["packages"]["node_modules/three"]["version"]
    installed = JS / "node_modules" / "three" / "package.json"
    if node is None:
        problem = "node is not on PATH"
    elif not installed.is_file():
        problem = f"{installed.parent} is missing; run `npm ci --prefix tests/js`"
    elif (version := json.loads(installed.read_text())["version"]) != pinned:
        problem = f"tests/js/node_modules has three {version}, the lock pins {pinned}; run `npm ci --prefix tests/js`"
    else:
        return node
    if os.environ.get("CI"):
        pytest.fail(f"three.js check cannot run: {problem} (CI is set, so this is a failure)")
    pytest.skip(f"three.js check cannot run: {problem}")


def threejs_read(path: Path) -> dict:
    """fbx_positions.mjs's JSON for ``path``: bone names, fps, key times, unit, up axis and world positions
    ``frames[T][J] = [x, y, z]`` in three.js's world (file units, Y up)."""
    done = subprocess.run([node_and_three(), str(SCRIPT), str(path)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def optiq_positions(read: dict, clip: optiq.Clip) -> np.ndarray:
    """three.js's world positions ``[T, J, 3]`` in metres and optiq's Z-up axes, in the clip's joint order."""
    pos = np.asarray(read["frames"], dtype=np.float64)
    pos = pos[:, [read["bones"].index(n) for n in clip.skeleton.names]]
    metres = read["unit_scale_factor"] / 100.0  # FBX's UnitScaleFactor counts centimetres
    if read["up_axis"] == "z":  # undo three.js's turn: back to the file's axes, which are optiq's
        return metres * pos @ THREE_FROM_Z_UP
    return metres * pos @ axis_matrix("y").T


def extent(positions: np.ndarray) -> float:
    return float(np.ptp(positions.reshape(-1, 3), axis=0).max())


@pytest.fixture(scope="module", params=sorted(CLIPS))
def clip(request, data_dir) -> optiq.Clip:
    rel, start, stop, frames, joints, fps = CLIPS[request.param]
    clip = optiq.load_clip(data_dir / rel)
    clip = clip.slice(start, stop if stop is not None else clip.num_frames)
    assert (clip.num_frames, clip.num_joints, clip.fps) == (frames, joints, fps)
    return clip


def check_agreement(read: dict, clip: optiq.Clip, unit_scale: float, up: str) -> float:
    """Assert three.js read ``clip`` back; returns the worst position error over the motion's extent."""
    assert sorted(read["bones"]) == sorted(clip.skeleton.names)
    assert (read["unit_scale_factor"], read["up_axis"]) == (unit_scale, up)
    # Our writer keys every frame, so three.js's key times are the frames, at the clip's rate.
    assert len(read["frames"]) == clip.num_frames
    assert read["fps"] == pytest.approx(clip.fps, rel=1e-6)
    np.testing.assert_allclose(read["times"], np.arange(clip.num_frames) / clip.fps, rtol=0, atol=1e-6)
    ref = clip.world_positions()
    worst = float(np.abs(optiq_positions(read, clip) - ref).max()) / extent(ref)
    assert worst <= 1e-4, f"{clip.name}: three.js differs from optiq FK by {worst:.2e} of the motion extent"
    return worst


def test_threejs_reads_the_default_export(clip, tmp_path):
    """The default export (Y up, centimetres) through ``optiq.save_clip``."""
    path = tmp_path / f"{clip.name}.fbx"
    optiq.save_clip(clip, path)
    check_agreement(threejs_read(path), clip, unit_scale=1.0, up="y")


def test_threejs_reads_a_z_up_metres_export(data_dir, tmp_path):
    """Z up in metres: three.js reads UpAxis (and turns the scene) and UnitScaleFactor 100 from our header."""
    clip = optiq.load_clip(data_dir / CLIPS["deepmimic"][0])
    path = tmp_path / "zup.fbx"
    write_fbx(clip, path, up="z", unit="m")
    check_agreement(threejs_read(path), clip, unit_scale=100.0, up="z")
