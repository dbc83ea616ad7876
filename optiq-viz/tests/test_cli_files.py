"""What the viz commands read and write: an output is never one of the inputs (same path, a symlink or a hard
link to it) and has its writer's suffix; a motion file is drawn directly; a prediction with the same joints in
another order is accepted; numeric options and a full disk fail in one line."""

from __future__ import annotations

import base64
import json
import os
import re
import resource
import shutil
import subprocess
import sys

import numpy as np
import optiq
import pytest
from click.testing import CliRunner
from optiq.cli.main import build_cli
from optiq_viz.html import DIV_ID

WALK = "bvh/cmu_02_01_bvhtodeepmimic.bvh"
SUFFIX = {"plotly": ".html", "video": ".mp4", "plots": ".html"}


def run(*args):
    return CliRunner().invoke(build_cli(), [str(a) for a in args])


def snapshot(folder) -> dict:
    """Every entry of ``folder``: a symlink's target, or a file's bytes."""
    return {p.name: ("link", os.readlink(p)) if p.is_symlink() else p.read_bytes() for p in folder.iterdir()}


def page_frames(html: str) -> list[dict]:
    start = html.index(f"Plotly.addFrames('{DIV_ID}', ") + len(f"Plotly.addFrames('{DIV_ID}', ")
    return json.JSONDecoder().raw_decode(html, start)[0]


def f32(spec: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(spec["bdata"]), np.float32)


def bvh_frames(path) -> int:
    """The frame count the BVH file states in its MOTION header."""
    return int(re.search(r"^Frames:\s*(\d+)", path.read_text(), re.M).group(1))


@pytest.fixture(scope="module")
def walk(data_dir):
    return optiq.load(data_dir / WALK)[0][1:]  # frame 0 is a T-pose


@pytest.fixture
def folder(walk, data_dir, tmp_path):
    """A dataset of the walk, a copy of its BVH source and a prediction of the walk as BVH."""
    optiq.write_dataset(tmp_path / "walks.parquet", [walk])
    shutil.copy(data_dir / WALK, tmp_path / "src.bvh")
    optiq.save_clip(walk, tmp_path / "pred.bvh")
    return tmp_path


# --- outputs never destroy inputs ----------------------------------------------------------------------------
CASES = {
    "out is the dataset": "expected .htm|expected .mp4",
    "out is the motion file": "expected .htm|expected .mp4",
    "out is the prediction": "expected .htm|expected .mp4",
    "no suffix": "no suffix",
    "symlink to the dataset": "is the input file",
    "hard link to the motion file": "is the input file",
    "hard link to the prediction": "is the input file",
}


@pytest.mark.parametrize("command, case", [(c, k) for c in SUFFIX for k in CASES
                                           if not (c == "plots" and "prediction" in k)])  # plots takes no --pred
def test_an_output_that_is_an_input_is_refused(command, case, folder, walk, cli_error):
    source, pred = folder / "walks.parquet", None
    if case == "out is the dataset":
        out = source
    elif case == "out is the motion file":
        source = out = folder / "src.bvh"
    elif case == "out is the prediction":
        out = pred = folder / "pred.bvh"
    elif case == "no suffix":
        out = folder / "page"
    elif case == "symlink to the dataset":
        out = folder / f"link{SUFFIX[command]}"
        out.symlink_to(source.name)
    elif case == "hard link to the motion file":
        source = folder / "src.bvh"
        out = folder / f"hard{SUFFIX[command]}"
        os.link(source, out)
    else:
        pred = folder / "pred.bvh"
        out = folder / f"hard{SUFFIX[command]}"
        os.link(pred, out)
    # --dataset and --clip: the names the command took before --in and a default clip existed.
    args = ["viz", command, "--dataset", source, "--clip", walk.name, "--out", out]
    args += ["--pred", pred] if pred is not None else []
    args += ["--joints", "LeftLeg"] if command == "plots" else []
    before = snapshot(folder)
    line = cli_error(*args)
    assert re.search(CASES[case], line), line
    assert snapshot(folder) == before  # inputs byte-identical, links still links, no page, no part file


