"""The DeepMimic loader on every humanoid3d motion: counts as the files state them, world positions against an
independent re-implementation of DeepMimic's own kinematics (4x4 matrices, as cKinTree builds them), and bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import optiq
import pytest
from optiq import ParseError
from optiq.loaders.deepmimic import load_deepmimic, sniff_deepmimic
from scipy.spatial.transform import Rotation

DATA = "deepmimic"
CHARACTER = "humanoid3d_character.txt"


def _motions(data_dir):
    return sorted(p for p in (data_dir / DATA).glob("humanoid3d_*.txt") if p.name != CHARACTER)


@pytest.fixture(scope="module")
def character(data_dir):
    return json.loads((data_dir / DATA / CHARACTER).read_text())["Skeleton"]["Joints"]


def test_every_motion_as_the_file_states(data_dir, character):
    motions = _motions(data_dir)
    assert len(motions) == 9
    for path in motions:
        doc = json.loads(path.read_text())
        clip = optiq.load_clip(path)
        assert clip.num_frames == len(doc["Frames"]), path.name
        assert clip.num_joints == len(character) == 15
        # optiq.load lists joints depth-first (docs/loaders.md, "Joint order"); the loader keeps the file's order.
        assert clip.skeleton.names == _depth_first_names(character)
        assert load_deepmimic(path)[0].skeleton.names == tuple(j["Name"] for j in character)
        dt = doc["Frames"][0][0]
        assert clip.fps == round(1.0 / dt) and abs(clip.fps - 1.0 / dt) < 0.01, path.name
        assert clip.labels["loop"] == doc["Loop"]
        assert len(doc["Frames"][0]) == 44


def _depth_first_names(joints: list[dict]) -> tuple[str, ...]:
    """Joint names in depth-first pre-order from the root, children in file order, from the Parent fields."""
    children: dict[int, list[dict]] = {}
    for j in joints:
        children.setdefault(j["Parent"], []).append(j)
    names: list[str] = []

    def visit(joint: dict) -> None:
        names.append(joint["Name"])
        for child in children.get(joint["ID"], []):
            visit(child)

    visit(joints[0])
    return tuple(names)


def _deepmimic_fk(frames: np.ndarray, joints: list[dict]) -> np.ndarray:
    """World joint positions [T, J, 3] in DeepMimic's own axes (Y up), following cKinTree::JointWorldTrans:
    W_j = W_parent * A_j * R_j, with R_j a quaternion (spherical), a rotation about Z (revolute) or identity."""
    t = len(frames)
    world = np.zeros((t, len(joints), 4, 4))
    col = 1
    for j, joint in enumerate(joints):
        attach = np.eye(4)
        if j > 0:
            attach[:3, 3] = [joint["AttachX"], joint["AttachY"], joint["AttachZ"]]
        own = np.tile(np.eye(4), (t, 1, 1))
        if j == 0:
            own[:, :3, 3] = frames[:, col:col + 3]
            own[:, :3, :3] = Rotation.from_quat(frames[:, col + 3:col + 7][:, [1, 2, 3, 0]]).as_matrix()
            col += 7
        elif joint["Type"] == "spherical":
            own[:, :3, :3] = Rotation.from_quat(frames[:, col:col + 4][:, [1, 2, 3, 0]]).as_matrix()
            col += 4
        elif joint["Type"] == "revolute":
            own[:, :3, :3] = Rotation.from_rotvec(np.outer(frames[:, col], [0.0, 0.0, 1.0])).as_matrix()
            col += 1
        parent = world[:, joint["Parent"]] if j > 0 else np.eye(4)
        world[:, j] = parent @ attach @ own
    assert col == frames.shape[1]
    return world[:, :, :3, 3]


@pytest.mark.parametrize("name", ["humanoid3d_walk.txt", "humanoid3d_backflip.txt", "humanoid3d_cartwheel.txt"])
def test_world_positions_match_deepmimic_kinematics(data_dir, character, name):
    path = data_dir / DATA / name
    frames = np.array(json.loads(path.read_text())["Frames"])
    expected = _deepmimic_fk(frames, character)  # Y up
    got = load_deepmimic(path)[0].world_positions()  # Z up: optiq (x, y, z) = DeepMimic (z, x, y)
    np.testing.assert_allclose(got, expected[..., [2, 0, 1]], atol=2e-6)


def test_walk_stands_on_the_ground_z_up(data_dir):
    clip = load_deepmimic(data_dir / DATA / "humanoid3d_walk.txt")[0]
    pos = clip.world_positions()
    sk = clip.skeleton
    ankles = pos[:, [sk.index("right_ankle"), sk.index("left_ankle")], 2]
    assert 0.0 < ankles.min() < 0.1
    assert (pos[:, sk.index("neck"), 2] > pos[:, 0, 2] + 0.3).all()
    # Knees bend backwards only if revolute joints turn about +Z, DeepMimic's lateral axis (right_hip sits at
    # +Z): then thigh x shin points to the character's left whenever the knee is bent.
    frames = np.array(json.loads((data_dir / DATA / "humanoid3d_walk.txt").read_text())["Frames"])
    bent = frames[:, 20] < -0.3  # the right knee's angle
    assert bent.sum() > 5
    right = pos[bent, sk.index("right_hip")] - pos[bent, 0]
    thigh = pos[bent, sk.index("right_knee")] - pos[bent, sk.index("right_hip")]
    shin = pos[bent, sk.index("right_ankle")] - pos[bent, sk.index("right_knee")]
    assert (np.einsum("ti,ti->t", np.cross(thigh, shin), right) < 0).all()


def test_explicit_character_and_sniffing(data_dir, tmp_path):
    motion = data_dir / DATA / "humanoid3d_run.txt"
    lonely = tmp_path / "run.txt"
    shutil.copy(motion, lonely)
    with pytest.raises(ParseError, match=r"run\.txt: no character file"):
        load_deepmimic(lonely)
    clip = load_deepmimic(lonely, character=data_dir / DATA / CHARACTER)[0]
    assert clip.num_frames == 25 and clip.labels["character"] == CHARACTER
    assert sniff_deepmimic(motion, motion.read_bytes()[:4096])
    assert not sniff_deepmimic(data_dir / DATA / CHARACTER, (data_dir / DATA / CHARACTER).read_bytes()[:4096])
    assert clip.num_frames == len(optiq.load(lonely, character=data_dir / DATA / CHARACTER)[0])
    with pytest.raises(ParseError, match=r"humanoid3d_character\.txt: Skeleton: is a DeepMimic character file"):
        load_deepmimic(data_dir / DATA / CHARACTER)


@pytest.fixture()
def broken(data_dir, tmp_path):
    """Write a broken motion beside a copy of the character file; returns the writer."""
    shutil.copy(data_dir / DATA / CHARACTER, tmp_path / CHARACTER)
    walk = json.loads((data_dir / DATA / "humanoid3d_walk.txt").read_text())

    def write(text=None, edit=None):
        path = tmp_path / "humanoid3d_broken.txt"
        if text is None:
            doc = json.loads(json.dumps(walk))
            edit(doc)
            text = json.dumps(doc)
        path.write_text(text)
        return path

    return write, (data_dir / DATA / "humanoid3d_walk.txt").read_text()


def test_bad_motion_files(broken):
    write, walk_text = broken
    with pytest.raises(ParseError, match=r"humanoid3d_broken\.txt: motion file is empty"):
        load_deepmimic(write(text=""))
    cut = walk_text[: len(walk_text) // 2]
    with pytest.raises(ParseError, match=r"humanoid3d_broken\.txt: line \d+, column \d+: invalid JSON"):
        load_deepmimic(write(text=cut))
    with pytest.raises(ParseError, match=r"frame 5: 43 numbers, expected 44"):
        load_deepmimic(write(edit=lambda d: d["Frames"][5].pop()))
    with pytest.raises(ParseError, match=r"frame 7: every value must be a number"):
        load_deepmimic(write(edit=lambda d: d["Frames"][7].__setitem__(3, "x")))
    with pytest.raises(ParseError, match=r"frame 3: value 12 is nan"):
        load_deepmimic(write(text=json.dumps({"Loop": "wrap", "Frames": _with_nan(walk_text, 3, 12)})))
    with pytest.raises(ParseError, match=r"Loop: Loop is 'sometimes'"):
        load_deepmimic(write(edit=lambda d: d.__setitem__("Loop", "sometimes")))
    with pytest.raises(ParseError, match=r'Frames: expected a DeepMimic motion: a JSON object with "Frames"'):
        load_deepmimic(write(text='{"Loop": "wrap"}'))
    with pytest.raises(ParseError, match=r"frame 2: dt 0.05 differs"):
        load_deepmimic(write(edit=lambda d: d["Frames"][2].__setitem__(0, 0.05)))
    with pytest.raises(ParseError, match=r"frame 4: joint 'chest' has a zero quaternion"):
        load_deepmimic(write(edit=lambda d: d["Frames"][4].__setitem__(slice(8, 12), [0, 0, 0, 0])))


def _with_nan(walk_text: str, frame: int, col: int) -> list:
    frames = json.loads(walk_text)["Frames"]
    frames[frame][col] = float("nan")
    return frames


def test_bad_character_files(broken, tmp_path):
    write, _ = broken
    motion = write(edit=lambda d: None)
    char = json.loads((tmp_path / CHARACTER).read_text())

    def with_character(edit):
        doc = json.loads(json.dumps(char))
        edit(doc["Skeleton"]["Joints"])
        (tmp_path / CHARACTER).write_text(json.dumps(doc))

    with_character(lambda js: js[4].__setitem__("Type", "spherical"))  # the knee now wants 4 numbers
    with pytest.raises(ParseError, match=r"frame 0: 44 numbers, expected 47"):
        load_deepmimic(motion)
    with_character(lambda js: js[4].__setitem__("Type", "planar"))
    with pytest.raises(ParseError, match=r"Skeleton.Joints\[4\]: unsupported joint type 'planar'"):
        load_deepmimic(motion)
    with_character(lambda js: js.insert(2, js.pop(3)))
    with pytest.raises(ParseError, match=r"Skeleton.Joints\[2\]: joint ID 3 out of order"):
        load_deepmimic(motion)
    with_character(lambda js: js[6].pop("Parent"))
    with pytest.raises(ParseError, match=r"Skeleton.Joints\[6\]: joint has no 'Parent'"):
        load_deepmimic(motion)
