"""Foot contacts and gait phase: which feet touch the ground at each frame, and where a frame sits in the step cycle.

Vectorised numpy over frames. The contact detector is causal (a frame's flags use that frame and those of the last
1/30 s before it), so the same function feeds the state features (``FeatureSpec(contacts=True)``) and labels frames
(``auto_labels(clip, "contacts")``). The gait phase looks at whole contact cycles, so it is a label, not a feature.

Thresholds are fractions of the leg length ``L`` (the bone path from the pelvis to the farthest foot joint, from
the skeleton's offsets, about 0.9 m for an adult): the rest pose cannot be trusted for sizes, as some files (the
Bandai-Namco takes) have a rest pose lying along a horizontal axis. The ground is the plane z = 0, where loaders put
the floor of the capture.
"""

from __future__ import annotations

import re

import numpy as np

from .clip import Clip
from .errors import OptiqError
from .skeleton import Skeleton

CONTACT_HEIGHT = 0.15
"""A foot joint touches the ground when it is lower than ``CONTACT_HEIGHT * L`` (13 cm for a 0.9 m leg: an ankle
stands 5 to 12 cm above the floor in the shared corpora, and rises above 20 cm in swing) ..."""
CONTACT_SPEED = 0.9
"""... and moves slower than ``CONTACT_SPEED * L`` per second (0.8 m/s for a 0.9 m leg)."""

_FOOT = re.compile(r"foot|toe|ankle|heel|ball", re.I)


def top_chain(skeleton: Skeleton) -> list[int]:
    """Joints ``[0, child, ...]`` from the root down while a joint has a single child, ending at the first joint
    with several children (the pelvis of a body: ``[joint_Root, Hips]`` in the Bandai-Namco files, ``[Hips]`` in
    CMU ones)."""
    chain = [0]
    while len(kids := skeleton.children(chain[-1])) == 1:
        chain.append(kids[0])
    return chain


def leg_length(skeleton: Skeleton, feet: dict[str, np.ndarray] | None = None) -> float:
    """``L``: bone path length (metres) from the pelvis (the end of ``top_chain``) to the farthest foot joint."""
    feet = find_feet(skeleton) if feet is None else feet
    pelvis = top_chain(skeleton)[-1]
    bone = np.linalg.norm(skeleton.offsets, axis=1)
    depth = np.zeros(skeleton.num_joints)  # path length from the pelvis, for joints below it
    for j in range(pelvis + 1, skeleton.num_joints):
        depth[j] = depth[skeleton.parents[j]] + bone[j]
    return float(max(depth[np.concatenate(list(feet.values()))].max(), 1e-6))


def find_feet(skeleton: Skeleton) -> dict[str, np.ndarray]:
    """Foot joints grouped per foot: ``{"left": [joint indices], "right": [...]}`` (left first).

    Joints are found by name (foot, toe, ankle, heel, ball) and grouped by side, the sides being those of
    ``Skeleton.mirror_pairs`` (LeftFoot/RightFoot, Foot_L/Foot_R, lfoot/rfoot); a foot joint without a mirrored
    partner is a foot of its own, keyed by its name. Without such names, the feet are the leaf joints lowest in
    the rest pose (within a tenth of the rest pose's height of the lowest), each its own foot. Raises OptiqError
    when neither finds a joint.
    """
    names = skeleton.names
    found = [j for j in range(1, skeleton.num_joints) if _FOOT.search(names[j])]
    if not found:
        rest_z = skeleton.rest_positions()[:, 2]
        leaves = np.setdiff1d(np.arange(skeleton.num_joints), skeleton.parents)
        low = rest_z[leaves] <= rest_z[leaves].min() + 0.1 * np.ptp(rest_z)
        found = [int(j) for j in leaves[low] if j != 0]
    if not found:
        raise OptiqError(f"no foot joints among {', '.join(names)}: name them (foot, toe, ankle) or give a "
                         "skeleton whose legs end lowest in the rest pose")
    perm = skeleton.mirror_pairs()
    side = {}
    for left, right in ((j, int(perm[j])) for j in range(skeleton.num_joints) if perm[j] > j):
        # mirror_pairs swaps a found pair; which of the two is the left one is in the names.
        if re.search(r"right|^r|[_.]r$", names[left], re.I):
            left, right = right, left
        side[left], side[right] = "left", "right"
    groups: dict[str, list[int]] = {}
    for j in found:
        groups.setdefault(side.get(j, names[j]), []).append(j)
    order = sorted(groups, key=lambda k: (k != "left", k != "right", min(groups[k])))
    return {k: np.array(groups[k], dtype=np.int64) for k in order}


def _backward_speed(positions: np.ndarray, fps: float) -> np.ndarray:
    """Speed ``[T, ...]`` m/s of ``positions [T, ..., 3]`` over the last ``k = round(fps / 30)`` frames (at
    least 1; fewer at the start, frame 0 has speed 0). Over a 30 Hz span, clips upsampled by repeating frames
    (the AMP walk at 60 fps) do not look still every other frame."""
    k = max(1, round(fps / 30.0))
    back = np.concatenate((np.zeros(min(k, len(positions)), dtype=np.int64), np.arange(len(positions) - k)))
    span = np.maximum(np.arange(len(positions)) - back, 1).reshape(-1, *[1] * (positions.ndim - 2))
    return np.linalg.norm(positions - positions[back], axis=-1) * (fps / span)


