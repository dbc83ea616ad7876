"""Frame-exact MP4 videos of real clips: frame counts and rates read back from the MP4's own tables (a box
parser written here, independent of ffmpeg) and from ffmpeg decoding the file; pixels decoded back."""

from __future__ import annotations

import os
import re
import resource
import struct
import subprocess
import sys
from fractions import Fraction

import imageio_ffmpeg
import numpy as np
import optiq
import pytest
from click.testing import CliRunner
from optiq.cli.main import build_cli
from optiq.datasets import write_dataset
from optiq_viz import raster
from optiq_viz.video import PALETTE, exact_fps, render_frames, render_video

BLUE, ORANGE = PALETTE[0], PALETTE[1]
SMALL = (160, 120)


def run(*args):
    return CliRunner().invoke(build_cli(), [str(a) for a in args])


def mp4_tables(path) -> tuple[int, Fraction]:
    """Sample count and frame rate of the MP4's video track from its boxes: mdhd's timescale over stts's one
    sample delta (a constant frame rate has exactly one stts entry)."""
    data = path.read_bytes()

    def boxes(start, end):
        while start < end:
            size, kind = struct.unpack(">I4s", data[start:start + 8])
            head = 8
            if size == 1:
                size, head = struct.unpack(">Q", data[start + 8:start + 16])[0], 16
            yield kind.decode(), start + head, start + size
            start += size

    def find(start, end, *path):
        for kind, body, stop in boxes(start, end):
            if kind == path[0]:
                return (body, stop) if len(path) == 1 else find(body, stop, *path[1:])
        raise AssertionError(f"no {path[0]} box")

    for kind, body, stop in boxes(*find(0, len(data), "moov")):
        if kind != "trak":
            continue
        hdlr, _ = find(body, stop, "mdia", "hdlr")
        if data[hdlr + 8:hdlr + 12] != b"vide":
            continue
        mdhd, _ = find(body, stop, "mdia", "mdhd")
        version = data[mdhd]
        timescale = struct.unpack(">I", data[mdhd + (20 if version else 12):][:4])[0]
        stts, _ = find(body, stop, "mdia", "minf", "stbl", "stts")
        entries = struct.unpack(">I", data[stts + 4:stts + 8])[0]
        table = [struct.unpack(">II", data[stts + 8 + 8 * i:stts + 16 + 8 * i]) for i in range(entries)]
        assert len(table) == 1, f"frame durations vary: {table}"
        count, delta = table[0]
        return count, Fraction(timescale, delta)
    raise AssertionError("no video track")


def ffmpeg_view(path) -> tuple[int, str]:
    """Frames ffmpeg decodes from the file, and the rate its stream line states (``119.88 fps``)."""
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    info = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                          capture_output=True, text=True).stderr
    stream = re.search(r"Video: h264.*yuv420p.*?, (\d+)x(\d+).*?, ([\d.]+) fps", info)
    assert stream, info
    return frames, stream.group(3)


def decode(path) -> np.ndarray:
    gen = imageio_ffmpeg.read_frames(str(path))
    meta = gen.__next__()
    w, h = meta["size"]
    return np.stack([np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in gen])


def near(frames: np.ndarray, color, tol: int = 40) -> np.ndarray:
    """Pixels within ``tol`` (per channel) of ``color``: [..., H, W] bool."""
    return (np.abs(frames.astype(np.int16) - np.asarray(color, np.int16)) <= tol).all(axis=-1)


def assert_exact(path, frames: int, fps: Fraction, fps_text: str) -> None:
    assert mp4_tables(path) == (frames, fps)
    assert ffmpeg_view(path) == (frames, fps_text)


@pytest.fixture(scope="module")
def cmu(data_dir):
    """CMU 02_01 frames 1-120 (frame 0 is a T-pose): 120 frames at 120 fps."""
    return optiq.load(data_dir / "bvh" / "cmu_02_01_bvhtodeepmimic.bvh")[0][1:121].replace(name="walk")


