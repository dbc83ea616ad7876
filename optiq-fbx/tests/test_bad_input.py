"""Broken FBX files, each derived from a real one (a CMU FBX from the data folder, or a real clip written by our
writer) and converted through the CLI: one line ``optiq: error: FILE: PLACE: ...``, exit 2, no output file."""

from __future__ import annotations

import re
import struct

import numpy as np
import optiq
import pytest
from click.testing import CliRunner
from optiq.cli.main import build_cli
from optiq_fbx.binary_write import encode_fbx
from optiq_fbx.writer import fbx_nodes

pytest.importorskip("optiq_fbx.loader")
from optiq_fbx.loader import load_fbx  # noqa: E402 - only once the reader is installed

CLIP = "deepmimic/humanoid3d_walk.txt"


def convert_fails(bad, tmp_path) -> str:
    """Convert ``bad`` through the CLI; assert exit 2, one error line naming the file and a place, and no output.
    Returns the line's text after the file name."""
    out = tmp_path / "x.parquet"
    before = sorted(tmp_path.iterdir())
    r = CliRunner().invoke(build_cli(), ["data", "convert", "--in", str(bad), "--out", str(out), "--jobs", "1"])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    prefix = f"optiq: error: {bad}: "
    assert lines[0].startswith(prefix), lines[0]
    rest = lines[0][len(prefix):]
    assert re.match(r"[^:]+: \S", rest), f"no place before the message: {lines[0]}"
    assert not out.exists() and sorted(tmp_path.iterdir()) == before
    return rest


@pytest.fixture(scope="module")
def clip(data_dir):
    return optiq.load_clip(data_dir / CLIP)


@pytest.fixture(scope="module")
def cmu_bytes(data_dir):
    return (data_dir / "fbx" / "01_01_cmu.fbx").read_bytes()


def objects_and_connections(top):
    by_name = {n.name: n for n in top}
    return by_name["Objects"], by_name["Connections"]


def test_truncated_file(cmu_bytes, tmp_path):
    bad = tmp_path / "truncated.fbx"
    bad.write_bytes(cmu_bytes[: len(cmu_bytes) // 2])
    msg = convert_fails(bad, tmp_path)
    assert re.match(r"byte \d+: .*truncated", msg), msg


def test_truncated_header(cmu_bytes, tmp_path):
    bad = tmp_path / "short.fbx"
    bad.write_bytes(cmu_bytes[:20])
    msg = convert_fails(bad, tmp_path)
    assert msg.startswith("byte 0: "), msg


def test_bad_magic(cmu_bytes, tmp_path):
    bad = tmp_path / "magic.fbx"
    bad.write_bytes(b"Kaydara FBX Binarx" + cmu_bytes[18:])
    msg = convert_fails(bad, tmp_path)
    assert msg.startswith("byte 0: ") and "magic" in msg, msg


def test_corrupt_zlib_array(clip, tmp_path):
    """The compressed bytes of the first rotation curve's KeyValueFloat array overwritten with garbage."""
    data = bytearray(encode_fbx(fbx_nodes(clip)))
    name = b"\x0dKeyValueFloat"
    # Skip the root's three translation curves: the fourth KeyValueFloat is the root's X rotation.
    at = [m.end() for m in re.finditer(re.escape(name), data)][3]
    code, count, encoding, size = data[at:at + 1], *struct.unpack_from("<III", data, at + 1)
    assert (code, count, encoding) == (b"f", clip.num_frames, 1)
    start = at + 13
    data[start:start + size] = bytes(range(7, 7 + size))  # not a zlib stream; the size stays the same
    bad = tmp_path / "zlib.fbx"
    bad.write_bytes(bytes(data))
    msg = convert_fails(bad, tmp_path)
    place = re.match(r"byte (\d+): ", msg)
    assert place and at - len(name) - 12 <= int(place.group(1)) <= start + size, msg  # within the record
    assert "zlib" in msg or "compress" in msg, msg


def test_cyclic_connection(clip, tmp_path):
    """The root joint connected under its own grandchild instead of the scene root."""
    top = fbx_nodes(clip)
    objects, connections = objects_and_connections(top)
    ids = {o.props[1].split("\x00")[0]: o.props[0] for o in objects.children if o.name == "Model"}
    sk = clip.skeleton
    child = sk.children(0)[0]
    grandchild = sk.children(child)[0]
    for c in connections.children:
        if c.props[:2] == ["OO", ids[sk.names[0]]]:
            c.props[2] = ids[sk.names[grandchild]]
    bad = tmp_path / "cycle.fbx"
    bad.write_bytes(encode_fbx(top))
    msg = convert_fails(bad, tmp_path)
    assert "cycl" in msg, msg


def test_unknown_property_type(cmu_bytes, tmp_path):
    """The type code of the Creator string in the real file changed from 'S' to 'Z'."""
    at = cmu_bytes.index(b"\x07CreatorS") + 8
    bad = tmp_path / "ptype.fbx"
    bad.write_bytes(cmu_bytes[:at] + b"Z" + cmu_bytes[at + 1:])
    msg = convert_fails(bad, tmp_path)
    assert re.match(r"byte \d+: ", msg) and "'Z'" in msg and "type" in msg.lower(), msg


def test_no_animation(clip, tmp_path):
    """Every Animation* object and its connections removed: a clear error; ``rest_pose=True`` gives one frame of
    the rest pose."""
    top = fbx_nodes(clip)
    objects, connections = objects_and_connections(top)
    anim_ids = {o.props[0] for o in objects.children if o.name.startswith("Animation")}
    objects.children = [o for o in objects.children if not o.name.startswith("Animation")]
    connections.children = [c for c in connections.children if not anim_ids.intersection(c.props[1:3])]
    for d in top:
        if d.name == "Definitions":
            d.children = [t for t in d.children if not (t.name == "ObjectType" and t.props[0].startswith("Animation"))]
    bad = tmp_path / "still.fbx"
    bad.write_bytes(encode_fbx(top))
    msg = convert_fails(bad, tmp_path)
    assert "animation" in msg.lower(), msg
    rest = load_fbx(bad, rest_pose=True)
    assert len(rest) == 1 and rest[0].num_frames == 1
    idx = [rest[0].skeleton.index(n) for n in clip.skeleton.names]
    assert sorted(rest[0].skeleton.names) == sorted(clip.skeleton.names)
    np.testing.assert_allclose(rest[0].world_positions()[0, idx], clip.skeleton.rest_positions(), atol=1e-6)
