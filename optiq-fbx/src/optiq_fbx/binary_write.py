"""Binary FBX node encoder: a tree of ``Node`` records to the bytes of a binary FBX 7.4 file.

Layout (public descriptions of the format: Blender's exporter notes, the ufbx documentation): a 23-byte magic and
the uint32 version; then node records, each ``uint32 end offset, uint32 property count, uint32 property bytes,
uint8 name length, name, properties, children``; a record with children (or with no properties) ends its child
list with a 13-byte NULL record, and so does the top-level list; then the footer. Property types come from the
Python/numpy type of each value (see ``add``). The tree is the reader's :class:`optiq_fbx.nodes.Node`.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from .binary import MAGIC as BINARY_MAGIC
from .nodes import Node

MAGIC = BINARY_MAGIC + b"\x1a\x00"  # then the uint32 version
VERSION = 7400
NULL_RECORD = b"\x00" * 13  # 32-bit node headers: three uint32 and one uint8, all zero
# FileId, CreationTime and the footer id belong together; these are the values Blender's exporter writes (and the
# CMU files in the test data carry), so readers that check the pairing accept the file.
FILE_ID = b"(\xb3*\xeb\xb6$\xcc\xc2\xbf\xc8\xb0*\xa9+\xfc\xf1"
CREATION_TIME = "1970-01-01 10:00:00:000"
_FOOTER_ID = b"\xfa\xbc\xab\x09\xd0\xc8\xd4\x66\xb1\x76\xfb\x83\x1c\xf7\x26\x7e"
_FOOTER_MAGIC = b"\xf8\x5a\x8c\x6a\xde\xf5\xd9\x7e\xec\xe9\x0c\xe3\x75\x8f\x29\x0b"
# Arrays at least this many bytes long are zlib-compressed; small ones cost more compressed than raw.
COMPRESS_MIN_BYTES = 128

_SCALARS = {np.bool_: ("C", "<?"), np.int16: ("Y", "<h"), np.int32: ("I", "<i"), np.int64: ("L", "<q"),
            np.float32: ("F", "<f"), np.float64: ("D", "<d")}
_ARRAYS = {np.dtype(np.bool_): "b", np.dtype(np.int32): "i", np.dtype(np.int64): "l",
           np.dtype(np.float32): "f", np.dtype(np.float64): "d"}


def add(parent: Node, name: str, *props) -> Node:
    """Append a child record ``name`` with property values ``props`` to ``parent`` and return it.

    Property types follow the values: ``bool`` C, ``int`` I (int32), ``float`` D (float64), ``str`` S, ``bytes``
    R; numpy scalars give their own type (``np.int64`` L, ``np.int16`` Y, ``np.float32`` F); 1-D numpy arrays of
    bool, int32, int64, float32 or float64 give the array types b, i, l, f, d.
    """
    child = Node(name, list(props))
    parent.children.append(child)
    return child


def _encode_array(value: np.ndarray) -> bytes:
    code = _ARRAYS.get(value.dtype)
    if code is None or value.ndim != 1:
        raise TypeError(f"FBX arrays are 1-D bool/int32/int64/float32/float64, got {value.dtype} {value.shape}")
    raw = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()
    encoding = 0
    if len(raw) >= COMPRESS_MIN_BYTES:
        raw, encoding = zlib.compress(raw), 1
    return code.encode() + struct.pack("<III", len(value), encoding, len(raw)) + raw


def _encode_property(value, out: bytearray, arrays: dict[int, bytes]) -> None:
    if isinstance(value, np.ndarray):
        # One array object given to many records (every curve's KeyTime) is compressed once.
        if id(value) not in arrays:
            arrays[id(value)] = _encode_array(value)
        out += arrays[id(value)]
    elif isinstance(value, bool | np.bool_):
        out += b"C" + struct.pack("<?", bool(value))
    elif type(value) in _SCALARS:
        code, fmt = _SCALARS[type(value)]
        out += code.encode() + struct.pack(fmt, value)
    elif isinstance(value, int):
        out += b"I" + struct.pack("<i", value)
    elif isinstance(value, float):
        out += b"D" + struct.pack("<d", value)
    elif isinstance(value, str):
        data = value.encode("utf-8")
        out += b"S" + struct.pack("<I", len(data)) + data
    elif isinstance(value, bytes):
        out += b"R" + struct.pack("<I", len(value)) + value
    else:
        raise TypeError(f"no FBX property type for {type(value).__name__}")


def _encode_node(node: Node, out: bytearray, arrays: dict[int, bytes]) -> None:
    start = len(out)
    name = node.name.encode("utf-8")
    out += b"\x00" * 12 + struct.pack("<B", len(name)) + name  # header patched below
    props_start = len(out)
    for value in node.props:
        _encode_property(value, out, arrays)
    props_len = len(out) - props_start
    for child in node.children:
        _encode_node(child, out, arrays)
    if node.children or not node.props:
        out += NULL_RECORD
    if len(out) >= 2**32:
        raise ValueError("FBX 7.4 files are limited to 4 GiB (32-bit node offsets)")
    struct.pack_into("<III", out, start, len(out), len(node.props), props_len)


def encode_fbx(nodes: list[Node], version: int = VERSION) -> bytes:
    """The bytes of a binary FBX file holding the top-level ``nodes`` (32-bit node headers: versions < 7500)."""
    if version >= 7500:
        raise ValueError("this encoder writes 32-bit node headers (FBX 7.4 and older)")
    out = bytearray(MAGIC + struct.pack("<I", version))
    arrays: dict[int, bytes] = {}  # id of an array -> its encoded bytes; the tree keeps every array alive
    for node in nodes:
        _encode_node(node, out, arrays)
    out += NULL_RECORD
    out += _FOOTER_ID + b"\x00" * 4
    # Pad to a multiple of 16 bytes, a full 16 when already aligned, as the SDK does.
    out += b"\x00" * (16 - len(out) % 16)
    out += struct.pack("<I", version) + b"\x00" * 120 + _FOOTER_MAGIC
    return bytes(out)