@pytest.fixture(scope="module")
def cmu_files(cmu, tmp_path_factory):
    """A dataset holding the walk, and a prediction of it (root shifted 0.4 m sideways) as a BVH file."""
    d = tmp_path_factory.mktemp("video")
    write_dataset(d / "ds.parquet", [cmu])
    pred = cmu.replace(root_translation=cmu.root_translation + [0.0, 0.4, 0.0], name="walk")
    optiq.save_clip(pred, d / "pred.bvh")
    return d / "ds.parquet", d / "pred.bvh"


def test_bvh_clip_through_the_cli_is_frame_exact_and_moves(cmu_files, tmp_path):
    ds, _ = cmu_files
    out = tmp_path / "walk.mp4"
    r = run("viz", "video", "--dataset", ds, "--clip", "walk", "--out", out, "--size", "320x240")
    assert r.exit_code == 0, r.output
    assert "120 frames at 120 fps" in r.stdout
    assert_exact(out, 120, Fraction(120), "120")
    video = decode(out)
    assert video.shape == (120, 240, 320, 3)
    skeleton = near(video, BLUE).sum(axis=(1, 2))
    assert (skeleton > 150).all(), skeleton.min()  # the figure is drawn in every frame
    # The walk moves: the figure's pixels differ between frames a quarter of a second apart.
    for a, b in ((0, 30), (30, 60), (60, 119)):
        moved = near(video[a], BLUE) ^ near(video[b], BLUE)
        assert moved.sum() > 100


def test_ntsc_rate_fair1_is_exact_rational(data_dir, tmp_path):
    clip = optiq.load(data_dir / "bvh" / "fair1_jumping.bvh")[0][200:260]
    assert exact_fps(clip.fps) == Fraction(120000, 1001)
    video = render_video(clip, tmp_path / "fair1.mp4", size=SMALL)
    assert (video.frames, video.fps) == (60, Fraction(120000, 1001))
    assert_exact(video.path, 60, Fraction(120000, 1001), "119.88")


def test_deepmimic_clip_at_30_fps_follow_camera(data_dir, tmp_path):
    clip = optiq.load(data_dir / "deepmimic" / "humanoid3d_walk.txt")[0]
    frames = len(re.findall(r"^\s*\[\s*[-\d]", (data_dir / "deepmimic" / "humanoid3d_walk.txt").read_text(), re.M))
    assert clip.num_frames == frames == 39
    out = render_video(clip, tmp_path / "dm.mp4", size=SMALL, camera="follow").path
    assert_exact(out, 39, Fraction(30), "30")
    video = decode(out)
    assert (near(video, BLUE).sum(axis=(1, 2)) > 50).all()
    assert (video[0] != video[20]).any(axis=-1).sum() > 50


def test_fps_option_resamples_first(cmu_files, tmp_path):
    ds, _ = cmu_files
    out = tmp_path / "w30.mp4"
    r = run("viz", "video", "--dataset", ds, "--clip", "walk", "--out", out, "--fps", "30", "--size", "160x120")
    assert r.exit_code == 0, r.output
    # 120 frames at 120 fps span 119/120 s; at 30 fps that holds frames at 0, 1/30, ... 29/30 s: 30 frames.
    assert_exact(out, 30, Fraction(30), "30")


def test_prediction_overlay_and_side_by_side(cmu_files, tmp_path):
    ds, pred = cmu_files
    for layout in ("overlay", "side-by-side"):
        out = tmp_path / f"{layout}.mp4"
        r = run("viz", "video", "--dataset", ds, "--clip", "walk", "--pred", pred, "--out", out,
                "--size", "320x160", "--layout", layout)
        assert r.exit_code == 0, r.output
        assert_exact(out, 120, Fraction(120), "120")
        video = decode(out)[::20]
        assert video.shape[1:] == (160, 320, 3)  # --size is the whole video; panels split its width
        blue, orange = near(video, BLUE).sum(axis=(0, 1)), near(video, ORANGE).sum(axis=(0, 1))  # per column
        assert blue.sum() > 500 and orange.sum() > 500
        if layout == "side-by-side":
            # Ground truth only in the left panel, prediction only in the right one.
            assert blue[160:].sum() == 0 and orange[:160].sum() == 0


