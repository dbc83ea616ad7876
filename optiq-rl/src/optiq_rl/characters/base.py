"""The character: a MuJoCo body plus what control and retargeting need to know about it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from optiq.errors import OptiqError
from optiq.skeleton import Skeleton


class CharacterError(OptiqError):
    """A character (MJCF or character file) cannot be built or loaded."""


@dataclass(eq=False)
class Character:
    """A simulated body.

    name: what it is called (``deepmimic``, or a file's stem). mjcf_xml: the whole MJCF text (self-contained).
    joint_names: the optiq skeleton joint names ``[J]`` in skeleton order; joint ``joint_names[i]`` is MuJoCo body
    ``body_names[i]`` (the same names unless a joint map says otherwise). kp ``[nu]`` N m/rad, kd ``[nu]``
    N m s/rad: PD gains per actuator (one actuator per actuated degree of freedom, in the model's actuator order).
    torque_limits ``[nu]`` N m: the largest torque each actuator applies. fall_bodies: bodies whose ground
    contact ends an episode as a fall. source: where it was built from. forward: the direction the body faces
    (walks) at heading 0, radians about z from +x: pi/2 for the DeepMimic humanoid (+y), 0 for Humanoid-v5 and
    for bodies built from optiq skeletons (+x, the BVH loaders' walks).
    """

    name: str
    mjcf_xml: str
    joint_names: tuple[str, ...]
    kp: np.ndarray
    kd: np.ndarray
    torque_limits: np.ndarray
    body_names: tuple[str, ...] = ()
    fall_bodies: tuple[str, ...] = ()
    source: str = ""
    forward: float = 0.0
    _model: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.joint_names = tuple(self.joint_names)
        self.body_names = tuple(self.body_names) or self.joint_names
        self.fall_bodies = tuple(self.fall_bodies)
        self.kp, self.kd, self.torque_limits = (np.asarray(a, dtype=np.float64).reshape(-1)
                                                for a in (self.kp, self.kd, self.torque_limits))
        nu = self.model().nu
        for what, arr in (("kp", self.kp), ("kd", self.kd), ("torque_limits", self.torque_limits)):
            if arr.shape != (nu,):
                raise CharacterError(f"character {self.name!r}: {what} has {arr.size} values, expected one per "
                                     f"actuator ({nu})")
        if len(self.body_names) != len(self.joint_names):
            raise CharacterError(f"character {self.name!r}: {len(self.body_names)} bodies for "
                                 f"{len(self.joint_names)} joints")

    def model(self):
        """The compiled ``mujoco.MjModel`` (compiled once; treat it as read-only, copy it to change options)."""
        if self._model is None:
            import mujoco

            try:
                self._model = mujoco.MjModel.from_xml_string(self.mjcf_xml)
            except ValueError as exc:
                raise CharacterError(f"MuJoCo cannot load the MJCF: {_one_line(exc)}", self.source or None) from None
        return self._model

    def body_ids(self) -> np.ndarray:
        """MuJoCo body id ``[J]`` of every optiq joint."""
        import mujoco

        m = self.model()
        ids = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, b) for b in self.body_names])
        if np.any(ids < 0):
            missing = [b for b, i in zip(self.body_names, ids, strict=True) if i < 0]
            raise CharacterError(f"character {self.name!r}: no body {', '.join(missing)} in its MJCF")
        return ids

    def actuator_names(self) -> list[str]:
        import mujoco

        m = self.model()
        return [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_ACTUATOR, i) or f"actuator{i}" for i in range(m.nu)]

    def actuator_dofs(self) -> np.ndarray:
        """The degree of freedom (index into qvel) ``[nu]`` each actuator drives: a hinge's, or the axis of a ball
        joint its ``gear`` names (a generated character's ``chest_x`` drives the chest's first dof). Raises when an
        actuator drives no single dof (a tendon, a gear mixing axes)."""
        m = self.model()
        out = np.empty(m.nu, dtype=np.int64)
        for a in range(m.nu):
            joint, gear = int(m.actuator_trnid[a, 0]), m.actuator_gear[a, :3]
            axis = np.flatnonzero(gear)
            if m.actuator_trntype[a] != 0 or m.jnt_type[joint] in (0, 2) or len(axis) != 1 \
                    or (m.jnt_type[joint] == 3 and axis[0] != 0):
                raise CharacterError(f"character {self.name!r}: actuator {a} does not drive one hinge or one "
                                     "ball-joint axis")
            out[a] = m.jnt_dofadr[joint] + axis[0]
        return out

    def skeleton(self) -> Skeleton:
        """The optiq skeleton of the rest pose (``qpos0``): joint names, parents and rest offsets (metres)."""
        import mujoco

        m = self.model()
        data = mujoco.MjData(m)
        mujoco.mj_kinematics(m, data)
        ids = self.body_ids()
        index = {int(b): j for j, b in enumerate(ids)}
        parents = np.full(len(ids), -1)
        for j, b in enumerate(ids[1:], start=1):
            p = int(m.body_parentid[b])
            while p not in index and p > 0:  # bodies outside the map (props) are skipped over
                p = int(m.body_parentid[p])
            if p not in index:
                raise CharacterError(f"character {self.name!r}: body {self.body_names[j]} is not below "
                                     f"{self.body_names[0]}")
            parents[j] = index[p]
        pos = data.xpos[ids]
        offsets = pos - np.where(parents[:, None] >= 0, pos[np.maximum(parents, 0)], 0.0)
        return Skeleton(self.joint_names, parents, offsets)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the MJCF atomically to ``path`` (``.xml``)."""
        from optiq.atomic import atomic_text

        with atomic_text(path, suffixes=(".xml",)) as fh:
            fh.write(self.mjcf_xml)
        return Path(path)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def load_mjcf(path: str | os.PathLike, name: str | None = None) -> Character:
    """A character from any MJCF file.

    The optiq custom fields (``characters.mjcf``) are used when present (without ``optiq_forward`` the body faces
    +x). Otherwise the joints are the bodies of
    the tree that holds the first free joint (else the first body), in model order, each named after its body;
    torque limits come from each motor's ``gear`` times its ``ctrlrange`` (else its ``forcerange``, else the
    joint's ``actuatorfrcrange``), and the gains default to ``kp = 2 x torque limit`` (full torque at 0.5 rad
    of error; 300 for an actuator without a limit) and ``kd = kp / 10`` (DeepMimic's ratio).
    """
    import mujoco

    path = Path(path)
    if not path.is_file():
        raise CharacterError("MJCF file does not exist" if not path.exists() else "MJCF path is not a file", path)
    try:
        model = mujoco.MjModel.from_xml_path(os.fspath(path))
        # Recompiling from the saved text makes the Character self-contained (meshes and includes resolved).
        xml = _saved_xml(model)
    except ValueError as exc:
        raise CharacterError(f"MuJoCo cannot load it: {_one_line(exc)}", path) from None
    custom = _custom_fields(model)
    bodies = custom["optiq_joints"].split() if "optiq_joints" in custom else _tree_bodies(model)
    limits = _torque_limits(model)
    kp = custom.get("optiq_kp", 2.0 * np.where(np.isfinite(limits), limits, 150.0))
    kd = custom.get("optiq_kd", kp / 10.0)
    fall = custom.get("optiq_fall_bodies", "").split()
    forward = float(custom["optiq_forward"][0]) if "optiq_forward" in custom else 0.0
    return Character(name or path.stem, xml, tuple(bodies), kp, kd, limits, fall_bodies=tuple(fall),
                     source=os.fspath(path), forward=forward, _model=model)


def _saved_xml(model) -> str:
    import tempfile

    import mujoco

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "model.xml")
        mujoco.mj_saveLastXML(out, model)
        return Path(out).read_text(encoding="utf-8")


def _custom_fields(model) -> dict:
    import mujoco

    out: dict = {}
    for i in range(model.nnumeric):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_NUMERIC, i)
        adr, size = model.numeric_adr[i], model.numeric_size[i]
        out[name] = np.array(model.numeric_data[adr:adr + size])
    for i in range(model.ntext):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_TEXT, i)
        adr, size = model.text_adr[i], model.text_size[i]
        out[name] = bytes(model.text_data[adr:adr + size]).split(b"\0")[0].decode()
    return out


