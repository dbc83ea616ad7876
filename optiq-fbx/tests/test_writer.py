"""The FBX writer: real clips of four formats exported to binary FBX 7.4, read back by ufbx (the independent
oracle, in a forked child) and by our reader, through the Python API and the ``optiq data export`` CLI."""

from __future__ import annotations

import os
import re
import signal
import struct
from pathlib import Path

import numpy as np
import optiq
import optiq.axes
import pytest
from click.testing import CliRunner
from optiq import quat
from optiq.axes import axis_matrix
from optiq.cli.main import build_cli
from optiq.errors import DiskFullError
from optiq_fbx import writer as writer_module
from optiq_fbx.binary_write import MAGIC
from optiq_fbx.curves import TICKS_PER_SECOND
from optiq_fbx.writer import write_fbx
from ufbx_oracle import as_clip_motion, oracle_positions

# One real clip per source format: (path under data_dir, frames, joints, fps) as each file states them.
CLIPS = {
    "bvh": ("bvh/cmu_02_01_bvhtodeepmimic.bvh", 344, 31, 120.0),
    "deepmimic": ("deepmimic/humanoid3d_walk.txt", 39, 15, 30.0),
    "amp_npy": ("npy/amp/amp_humanoid_walk.npy", 154, 15, 60.0),
    "asf_amc": ("asf_amc/cmu_02_01_walk.amc", 343, 31, 120.0),
}
# ufbx CoordinateAxis codes of (right, up, front): +X, +Y, +Z for Y up; +Y, +Z, +X for Z up (optiq's axes).
Y_UP_AXES, Z_UP_AXES = (0, 2, 4), (2, 4, 0)


def ufbx_joint_motion(path: Path, clip: optiq.Clip, fps: float | None = None) -> tuple[dict, np.ndarray, dict]:
    """ufbx's reading of ``path``: the oracle dict, world positions ``[T, J, 3]`` in optiq axes and metres, in
    the clip's joint order, and the single stack's data."""
    o = oracle_positions(path, fps)
    assert len(o["stacks"]) == 1
    assert o["axes"] in (Y_UP_AXES, Z_UP_AXES)
    pos, _ = as_clip_motion(o, clip.name, clip.skeleton)
    return o, pos, o["stacks"][clip.name]


def same_joints(back: optiq.Clip, clip: optiq.Clip) -> np.ndarray:
    """Index of each of ``clip``'s joints in ``back``, after checking both have the same joints and parents."""
    assert sorted(back.skeleton.names) == sorted(clip.skeleton.names)
    idx = np.array([back.skeleton.index(n) for n in clip.skeleton.names])
    parent_names = [None if p < 0 else back.skeleton.names[p] for p in back.skeleton.parents[idx]]
    assert parent_names == [None if p < 0 else clip.skeleton.names[p] for p in clip.skeleton.parents]
    return idx


def extent(positions: np.ndarray) -> float:
    return float(np.ptp(positions.reshape(-1, 3), axis=0).max())


@pytest.fixture(scope="module", params=sorted(CLIPS))
def exported(request, data_dir, tmp_path_factory):
    rel, frames, joints, fps = CLIPS[request.param]
    clip = optiq.load_clip(data_dir / rel)
    assert (clip.num_frames, clip.num_joints, clip.fps) == (frames, joints, fps)
    out = tmp_path_factory.mktemp(request.param) / f"{clip.name}.fbx"
    optiq.save_clip(clip, out)
    return clip, out


