"""The interactive skeleton page: figure data from clips of every loader, the float32 frames inside the written
HTML, decimation with a note, overlays, and `optiq viz plotly` with its bad inputs."""

from __future__ import annotations

import base64
import json
import math
import re
import warnings

import numpy as np
import optiq
import pytest
from click.testing import CliRunner
from optiq.cli.main import build_cli
from optiq_viz.html import DIV_ID, DecimationWarning, plot_skeleton, render_html, skeleton_path
from plotly.offline import get_plotlyjs

# Joint counts as the data README states them (BVH: counted in the file's text below).
LOADER_FILES = {
    "bvh": ("bvh/cmu_02_01_bvhtodeepmimic.bvh", None),
    "asf_amc": ("asf_amc/cmu_02_01_walk.amc", 31),  # 30 bones and the root
    "deepmimic": ("deepmimic/humanoid3d_walk.txt", 15),
    "amp_npy": ("npy/amp/amp_humanoid_walk.npy", 15),
    "fbx": ("fbx/07_01_cmu.fbx", 38),  # 38 LimbNodes
}


def run(*args):
    return CliRunner().invoke(build_cli(), [str(a) for a in args])


def frames_of(html: str) -> list[dict]:
    """The frames list as written into the page (the argument of Plotly.addFrames)."""
    start = html.index(f"Plotly.addFrames('{DIV_ID}', ") + len(f"Plotly.addFrames('{DIV_ID}', ")
    frames, _ = json.JSONDecoder().raw_decode(html, start)
    return frames


def decode(spec: dict) -> np.ndarray:
    assert spec["dtype"] == "f4", spec.get("dtype")
    return np.frombuffer(base64.b64decode(spec["bdata"]), np.float32)


def hover_joints(trace) -> set[str]:
    return {t for t in trace.text if t and not t.endswith("(end site)")}


@pytest.fixture(scope="module")
def walk(data_dir):
    return optiq.load(data_dir / "bvh" / "cmu_02_01_bvhtodeepmimic.bvh")[0][1:]  # frame 0 is a T-pose


def test_skeleton_path_draws_every_bone_once_per_edge(walk):
    parents = walk.skeleton.parents
    path = skeleton_path(parents)
    pairs = {(int(a), int(b)) for a, b in zip(path[:-1], path[1:], strict=True) if a >= 0 and b >= 0}
    bones = {(int(parents[j]), j) for j in range(1, len(parents))}
    assert pairs == bones
    assert set(path[path >= 0].tolist()) == set(range(len(parents)))
    assert len(path) < 2 * len(parents)  # one line with a few breaks, not one segment per bone


@pytest.mark.parametrize("loader", list(LOADER_FILES))
def test_figure_from_every_loader(loader, data_dir):
    rel, joints = LOADER_FILES[loader]
    path = data_dir / rel
    if loader == "fbx":
        pytest.importorskip("optiq_fbx.loader", reason="optiq-fbx is not installed")
    if joints is None:
        joints = len(re.findall(r"^\s*(ROOT|JOINT)\s", path.read_text(), flags=re.M))
    clip = optiq.load(path)[0]
    max_frames = 40
    step = math.ceil(clip.num_frames / max_frames)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = plot_skeleton(clip, max_frames=max_frames)
    assert len([w for w in caught if w.category is DecimationWarning]) == (step > 1)
    skeleton = fig.data[1]
    assert hover_joints(skeleton) == set(clip.skeleton.names) and len(clip.skeleton.names) == joints
    assert len(fig.frames) == len(range(0, clip.num_frames, step))
    # Every frame's points are the clip's joint positions at frame k * step, as float32.
    pos = clip.world_positions()
    names = list(skeleton.text)
    for k in (0, len(fig.frames) - 1):
        x, y, z = (np.asarray(getattr(fig.frames[k].data[0], a)) for a in "xyz")
        assert x.dtype == np.float32
        for i, name in enumerate(names):
            if name in clip.skeleton.names:
                j = clip.skeleton.index(name)
                np.testing.assert_allclose([x[i], y[i], z[i]], pos[k * step, j], atol=1e-5)
    scene = fig.layout.scene
    lo = np.array([scene.xaxis.range[0], scene.yaxis.range[0], scene.zaxis.range[0]])
    hi = np.array([scene.xaxis.range[1], scene.yaxis.range[1], scene.zaxis.range[1]])
    assert np.all(pos.reshape(-1, 3).min(axis=0) >= lo) and np.all(pos.reshape(-1, 3).max(axis=0) <= hi)
    assert lo[2] <= 0.0 and scene.camera.up.z == 1
    ratio = np.array([scene.aspectratio.x, scene.aspectratio.y, scene.aspectratio.z])
    np.testing.assert_allclose(ratio / ratio.max(), (hi - lo) / (hi - lo).max())  # equal scale on every axis


