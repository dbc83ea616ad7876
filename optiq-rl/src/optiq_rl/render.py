"""Videos of a policy acting, drawn by MuJoCo's own offscreen renderer: ``render_policy("p.zip", "eval.mp4")``;
and of a reference motion played on a character, no policy and no physics: ``render_reference("ref.parquet",
"ref.mp4")`` (``optiq rl play``).

Registered as the renderer ``mujoco`` (``optiq_register_renderers``); ``optiq viz video --policy p.zip`` finds it
there. The policy runs deterministically in its env (or ``env``); after every control step MuJoCo draws the scene
with a camera tracking the character's root, so the video is frame-exact: one frame per step, at the control rate
(the env's ``render_fps``: 30 for the optiq envs, 1 / dt = 66.67 for Humanoid-v5). In ``optiq/Track-v0`` the
reference is drawn as a translucent ghost in the same scene (its own MjData at the reference frame), overlaid
or ``ghost_offset`` metres beside. Frames are piped to the ffmpeg of imageio-ffmpeg by optiq-viz's encoder (H.264
yuv420p, exact frame rate).

Headless rendering needs an OpenGL backend: EGL (Debian ``libegl1``) or OSMesa (``libosmesa6``). MuJoCo picks it
from ``MUJOCO_GL`` when it is imported; with no ``MUJOCO_GL`` and no display, ``gl_backend()`` chooses EGL, else
OSMesa, whichever is installed. A missing backend is one line naming the package to install.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from optiq.atomic import atomic_path, check_output_path
from optiq.errors import OptiqError

GHOST_RGBA = (0.2, 0.8, 0.3, 0.35)
BACKENDS = {"egl": ("EGL", "libegl1"), "osmesa": ("OSMesa", "libosmesa6")}
INSTALL = "install Debian's libegl1 (MUJOCO_GL=egl) or libosmesa6 (MUJOCO_GL=osmesa)"


class RenderError(OptiqError):
    """No OpenGL backend for MuJoCo's offscreen renderer, or rendering failed."""


def gl_backend() -> str:
    """The OpenGL backend MuJoCo will render with: ``MUJOCO_GL`` when set (checked), else with no display EGL or
    OSMesa, whichever library is installed (set in ``MUJOCO_GL`` before MuJoCo is imported). RenderError names the
    Debian package to install when the backend's library is missing."""
    name = os.environ.get("MUJOCO_GL", "").lower().strip()
    if name in ("", "glfw") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        found = [b for b, (lib, _) in BACKENDS.items() if ctypes.util.find_library(lib)]
        if not found:
            raise RenderError(f"no OpenGL for headless rendering (no display, no EGL or OSMesa): {INSTALL}")
        name = found[0]
        if "mujoco" not in sys.modules:
            os.environ["MUJOCO_GL"] = name
        else:  # MuJoCo chose glfw at import, which needs a display: give its renderer this backend's context
            _use_context(name)
    elif name in BACKENDS:
        lib, package = BACKENDS[name]
        if not ctypes.util.find_library(lib):
            raise RenderError(f"MUJOCO_GL={name} but lib{lib} is not installed: install Debian's {package}")
    elif name not in ("glfw", "glx"):
        raise RenderError(f"MUJOCO_GL={name!r} is no OpenGL backend of MuJoCo (egl, osmesa, glfw); headless: "
                          f"{INSTALL}")
    return name


def _use_context(name: str) -> None:
    import importlib

    from mujoco.rendering.classic import gl_context

    gl_context.GLContext = importlib.import_module(f"mujoco.{name}").GLContext


