"""The NPY trajectory loader on a file built from two real DeepMimic clips (walk then run): every spherical joint
written as three hinge dofs (intrinsic Z, Y, X angles from scipy), every revolute knee and elbow as one hinge about
Z. The loaded clips must reproduce the DeepMimic loader's world positions. Then bad inputs."""

from __future__ import annotations

import json

import numpy as np
import optiq
import pytest
from optiq import ParseError
from optiq.loaders.deepmimic import load_deepmimic
from optiq.loaders.npy_traj import load_npy_traj
from scipy.spatial.transform import Rotation

CLIPS = ("humanoid3d_walk.txt", "humanoid3d_run.txt")


def _spec_and_rows(data_dir, root_rot_order):
    joints = json.loads((data_dir / "deepmimic" / "humanoid3d_character.txt").read_text())["Skeleton"]["Joints"]
    dofs = []
    for j in joints[1:]:
        if j["Type"] == "spherical":
            dofs += [{"name": f"{j['Name']}_{a}", "joint": j["Name"], "axis": a} for a in "zyx"]
        elif j["Type"] == "revolute":
            dofs.append({"name": j["Name"], "joint": j["Name"], "axis": [0, 0, 1]})
    spec = {
        "format": "optiq-npy-trajectory-spec", "version": 1, "up": "y", "unit": "m",
        "root_rot_order": root_rot_order,
        "skeleton": {
            "names": [j["Name"] for j in joints],
            "parents": [j["Parent"] for j in joints],
            "offsets": [[0.0, 0.0, 0.0]] + [[j["AttachX"], j["AttachY"], j["AttachZ"]] for j in joints[1:]],
        },
        "dofs": dofs,
    }
    blocks = []
    for k, name in enumerate(CLIPS):
        frames = np.array(json.loads((data_dir / "deepmimic" / name).read_text())["Frames"])
        t = len(frames)
        root_rot = frames[:, 4:8] if root_rot_order == "wxyz" else frames[:, [5, 6, 7, 4]]
        cols, c = [], 8
        for j in joints[1:]:
            if j["Type"] == "spherical":
                cols.append(Rotation.from_quat(frames[:, c:c + 4][:, [1, 2, 3, 0]]).as_euler("ZYX"))
                c += 4
            elif j["Type"] == "revolute":
                cols.append(frames[:, c:c + 1])
                c += 1
        flag = np.zeros((t, 1))
        flag[0] = 1.0 if k > 0 else 0.0
        time = np.arange(t)[:, None] * frames[0, 0]
        blocks.append(np.hstack([time, frames[:, 1:4], root_rot, *cols, flag]))
    return spec, np.vstack(blocks)


@pytest.fixture()
def traj(data_dir, tmp_path):
    spec, rows = _spec_and_rows(data_dir, "xyzw")
    path = tmp_path / "walk_run.npy"
    np.save(path, rows)
    (tmp_path / "walk_run.spec.json").write_text(json.dumps(spec))
    return path, spec, rows


def test_reproduces_real_clips(data_dir, traj):
    path, spec, rows = traj
    assert rows.shape == (39 + 25, 9 + 3 * 8 + 4)
    clips = optiq.load(path)
    assert [c.num_frames for c in clips] == [39, 25]
    assert [c.fps for c in clips] == [30.0, 30.0]
    assert [c.labels["first_row"] for c in clips] == ["0", "39"]
    for clip, name in zip(clips, CLIPS, strict=True):
        # optiq.load lists joints depth-first (docs/loaders.md); the spec lists them in DeepMimic's order.
        want = load_deepmimic(data_dir / "deepmimic" / name)[0].with_joint_order(clip.skeleton.names)
        np.testing.assert_allclose(clip.world_positions(), want.world_positions(), atol=1e-9)
        np.testing.assert_allclose(clip.skeleton.offsets, want.skeleton.offsets, atol=1e-12)


