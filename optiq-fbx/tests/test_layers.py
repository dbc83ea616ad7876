"""AnimationLayer blending against ufbx (the C library in a forked child: see ufbx_oracle.py).

Every file here is a real clip (DeepMimic walk) written by our writer, given more layers that move a few joints
with a second real clip's rotations (DeepMimic dance) and a uniform scale: blend modes additive, override and
override-passthrough, weights 50 and 100 percent (and an animated weight), rotation accumulation by layer
(quaternions) and by channel (Euler components), scale accumulation multiply and additive. World joint positions
agree with ufbx within 1e-5 of the motion's extent and local rotations within 1e-3 degrees, every frame and joint.
ufbx ignores Mute and Solo; FBX defines them (a muted layer does not play; when layers are soloed only those
play), so those files are compared with ufbx on the same file without the silenced layers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import optiq
import pytest
from optiq import quat
from optiq_fbx.binary_write import encode_fbx
from optiq_fbx.loader import load_fbx
from optiq_fbx.nodes import Node
from optiq_fbx.scene import object_name
from optiq_fbx.writer import fbx_nodes

sys.path.insert(0, str(Path(__file__).parent))
import ufbx_oracle  # noqa: E402

BASE = "deepmimic/humanoid3d_walk.txt"
SECOND = "deepmimic/humanoid3d_dance_a.txt"
JOINTS = ("chest", "right_hip", "left_knee", "right_shoulder")


@pytest.fixture(scope="module")
def clips(data_dir):
    return optiq.load_clip(data_dir / BASE), optiq.load_clip(data_dir / SECOND)


def _rotation_keys(top: list[Node]) -> dict[str, np.ndarray]:
    """Joint name -> the ``[K, 3]`` Lcl Rotation key values (degrees) of a tree from our writer."""
    by = {n.name: n for n in top}
    objects, links = by["Objects"], [c.props for c in by["Connections"].children]
    ids = {o.props[0]: o for o in objects.children}
    out = {}
    for c in links:
        if c[0] == "OP" and c[3] == "Lcl Rotation":
            curves = {d[3]: ids[d[1]] for d in links if d[0] == "OP" and d[2] == c[1]}
            out[object_name(ids[c[2]].props[1])] = np.stack([curves[f"d|{a}"].array("KeyValueFloat") for a in "XYZ"], axis=1)
    return out


def _layered(clips, path: Path, layers: list[dict], drop_base: bool = False) -> Path:
    """Write the base clip with extra layers. Each layer dict: ``props`` (layer Properties70 as name -> (type,
    value)), ``rotation`` (a scale for the second clip's rotations, or None), ``scale`` (amplitude of a uniform
    Lcl Scaling sinusoid, or None), ``weight_curve`` (percent per key, or None), ``phase`` (a key shift).
    ``drop_base``: unlink the writer's base layer from the stack (its curves then animate nothing)."""
    base, second = clips
    top = fbx_nodes(base)
    by = {n.name: n for n in top}
    objects, connections = by["Objects"], by["Connections"]
    stack = next(o for o in objects.children if o.name == "AnimationStack")
    models = {object_name(o.props[1]): o.props[0] for o in objects.children if o.name == "Model"}
    times = next(o for o in objects.children if o.name == "AnimationCurve").array("KeyTime")
    n = len(times)
    dance = _rotation_keys(fbx_nodes(second))
    next_id = iter(range(9_000_000, 10_000_000))
    if drop_base:
        connections.children = [c for c in connections.children if c.props[2] != stack.props[0]]

    def add(obj: Node, *links) -> np.int64:
        objects.children.append(obj)
        connections.children.extend(Node("C", list(link)) for link in links)
        return obj.props[0]

    def curve_node(layer_id, target, prop: str, values: np.ndarray, channels: str) -> None:
        """A curve node on ``target``'s ``prop`` with one linear curve per channel; values ``[n, C]``."""
        cn_id = np.int64(next(next_id))
        p70 = Node("Properties70", [], [Node("P", [f"d|{c}", "Number", "", "A", float(values[0, k])])
                                        for k, c in enumerate(channels)])
        add(Node("AnimationCurveNode", [cn_id, "\x00\x01AnimCurveNode", ""], [p70]),
            ("OO", cn_id, layer_id), ("OP", cn_id, target, prop))
        for k, c in enumerate(channels):
            curve_id = np.int64(next(next_id))
            add(Node("AnimationCurve", [curve_id, "\x00\x01AnimCurve", ""], [
                Node("Default", [float(values[0, k])]), Node("KeyVer", [4009]), Node("KeyTime", [times]),
                Node("KeyValueFloat", [values[:, k].astype(np.float32)]),
                Node("KeyAttrFlags", [np.array([0x4], np.int32)]),  # linear
                Node("KeyAttrDataFloat", [np.zeros(4, np.float32)]),
                Node("KeyAttrRefCount", [np.array([n], np.int32)])]), ("OP", curve_id, cn_id, f"d|{c}"))

    for k, spec in enumerate(layers):
        layer_id = np.int64(next(next_id))
        p70 = Node("Properties70", [], [Node("P", [name, type_, "", "A" if name == "Weight" else "", value])
                                        for name, (type_, value) in spec.get("props", {}).items()])
        add(Node("AnimationLayer", [layer_id, f"Layer{k}\x00\x01AnimLayer", ""], [p70]), ("OO", layer_id,
                                                                                         stack.props[0]))
        frames = (np.arange(n) + spec.get("phase", 0)) % len(next(iter(dance.values())))
        phase = np.linspace(0.0, 2.0 * np.pi, n)
        for j, joint in enumerate(JOINTS):
            if spec.get("rotation") is not None:
                curve_node(layer_id, models[joint], "Lcl Rotation", spec["rotation"] * dance[joint][frames], "XYZ")
            if spec.get("scale") is not None:
                s = 1.0 + spec["scale"] * np.sin(phase * (j + 1) + k)
                curve_node(layer_id, models[joint], "Lcl Scaling", np.repeat(s[:, None], 3, axis=1), "XYZ")
        if spec.get("weight_curve") is not None:
            curve_node(layer_id, layer_id, "Weight", np.asarray(spec["weight_curve"], float)[:, None], ["Weight"])
    path.write_bytes(encode_fbx(top))
    return path


