"""ASCII FBX (7.x) node-tree parser.

A record is ``Name: value, value, ... { children }``; comments start with ``;``. Strings are double-quoted, numbers
are ints or decimals, bare words (``T``, ``Y``) are kept as strings. Arrays are written ``Name: *N { a: v,v,... }``
and become numpy arrays parsed in one call. ``Model::Hips`` style names are returned as written; the scene code
normalises them with the binary ``Hips\\x00\\x01Model`` form.
"""

from __future__ import annotations

import bisect
import re
from pathlib import Path

import numpy as np
from optiq.errors import ParseError

from .nodes import Node

_TOKEN = re.compile(
    r"""(?:\s+|;[^\n]*)*(?:
        (?P<name>[A-Za-z_][\w|\-]*)[ \t]*:
      | "(?P<str>[^"]*)"
      | (?P<count>\*\d+)
      | (?P<punct>[{},])
      | (?P<word>[^\s,{}";]+)
      | (?P<end>\Z)
    )""",
    re.VERBOSE,
)
_INT = re.compile(r"[-+]?\d+\Z")


def is_ascii_fbx(head: bytes) -> bool:
    """True when ``head`` (the first bytes of a file) looks like ASCII FBX: comments and ``FBXHeaderExtension``."""
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    return "FBXHeaderExtension" in text or text.lstrip().startswith("; FBX")


def parse_ascii(text: str, path: Path) -> tuple[int, list[Node]]:
    """The FBX version (``FBXVersion``, 0 when absent) and the top-level nodes of ASCII FBX ``text``; ParseError
    naming the line."""
    parser = _Parser(text, path)
    nodes = parser.node_list(top=True)
    version = 0
    header = next((n for n in nodes if n.name == "FBXHeaderExtension"), None)
    v = header.find("FBXVersion") if header is not None else None
    if v is not None and v.props and isinstance(v.props[0], int):
        version = v.props[0]
    return version, nodes


class _Parser:
    def __init__(self, text: str, path: Path):
        self.text = text
        self.path = path
        self.pos = 0
        self.newlines = [m.start() for m in re.finditer("\n", text)]

    def line(self, pos: int) -> str:
        return f"line {bisect.bisect_right(self.newlines, pos) + 1}"

    def next(self) -> re.Match:
        m = _TOKEN.match(self.text, self.pos)
        if m is None:
            raise ParseError(f"unexpected character {self.text[self.pos:self.pos + 1]!r}", self.path,
                             self.line(self.pos))
        return m

    def error(self, message: str, m: re.Match) -> ParseError:
        return ParseError(message, self.path, self.line(m.start(m.lastgroup)))

    def node_list(self, top: bool) -> list[Node]:
        nodes = []
        while True:
            m = self.next()
            kind = m.lastgroup
            if kind == "end":
                if not top:
                    raise self.error("the file ends inside a '{' block (truncated?)", m)
                return nodes
            if kind == "punct" and m.group("punct") == "}" and not top:
                self.pos = m.end()
                return nodes
            if kind != "name":
                raise self.error(f"expected a record name followed by ':', got {m.group(kind)!r}", m)
            self.pos = m.end()
            nodes.append(self.node(m.group("name"), self.line(m.start("name"))))

    def node(self, name: str, where: str) -> Node:
        props: list = []
        node = Node(name, props, [], where)
        m = self.next()
        if m.lastgroup in ("str", "word", "count"):
            while True:
                kind = m.lastgroup
                if kind == "str":
                    props.append(m.group("str"))
                elif kind == "word":
                    props.append(_number(m.group("word")))
                elif kind == "count":
                    self.pos = m.end()
                    props.append(self.array(name, int(m.group("count")[1:]), where))
                    return node
                else:
                    raise self.error(f"record {name!r}: expected a value after ','", m)
                self.pos = m.end()
                m = self.next()
                if m.lastgroup == "punct" and m.group("punct") == ",":
                    self.pos = m.end()
                    m = self.next()
                    continue
                break
        if m.lastgroup == "punct" and m.group("punct") == "{":
            self.pos = m.end()
            node.children = self.node_list(top=False)
        return node

    def array(self, name: str, count: int, where: str) -> np.ndarray:
        """``{ a: v,v,... }`` after ``*count``: the values as int64 (all integers) or float64."""
        m = self.next()
        if not (m.lastgroup == "punct" and m.group("punct") == "{"):
            raise self.error(f"array {name!r}: expected '{{' after *{count}", m)
        self.pos = m.end()
        m = self.next()
        if m.lastgroup == "punct" and m.group("punct") == "}":
            self.pos = m.end()
            values = np.empty(0)
        else:
            if m.lastgroup != "name" or m.group("name") != "a":
                raise self.error(f"array {name!r}: expected 'a:' and the values", m)
            close = self.text.find("}", m.end())
            if close < 0:
                raise self.error(f"array {name!r}: the file ends before its closing '}}' (truncated?)", m)
            body = self.text[m.end():close]
            self.pos = close + 1
            parts = body.replace("\n", "").split(",")
            try:
                if "." in body or "e" in body or "E" in body or "n" in body:
                    values = np.array(parts, dtype=np.float64)
                else:
                    values = np.array(parts, dtype=np.int64)
            except ValueError:
                raise ParseError(f"array {name!r}: a value is not a number", self.path,
                                 self.line(m.end())) from None
        if values.size != count:
            raise ParseError(f"array {name!r}: *{count} announced but {values.size} values follow", self.path, where)
        return values


def _number(word: str):
    if _INT.match(word):
        return int(word)
    try:
        return float(word)
    except ValueError:
        return word
