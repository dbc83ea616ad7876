"""Reference motion prepared for tracking: a clip on the character at the control rate, long enough for an
episode, with everything the reward and the observations read per frame computed once.

Cyclic clips (a DeepMimic file with ``"Loop": "wrap"``, label ``loop = wrap``, or ``cyclic=True``) continue past
their end as DeepMimic does: the cycle (every frame but the last, which is the next cycle's first) repeats with
the root moved on by the cycle's ground displacement (last root position minus first, horizontal). Other clips
end the episode at their last frame.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import optiq
from optiq.clip import Clip
from optiq.errors import OptiqError
from optiq.features import heading_angle as _yaw

from ..retarget import clip_to_qpos, kinematics
from .observations import BodyState
from .sim import CharacterSim


def load_references(sources, clips: Sequence[str] = ()) -> list[Clip]:
    """Clips from ``sources``: Clip objects, clip files (any format optiq loads) or datasets (``.parquet``,
    ``.h5``: the clips named in ``clips``, or all of them)."""
    if isinstance(sources, (str, os.PathLike, Clip)):
        sources = [sources]
    out: list[Clip] = []
    for src in sources:
        if isinstance(src, Clip):
            out.append(src)
            continue
        path = Path(src)
        if path.suffix.lower() in (".parquet", ".h5", ".hdf5"):
            with optiq.open_dataset(path) as ds:
                names = list(clips) or ds.clip_names
                missing = [n for n in names if n not in ds]
                if missing:
                    raise OptiqError(f"no clip {', '.join(missing)} in the dataset", path)
                out.extend(ds.read_clip(n) for n in names)
        else:
            out.append(optiq.load_clip(path))
    if not out:
        raise OptiqError("the Track env needs a reference: reference=clip file(s) or a dataset")
    return out


class Reference:
    """One clip prepared for ``sim`` (T frames at the control rate, covering ``frames_needed`` past any start).

    qpos ``[T, nq]``, qvel ``[T, nv]``; pos ``[T, J, 3]`` and rot ``[T, J, 4]`` the joints' world positions and
    optiq world rotations from MuJoCo's kinematics; com ``[T, 3]``; features ``[T, F]`` (``BodyFeatures``);
    body: the same as a BodyState (with rotation matrices); yaw ``[T]`` the root's heading (radians); starts:
    frames an episode may start at (one cycle, or every frame but the last); cyclic; velocity ``[2]``
    the mean ground velocity (m/s) over the clip.
    """

    def __init__(self, clip: Clip, sim: CharacterSim, frames_needed: int, cyclic: bool | None = None):
        hz = sim.features.fps
        if abs(clip.fps - hz) > 1e-6:
            clip = clip.resample(hz)
        if clip.num_frames < 2:
            raise OptiqError(f"clip {clip.name!r}: a reference needs at least 2 frames, has {clip.num_frames}")
        self.name = clip.name
        self.cyclic = clip.labels.get("loop") == "wrap" if cyclic is None else bool(cyclic)
        span = clip.root_translation[-1] - clip.root_translation[0]
        self.velocity = span[:2] / clip.duration
        if self.cyclic:
            cycle = clip.num_frames - 1
            self.starts = cycle
            clip = _repeat(clip, -(-(cycle + frames_needed) // cycle))
        else:
            self.starts = clip.num_frames - 1
        self.qpos, self.qvel = clip_to_qpos(clip, sim.char)
        self.body, self.com = _kinematics(sim, self.qpos)
        self.pos, self.rot = self.body.pos, self.body.rot
        self.yaw = _yaw(self.rot[:, 0])  # [T] the root's heading (radians)
        self.features = sim.features.clip_features(self.pos, self.rot)
        self.num_frames = len(self.qpos)

    def lookahead(self, future: np.ndarray) -> None:
        """Per frame t, what the observation reads of frames ``t + future`` (clamped to the last frame):
        ``ahead_features [T, K F]`` float32, ``ahead_root [T, K, 3]`` root positions, ``ahead_yaw [T, K]``."""
        ahead = np.minimum(np.arange(self.num_frames)[:, None] + np.asarray(future)[None], self.num_frames - 1)
        self.ahead_features = self.features[ahead].reshape(self.num_frames, -1)
        self.ahead_root = self.pos[ahead, 0]
        self.ahead_yaw = self.yaw[ahead]

    def state(self, frame: int) -> BodyState:
        """The reference's BodyState at ``frame``."""
        return BodyState(self.pos[frame], self.rot[frame], self.body.mat[frame])


def _repeat(clip: Clip, cycles: int) -> Clip:
    """``cycles`` repetitions of the cycle (all frames but the last), each moved on by the cycle's ground
    displacement; then the last frame moved on likewise, so velocities at the end stay one-sided and right."""
    cycle = clip.num_frames - 1
    shift = clip.root_translation[-1] - clip.root_translation[0]
    shift[2] = 0.0
    k = np.repeat(np.arange(cycles), cycle)
    idx = np.tile(np.arange(cycle), cycles)
    root = clip.root_translation[idx] + k[:, None] * shift
    rot = clip.rotations[idx]
    root = np.concatenate((root, clip.root_translation[-1:] + (cycles - 1) * shift))
    rot = np.concatenate((rot, clip.rotations[-1:]))
    local = clip.local_translations
    if local is not None:
        local = np.concatenate((local[idx], local[-1:]))
    return Clip(clip.skeleton, clip.fps, root, rot, local, name=clip.name, labels=clip.labels)


def _kinematics(sim: CharacterSim, qpos: np.ndarray) -> tuple[BodyState, np.ndarray]:
    """Per frame of qpos ``[T, nq]``: the joints' BodyState (``[T, J, ...]``) and the centre of mass ``[T, 3]``,
    by MuJoCo's own kinematics (``retarget.kinematics``)."""
    xpos, xquat, com = kinematics(sim.model, qpos, np.arange(sim.model.nbody), com_of=sim.root_body)
    return sim.features.body_state(xpos, xquat), com
