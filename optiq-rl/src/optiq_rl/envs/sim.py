"""What both environments share: the character on a physics model with a control step, its controller, its
body features, fall detection, and the settings of all of it (``SimConfig``)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields

import gymnasium as gym
import mujoco
import numpy as np
from optiq.errors import OptiqError

from ..characters import Character, character
from .control import Controller
from .observations import BodyFeatures, BodyState


class EnvConfigError(OptiqError):
    """An environment setting is out of range or unknown."""


@dataclass
class SimConfig:
    """Settings of the simulated character (both envs).

    character: a registered name (``deepmimic``), a file (``body.xml``, ``*_character.txt``, ``ds.parquet``) or a
    Character. control_hz: policy rate (Hz). physics_hz: physics rate (Hz), a whole multiple of control_hz (600 /
    30: 20 substeps). control: ``spd`` (default), ``pd``, ``torque`` or ``implicit_pd`` (control.py; plain ``pd``
    with DeepMimic's gains needs about 2400 Hz; ``implicit_pd`` is MuJoCo's own PD, the fastest). rotation: the
    rotation encoding of the observations (``optiq.features.ROTATIONS``). max_seconds: episode length before
    truncation (s). fall_termination: end the episode when a fall body (``Character.fall_bodies``) touches the
    ground.
    """

    character: object = "deepmimic"
    control_hz: float = 30.0
    physics_hz: float = 600.0
    control: str = "spd"
    rotation: str = "6d"
    max_seconds: float = 10.0
    fall_termination: bool = True


class CharacterSim:
    """A character on a copy of its model with ``timestep = 1 / physics_hz``; ``advance()`` runs one control
    step (``substeps`` physics steps) and refreshes positions, rotations and the centre of mass."""

    def __init__(self, config: SimConfig):
        self.char: Character = config.character if isinstance(config.character, Character) \
            else character(str(config.character))
        ratio = config.physics_hz / config.control_hz
        if config.control_hz <= 0 or ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
            raise EnvConfigError(f"physics_hz {config.physics_hz} must be a whole multiple of control_hz "
                                 f"{config.control_hz}")
        self.substeps = int(round(ratio))
        self.model = copy.copy(self.char.model())  # the character's model is shared: change a copy
        self.model.opt.timestep = 1.0 / config.physics_hz
        self.data = mujoco.MjData(self.model)
        self.controller = Controller(self.char, self.model, config.control)
        self.features = BodyFeatures(self.char, config.control_hz, config.rotation)
        self.root_body = int(self.char.body_ids()[0])
        self.mass = float(self.model.body_subtreemass[self.root_body])
        self._fall_geom, self._ground_geom = self._fall_masks()
        self._bad_qacc = self.data.warning[mujoco.mjtWarning.mjWARN_BADQACC]  # a view: its count stays current
        self._renderer = None  # made on the first render()

    def _fall_masks(self) -> tuple[np.ndarray, np.ndarray]:
        """``[ngeom]`` masks: geoms of the fall bodies, and the ground (geoms of the world body)."""
        m = self.model
        names = set(self.char.fall_bodies)
        fall_bodies = [b for b in range(m.nbody) if mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b) in names]
        return np.isin(m.geom_bodyid, fall_bodies), m.geom_bodyid == 0

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Put the body at qpos ``[nq]`` with qvel ``[nv]`` (contacts found again at the next step)."""
        d = self.data
        d.qpos[:] = qpos
        d.qvel[:] = qvel
        d.qacc_warmstart[:] = 0.0
        self._bad_qacc.number = 0
        self.refresh()

    def refresh(self) -> None:
        """Body positions and rotations (``mj_kinematics``) and the centre of mass (``mj_comPos``) at qpos."""
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)

    def advance(self) -> None:
        self.controller.step(self.data, self.substeps)
        self.refresh()

    def body_state(self) -> BodyState:
        """The joints' world positions ``[J, 3]`` (m) and optiq world rotations ``[J, 4]``, ``[J, 3, 3]`` now."""
        return self.features.body_state(self.data.xpos, self.data.xquat, self.data.xmat)

    def com(self) -> np.ndarray:
        """Centre of mass ``[3]`` (m) of the character."""
        return self.data.subtree_com[self.root_body].copy()

    def fell(self) -> bool:
        """Whether a fall body touches the ground (the contacts of the last physics step)."""
        n = self.data.ncon
        if n == 0:
            return False
        g = self.data.contact.geom  # [ncon, 2]
        fall, ground = self._fall_geom[g], self._ground_geom[g]
        return bool(np.any((fall[:, 0] & ground[:, 1]) | (fall[:, 1] & ground[:, 0])))

    def render(self, width: int = 640, height: int = 480) -> np.ndarray:
        """``[height, width, 3]`` uint8: MuJoCo's offscreen image of the scene, the camera following the root
        (3.5 m away, 15 degrees above, looking along +x), drawn by the videos' ``render.SceneRenderer`` (which
        picks EGL or OSMesa when headless, and names the package to install when neither is there)."""
        if self._renderer is None or self._renderer.renderer.width != width \
                or self._renderer.renderer.height != height:
            from ..render import SceneRenderer

            self.close()
            self._renderer = SceneRenderer(self.model, (width, height), self.root_body, distance=3.5,
                                           elevation=-15.0, azimuth=0.0)
        return self._renderer.frame(self.data)

    def close(self) -> None:
        """Free the renderer (its OpenGL context), if any."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def unstable(self) -> bool:
        """Whether the simulation blew up since the last reset (MuJoCo warns of a bad acceleration, resets the state
        to qpos0 and counts it)."""
        return self._bad_qacc.number > 0  # MuJoCo counts it, and resets the state to qpos0


def make_config(cls, config, kwargs: dict):
    """``config`` (a dataclass of ``cls`` or None) with ``kwargs`` applied; unknown keys are an error."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise EnvConfigError(f"{cls.__name__}: unknown setting(s) {', '.join(unknown)}; settings: "
                             f"{', '.join(sorted(known))}")
    base = config if config is not None else cls()
    return cls(**{**{f.name: getattr(base, f.name) for f in fields(cls)}, **kwargs})


class CharacterEnv(gym.Env):
    """What both optiq envs share as Gymnasium envs: the simulated character (``sim``), ``max_steps`` control
    steps per episode, the control rate as ``render_fps``, and ``rgb_array`` rendering."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def _start(self, cfg: SimConfig, render_mode: str | None) -> None:
        if render_mode not in (None, "rgb_array"):
            raise EnvConfigError(f"render_mode {render_mode!r} is unknown; expected None or 'rgb_array'")
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": cfg.control_hz}
        self.sim = CharacterSim(cfg)
        self.max_steps = int(round(cfg.max_seconds * cfg.control_hz))
        self.action_base = None

    def body_states(self):
        """The character's ``BodyState`` at the previous control step and now (after a reset: the state before the
        start, the reference's when it starts on one, and the start)."""
        return self._prev, self._body

    def set_action_base(self, qpos: np.ndarray | None) -> None:
        """The pose ``[nq]`` that residual actions turn from at the following steps, in place of the env's own
        (Track-v0: the reference's next frame; Locomotion-v0: the rest pose); None: the env's own again. The
        ``prior`` adapter sets a motion model's predicted pose here before every step (``adapters.py``)."""
        self.action_base = None if qpos is None else np.asarray(qpos, dtype=np.float64)

    def render(self):
        """``rgb_array``: the frame ``[480, 640, 3]`` uint8 (``CharacterSim.render``); None otherwise."""
        return self.sim.render() if self.render_mode == "rgb_array" else None

    def close(self):
        self.sim.close()