def test_ufbx_reads_the_export(exported):
    clip, path = exported
    o, pos, stack = ufbx_joint_motion(path, clip)
    # Every joint is a ufbx bone (attribute type 5) under the right parent; ufbx adds only its scene root.
    assert sorted(o["names"]) == sorted(["", *clip.skeleton.names])
    idx = {n: i for i, n in enumerate(o["names"])}
    for j, name in enumerate(clip.skeleton.names):
        p = clip.skeleton.parents[j]
        assert o["names"][o["parents"][idx[name]]] == ("" if p < 0 else clip.skeleton.names[p])
        assert o["kinds"][idx[name]] == 5
    assert o["file_fps"] == clip.fps
    assert o["unit_meters"] == 0.01 and o["axes"] == Y_UP_AXES
    assert len(stack["times"]) == clip.num_frames
    ref = clip.world_positions()
    assert np.abs(pos - ref).max() <= 1e-4 * extent(ref)
    # Local rotations: ufbx's, in the file's axes, against the clip's turned into those axes.
    file_rot = clip.transformed(axis_matrix("y").T).rotations
    local = stack["local_rotations"][:, [idx[n] for n in clip.skeleton.names]]
    assert np.degrees(quat.angle_between(local, file_rot)).max() < 1e-3


def test_our_reader_round_trip(exported):
    loader = pytest.importorskip("optiq_fbx.loader")
    clip, path = exported
    back = loader.load_fbx(path)
    assert len(back) == 1
    b = back[0]
    assert b.name == clip.name and b.num_frames == clip.num_frames and b.fps == pytest.approx(clip.fps)
    # FBX has no joint order of its own; compare joint by joint, by name.
    idx = same_joints(b, clip)
    np.testing.assert_allclose(b.skeleton.offsets[idx], clip.skeleton.offsets, atol=1e-5)
    np.testing.assert_allclose(b.world_positions()[:, idx], clip.world_positions(), atol=1e-5)


def test_file_layout(exported):
    """Header, version and footer bytes of FBX 7.4, and the keys at the FBX tick rate, read byte by byte."""
    clip, path = exported
    data = path.read_bytes()
    assert data[:23] == MAGIC and struct.unpack_from("<I", data, 23)[0] == 7400
    assert data[-16:] == bytes.fromhex("f85a8c6adef5d97eece90ce3758f290b")
    assert struct.unpack_from("<I", data, len(data) - 16 - 120 - 4)[0] == 7400
    assert data[-16 - 120:-16] == b"\x00" * 120
    footer_id = data.rindex(bytes.fromhex("fabcab09d0c8d466b176fb831cf7267e"))
    pad = len(data) - (footer_id + 20) - 4 - 120 - 16  # zero bytes aligning the version to 16
    assert 1 <= pad <= 16 and (footer_id + 20 + pad) % 16 == 0 and data[footer_id + 16:footer_id + 20 + pad] == b"\0" * (4 + pad)
    # The stop time of the take: (frames - 1) frames at TICKS_PER_SECOND ticks per second.
    stop = round((clip.num_frames - 1) * TICKS_PER_SECOND / clip.fps)
    assert struct.pack("<q", stop) in data


def test_definitions_count_the_objects(exported):
    """The Definitions section counts what Objects holds (parsed by the reader's node parser), and the large
    key arrays are zlib-compressed (the file is smaller than its raw key arrays)."""
    from optiq_fbx.binary import parse_binary

    clip, path = exported
    data = path.read_bytes()
    version, top = parse_binary(data, path)
    assert version == 7400
    by_name = {n.name: n for n in top}
    assert list(by_name) == ["FBXHeaderExtension", "FileId", "CreationTime", "Creator", "GlobalSettings",
                             "Documents", "References", "Definitions", "Objects", "Connections", "Takes"]
    held: dict[str, int] = {"GlobalSettings": 1}
    for obj in by_name["Objects"].children:
        held[obj.name] = held.get(obj.name, 0) + 1
    defs = by_name["Definitions"]
    declared = {t.props[0]: t.find("Count").props[0] for t in defs.find_all("ObjectType")}
    assert declared == held and defs.find("Count").props[0] == sum(held.values())
    j = clip.num_joints
    assert held["Model"] == held["NodeAttribute"] == j and held["AnimationCurveNode"] == j + 1
    assert held["AnimationCurve"] == 3 * (j + 1)
    templates = {t.props[0]: t.find("PropertyTemplate").props[0] for t in defs.find_all("ObjectType")
                 if t.find("PropertyTemplate") is not None}
    assert templates == {"Model": "FbxNode", "NodeAttribute": "FbxSkeleton", "AnimationStack": "FbxAnimStack",
                         "AnimationLayer": "FbxAnimLayer", "AnimationCurveNode": "FbxAnimCurveNode"}
    # Each KeyTime/KeyValueFloat record name is followed by its array header: type code, count, encoding (1 zlib).
    for name, code in ((b"KeyTime", b"l"), (b"KeyValueFloat", b"f")):
        starts = [m.end() for m in re.finditer(re.escape(name), data)]
        assert len(starts) == held["AnimationCurve"]
        for k in starts:
            count, encoding = struct.unpack_from("<II", data, k + 1)
            assert data[k:k + 1] == code and count == clip.num_frames and encoding == 1
    # Connections: every object except the stack hangs from something; every curve on a d|X/d|Y/d|Z channel.
    links = [c.props for c in by_name["Connections"].children]
    assert sum(1 for c in links if c[0] == "OP" and c[3] in ("d|X", "d|Y", "d|Z")) == held["AnimationCurve"]
    assert sum(1 for c in links if c[0] == "OP" and c[3] == "Lcl Rotation") == j


