"""Plots: the evaluation report (format, errors), joint-angle curves against the BVH file's own channel values,
label timelines, HTML and PNG output through `optiq viz plots`."""

from __future__ import annotations

import json
import re

import numpy as np
import optiq
import pytest
from click.testing import CliRunner
from optiq.cli.main import build_cli
from optiq_viz.plots import PALETTE, joint_angles, load_report, plot_errors, plot_joint_angles, render_plots
from scipy.spatial.transform import Rotation

BVH = "cmu_02_01_bvhtodeepmimic.bvh"
REPORT = {
    "version": 1,
    "title": "walk: model against a constant-pose baseline",
    "horizon": {"steps": [1, 2, 4, 8, 16], "unit": "frames", "metric": "MPJPE (m)",
                "series": {"model": [0.01, 0.02, 0.035, 0.06, None], "baseline": [0.02, 0.05, 0.09, 0.15, 0.24]},
                "std": {"model": [0.002, 0.004, 0.006, 0.01, None]}},
    "per_joint": {"joints": ["Hips", "LeftFoot", "RightHand"], "metric": "mean error (m)",
                  "series": {"model": [0.01, 0.04, 0.07], "baseline": [0.03, 0.09, 0.12]}},
}


def run(*args):
    return CliRunner().invoke(build_cli(), [str(a) for a in args])


def bvh_channels(path, joint: str) -> np.ndarray:
    """The three rotation channels of ``joint`` in every frame, degrees, read from the BVH text."""
    head, motion = path.read_text().split("MOTION")
    column, found = 0, None
    for name, count in re.findall(r"(?:ROOT|JOINT)\s+(\S+)[^{]*\{\s*OFFSET[^\n]*\n\s*CHANNELS\s+(\d+)", head):
        if name == joint:
            found = column + int(count) - 3
        column += int(count)
    rows = np.array([line.split() for line in motion.strip().splitlines()[2:]], dtype=np.float64)
    return rows[:, found:found + 3]


@pytest.fixture(scope="module")
def walk(data_dir):
    return optiq.load(data_dir / "bvh" / BVH)[0]


def test_report_plots_series_and_error_bars(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps(REPORT))
    fig = plot_errors(load_report(tmp_path / "r.json"))
    lines = [t for t in fig.data if t.type == "scatter"]
    bars = [t for t in fig.data if t.type == "bar"]
    assert [t.name for t in lines] == ["model", "baseline"] and [t.name for t in bars] == ["model", "baseline"]
    assert list(lines[0].x) == [1, 2, 4, 8, 16]
    assert np.isnan(lines[0].y[-1]) and list(lines[1].y) == REPORT["horizon"]["series"]["baseline"]
    assert list(lines[0].error_y.array[:4]) == [0.002, 0.004, 0.006, 0.01] and lines[1].error_y.array is None
    assert list(bars[1].x) == ["Hips", "LeftFoot", "RightHand"] and list(bars[1].y) == [0.03, 0.09, 0.12]
    assert lines[0].line.color == bars[0].marker.color == PALETTE[0]  # one colour per series across plots
    assert fig.layout.title.text == REPORT["title"]
    assert fig.layout.yaxis.title.text == "MPJPE (m)" and fig.layout.xaxis.title.text == "rollout horizon (frames)"