def test_two_clips_are_overlaid_with_one_camera(cmu, data_dir, tmp_path):
    """``--clip A --clip B`` draws both: A (40 frames) in blue, B (60 frames) in orange; the video is as long as
    B, and A holds its last pose once it has ended."""
    other = optiq.load(data_dir / "bvh" / "cmu_12_01_walk_pybvh.bvh")[0][1:61].replace(name="other")
    assert other.fps == cmu.fps == 120
    write_dataset(tmp_path / "two.parquet", [cmu[:40], other])
    for layout in ("overlay", "side-by-side"):
        out = tmp_path / f"{layout}.mp4"
        r = run("viz", "video", "--in", tmp_path / "two.parquet", "--clip", "walk", "--clip", "other",
                "--out", out, "--size", "320x160", "--layout", layout)
        assert r.exit_code == 0, r.output
        assert r.stdout.rstrip().endswith("; walk, other")
        assert_exact(out, 60, Fraction(120), "120")
        video = decode(out)
        blue, orange = near(video, BLUE), near(video, ORANGE)
        assert (blue.sum(axis=(1, 2)) > 50).all() and (orange.sum(axis=(1, 2)) > 50).all()
        if layout == "side-by-side":
            assert blue[:, :, 160:].sum() == 0 and orange[:, :, :160].sum() == 0
    # After its 40 frames the first clip holds its last pose while the second walks on (exact frames, before
    # H.264): the left panel stays the same, the right one changes.
    frames = render_frames([cmu[:40], other], size=(320, 160), layout="side-by-side")
    assert (frames[39:, :, :160] == frames[39, :, :160]).all() and (frames[38, :, :160] != frames[39, :, :160]).any()
    assert (near(frames[45], ORANGE, 10) != near(frames[59], ORANGE, 10)).sum() > 100
    # One camera for both: the blue figure of the overlay is framed for both clips, not as a video of A alone.
    alone = render_frames(cmu[:40], size=(320, 160))
    both = render_frames([cmu[:40], other], size=(320, 160))
    assert (near(alone[0], BLUE, 10) != near(both[0], BLUE, 10)).any()


def test_motion_file_drawn_directly(data_dir, tmp_path):
    src = data_dir / "deepmimic" / "humanoid3d_walk.txt"
    frames = len(re.findall(r"^\s*\[\s*[-\d]", src.read_text(), re.M))  # one JSON row per frame
    out = tmp_path / "walk.mp4"
    r = run("viz", "video", "--in", src, "--out", out, "--size", "160x120")
    assert r.exit_code == 0, r.output
    assert_exact(out, frames, Fraction(30), "30")
    assert (near(decode(out), BLUE).sum(axis=(1, 2)) > 20).all()


@pytest.mark.parametrize("path", ["asf_amc/cmu_02_01_walk.amc", "npy/amp/amp_humanoid_run.npy",
                                  "bvh/cmu1_jumping_jacks.bvh", "deepmimic/humanoid3d_backflip.txt",
                                  "fbx/08_02_cmu.fbx"])
def test_every_loader_renders(data_dir, path):
    if path.endswith(".fbx"):
        pytest.importorskip("optiq_fbx.loader")
    clip = optiq.load(data_dir / path)[0]
    clip = clip[: min(clip.num_frames, 40)]
    frames = render_frames(clip, size=SMALL, camera="follow")
    assert frames.shape == (clip.num_frames, 120, 160, 3)
    drawn = near(frames, BLUE, tol=10).sum(axis=(1, 2))
    assert (drawn > 20).all(), drawn.min()
    assert (frames[0] != frames[-1]).any()