def test_wxyz_order_and_end_flags(data_dir, tmp_path):
    spec, rows = _spec_and_rows(data_dir, "wxyz")
    rows[:, -1] = 0.0
    rows[38, -1] = 1.0  # the walk's last row ends a clip
    path = tmp_path / "t.npy"
    np.save(path, rows)
    spec_path = tmp_path / "my_spec.json"
    spec_path.write_text(json.dumps(spec))
    clips = load_npy_traj(path, spec=spec_path, transition="end")
    assert [c.num_frames for c in clips] == [39, 25]
    want = load_deepmimic(data_dir / "deepmimic" / CLIPS[1])[0]
    np.testing.assert_allclose(clips[1].world_positions(), want.world_positions(), atol=1e-9)
    # Read as a start flag, the walk's last row would open the run's clip, where time then jumps back to 0.
    with pytest.raises(ParseError, match=r"t\.npy: row 39: time does not increase \(1\.266616 then 0\.0\)"):
        load_npy_traj(path, spec=spec_path)


def test_bad_inputs(traj, tmp_path):
    path, spec, rows = traj
    bad = tmp_path / "bad.npy"
    spec_text = json.dumps(spec)
    (tmp_path / "bad.spec.json").write_text(spec_text)

    np.save(bad, rows[:, 1:])
    with pytest.raises(ParseError, match=r"bad\.npy: data: 36 columns, expected 37 = 9 \+ 28 dofs"):
        load_npy_traj(bad)
    broken = rows.copy()
    broken[7, 12] = np.nan
    np.save(bad, broken)
    with pytest.raises(ParseError, match=r"bad\.npy: row 7: column 12 is nan"):
        load_npy_traj(bad)
    broken = rows.copy()
    broken[3, -1] = 2.0
    np.save(bad, broken)
    with pytest.raises(ParseError, match=r"row 3: transition flag is 2, expected 0 or 1"):
        load_npy_traj(bad)
    broken = rows.copy()
    broken[10, 0] = broken[9, 0]
    np.save(bad, broken)
    with pytest.raises(ParseError, match=r"row 10: time does not increase"):
        load_npy_traj(bad)

    lonely = tmp_path / "lonely.npy"
    np.save(lonely, rows)
    with pytest.raises(ParseError, match=r"lonely\.npy: no spec file lonely\.spec\.json"):
        load_npy_traj(lonely)

    raw = path.read_bytes()
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ParseError, match=r"bad\.npy: data: not a plain numeric \.npy array or truncated"):
        load_npy_traj(bad)
    bad.write_bytes(b"")
    with pytest.raises(ParseError, match=r"bad\.npy: file is empty"):
        load_npy_traj(bad)
    np.save(bad, np.array({"a": 1}, dtype=object), allow_pickle=True)
    with pytest.raises(ParseError, match=r"bad\.npy: data: not a plain numeric"):
        load_npy_traj(bad)


def test_bad_spec(traj, tmp_path):
    path, spec, _ = traj
    spec_path = tmp_path / "walk_run.spec.json"

    def load_with(edit):
        doc = json.loads(json.dumps(spec))
        edit(doc)
        spec_path.write_text(json.dumps(doc))
        return load_npy_traj(path)

    with pytest.raises(ParseError, match=r"walk_run\.spec\.json: dofs\[4\]\.joint: joint 'elbow' is not in"):
        load_with(lambda d: d["dofs"][4].__setitem__("joint", "elbow"))
    with pytest.raises(ParseError, match=r"dofs\[0\]\.axis: axis 'w' must be x, y, z"):
        load_with(lambda d: d["dofs"][0].__setitem__("axis", "w"))
    with pytest.raises(ParseError, match=r"spec\.json: skeleton\.parents: missing key 'parents'"):
        load_with(lambda d: d["skeleton"].pop("parents"))
    with pytest.raises(ParseError, match=r"root_rot_order: root_rot_order 'zyxw'"):
        load_with(lambda d: d.__setitem__("root_rot_order", "zyxw"))
    spec_path.write_text(json.dumps(spec)[:-20])
    with pytest.raises(ParseError, match=r"walk_run\.spec\.json: line 1, column \d+: invalid JSON in spec file"):
        load_npy_traj(path)