def test_zup_metres_custom_rate_and_animated_translations(data_dir, tmp_path):
    """Z up in metres, a frame rate without an FBX TimeMode (custom), and per-frame local translations on every
    joint (T curves beyond the root)."""
    clip = optiq.load_clip(data_dir / "bvh/cmu_02_01_bvhtodeepmimic.bvh").slice(1, 120).resample(45.0)
    wobble = 1.0 + 0.2 * np.sin(np.linspace(0.0, 6.0, clip.num_frames))[:, None, None]
    clip = clip.replace(local_translations=clip.skeleton.offsets[None] * wobble)
    out = tmp_path / "zup.fbx"
    write_fbx(clip, out, up="z", unit="m")
    o, pos, stack = ufbx_joint_motion(out, clip)
    assert o["axes"] == Z_UP_AXES and o["unit_meters"] == 1.0 and o["file_fps"] == 45.0
    assert len(stack["times"]) == clip.num_frames
    ref = clip.world_positions()
    assert np.abs(pos - ref).max() <= 1e-4 * extent(ref)
    # Without the non-root T curves the joints would sit at the rest offsets: make sure that differs.
    assert np.abs(clip.replace(local_translations=None).world_positions() - ref).max() > 0.05
    loader = pytest.importorskip("optiq_fbx.loader")
    back = loader.load_fbx(out)[0]
    np.testing.assert_allclose(back.world_positions()[:, same_joints(back, clip)], ref, atol=1e-5)


def test_spinning_root_is_unwrapped(data_dir, tmp_path):
    """A root turning three full times: sampled halfway between keys, ufbx's linear interpolation of the Euler
    curves stays next to both neighbouring frames; a 360-degree jump between keys would spin the joint."""
    clip = optiq.load_clip(data_dir / "deepmimic/humanoid3d_walk.txt")
    turn = np.linspace(0.0, 6.0 * np.pi, clip.num_frames)
    spin = quat.from_axis_angle(np.array([0.0, 0.0, 1.0]), turn)
    rot = clip.rotations.copy()
    rot[:, 0] = quat.qmul(spin, rot[:, 0])
    clip = clip.replace(rotations=rot)
    out = tmp_path / "spin.fbx"
    write_fbx(clip, out)
    o, _, stack = ufbx_joint_motion(out, clip, fps=2 * clip.fps)
    root = o["names"].index(clip.skeleton.names[0])
    file_rot = clip.transformed(axis_matrix("y").T).rotations[:, 0]
    half = stack["local_rotations"][1::2, root][: clip.num_frames - 1]
    step = np.degrees(quat.angle_between(file_rot[:-1], file_rot[1:]))
    to_prev = np.degrees(quat.angle_between(half, file_rot[:-1]))
    assert np.all(to_prev <= step + 1.0)