class SceneRenderer:
    """MuJoCo's offscreen renderer for one model: ``frame(data, ghost=None) -> [H, W, 3]`` uint8, the camera
    tracking body ``track_body`` (``distance`` m away, ``elevation`` degrees, looking along ``azimuth`` degrees
    from +x towards +y)."""

    def __init__(self, model, size: tuple[int, int] = (640, 480), track_body: int = 1, *, distance: float = 4.0,
                 elevation: float = -15.0, azimuth: float = 90.0, ghost_offset: Sequence[float] = (0.0, 0.0, 0.0),
                 shadows: bool = False):
        backend = gl_backend()
        import mujoco

        width, height = size
        # The offscreen framebuffer must hold the image (MJCF default 640x480).
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), width)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), height)
        try:
            self.renderer = mujoco.Renderer(model, height, width)
        except Exception as exc:  # mujoco raises several kinds (FatalError, AttributeError, ImportError)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise RenderError(f"MuJoCo's offscreen renderer failed with MUJOCO_GL={backend or 'unset'} ({first}); "
                              f"{INSTALL}") from None
        self.model = model
        # Shadows and reflections triple the time of a frame with a software OpenGL (measured: 0.15 -> 0.05 s at
        # 640x480 on 2 busy cores with Mesa's EGL); off unless asked for.
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION):
            self.renderer.scene.flags[flag] = shadows
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        self.camera.trackbodyid = track_body
        self.camera.distance, self.camera.elevation, self.camera.azimuth = distance, elevation, azimuth
        self.ghost_offset = np.asarray(ghost_offset, dtype=np.float64)
        self._perturb = mujoco.MjvPerturb()

    def frame(self, data, ghost=None) -> np.ndarray:
        """The image of ``data`` (and ``ghost``, an MjData of the same model, translucent) ``[H, W, 3]`` uint8."""
        import mujoco

        r = self.renderer
        r.update_scene(data, camera=self.camera)
        if ghost is not None:
            scene = r.scene
            first = scene.ngeom
            mujoco.mjv_addGeoms(self.model, ghost, r._scene_option, self._perturb, mujoco.mjtCatBit.mjCAT_DYNAMIC,
                                scene)
            for i in range(first, scene.ngeom):  # the ghost's few dozen geoms, once per frame
                g = scene.geoms[i]
                g.rgba[:] = GHOST_RGBA
                g.pos[:] = g.pos + self.ghost_offset
        return r.render()

    def close(self) -> None:
        self.renderer.close()


def _physics(env):
    """``(model, data, root body id, reference or None)`` of a MuJoCo env: the optiq envs (``.sim``) or
    Gymnasium's MujocoEnv (``.model``, ``.data``)."""
    inner = env.unwrapped
    sim = getattr(inner, "sim", None)
    if sim is not None:
        return sim.model, sim.data, sim.root_body, inner if hasattr(inner, "references") else None
    if hasattr(inner, "model") and hasattr(inner, "data"):
        return inner.model, inner.data, 1, None
    raise RenderError(f"env {inner.spec.id if inner.spec else type(inner).__name__} is not a MuJoCo env")


def _side_view(track) -> float:
    """Camera azimuth (degrees) seeing the motion from the side: across the first reference clip's travel in
    Track-v0, across +x (Gymnasium's walkers) otherwise."""
    return 90.0 if track is None else travel_azimuth(track.references[0].qpos)


def travel_azimuth(qpos: np.ndarray) -> float:
    """Camera azimuth (degrees) across the root's travel from the first to the last row of ``qpos [T, nq]``
    (its first two values the root's x, y in metres); 90 (looking along +y, across +x) for a motion that moves
    less than 0.1 m."""
    dx, dy = qpos[-1, :2] - qpos[0, :2]
    return float(np.degrees(np.arctan2(dy, dx))) + 90.0 if np.hypot(dx, dy) > 0.1 else 90.0