def _tree_bodies(model) -> list[str]:
    import mujoco

    if model.nbody < 2:
        raise CharacterError("the MJCF has no body besides the world")
    free = np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_FREE)
    top = int(model.jnt_bodyid[free[0]]) if len(free) else 1
    inside = np.zeros(model.nbody, dtype=bool)
    inside[top] = True
    for b in range(top + 1, model.nbody):
        inside[b] = inside[model.body_parentid[b]]
    return [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b) or f"body{b}" for b in np.flatnonzero(inside)]


def _torque_limits(model) -> np.ndarray:
    """Largest torque per actuator (N m): gear times ctrlrange, forcerange, or the joint's actuatorfrcrange."""
    gear = np.linalg.norm(model.actuator_gear[:, :3], axis=1)
    ctrl = np.where(model.actuator_ctrllimited.astype(bool), np.abs(model.actuator_ctrlrange).max(axis=1), np.inf)
    force = np.where(model.actuator_forcelimited.astype(bool), np.abs(model.actuator_forcerange).max(axis=1), np.inf)
    import mujoco

    on_joint = model.actuator_trntype == mujoco.mjtTrn.mjTRN_JOINT
    joint = np.where(on_joint, model.actuator_trnid[:, 0], 0)
    jnt = np.where(on_joint & model.jnt_actfrclimited[joint].astype(bool),
                   np.abs(model.jnt_actfrcrange[joint]).max(axis=1), np.inf)
    return np.minimum(np.minimum(gear * ctrl, force), jnt)