@pytest.mark.parametrize("command, name", [("plotly", "x.mp4"), ("video", "x.html"), ("video", "x.avi"),
                                           ("plots", "x.mp4")])
def test_each_writer_takes_only_its_own_suffixes(command, name, folder, walk, cli_error):
    before = snapshot(folder)
    args = ["viz", command, "--dataset", folder / "walks.parquet", "--clip", walk.name, "--out", folder / name]
    args += ["--joints", "LeftLeg"] if command == "plots" else []
    line = cli_error(*args)
    assert f"suffix '{os.path.splitext(name)[1]}'" in line, line
    assert snapshot(folder) == before


def test_a_symlinked_output_that_is_no_input_is_written_through(folder, walk):
    (folder / "pages").mkdir()
    (folder / "pages" / "old.html").write_text("old page")
    (folder / "latest.html").symlink_to("pages/old.html")
    r = run("viz", "plotly", "--dataset", folder / "walks.parquet", "--clip", walk.name, "--out", folder / "latest.html")
    assert r.exit_code == 0, r.output
    assert (folder / "latest.html").is_symlink()
    assert len(page_frames((folder / "pages" / "old.html").read_text())) == 343  # 343 frames <= --max-frames 600


def test_plotlyjs_beside_is_written_atomically_once(folder, walk):
    for name in ("a.html", "b.html"):
        r = run("viz", "plotly", "--dataset", folder / "walks.parquet", "--clip", walk.name, "--out", folder / name,
                "--plotlyjs", "beside")
        assert r.exit_code == 0, r.output
    from plotly.offline import get_plotlyjs

    assert (folder / "plotly.min.js").read_text() == get_plotlyjs()
    assert not [p for p in folder.iterdir() if p.name.endswith(".part")]