def render_policy(policy, out: str | os.PathLike, *, env: str | None = None, episodes: int = 1, seed: int = 0,
                  size: tuple[int, int] = (640, 480), max_steps: int | None = None, ghost: bool = True,
                  ghost_offset: Sequence[float] = (0.0, 0.0, 0.0), shadows: bool = False, progress: bool = False,
                  inputs: Sequence[str | os.PathLike] = (), **_ignored):
    """The ``mujoco`` renderer: an MP4 of ``episodes`` episodes of ``policy`` (a policy file or a loaded Policy)
    in its env (or ``env``), one frame per control step, at the control rate; written atomically to ``out``.
    Returns optiq-viz's ``Video`` (path, frames, fps, width, height)."""
    gl_backend()  # first: a missing backend is reported before anything loads, and before MuJoCo is imported
    from .train import Policy, load_policy

    try:
        from optiq_viz.video import VIDEO_SUFFIXES, Video, check_size, encode, exact_fps
    except ImportError:
        raise RenderError("videos are encoded by optiq-viz: pip install optiq-viz") from None
    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    inputs = [*inputs, *([] if isinstance(policy, Policy) else [policy])]
    check_output_path(out, suffixes=VIDEO_SUFFIXES, inputs=inputs)
    size = check_size(size)
    e = pol.make_env(env)
    try:
        model, data, root, track = _physics(e)
        import mujoco

        scene = SceneRenderer(model, size, root, azimuth=_side_view(track), ghost_offset=ghost_offset,
                              shadows=shadows)
        ghost_data = mujoco.MjData(model) if ghost and track is not None else None
        # The control rate: 1 / dt where the env has it (Humanoid-v5's render_fps is 1 / dt rounded), else its
        # render_fps (the optiq envs: control_hz).
        dt = getattr(e.unwrapped, "dt", None)
        rate = exact_fps(1.0 / dt if dt else float(e.metadata["render_fps"]))

        def frames():
            """Batches ``[B, H, W, 3]``: the frame after every control step, streamed (a long episode's frames
            would not fit in memory)."""
            batch = []
            for i in range(episodes):
                obs, _ = e.reset(seed=seed + i)
                done, steps = False, 0
                while not done and (max_steps is None or steps < max_steps):
                    obs, _, terminated, truncated, _ = e.step(pol.act(obs))
                    done, steps = terminated or truncated, steps + 1
                    if ghost_data is not None:
                        ghost_data.qpos[:] = track.ref.qpos[track.frame]
                        mujoco.mj_kinematics(model, ghost_data)
                    batch.append(scene.frame(data, ghost_data))
                    if len(batch) == 16:
                        yield np.stack(batch)
                        batch = []
            if batch:
                yield np.stack(batch)

        try:
            with atomic_path(out, suffixes=VIDEO_SUFFIXES, inputs=inputs) as tmp:
                count = encode(_progress(frames(), progress), tmp, rate, name=out)
        finally:
            scene.close()
    finally:
        e.close()
    return Video(Path(out), count, rate, size[0], size[1])


def _progress(batches, enabled: bool):
    from tqdm import tqdm

    with tqdm(unit="frame", desc="rendering", disable=not enabled, leave=False) as bar:
        for b in batches:
            bar.update(len(b))
            yield b


# --- a reference motion on a character, no policy: ``optiq rl play`` -------------------------------------------
DATASET_SUFFIXES = (".parquet", ".h5", ".hdf5")


def reference_qpos(source: str | os.PathLike, clip: str | int | None = None, character=None):
    """``(character, clip, qpos [T, nq])``: the motion of ``source`` as MuJoCo poses of a character.

    A reference dataset (``optiq rl retarget``'s, with qpos per frame) gives its stored qpos, on ``character`` or
    else the character its clip is labelled with; any other clip (a DeepMimic ``.txt``, a dataset without qpos, a
    BVH of the character's skeleton) is played by ``clip_to_qpos`` on ``character`` (default ``deepmimic``).
    ``clip``: a name or index (default the first). Raises SkeletonMismatchError naming ``source`` when the motion
    does not fit the character."""
    from optiq.errors import SkeletonMismatchError

    from .retarget import clip_to_qpos, load_reference, source_clips

    path = Path(source)
    which = 0 if clip is None else int(clip) if str(clip).isdigit() else clip
    if _stores_qpos(path):
        ref, qpos, _ = load_reference(path, which)
        made_for = ref.labels.get("character")
        char = _character(character, made_for or "deepmimic", path)
        model = char.model()
        if qpos.shape[1] != model.nq or tuple(ref.skeleton.names) != tuple(char.joint_names):
            raise SkeletonMismatchError(
                f"clip {ref.name!r} was retargeted onto character {made_for!r} ({len(ref.skeleton.names)} joints, "
                f"qpos of {qpos.shape[1]} values); character {char.name!r} has "
                f"{len(char.joint_names)} joints and nq {model.nq}: give --character the body it was retargeted "
                "onto", path)
        return char, ref, qpos
    char = _character(character, "deepmimic", path)
    ref = source_clips(path, [which])[0]
    try:
        qpos, _ = clip_to_qpos(ref, char)
    except SkeletonMismatchError as exc:  # the message names the clip and the character; add the file
        raise SkeletonMismatchError(exc.message, path) from None
    return char, ref, qpos


