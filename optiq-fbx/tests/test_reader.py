"""The FBX reader on the real files: counts the data README states and that the files show independently, the
loader options, and a second format of the same person (CMU subject 1 as FBX and as BVH)."""

from __future__ import annotations

import struct

import numpy as np
import optiq
import optiq.axes
import pytest
from optiq.errors import ParseError
from optiq_fbx.loader import load_fbx
from optiq_fbx.scene import object_name


def _limbnode_models(data: bytes) -> int:
    """Binary FBX: Model records whose type property (an 'S' of 8 bytes) is LimbNode, counted in the raw bytes."""
    return data.count(b"\x00\x01ModelS\x08\x00\x00\x00LimbNode")


@pytest.mark.parametrize("name, bones, joints, fps, frames", [
    ("01_01_cmu.fbx", 38, 38, 120, 2752),
    ("ufbx_blender_293_barbarian_7400_binary.fbx", 30, 31, 24, 63),  # 30 bones under the Armature Null root
    ("assimp_huesitos.fbx", 11, 11, 25, 40),
])
def test_counts_match_readme_and_file(data_dir, name, bones, joints, fps, frames):
    path = data_dir / "fbx" / name
    (clip,) = load_fbx(path)
    assert _limbnode_models(path.read_bytes()) == bones
    assert clip.num_joints == joints
    assert clip.fps == fps
    assert clip.num_frames == frames


def test_cmu_files_are_38_joints_at_120_fps(data_dir):
    for name in ("07_01_cmu.fbx", "08_02_cmu.fbx", "09_11_cmu.fbx"):
        (clip,) = load_fbx(data_dir / "fbx" / name)
        assert (clip.num_joints, clip.fps) == (38, 120)
        assert clip.skeleton.names[0] == "Hips"


def test_loaded_through_the_entry_point(data_dir):
    (clip,) = optiq.load(data_dir / "fbx" / "assimp_huesitos.fbx")
    assert clip.name == "assimp_huesitos" and clip.labels["stack"] == "Armature|Action"


def test_stack_and_fps_options(data_dir):
    path = data_dir / "fbx" / "01_01_cmu.fbx"
    (full,) = load_fbx(path)
    (slow,) = load_fbx(path, stack="01_01|01_01", fps=30)
    assert slow.num_frames == 2751 // 4 + 1
    # Every 4th frame at 120 fps is a frame at 30 fps.
    np.testing.assert_allclose(slow.world_positions(), full.world_positions()[::4], atol=1e-9)
    with pytest.raises(ParseError, match=r"no animation stack 'nope'; stacks: 01_01\|01_01"):
        load_fbx(path, stack="nope")


def test_no_animation_is_an_error_or_a_rest_pose(data_dir, tmp_path):
    text = (data_dir / "fbx" / "ufbx_maya_anim_interpolation_7700_ascii.fbx").read_text()
    broken = tmp_path / "still.fbx"
    broken.write_text(text.replace("AnimationStack: ", "NotAStack: "))
    with pytest.raises(ParseError, match="still.fbx: Objects: the file has no animation stack"):
        load_fbx(broken)
    (rest,) = load_fbx(broken, rest_pose=True)
    assert rest.num_frames == 1 and rest.labels["rest_pose"] == "1"
    np.testing.assert_allclose(rest.rotations[..., 0], 1.0)


def test_same_person_as_bvh_up_to_one_scale(data_dir):
    """CMU subject 1 in FBX (01_01) and in BVH (01_14): every shared bone's length agrees after one uniform scale.

    The joints carry the same names in both files (cgspeed's conversion). The root's offset is a position, not a
    bone, and zero-length bones (hip, shoulder and finger joints at their parent) carry no scale information."""
    (fbx,) = load_fbx(data_dir / "fbx" / "01_01_cmu.fbx")
    (bvh,) = optiq.load(data_dir / "bvh" / "cmu_01_14_bvhtodeepmimic.bvh")
    shared = [n for n in fbx.skeleton.names[1:] if n in bvh.skeleton.names]
    assert len(shared) == 30
    a = np.array([np.linalg.norm(fbx.skeleton.offsets[fbx.skeleton.index(n)]) for n in shared])
    b = np.array([np.linalg.norm(bvh.skeleton.offsets[bvh.skeleton.index(n)]) for n in shared])
    bones = (a > 1e-3 * a.max()) & (b > 1e-3 * b.max())
    assert bones.sum() == 20
    scale = float(a[bones] @ b[bones] / (a[bones] @ a[bones]))  # least squares: b ~ scale * a
    rel = np.abs(b[bones] - scale * a[bones]) / b[bones]
    assert rel.max() < 5e-6  # measured 1.1e-6 (Head)
    # The FBX states centimetres but its armature holds CMU units (1/0.45 inch): the scale is that unit in metres.
    assert scale == pytest.approx(0.0254 / 0.45, rel=1e-5)


