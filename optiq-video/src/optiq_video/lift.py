"""2D keypoints -> a 3D reference Clip: fit a skeleton of known bone lengths to COCO-17 keypoints of one view.

The camera is weak perspective and looks horizontally along the world's +Y axis (Z up, optiq's world): a world point
``(X, Y, Z)`` metres lands at pixel ``u = s X + u0``, ``v = -s Z + v0`` (``s`` px/m for the whole clip, ``(u0, v0)``
the image centre). Depth (Y) is not seen, so the root moves in the X-Z plane only and the clip stands on Z = 0.

The scale ``s`` comes first, from the torso (shoulders' middle to hips' middle: nearly upright, so nearly
unforeshortened by a horizontal camera), and stays fixed: fitted jointly it runs away, since bones turned towards
the camera let any larger ``s`` fit. Unknowns, for all frames at once: per frame the world rotation (rotation
vector) and X, Z of the base joint (the matched joints' common ancestor, the pelvis) and the rotation vector of the
joints that aim the matched joints' bones (see ``_chain``). Residuals (all in pixels):
confidence-weighted reprojection of the matched joints, their acceleration (temporal smoothness) and a small pull
of every joint rotation towards the rest pose (the prior that picks one answer among the poses that project the
same). Levenberg-Marquardt solves them together with a sparse Jacobian: frame t's unknowns only meet frames t-1
and t+1 through the smoothness rows, so finite differences need about a hundred evaluations of the forward
kinematics (vectorised over frames) per step whatever the clip's length, and the normal equations are banded.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from optiq import Clip, OptiqError, Points, Skeleton, SkeletonMismatchError, quat

#: The COCO-17 points the fit uses: the body's joints. The face points (nose, eyes, ears) are left out: no skeleton
#: has a joint at the nose, and a head joint sits at the top of the neck, not at the face.
BODY_POINTS = ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
               "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")

# Joint names per body point, first match wins (names compared in lower case without separators). The order
# matters: CMU's "LeftShoulder" is the clavicle (its shoulder joint is "LeftArm"), Bandai-Namco's "Shoulder_L"
# likewise ("UpperArm_L"), while DeepMimic's "left_shoulder" and the 3ds-Max CMU dialect's "LeftShoulder" are the
# shoulder joint itself; so the upper-arm names are tried before the shoulder names.
_PART_NAMES = {
    "shoulder": ("arm", "upperarm", "shoulder"),
    "elbow": ("forearm", "lowerarm", "elbow"),
    "wrist": ("hand", "wrist"),
    "hip": ("upleg", "upperleg", "thigh", "hip"),
    "knee": ("leg", "lowerleg", "shin", "knee"),
    "ankle": ("foot", "ankle"),
}
_SIDES = {"left": ("left", "l"), "right": ("right", "r")}


def _norm(name: str) -> str:
    """``"mixamorig:Left_UpLeg"`` -> ``"leftupleg"``: lower case, no separators, no Mixamo prefix."""
    return re.sub(r"[^a-z0-9]", "", name.lower()).removeprefix("mixamorig")


def joint_map(skeleton: Skeleton) -> dict[str, int]:
    """The skeleton joint of each body point it has, by name (CMU, Bandai-Namco, DeepMimic, Mixamo styles).

    Returns ``{coco point name: joint index}``; points without a joint are absent."""
    index = {_norm(n): j for j, n in enumerate(skeleton.names)}
    found: dict[str, int] = {}
    for point in BODY_POINTS:
        side, part = point.split("_")
        for stem in _PART_NAMES[part]:
            candidates = [p + stem for p in _SIDES[side]] + [stem + p for p in _SIDES[side]]
            hit = next((index[c] for c in candidates if c in index), None)
            if hit is not None and hit not in found.values():
                found[point] = hit
                break
    return found


def deepmimic_skeleton(path: str | os.PathLike) -> Skeleton:
    """The skeleton of a DeepMimic character file (``humanoid3d_character.txt``), as optiq's DeepMimic loader
    builds it: attach rotations folded into world-aligned rest offsets, metres, Z up."""
    from optiq.axes import Y_UP_TO_Z_UP
    from optiq.loaders.deepmimic import read_character

    names, _types, parents, attach, theta = read_character(path)
    rest = theta.copy()
    offsets = np.zeros((len(names), 3))
    for j in range(1, len(names)):
        rest[j] = quat.qmul(rest[parents[j]], theta[j])
        offsets[j] = quat.rotate(rest[parents[j]], attach[j])
    return Skeleton(tuple(names), parents, offsets).transformed(Y_UP_TO_Z_UP, 1.0)


def reference_pose(clips: list[Clip]) -> np.ndarray:
    """The mean pose of ``clips`` (one skeleton): ``[J, 4]`` wxyz local rotations, each joint's quaternions over all
    frames averaged (the principal eigenvector of their outer products, which ignores their signs). The fit's
    starting pose and prior for a skeleton whose rest pose is not a standing one (Bandai-Namco's bones all point
    along their parents' Y axis at rest)."""
    q = np.concatenate([c.rotations for c in clips], axis=0)                  # [T, J, 4]
    outer = np.einsum("tja,tjb->jab", q, q)
    return np.ascontiguousarray(np.linalg.eigh(outer)[1][..., -1])


@dataclass
class LiftResult:
    """clip: the fitted motion (``frame_labels["reprojection_error"]`` [T] px). scale: the camera's px per metre.
    reprojection_error: ``[T]`` confidence-weighted mean distance (px) between the seen keypoints and the fitted
    joints' projections; NaN in frames with no keypoint. joints: ``{coco point: joint index}`` used. still:
    ``[N, 2]`` (frame t, joint index) of each ankle found standing still from frame t to t + 1 (``still_feet``)."""

    clip: Clip
    scale: float
    reprojection_error: np.ndarray
    joints: dict[str, int]
    still: np.ndarray

    @property
    def still_frames(self) -> int:
        """How many (frame, ankle) pairs the fit held still."""
        return len(self.still)


@dataclass
class _Problem:
    """The fixed data of one fit (see ``lift``)."""

    skeleton: Skeleton
    base: int                # the matched joints' nearest common ancestor: the joint whose world pose is solved
    chain: np.ndarray        # [C] joints below ``base`` whose world position is needed, parents first
    free: np.ndarray         # [F] non-root joints whose rotation is an unknown
    names: tuple[str, ...]   # [K] the used points' names
    target: np.ndarray       # [K] joint index of each used point
    obs: np.ndarray          # [T, K, 2] px, 0 where missing
    weight: np.ndarray       # [T, K] sqrt(confidence)
    centre: np.ndarray       # [2] px
    s0: float                # px/m, the camera's scale (from the torso, fixed)
    ref_local: np.ndarray    # [J, 3, 3] the reference pose's local rotations: the unknowns turn joints from it
    ref_base: np.ndarray     # [3, 3] the base's world rotation in the reference pose
    smooth: float
    prior: float
    hinge: np.ndarray        # [H] positions in ``free`` of the knees and elbows (hinges with a flexion range)
    axis: np.ndarray         # [H, 3] each hinge's flexion axis in its reference local frame, unit
    flex_ref: np.ndarray     # [H] radians, each hinge's flexion in the reference pose
    limits: float            # weight of the hinges' limits
    contact: np.ndarray      # [N, 2] (frame t, point k): point k (an ankle) still from frame t to t+1
    feet: float              # weight of the still feet's 3D speed

    @property
    def per_frame(self) -> int:
        return 5 + 3 * len(self.free)

    def unpack(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Flat unknowns ``[..., T * per_frame]`` -> base rotvec ``[..., T, 3]``, base X-Z ``[..., T, 2]`` m, joint
        rotvecs ``[..., T, F, 3]``, scale px/m. Leading axes are a batch of candidate solutions."""
        t = self.obs.shape[0]
        frames = x.reshape(*x.shape[:-1], t, self.per_frame)
        return (frames[..., :3], frames[..., 3:5], frames[..., 5:].reshape(*x.shape[:-1], t, -1, 3), self.s0)

    @cached_property
    def _slots(self) -> tuple[np.ndarray, dict[int, int]]:
        """``positions``' bookkeeping: each joint's slot (the base 0, the ``chain`` 1 .. C: only they are computed)
        and ``{joint: its index in free}``."""
        slot = np.zeros(self.skeleton.num_joints, np.int64)
        slot[self.base], slot[self.chain] = 0, np.arange(1, len(self.chain) + 1)
        return slot, {int(j): i for i, j in enumerate(self.free)}

    def positions(self, x: np.ndarray) -> np.ndarray:
        """World positions ``[..., T, K, 3]`` metres of the used joints for unknowns ``[..., T * per_frame]``."""
        root_rv, root_xz, rv, _ = self.unpack(x)
        lead = root_rv.shape[:-1]
        # Rotation matrices rather than quaternions: one matmul per joint on [..., T, 3, 3] is the cheapest step
        # of the forward kinematics, which the finite differences run a hundred times per iteration (batched).
        slot, where = self._slots
        turned = _rotvec_matrix(rv)                                         # [..., T, F, 3, 3]
        rot = np.empty((*lead, len(self.chain) + 1, 3, 3))
        pos = np.zeros((*lead, len(self.chain) + 1, 3))
        rot[..., 0, :, :] = _rotvec_matrix(root_rv) @ self.ref_base
        pos[..., 0, 0], pos[..., 0, 2] = root_xz[..., 0], root_xz[..., 1]
        parents, offsets = self.skeleton.parents, self.skeleton.offsets
        for j in self.chain:
            p, s = slot[parents[j]], slot[j]
            local = self.ref_local[j] @ turned[..., where[j], :, :] if j in where else self.ref_local[j]
            rot[..., s, :, :] = rot[..., p, :, :] @ local
            pos[..., s, :] = pos[..., p, :] + rot[..., p, :, :] @ offsets[j]
        return pos[..., slot[self.target], :]

    def project(self, pos: np.ndarray, scale: float) -> np.ndarray:
        """Pixels ``[..., 2]`` of world points ``[..., 3]`` metres under the weak-perspective camera."""
        return np.stack([scale * pos[..., 0] + self.centre[0], -scale * pos[..., 2] + self.centre[1]], axis=-1)

    def residuals(self, x: np.ndarray) -> np.ndarray:
        """All residuals, px: reprojection ``[T, K, 2]``, acceleration ``[T-2, K, 3]``, rest-pose pull
        ``[T, F, 3]``, hinge limits ``[T, H, 4]``, still feet ``[N, 3]``, flattened in that order (the rows of
        ``sparsity``), for unknowns ``[..., T * per_frame]``: ``[..., rows]``."""
        pos = self.positions(x)
        _, _, rv, scale = self.unpack(x)
        lead = x.shape[:-1]
        reproj = (self.project(pos, scale) - self.obs) * self.weight[..., None]
        accel = (pos[..., 2:, :, :] - 2 * pos[..., 1:-1, :, :] + pos[..., :-2, :, :]) * (self.smooth * self.s0)
        parts = [reproj, accel, rv * (self.prior * self.s0)]
        if len(self.hinge):
            # A knee or elbow turns about one axis, one way: the part of its rotation (from the reference pose) off
            # the axis (twist about the bone included: no keypoint sees it) and its flexion outside ``FLEXION``
            # cost; within them it is free. The off-axis part weighs less: real knees and elbows give a little.
            r = rv[..., self.hinge, :]                                     # [..., T, H, 3]
            turn = (r * self.axis).sum(-1)                                 # [..., T, H]
            off = r - turn[..., None] * self.axis                          # [..., T, H, 3]
            flex = self.flex_ref + turn
            limit = np.minimum(flex - FLEXION[0], 0.0) + np.maximum(flex - FLEXION[1], 0.0)
            w = self.limits * self.s0
            parts.append(np.concatenate([HINGE_GIVE * w * off, w * limit[..., None]], axis=-1))
        if len(self.contact):
            t, k = self.contact[:, 0], self.contact[:, 1]
            parts.append((pos[..., t + 1, k, :] - pos[..., t, k, :]) * (self.feet * self.s0))
        return np.concatenate([part.reshape(*lead, -1) for part in parts], axis=-1)

    def jacobian(self, x: np.ndarray, r: np.ndarray, sparsity, group: np.ndarray):
        """The residuals' Jacobian at ``x`` (``r`` = ``residuals(x)``) by forward differences, as a scipy.sparse
        matrix with ``sparsity``'s pattern. The unknowns of one ``group`` (``groups``) move at once, and the
        groups' perturbed solutions are evaluated as one batch (a Python loop over them would cost more than the
        arithmetic)."""
        from scipy.sparse import csr_matrix

        t = self.obs.shape[0]
        groups = int(group.max()) + 1
        step = np.sqrt(np.finfo(float).eps) * np.maximum(1.0, np.abs(x))
        rows, cols = sparsity.nonzero()
        changes = np.empty((groups, len(r)))
        # Batches of at most ~64 MB of rotation matrices.
        size = max(1, int(8e6 // (t * (len(self.chain) + 1) * 9)))
        for start in range(0, groups, size):
            g = np.arange(start, min(start + size, groups))
            trial = np.where(group[None] == g[:, None], x + step, x)
            changes[g] = self.residuals(trial) - r
        values = changes[group[cols], rows] / step[cols]
        return csr_matrix((values, (rows, cols)), shape=sparsity.shape)

    @cached_property
    def depends(self) -> np.ndarray:
        """``[K, per_frame]`` bool: the unknowns of its frame that each used joint's position depends on (the
        base's five and the rotations of the solved joints above it)."""
        dep = np.zeros((len(self.target), self.per_frame), bool)
        dep[:, :5] = True
        for k, j in enumerate(self.target):
            above = set(_ancestors(self.skeleton, j)[1:])
            for f, joint in enumerate(self.free):
                if joint in above:
                    dep[k, 5 + 3 * f:8 + 3 * f] = True
        return dep

    def groups(self) -> np.ndarray:
        """``[T * per_frame]`` a group per unknown such that no residual row depends on two unknowns of one group:
        each group's finite difference is one evaluation. A row reads frames t .. t+2 at most, so frames three
        apart never share a row; within a frame two unknowns share one when some used joint depends on both
        (``depends``: reprojection, acceleration and still-foot rows; a hinge's unknowns are its distal joint's).
        One frame's unknowns are coloured greedily on that conflict, and the colours repeat every third frame."""
        conflict = (self.depends.T.astype(np.int64) @ self.depends.astype(np.int64)) > 0   # [n, n]
        n = self.per_frame
        colour = np.full(n, -1, np.int64)
        for u in range(n):  # one frame's unknowns, not frames
            taken = set(colour[conflict[u] & (colour >= 0)].tolist())
            colour[u] = next(c for c in range(n) if c not in taken)
        colours = int(colour.max()) + 1
        t = self.obs.shape[0]
        return (np.arange(t)[:, None] % 3 * colours + colour[None, :]).ravel()

    def sparsity(self):
        """Which unknowns each residual row depends on (scipy.sparse CSR, rows x unknowns; ``residuals``' rows)."""
        from scipy.sparse import csr_matrix

        t, k = self.weight.shape
        n = self.per_frame
        rows, cols = [], []
        count = 0

        def block(frame: np.ndarray, mask: np.ndarray) -> None:
            # Rows numbered from ``count`` in order, row i on the unknowns ``mask[i]`` of frame ``frame[i]``.
            nonlocal count
            i, u = np.nonzero(mask)
            rows.append(count + i)
            cols.append(frame[i] * n + u)

        def advance(size: int) -> None:
            nonlocal count
            count += size

        frames = np.arange(t)
        # Reprojection rows (t, k, xy): frame t, the joint's unknowns.
        mask = np.repeat(np.tile(self.depends, (t, 1)), 2, axis=0)
        block(np.repeat(frames, 2 * k), mask)
        advance(t * k * 2)
        # Acceleration rows (i, k, xyz) of frames i .. i+2.
        if t > 2:
            mask = np.repeat(np.tile(self.depends, (t - 2, 1)), 3, axis=0)
            for shift in (0, 1, 2):
                block(np.repeat(frames[shift:t - 2 + shift], 3 * k), mask)
            advance((t - 2) * k * 3)
        # Prior rows (t, f, xyz): one unknown each.
        f = len(self.free)
        mask = np.zeros((t * f * 3, n), bool)
        mask[np.arange(t * f * 3), 5 + np.arange(t * f * 3) % (f * 3)] = True
        block(np.repeat(frames, f * 3), mask)
        advance(t * f * 3)
        # Limit rows (t, h, 4): the hinge's 3 unknowns.
        h = len(self.hinge)
        if h:
            one = np.zeros((h, 4, n), bool)
            for i, hinge in enumerate(self.hinge):
                one[i, :, 5 + 3 * hinge:8 + 3 * hinge] = True
            block(np.repeat(frames, h * 4), np.tile(one.reshape(h * 4, n), (t, 1)))
            advance(t * h * 4)
        # Still-foot rows (pair, xyz): frames t and t+1, the ankle's unknowns.
        if len(self.contact):
            mask = np.repeat(self.depends[self.contact[:, 1]], 3, axis=0)
            for shift in (0, 1):
                block(np.repeat(self.contact[:, 0] + shift, 3), mask)
            advance(len(self.contact) * 3)
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        return csr_matrix((np.ones(rows.size), (rows, cols)), shape=(count, t * n))


def _rotvec_matrix(rv: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` of rotation vectors ``[..., 3]`` (radians), Rodrigues' formula."""
    angle = np.linalg.norm(rv, axis=-1)[..., None, None]
    k = rv / np.maximum(angle[..., 0], 1e-12)
    cross = np.zeros(rv.shape + (3,))
    cross[..., 0, 1], cross[..., 0, 2], cross[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    cross[..., 1, 0], cross[..., 2, 0], cross[..., 2, 1] = k[..., 2], -k[..., 1], k[..., 0]
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * (cross @ cross)


def _ancestors(skeleton: Skeleton, j: int) -> list[int]:
    """``j`` and its ancestors up to the root, in that order."""
    line = []
    while j >= 0:
        line.append(int(j))
        j = skeleton.parents[j]
    return line


def _chain(skeleton: Skeleton, joints: dict[str, int]) -> tuple[int, np.ndarray, np.ndarray]:
    """The base (the matched joints' nearest common ancestor: CMU's Hips, Bandai-Namco's Hips below its ground
    ``joint_Root``), the joints below it on the way to the matched joints (parents first), and the joints whose
    rotation is solved for: the parent of each matched joint (it aims the bone that ends there) and the shoulders'
    nearest common ancestor (the chest, so that the upper body bends against the pelvis). The base's world pose is
    solved directly (a root far from the body, as Bandai-Namco's on the ground, would make its rotation a long
    lever). Other joints on the way (CMU's LHipJoint, the spine's lower links) keep their rest rotation: one view
    cannot tell their share of a bend."""
    lines = [_ancestors(skeleton, j) for j in joints.values()]
    shared = set.intersection(*map(set, lines))
    base = next(a for a in lines[0] if a in shared)
    need = np.zeros(skeleton.num_joints, bool)
    for line in lines:
        need[line[:line.index(base)]] = True
    free = {int(skeleton.parents[j]) for j in joints.values()}
    if "left_shoulder" in joints and "right_shoulder" in joints:
        left = _ancestors(skeleton, joints["left_shoulder"])
        right = set(_ancestors(skeleton, joints["right_shoulder"]))
        free.add(next(a for a in left if a in right))
    free -= set(_ancestors(skeleton, base))
    return base, np.flatnonzero(need), np.array(sorted(free), dtype=np.int64)


#: Flexion range of the knees and elbows (radians): a few degrees of hyperextension to 150 degrees.
FLEXION = (np.radians(-5.0), np.radians(150.0))
#: A limb bent this much in the reference pose flexes about its own bend's axis (``_hinges``).
BENT = np.radians(15.0)
#: Weight of a hinge's rotation off its axis, against its flexion range's: real knees and elbows give a little, and
#: an axis found in a mean pose (``reference_pose``) is not exact. Measured on the three test clips (docs/video.md):
#: 0.3 fits the walks best and bends the Bandai-Namco run's arms out of the picture; 0.03 loses most of the gain.
HINGE_GIVE = 0.1


def _hinges(skeleton: Skeleton, joints: dict[str, int], free: np.ndarray, ref_pos: np.ndarray,
            ref_rot: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The knees and elbows as hinges: positions in ``free`` of the joints that aim the shins and forearms (the
    parents of the matched ankles and wrists), their flexion axes ``[H, 3]`` in their reference local frames, and
    their flexion in the reference pose ``[H]`` radians.

    ref_pos ``[J, 3]`` m, ref_rot ``[J, 4]`` wxyz: the reference pose's world positions and rotations. The body
    faces ``forward = left x up`` there, ``left`` from the right hip to the left hip. Flexion turns the bone below
    the hinge towards the back of the body (a knee) or its front (an elbow): where the reference pose bends the
    limb by more than ``BENT``, the axis is the bend's own (``above x below``), else ``below x direction``;
    the reference flexion is the signed angle between the bone above the hinge and the bone below about it."""
    none = np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(0)
    if "left_hip" not in joints or "right_hip" not in joints:
        return none
    left = ref_pos[joints["left_hip"]] - ref_pos[joints["right_hip"]]
    left[2] = 0.0
    if np.linalg.norm(left) < 1e-9:
        return none
    forward = np.cross(left / np.linalg.norm(left), [0.0, 0.0, 1.0])
    index, axes, flex = [], [], []
    for point, direction in (("left_ankle", -forward), ("right_ankle", -forward),
                             ("left_wrist", forward), ("right_wrist", forward)):
        if point not in joints:
            continue
        end = joints[point]
        hinge = int(skeleton.parents[end])
        below = ref_pos[end] - ref_pos[hinge]
        above = ref_pos[hinge] - ref_pos[skeleton.parents[hinge]] if skeleton.parents[hinge] >= 0 else below
        axis = np.cross(below, direction)
        # A bone along the body's forward axis has no flexion plane to speak of; a hinge that keeps its reference
        # rotation (not solved) needs no limit.
        if np.linalg.norm(axis) < 1e-6 * max(np.linalg.norm(below), 1e-12) or hinge not in free:
            continue
        axis /= np.linalg.norm(axis)
        # A limb bent in the reference pose (a mean pose) shows its own plane of flexion, and knees and elbows
        # bend one way only: truer than the body's front, which is the flexion's direction for a straight arm
        # hanging or held out sideways but not for one raised forwards.
        bend = np.cross(above, below)
        norm = np.linalg.norm(bend)
        if norm > np.sin(BENT) * np.linalg.norm(above) * np.linalg.norm(below) or above @ below < 0:
            axis = bend / norm
        index.append(int(np.searchsorted(free, hinge)))
        axes.append(quat.rotate(quat.conj(ref_rot[hinge]), axis))
        flex.append(np.arctan2(np.cross(above, below) @ axis, above @ below))
    if not index:
        return none
    return np.array(index, np.int64), np.array(axes), np.array(flex)


def still_feet(names: tuple[str, ...], obs: np.ndarray, conf: np.ndarray, s0: float, fps: float, *,
               speed: float = 0.5, lift: float = 0.05) -> np.ndarray:
    """Frames where an ankle keypoint stands still on the ground: ``[N, 2]`` (frame t, point k) for each ankle
    still from frame t to t + 1.

    obs ``[T, K, 2]`` px and conf ``[T, K]`` of the points ``names``; s0 px/m; fps. An ankle is still where its
    image speed, the slope of a straight line fitted over a quarter second (at least 5 frames: single-frame
    differences are as large as the detector's noise), is under ``speed`` m/s, and it is within ``lift`` metres of
    the ground line: the lower of the two ankles' image heights (averaged over the same window), highest over the
    second around (the
    camera is horizontal, so the ground is one image row; a foot swinging towards the camera moves little in the
    picture but is off the ground)."""
    from scipy.ndimage import maximum_filter1d

    t = obs.shape[0]
    window = max(5, int(round(0.25 * fps)) | 1)
    ankles = [names.index(n) for n in ("left_ankle", "right_ankle") if n in names]
    if t < window or not ankles:
        return np.zeros((0, 2), np.int64)
    frames = np.arange(t)
    rows, speeds, heights = [], [], []
    for k in ankles:
        seen = conf[:, k] > 0
        if seen.sum() < window:
            continue
        uv = np.stack([np.interp(frames, frames[seen], obs[seen, k, i]) for i in (0, 1)], axis=-1)
        vel = _window(uv, np.arange(-(window // 2), window // 2 + 1) / _sum_squares(window))  # px/frame
        rows.append((k, seen))
        speeds.append(np.linalg.norm(vel, axis=-1) * fps / s0)                 # m/s
        heights.append(_window(uv[:, 1:], np.full(window, 1.0 / window))[:, 0])               # px, down
    if not rows:
        return np.zeros((0, 2), np.int64)
    ground = maximum_filter1d(np.max(heights, axis=0), size=max(3, int(round(fps))) | 1, mode="nearest")
    pairs = []
    for (k, seen), v, h in zip(rows, speeds, heights, strict=True):
        still = seen & (v < speed) & (h > ground - lift * s0)
        step = np.flatnonzero(still[:-1] & still[1:])
        pairs.append(np.stack([step, np.full(len(step), k)], axis=1))
    return np.concatenate(pairs).astype(np.int64)


def _sum_squares(window: int) -> float:
    """Sum of i^2 over i = -h .. h, h = window // 2: the least-squares slope's denominator."""
    h = window // 2
    return float(h * (h + 1) * (2 * h + 1) / 3)


def _window(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``sum_i kernel[i] x[t + i - h]`` along axis 0 of ``x [T, D]``, the ends repeated (``kernel`` odd-sized)."""
    h = len(kernel) // 2
    padded = np.concatenate([np.repeat(x[:1], h, axis=0), x, np.repeat(x[-1:], h, axis=0)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, len(kernel), axis=0)   # [T, D, W]
    return windows @ kernel


def _initial_yaw(prob: _Problem, rest: np.ndarray) -> np.ndarray:
    """Root yaw ``[T]`` (radians about Z) that best fits the shoulders and hips with the rest pose: 24 candidates
    per frame, one path through them chosen by dynamic programming with a cost for turning, so that the facing
    does not flip between the two mirror answers a single view allows."""
    candidates = np.linspace(-np.pi, np.pi, 24, endpoint=False)
    torso = [i for i, n in enumerate(prob.names) if n.endswith(("shoulder", "hip"))]
    pts = rest[torso] - rest[torso].mean(axis=0)                             # [P, 3]
    c, s = np.cos(candidates), np.sin(candidates)
    # Rotated about Z, seen by the camera: u = s0 (x cos - y sin), v = -s0 z.
    u = prob.s0 * (c[:, None] * pts[None, :, 0] - s[:, None] * pts[None, :, 1])   # [Y, P]
    v = np.broadcast_to(-prob.s0 * pts[:, 2], u.shape)
    w = prob.weight[:, torso] ** 2                                           # [T, P]
    obs = prob.obs[:, torso]
    mean = (obs * w[..., None]).sum(1) / np.maximum(w.sum(1), 1e-9)[:, None]  # [T, 2]
    d = obs - mean[:, None]                                                  # [T, P, 2]
    cost = (w[:, None] * ((d[:, None, :, 0] - u[None]) ** 2 + (d[:, None, :, 1] - v[None]) ** 2)).sum(-1)  # [T, Y]
    turn = np.abs(np.angle(np.exp(1j * (candidates[:, None] - candidates[None, :]))))
    step = turn * (prob.s0 * 0.2) ** 2 * len(torso)
    # Viterbi: the recursion is sequential over frames by nature; each step is a [Y, Y] array operation.
    total = cost[0].copy()
    back = np.zeros(cost.shape, np.int64)
    for i in range(1, len(cost)):
        options = total[:, None] + step
        back[i] = options.argmin(axis=0)
        total = options.min(axis=0) + cost[i]
    path = np.empty(len(cost), np.int64)
    path[-1] = total.argmin()
    for i in range(len(cost) - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return candidates[path]


def lift(points: Points, skeleton: Skeleton, *, reference: np.ndarray | None = None, smooth: float = 1.0,
         prior: float = 0.05, limits: float = 1.0, feet: float = 10.0, height: float | None = None,
         max_iterations: int = 30) -> LiftResult:
    """Fit ``skeleton`` to 2D COCO-17 keypoints (``points``, pixels) under a weak-perspective camera.

    skeleton: bone proportions to keep (rest offsets, metres); joints are matched to keypoints by name
    (``joint_map``). reference: ``[J, 4]`` local rotations (wxyz) of the pose the fit starts from and is pulled
    towards (default: the rest pose; ``reference_pose`` gives a dataset's mean pose, for skeletons whose rest pose
    is not a standing one). height: the person's height in metres; the skeleton is scaled so that its reference
    pose is that tall (default: the skeleton's own size). smooth: weight of the matched joints' acceleration (px per m/frame^2
    per px/m of camera scale, at 30 fps). prior: weight of the joint rotations' distance from the rest pose.
    limits: weight of the knees' and elbows' hinge and flexion range (``FLEXION``; 0: none). feet: weight of the
    3D speed of an ankle in the frames where its keypoint stands still on the ground (``still_feet``; 0: none).
    Returns the clip (pelvis moving in the X-Z plane: depth is not seen; the clip's lowest joint on Z = 0; the
    camera looking along +Y) and the per-frame reprojection error in pixels. Raises OptiqError for points with no
    person, SkeletonMismatchError for a skeleton with fewer than 4 joints matching body keypoints.
    """
    if points.dim != 2:
        raise OptiqError(f"points {points.name!r} are {points.dim}D; lifting needs 2D keypoints (pixels)")
    prob, starts, joints = setup(points, skeleton, reference=reference, smooth=smooth, prior=prior, limits=limits,
                                 feet=feet, height=height)
    sparsity = prob.sparsity()
    fits = [_levenberg_marquardt(prob, x, sparsity, max_iterations) for x in starts]
    best = min(fits, key=lambda x: float(np.sum(prob.residuals(x) ** 2)))
    return _result(points, prob, best, joints)


def setup(points: Points, skeleton: Skeleton, *, reference: np.ndarray | None, smooth: float, prior: float,
          limits: float, feet: float, height: float | None) -> tuple[_Problem, list[np.ndarray], dict[str, int]]:
    """The least-squares problem of ``lift`` (same arguments), its starting points (flat unknowns: the facing
    fitted to the torso and its depth mirror) and the matched joints ``{coco point: joint index}``."""
    joints = {n: j for n, j in joint_map(skeleton).items() if n in points.names}
    if len(joints) < 4:
        raise SkeletonMismatchError(f"{len(joints)} of the skeleton's joints ({', '.join(skeleton.names)}) match a "
                                    f"body keypoint by name; expected at least 4 of {', '.join(BODY_POINTS)}",
                                    None, "joints")
    if reference is None:
        reference = quat.identity((skeleton.num_joints,))
    if reference.shape != (skeleton.num_joints, 4):
        raise OptiqError(f"reference pose has shape {reference.shape}; expected ({skeleton.num_joints}, 4)")
    reference = quat.normalize(np.asarray(reference, np.float64))
    # The reference pose: the clip the fit starts from. Joints above the base keep the identity (the base's world
    # rotation is solved directly).
    ref_clip = Clip(skeleton, 30.0, np.zeros((1, 3)), reference[None].copy())
    if height is not None:
        z = ref_clip.world_positions()[0, :, 2]
        skeleton = skeleton.transformed(np.eye(3), height / float(z.max() - z.min()))
        ref_clip = Clip(skeleton, 30.0, np.zeros((1, 3)), reference[None].copy())
    names = tuple(joints)
    cols = [points.names.index(n) for n in names]
    conf = points.confidence[:, cols]
    if not (conf > 0).any():
        raise OptiqError("no person: every body keypoint has confidence 0; expected a person seen in at least "
                         "one frame", None, f"points {points.name!r}, frames 0-{points.num_frames - 1}")
    target = np.array([joints[n] for n in names])
    base, chain, free = _chain(skeleton, joints)
    obs = np.nan_to_num(points.positions[:, cols])
    width, height_px = points.image_size or (0, 0)
    centre = np.array([width / 2, height_px / 2])

    # Reference-pose positions of the used joints, and the scale from the torso (shoulders' middle to hips'
    # middle): nearly upright and unforeshortened by a horizontal camera.
    above = _ancestors(skeleton, base)[1:]
    ref_clip.rotations[0, above] = quat.identity((len(above),))
    fk_pos, fk_rot = ref_clip.forward_kinematics()
    # Reference positions relative to the base, whose world position is what the unknowns hold.
    rest = fk_pos[0] - fk_pos[0, base]
    rest_used = rest[target]
    torso_3d = _torso_length(names, rest_used[None])[0]
    seen = conf > 0
    torso_2d = _torso_length(names, np.where(seen[..., None], obs, np.nan))
    s0 = float(np.nanmedian(torso_2d) / torso_3d) if np.isfinite(torso_2d).any() else float(
        np.nanmax(np.ptp(np.where(seen[..., None], obs, np.nan)[..., 1], axis=1)) / np.ptp(rest[:, 2]))
    hinge, axis, flex_ref = _hinges(skeleton, joints, free, fk_pos[0], fk_rot[0])
    if limits <= 0:
        hinge, axis, flex_ref = hinge[:0], axis[:0], flex_ref[:0]
    contact = still_feet(names, obs, conf, s0, points.fps) if feet > 0 else np.zeros((0, 2), np.int64)
    prob = _Problem(skeleton, base, chain, free, names, target, obs, np.sqrt(conf), centre, s0,
                    quat.to_matrix(reference), quat.to_matrix(fk_rot[0, base]),
                    smooth * (points.fps / 30.0) ** 2, prior, hinge, axis, flex_ref, limits, contact,
                    feet * points.fps / 30.0)

    t = points.num_frames
    yaw = _initial_yaw(prob, rest_used)
    x0 = np.zeros((t, prob.per_frame))
    x0[:, 2] = yaw
    # Base X-Z from the seen points' mean, less the rest pose's height of those points above the base; frames with
    # no point start at the clip's mean.
    w = conf
    mean = (obs * w[..., None]).sum(1) / np.maximum(w.sum(1), 1e-9)[:, None]
    have = w.sum(1) > 0
    mean[~have] = mean[have].mean(0)
    x0[:, 3] = (mean[:, 0] - centre[0]) / s0
    x0[:, 4] = -(mean[:, 1] - centre[1]) / s0 - rest_used[:, 2].mean()
    # One view cannot tell a torso turned by +a from one turned by -a (the depth mirror): solve from both and keep
    # the better fit (measured on the DeepMimic walk: 110 mm instead of 191 mm; docs/video.md).
    mirror = x0.copy()
    mirror[:, 2] = -yaw
    return prob, [x0.ravel(), mirror.ravel()], joints


def _levenberg_marquardt(prob: _Problem, x: np.ndarray, sparsity, iterations: int) -> np.ndarray:
    """Minimise ``|prob.residuals(x)|^2`` by Levenberg-Marquardt with a sparse Jacobian (``prob.jacobian``:
    batched finite differences) and a sparse direct solve of the normal equations. scipy's ``least_squares`` with
    the same sparsity spends most of its time in its iterative trust-region solver (lsmr) and calls the residuals
    once per group of columns (benchmarks/bench_lift.py); the normal equations here are block-tridiagonal over
    frames, which SuperLU factors in milliseconds."""
    from scipy.sparse import diags
    from scipy.sparse.linalg import spsolve

    fun = prob.residuals
    group = prob.groups()
    r = fun(x)
    cost = r @ r
    damping = 1e-3
    for _ in range(iterations):
        jac = prob.jacobian(x, r, sparsity, group)
        jtj = (jac.T @ jac).tocsc()
        grad = jac.T @ r
        diag = jtj.diagonal() + 1e-9
        while True:
            # The unknowns are ordered by frame, so the matrix is banded as it stands: SuperLU's natural ordering
            # is 2-3x faster here than its default (COLAMD) reordering.
            step = spsolve(jtj + diags(damping * diag), -grad, permc_spec="NATURAL")
            new_r = fun(x + step)
            new_cost = new_r @ new_r
            if new_cost < cost:
                break
            damping *= 10
            if damping > 1e8:
                return x
        x, r, improved = x + step, new_r, cost - new_cost
        cost, damping = new_cost, max(damping / 10, 1e-7)
        if improved < 1e-4 * cost:
            break
    return x


def _torso_length(names: tuple[str, ...], pos: np.ndarray) -> np.ndarray:
    """``[T]`` distance between the shoulders' middle and the hips' middle of ``pos [T, K, D]`` (NaN unseen)."""
    idx = {n: i for i, n in enumerate(names)}
    if not all(n in idx for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")):
        return np.full(pos.shape[0], np.nan)
    sh = (pos[:, idx["left_shoulder"]] + pos[:, idx["right_shoulder"]]) / 2
    hp = (pos[:, idx["left_hip"]] + pos[:, idx["right_hip"]]) / 2
    return np.linalg.norm(sh - hp, axis=-1)


def _result(points: Points, prob: _Problem, x: np.ndarray, joints: dict[str, int]) -> LiftResult:
    """The Clip of the solution ``x``, standing on Z = 0, and its per-frame reprojection error."""
    root_rv, root_xz, rv, scale = prob.unpack(x)
    t = root_rv.shape[0]
    rotations = np.repeat(quat.from_matrix(prob.ref_local)[None], t, axis=0)
    rotations[:, prob.free] = quat.qmul(rotations[:, prob.free], quat.from_rotvec(rv))
    above = _ancestors(prob.skeleton, prob.base)[1:]
    rotations[:, above] = quat.identity((t, len(above)))
    rotations[:, prob.base] = quat.from_matrix(_rotvec_matrix(root_rv) @ prob.ref_base)
    # Joints above the base keep the identity, so the root sits at the base less their rest offsets.
    above = _ancestors(prob.skeleton, prob.base)[:-1]
    root = np.stack([root_xz[:, 0], np.zeros(t), root_xz[:, 1]], axis=1) - prob.skeleton.offsets[above].sum(0)
    clip = Clip(prob.skeleton, points.fps, root, rotations, name=points.name)
    # Depth is unknown and the height of the image's centre is arbitrary: put the ground at Z = 0, where the RL
    # package's characters stand. The ground is where the still feet are: the median over the still frames of the
    # still foot's lowest joint (the ankle or a joint below it, such as the toes); without still feet, the clip's
    # lowest joint over all frames.
    world = clip.world_positions()
    still = np.stack([prob.contact[:, 0], prob.target[prob.contact[:, 1]]], axis=1) if len(prob.contact) else (
        np.zeros((0, 2), np.int64))
    if len(still):
        lowest = []
        for ankle in np.unique(still[:, 1]):
            foot = [j for j in range(prob.skeleton.num_joints) if ankle in _ancestors(prob.skeleton, j)]
            lowest.append(world[still[still[:, 1] == ankle, 0]][:, foot, 2].min(axis=1))
        clip.root_translation[:, 2] -= float(np.median(np.concatenate(lowest)))
    else:
        clip.root_translation[:, 2] -= world[..., 2].min()
    seen = prob.weight > 0
    dist = np.linalg.norm(prob.project(prob.positions(x), scale) - prob.obs, axis=-1)
    conf = prob.weight ** 2
    with np.errstate(invalid="ignore"):
        err = np.where(seen.any(1), (dist * conf).sum(1) / conf.sum(1), np.nan)
    clip.frame_labels["reprojection_error"] = err
    clip.labels.update({"source": "optiq data lift", "camera_scale_px_per_m": f"{scale:.6g}",
                        "camera": "weak perspective along +Y"})
    return LiftResult(clip, scale, err, joints, still)


#: Clips of a ``--skeleton`` dataset read for its mean pose (``reference_pose``), at most.
POSE_CLIPS = 50


def read_skeleton(spec: str | os.PathLike, clip: str | None = None,
                  pose: str = "mean") -> tuple[Skeleton, np.ndarray | None]:
    """The skeleton to fit from ``--skeleton`` and the pose the fit starts from and is pulled towards.

    spec: a dataset of clips (its first clip's skeleton, or ``clip``'s), a DeepMimic character file, or
    ``deepmimic`` (the character file named by ``$OPTIQ_DEEPMIMIC_CHARACTER``). pose: ``mean``, the mean pose
    (``reference_pose``) of the dataset's clips on that skeleton (the first ``POSE_CLIPS``), or ``rest``. A
    character file has its rest pose only. Returns (skeleton, ``[J, 4]`` reference rotations, None for the rest
    pose)."""
    import optiq

    if pose not in ("mean", "rest"):
        raise OptiqError(f"pose must be 'mean' or 'rest', got {pose!r}")
    if str(spec) == "deepmimic":
        env = os.environ.get("OPTIQ_DEEPMIMIC_CHARACTER")
        if not env:
            raise OptiqError("--skeleton deepmimic needs the character file: pass its path "
                             "(humanoid3d_character.txt) or set OPTIQ_DEEPMIMIC_CHARACTER")
        spec = env
    path = Path(spec)
    if not path.is_file():
        raise OptiqError("skeleton file does not exist", path)
    if path.suffix.lower() == ".txt":
        return deepmimic_skeleton(path), None
    with optiq.open_dataset(path) as ds:
        if hasattr(ds, "read_points"):
            raise OptiqError("holds points, not clips (a dataset of motion clips is expected)", path)
        skeleton = ds.clip_skeleton(clip if clip is not None else 0)
        if pose == "rest":
            return skeleton, None
        names = ds.clip_names[:POSE_CLIPS] if clip is None else [clip]
        clips = [c for c in (ds.read_clip(n) for n in names) if c.skeleton.names == skeleton.names]
    return skeleton, reference_pose(clips)