def _errors(clip, oracle) -> tuple[float, float, np.ndarray]:
    """Our clip against ufbx's result: position error relative to the extent, local rotation error (degrees),
    and ufbx's world positions in optiq's axes and metres ``[T, J, 3]`` (as test_oracle.py compares them)."""
    (stack,) = oracle["stacks"]
    expected, local = ufbx_oracle.as_clip_motion(oracle, stack, clip.skeleton)
    extent = float(np.ptp(expected.reshape(-1, 3), axis=0).max())
    pos_err = float(np.abs(clip.world_positions() - expected).max()) / extent
    rot_err = float(np.degrees(quat.angle_between(clip.rotations, local)).max())
    return pos_err, rot_err, expected


def _mode(blend: int, weight: float, rotation: int = 0, scale: int = 0) -> dict:
    return {"Weight": ("Number", weight), "BlendMode": ("enum", blend), "RotationAccumulationMode": ("enum", rotation),
            "ScaleAccumulationMode": ("enum", scale)}


ADD, OVERRIDE, PASSTHROUGH = 0, 1, 2
BY_LAYER, BY_CHANNEL = 0, 1
MULTIPLY, SCALE_ADD = 0, 1
CASES = {
    "additive by layer 50": [{"props": _mode(ADD, 50.0, BY_LAYER), "rotation": 1.0}],
    "additive by layer 100": [{"props": _mode(ADD, 100.0, BY_LAYER), "rotation": 1.0}],
    "additive by channel 50": [{"props": _mode(ADD, 50.0, BY_CHANNEL), "rotation": 1.0}],
    "override 50 (weight unused)": [{"props": _mode(OVERRIDE, 50.0), "rotation": 1.0}],
    "passthrough by layer 50": [{"props": _mode(PASSTHROUGH, 50.0, BY_LAYER), "rotation": 1.0}],
    "passthrough by channel 50": [{"props": _mode(PASSTHROUGH, 50.0, BY_CHANNEL), "rotation": 1.0}],
    "scale multiply additive 50": [{"props": _mode(ADD, 50.0, scale=MULTIPLY), "scale": 0.4}],
    "scale added 50": [{"props": _mode(ADD, 50.0, scale=SCALE_ADD), "scale": 0.4}],
    "scale multiply passthrough 50": [{"props": _mode(PASSTHROUGH, 50.0, scale=MULTIPLY), "scale": 0.4}],
    "three layers": [{"props": _mode(ADD, 50.0, BY_LAYER, MULTIPLY), "rotation": 1.0, "scale": 0.3},
                     {"props": _mode(PASSTHROUGH, 70.0, BY_CHANNEL, SCALE_ADD), "rotation": 0.5, "phase": 7},
                     {"props": _mode(ADD, 100.0, BY_CHANNEL), "rotation": 0.3, "phase": 13}],
    "animated weight": [{"props": _mode(PASSTHROUGH, 100.0, BY_LAYER), "rotation": 1.0,
                         "weight_curve": np.linspace(-20.0, 120.0, 39)}],
}


