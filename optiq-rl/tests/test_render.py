"""``optiq viz video --policy``: MuJoCo's offscreen renderer (registered by optiq-rl), one frame per control step
at the control rate (checked with ffmpeg's own count); no OpenGL backend: one line naming the package, exit 2."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner
from optiq_rl.train import RLConfig, train

pytest.importorskip("optiq_viz")


def _backend_or_skip():
    if not (ctypes.util.find_library("EGL") or ctypes.util.find_library("OSMesa") or os.environ.get("DISPLAY")):
        pytest.skip("no OpenGL backend here (Debian: libegl1 or libosmesa6)")


@pytest.fixture(scope="module")
def track_policy(tmp_path_factory, data_dir):
    walk = data_dir / "deepmimic" / "humanoid3d_walk.txt"
    cfg = RLConfig().updated({"env": "optiq/Track-v0", "env_kwargs.reference": str(walk), "total_steps": 64,
                              "algo_kwargs.n_steps": 64, "algo_kwargs.batch_size": 64, "algo_kwargs.n_epochs": 1,
                              "policy.net_arch": [16, 16], "tensorboard": False})
    return train(cfg, tmp_path_factory.mktemp("render") / "walk.zip").out


def _ffmpeg_count(path):
    import imageio_ffmpeg

    return imageio_ffmpeg.count_frames_and_secs(str(path))[0]


def test_video_is_frame_exact(track_policy, tmp_path):
    _backend_or_skip()
    from optiq.cli.main import build_cli

    out = tmp_path / "walk.mp4"
    result = CliRunner().invoke(build_cli(), ["viz", "video", "--policy", str(track_policy), "--steps", "12",
                                              "--size", "160x120", "--out", str(out)])
    assert result.exit_code == 0, result.output
    frames = int(result.stdout.split(": ")[1].split()[0])
    assert 1 <= frames <= 12 and _ffmpeg_count(out) == frames  # one frame per control step
    import imageio.v3 as iio

    meta = iio.immeta(out, plugin="pyav") if _has_av() else iio.immeta(out)
    assert Fraction(meta["fps"]).limit_denominator(1000) == 30  # the control rate of Track-v0
    image = iio.imread(out, index=0)
    assert image.shape == (120, 160, 3) and image.std() > 5  # a drawn scene, not a blank frame


def _has_av():
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def test_frames_follow_the_rollout_and_ghost(track_policy):
    """The renderer's frames: the ghost (the reference) adds pixels; a frame of the same state is the same."""
    _backend_or_skip()
    from optiq_rl.render import SceneRenderer, gl_backend
    from optiq_rl.train import load_policy

    gl_backend()
    import mujoco

    env = load_policy(track_policy).make_env()
    env.reset(seed=0)
    sim = env.unwrapped.sim
    scene = SceneRenderer(sim.model, (160, 120), sim.root_body)
    ghost = mujoco.MjData(sim.model)
    ghost.qpos[:] = sim.data.qpos
    ghost.qpos[1] += 0.5  # half a metre beside
    mujoco.mj_kinematics(sim.model, ghost)
    plain, again, with_ghost = scene.frame(sim.data), scene.frame(sim.data), scene.frame(sim.data, ghost)
    scene.close()
    env.close()
    assert np.array_equal(plain, again) and not np.array_equal(plain, with_ghost)


def _video_cli(policy, out, gl):
    env = {**os.environ, "MUJOCO_GL": gl}
    return subprocess.run([sys.executable, "-m", "optiq", "viz", "video", "--policy", str(policy), "--steps", "2",
                           "--size", "32x32", "--out", str(out)], capture_output=True, text=True, env=env,
                          timeout=300)


def test_no_backend_is_one_line(track_policy, tmp_path):
    out = tmp_path / "x.mp4"
    r = _video_cli(track_policy, out, "bogus")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert r.stderr.startswith("optiq: error: ") and "libegl1" in r.stderr and "libosmesa6" in r.stderr
    assert not out.exists() and not list(tmp_path.glob(".x.mp4.*"))
    if ctypes.util.find_library("OSMesa"):
        return
    r = _video_cli(track_policy, out, "osmesa")  # OSMesa's library is missing here: say which package has it
    assert r.returncode == 2 and "install Debian's libosmesa6" in r.stderr, r.stderr
    assert not out.exists()
