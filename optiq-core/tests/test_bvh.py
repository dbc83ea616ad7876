"""The BVH reader and writer on every real BVH file, against facts counted from the text and a second reader.

The second reader is ``bvhio`` (readAsHierarchy: its own parser, Euler conversion and transforms in float32 glm),
whose world positions are mapped into optiq's convention (metres, Z up) here.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from optiq import ParseError, quat
from optiq.axes import LENGTH_UNITS, axis_matrix
from optiq.errors import OptiqError
from optiq.loaders.bvh import _parse_motion, load_bvh, rotation_orders
from optiq.loaders.bvh_write import write_bvh

with warnings.catch_warnings():
    warnings.simplefilter("ignore", PendingDeprecationWarning)  # PyGLM's note about its import name
    import bvhio

# Every file of data/bvh. Up axis: fair1's hierarchy runs its spine along +Z (its Spine, Spine1 and Neck OFFSETs
# point mostly along Z); the others are Y up.
FILES = [
    "bvhio_example.bvh",
    "cmu1_jumping_jacks.bvh",
    "cmu_01_14_bvhtodeepmimic.bvh",
    "cmu_02_01_bvhtodeepmimic.bvh",
    "cmu_12_01_walk_pybvh.bvh",
    "cmu_131_01_start_walk_stop_maxfriendly.bvh",
    "fair1_jumping.bvh",
    "pybvh_test2_YXZ.bvh",
    "pymo_AV_8Walk_Meredith_HVHA_Rep1.bvh",
    "sfu_0005_Walking001.bvh",
]
Z_UP_FILES = {"fair1_jumping.bvh"}
# The data README: CMU BVH lengths are in the CMU Acclaim unit (0.0254/0.45 m), SFU lengths in inches.
KNOWN_UNITS = {
    "cmu1_jumping_jacks.bvh": "cmu",
    "cmu_01_14_bvhtodeepmimic.bvh": "cmu",
    "cmu_02_01_bvhtodeepmimic.bvh": "cmu",
    "cmu_12_01_walk_pybvh.bvh": "cmu",
    "cmu_131_01_start_walk_stop_maxfriendly.bvh": "cmu",
    "sfu_0005_Walking001.bvh": "inch",
}
# One file per rotation-order dialect, plus a cheap mixed-order CMU file and PyMO's non-zero root OFFSET.
# (cmu_01_14 and cmu_12_01 share cmu_02_01's dialect; bvhio needs seconds for them.)
BVHIO_FILES = [
    "cmu_02_01_bvhtodeepmimic.bvh",  # ZYX everywhere
    "cmu_131_01_start_walk_stop_maxfriendly.bvh",  # ZYX and ZXY mixed per joint
    "cmu1_jumping_jacks.bvh",  # mixed, 30 fps
    "fair1_jumping.bvh",  # XYZ and YXZ, Z up
    "pybvh_test2_YXZ.bvh",  # YXZ
    "sfu_0005_Walking001.bvh",  # XYZ
    "bvhio_example.bvh",  # ZXY
    "pymo_AV_8Walk_Meredith_HVHA_Rep1.bvh",  # XYZ, root OFFSET replaced by the position channels
]
# CMU "MotionBuilder-friendly" conversions start with a T-pose template frame.
TPOSE_FILES = {"cmu_01_14_bvhtodeepmimic.bvh", "cmu_02_01_bvhtodeepmimic.bvh", "cmu_12_01_walk_pybvh.bvh"}
ORDERS = ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"]
SOURCE = "cmu_02_01_bvhtodeepmimic.bvh"


def facts(path: Path) -> dict:
    """What the file states, read with plain string handling (no optiq code)."""
    lines = path.read_text().splitlines()
    toks = [ln.split() for ln in lines]
    motion = next(i for i, t in enumerate(toks) if t == ["MOTION"])
    head = [t for t in toks[:motion] if t]
    rest = [(i, t) for i, t in enumerate(toks[motion + 1:], start=motion + 2) if t]
    assert rest[0][1][0] == "Frames:" and rest[1][1][:2] == ["Frame", "Time:"]
    data = rest[2:]
    channels = [t[2:] for t in head if t[0] == "CHANNELS"]
    return {
        "names": [" ".join(t[1:]) for t in head if t[0] in ("ROOT", "JOINT")],
        "end_sites": sum(1 for t in head if t[:2] == ["End", "Site"]),
        "channels": channels,
        "orders": ["".join(c[0].upper() for c in ch if c.lower().endswith("rotation")) for ch in channels],
        "frames": int(rest[0][1][1]),
        "frame_time": float(rest[1][1][2]),
        "data_lines": len(data),
        "values_per_line": {len(t) for _, t in data},
        "first_data_line": data[0][0],
        "motion_line": motion + 1,
        "lines": lines,
    }


@pytest.fixture(scope="module")
def bvh_dir(data_dir) -> Path:
    return data_dir / "bvh"


@pytest.fixture(scope="module")
def clips(bvh_dir) -> dict:
    """Each file loaded once for the module."""
    return {name: load_bvh(bvh_dir / name)[0] for name in FILES}


def extent(pos: np.ndarray) -> float:
    return float(np.ptp(pos.reshape(-1, 3), axis=0).max())


def test_every_bvh_file_is_covered(bvh_dir):
    assert sorted(p.name for p in bvh_dir.glob("*.bvh")) == sorted(FILES)


@pytest.mark.parametrize("name", FILES)
def test_counts_and_fps_as_the_file_states(bvh_dir, clips, name):
    f = facts(bvh_dir / name)
    clip = clips[name]
    assert f["frames"] == f["data_lines"], "the file's Frames: disagrees with its data lines"
    assert f["values_per_line"] == {sum(len(c) for c in f["channels"])}
    assert clip.num_frames == f["frames"]
    assert clip.num_joints == len(f["names"])
    assert list(clip.skeleton.names) == f["names"]
    assert len(clip.skeleton.end_sites) == f["end_sites"]
    assert rotation_orders(clip) == f["orders"]
    # The printed Frame Time is rounded (".0083333"); the fps is the rate it was rounded from.
    assert clip.fps * f["frame_time"] == pytest.approx(1.0, rel=5e-4)
    assert clip.labels["up"] == ("z" if name in Z_UP_FILES else "y")
    if name in KNOWN_UNITS:
        assert clip.labels["length_unit"] == KNOWN_UNITS[name]


def test_frame_time_snaps_to_the_rate_it_was_rounded_from(clips):
    assert clips["cmu_02_01_bvhtodeepmimic.bvh"].fps == 120.0  # Frame Time: .0083333
    assert clips["cmu1_jumping_jacks.bvh"].fps == 30.0  # .03333
    assert clips["fair1_jumping.bvh"].fps == pytest.approx(120000 / 1001, rel=1e-12)  # 0.008342 -> 119.88


@pytest.mark.parametrize("name", [f"bvh/{n}" for n in FILES] + [
    "corpora/bandai_namco/data/dataset-1_walk_old_001.bvh", "corpora/cmu_iclone/subjects/005/005_01.bvh"])
def test_number_parser_is_bit_identical_to_float(data_dir, name):
    """numpy's reader (np.loadtxt) gives exactly the doubles float() gives: on every file of data/bvh and a take
    of each BVH corpus here (all 217 BVH files of the shared data were checked the same way by hand)."""
    f = facts(data_dir / name)
    block = "\n".join(f["lines"][f["first_data_line"] - 1:]).encode()
    expected = np.array(block.split(), dtype=np.float64)
    values = _parse_motion(block, f["frames"], len(expected) // f["frames"], data_dir / name, f["first_data_line"])
    assert values.tobytes() == expected.tobytes()


@pytest.mark.parametrize("name", BVHIO_FILES)
def test_world_positions_match_bvhio(bvh_dir, clips, name):
    path = bvh_dir / name
    clip = clips[name]
    root = bvhio.readAsHierarchy(str(path))
    joints = [j for j, _, _ in root.layout()]
    assert [j.Name for j in joints] == list(clip.skeleton.names)
    ref = np.empty((clip.num_frames, len(joints), 3))
    for frame in range(clip.num_frames):
        root.loadPose(frame)
        ref[frame] = [tuple(j.PositionWorld) for j in joints]
    up = "z" if name in Z_UP_FILES else "y"
    ref = ref @ axis_matrix(up).T * LENGTH_UNITS[clip.labels["length_unit"]]
    pos = clip.world_positions()
    # bvhio computes in float32: 1e-6 of the motion's extent is a few float32 roundings.
    np.testing.assert_allclose(pos, ref, rtol=0, atol=1e-6 * extent(ref))


@pytest.mark.parametrize("name", FILES)
def test_bone_lengths_are_constant_for_rotation_only_joints(clips, name):
    clip = clips[name]
    assert clip.local_translations is None  # these files animate only the root's position
    pos, rot = clip.forward_kinematics()
    sk = clip.skeleton
    lengths = np.linalg.norm(pos[:, 1:] - pos[:, sk.parents[1:]], axis=-1)
    np.testing.assert_allclose(lengths, np.broadcast_to(np.linalg.norm(sk.offsets[1:], axis=-1), lengths.shape),
                               rtol=0, atol=1e-9)
    for j, tip in clip.end_site_positions().items():
        np.testing.assert_allclose(np.linalg.norm(tip - pos[:, j], axis=-1), np.linalg.norm(sk.end_sites[j]),
                                   rtol=0, atol=1e-9)
    # World rotations stay unit quaternions along the chains.
    np.testing.assert_allclose(np.linalg.norm(rot, axis=-1), 1.0, atol=1e-12)


def assert_same_motion(a, b, tol=1e-5):
    assert a.skeleton.names == b.skeleton.names and np.array_equal(a.skeleton.parents, b.skeleton.parents)
    assert a.num_frames == b.num_frames and a.fps == pytest.approx(b.fps, rel=1e-6)
    np.testing.assert_allclose(a.skeleton.offsets, b.skeleton.offsets, rtol=0, atol=tol)
    np.testing.assert_allclose(a.world_positions(), b.world_positions(), rtol=0, atol=tol)
    ea, eb = a.end_site_positions(), b.end_site_positions()
    assert ea.keys() == eb.keys()
    for j in ea:
        np.testing.assert_allclose(ea[j], eb[j], rtol=0, atol=tol)
    # Rotations agree as rotations (q and -q are one rotation).
    assert quat.angle_between(a.rotations, b.rotations).max() < 1e-5


@pytest.mark.parametrize("name", FILES)
def test_round_trip_bvh_clip_bvh_clip(tmp_path, clips, name):
    clip = clips[name]
    out = tmp_path / name
    write_bvh(clip, out)
    back = load_bvh(out)[0]
    assert back.labels["rotation_orders"] == clip.labels["rotation_orders"]
    assert back.labels["up"] == clip.labels["up"]
    assert_same_motion(clip, back)
    # A second generation is as close: nothing drifts.
    write_bvh(back, tmp_path / "again.bvh")
    assert_same_motion(clip, load_bvh(tmp_path / "again.bvh")[0])


def test_round_trip_with_a_numeric_unit(tmp_path, bvh_dir):
    # A unit given in metres per unit is recorded as "<number> m"; the writer must read that label back.
    scale = 0.0254 / 0.45
    clip = load_bvh(bvh_dir / SOURCE, unit=scale)[0]
    ref = load_bvh(bvh_dir / SOURCE, unit="cmu")[0]
    assert float(clip.labels["length_unit"].removesuffix(" m")) == pytest.approx(scale, rel=1e-12)
    write_bvh(clip, tmp_path / "numeric.bvh")
    # Same unit in the file as in the source: the OFFSET lines are the source's numbers.
    lines = [ln.split() for ln in (tmp_path / "numeric.bvh").read_text().splitlines()]
    at = lines.index(["JOINT", "LeftUpLeg"])
    assert [float(x) for x in lines[at + 2][1:]] == [1.65674, -1.80282, 0.62477]  # the source's OFFSET
    assert_same_motion(ref, load_bvh(tmp_path / "numeric.bvh", unit="cmu")[0])


def test_bad_unit_or_up_option_names_the_file(bvh_dir):
    for options, fragment in (({"unit": "furlong"}, "unknown length unit 'furlong'"),
                              ({"up": "x"}, "unknown up axis 'x'")):
        with pytest.raises(ParseError) as info:
            load_bvh(bvh_dir / SOURCE, **options)
        assert str(info.value).startswith(f"{bvh_dir / SOURCE}: {fragment}"), str(info.value)


@pytest.mark.parametrize("order", ORDERS)
def test_round_trip_in_every_rotation_order(tmp_path, clips, order):
    clip = clips["pybvh_test2_YXZ.bvh"]
    out = tmp_path / f"{order}.bvh"
    write_bvh(clip, out, order=order)
    channel_lines = [ln.split() for ln in out.read_text().splitlines() if ln.split()[:1] == ["CHANNELS"]]
    assert len(channel_lines) == clip.num_joints
    assert all("".join(c[0] for c in t[-3:]) == order for t in channel_lines)
    back = load_bvh(out)[0]
    assert back.labels["rotation_orders"] == order
    assert rotation_orders(back) == [order] * clip.num_joints
    assert_same_motion(clip, back)


def six_channel_file(src: Path, dst: Path) -> tuple[np.ndarray, list[int]]:
    """``src`` with Xposition Yposition Zposition added to every 3-channel joint, animated as OFFSET plus a wobble.
    Returns the per-frame local translations written (file units) ``[T, J, 3]`` and the joints changed."""
    f = facts(src)
    lines = list(f["lines"])
    head = lines[: f["motion_line"] - 1]
    offsets, widths, changed = [], [], []
    # Joint OFFSETs are the OFFSET lines that follow a ROOT/JOINT's brace (End Site OFFSETs follow "End Site").
    kind = None
    for ln in head:
        t = ln.split()
        if t[:1] in (["ROOT"], ["JOINT"]):
            kind = "joint"
        elif t[:2] == ["End", "Site"]:
            kind = "end"
        elif t[:1] == ["OFFSET"] and kind == "joint":
            offsets.append([float(x) for x in t[1:4]])
        elif t[:1] == ["CHANNELS"]:
            widths.append(int(t[1]))
    offsets = np.array(offsets)
    new_head = []
    j = -1
    for ln in head:
        t = ln.split()
        if t[:1] == ["CHANNELS"]:
            j += 1
            if int(t[1]) == 3:
                ln = ln.replace("CHANNELS 3", "CHANNELS 6 Xposition Yposition Zposition")
                changed.append(j)
        new_head.append(ln)
    data = np.array([ln.split() for ln in lines[f["first_data_line"] - 1:] if ln.split()], dtype=np.float64)
    n = len(data)
    phase = np.arange(n)[:, None] * 0.05 + np.arange(len(offsets))[None, :]
    local = offsets[None] + 0.3 * np.stack((np.sin(phase), np.cos(phase), np.sin(2 * phase)), axis=-1)
    cols, start = [], 0
    for j, w in enumerate(widths):
        if j in changed:
            cols.append(local[:, j])
        cols.append(data[:, start:start + w])
        start += w
    body = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in np.concatenate(cols, axis=1))
    dst.write_text("\n".join(new_head + lines[f["motion_line"] - 1: f["first_data_line"] - 1]) + "\n" + body + "\n")
    local = np.round(local, 6)
    return local, changed


def test_six_channels_on_non_root_joints_match_bvhio_and_round_trip(tmp_path, bvh_dir):
    path = tmp_path / "six.bvh"
    written, changed = six_channel_file(bvh_dir / "pybvh_test2_YXZ.bvh", path)
    clip = load_bvh(path)[0]
    assert clip.local_translations is not None and changed == list(range(1, clip.num_joints))
    scale = LENGTH_UNITS[clip.labels["length_unit"]]
    m = axis_matrix("y")
    # The position channels replace the OFFSET: the clip's local translations are exactly what was written.
    np.testing.assert_allclose(clip.local_translations[:, 1:], written[:, 1:] @ m.T * scale, rtol=0, atol=1e-12)
    root = bvhio.readAsHierarchy(str(path))
    joints = [j for j, _, _ in root.layout()]
    ref = np.empty((clip.num_frames, len(joints), 3))
    for frame in range(clip.num_frames):
        root.loadPose(frame)
        ref[frame] = [tuple(j.PositionWorld) for j in joints]
    ref = ref @ m.T * scale
    np.testing.assert_allclose(clip.world_positions(), ref, rtol=0, atol=1e-6 * extent(ref))
    write_bvh(clip, tmp_path / "back.bvh")
    text = (tmp_path / "back.bvh").read_text()
    assert text.count("CHANNELS 6") == clip.num_joints
    back = load_bvh(tmp_path / "back.bvh")[0]
    np.testing.assert_allclose(back.local_translations[:, 1:], clip.local_translations[:, 1:], rtol=0, atol=1e-5)
    assert_same_motion(clip, back)


@pytest.mark.parametrize("name", FILES)
def test_drop_tpose_drops_only_the_template_frame(bvh_dir, clips, name):
    f = facts(bvh_dir / name)
    dropped = load_bvh(bvh_dir / name, drop_tpose=True)[0]
    clip = clips[name]
    if name in TPOSE_FILES:
        # The template frame: every rotation channel an integer, unlike the captured frames after it.
        first, second = (f["lines"][f["first_data_line"] - 1 + k].split()[3:] for k in (0, 1))
        assert all(re.fullmatch(r"-?\d+", t) for t in first)
        assert not all(re.fullmatch(r"-?\d+", t) for t in second)
        assert dropped.num_frames == clip.num_frames - 1 and dropped.labels["dropped_tpose"] == "1"
        np.testing.assert_array_equal(dropped.rotations, clip.rotations[1:])
        np.testing.assert_array_equal(dropped.root_translation, clip.root_translation[1:])
    else:
        assert dropped.num_frames == clip.num_frames
        assert "dropped_tpose" not in dropped.labels
    if name == "cmu_02_01_bvhtodeepmimic.bvh":
        assert dropped.num_frames == 343
    if name == "cmu_131_01_start_walk_stop_maxfriendly.bvh":
        assert dropped.num_frames == 994


def test_exponents_and_plus_signs_read_like_plain_decimals(tmp_path, bvh_dir, clips):
    """Numbers the fast path does not take (1.5e+01, +3) go through the general parser to the same values."""
    f = facts(bvh_dir / SOURCE)
    lines = list(f["lines"])
    k = f["first_data_line"] - 1
    lines[k] = " ".join(f"{float(t):+.12e}" for t in lines[k].split())
    path = tmp_path / "exp.bvh"
    path.write_text("\r\n".join(lines) + "\r\n")
    clip = load_bvh(path)[0]
    ref = clips[SOURCE]
    np.testing.assert_allclose(clip.rotations, ref.rotations, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(clip.root_translation, ref.root_translation)


# --- bad input: one ParseError naming the file, the line (and frame) and what was expected -----------------------
def broken(tmp_path: Path, bvh_dir: Path, edit) -> tuple[Path, dict]:
    f = facts(bvh_dir / SOURCE)
    lines = edit(list(f["lines"]), f)
    path = tmp_path / "broken.bvh"
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return path, f


def raises(path: Path, *fragments: str) -> str:
    with pytest.raises(ParseError) as info:
        load_bvh(path)
    msg = str(info.value)
    assert msg.startswith(str(path) + ": "), msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


def data_line(f: dict, frame: int) -> int:
    """1-based line number of ``frame``'s data line."""
    return f["first_data_line"] + frame


