"""Leading T-pose frames: a template pose some exporters put before the captured motion.

CMU's MotionBuilder-friendly BVH files and the CMU FBX takes start with one frame of a T-pose (arms out, every
joint at a round angle) followed by the capture, which starts in whatever pose the subject stood in. Kept, that
frame is a jump of tens of degrees in one frame time: joint speeds of hundreds of metres per second after
``--compute-velocities``, and a bogus first sample for every model trained on the clip.

The rule (one for every loader): frame 0 is a leading T-pose when it jumps away from the motion, that is when the
mean joint rotation change from frame 0 to frame 1 is above 2 degrees and above 10 times the median of the same
mean over the rest of the clip. Captured motion changes smoothly (the median step is a fraction of a degree at
60-120 fps, and the first step is like the others); a prepended template does not. Clips of fewer than 3 frames
have no motion to compare with and are kept whole.
"""

from __future__ import annotations

import numpy as np

from . import quat
from .clip import Clip

MIN_JUMP_DEG = 2.0
JUMP_RATIO = 10.0


def has_leading_tpose(rotations: np.ndarray) -> bool:
    """Whether frame 0 of ``rotations`` ``[T, J, 4]`` (wxyz local joint rotations) jumps away from the motion
    (the rule in this module's docstring)."""
    if len(rotations) < 3:
        return False
    step = quat.angle_between(rotations[1:], rotations[:-1]).mean(axis=1)  # [T-1] radians, mean over joints
    return bool(step[0] > np.radians(MIN_JUMP_DEG) and step[0] > JUMP_RATIO * np.median(step[1:]))


def drop_leading_tpose(clip: Clip) -> Clip:
    """``clip`` without its frame 0 when that frame is a leading T-pose (labelled ``dropped_tpose="1"``), else
    ``clip`` itself."""
    if not has_leading_tpose(clip.rotations):
        return clip
    out = clip.slice(1)
    out.labels["dropped_tpose"] = "1"
    return out
