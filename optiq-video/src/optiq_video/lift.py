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


def rest_height(skeleton: Skeleton) -> float:
    """Vertical extent (metres) of the skeleton's joints in its rest pose."""
    clip = Clip(skeleton, 30.0, np.zeros((1, 3)), quat.identity((1, skeleton.num_joints)))
    z = clip.world_positions()[0, :, 2]
    return float(z.max() - z.min())


@dataclass
class LiftResult:
    """clip: the fitted motion (``frame_labels["reprojection_error"]`` [T] px). scale: the camera's px per metre.
    reprojection_error: ``[T]`` confidence-weighted mean distance (px) between the seen keypoints and the fitted
    joints' projections; NaN in frames with no keypoint. joints: ``{coco point: joint index}`` used."""

    clip: Clip
    scale: float
    reprojection_error: np.ndarray
    joints: dict[str, int]


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
    smooth: float
    prior: float

    @property
    def per_frame(self) -> int:
        return 5 + 3 * len(self.free)

    def unpack(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Flat unknowns -> base rotvec [T,3], base X-Z [T,2] m, joint rotvecs [T,F,3], scale px/m."""
        t = self.obs.shape[0]
        frames = x.reshape(t, self.per_frame)
        return frames[:, :3], frames[:, 3:5], frames[:, 5:].reshape(t, -1, 3), self.s0

    def positions(self, x: np.ndarray) -> np.ndarray:
        """World positions ``[T, K, 3]`` metres of the used joints."""
        root_rv, root_xz, rv, _ = self.unpack(x)
        t, nj = root_rv.shape[0], self.skeleton.num_joints
        # Rotation matrices rather than quaternions: one matmul per joint on [T, 3, 3] is the cheapest step of
        # the forward kinematics, which the finite differences run a few hundred times per iteration.
        local = np.empty((t, nj, 3, 3))
        local[:] = np.eye(3)
        local[:, self.free] = _rotvec_matrix(rv)
        rot = np.empty_like(local)
        pos = np.zeros((t, nj, 3))
        rot[:, self.base] = _rotvec_matrix(root_rv)
        pos[:, self.base, 0], pos[:, self.base, 2] = root_xz[:, 0], root_xz[:, 1]
        parents, offsets = self.skeleton.parents, self.skeleton.offsets
        for j in self.chain:
            p = parents[j]
            rot[:, j] = rot[:, p] @ local[:, j]
            pos[:, j] = pos[:, p] + rot[:, p] @ offsets[j]
        return pos[:, self.target]

    def project(self, pos: np.ndarray, scale: float) -> np.ndarray:
        """Pixels ``[..., 2]`` of world points ``[..., 3]`` metres under the weak-perspective camera."""
        return np.stack([scale * pos[..., 0] + self.centre[0], -scale * pos[..., 2] + self.centre[1]], axis=-1)

    def residuals(self, x: np.ndarray) -> np.ndarray:
        """All residuals, px: reprojection ``[T, K, 2]``, acceleration ``[T-2, K, 3]``, rest-pose pull
        ``[T, F, 3]``, flattened in that order (the rows of ``sparsity``)."""
        pos = self.positions(x)
        _, _, rv, scale = self.unpack(x)
        reproj = (self.project(pos, scale) - self.obs) * self.weight[..., None]
        accel = (pos[2:] - 2 * pos[1:-1] + pos[:-2]) * (self.smooth * self.s0)
        return np.concatenate([reproj.ravel(), accel.ravel(), (rv * (self.prior * self.s0)).ravel()])

    def sparsity(self):
        """Which unknowns each residual row depends on (scipy.sparse, rows x unknowns)."""
        from scipy.sparse import coo_matrix

        t, k = self.weight.shape
        n = self.per_frame
        cols_of = np.arange(t * n).reshape(t, n)
        rows, cols = [], []
        # Reprojection rows of frame i: frame i's unknowns.
        r = np.arange(t * k * 2).reshape(t, k * 2)
        rows.append(np.repeat(r, n, axis=1).ravel())
        cols.append(np.tile(cols_of, (1, k * 2)).ravel())
        base = r.size
        # Acceleration rows of frame i (i = 1 .. T-2): frames i-1, i, i+1.
        if t > 2:
            a = base + np.arange((t - 2) * k * 3).reshape(t - 2, k * 3)
            for shift in (0, 1, 2):
                rows.append(np.repeat(a, n, axis=1).ravel())
                cols.append(np.tile(cols_of[shift:t - 2 + shift], (1, k * 3)).ravel())
            base += a.size
        # Prior rows: one unknown each.
        f = len(self.free)
        p = base + np.arange(t * f * 3)
        rows.append(p)
        cols.append(cols_of[:, 5:].ravel())
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        return coo_matrix((np.ones(rows.size), (rows, cols)), shape=(base + p.size, t * n)).tocsr()


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


def lift(points: Points, skeleton: Skeleton, *, smooth: float = 1.0, prior: float = 0.05,
         height: float | None = None, max_iterations: int = 30) -> LiftResult:
    """Fit ``skeleton`` to 2D COCO-17 keypoints (``points``, pixels) under a weak-perspective camera.

    skeleton: bone proportions to keep (rest offsets, metres); joints are matched to keypoints by name
    (``joint_map``). height: the person's height in metres; the skeleton is scaled so that its rest pose is that
    tall (default: the skeleton's own size). smooth: weight of the matched joints' acceleration (px per m/frame^2
    per px/m of camera scale, at 30 fps). prior: weight of the joint rotations' distance from the rest pose.
    Returns the clip (pelvis moving in the X-Z plane: depth is not seen; the clip's lowest joint on Z = 0; the
    camera looking along +Y) and the per-frame reprojection error in pixels. Raises OptiqError for points with no
    person, SkeletonMismatchError for a skeleton with fewer than 4 joints matching body keypoints.
    """
    if points.dim != 2:
        raise OptiqError(f"points {points.name!r} are {points.dim}D; lifting needs 2D keypoints (pixels)")
    joints = {n: j for n, j in joint_map(skeleton).items() if n in points.names}
    if len(joints) < 4:
        raise SkeletonMismatchError(f"{len(joints)} of the skeleton's joints ({', '.join(skeleton.names)}) match a "
                                    f"body keypoint by name; expected at least 4 of {', '.join(BODY_POINTS)}",
                                    None, "joints")
    if height is not None:
        skeleton = skeleton.transformed(np.eye(3), height / rest_height(skeleton))
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

    # Rest-pose positions of the used joints, and the scale from the torso (shoulders' middle to hips' middle):
    # nearly upright and unforeshortened by a horizontal camera.
    rest = Clip(skeleton, 30.0, np.zeros((1, 3)), quat.identity((1, skeleton.num_joints))).world_positions()[0]
    # Rest positions relative to the base, whose world position is what the unknowns hold.
    rest = rest - rest[base]
    rest_used = rest[target]
    torso_3d = _torso_length(names, rest_used[None])[0]
    seen = conf > 0
    torso_2d = _torso_length(names, np.where(seen[..., None], obs, np.nan))
    s0 = float(np.nanmedian(torso_2d) / torso_3d) if np.isfinite(torso_2d).any() else float(
        np.nanmax(np.ptp(np.where(seen[..., None], obs, np.nan)[..., 1], axis=1)) / rest_height(skeleton))
    prob = _Problem(skeleton, base, chain, free, names, target, obs, np.sqrt(conf), centre, s0,
                    smooth * (points.fps / 30.0) ** 2, prior)

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
    sparsity = prob.sparsity()
    fits = [_levenberg_marquardt(prob.residuals, x.ravel(), sparsity, max_iterations) for x in (x0, mirror)]
    best = min(fits, key=lambda x: float(np.sum(prob.residuals(x) ** 2)))
    return _result(points, prob, best, joints)


def _levenberg_marquardt(fun, x: np.ndarray, sparsity, iterations: int) -> np.ndarray:
    """Minimise ``|fun(x)|^2`` by Levenberg-Marquardt with a sparse Jacobian (finite differences grouped by
    ``sparsity``) and a sparse direct solve of the normal equations. scipy's ``least_squares`` with the same
    sparsity spends most of its time in its iterative trust-region solver (lsmr) on this banded problem; the
    normal equations here are block-tridiagonal over frames, which SuperLU factors in milliseconds."""
    from scipy.optimize._numdiff import approx_derivative
    from scipy.sparse import diags
    from scipy.sparse.linalg import spsolve

    r = fun(x)
    cost = r @ r
    damping = 1e-3
    for _ in range(iterations):
        jac = approx_derivative(fun, x, f0=r, sparsity=sparsity, method="2-point").tocsr()
        jtj = (jac.T @ jac).tocsc()
        grad = jac.T @ r
        diag = jtj.diagonal() + 1e-9
        while True:
            step = spsolve(jtj + diags(damping * diag), -grad)
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
    t, j = root_rv.shape[0], prob.skeleton.num_joints
    rotations = quat.identity((t, j))
    rotations[:, prob.base] = quat.from_rotvec(root_rv)
    rotations[:, prob.free] = quat.from_rotvec(rv)
    # Joints above the base keep their rest rotation, so the root sits at the base less their rest offsets.
    above = _ancestors(prob.skeleton, prob.base)[:-1]
    root = np.stack([root_xz[:, 0], np.zeros(t), root_xz[:, 1]], axis=1) - prob.skeleton.offsets[above].sum(0)
    clip = Clip(prob.skeleton, points.fps, root, rotations, name=points.name)
    # Depth is unknown and the height of the image's centre is arbitrary: put the lowest joint of the clip on
    # the ground (Z = 0), where the RL package's characters stand.
    clip.root_translation[:, 2] -= clip.world_positions()[..., 2].min()
    seen = prob.weight > 0
    dist = np.linalg.norm(prob.project(prob.positions(x), scale) - prob.obs, axis=-1)
    conf = prob.weight ** 2
    with np.errstate(invalid="ignore"):
        err = np.where(seen.any(1), (dist * conf).sum(1) / conf.sum(1), np.nan)
    clip.frame_labels["reprojection_error"] = err
    clip.labels.update({"source": "optiq data lift", "camera_scale_px_per_m": f"{scale:.6g}",
                        "camera": "weak perspective along +Y"})
    return LiftResult(clip, scale, err, joints)


def read_skeleton(spec: str | os.PathLike, clip: str | None = None) -> Skeleton:
    """The skeleton to fit from ``--skeleton``: a dataset (its first clip's skeleton, or ``clip``'s), a DeepMimic
    character file, or ``deepmimic`` (the character file named by ``$OPTIQ_DEEPMIMIC_CHARACTER``)."""
    import optiq

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
        return deepmimic_skeleton(path)
    with optiq.open_dataset(path) as ds:
        if hasattr(ds, "read_points"):
            raise OptiqError("holds points, not clips (a dataset of motion clips is expected)", path)
        return ds.clip_skeleton(clip if clip is not None else 0)