def set_token(lines, f, frame, col, value):
    i = data_line(f, frame) - 1
    t = lines[i].split()
    t[col] = value
    lines[i] = " ".join(t)
    return lines


def test_truncated_in_the_hierarchy(tmp_path, bvh_dir):
    path, _ = broken(tmp_path, bvh_dir, lambda ls, f: ls[:50])
    raises(path, "line 50:", "without a MOTION section", "truncated", "inside joint")


def test_truncated_in_the_motion_block(tmp_path, bvh_dir):
    path, f = broken(tmp_path, bvh_dir, lambda ls, f: ls[: data_line(f, 63) - 1])
    raises(path, f"line {data_line(f, 62)}, frame 63:", "63 of the 344 frames", "truncated")


def test_truncated_in_the_middle_of_a_line(tmp_path, bvh_dir):
    def cut(ls, f):
        ls = ls[: data_line(f, 100)]
        ls[-1] = ls[-1][: len(ls[-1]) // 2].rstrip()
        return ls
    path, f = broken(tmp_path, bvh_dir, cut)
    raises(path, f"line {data_line(f, 100)}, frame 100:", "expected 96 (one per channel)")


def test_malformed_number(tmp_path, bvh_dir):
    path, f = broken(tmp_path, bvh_dir, lambda ls, f: set_token(ls, f, 12, 5, "1.2.3"))
    raises(path, f"line {data_line(f, 12)}, frame 12:", "'1.2.3' is not a number")


def test_wrong_channel_count_on_a_data_line(tmp_path, bvh_dir):
    def drop_one(ls, f):
        i = data_line(f, 40) - 1
        ls[i] = " ".join(ls[i].split()[:-1])
        return ls
    path, f = broken(tmp_path, bvh_dir, drop_one)
    raises(path, f"line {data_line(f, 40)}, frame 40:", "95 values, expected 96")


def test_values_moved_between_lines_are_caught(tmp_path, bvh_dir):
    """The total count is right, but one line has a value of the next: still an error at the short line."""
    def shift(ls, f):
        i = data_line(f, 7) - 1
        a, b = ls[i].split(), ls[i + 1].split()
        ls[i], ls[i + 1] = " ".join(a[:-1]), " ".join([a[-1], *b])
        return ls
    path, f = broken(tmp_path, bvh_dir, shift)
    raises(path, f"line {data_line(f, 7)}, frame 7:", "95 values, expected 96")


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-inf"])
def test_non_finite_value(tmp_path, bvh_dir, bad):
    path, f = broken(tmp_path, bvh_dir, lambda ls, f: set_token(ls, f, 3, 17, bad))
    raises(path, f"line {data_line(f, 3)}, frame 3:", f"value 17 is {bad}", "expected a finite number")


def test_more_frames_than_the_header_says(tmp_path, bvh_dir):
    path, f = broken(tmp_path, bvh_dir, lambda ls, f: ls + [ls[-1]])
    raises(path, f"line {data_line(f, 344)}, frame 344:", "more frame lines than 'Frames: 344'")


@pytest.mark.parametrize("channels", ["Zrotation Wrotation Xrotation", "Zrotation Xrotation Xrotation"])
def test_unknown_rotation_channel_or_order(tmp_path, bvh_dir, channels):
    def edit(ls, f):
        i = next(k for k, ln in enumerate(ls) if ln.split()[:2] == ["CHANNELS", "3"])
        ls[i] = ls[i].replace("Zrotation Yrotation Xrotation", channels)
        return ls
    path, f = broken(tmp_path, bvh_dir, edit)
    line = next(k for k, ln in enumerate(f["lines"]) if ln.split()[:2] == ["CHANNELS", "3"]) + 1
    if "W" in channels:
        raises(path, f"line {line}:", "unknown channel 'Wrotation'", "expected Xposition")
    else:
        raises(path, f"line {line}:", "listed twice")


@pytest.mark.parametrize("content", ["", "\n\n  \t\n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.bvh"
    path.write_text(content)
    raises(path, "file is empty")


def test_channels_count_mismatch(tmp_path, bvh_dir):
    def edit(ls, f):
        i = next(k for k, ln in enumerate(ls) if ln.split()[:2] == ["CHANNELS", "3"])
        ls[i] = ls[i].replace("CHANNELS 3", "CHANNELS 4")
        return ls
    path, f = broken(tmp_path, bvh_dir, edit)
    line = next(k for k, ln in enumerate(f["lines"]) if ln.split()[:2] == ["CHANNELS", "3"]) + 1
    raises(path, f"line {line}:", "CHANNELS says 4 channels but lists 3")


def test_duplicate_joint_name_names_the_file_and_both_lines(tmp_path, bvh_dir):
    """Before, the Skeleton refused the repeat with no file or line (issue 7)."""
    def edit(ls, f):
        i = next(k for k, ln in enumerate(ls) if ln.split() == ["JOINT", "RightUpLeg"])
        ls[i] = ls[i].replace("RightUpLeg", "LeftUpLeg")
        return ls
    path, f = broken(tmp_path, bvh_dir, edit)
    first = next(k for k, ln in enumerate(f["lines"]) if ln.split() == ["JOINT", "LeftUpLeg"]) + 1
    again = next(k for k, ln in enumerate(f["lines"]) if ln.split() == ["JOINT", "RightUpLeg"]) + 1
    raises(path, f"line {again}:", "joint name 'LeftUpLeg' is used twice", f"first on line {first}")


def test_missing_closing_brace(tmp_path, bvh_dir):
    def edit(ls, f):
        # The brace that closes the first leg chain's first End Site.
        i = next(k for k, ln in enumerate(ls) if ln.strip() == "}")
        return ls[:i] + ls[i + 1:]
    path, f = broken(tmp_path, bvh_dir, edit)
    raises(path, f"line {f['motion_line'] - 1}:", "MOTION comes before the '}' that closes joint 'Hips' (line 2)")


def test_bad_frames_header(tmp_path, bvh_dir):
    def edit(ls, f):
        ls[f["motion_line"]] = "Frames: many"
        return ls
    path, f = broken(tmp_path, bvh_dir, edit)
    raises(path, f"line {f['motion_line'] + 1}:", "'Frames: many' is not a whole number")


def test_writer_leaves_nothing_when_the_folder_is_missing(tmp_path, clips):
    target = tmp_path / "missing" / "out.bvh"
    with pytest.raises(OptiqError, match="does not exist"):
        write_bvh(clips["bvhio_example.bvh"], target)
    assert not target.parent.exists()


def test_writer_replaces_a_file_only_when_done(tmp_path, clips):
    target = tmp_path / "out.bvh"
    target.write_text("old")
    with pytest.raises(OptiqError):
        write_bvh(clips["bvhio_example.bvh"], target, unit="furlong")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bvh"]


def test_joints_with_one_or_no_rotation_channel(tmp_path, bvh_dir):
    """A joint with only Xrotation, and one with no channels, equal the full file with the missing angles at 0."""
    f = facts(bvh_dir / "pybvh_test2_YXZ.bvh")
    lines = list(f["lines"])
    head, data_at = lines[: f["motion_line"] - 1], f["first_data_line"] - 1
    data = [ln.split() for ln in lines[data_at:] if ln.split()]
    one, none = 2, 5  # joint indices; every joint but the root has 3 channels "Yrotation Xrotation Zrotation"
    start = {j: 6 + 3 * (j - 1) for j in (one, none)}
    zeroed = [list(row) for row in data]
    for row in zeroed:
        row[start[one]] = row[start[one] + 2] = "0"
        row[start[none]: start[none] + 3] = ["0", "0", "0"]
    drop = {start[one], start[one] + 2, *range(start[none], start[none] + 3)}
    reduced = [[v for c, v in enumerate(row) if c not in drop] for row in data]
    new_head, j = [], -1
    for ln in head:
        if ln.split()[:1] == ["CHANNELS"]:
            j += 1
            if j == one:
                ln = ln.split("CHANNELS")[0] + "CHANNELS 1 Xrotation"
            elif j == none:
                ln = ln.split("CHANNELS")[0] + "CHANNELS 0"
        new_head.append(ln)
    header = lines[f["motion_line"] - 1: data_at]
    (tmp_path / "full.bvh").write_text("\n".join(head + header + [" ".join(r) for r in zeroed]) + "\n")
    (tmp_path / "few.bvh").write_text("\n".join(new_head + header + [" ".join(r) for r in reduced]) + "\n")
    full = load_bvh(tmp_path / "full.bvh")[0]
    few = load_bvh(tmp_path / "few.bvh")[0]
    orders = rotation_orders(few)
    assert orders[one] == "X" and orders[none] == "-"
    np.testing.assert_allclose(few.world_positions(), full.world_positions(), rtol=0, atol=1e-12)
    write_bvh(few, tmp_path / "back.bvh")
    assert_same_motion(few, load_bvh(tmp_path / "back.bvh")[0])


def test_byte_order_mark_and_classic_mac_line_ends(tmp_path, bvh_dir, clips):
    from optiq.loaders.bvh import sniff_bvh

    text = (bvh_dir / "bvhio_example.bvh").read_text()
    path = tmp_path / "bom.bvh"
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r").encode())
    assert sniff_bvh(path, path.read_bytes()[:64])
    clip = load_bvh(path)[0]
    np.testing.assert_array_equal(clip.rotations, clips["bvhio_example.bvh"].rotations)
