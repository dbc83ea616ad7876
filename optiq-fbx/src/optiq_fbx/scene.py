"""FBX objects, connections, property templates and the choice of the skeleton.

Objects are the children of the ``Objects`` record: ``Class: id, "Name\\x00\\x01Class", "SubType"`` (binary) or
``"Class::Name"`` (ASCII). ``Connections`` link them: ``C: "OO", child, parent`` (object to object: the model
hierarchy, curve nodes to layers, layers to stacks) and ``C: "OP", child, parent, "Property"`` (a curve node
driving a property, a curve driving a curve-node channel ``d|X``). Properties not written on an object come from
``Definitions`` -> ``ObjectType`` -> ``PropertyTemplate``.

The skeleton: models of type LimbNode, Limb or Root are bones; a Null (or other model) lying between two bones
joins them. The bones form trees; trees hanging from the same parent model form a group, and the group with the
most bones (the first in file order on a tie) is the skeleton, rooted at its top bone, or at the shared parent when
the group holds several trees (a Blender armature with IK-target bones beside the body). Models above the root (a Blender "Armature" Null, say) are not joints, but their transforms
are part of the root's world transform. A file without bones (an animated mesh or Null) uses the largest tree of
models that are neither cameras nor lights.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from pathlib import Path

from optiq.errors import ParseError

from .nodes import Node

BONE_TYPES = frozenset({"LimbNode", "Limb", "Root"})
NOT_JOINTS = frozenset({"Camera", "Light", "CameraSwitcher", "CameraStereo"})


@dataclass(eq=False)
class FbxObject:
    """One object: ``id``, class (``Model``, ``AnimationCurve``...), ``name``, ``sub`` type (``LimbNode``...),
    the record ``node`` and its properties ``props`` (templates applied)."""

    id: int
    cls: str
    name: str
    sub: str
    node: Node
    props: dict = field(default_factory=dict)


def object_name(raw: str) -> str:
    """``Hips\\x00\\x01Model`` (binary) or ``Model::Hips`` (ASCII) -> ``Hips``."""
    if "\x00\x01" in raw:
        return raw.split("\x00\x01", 1)[0]
    return raw.split("::", 1)[1] if "::" in raw else raw


def properties(node: Node | None) -> dict:
    """``Properties70`` (``P:`` records) of ``node`` as name -> value (a number, string, or tuple of numbers)."""
    out: dict = {}
    if node is None:
        return out
    block = node.find("Properties70")
    if block is None:
        return out
    for p in block.children:
        if p.name != "P" or not p.props:
            continue
        vals = p.props[4:]
        out[str(p.props[0])] = vals[0] if len(vals) == 1 else tuple(vals)
    return out


class Scene:
    """The parsed document: ``objects`` (id -> FbxObject), OO ``parents``/``children`` of models, OP links, the
    global settings and the property templates."""

    def __init__(self, top: list[Node], path: Path):
        self.path = path
        by_name = {n.name: n for n in top}
        if "Objects" not in by_name:
            raise ParseError("no Objects section: not an FBX 7 scene (truncated?)", path)
        self.settings = properties(by_name.get("GlobalSettings"))
        self.templates: dict[str, dict] = {}
        defs = by_name.get("Definitions")
        if defs is not None:
            for ot in defs.find_all("ObjectType"):
                tmpl = ot.find("PropertyTemplate")
                if ot.props and tmpl is not None:
                    self.templates[str(ot.props[0])] = properties(tmpl)
        self.objects: dict[int, FbxObject] = {}
        for rec in by_name["Objects"].children:
            if len(rec.props) < 2 or not isinstance(rec.props[0], int):
                continue
            sub = rec.props[2] if len(rec.props) > 2 and isinstance(rec.props[2], str) else ""
            obj = FbxObject(rec.props[0], rec.name, object_name(str(rec.props[1])), sub, rec)
            obj.props = {**self.templates.get(rec.name, {}), **properties(rec)}
            self.objects[obj.id] = obj
        self.oo: list[tuple[int, int]] = []
        self.op: list[tuple[int, int, str]] = []
        conns = by_name.get("Connections")
        for c in conns.children if conns is not None else []:
            if c.name != "C" or len(c.props) < 3:
                continue
            kind, child, parent = c.props[0], c.props[1], c.props[2]
            if not isinstance(child, int) or not isinstance(parent, int):
                raise ParseError(f"connection {kind} between {child!r} and {parent!r}: ids must be integers", path,
                                 c.where)
            if kind == "OO":
                self.oo.append((child, parent))
            elif kind == "OP" and len(c.props) > 3:
                self.op.append((child, parent, str(c.props[3])))
        self.model_parent: dict[int, int] = {}
        for child, parent in self.oo:
            co, po = self.objects.get(child), self.objects.get(parent)
            if co is not None and co.cls == "Model" and po is not None and po.cls == "Model":
                self.model_parent[child] = parent
        self._check_cycles()

    def _check_cycles(self) -> None:
        for start in self.model_parent:
            seen = {start}
            node = start
            while node in self.model_parent:
                node = self.model_parent[node]
                if node in seen:
                    names = " -> ".join(self.objects[i].name for i in sorted(seen))
                    raise ParseError(f"cyclic model connection: {self.objects[node].name!r} is its own ancestor "
                                     f"({names})", self.path, f"Connections, model {self.objects[node].name!r}")
                seen.add(node)

    def children_of(self, parent: int, cls: str) -> list[FbxObject]:
        """Objects of class ``cls`` connected (OO) to ``parent``, in connection order."""
        return [self.objects[c] for c, p in self.oo if p == parent and c in self.objects
                and self.objects[c].cls == cls]

    def skeleton_models(self) -> list[int]:
        """Model ids of the chosen skeleton, parents before children, in file order where possible (see
        :meth:`_tree`)."""
        models = [o for o in self.objects.values() if o.cls == "Model"]
        bones = {o.id for o in models if o.sub in BONE_TYPES}
        if bones:
            members = set(bones)
            # A non-bone model between two bones (a bone above it and one below) joins them.
            has_bone_above = {m.id for m in models if self._ancestor_in(m.id, bones)}
            for b in bones:
                node = self.model_parent.get(b)
                while node is not None and node not in bones and node in has_bone_above:
                    members.add(node)
                    node = self.model_parent.get(node)
        else:
            members = {o.id for o in models if o.sub not in NOT_JOINTS}
        if not members:
            raise ParseError("no skeleton: the file has no bones (LimbNode/Root) and no animatable models", self.path,
                             "Objects")
        order = {o.id: k for k, o in enumerate(models)}
        roots = sorted((m for m in members if self.model_parent.get(m) not in members), key=order.__getitem__)
        # Trees hanging from one parent model (Blender's armature Null holding the body and IK-target bones) form
        # one group; the group with the most bones wins, and its parent becomes the root when it holds several.
        groups: dict[int | None, list[int]] = {}
        for r in roots:
            groups.setdefault(self.model_parent.get(r), []).append(r)
        count = (lambda ids: sum(1 for m in ids if m in bones)) if bones else len
        best_parent, best_roots = max(groups.items(), key=lambda g: count(
            [m for r in g[1] for m in self._tree(r, members)]))
        if len(best_roots) > 1 and best_parent is not None:
            return self._tree(best_parent, members | {best_parent})
        return max((self._tree(r, members) for r in best_roots), key=count)

    def _ancestor_in(self, node: int, group: set[int]) -> bool:
        node = self.model_parent.get(node)
        while node is not None:
            if node in group:
                return True
            node = self.model_parent.get(node)
        return False

    def _tree(self, root: int, members: set[int]) -> list[int]:
        """The models of ``members`` under ``root`` (itself included) in the file's Model order when that lists
        every parent before its children (so files optiq writes keep their joint order), else in the stable
        parents-first order closest to it: the earliest model in the file whose parent is already listed."""
        kids: dict[int, list[int]] = {}
        for child, parent in self.oo:
            if child in members and self.model_parent.get(child) == parent and child != root:
                kids.setdefault(parent, []).append(child)
        tree, stack = [], [root]
        while stack:
            n = stack.pop()
            tree.append(n)
            stack.extend(kids.get(n, []))
        rank = {m: k for k, m in enumerate(o.id for o in self.objects.values() if o.cls == "Model")}
        by_file = sorted(tree, key=rank.__getitem__)
        position = {m: k for k, m in enumerate(by_file)}
        if by_file[0] == root and all(position[self.model_parent[m]] < position[m] for m in by_file[1:]):
            return by_file
        out, ready = [], [(rank[root], root)]
        while ready:
            _, n = heapq.heappop(ready)
            out.append(n)
            for c in kids.get(n, []):
                heapq.heappush(ready, (rank[c], c))
        return out

    def ancestors(self, model: int) -> list[int]:
        """Models above ``model``, top first."""
        out = []
        node = self.model_parent.get(model)
        while node is not None:
            out.append(node)
            node = self.model_parent.get(node)
        return out[::-1]
