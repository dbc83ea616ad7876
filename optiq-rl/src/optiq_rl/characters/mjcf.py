"""Writing optiq's own MJCF: the scene every generated character stands in, motors, and the custom fields that
carry what MuJoCo has no element for (the optiq joint names, PD gains, fall-contact bodies).

Custom fields of a generated MJCF (``<custom>``), read back by ``character("body.xml")``:

- ``optiq_joints`` (text): the optiq skeleton joint names, in order, separated by spaces; body ``name`` = joint.
- ``optiq_kp``, ``optiq_kd`` (numeric, one value per actuator in actuator order): PD gains, N m/rad and
  N m s/rad.
- ``optiq_fall_bodies`` (text): bodies whose contact with the ground is a fall (DeepMimic's EnableFallContact).
- ``optiq_forward`` (numeric, one value): the direction the body faces at heading 0, radians about z from +x
  (``Character.forward``); absent: 0.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

import numpy as np

#: Character geoms collide with the floor but not with each other (contype 0 never starts a contact; the floor's
#: contype 1 meets their conaffinity 1), as DeepMimic disables self-collision.
BODY_CONTACT = {"contype": "0", "conaffinity": "1"}
VISUAL = {"contype": "0", "conaffinity": "0", "group": "1", "mass": "0"}


def fmt(values) -> str:
    """Numbers as MJCF text: ``%.9g`` each, so a value read back is the value written to 1e-9."""
    return " ".join(f"{float(v):.9g}" for v in np.atleast_1d(np.asarray(values, dtype=np.float64)))


def new_scene(name: str, timestep: float = 0.002) -> tuple[ET.Element, ET.Element]:
    """An ``<mujoco>`` root with options, a ground plane (z = 0) and a light; returns it and its worldbody.

    timestep: physics step in seconds (an env runs several per control step).
    """
    root = ET.Element("mujoco", model=name)
    ET.SubElement(root, "compiler", angle="radian", autolimits="true")
    ET.SubElement(root, "option", timestep=fmt(timestep))
    default = ET.SubElement(root, "default")
    # A little armature keeps stiff PD control stable at the physics step (MimicKit's humanoid uses 0.01-0.02).
    ET.SubElement(default, "joint", armature="0.01", damping="0")
    ET.SubElement(default, "geom", condim="3", friction="1 0.05 0.05")
    asset = ET.SubElement(root, "asset")
    ET.SubElement(asset, "texture", name="grid", type="2d", builtin="checker", rgb1=".2 .3 .4", rgb2=".3 .4 .5",
                  width="512", height="512")
    ET.SubElement(asset, "material", name="grid", texture="grid", texrepeat="1 1", texuniform="true")
    world = ET.SubElement(root, "worldbody")
    ET.SubElement(world, "light", name="sun", pos="0 0 5", dir="0 0 -1", directional="true", diffuse=".8 .8 .8")
    ET.SubElement(world, "geom", name="floor", type="plane", size="0 0 0.1", material="grid",
                  contype="1", conaffinity="1")
    return root, world


def add_motor(actuators: ET.Element, name: str, joint: str, limit: float, axis: Sequence[float] | None) -> None:
    """A torque motor (ctrl in N m, clamped to +-limit) on a hinge, or on one axis of a ball joint."""
    attrs = {"name": name, "joint": joint, "ctrlrange": fmt([-limit, limit])}
    if axis is not None:
        attrs["gear"] = fmt([*axis, 0, 0, 0])
    ET.SubElement(actuators, "motor", attrs)


def add_custom(root: ET.Element, joints: Sequence[str], kp: np.ndarray, kd: np.ndarray,
               fall_bodies: Sequence[str], forward: float = 0.0) -> None:
    """The optiq custom fields (see the module docstring)."""
    custom = ET.SubElement(root, "custom")
    if forward:
        ET.SubElement(custom, "numeric", name="optiq_forward", data=fmt(forward))
    ET.SubElement(custom, "text", name="optiq_joints", data=" ".join(joints))
    ET.SubElement(custom, "numeric", name="optiq_kp", data=fmt(kp))
    ET.SubElement(custom, "numeric", name="optiq_kd", data=fmt(kd))
    if fall_bodies:
        ET.SubElement(custom, "text", name="optiq_fall_bodies", data=" ".join(fall_bodies))


def lowest_point(model, data) -> float:
    """Lowest z (metres) of any collision geom of the character (not the world's, not drawn-only ones) in the
    posed model (``mj_kinematics`` done)."""
    collide = (model.geom_contype != 0) | (model.geom_conaffinity != 0)
    return float(lowest_points(model, data, np.flatnonzero(collide & (model.geom_bodyid > 0))).min())


def lowest_points(model, data, geoms: np.ndarray) -> np.ndarray:
    """Lowest world z ``[G]`` (metres) of each geom in ``geoms`` at the pose in ``data``: exact for spheres,
    capsules, boxes and ellipsoids, the geom's bounding box otherwise."""
    kind = model.geom_type[geoms]
    size = model.geom_size[geoms]
    up = data.geom_xmat[geoms].reshape(-1, 3, 3)[:, 2, :]  # world z of each geom axis
    z = data.geom_xpos[geoms, 2]
    low = z - np.sum(np.abs(up) * model.geom_aabb[geoms, 3:], axis=1)
    low = np.where(kind == 2, z - size[:, 0], low)  # sphere
    low = np.where(kind == 3, z - np.abs(up[:, 2]) * size[:, 1] - size[:, 0], low)  # capsule
    low = np.where(kind == 4, z - np.sqrt(np.sum((up * size) ** 2, axis=1)), low)  # ellipsoid
    low = np.where(kind == 6, z - np.sum(np.abs(up) * size, axis=1), low)  # box
    return low


def stand_on_ground(root: ET.Element, root_body: ET.Element) -> str:
    """Raise ``root_body`` so that the rest pose's lowest geom touches the ground; returns the MJCF text."""
    import mujoco

    text = to_string(root)
    model = mujoco.MjModel.from_xml_string(text)
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    pos = np.array([float(x) for x in root_body.get("pos", "0 0 0").split()])
    pos[2] -= lowest_point(model, data)
    root_body.set("pos", fmt(pos))
    return to_string(root)


def insert_before_bodies(body: ET.Element, child: ET.Element) -> None:
    """Add ``child`` (a geom) to ``body`` after its joints and geoms, before its child bodies: readable MJCF."""
    index = next((i for i, c in enumerate(body) if c.tag == "body"), len(body))
    body.insert(index, child)


def to_string(root: ET.Element) -> str:
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"
