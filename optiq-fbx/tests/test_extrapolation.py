"""Curve extrapolation (Pre-/Post-Extrapolation: constant, keep slope, repetition, mirror, relative repetition,
finite and without end) against ufbx (the C library in a forked child: see ufbx_oracle.py).

Every file is a real clip (DeepMimic walk, 39 frames at 30 fps) written by our writer; the curves of a few joints
(and the root's translation) get extrapolation records, and the stack's LocalStart/LocalStop (and Reference,
and the Take's times) are widened to 1.5 s before the first key and 3 s after the last, so that the clip samples
more than two key spans after the keys and more than one before them. World joint positions agree with ufbx
within 1e-5 of the motion's extent and local rotations within 1e-3 degrees, every frame and joint; and each file
differs from the same file read with constant extrapolation (the comparison is not one of held poses).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import optiq
import pytest
from optiq_fbx.binary_write import encode_fbx
from optiq_fbx.curves import TICKS_PER_SECOND, extrapolation
from optiq_fbx.loader import load_fbx
from optiq_fbx.nodes import Node
from optiq_fbx.scene import object_name
from optiq_fbx.writer import fbx_nodes

sys.path.insert(0, str(Path(__file__).parent))
import ufbx_oracle  # noqa: E402
from test_layers import _errors  # noqa: E402

WALK = "deepmimic/humanoid3d_walk.txt"
JOINTS = ("root", "chest", "right_hip", "left_knee", "right_shoulder")
BEFORE, AFTER = 1.5, 3.0  # seconds sampled before the first and after the last key; the keys span 1.27 s
_CUBIC_USER = 0x00000008 | 0x00000400  # cubic key, user tangents: ufbx uses the stored slopes as they are

# Case name -> (pre (type, repetitions), post (type, repetitions), cubic keys on the extrapolated curves).
CASES = {
    "repeat": (("R", -1), ("R", -1), False),
    "repeat once / twice": (("R", 1), ("R", 2), False),
    "mirror": (("M", -1), ("M", -1), False),
    "mirror once": (("M", 1), ("M", 1), False),
    "relative repeat": (("A", -1), ("A", -1), False),
    "relative repeat once": (("A", 1), ("A", 1), False),
    "keep slope": (("K", -1), ("K", -1), False),
    "keep slope, cubic end tangents": (("K", -1), ("K", -1), True),
    "mirror, cubic": (("M", -1), ("A", 2), True),
    "mixed: slope before, relative after": (("K", -1), ("A", -1), False),
}


@pytest.fixture(scope="module")
def walk(data_dir):
    return optiq.load_clip(data_dir / WALK)


def _extrapolated(clip, pre, post, cubic: bool = False, joints=JOINTS) -> list[Node]:
    """Our writer's tree of ``clip`` with Pre-/Post-Extrapolation records (Type as the character's code, an int
    property) on every curve of ``joints`` (None: no records at all) and the stack widened by BEFORE / AFTER."""
    top = fbx_nodes(clip)
    by = {n.name: n for n in top}
    objects, links = by["Objects"].children, [c.props for c in by["Connections"].children]
    ids = {o.props[0]: o for o in objects}
    chosen = {o.props[0] for o in objects
              if o.name == "Model" and joints is not None and object_name(o.props[1]) in joints}
    nodes = {c[1] for c in links if c[0] == "OP" and c[2] in chosen}  # curve nodes on the chosen models
    for c in links:
        if c[0] == "OP" and c[2] in nodes:
            curve = ids[c[1]]
            if cubic:
                n = len(curve.array("KeyTime"))
                for child in curve.children:
                    if child.name == "KeyAttrFlags":
                        child.props = [np.array([_CUBIC_USER], np.int32)]
                    elif child.name == "KeyAttrDataFloat":  # right slope 40/s, next left -25/s: not the secants
                        child.props = [np.array([40.0, -25.0, 0.0, 0.0], np.float32)]
                    elif child.name == "KeyAttrRefCount":
                        child.props = [np.array([n], np.int32)]
            for name, (mode, count) in (("Pre-Extrapolation", pre), ("Post-Extrapolation", post)):
                curve.children.append(Node(name, [], [Node("Type", [ord(mode)]), Node("Repetition", [count])]))
    times = next(o for o in objects if o.name == "AnimationCurve").array("KeyTime")
    start, stop = np.int64(times[0] - BEFORE * TICKS_PER_SECOND), np.int64(times[-1] + AFTER * TICKS_PER_SECOND)
    stack = next(o for o in objects if o.name == "AnimationStack").find("Properties70")
    stack.children = [p for p in stack.children if p.props[0] not in ("LocalStop", "ReferenceStop")]
    stack.children += [Node("P", [name, "KTime", "Time", "", value]) for name, value in (
        ("LocalStart", start), ("LocalStop", stop), ("ReferenceStart", start), ("ReferenceStop", stop))]
    for record in by["Takes"].find("Take").children:  # ufbx takes the stack's span from the Take when present
        if record.name in ("LocalTime", "ReferenceTime"):
            record.props = [start, stop]
    return top


@pytest.fixture(scope="module")
def held(walk, tmp_path_factory):
    """The widened walk read with constant extrapolation everywhere (no extrapolation records)."""
    path = tmp_path_factory.mktemp("held") / "held.fbx"
    path.write_bytes(encode_fbx(_extrapolated(walk, None, None, joints=None)))
    return load_fbx(path)[0]


@pytest.mark.parametrize("case", list(CASES))
def test_extrapolation_matches_ufbx(walk, held, tmp_path, case):
    pre, post, cubic = CASES[case]
    path = tmp_path / "extrapolated.fbx"
    path.write_bytes(encode_fbx(_extrapolated(walk, pre, post, cubic)))
    (clip,) = load_fbx(path)
    assert clip.num_frames == held.num_frames == int(np.floor((BEFORE + AFTER + 38 / 30) * 30 + 1e-6)) + 1
    pos_err, rot_err, expected = _errors(clip, ufbx_oracle.oracle_positions(path))
    assert pos_err <= 1e-5, f"{case}: position error {pos_err:.3g} of the extent"
    assert rot_err <= 1e-3, f"{case}: local rotation error {rot_err:.3g} degrees"
    # Outside the keys the joints move (ufbx's positions differ from the held poses); inside they do not.
    keys = slice(round(BEFORE * 30), round(BEFORE * 30) + 39)
    extent = float(np.ptp(expected.reshape(-1, 3), axis=0).max())
    outside = np.ones(clip.num_frames, bool)
    outside[keys] = False
    if not cubic:
        assert np.abs(held.world_positions()[outside] - expected[outside]).max() > 0.02 * extent
        np.testing.assert_allclose(clip.world_positions()[keys], held.world_positions()[keys], atol=1e-9)


def test_finite_repetitions_end_on_a_held_pose(walk, tmp_path):
    """``R`` once after the keys: one more key span, then the last key's value is held (the frames from the
    repetition's end on are all equal); without end the motion goes on, starting over at the first key's value
    exactly one span after the repetition began."""
    once, forever = tmp_path / "once.fbx", tmp_path / "forever.fbx"
    once.write_bytes(encode_fbx(_extrapolated(walk, ("C", -1), ("R", 1))))
    forever.write_bytes(encode_fbx(_extrapolated(walk, ("C", -1), ("R", -1))))
    a, b = load_fbx(once)[0].world_positions(), load_fbx(forever)[0].world_positions()
    end = round(BEFORE * 30) + 38 + 38  # the last key span's repetition ends here
    np.testing.assert_allclose(a[end:], a[end:end + 1].repeat(len(a) - end, axis=0), atol=1e-12)
    np.testing.assert_allclose(a[:end], b[:end], atol=1e-12)
    assert np.abs(b[end:] - a[end:]).max() > 1e-2


def test_zero_repetitions_are_constant(walk, held, tmp_path):
    path = tmp_path / "zero.fbx"
    path.write_bytes(encode_fbx(_extrapolated(walk, ("R", 0), ("M", 0))))
    np.testing.assert_array_equal(load_fbx(path)[0].world_positions(), held.world_positions())


def _ascii(nodes: list[Node], depth: int = 0) -> list[str]:
    """ASCII FBX lines of a node tree from our writer (names ``Name\\x00\\x01Class`` as ``Class::Name``, float32
    KeyAttrDataFloat as its int32 bit patterns, an extrapolation ``Type`` code as its bare letter)."""
    pad, out = "\t" * depth, []
    for n in nodes:
        if isinstance(n.props[0] if n.props else None, bytes):
            continue  # FileId: a binary blob, not needed by either reader
        values = []
        for v in n.props:
            if isinstance(v, np.ndarray):
                a = v.view(np.int32) if n.name == "KeyAttrDataFloat" else v
                body = ",".join(repr(float(x)) if a.dtype.kind == "f" else str(int(x)) for x in a)
                values.append(f"*{len(a)} {{\n{pad}\ta: {body}\n{pad}}}")
            elif n.name == "Type" and isinstance(v, int):
                values.append(chr(v))
            elif isinstance(v, str):
                name, _, cls = v.partition("\x00\x01")
                values.append(f'"{cls}::{name}"' if _ else f'"{v}"')
            elif isinstance(v, bool | np.bool_):
                values.append("T" if v else "F")
            else:
                values.append(repr(float(v)) if isinstance(v, float | np.floating) else str(int(v)))
        line = f"{pad}{n.name}: {', '.join(values)}"
        if n.children:
            out += [line + " {", *_ascii(n.children, depth + 1), pad + "}"]
        else:
            out.append(line + (" {\n" + pad + "}" if not values else ""))
    return out


def test_ascii_file_reads_like_binary_and_ufbx(walk, tmp_path):
    """The same scene as ASCII FBX (``Type: M``): the same clip as the binary file, and ufbx agrees."""
    top = _extrapolated(walk, ("M", -1), ("A", 1), cubic=True)
    binary, text = tmp_path / "b.fbx", tmp_path / "a.fbx"
    binary.write_bytes(encode_fbx(top))
    text.write_text("; FBX 7.4.0 project file\n" + "\n".join(_ascii(top)) + "\n")
    (a,), (b,) = load_fbx(text), load_fbx(binary)
    np.testing.assert_allclose(a.world_positions(), b.world_positions(), atol=1e-12)
    pos_err, rot_err, _ = _errors(a, ufbx_oracle.oracle_positions(text))
    assert pos_err <= 1e-5 and rot_err <= 1e-3, (pos_err, rot_err)


def test_binary_char_type_code(walk, tmp_path):
    """FBX SDK files store ``Type`` as a 'C' (one character) property; ufbx reads the character."""
    top = _extrapolated(walk, ("R", -1), ("R", -1))
    for node in _walk(top):
        if node.name == "Type":
            node.props = [True]  # a 'C' property (one byte), set to the character below
    data = encode_fbx(top).replace(b"\x04TypeC\x01", b"\x04TypeCR")
    path = tmp_path / "char.fbx"
    path.write_bytes(data)
    pos_err, rot_err, _ = _errors(load_fbx(path)[0], ufbx_oracle.oracle_positions(path))
    assert pos_err <= 1e-5 and rot_err <= 1e-3, (pos_err, rot_err)


def _walk(nodes: list[Node]):
    for n in nodes:
        yield n
        yield from _walk(n.children)


@pytest.mark.parametrize("value, count, expected", [
    ("R", -1, ("R", -1)), ("m", 3, ("M", 3)), (ord("K"), None, ("K", -1)), (b"A", -5, ("A", -1)),
    (None, None, ("C", -1)), ("X", 2, ("C", 2)), (True, 1, ("C", 1)),
])
def test_type_codes(value, count, expected):
    assert extrapolation(value, count) == expected
