"""Video -> COCO-17 2D keypoints (optiq-video, MediaPipe Pose 0.10.14 in its own environment) on the shared
Pose2Sim demo video, checked against the OpenPose BODY_25B JSON of the same video (read with the committed
OpenPose loader, whose values optiq-core/tests/test_keypoints2d.py checks against the JSON itself).

Cross-package (core's convert CLI, optiq-video, the shared data), hence here. The tests that run the estimator
need its environment (`make setup` creates it): with CI set a missing one is a failure, elsewhere a skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import optiq
import pytest
from click.testing import CliRunner
from optiq.cli.main import build_cli
from optiq.errors import OptiqError
from optiq.keypoints import COCO17_NAMES

try:
    from optiq_video.estimator import estimator_python
    from optiq_video.extract import decode_command
    from optiq_video.landmarks import COCO17_FROM_MEDIAPIPE, MEDIAPIPE_POSE_NAMES
except ImportError:  # pragma: no cover - the extra is part of `make setup`
    if os.environ.get("CI"):
        raise
    pytest.skip("optiq-video is not installed (pip install -e ./optiq-video)", allow_module_level=True)

VIDEO = "video/pose2sim_demo_singleperson_cam01.mp4"
FOLDER = "keypoints2d/pose2sim_demo_cam01_openpose_body25b_json"
#: COCO-17's body points (shoulders to ankles): the face is blurred in the shared video, so its points are not
#: compared. BODY_25B's first 17 points are COCO-17's under the same names (optiq.keypoints).
BODY = COCO17_NAMES[5:]
#: OpenPose's lowest points of the body, for the subject's height in pixels.
FEET = ("left_ankle", "right_ankle", "left_heel", "right_heel", "left_big_toe", "right_big_toe",
        "left_small_toe", "right_small_toe")


@pytest.fixture(scope="session")
def estimator():
    """The estimator environment's Python: missing is a failure with CI set, a skip elsewhere."""
    try:
        return estimator_python()
    except OptiqError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI is set, so this is a failure; `make setup` creates it)")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def extracted(estimator, data_dir, tmp_path_factory):
    """The keypoints `optiq data convert --in VIDEO --out kp.parquet` writes, read back."""
    out = tmp_path_factory.mktemp("video") / "kp.parquet"
    r = CliRunner().invoke(build_cli(), ["data", "convert", "--in", str(data_dir / VIDEO), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "1 clips, 100 frames from 1 files" in r.output
    with optiq.open_dataset(out) as ds:
        return ds.read_points(0), out


@pytest.fixture(scope="module")
def openpose(data_dir):
    return optiq.load_points(data_dir / FOLDER, video=str(data_dir / VIDEO))[0]


def test_video_gives_coco17_keypoints_on_every_frame(extracted, data_dir):
    kp, out = extracted
    # The data README: 100 frames, 60 fps, 1080x1920 (a portrait phone video); OpenPose wrote one file per frame.
    assert len(list((data_dir / FOLDER).glob("*.json"))) == kp.num_frames == 100
    assert kp.fps == 60.0 and kp.image_size == (1080, 1920) and kp.unit == "px"
    assert kp.names == COCO17_NAMES and kp.positions.shape == (100, 17, 2)
    assert (kp.labels["format"], kp.labels["layout"]) == ("video", "coco17")
    assert "mediapipe==0.10.14" in kp.labels["estimator"]
    # One person, found in every frame; confidence is MediaPipe's visibility, a number in [0, 1].
    assert (kp.frame_labels["people"] == 1).all() and (kp.frame_labels["detection"] == 0).all()
    assert ((kp.confidence > 0) & (kp.confidence <= 1)).all()
    inside = (kp.positions >= 0) & (kp.positions < np.array(kp.image_size))
    assert inside.all()
    info = json.loads(CliRunner().invoke(build_cli(), ["data", "info", str(out), "--json"]).output)
    assert info["kind"] == "points" and info["clips"][0]["image_size"] == [1080, 1920]


def test_body_joints_within_4_percent_of_height_of_openpose(extracted, openpose):
    """Mean distance between MediaPipe's and OpenPose's body joints (same COCO names), over every frame and
    joint both have, as a fraction of the subject's height: per frame the vertical distance from OpenPose's
    head_top to its lowest foot point, median over the 100 frames (about 740 px)."""
    kp, _ = extracted
    mine = kp.positions[:, [kp.names.index(n) for n in BODY]]
    theirs = openpose.positions[:, [openpose.names.index(n) for n in BODY]]
    both = (kp.confidence[:, [kp.names.index(n) for n in BODY]] > 0) & \
           (openpose.confidence[:, [openpose.names.index(n) for n in BODY]] > 0)
    assert both.mean() > 0.99  # compared nearly everywhere: the bound cannot be met by finding nothing
    feet = openpose.positions[:, [openpose.names.index(n) for n in FEET], 1]
    head = openpose.positions[:, openpose.names.index("head_top"), 1]
    height = np.nanmedian(np.nanmax(feet, axis=1) - head)
    assert 600 < height < 900  # the subject fills about 40% of the 1920 px picture
    error = np.linalg.norm(mine - theirs, axis=2)[both].mean() / height
    assert error < 0.04, f"mean body-joint error {error:.2%} of the subject's height"


def first_frame(video, width, height) -> np.ndarray:
    """The first picture ``decode_command`` gives for ``video``, ``[height, width, 3]`` uint8."""
    proc = subprocess.Popen(decode_command(video), stdout=subprocess.PIPE)
    data = proc.stdout.read(width * height * 3)
    proc.kill()
    proc.wait()
    return np.frombuffer(data, np.uint8).reshape(height, width, 3)


def test_landmark_order_is_mediapipes_own(estimator):
    code = "from mediapipe.python.solutions.pose import PoseLandmark; print(' '.join(m.name for m in PoseLandmark))"
    names = subprocess.run([str(estimator), "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert tuple(n.lower() for n in names) == MEDIAPIPE_POSE_NAMES
    assert [MEDIAPIPE_POSE_NAMES[i] for i in COCO17_FROM_MEDIAPIPE] == list(COCO17_NAMES)


def test_frames_are_the_upright_picture_of_a_rotated_video(data_dir, tmp_path):
    import imageio_ffmpeg

    # The same stream with a 90 degree display rotation, as a phone writes it: the estimator must see the
    # picture turned by exactly that quarter turn (stream copy and rotation are both lossless).
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-display_rotation", "90", "-i",
                    str(data_dir / VIDEO), "-c", "copy", str(rotated)], check=True)
    upright = first_frame(data_dir / VIDEO, 1080, 1920)
    np.testing.assert_array_equal(first_frame(rotated, 1920, 1080), np.rot90(upright, 1))


def test_every_decoded_frame_once(estimator, data_dir, tmp_path):
    import imageio_ffmpeg
    from optiq_video.extract import load_video

    # The first 30 frames, stream-copied: ffmpeg's default constant-rate output would give 33 pictures (three
    # duplicated), one keypoint frame each; the keypoints must be the 30 frames and the shared video's first 30.
    short = tmp_path / "short.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(data_dir / VIDEO),
                    "-frames:v", "30", "-c", "copy", str(short)], check=True)
    kp = load_video(short)[0]
    assert kp.num_frames == 30 and kp.fps == 60.0
    np.testing.assert_array_equal(first_frame(short, 1080, 1920), first_frame(data_dir / VIDEO, 1080, 1920))