def _stores_qpos(path: Path) -> bool:
    """Whether ``path`` is a dataset holding qpos per frame (a reference dataset)."""
    if path.suffix.lower() not in DATASET_SUFFIXES:
        return False
    import optiq

    from .retarget import REFERENCE_EXTRAS

    with optiq.open_dataset(path) as ds:
        return all(k in getattr(ds, "extras", {}) for k in REFERENCE_EXTRAS)


def _character(given, default: str, source: Path):
    """``given`` (a Character, a name or a file), else ``default`` (the character a reference dataset's clip is
    labelled with: a file stem such as ``humanoid`` is no registered name, so the error asks for --character)."""
    from .characters import character

    if given is not None:
        return given if hasattr(given, "joint_names") else character(given)
    try:
        return character(default)
    except OptiqError:
        raise OptiqError(f"its clip was retargeted onto character {default!r}, which is no registered character: "
                         "give --character (the MJCF it was retargeted onto)", source) from None


def render_reference(source: str | os.PathLike, out: str | os.PathLike, *, clip: str | int | None = None,
                     character=None, frames: slice | None = None, size: tuple[int, int] = (640, 480),
                     shadows: bool = False, progress: bool = False, **_ignored):
    """An MP4 of a reference motion on a character, no policy and no physics (``optiq rl play``): every frame
    the pose is set (``reference_qpos``: a reference dataset's stored qpos or ``clip_to_qpos``), MuJoCo's
    kinematics place the bodies and the scene is drawn with the camera tracking the root, across the motion's
    travel. Frame-exact: one video frame per clip frame (``frames``: a slice of them), at the clip's rate;
    written atomically to ``out``. Returns ``(Video, character, clip)``; the Video has path, frames, fps
    (a Fraction), width and height."""
    gl_backend()  # first: a missing backend is reported before anything loads, and before MuJoCo is imported
    try:
        from optiq_viz.video import VIDEO_SUFFIXES, Video, check_size, encode, exact_fps
    except ImportError:
        raise RenderError("videos are encoded by optiq-viz: pip install optiq-viz") from None
    check_output_path(out, suffixes=VIDEO_SUFFIXES, inputs=[source])
    size = check_size(size)
    char, ref, qpos = reference_qpos(source, clip, character)
    if frames is not None:
        qpos = qpos[frames]
        if not len(qpos):
            raise OptiqError(f"frames {frames.start}:{frames.stop} select no frame of clip {ref.name!r} "
                             f"({ref.num_frames} frames)", source)
    rate = exact_fps(ref.fps)
    import mujoco

    model = char.model()
    data = mujoco.MjData(model)
    scene = SceneRenderer(model, size, int(char.body_ids()[0]), azimuth=travel_azimuth(qpos), shadows=shadows)

    def images():
        """Batches ``[B, H, W, 3]`` of 16 frames, streamed (a long clip's frames would not fit in memory)."""
        for start in range(0, len(qpos), 16):
            batch = []
            for row in qpos[start:start + 16]:
                data.qpos[:] = row
                mujoco.mj_kinematics(model, data)
                mujoco.mj_comPos(model, data)  # the tracking camera looks at the root's subtree centre of mass
                batch.append(scene.frame(data))
            yield np.stack(batch)

    try:
        with atomic_path(out, suffixes=VIDEO_SUFFIXES, inputs=[source]) as tmp:
            count = encode(_progress(images(), progress), tmp, rate, name=out)
    finally:
        scene.close()
    return Video(Path(out), count, rate, size[0], size[1]), char, ref
