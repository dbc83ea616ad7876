"""Joint maps: which source joint drives which body of a character, for retargeting by inverse kinematics.

A ``JointMap`` pairs source joint names (a clip's skeleton) with character body names, each pair with a position
weight, an orientation weight (0: position only), a rotation offset and a position offset; and a scale (a number,
or ``"height"``: the ratio of the standing heights spanned by the mapped joints).

Files: optiq's own JSON (``format: "optiq-jointmap"``, docs/rl.md "Retargeting"), and two published formats read
into the same object: the settings of BvhToDeepMimic (``jointAssignments``: DeepMimic joint -> BVH joint) and the
retarget configs of IsaacGymEnvs' poselib (``joint_mapping``: source joint -> AMP humanoid body). The published
``scale`` values (0.0254 for SFU inches, 0.01 for centimetres, 0.056444 for CMU units) convert a file's units to
metres, which optiq's loaders have already done: they are kept as ``file_scale`` and the map's scale is 1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from optiq.errors import OptiqError

FORMAT_TAG = "optiq-jointmap"
VERSION = 1
#: Built-in maps (``optiq_rl/jointmaps/NAME.json``), found by name where a file is accepted.
BUILTIN_DIR = Path(__file__).with_name("jointmaps")


class JointMapError(OptiqError):
    """A joint map cannot be read, or names joints that the source or the character does not have."""


@dataclass(frozen=True)
class Pair:
    """One source joint driving one character body.

    position, orientation: task weights (orientation 0: the body's rotation is left free). rotation ``[4]`` wxyz:
    the frame on the body, in the body's frame, that takes the source joint's world rotation (identity: the body's
    own frame, right for rest frames that are world-aligned in the same standing pose). offset ``[3]`` metres:
    the point on the body, in the body's frame, that meets the source joint (zero: the body's origin).
    """

    source: str
    body: str
    position: float = 1.0
    orientation: float = 0.0
    rotation: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class JointMap:
    """Source joint -> character body pairs, a scale and the map's provenance.

    scale: a number (source metres -> character metres), or ``"height"``. root: the source joint whose position and
    heading align the first frame (default: the mapped joint nearest the source's root, ``root_source``).
    file_scale: a published map's unit factor (already applied by optiq's loaders; informational). source_path:
    the file it was read from (error messages name it).
    """

    pairs: tuple[Pair, ...]
    scale: float | str = 1.0
    name: str = ""
    root: str | None = None
    file_scale: float | None = None
    source_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def sources(self) -> list[str]:
        return [p.source for p in self.pairs]

    @property
    def bodies(self) -> list[str]:
        return [p.body for p in self.pairs]

    def root_source(self, skeleton) -> str:
        """The source joint that aligns the first frame (see ``root``): by default the mapped joint nearest the
        root of the source ``skeleton`` (the hips), whichever body carries the character's free joint
        (Humanoid-v5's is the torso)."""
        if self.root:
            return self.root

        def depth(name: str) -> int:
            j, d = skeleton.index(name), 0
            while skeleton.parents[j] >= 0:
                j, d = int(skeleton.parents[j]), d + 1
            return d

        return min(dict.fromkeys(self.sources), key=depth)

    def end_effectors(self, skeleton) -> list[str]:
        """The mapped source joints with no other mapped joint below them in ``skeleton`` (hands, feet, head)."""
        index = {skeleton.index(s): s for s in self.sources}
        inner = set()
        for j in index:
            p = int(skeleton.parents[j])
            while p >= 0:
                if p in index:
                    inner.add(index[p])
                p = int(skeleton.parents[p])
        return [s for s in dict.fromkeys(self.sources) if s not in inner]

    def check(self, source_joints: Iterable[str], character_bodies: Iterable[str], source_what: str = "the source",
              character_what: str = "the character") -> None:
        """Raise JointMapError listing every mapped joint the source lacks and every body the character lacks."""
        have_s, have_c = set(source_joints), set(character_bodies)
        missing_s = [s for s in dict.fromkeys(self.sources) if s not in have_s]
        missing_c = [b for b in dict.fromkeys(self.bodies) if b not in have_c]
        if self.root and self.root not in have_s and self.root not in missing_s:
            missing_s.append(self.root)
        parts = ([f"joint(s) {', '.join(missing_s)} missing from {source_what}"] if missing_s else []) + \
                ([f"body(ies) {', '.join(missing_c)} missing from {character_what}"] if missing_c else [])
        if parts:
            raise JointMapError(f"joint map names {'; '.join(parts)}", self.source_path)

    def to_json(self) -> dict[str, Any]:
        """The map in optiq's JSON format (``load_joint_map`` reads it back)."""
        joints = {}
        for p in self.pairs:
            entry: dict[str, Any] = {"body": p.body, "position": p.position, "orientation": p.orientation}
            if p.rotation != (1.0, 0.0, 0.0, 0.0):
                entry["rotation"] = list(p.rotation)
            if p.offset != (0.0, 0.0, 0.0):
                entry["offset"] = list(p.offset)
            joints[p.source] = entry
        out: dict[str, Any] = {"format": FORMAT_TAG, "version": VERSION, "name": self.name, "scale": self.scale,
                               "joints": joints}
        if self.root:
            out["root"] = self.root
        return out


def joint_map_names() -> list[str]:
    """Names of the built-in joint maps."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.json"))


def load_joint_map(path_or_name: str | os.PathLike | Mapping[str, Any]) -> JointMap:
    """A joint map from a file (optiq JSON, BvhToDeepMimic settings, IsaacGymEnvs retarget config), a built-in
    name (``joint_map_names()``) or an already parsed JSON object. Raises JointMapError naming the file and place."""
    if isinstance(path_or_name, Mapping):
        return parse_joint_map(path_or_name, None)
    text = os.fspath(path_or_name)
    path = Path(text)
    if not path.suffix and (BUILTIN_DIR / f"{text}.json").is_file():
        path = BUILTIN_DIR / f"{text}.json"
    if not path.is_file():
        raise JointMapError(f"joint map does not exist (a JSON file, or a built-in map: "
                            f"{', '.join(joint_map_names())})", path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise JointMapError(f"not valid JSON: {exc}", path) from None
    return parse_joint_map(data, path)


def parse_joint_map(data: Any, path: str | os.PathLike | None) -> JointMap:
    """A JointMap from parsed JSON of any of the three formats (told apart by their keys)."""
    where = None if path is None else os.fspath(path)
    if not isinstance(data, Mapping):
        raise JointMapError("expected a JSON object", where)
    if data.get("format") == FORMAT_TAG or "joints" in data and isinstance(data["joints"], Mapping):
        return _read_optiq(data, where)
    if "jointAssignments" in data:
        return _read_bvhtodeepmimic(data, where)
    if "joint_mapping" in data:
        return _read_isaacgym(data, where)
    raise JointMapError("not a joint map: expected 'joints' (optiq), 'jointAssignments' (BvhToDeepMimic) or "
                        "'joint_mapping' (IsaacGymEnvs)", where)


#: The top-level keys of optiq's own format (``description`` is for people).
OPTIQ_KEYS = ("format", "version", "name", "description", "scale", "root", "joints")


def _read_optiq(data: Mapping[str, Any], where: str | None) -> JointMap:
    unknown = sorted(set(data) - set(OPTIQ_KEYS))
    if unknown:  # a misspelt "scale" or "root" would otherwise fall back to its default unseen
        raise JointMapError(f"unknown key(s) {', '.join(unknown)}; expected {', '.join(OPTIQ_KEYS)}", where)
    if data.get("version", VERSION) != VERSION:
        raise JointMapError(f"joint map version {data.get('version')!r} is not one this optiq reads ({VERSION})",
                            where, "key 'version'")
    pairs = [_pair(src, entry, where) for src, entry in data["joints"].items()]
    if not pairs:
        raise JointMapError("maps no joint: expected at least one entry", where, "key 'joints'")
    root = data.get("root")
    if root is not None and not isinstance(root, str):
        raise JointMapError(f"expected a joint name, got {root!r}", where, "key 'root'")
    return JointMap(tuple(pairs), _scale(data.get("scale", 1.0), where), str(data.get("name", "")), root,
                    source_path=where)


def _pair(source: str, entry: Any, where: str | None) -> Pair:
    place = f"joints.{source}"
    if isinstance(entry, str):
        return Pair(source, entry)
    if not isinstance(entry, Mapping) or not isinstance(entry.get("body"), str):
        raise JointMapError(f"expected a body name or an object with 'body', got {entry!r}", where, place)
    unknown = sorted(set(entry) - {"body", "position", "orientation", "rotation", "offset"})
    if unknown:
        raise JointMapError(f"unknown key(s) {', '.join(unknown)}; expected body, position, orientation, rotation, "
                            "offset", where, place)
    weights = {k: _number(entry.get(k, d), where, f"{place}.{k}", minimum=0.0)
               for k, d in (("position", 1.0), ("orientation", 0.0))}
    rotation = _vector(entry.get("rotation", (1.0, 0.0, 0.0, 0.0)), 4, where, f"{place}.rotation")
    norm = float(np.linalg.norm(rotation))
    if not norm > 1e-9:
        raise JointMapError("expected a unit quaternion w, x, y, z", where, f"{place}.rotation")
    return Pair(source, entry["body"], weights["position"], weights["orientation"],
                tuple(float(x) for x in np.asarray(rotation) / norm),
                tuple(_vector(entry.get("offset", (0.0, 0.0, 0.0)), 3, where, f"{place}.offset")))


def _number(value: Any, where: str | None, place: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) \
            or (minimum is not None and value < minimum):
        raise JointMapError(f"expected a finite number{'' if minimum is None else f' >= {minimum:g}'}, got {value!r}",
                            where, place)
    return float(value)


def _vector(value: Any, size: int, where: str | None, place: str) -> list[float]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != size:
        raise JointMapError(f"expected a list of {size} numbers, got {value!r}", where, place)
    return [_number(v, where, place) for v in value]


def _scale(value: Any, where: str | None) -> float | str:
    if value == "height":
        return "height"
    scale = _number(value, where, "scale")
    if scale <= 0:
        raise JointMapError(f"expected a positive number or \"height\", got {value!r}", where, "key 'scale'")
    return scale


def _read_bvhtodeepmimic(data: Mapping[str, Any], where: str | None) -> JointMap:
    """BvhToDeepMimic's settings: ``jointAssignments`` maps DeepMimic joints (``"right hip"``; ``"hip"`` is the
    root) to BVH joints. DeepMimic's joint names are the character's with ``_`` for spaces and ``root`` for hip."""
    assign = data["jointAssignments"]
    if not isinstance(assign, Mapping) or not all(isinstance(v, str) for v in assign.values()):
        raise JointMapError("expected an object of DeepMimic joint -> BVH joint names", where, "key 'jointAssignments'")
    pairs = []
    for target, source in assign.items():
        body = "root" if target == "hip" else target.replace(" ", "_")
        # The root and the ankles carry orientation in DeepMimic's own conversion (root rotation, foot angles).
        orient = 1.0 if body == "root" or body.endswith("ankle") else 0.0
        pairs.append(Pair(source, body, orientation=orient))
    root = assign.get("hip")
    return JointMap(tuple(pairs), 1.0, "bvhtodeepmimic", root,
                    _number(data.get("scale", 1.0), where, "key 'scale'"), where,
                    {"rootRotJoints": dict(data.get("rootRotJoints", {}))})


def _read_isaacgym(data: Mapping[str, Any], where: str | None) -> JointMap:
    """IsaacGymEnvs' poselib retarget config: ``joint_mapping`` source joint -> AMP humanoid body. Its
    ``rotation`` (xyzw) turns the source's Y-up FBX frame to Z-up and its ``scale`` converts units: optiq's
    loaders do both, so neither is applied again; trim frames and root height offset are kept in ``extra``."""
    mapping = data["joint_mapping"]
    if not isinstance(mapping, Mapping) or not all(isinstance(v, str) for v in mapping.values()):
        raise JointMapError("expected an object of source joint -> body names", where, "key 'joint_mapping'")
    pairs = [Pair(src, body, orientation=1.0 if body in ("pelvis",) or body.endswith("foot") else 0.0)
             for src, body in mapping.items()]
    keep = ("rotation", "root_height_offset", "trim_frame_beg", "trim_frame_end")
    return JointMap(tuple(pairs), 1.0, "isaacgymenvs", None, _number(data.get("scale", 1.0), where, "key 'scale'"),
                    where, {k: data[k] for k in keep if k in data})