def test_written_file_keeps_the_joint_order(data_dir, tmp_path):
    """DeepMimic's joint order (root, chest, neck, right_hip, ...) is parents-first but not depth-first: the FBX
    written from it lists its Models in that order, and reading it back keeps it."""
    clip = optiq.load_clip(data_dir / "deepmimic" / "humanoid3d_walk.txt")
    out = tmp_path / "walk.fbx"
    optiq.save_clip(clip, out)
    (back,) = load_fbx(out)
    assert back.skeleton.names == clip.skeleton.names
    np.testing.assert_array_equal(back.skeleton.parents, clip.skeleton.parents)


def test_models_listed_child_first_give_a_stable_parents_first_order(data_dir, tmp_path):
    """The same file with the root Model moved to the end of Objects: the order becomes parents-first again,
    otherwise following the file (here: the clip's order)."""
    from optiq_fbx.binary_write import encode_fbx
    from optiq_fbx.writer import fbx_nodes

    clip = optiq.load_clip(data_dir / "deepmimic" / "humanoid3d_walk.txt")
    nodes = fbx_nodes(clip)
    objects = next(n for n in nodes if n.name == "Objects")
    models = [c for c in objects.children if c.name == "Model"]
    objects.children.remove(models[0])
    objects.children.append(models[0])
    out = tmp_path / "root_last.fbx"
    out.write_bytes(encode_fbx(nodes))
    (back,) = load_fbx(out)
    assert back.skeleton.names == clip.skeleton.names


def test_unit_option_overrides_the_declared_unit(data_dir):
    """The CMU FBX files declare centimetres (UnitScaleFactor 1) but hold CMU units under a top Null scaled by
    100, so the person comes out ~30 m tall; metres per file unit = CMU unit / 100 gives a person of human
    height (head above toes, every frame's maximum: 1.4..1.9 m). ``unit="cmu"`` replaces only the declared unit,
    so the Null's scale of 100 remains."""
    path = data_dir / "fbx" / "01_01_cmu.fbx"
    (declared,) = load_fbx(path)
    (cmu,) = load_fbx(path, unit="cmu")
    (fixed,) = load_fbx(path, unit=optiq.axes.LENGTH_UNITS["cmu"] / 100)

    def height(clip):
        z = clip.world_positions()[..., 2]
        return float((z[:, clip.skeleton.index("Head")] - z.min(axis=1)).max())

    assert 25.0 < height(declared) < 35.0
    assert 1.4 < height(fixed) < 1.9
    assert height(cmu) == pytest.approx(height(declared) * optiq.axes.LENGTH_UNITS["cmu"] / 0.01, rel=1e-9)
    assert fixed.labels["length_unit"] == "0.000564444444444 m"
    np.testing.assert_allclose(fixed.world_positions(), declared.world_positions() * 0.0564444444444444,
                               rtol=0, atol=1e-9)


def test_end_of_list_record_is_one_header_long(tmp_path, data_dir):
    """The zero record closing a list of 32-bit headers is 13 bytes: after the top-level list the parser stands
    on the footer, right after those 13 zero bytes."""
    from optiq_fbx.binary import _read_node

    data = (data_dir / "fbx" / "01_01_cmu.fbx").read_bytes()
    head = struct.Struct("<IIIB")
    pos = 27
    while True:
        node, after = _read_node(data, pos, len(data), head, tmp_path, "")
        if node is None:
            break
        pos = after
    assert after - pos == 13 and data[pos:after] == bytes(13)


def test_auto_unit_is_the_declared_unit(data_dir):
    """``unit="auto"`` (what the other loaders and ``optiq data convert --unit auto`` mean by "guess the unit") is
    the unit the FBX declares, not metres."""
    path = data_dir / "fbx" / "assimp_huesitos.fbx"
    (declared,) = load_fbx(path)
    (auto,) = load_fbx(path, unit="auto")
    (metres,) = load_fbx(path, unit="m")
    np.testing.assert_array_equal(auto.world_positions(), declared.world_positions())
    assert auto.labels["length_unit"] == declared.labels["length_unit"] == "0.01 m"
    assert np.abs(metres.world_positions()).max() > 50 * np.abs(declared.world_positions()).max()