def test_page_is_offline_small_and_carries_float32_frames(walk, tmp_path):
    clip = walk[:300]  # 31 joints and 7 end sites: more than the 24 joints x 300 frames
    out = render_html(clip, tmp_path / "walk.html")
    html = out.read_text(encoding="utf-8")
    assert "<script src=" not in html  # plotly.js is embedded: the page works offline
    bundle = len(get_plotlyjs().encode())
    data = out.stat().st_size - bundle
    assert 0 < data < 500_000, data  # measured: 0.44 MB
    frames = frames_of(html)
    assert len(frames) == 300
    pos = clip.world_positions().astype(np.float32)
    joint = clip.skeleton.index("LeftFoot")
    point = list(plot_skeleton(clip, max_frames=300).data[1].text).index("LeftFoot")
    for k, frame in enumerate(frames):
        assert frame["traces"] == [1, 3]
        xyz = [decode(frame["data"][0][a]) for a in "xyz"]
        assert [v[point] for v in xyz] == pos[k, joint].tolist()
        assert decode(frame["data"][1]["x"]).tolist() == [pytest.approx(k / clip.fps)] * 2  # timeline cursor
    assert not re.search(r'"[xyz]":\[-?\d', html.split("Plotly.addFrames", 1)[1])  # no plain number lists


def test_plotlyjs_beside(walk, tmp_path):
    out = render_html(walk[:20], tmp_path / "small.html", plotlyjs="beside")
    assert re.search(r'<script [^>]*src="plotly.min.js"', out.read_text())
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000
    assert out.stat().st_size < 200_000


def test_long_clip_is_decimated_with_a_note(walk):
    with pytest.warns(DecimationWarning, match=r"showing every 4th frame of 343 \(max_frames=100\)"):
        fig = plot_skeleton(walk, max_frames=100)
    assert "showing every 4th frame of 343" in fig.layout.title.text
    assert len(fig.frames) == 86 and len(fig.layout.sliders[0].steps) == 86
    assert [s.label for s in fig.layout.sliders[0].steps[:3]] == ["0", "4", "8"]


def test_overlay_of_clips_and_prediction(walk, data_dir):
    other = optiq.load(data_dir / "bvh" / "cmu_12_01_walk_pybvh.bvh")[0][1:]
    pred = walk.replace(root_translation=walk.root_translation + [0.0, 0.5, 0.0])
    fig = plot_skeleton([walk, other], pred=pred, max_frames=1000)
    names = [t.name for t in fig.data if t.type == "scatter3d"]
    assert names == [walk.name, f"{walk.name} (prediction)", other.name]
    colours = [t.line.color for t in fig.data if t.type == "scatter3d"]
    assert len(set(colours)) == 3
    assert len(fig.frames) == max(walk.num_frames, other.num_frames)  # the shorter clip holds its last pose
    assert fig.layout.updatemenus[0].buttons[0].label.endswith("play")
    assert fig.layout.updatemenus[0].buttons[1].label.endswith("pause")
    last = fig.frames[-1].data
    short = min((walk, 0), (other, 2), key=lambda c: c[0].num_frames)
    pos = short[0].world_positions()[-1, 0]
    np.testing.assert_allclose([last[short[1]].x[0], last[short[1]].y[0], last[short[1]].z[0]], pos, atol=1e-5)