def test_bad_input_exits_2_with_one_line_and_no_file(cmu_files, data_dir, tmp_path, cli_error):
    ds, _ = cmu_files
    out = tmp_path / "x.mp4"
    full = data_dir / "bvh" / "cmu_02_01_bvhtodeepmimic.bvh"  # 344 frames, the dataset's clip has 120
    src = full.read_text()
    empty = tmp_path / "empty.bvh"
    empty.write_text(src[:src.index("Frames:")] + "Frames: 0\nFrame Time: 0.008333\n")
    cases = {
        "unknown clip 'nope'": ["--clip", "nope"],
        "120": ["--clip", "walk", "--pred", full],
        "joint": ["--clip", "walk", "--pred", data_dir / "deepmimic" / "humanoid3d_walk.txt"],
        "no frames": ["--clip", "walk", "--pred", empty],
        "even numbers": ["--clip", "walk", "--size", "641x480"],
        "WIDTHxHEIGHT": ["--clip", "walk", "--size", "big"],
    }
    for expected, args in cases.items():
        line = cli_error("viz", "video", "--dataset", ds, "--out", out, *args)
        assert expected in line, (expected, line)
    line = cli_error("viz", "video", "--dataset", ds, "--clip", "walk", "--out", tmp_path / "no" / "x.mp4")
    assert "does not exist" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.bvh"]


def test_failing_ffmpeg_leaves_nothing(cmu, tmp_path):
    """No file, and no open pipe to the dead ffmpeg (the traceback held in ``info`` keeps the Popen alive)."""
    out = tmp_path / "x.mp4"
    fds = set(os.listdir("/proc/self/fd"))
    with pytest.raises(optiq.OptiqError, match="ffmpeg failed") as info:
        # 40 MB of frames: ffmpeg exits before reading them all, so the pipe breaks.
        render_video(cmu[:45], out, size=(640, 480), crf=-5)  # libx264's crf option starts at -1
    assert str(info.value).startswith(f"{out}: ffmpeg failed (exit status ")
    assert list(tmp_path.iterdir()) == []
    assert set(os.listdir("/proc/self/fd")) <= fds


def test_full_disk_is_one_line_and_keeps_the_old_video(cmu_files, tmp_path):
    """A real file size limit (RLIMIT_FSIZE 30 kB; the video is 116 kB): ffmpeg is killed by SIGXFSZ
    (subprocess restores its default action in ffmpeg) mid-write. One line, the old video intact, no part."""
    ds, _ = cmu_files
    out = tmp_path / "walk.mp4"
    out.write_bytes(b"the old video")

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))

    proc = subprocess.run([sys.executable, "-c", "from optiq.cli.main import main; main()", "viz", "video",
                           "--in", str(ds), "--out", str(out)], capture_output=True, text=True, preexec_fn=limit,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"optiq: error: no space left on device writing {out}"
    assert out.read_bytes() == b"the old video" and [p.name for p in tmp_path.iterdir()] == ["walk.mp4"]


def test_segment_coverage_matches_its_area():
    """A horizontal anti-aliased segment of half-width r covers about its area, 2 r L + pi r^2, with full
    coverage on its centre line and none beyond its edge."""
    canvas = raster.Canvas(1, 60, 100, max_radius=3.0)
    canvas.segments(np.array([[20.0, 30.0]]), np.array([[80.0, 30.0]]), np.array([0]), 3.0)
    cov = canvas.coverage[0]
    assert cov.sum() == pytest.approx(2 * 3 * 60 + np.pi * 9, rel=0.03)
    assert (cov[29:31, 20:80] == 1).all() and cov[:25].sum() == 0 and cov[35:].sum() == 0
    # Off-panel parts are clipped away; a segment entirely outside draws nothing.
    canvas.segments(np.array([[-500.0, 10.0], [0.0, -50.0]]), np.array([[500.0, 10.0], [90.0, -40.0]]),
                    np.array([0, 0]), 1.0)
    assert (canvas.coverage[0, 9:11] == 1).all() and canvas.coverage[0, 0:8].sum() == 0


def test_progress_bar_only_when_asked(cmu, tmp_path, capsys):
    """progress=True shows a tqdm bar on stderr sized to the clip's frames; by default nothing."""
    short = cmu[:24]
    render_video(short, tmp_path / "quiet.mp4", size=(64, 48))
    assert capsys.readouterr().err == ""
    render_video(short, tmp_path / "bar.mp4", size=(64, 48), progress=True)
    err = capsys.readouterr().err
    assert "rendering" in err and "/24" in err, err