def _written(data_dir):
    """A real clip (DeepMimic walk) as an FBX node tree from our writer, with lookups by id."""
    from optiq_fbx.writer import fbx_nodes

    clip = optiq.load_clip(data_dir / "deepmimic" / "humanoid3d_walk.txt")
    top = fbx_nodes(clip)
    by = {n.name: n for n in top}
    objects, connections = by["Objects"], by["Connections"]
    return clip, top, objects, connections


def _set_p(obj, key: str, value) -> None:
    props = obj.find("Properties70")
    for p in props.children:
        if p.props[0] == key:
            p.props[-1] = value
            return
    raise KeyError(key)


def test_curve_without_keys_keeps_the_curve_node_value(data_dir, tmp_path):
    """An AnimationCurve with no keys leaves its curve node's d|X/d|Y/d|Z in place (not zero)."""
    from optiq_fbx.binary_write import encode_fbx

    clip, top, objects, connections = _written(data_dir)
    ids = {o.props[0]: o for o in objects.children}
    links = [c.props for c in connections.children]
    joint = "right_hip"
    model = next(i for i, o in ids.items() if o.name == "Model" and object_name(o.props[1]) == joint)
    node = next(ids[c[1]] for c in links if c[0] == "OP" and c[2] == model and c[3] == "Lcl Rotation")
    for axis, value in zip("XYZ", (30.0, 0.0, 0.0), strict=True):
        _set_p(node, f"d|{axis}", value)
    for c in links:
        if c[0] == "OP" and c[2] == node.props[0]:
            for arr in ids[c[1]].children:
                if arr.name.startswith("Key") and arr.name != "KeyVer":
                    arr.props[0] = arr.props[0][:0]
    path = tmp_path / "keyless.fbx"
    path.write_bytes(encode_fbx(top))
    got = load_fbx(path)[0]
    # The writer's file is Y up: its X axis is optiq's Y axis, so Rx(30 deg) in the file is a turn about optiq Y.
    want = np.array([np.cos(np.radians(15)), 0.0, np.sin(np.radians(15)), 0.0])
    angle = optiq.quat.angle_between(got.rotations[:, got.skeleton.index(joint)], want)
    assert np.degrees(angle).max() < 1e-4


def test_a_muted_first_layer_leaves_the_next_layer_as_the_base(data_dir, tmp_path):
    """With the first layer muted, the next layer that plays is the base: it replaces the model's own Lcl
    Rotation instead of being added to it."""
    from optiq_fbx.binary_write import encode_fbx
    from optiq_fbx.nodes import Node

    clip, top, objects, connections = _written(data_dir)
    stack = next(o for o in objects.children if o.name == "AnimationStack")
    layer = next(o for o in objects.children if o.name == "AnimationLayer")
    joint = "chest"
    model = next(o for o in objects.children if o.name == "Model" and object_name(o.props[1]) == joint)
    plain = tmp_path / "plain.fbx"
    plain.write_bytes(encode_fbx(top))

    layer.children = [Node("Properties70", [], [Node("P", ["Mute", "bool", "", "", 1])])]
    second = Node("AnimationLayer", [np.int64(9_000_001), "Second\x00\x01AnimLayer", ""], [])
    objects.children.append(second)
    curve_nodes = [c.props[1] for c in connections.children if c.props[0] == "OO" and c.props[2] == layer.props[0]]
    connections.children.append(Node("C", ["OO", second.props[0], stack.props[0]]))
    connections.children += [Node("C", ["OO", cn, second.props[0]]) for cn in curve_nodes]
    model.find("Properties70").children.append(
        Node("P", ["Lcl Rotation", "Lcl Rotation", "", "A", 40.0, 0.0, 0.0]))
    layered = tmp_path / "layered.fbx"
    layered.write_bytes(encode_fbx(top))

    # The model's own Lcl Rotation also moves the rest pose the clip is folded against, so compare world
    # positions: added on top (the old reading) the chest would turn 40 degrees further.
    want, got = load_fbx(plain)[0], load_fbx(layered)[0]
    np.testing.assert_allclose(got.world_positions(), want.world_positions(), atol=1e-6)
