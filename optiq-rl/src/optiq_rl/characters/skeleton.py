"""A body for any optiq skeleton: a BVH performer simulated as is.

Every joint is a body at its rest offset (frames world-aligned, as optiq's rest pose), the root with a free
joint, the others with ball joints limited to ``joint_range`` radians. Each bone is a capsule from a joint to its
child (or end site), its radius ``bone_radius`` x its length within ``[min_radius, max_radius]`` x the
skeleton's height / 1.7 m; feet (joints named foot or ankle, and their toes) are boxes down to the sole.
Masses follow the geoms' volumes, scaled to ``total_mass``. Each ball joint has three motors whose PD gains grow
with the mass the joint carries: ``kp = 300 + 30 x (mass below it in kg)`` N m/rad (at most 1000), ``kd = kp / 10``,
torque limit ``0.3 x kp`` N m: the range of DeepMimic's humanoid (kp 100-1000), a rule, not a published number.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from optiq.skeleton import Skeleton

from .base import Character, CharacterError
from .mjcf import BODY_CONTACT, add_custom, add_motor, fmt, insert_before_bodies, new_scene, stand_on_ground

_FOOT = re.compile(r"foot|ankle", re.IGNORECASE)
_TOE = re.compile(r"toe", re.IGNORECASE)


@dataclass(frozen=True)
class BodyOptions:
    """Shape options (metres, kilograms, radians): see the module docstring."""

    total_mass: float = 70.0
    joint_range: float = 2.5
    bone_radius: float = 0.15
    min_radius: float = 0.02
    max_radius: float = 0.07
    foot_width: float = 0.09


def character_from_skeleton(skeleton: Skeleton, name: str = "skeleton", options: BodyOptions | None = None,
                            source: str = "") -> Character:
    """The Character of ``skeleton`` (Z up, metres; its rest pose is the body's zero pose)."""
    opt = options or BodyOptions()
    if skeleton.num_joints < 2:
        raise CharacterError(f"skeleton has {skeleton.num_joints} joint(s); a body needs a root and at least one "
                             "joint below it", source or None)
    if opt.total_mass <= 0:
        raise CharacterError(f"total mass must be positive, got {opt.total_mass:g} kg")
    rest = skeleton.rest_positions()
    height = max(float(np.ptp(rest[:, 2])), 0.1)
    geoms = _geoms(skeleton, rest, opt, height / 1.7)
    volumes = np.array([_volume(g) for _, g in geoms])
    masses = opt.total_mass * volumes / volumes.sum()

    scene, world = new_scene(name)
    bodies: list[ET.Element] = []
    for j, jname in enumerate(skeleton.names):
        parent = world if j == 0 else bodies[skeleton.parents[j]]
        body = ET.SubElement(parent, "body", name=jname, pos=fmt(rest[0] if j == 0 else skeleton.offsets[j]))
        if j == 0:
            ET.SubElement(body, "freejoint", name=jname)
        else:
            ET.SubElement(body, "joint", name=jname, type="ball", range=fmt([0.0, opt.joint_range]))
        bodies.append(body)
    for (j, attrs), mass in zip(geoms, masses, strict=True):
        insert_before_bodies(bodies[j], ET.Element("geom", {**attrs, "mass": fmt(mass), **BODY_CONTACT}))

    below = _mass_below(skeleton, np.bincount([j for j, _ in geoms], weights=masses, minlength=skeleton.num_joints))
    kp_joint = np.minimum(300.0 + 30.0 * below, 1000.0)
    actuators = ET.SubElement(scene, "actuator")
    for j in range(1, skeleton.num_joints):
        for a, axis in enumerate(np.eye(3)):
            add_motor(actuators, f"{skeleton.names[j]}_{'xyz'[a]}", skeleton.names[j], 0.3 * kp_joint[j], axis)
    kp = np.repeat(kp_joint[1:], 3)
    feet = {skeleton.names[j] for j in _foot_joints(skeleton)}
    fall = tuple(n for n in skeleton.names if n not in feet)
    add_custom(scene, skeleton.names, kp, kp / 10.0, fall)
    xml = stand_on_ground(scene, bodies[0])
    return Character(name, xml, skeleton.names, kp, kp / 10.0, 0.3 * kp, fall_bodies=fall, source=source)


def character_from_dataset(path: str | os.PathLike, clip: str | int = 0, options: BodyOptions | None = None,
                           name: str | None = None) -> Character:
    """The Character of a dataset's skeleton, with the rest offsets of clip ``clip`` (its performer), rooted
    where the motion is (``optiq_rl.retarget.playable_root``)."""
    from optiq.datasets import open_dataset

    from ..retarget import playable_root

    with open_dataset(path) as ds:
        motion = ds.read_clip(clip)
    root = playable_root(motion)
    skeleton = motion.skeleton if root == motion.skeleton.names[0] else motion.rerooted(root).skeleton
    return character_from_skeleton(skeleton, name or Path(path).stem, options, source=os.fspath(path))


def _foot_joints(skeleton: Skeleton) -> list[int]:
    """Joints named foot/ankle and the toe joints below them."""
    feet = [j for j, n in enumerate(skeleton.names) if _FOOT.search(n)]
    toes = [j for j, n in enumerate(skeleton.names) if _TOE.search(n) and skeleton.parents[j] in feet]
    return feet + toes


def _tips(skeleton: Skeleton, j: int) -> list[np.ndarray]:
    """Where the bones of joint ``j`` end (local offsets): its children, else its end site."""
    kids = skeleton.children(j)
    if kids:
        return [skeleton.offsets[c] for c in kids]
    return [skeleton.end_sites[j]] if j in skeleton.end_sites else []


def _geoms(skeleton: Skeleton, rest: np.ndarray, opt: BodyOptions, scale: float) -> list[tuple[int, dict]]:
    """(joint, geom attributes) of every collision geom, without mass."""
    feet = set(_foot_joints(skeleton))
    sole = float(rest[:, 2].min())
    out: list[tuple[int, dict]] = []
    for j in range(skeleton.num_joints):
        tips = [t for t in _tips(skeleton, j) if np.linalg.norm(t) > 1e-3]
        if j in feet and tips:
            out.append((j, {"name": f"{skeleton.names[j]}_foot", **_foot_box(rest[j], tips, sole, opt.foot_width * scale)}))
            continue
        for k, tip in enumerate(tips):
            radius = float(np.clip(opt.bone_radius * np.linalg.norm(tip), opt.min_radius, opt.max_radius)) * scale
            out.append((j, {"name": f"{skeleton.names[j]}_{k}", "type": "capsule",
                            "fromto": fmt(np.concatenate((np.zeros(3), tip))), "size": fmt(radius)}))
        if not tips:  # a leaf with no end site, or bones of zero length: a small sphere keeps the body's mass
            out.append((j, {"name": skeleton.names[j], "type": "sphere", "size": fmt(opt.min_radius * scale)}))
    return out


def _foot_box(origin: np.ndarray, tips: list[np.ndarray], sole: float, width: float) -> dict:
    """A box from the joint to its furthest tip, down to the sole (the lowest rest joint), ``width`` wide."""
    tip = max(tips, key=lambda t: float(np.linalg.norm(t[:2])))
    top = max(0.0, float(tip[2])) + 0.02
    bottom = min(sole - origin[2], float(tip[2])) - 0.01
    length = max(float(np.linalg.norm(tip[:2])), 0.02)
    heading = np.arctan2(tip[1], tip[0])
    centre = np.array([0.5 * tip[0], 0.5 * tip[1], 0.5 * (top + bottom)])
    half = np.array([0.5 * length + 0.02, 0.5 * width, 0.5 * (top - bottom)])
    return {"type": "box", "pos": fmt(centre), "size": fmt(half),
            "euler": fmt([0.0, 0.0, heading])}


def _volume(attrs: dict) -> float:
    size = np.array([float(x) for x in attrs["size"].split()])
    if attrs["type"] == "sphere":
        return 4.0 / 3.0 * np.pi * size[0] ** 3
    if attrs["type"] == "box":
        return float(np.prod(2.0 * size))
    ends = np.array([float(x) for x in attrs["fromto"].split()])
    return np.pi * size[0] ** 2 * np.linalg.norm(ends[3:] - ends[:3]) + 4.0 / 3.0 * np.pi * size[0] ** 3


def _mass_below(skeleton: Skeleton, mass: np.ndarray) -> np.ndarray:
    """Mass ``[J]`` (kg) of each joint's subtree, the joint's own body excluded."""
    total = mass.copy()
    for j in range(skeleton.num_joints - 1, 0, -1):
        total[skeleton.parents[j]] += total[j]
    return total - mass
