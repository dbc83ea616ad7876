"""The FBX node tree shared by the binary and ASCII parsers.

An FBX file is a tree of records: each has a name, a list of property values (numbers, strings, byte blobs or
numeric arrays) and child records. Both parsers build :class:`Node` trees; everything after parsing works on them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class Node:
    """One FBX record.

    name: the record name (``"Model"``, ``"P"``, ``"KeyTime"``). props: its property values: int, float, str,
    bytes, or numpy arrays.
    children: nested records. where: the place in the file for error messages (``"byte 1234"``, ``"line 56"``).
    """

    name: str
    props: list
    children: list[Node] = field(default_factory=list)
    where: str = ""

    def find(self, name: str) -> Node | None:
        """The first child named ``name``, or None."""
        for c in self.children:
            if c.name == name:
                return c
        return None

    def find_all(self, name: str) -> Iterator[Node]:
        return (c for c in self.children if c.name == name)

    def array(self, name: str) -> np.ndarray | None:
        """The array of child ``name`` (``KeyTime: *N {a: ...}`` in ASCII, an array property in binary), or None."""
        c = self.find(name)
        if c is None or not c.props:
            return None
        return np.asarray(c.props[0])

