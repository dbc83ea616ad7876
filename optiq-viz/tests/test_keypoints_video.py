"""``optiq viz video --keypoints kp.parquet --on-video run.mp4``: keypoints drawn over the video's own frames, on the
shared Pose2Sim demo video and its OpenPose JSON. Frame counts and rates are ffmpeg's reading of both files."""

from __future__ import annotations

import imageio_ffmpeg
import numpy as np
import optiq
import pytest
from click.testing import CliRunner
from optiq.cli.main import build_cli

FOLDER = "keypoints2d/pose2sim_demo_cam01_openpose_body25b_json"
VIDEO = "video/pose2sim_demo_singleperson_cam01.mp4"


def run(*args):
    return CliRunner().invoke(build_cli(), [str(a) for a in args])


def frames_at(path, wanted) -> dict[int, np.ndarray]:
    """Decoded RGB frames ``{t: [H, W, 3] int}`` of ``path`` at the frame numbers ``wanted``."""
    gen = imageio_ffmpeg.read_frames(str(path))
    w, h = next(gen)["size"]
    return {t: np.frombuffer(f, np.uint8).reshape(h, w, 3).astype(np.int16) for t, f in enumerate(gen) if t in wanted}


def rate_and_count(path) -> tuple[float, int]:
    gen = imageio_ffmpeg.read_frames(str(path))
    fps = next(gen)["fps"]
    gen.close()
    return fps, imageio_ffmpeg.count_frames_and_secs(str(path))[0]


@pytest.fixture(scope="module")
def preview(data_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("kpvideo")
    points = optiq.load_points(data_dir / FOLDER, video=str(data_dir / VIDEO))[0]
    optiq.write_dataset(d / "kp.parquet", [points])
    r = run("viz", "video", "--keypoints", d / "kp.parquet", "--on-video", data_dir / VIDEO, "--out", d / "p.mp4")
    assert r.exit_code == 0, r.output
    return d, points


def test_preview_has_the_videos_frames_and_rate(preview, data_dir):
    d, points = preview
    assert rate_and_count(d / "p.mp4") == rate_and_count(data_dir / VIDEO) == (60.0, 100)
    assert frames_at(d / "p.mp4", {0})[0].shape == (1920, 1080, 3)


def test_keypoints_are_drawn_where_they_are_and_nowhere_else(preview, data_dir):
    d, points = preview
    shown, original = frames_at(d / "p.mp4", {0, 50}), frames_at(data_dir / VIDEO, {0, 50})
    for t in (0, 50):
        diff = np.abs(shown[t] - original[t]).max(axis=2)
        sure = points.confidence[t] > 0.6
        x, y = np.floor(points.positions[t, sure]).astype(int).T
        assert sure.sum() >= 20 and (diff[y, x] > 20).all()
        # A patch of the floor ~300 px from every keypoint and limb: only codec noise (at most ~10 levels).
        assert np.hypot(*(points.positions[t, points.valid[t]] - [900, 1700]).T).min() > 300
        assert diff[1690:1711, 890:911].max() <= 15


def test_keypoints_of_another_length_are_refused(preview, data_dir, tmp_path):
    d, points = preview
    optiq.write_dataset(tmp_path / "short.parquet", [points[:50]])
    out = tmp_path / "p.mp4"
    r = run("viz", "video", "--keypoints", tmp_path / "short.parquet", "--on-video", data_dir / VIDEO, "--out", out)
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert "the video has 100 frames, the keypoints 50" in r.output and not out.exists()


def test_confidence_is_the_opacity():
    from optiq_viz.overlay import draw_keypoints

    frames = np.zeros((1, 64, 64, 3), np.uint8)
    positions = np.array([[[16.5, 32.5], [48.5, 32.5]]])
    draw_keypoints(frames, positions, np.array([[1.0, 0.5]]), np.zeros((0, 2), np.int64))
    # White dots over black: full confidence gives 255 at the dot's centre, half confidence half as much.
    assert frames[0, 32, 16].tolist() == [255, 255, 255]
    assert abs(int(frames[0, 32, 48, 0]) - 128) <= 1
    assert frames[0, 5:10, 5:10].max() == 0


def test_a_clip_is_drawn_beside_the_video(preview, data_dir):
    """``--in clip`` with --keypoints: the left half is the preview, frame for frame; the clip is drawn on the right.
    The clip here is the CMU walk taken at 60 fps for 100 frames (any clip of the video's length and rate)."""
    d, _ = preview
    walk = optiq.load_clip(data_dir / "bvh/cmu_12_01_walk_pybvh.bvh").slice(0, 200, 2)
    assert (walk.num_frames, walk.fps) == (100, 60.0)
    optiq.write_dataset(d / "walk.parquet", [walk])
    out = d / "beside.mp4"
    r = run("viz", "video", "--keypoints", d / "kp.parquet", "--on-video", data_dir / VIDEO, "--in",
            d / "walk.parquet", "--out", out)
    assert r.exit_code == 0 and "beside" in r.output, r.output
    assert rate_and_count(out) == (60.0, 100)
    both, alone = frames_at(out, {0, 99}), frames_at(d / "p.mp4", {0, 99})
    for t in (0, 99):
        assert both[t].shape == (1920, 2160, 3)
        # The left half is the preview (codec noise aside); the right half has the figure on its light background.
        assert np.abs(both[t][:, :1070] - alone[t][:, :1070]).mean() < 3
        right = both[t][:, 1090:]
        assert (np.abs(right - 248).max(axis=2) > 60).sum() > 2000


def test_a_clip_of_another_length_is_refused_beside(preview, data_dir, tmp_path):
    d, _ = preview
    walk = optiq.load_clip(data_dir / "bvh/cmu_12_01_walk_pybvh.bvh").slice(0, 100, 2)
    optiq.write_dataset(tmp_path / "walk.parquet", [walk])
    out = tmp_path / "beside.mp4"
    r = run("viz", "video", "--keypoints", d / "kp.parquet", "--on-video", data_dir / VIDEO, "--in",
            tmp_path / "walk.parquet", "--out", out)
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert "has 50 frames at 60 fps, the video 100 at 60" in r.output and not out.exists()