def test_full_disk_is_one_line_and_keeps_the_old_page(folder, walk):
    """A real EFBIG from the kernel: the command runs with a 1 MB file size limit (RLIMIT_FSIZE), the page
    with plotly.js embedded is about 5 MB. Python ignores SIGXFSZ, so the write fails with an OSError."""
    out = folder / "page.html"
    out.write_text("the old page")

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

    proc = subprocess.run([sys.executable, "-c", "from optiq.cli.main import main; main()", "viz", "plotly",
                           "--dataset", str(folder / "walks.parquet"), "--clip", walk.name, "--out", str(out)],
                          capture_output=True, text=True, preexec_fn=limit, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"optiq: error: no space left on device writing {out}"
    assert out.read_text() == "the old page"
    assert sorted(p.name for p in folder.iterdir()) == ["page.html", "pred.bvh", "src.bvh", "walks.parquet"]


# --- a motion file drawn directly, a prediction in another joint order ---------------------------------------
def test_plotly_draws_a_motion_file_directly(data_dir, tmp_path):
    src = data_dir / WALK
    out = tmp_path / "walk.html"
    r = run("viz", "plotly", "--in", src, "--out", out, "--max-frames", "1000")
    assert r.exit_code == 0, r.output
    frames = page_frames(out.read_text())
    assert len(frames) == bvh_frames(src) == 344
    # The root's first frame: the BVH's first MOTION line holds Xposition Yposition Zposition of Hips in CMU
    # units (x 0.056444 m), Y up; optiq is Z up with (x, y, z) -> (z, x, y).
    motion = src.read_text().split("Frame Time:")[1].splitlines()[1].split()
    x, y, z = (float(v) * 0.056444 for v in motion[:3])
    root = [f32(frames[0]["data"][0][a])[0] for a in "xyz"]
    np.testing.assert_allclose(root, [z, x, y], atol=1e-4)


def test_plots_of_a_motion_file_directly(data_dir, tmp_path):
    src = data_dir / WALK
    out = tmp_path / "angles.html"
    r = run("viz", "plots", "--in", src, "--joints", "LeftLeg", "--out", out)
    assert r.exit_code == 0, r.output
    # The first curve's times: one per frame of the file, 1/120 s apart.
    spec = re.search(r'"x":\{"dtype":"f8","bdata":"([^"]+)"', out.read_text()).group(1)
    t = np.frombuffer(base64.b64decode(json.loads(f'"{spec}"')), np.float64)  # plotly escapes "/" as \u002f
    assert len(t) == bvh_frames(src) == 344
    np.testing.assert_allclose(np.diff(t), 1 / 120)


def test_no_clip_draws_the_first_and_says_so(walk, data_dir, tmp_path):
    other = optiq.load(data_dir / "bvh" / "cmu_12_01_walk_pybvh.bvh")[0][1:]
    optiq.write_dataset(tmp_path / "two.parquet", [walk, other])
    r = run("viz", "plotly", "--in", tmp_path / "two.parquet", "--out", tmp_path / "x.html", "--max-frames", "1000")
    assert r.exit_code == 0, r.output
    assert r.stderr.strip() == (f"optiq: note: {tmp_path / 'two.parquet'} holds 2 clips; drawing the first, "
                                f"{walk.name!r} (choose one with --clip)")
    assert len(page_frames((tmp_path / "x.html").read_text())) == walk.num_frames


def reordered(clip):
    """The clip with the root's child subtrees in reverse order: the same joints and motion, another order."""
    sk = clip.skeleton

    def subtree(j):
        return [j] + [i for k in np.flatnonzero(sk.parents == j) for i in subtree(int(k))]

    order = [0] + [i for k in np.flatnonzero(sk.parents == 0)[::-1] for i in subtree(int(k))]
    return clip.with_joint_order([sk.names[i] for i in order])


def test_prediction_with_joints_in_another_order_is_accepted(folder, walk):
    optiq.save_clip(reordered(walk), folder / "exported.bvh")
    exported = optiq.load(folder / "exported.bvh")[0]
    assert exported.skeleton.names != walk.skeleton.names and sorted(exported.skeleton.names) == sorted(
        walk.skeleton.names)
    out = folder / "page.html"
    r = run("viz", "plotly", "--in", folder / "walks.parquet", "--pred", folder / "exported.bvh", "--out", out,
            "--max-frames", "1000")
    assert r.exit_code == 0, r.output
    frames = page_frames(out.read_text())
    # The prediction's polyline is the ground truth's, point for point: the same positions in the same order.
    for k in (0, 200, 342):
        truth, pred = frames[k]["data"][0], frames[k]["data"][1]
        for a in "xyz":
            np.testing.assert_allclose(f32(pred[a]), f32(truth[a]), atol=1e-4)
    r = run("viz", "video", "--in", folder / "walks.parquet", "--pred", folder / "exported.bvh",
            "--out", folder / "v.mp4", "--size", "64x48", "--fps", "30")
    assert r.exit_code == 0, r.output


# --- numeric options ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("option, value, expected", [
    ("--azimuth", "nan", "finite"), ("--azimuth", "inf", "finite"), ("--azimuth", "-inf", "finite"),
    ("--elevation", "nan", "finite"), ("--elevation", "90", "-85 to 85"), ("--elevation", "x", "not a number"),
    ("--fps", "nan", "finite"), ("--fps", "inf", "finite"), ("--fps", "0", "> 0"), ("--fps", "1e7", "at most"),
])
def test_video_numeric_options_fail_in_one_line(option, value, expected, folder, walk, cli_error):
    before = snapshot(folder)
    line = cli_error("viz", "video", "--dataset", folder / "walks.parquet", "--clip", walk.name,
                     "--out", folder / "x.mp4", "--size", "64x48", option, value)
    assert option in line and expected in line, line
    assert snapshot(folder) == before