def test_cli_export(data_dir, tmp_path):
    """``optiq data export ds --clip NAME --out x.fbx`` on a dataset converted from the real AMC file."""
    runner = CliRunner()
    ds = tmp_path / "ds.parquet"
    r = runner.invoke(build_cli(), ["data", "convert", "--in", str(data_dir / CLIPS["asf_amc"][0]), "--out", str(ds),
                                    "--jobs", "1"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "walk.fbx"
    r = runner.invoke(build_cli(), ["data", "export", str(ds), "--clip", "cmu_02_01_walk", "--out", str(out)])
    assert r.exit_code == 0, r.output
    from optiq.datasets import open_dataset

    with open_dataset(ds) as d:
        clip = d.read_clip("cmu_02_01_walk")
    _, pos, _ = ufbx_joint_motion(out, clip)
    ref = clip.world_positions()
    assert np.abs(pos - ref).max() <= 1e-4 * extent(ref)


def test_failed_write_leaves_no_file(data_dir, tmp_path, monkeypatch):
    """A write that fails half way (a full disk) leaves neither the target nor a temporary file, and an
    earlier file at the target stays as it was."""
    clip = optiq.load_clip(data_dir / CLIPS["deepmimic"][0])
    target = tmp_path / "walk.fbx"

    def half_then_fail(self, data):
        with open(self, "wb") as fh:
            fh.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_fail)
    # optiq.atomic turns a full disk into one line naming the output (not the temporary file).
    with pytest.raises(DiskFullError, match=r"no space left on device writing .*walk\.fbx"):
        write_fbx(clip, target)
    assert list(tmp_path.iterdir()) == []
    target.write_text("earlier")
    with pytest.raises(DiskFullError):
        write_fbx(clip, target)
    assert [p.name for p in tmp_path.iterdir()] == ["walk.fbx"] and target.read_text() == "earlier"


def test_killed_write_leaves_no_file(data_dir, tmp_path):
    """A process killed (SIGKILL) in the middle of writing leaves no file at the target path."""
    clip = optiq.load_clip(data_dir / CLIPS["deepmimic"][0])
    target = tmp_path / "walk.fbx"
    pid = os.fork()
    if pid == 0:  # child: write half the bytes, then die without any cleanup
        try:
            def half_then_die(self, data):
                with open(self, "wb") as fh:
                    fh.write(data[: len(data) // 2])
                os.kill(os.getpid(), signal.SIGKILL)

            Path.write_bytes = half_then_die
            writer_module.write_fbx(clip, target)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert not target.exists()
    assert all(p.name.endswith(".part") for p in tmp_path.iterdir())


def test_bad_options(data_dir, tmp_path):
    clip = optiq.load_clip(data_dir / CLIPS["deepmimic"][0])
    with pytest.raises(optiq.OptiqError, match="up axis"):
        write_fbx(clip, tmp_path / "a.fbx", up="x")
    with pytest.raises(optiq.OptiqError, match="unknown length unit 'furlong'"):
        write_fbx(clip, tmp_path / "a.fbx", unit="furlong")
    with pytest.raises(optiq.OptiqError, match="does not exist"):
        write_fbx(clip, tmp_path / "missing" / "a.fbx")
    assert list(tmp_path.iterdir()) == []


def test_unit_given_as_a_length_unit_label(data_dir, tmp_path):
    """A clip read with a numeric unit carries the label ``"0.000564444444444 m"`` (optiq.axes.length_scale's name
    of a number); exporting in that unit writes UnitScaleFactor = that many centimetres and reads back in place."""
    (clip,) = optiq.load(data_dir / "fbx" / "01_01_cmu.fbx", unit=optiq.axes.LENGTH_UNITS["cmu"] / 100)
    clip = clip.slice(0, 30)
    unit = clip.labels["length_unit"]
    assert unit == "0.000564444444444 m"
    out = tmp_path / "cmu.fbx"
    write_fbx(clip, out, unit=unit)
    o, pos, _ = ufbx_joint_motion(out, clip)
    assert o["unit_meters"] == pytest.approx(0.000564444444444, rel=1e-12)
    ref = clip.world_positions()
    assert np.abs(pos - ref).max() <= 1e-5 * extent(ref)