@pytest.fixture(scope="module")
def walk_only(clips, tmp_path_factory):
    """The base clip read back from our writer's file without extra layers."""
    path = tmp_path_factory.mktemp("plain") / "plain.fbx"
    path.write_bytes(encode_fbx(fbx_nodes(clips[0])))
    return load_fbx(path)[0]


@pytest.mark.parametrize("case", list(CASES))
def test_layer_blending_matches_ufbx(clips, tmp_path, walk_only, case):
    path = _layered(clips, tmp_path / "layers.fbx", CASES[case])
    (clip,) = load_fbx(path)
    pos_err, rot_err, expected = _errors(clip, ufbx_oracle.oracle_positions(path))
    assert pos_err <= 1e-5, f"{case}: position error {pos_err:.3g} of the extent"
    assert rot_err <= 1e-3, f"{case}: local rotation error {rot_err:.3g} degrees"
    # The layers move the joints: the comparison is not one of the unlayered walk with itself.
    extent = float(np.ptp(expected.reshape(-1, 3), axis=0).max())
    assert np.abs(walk_only.world_positions() - expected).max() > 0.02 * extent


def test_rotation_accumulation_modes_differ(clips, tmp_path):
    """By layer (quaternions) and by channel (Euler sums) give different poses for the same curves: the
    agreement above decides between them."""
    a = load_fbx(_layered(clips, tmp_path / "a.fbx", CASES["additive by layer 50"]))[0]
    b = load_fbx(_layered(clips, tmp_path / "b.fbx", CASES["additive by channel 50"]))[0]
    extent = float(np.ptp(a.world_positions().reshape(-1, 3), axis=0).max())
    assert np.abs(a.world_positions() - b.world_positions()).max() > 0.01 * extent


LAST = {"props": _mode(PASSTHROUGH, 50.0, BY_LAYER), "rotation": 0.7, "phase": 11}


def test_a_muted_layer_does_not_play(clips, tmp_path):
    """A muted additive layer between the base and a passthrough layer: read as the file without it."""
    muted = {"props": {**_mode(ADD, 100.0, BY_LAYER), "Mute": ("bool", 1)}, "rotation": 1.0}
    path = _layered(clips, tmp_path / "muted.fbx", [muted, LAST])
    reference = _layered(clips, tmp_path / "ref.fbx", [LAST])
    (clip,) = load_fbx(path)
    pos_err, rot_err, _ = _errors(clip, ufbx_oracle.oracle_positions(reference))
    assert pos_err <= 1e-5 and rot_err <= 1e-3, (pos_err, rot_err)
    # ufbx itself plays the muted layer (it ignores Mute): its reading of the muted file differs.
    assert _errors(clip, ufbx_oracle.oracle_positions(path))[0] > 1e-3


def test_only_soloed_layers_play(clips, tmp_path):
    """With a layer soloed, the base and the other layers are silent; the soloed layer, the first that plays, is
    the base: read as the file whose stack holds only that layer."""
    solo = {"props": {**_mode(ADD, 50.0, BY_LAYER), "Solo": ("bool", 1)}, "rotation": 0.5, "phase": 5}
    other = {"props": _mode(ADD, 50.0, BY_CHANNEL), "rotation": 1.0}
    path = _layered(clips, tmp_path / "solo.fbx", [other, solo])
    reference = _layered(clips, tmp_path / "ref.fbx", [solo], drop_base=True)
    (clip,) = load_fbx(path)
    pos_err, rot_err, _ = _errors(clip, ufbx_oracle.oracle_positions(reference))
    assert pos_err <= 1e-5 and rot_err <= 1e-3, (pos_err, rot_err)
    assert _errors(clip, ufbx_oracle.oracle_positions(path))[0] > 1e-3  # ufbx ignores Solo