def _one_line(r, out, message):
    assert r.exit_code == 2, r.output
    assert r.output.count("\n") == 1 and r.output.startswith("optiq: error: ") and message in r.output, r.output
    assert not out.exists() and not list(out.parent.glob("*.parquet*"))


def test_a_file_ffmpeg_cannot_read_is_one_line(estimator, tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    out = tmp_path / "kp.parquet"
    r = CliRunner().invoke(build_cli(), ["data", "convert", "--in", str(fake), "--out", str(out)])
    _one_line(r, out, f"{fake}: ffmpeg cannot read {fake} as a video")


@pytest.mark.parametrize("flag", [["--unit", "cm"], ["--up", "z"], ["--scale", "2"]])
@pytest.mark.parametrize("source", [VIDEO, FOLDER])
def test_length_options_are_refused_for_pixels(data_dir, tmp_path, flag, source):
    out = tmp_path / "kp.parquet"
    args = ["data", "convert", "--in", str(data_dir / source), "--out", str(out), *flag, "--option", "fps=60"]
    r = CliRunner().invoke(build_cli(), args if source == FOLDER else args[:-2])
    loader = "openpose" if source == FOLDER else "video"
    _one_line(r, out, f"{data_dir / source}: {flag[0]} does not apply to its points (loader '{loader}'): they "
                      "are image pixels, with no length unit or up axis")


def test_without_the_extra_a_video_says_what_to_install(data_dir, tmp_path):
    out = tmp_path / "kp.parquet"
    env = {**os.environ, "OPTIQ_DISABLE_PLUGINS": "video"}
    r = subprocess.run([sys.executable, "-m", "optiq", "data", "convert", "--in", str(data_dir / VIDEO), "--out",
                        str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2
    assert r.stderr == f'optiq: error: {data_dir / VIDEO}: no loader for .mp4; install "optiq[video]"\n'
    assert not out.exists()


def test_without_the_estimator_environment_says_how_to_make_it(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("OPTIQ_VIDEO_PYTHON", str(tmp_path / "nothing" / "python"))
    out = tmp_path / "kp.parquet"
    r = CliRunner().invoke(build_cli(), ["data", "convert", "--in", str(data_dir / VIDEO), "--out", str(out)])
    _one_line(r, out, "no such Python; the pose estimator's environment is created by `python -m optiq_video.env`")


def test_an_estimator_that_fails_is_one_line(data_dir, tmp_path, monkeypatch):
    # A Python without mediapipe (this one, in `make setup`'s environment): the worker stops at its import.
    if importlib.util.find_spec("mediapipe") is not None:
        pytest.skip("this Python has mediapipe")
    monkeypatch.setenv("OPTIQ_VIDEO_PYTHON", sys.executable)
    out = tmp_path / "kp.parquet"
    r = CliRunner().invoke(build_cli(), ["data", "convert", "--in", str(data_dir / VIDEO), "--out", str(out)])
    _one_line(r, out, "stopped after 0 frames: ModuleNotFoundError: No module named 'mediapipe'")
