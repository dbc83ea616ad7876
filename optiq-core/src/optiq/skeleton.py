"""The skeleton: joint names, parents and rest offsets.

Rest and pre-rotations are folded at load time, so every joint frame is world-aligned in the rest pose and a
local rotation of identity gives the file's rest pose (ARCHITECTURE.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import SkeletonMismatchError


@dataclass(frozen=True, eq=False)
class Skeleton:
    """A joint hierarchy.

    names: ``J`` unique joint names. parents: ``[J]`` int, parent index per joint, parents before children,
    the root is ``-1`` (exactly one root). offsets: ``[J, 3]`` float64 metres, each joint's rest translation
    relative to its parent (the root's is its rest position in the world). end_sites: ``{joint index: [3]}``
    rest offsets of end effectors without a joint of their own (BVH ``End Site``), metres.
    """

    names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    end_sites: dict[int, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        parents = np.asarray(self.parents, dtype=np.int64).reshape(-1)
        offsets = np.asarray(self.offsets, dtype=np.float64)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(
            self, "end_sites", {int(k): np.asarray(v, dtype=np.float64).reshape(3) for k, v in self.end_sites.items()}
        )
        n = len(names)
        if n == 0:
            raise SkeletonMismatchError("a skeleton needs at least one joint")
        if len(set(names)) != n:
            dup = sorted({x for x in names if names.count(x) > 1})
            raise SkeletonMismatchError(f"joint names must be unique; repeated: {', '.join(dup)}")
        if parents.shape != (n,) or offsets.shape != (n, 3):
            raise SkeletonMismatchError(
                f"skeleton arrays disagree: {n} names, parents {parents.shape}, offsets {offsets.shape} "
                f"(expected ({n},) and ({n}, 3))"
            )
        if parents[0] != -1 or np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, n)):
            raise SkeletonMismatchError("parents must list parents before children with a single root (-1) first")
        if not np.all(np.isfinite(offsets)):
            raise SkeletonMismatchError("skeleton offsets must be finite")

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        # The dataclass repr prints every offset; a skeleton of 100 joints filled a terminal.
        shown = ", ".join(self.names[:6]) + (", ..." if self.num_joints > 6 else "")
        return f"Skeleton({self.num_joints} joints: {shown}; end sites: {len(self.end_sites)})"

    def index(self, name: str) -> int:
        """Index of joint ``name``; raises KeyError listing the known names."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no joint {name!r}; joints: {', '.join(self.names)}") from None

    def children(self, joint: int) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.parents == joint)]

    def depth_first_order(self) -> np.ndarray:
        """Joint indices ``[J]`` in depth-first pre-order from the root, children in their listed order: the order
        BVH files nest joints in, and the one canonical order every loaded clip gets (``optiq.io.load``)."""
        children: dict[int, list[int]] = {}
        for j, p in enumerate(self.parents.tolist()):
            children.setdefault(p, []).append(j)
        order, stack = [], [0]
        while stack:
            j = stack.pop()
            order.append(j)
            stack.extend(reversed(children.get(j, [])))
        return np.array(order, dtype=np.int64)

    def rest_positions(self) -> np.ndarray:
        """World positions ``[J, 3]`` (metres) of the rest pose (every local rotation identity)."""
        pos = np.zeros((self.num_joints, 3))
        pos[0] = self.offsets[0]
        for j in range(1, self.num_joints):
            pos[j] = pos[self.parents[j]] + self.offsets[j]
        return pos

    def same_topology(self, other: Skeleton) -> bool:
        """True when joint names and parents agree (offsets may differ between performers)."""
        return self.names == other.names and np.array_equal(self.parents, other.parents)

    def allclose(self, other: Skeleton, atol: float = 1e-9) -> bool:
        return self.same_topology(other) and np.allclose(self.offsets, other.offsets, atol=atol)

    def with_offsets(self, offsets: np.ndarray) -> Skeleton:
        return Skeleton(self.names, self.parents, offsets, self.end_sites)

    def transformed(self, matrix: np.ndarray, scale: float = 1.0) -> Skeleton:
        """The skeleton with offsets rotated by ``matrix [3, 3]`` and multiplied by ``scale``."""
        m = np.asarray(matrix, dtype=np.float64) * scale
        return Skeleton(
            self.names, self.parents, self.offsets @ m.T, {k: m @ v for k, v in self.end_sites.items()}
        )

    def mirror_pairs(self, pairs: Sequence[tuple[str, str]] | None = None) -> np.ndarray:
        """Permutation ``[J]`` that swaps left and right joints.

        pairs: explicit ``(left, right)`` name pairs; by default found from the names: Left/Right, left_/right_,
        L/R and l/r prefixes (``LeftUpLeg``/``RightUpLeg``, ``lfemur``/``rfemur``, ``LHipJoint``/``RHipJoint``).
        """
        perm = np.arange(self.num_joints)
        if pairs is None:
            pairs = _guess_pairs(self.names)
        for left, right in pairs:
            a, b = self.index(left), self.index(right)
            perm[a], perm[b] = b, a
        return perm


_SIDE_PATTERNS = [
    (re.compile(r"^(.*)Left(.*)$"), "Left", "Right"),
    (re.compile(r"^(.*)left(.*)$"), "left", "right"),
    (re.compile(r"^(.*)LEFT(.*)$"), "LEFT", "RIGHT"),
    (re.compile(r"^()L(?=[A-Z_])(.*)$"), "L", "R"),
    (re.compile(r"^()l(?=[a-z_])(.*)$"), "l", "r"),
    (re.compile(r"^(.*)_L()$"), "_L", "_R"),
    (re.compile(r"^(.*)\.L()$"), ".L", ".R"),
]


def _guess_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    known = set(names)
    pairs = []
    seen: set[str] = set()
    for name in names:
        if name in seen:
            continue
        for pattern, _left, right in _SIDE_PATTERNS:
            m = pattern.match(name)
            if m:
                other = m.group(1) + right + m.group(2)
                if other in known and other != name:
                    pairs.append((name, other))
                    seen.update((name, other))
                    break
    return pairs
