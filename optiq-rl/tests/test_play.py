"""``optiq rl play``: a reference motion on a character drawn by MuJoCo, no policy. One video frame per clip frame
at the clip's rate (counted by ffmpeg, the rate read back from the file), each frame the pose of its clip frame
(compared with MuJoCo drawing that pose itself), and bad input one line, exit 2, nothing written."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("optiq_viz")

SIZE = (160, 120)


@pytest.fixture(autouse=True)
def _backend_or_skip():
    if not (ctypes.util.find_library("EGL") or ctypes.util.find_library("OSMesa") or os.environ.get("DISPLAY")):
        pytest.skip("no OpenGL backend here (Debian: libegl1 or libosmesa6)")


@pytest.fixture(scope="module")
def walk(data_dir):
    return data_dir / "deepmimic" / "humanoid3d_walk.txt"


@pytest.fixture(scope="module")
def cmu_reference(data_dir, tmp_path_factory):
    """The CMU walk retargeted onto the DeepMimic humanoid (8 frames after the T-pose), as a reference dataset."""
    import optiq
    from optiq_rl import character
    from optiq_rl.jointmap import load_joint_map
    from optiq_rl.retarget import retarget_clip, write_reference

    clip = optiq.load_clip(data_dir / "bvh" / "cmu_12_01_walk_pybvh.bvh")
    ref = retarget_clip(clip, character("deepmimic"), load_joint_map("cmu_to_deepmimic"), frames=slice(1, 9))
    path = tmp_path_factory.mktemp("play") / "cmu_deepmimic.parquet"
    write_reference(path, [ref])
    return path, ref


def _play(*args):
    from optiq.cli.main import build_cli

    return CliRunner().invoke(build_cli(), ["rl", "play", "--size", f"{SIZE[0]}x{SIZE[1]}", *map(str, args)])


def _file_frames_and_fps(path) -> tuple[int, Fraction]:
    """ffmpeg's own frame count (decoding every frame) and the container's frame rate."""
    import imageio.v3 as iio
    import imageio_ffmpeg

    frames = imageio_ffmpeg.count_frames_and_secs(str(path))[0]
    return frames, Fraction(iio.immeta(path)["fps"]).limit_denominator(1001 * 1000)


def test_deepmimic_walk_is_frame_exact(walk, tmp_path):
    import optiq

    out = tmp_path / "walk.mp4"
    result = _play("--in", walk, "--frames", "0:12", "--out", out)
    assert result.exit_code == 0, result.output
    assert "12 frames at 30 fps" in result.stdout and "humanoid3d_walk on deepmimic" in result.stdout
    frames, fps = _file_frames_and_fps(out)
    clip = optiq.load_clip(walk)
    assert frames == 12 and fps == Fraction(clip.fps).limit_denominator(1000) == 30  # the file's 0.0333 s frames


def test_retargeted_reference_plays_at_its_rate(cmu_reference, tmp_path):
    path, ref = cmu_reference
    out = tmp_path / "cmu.mp4"
    result = _play("--in", path, "--out", out)  # the character comes from the clip's label (deepmimic)
    assert result.exit_code == 0, result.output
    frames, fps = _file_frames_and_fps(out)
    assert frames == ref.qpos.shape[0] == 8 and fps == 120  # CMU's 120 fps take, one frame per clip frame


def test_each_frame_is_its_pose(walk, tmp_path):
    """Decoded frame k is MuJoCo's own drawing of clip frame k (H.264 is lossy: nearest of the candidates)."""
    import imageio.v3 as iio
    import mujoco
    from optiq_rl.render import SceneRenderer, reference_qpos, travel_azimuth

    out = tmp_path / "walk.mp4"
    assert _play("--in", walk, "--frames", "0:30", "--out", out).exit_code == 0
    video = iio.imread(out).astype(np.float64)  # [30, H, W, 3]
    char, _, qpos = reference_qpos(walk)
    model, data = char.model(), None
    data = mujoco.MjData(model)
    scene = SceneRenderer(model, SIZE, int(char.body_ids()[0]), azimuth=travel_azimuth(qpos[:30]))
    drawn = []
    for row in qpos[[0, 10, 20]]:
        data.qpos[:] = row
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        drawn.append(scene.frame(data).astype(np.float64))
    scene.close()
    for k, image in zip((0, 10, 20), drawn, strict=True):
        errors = [np.abs(video[j] - image).mean() for j in (0, 10, 20)]
        assert int(np.argmin(errors)) == (0, 10, 20).index(k) and min(errors) < 2.0, errors
    assert video[0].std() > 5  # a drawn scene, not a blank frame


def test_reference_for_another_character_is_one_line(cmu_reference, data_dir, tmp_path):
    import gymnasium

    humanoid = os.path.join(os.path.dirname(gymnasium.__file__), "envs", "mujoco", "assets", "humanoid.xml")
    path, _ = cmu_reference
    out = tmp_path / "x.mp4"
    result = _play("--in", path, "--character", humanoid, "--out", out)
    assert result.exit_code == 2 and not out.exists() and not list(tmp_path.glob(".x.mp4*"))
    assert f"{path}: clip 'cmu_12_01_walk_pybvh' was retargeted onto character 'deepmimic'" in result.output
    # A clip of another skeleton played directly: the same, naming the file and the missing joints.
    result = _play("--in", data_dir / "deepmimic" / "humanoid3d_walk.txt", "--character", humanoid, "--out", out)
    assert result.exit_code == 2 and "does not fit character 'humanoid'" in result.output and not out.exists()


def test_no_backend_is_one_line(walk, tmp_path):
    out = tmp_path / "x.mp4"
    env = {**os.environ, "MUJOCO_GL": "bogus"}
    r = subprocess.run([sys.executable, "-m", "optiq", "rl", "play", "--in", str(walk), "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert r.stderr.startswith("optiq: error: ") and "libegl1" in r.stderr and not out.exists()
