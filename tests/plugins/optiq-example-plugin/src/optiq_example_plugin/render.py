"""The ``positions-csv`` renderer: world joint positions of every frame, one CSV row per frame."""

from __future__ import annotations

import os

import numpy as np
from optiq import Clip
from optiq.atomic import atomic_text


def render_positions_csv(clip: Clip, path: str | os.PathLike, **_ignored) -> None:
    """Write ``time, <joint>.x, <joint>.y, <joint>.z, ...``: world positions ``[T, J, 3]`` metres (atomic)."""
    pos = clip.world_positions().reshape(clip.num_frames, -1)
    time = np.arange(clip.num_frames)[:, None] / clip.fps
    header = ",".join(["time"] + [f"{n}.{a}" for n in clip.skeleton.names for a in "xyz"])
    with atomic_text(path) as fh:
        np.savetxt(fh, np.concatenate([time, pos], axis=1), delimiter=",", fmt="%.9g", header=header, comments="")