@pytest.mark.parametrize("change, where, message", [
    (lambda r: r.update(version=3), "key 'version'", "unsupported report version 3"),
    (lambda r: r["horizon"]["series"]["model"].pop(), "key 'horizon.series.model'", "expected a list of 5 numbers"),
    (lambda r: r["per_joint"]["series"]["model"].__setitem__(1, "high"), "key 'per_joint.series.model'",
     "entry 1 is 'high'"),
    (lambda r: r["horizon"]["std"].update(other=[0] * 5), "key 'horizon.std.other'", "no series 'other'"),
    (lambda r: (r.pop("horizon"), r.pop("per_joint")), None, "expected a 'horizon' or a 'per_joint' section"),
])
def test_bad_report_names_file_and_key(change, where, message, tmp_path):
    report = json.loads(json.dumps(REPORT))
    change(report)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report))
    with pytest.raises(optiq.ParseError) as err:
        load_report(path)
    assert err.value.path == str(path) and err.value.where == where and message in err.value.message
    r = run("viz", "plots", "--report", path, "--out", tmp_path / "p.html")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_report_that_is_not_json(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"version": 1,\n "horizon": [1, 2,')
    with pytest.raises(optiq.ParseError, match=r"r.json: line 2 column \d+: not valid JSON"):
        load_report(path)


def test_euler_angles_equal_the_bvh_channels(walk, data_dir):
    # The loader turns the file's Y-up axes into Z-up ones (x, y, z) -> (z, x, y): a rotation about the file's
    # Z, Y, X is one about optiq's X, Z, Y, so the intrinsic order "XZY" gives the file's ZYX channel values.
    for joint in ("LeftUpLeg", "LeftLeg", "RightArm"):
        file_deg = bvh_channels(data_dir / "bvh" / BVH, joint)
        ours = joint_angles(walk, joint, "euler", "XZY")
        assert np.abs((ours - file_deg + 180) % 360 - 180).max() < 1e-6
        assert np.abs(np.diff(ours, axis=0)).max() < 90  # unwrapped: no 360-degree jumps
        angle = Rotation.from_euler("ZYX", file_deg, degrees=True).magnitude()
        np.testing.assert_allclose(joint_angles(walk, joint, "angle"), np.degrees(angle), atol=1e-6)


def test_joint_angle_figure_with_timeline(walk):
    labels = np.where(np.arange(walk.num_frames) < 100, 0, 1)
    fig = plot_joint_angles(walk.with_labels(frame_labels={"phase": labels}), ["LeftUpLeg", "LeftLeg"],
                            order="XZY")
    curves = [t for t in fig.data if t.type == "scatter"]
    assert len(curves) == 6 and [t.name for t in curves[:3]] == ["about X", "about Z", "about Y"]
    np.testing.assert_allclose(np.asarray(curves[0].x)[[0, -1]], [0, (walk.num_frames - 1) / walk.fps])
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 1 and list(bars[0].text) == ["0", "1"]
    with pytest.raises(optiq.OptiqError, match="has no joint 'Knee'; joints: Hips, LHipJoint"):
        plot_joint_angles(walk, ["Knee"])


def test_render_plots_html_and_png(walk, tmp_path, chromium, read_png):
    html = render_plots(REPORT, tmp_path / "report.html")
    assert "rollout horizon" in html.read_text()
    png = render_plots(walk, tmp_path / "angles.png", joints=["LeftUpLeg"])
    pixels = read_png(png.read_bytes())
    assert pixels.shape[:2] == (340, 1000)
    x_colour = np.array([int("d62728"[i:i + 2], 16) for i in (0, 2, 4)])  # the curve about X
    assert (np.abs(pixels[..., :3].astype(int) - x_colour).max(axis=-1) < 30).sum() > 200


# --- the command line ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dataset(walk, tmp_path_factory):
    path = tmp_path_factory.mktemp("plots_ds") / "walks.parquet"
    labels = np.repeat(["left", "right"], [170, walk.num_frames - 170])
    optiq.write_dataset(path, [walk.with_labels(frame_labels={"support": labels}), walk.replace(name="plain")])
    return path


def test_cli_plots(dataset, tmp_path):
    (tmp_path / "r.json").write_text(json.dumps(REPORT))
    r = run("viz", "plots", "--report", tmp_path / "r.json", "--out", tmp_path / "r.html")
    assert r.exit_code == 0 and r.stdout == f"wrote {tmp_path / 'r.html'}\n", r.output
    r = run("viz", "plots", "--dataset", dataset, "--clip", "cmu_02_01_bvhtodeepmimic", "--joints",
            "LeftUpLeg,LeftLeg", "--out", tmp_path / "angles.html")
    assert r.exit_code == 0, r.output
    text = (tmp_path / "angles.html").read_text()
    assert "LeftUpLeg" in text and '"right"' in text
    r = run("viz", "plots", "--dataset", dataset, "--clip", "cmu_02_01_bvhtodeepmimic", "--out", tmp_path / "l.html")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("args, message", [
    (["--clip", "cmu_02_01_bvhtodeepmimic", "--joints", "Knee"], "has no joint 'Knee'"),
    (["--clip", "plain"], "has no frame labels"),
    (["--clip", "nope"], "unknown clip 'nope'"),
    (["--clip", "plain", "--joints", "LeftLeg", "--out-suffix", ".svg"], "expected .html, .htm, .png"),
])
def test_cli_plots_bad_input(args, message, dataset, tmp_path):
    suffix = ".html"
    if "--out-suffix" in args:
        suffix = args[-1]
        args = args[:-2]
    out = tmp_path / f"x{suffix}"
    r = run("viz", "plots", "--dataset", dataset, *args, "--out", out)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.output
    # The line names the file at fault: the dataset, or the output for a suffix no plot can be written as.
    named = out if suffix != ".html" else dataset
    assert r.stderr.startswith(f"optiq: error: {named}: "), r.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_png_without_a_browser(tmp_path, monkeypatch):
    pytest.importorskip("kaleido")
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chromium"))
    (tmp_path / "r.json").write_text(json.dumps(REPORT))
    r = run("viz", "plots", "--report", tmp_path / "r.json", "--out", tmp_path / "r.png")
    assert r.exit_code == 2 and "PNG output needs Chrome or Chromium" in r.stderr, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
