"""Binary FBX (7.x) node-tree parser.

Layout (as publicly documented by Blender's importer notes and the ufbx sources): a 27-byte header
(``Kaydara FBX Binary  \\0``, 2 bytes, uint32 version), then node records. A record is ``end offset, property
count, property bytes`` (uint32 each before version 7500, uint64 from 7500), a uint8 name length and the name,
its properties, its children, and a zero record closing the children. Properties start with a type code: ``Y``
int16, ``C`` one byte (booleans and one-letter codes, returned as an int), ``I`` int32, ``F`` float32, ``D``
float64, ``L`` int64, ``S`` string, ``R`` raw bytes, and arrays ``f d l i b`` (uint32 length, encoding 0 = raw
or 1 = zlib, byte size, then the data). Arrays are decoded with one ``np.frombuffer`` (and one zlib call) each.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from optiq.errors import ParseError

from .nodes import Node

MAGIC = b"Kaydara FBX Binary  \x00"
_SCALARS = {ord(code): struct.Struct(fmt) for code, fmt in
            (("Y", "<h"), ("C", "<B"), ("I", "<i"), ("F", "<f"), ("D", "<d"), ("L", "<q"))}
_U32 = struct.Struct("<I")
_ARRAY_HEAD = struct.Struct("<III")
_S, _R = ord("S"), ord("R")
_ARRAYS = {ord("f"): np.dtype("<f4"), ord("d"): np.dtype("<f8"), ord("l"): np.dtype("<i8"),
           ord("i"): np.dtype("<i4"), ord("b"): np.dtype("u1")}


def parse_binary(data: bytes, path: Path) -> tuple[int, list[Node]]:
    """The FBX version and the top-level nodes of binary FBX ``data``; ParseError naming the byte offset."""
    if len(data) < 27 or not data.startswith(MAGIC):
        raise ParseError("not a binary FBX file (bad magic: expected 'Kaydara FBX Binary')", path, "byte 0")
    version = struct.unpack_from("<I", data, 23)[0]
    wide = version >= 7500
    head = struct.Struct("<QQQB" if wide else "<IIIB")
    nodes: list[Node] = []
    pos = 27
    end = len(data)
    while True:
        node, pos = _read_node(data, pos, end, head, path, "")
        if node is None:
            break
        nodes.append(node)
    return version, nodes


def _read_node(data: bytes, pos: int, limit: int, head: struct.Struct, path: Path,
               parent: str) -> tuple[Node | None, int]:
    """The node record at ``pos`` and the offset after it; ``(None, offset)`` for the zero record ending a list
    (as long as a record header: 13 bytes, 25 from version 7500)."""
    if pos + head.size > limit:
        raise ParseError(f"truncated: node record header runs past the end of {_scope(parent)}", path,
                         f"byte {pos}")
    end_offset, n_props, props_len, name_len = head.unpack_from(data, pos)
    if end_offset == 0:
        return None, pos + head.size
    start = pos
    pos += head.size
    name = data[pos:pos + name_len].decode("ascii", errors="replace")
    pos += name_len
    node_path = f"{parent}/{name}" if parent else name
    if end_offset > len(data):
        raise ParseError(f"truncated: node {node_path!r} ends at byte {end_offset} but the file has {len(data)} bytes",
                         path, f"byte {start}")
    if end_offset < pos + props_len or end_offset > limit:
        raise ParseError(f"node {node_path!r} has an inconsistent end offset {end_offset}", path, f"byte {start}")
    props_end = pos + props_len
    props = []
    for k in range(n_props):
        if pos >= props_end:
            raise ParseError(f"node {node_path!r}: property {k} runs past the property block", path, f"byte {pos}")
        code = data[pos]
        pos += 1
        if code == _S or code == _R:  # strings are the most common property: tested first
            n = _U32.unpack_from(data, pos)[0]
            raw = data[pos + 4:pos + 4 + n]
            pos += 4 + n
            props.append(raw.decode("utf-8", errors="replace") if code == _S else raw)
        elif code in _SCALARS:
            scalar = _SCALARS[code]
            props.append(scalar.unpack_from(data, pos)[0])
            pos += scalar.size
        elif code in _ARRAYS:
            count, encoding, size = _ARRAY_HEAD.unpack_from(data, pos)
            pos += 12
            props.append(_decode_array(data, pos, count, encoding, size, _ARRAYS[code], path, f"byte {pos - 13}",
                                       node_path))
            pos += size
        else:
            raise ParseError(f"node {node_path!r}: unknown property type {chr(code)!r} (0x{code:02x}); expected one "
                             "of Y C I F D L S R f d l i b", path, f"byte {pos - 1}")
        if pos > props_end:
            raise ParseError(f"node {node_path!r}: property {k} runs past the property block", path,
                             f"byte {pos}")
    node = Node(name, props, [], f"byte {start}")
    pos = props_end
    if pos < end_offset:
        while True:
            child, pos = _read_node(data, pos, end_offset, head, path, node_path)
            if child is None:
                break
            node.children.append(child)
    return node, end_offset


def _scope(node_path: str) -> str:
    return f"node {node_path!r}" if node_path else "the file"


def _decode_array(data: bytes, pos: int, count: int, encoding: int, size: int, dtype: np.dtype, path: Path,
                  where: str, node_path: str) -> np.ndarray:
    if pos + size > len(data):
        raise ParseError(f"truncated: array of node {node_path!r} runs past the end of the file", path, where)
    if encoding not in (0, 1):
        raise ParseError(f"node {node_path!r}: unknown array encoding {encoding} (expected 0 raw or 1 zlib)", path,
                         where)
    raw = data[pos:pos + size]
    if encoding == 1:
        try:
            raw = zlib.decompress(raw)
        except zlib.error as exc:
            raise ParseError(f"node {node_path!r}: corrupt zlib array ({exc})", path, where) from None
    if len(raw) != count * dtype.itemsize:
        raise ParseError(f"node {node_path!r}: array holds {len(raw)} bytes, expected {count} values of "
                         f"{dtype.itemsize} bytes", path, where)
    return np.frombuffer(raw, dtype=dtype)