def test_frame_labels_timeline(walk):
    labels = np.repeat(["stand", "walk", "stand"], [50, 200, walk.num_frames - 250])
    fig = plot_skeleton(walk.with_labels(frame_labels={"activity": labels}), max_frames=1000)
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 1 and list(bars[0].text) == ["stand", "walk", "stand"]
    np.testing.assert_allclose(np.asarray(bars[0].base, float), np.array([0, 50, 250]) / walk.fps)
    np.testing.assert_allclose(bars[0].x, np.array([50, 200, walk.num_frames - 250]) / walk.fps)
    assert list(fig.layout.yaxis.ticktext) == ["activity"]


def test_bad_clips_and_predictions(walk, data_dir):
    with pytest.raises(optiq.OptiqError, match="empty"):
        plot_skeleton(walk.replace(rotations=walk.rotations[:0], root_translation=walk.root_translation[:0]))
    with pytest.raises(optiq.SkeletonMismatchError, match="has 100 frames"):
        plot_skeleton(walk, pred=walk[:100])
    deepmimic = optiq.load(data_dir / "deepmimic" / "humanoid3d_walk.txt")[0]
    with pytest.raises(optiq.SkeletonMismatchError, match="skeleton differs"):
        plot_skeleton(walk, pred=deepmimic)


# --- the command line ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dataset(walk, data_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("viz_ds")
    other = optiq.load(data_dir / "bvh" / "cmu_12_01_walk_pybvh.bvh")[0][1:]
    optiq.write_dataset(folder / "walks.parquet", [walk, other])
    src = (data_dir / "bvh" / "cmu_02_01_bvhtodeepmimic.bvh").read_text()
    (folder / "empty.bvh").write_text(src[:src.index("Frames:")] + "Frames: 0\nFrame Time: 0.008333\n")
    optiq.save_clip(walk.replace(root_translation=walk.root_translation + [0.0, 0.5, 0.0]), folder / "pred.bvh")
    optiq.save_clip(walk[:100], folder / "short.bvh")
    optiq.save_clip(optiq.load(data_dir / "bvh" / "cmu_131_01_start_walk_stop_maxfriendly.bvh")[0][:50],
                    folder / "other_skeleton.bvh")
    return folder


def test_cli_plotly_writes_page(dataset, walk, tmp_path):
    out = tmp_path / "analysis.html"
    r = run("viz", "plotly", "--dataset", dataset / "walks.parquet", "--clip", walk.name, "--clip",
            "cmu_12_01_walk_pybvh", "--pred", dataset / "pred.bvh", "--out", out, "--max-frames", "100")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"wrote {out}")
    assert "optiq: warning:" in r.stderr and "showing every" in r.stderr
    html = out.read_text()
    assert f"{walk.name} (prediction)" in html and "cmu_12_01_walk_pybvh" in html
    assert len(frames_of(html)) <= 100


@pytest.mark.parametrize("case, message", [
    ("unknown", "unknown clip 'nope'"),
    ("empty", "no frames"),
    ("frames", "has 100 frames"),
    ("skeleton", "skeleton differs"),
    ("folder", "does not exist"),
])
def test_cli_plotly_bad_input(case, message, dataset, walk, tmp_path):
    out = tmp_path / "x.html"
    args = ["viz", "plotly", "--dataset", dataset / "walks.parquet", "--clip", walk.name, "--out", out]
    if case == "unknown":
        args[5] = "nope"
    elif case == "empty":
        args += ["--pred", dataset / "empty.bvh"]
    elif case == "frames":
        args += ["--pred", dataset / "short.bvh"]
    elif case == "skeleton":
        args += ["--pred", dataset / "other_skeleton.bvh"]
    else:
        args[-1] = tmp_path / "missing" / "x.html"
    r = run(*args)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("optiq: error: ") and message in lines[0], r.stderr
    assert list(tmp_path.iterdir()) == []  # no page, no temporary file