def foot_contacts(clip: Clip, positions: np.ndarray | None = None, *, height: float = CONTACT_HEIGHT,
                  speed: float = CONTACT_SPEED) -> np.ndarray:
    """Contact flags ``[T, n_feet]`` bool, feet in the order of ``find_feet`` (left, right, ...).

    A foot touches the ground when any of its joints is both low (z below ``height * L``) and slow
    (backward-difference speed over about 1/30 s below ``speed * L`` per second), ``L`` the leg length.
    Causal: frame t uses frames t - k .. t only, ``k = round(fps / 30)`` (frame 0 counts as slow).
    positions: ``[T, J, 3]`` world positions when the caller has them (``clip.world_positions()`` otherwise).
    """
    feet = find_feet(clip.skeleton)
    pos = clip.world_positions() if positions is None else positions
    size = leg_length(clip.skeleton, feet)
    joints = np.concatenate(list(feet.values()))
    low = pos[:, joints, 2] < height * size
    slow = _backward_speed(pos[:, joints], clip.fps) < speed * size
    touch = low & slow  # [T, n_joints]
    bounds = np.cumsum([0] + [len(v) for v in feet.values()])
    return np.logical_or.reduceat(touch, bounds[:-1], axis=1)


def _runs(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) frames of the runs of True in ``flags [T]``."""
    c = np.concatenate(([False], flags, [False]))
    return np.flatnonzero(~c[:-1] & c[1:]), np.flatnonzero(c[:-1] & ~c[1:])


def _onsets(contact: np.ndarray, min_frames: int) -> np.ndarray:
    """Touch-down frames (not frame 0) of ``contact [T]`` once flicker is removed: lifts shorter than
    ``min_frames`` frames are closed first, then contacts shorter than ``min_frames`` frames dropped."""
    starts, ends = _runs(~contact)
    inner = (starts > 0) & (ends < len(contact)) & (ends - starts < min_frames)
    edges = np.zeros(len(contact) + 1, dtype=np.int64)  # +1 where a short lift starts, -1 where it ends
    np.add.at(edges, starts[inner], 1)
    np.add.at(edges, ends[inner], -1)
    starts, ends = _runs(contact | (np.cumsum(edges)[:-1] > 0))
    return starts[(ends - starts >= min_frames) & (starts > 0)]


def gait_phase(contacts: np.ndarray, *, min_frames: int = 3) -> np.ndarray:
    """Gait phase ``[T]`` float in [0, 1) from contact flags ``[T, n_feet]`` (foot 0 left, foot 1 right).

    Phase 0 at each touch-down of foot 0, 0.5 at each touch-down of foot 1 (with one foot: 0 at its
    touch-downs only), linear in time between touch-downs, as PFNN labels its frames. Two touch-downs in a row
    of the same foot span a whole cycle. Before the first and after the last touch-down the phase runs on at
    the rate of the nearest cycle. Lifts and contacts shorter than ``min_frames`` frames are flicker, not steps
    (``auto_labels`` passes a tenth of a second).
    A clip with fewer than two touch-downs (standing still) has phase 0 throughout.
    """
    contacts = np.asarray(contacts, dtype=bool)
    if contacts.ndim != 2 or contacts.shape[1] == 0:
        raise OptiqError(f"contacts must be [T, n_feet] with at least one foot, got shape {contacts.shape}")
    t = contacts.shape[0]
    feet = min(contacts.shape[1], 2)
    onsets = [_onsets(contacts[:, k], min_frames) for k in range(feet)]
    times = np.concatenate(onsets)
    values = np.concatenate([np.full(len(o), 0.5 * k) for k, o in enumerate(onsets)])
    if len(times) < 2:
        return np.zeros(t)
    order = np.argsort(times, kind="stable")
    times, values = times[order].astype(np.float64), values[order]
    step = np.mod(np.diff(values), 1.0)
    step[step == 0] = 1.0  # the same foot twice: a whole cycle
    unwrapped = values[0] + np.concatenate(([0.0], np.cumsum(step)))
    frames = np.arange(t, dtype=np.float64)
    phase = np.interp(frames, times, unwrapped)
    first_rate = (unwrapped[1] - unwrapped[0]) / max(times[1] - times[0], 1.0)
    last_rate = (unwrapped[-1] - unwrapped[-2]) / max(times[-1] - times[-2], 1.0)
    before, after = frames < times[0], frames > times[-1]
    phase[before] = unwrapped[0] - (times[0] - frames[before]) * first_rate
    phase[after] = unwrapped[-1] + (frames[after] - times[-1]) * last_rate
    return _unit_interval(np.mod(phase, 1.0))


def _unit_interval(phase: np.ndarray) -> np.ndarray:
    """``phase`` with values that rounding brought to 1.0 (mod of a tiny negative, a cast to float32) set to 0."""
    phase[phase >= 1.0] = 0.0
    return phase


def auto_labels(clip: Clip, kind: str) -> dict[str, np.ndarray]:
    """Frame labels computed from the motion, for ``optiq data label --auto KIND``.

    kind ``"contacts"``: ``{"contact_<foot>": bool [T]}`` per foot of ``find_feet`` (``contact_left``,
    ``contact_right``). kind ``"phase"``: ``{"phase": float32 [T]}`` in [0, 1) (``gait_phase``).
    """
    if kind == "contacts":
        flags = foot_contacts(clip)
        return {f"contact_{name}": flags[:, k] for k, name in enumerate(find_feet(clip.skeleton))}
    if kind == "phase":
        frames = max(1, round(0.1 * clip.fps))
        return {"phase": _unit_interval(gait_phase(foot_contacts(clip), min_frames=frames).astype(np.float32))}
    raise OptiqError(f"unknown automatic label {kind!r}; expected contacts or phase")
