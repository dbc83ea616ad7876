"""The clip: a skeleton's motion as arrays, with clip- and frame-level labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from . import quat
from .errors import OptiqError, SkeletonMismatchError
from .skeleton import Skeleton


@dataclass(eq=False)
class Clip:
    """One take of motion, array-first.

    skeleton: the joint hierarchy (``J`` joints). fps: frames per second.
    root_translation: ``[T, 3]`` metres, world position of the root joint.
    rotations: ``[T, J, 4]`` wxyz local joint rotations (relative to the rest pose, parent frame).
    local_translations: optional ``[T, J, 3]`` metres, per-frame local translations for files that animate joint
    positions; when present it replaces ``skeleton.offsets`` for every non-root joint.
    name: clip name (unique within a dataset). labels: clip labels ``str -> str``.
    frame_labels: ``name -> array [T]`` (any dtype numpy can store: ints, floats, strings).
    """

    skeleton: Skeleton
    fps: float
    root_translation: np.ndarray
    rotations: np.ndarray
    local_translations: np.ndarray | None = None
    name: str = "clip"
    labels: dict[str, str] = field(default_factory=dict)
    frame_labels: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fps = float(self.fps)
        self.root_translation = np.asarray(self.root_translation, dtype=np.float64)
        self.rotations = np.asarray(self.rotations, dtype=np.float64)
        if self.local_translations is not None:
            self.local_translations = np.asarray(self.local_translations, dtype=np.float64)
        self.labels = {str(k): str(v) for k, v in self.labels.items()}
        self.frame_labels = {str(k): np.asarray(v) for k, v in self.frame_labels.items()}
        self.validate()

    def validate(self) -> None:
        """Check shapes and values; raises OptiqError naming the clip and the first bad frame."""
        t, j = self.num_frames, self.skeleton.num_joints
        if not np.isfinite(self.fps) or self.fps <= 0:
            raise OptiqError(f"clip {self.name!r}: fps must be positive, got {self.fps}")
        if self.rotations.shape != (t, j, 4):
            raise SkeletonMismatchError(
                f"clip {self.name!r}: rotations have shape {self.rotations.shape}, expected ({t}, {j}, 4)"
            )
        if self.root_translation.shape != (t, 3):
            raise OptiqError(
                f"clip {self.name!r}: root_translation has shape {self.root_translation.shape}, expected ({t}, 3)"
            )
        if self.local_translations is not None and self.local_translations.shape != (t, j, 3):
            raise OptiqError(
                f"clip {self.name!r}: local_translations have shape {self.local_translations.shape}, "
                f"expected ({t}, {j}, 3)"
            )
        for arr, what in ((self.root_translation, "root translation"), (self.rotations, "rotation")):
            bad = ~np.isfinite(arr.reshape(t, int(np.prod(arr.shape[1:])))).all(axis=1)
            if bad.any():
                raise OptiqError(f"clip {self.name!r}: frame {int(np.argmax(bad))}: {what} is not finite (NaN or inf)")
        for key, arr in self.frame_labels.items():
            if arr.shape[:1] != (t,):
                raise OptiqError(
                    f"clip {self.name!r}: frame label {key!r} has {arr.shape[0] if arr.ndim else 0} values, "
                    f"expected one per frame ({t})"
                )

    # --- sizes ---------------------------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return int(self.rotations.shape[0])

    @property
    def num_joints(self) -> int:
        return self.skeleton.num_joints

    @property
    def dt(self) -> float:
        return 1.0 / self.fps

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame."""
        return (self.num_frames - 1) / self.fps

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return (
            f"Clip(name={self.name!r}, frames={self.num_frames}, joints={self.num_joints}, fps={self.fps:g}, "
            f"labels={self.labels})"
        )

    # --- kinematics ----------------------------------------------------------------------------------------
    def local_offsets(self) -> np.ndarray:
        """Per-frame local translation of every joint ``[T, J, 3]`` metres (root row = root translation)."""
        if self.local_translations is not None:
            off = self.local_translations.copy()
        else:
            off = np.broadcast_to(self.skeleton.offsets, (self.num_frames, self.num_joints, 3)).copy()
        off[:, 0] = self.root_translation
        return off

    def forward_kinematics(self) -> tuple[np.ndarray, np.ndarray]:
        """World positions ``[T, J, 3]`` (metres) and world rotations ``[T, J, 4]`` wxyz of every joint.

        Vectorised over frames; the loop runs over joints (parents before children).
        """
        parents = self.skeleton.parents
        # Components first ([4, J, T]): every joint's step then works on contiguous rows of T values, with
        # views instead of gathers; this is about three times faster than on [T, J, 4].
        local = np.ascontiguousarray(self.rotations.transpose(2, 1, 0))
        if self.local_translations is None:
            offsets = self.skeleton.offsets
        else:
            offsets = np.ascontiguousarray(self.local_translations.transpose(1, 2, 0))  # [J, 3, T]
        rot = np.empty_like(local)
        pos = np.empty((3, self.num_joints, self.num_frames))
        rot[:, 0] = local[:, 0]
        pos[:, 0] = self.root_translation.T
        for j in range(1, self.num_joints):
            p = parents[j]
            rot[:, j] = quat.qmul_parts(rot[:, p], local[:, j])
            pos[:, j] = pos[:, p] + quat.rotate_parts(rot[:, p], offsets[j])
        return np.ascontiguousarray(pos.transpose(2, 1, 0)), np.ascontiguousarray(rot.transpose(2, 1, 0))

    def world_positions(self) -> np.ndarray:
        """World joint positions ``[T, J, 3]`` metres."""
        return self.forward_kinematics()[0]

    def world_rotations(self) -> np.ndarray:
        """World joint rotations ``[T, J, 4]`` wxyz."""
        return self.forward_kinematics()[1]

    def end_site_positions(self, fk: tuple[np.ndarray, np.ndarray] | None = None) -> dict[int, np.ndarray]:
        """World positions ``{joint: [T, 3]}`` of the skeleton's end sites. fk: this clip's
        ``forward_kinematics()`` result when the caller has it already (it is computed otherwise)."""
        pos, rot = self.forward_kinematics() if fk is None else fk
        return {j: pos[:, j] + quat.rotate(rot[:, j], off) for j, off in self.skeleton.end_sites.items()}

    def linear_velocities(self, positions: np.ndarray | None = None) -> np.ndarray:
        """World linear velocities ``[T, J, 3]`` m/s by second-order central differences (one-sided at the ends)."""
        pos = self.world_positions() if positions is None else positions
        if self.num_frames < 2:
            return np.zeros_like(pos)
        return np.gradient(pos, self.dt, axis=0)

    def angular_velocities(self, rotations: np.ndarray | None = None) -> np.ndarray:
        """World angular velocities ``[T, J, 3]`` rad/s: central differences of world rotations.

        ``omega_t = log(q_{t+1} q_{t-1}^-1) / (2 dt)`` inside, one-sided at the first and last frame.
        """
        rot = self.world_rotations() if rotations is None else rotations
        t = self.num_frames
        if t < 2:
            return np.zeros((*rot.shape[:-1], 3))
        nxt = np.concatenate((rot[1:], rot[-1:]), axis=0)
        prv = np.concatenate((rot[:1], rot[:-1]), axis=0)
        span = np.full(t, 2.0 * self.dt)
        span[0] = span[-1] = self.dt
        return quat.to_rotvec(quat.qmul(nxt, quat.conj(prv))) / span[:, None, None]

    # --- editing -------------------------------------------------------------------------------------------
    def replace(self, **changes) -> Clip:
        """A copy with fields replaced (``dataclasses.replace``)."""
        return replace(self, **changes)

    def slice(self, start: int | None = None, stop: int | None = None, step: int | None = None) -> Clip:
        """Frames ``[start:stop:step]`` as a new clip (fps divided by ``step``)."""
        s = slice(start, stop, step)
        n = len(range(*s.indices(self.num_frames)))
        if n == 0:
            raise OptiqError(f"clip {self.name!r}: slice {start}:{stop} of {self.num_frames} frames is empty")
        return replace(
            self,
            fps=self.fps / (step or 1),
            root_translation=self.root_translation[s],
            rotations=self.rotations[s],
            local_translations=None if self.local_translations is None else self.local_translations[s],
            labels=dict(self.labels),
            frame_labels={k: v[s] for k, v in self.frame_labels.items()},
        )

    def __getitem__(self, item: slice) -> Clip:
        if not isinstance(item, slice):
            raise TypeError("index a clip with a slice of frames, e.g. clip[10:50]")
        return self.slice(item.start, item.stop, item.step)

    @staticmethod
    def concatenate(clips: Sequence[Clip], name: str | None = None) -> Clip:
        """Join clips of one skeleton and fps end to end. Clip labels are those shared by all clips;
        a frame label present in only some clips is filled with its dtype's empty value."""
        if not clips:
            raise OptiqError("nothing to concatenate")
        first = clips[0]
        for c in clips[1:]:
            if not c.skeleton.allclose(first.skeleton):
                raise SkeletonMismatchError(f"cannot concatenate {c.name!r}: its skeleton differs from {first.name!r}")
            if abs(c.fps - first.fps) > 1e-9:
                raise OptiqError(f"cannot concatenate {c.name!r} at {c.fps:g} fps with {first.name!r} at {first.fps:g} fps")
        has_local = [c.local_translations is not None for c in clips]
        local = None
        if any(has_local):
            local = np.concatenate([c.local_offsets() for c in clips])
        keys = sorted({k for c in clips for k in c.frame_labels})
        frame_labels = {}
        for k in keys:
            parts = [c.frame_labels.get(k) for c in clips]
            dtype = np.result_type(*[p.dtype for p in parts if p is not None])
            frame_labels[k] = np.concatenate(
                [p if p is not None else np.zeros(c.num_frames, dtype=dtype) for p, c in zip(parts, clips, strict=True)]
            )
        shared = {k: v for k, v in first.labels.items() if all(c.labels.get(k) == v for c in clips)}
        return Clip(
            skeleton=first.skeleton,
            fps=first.fps,
            root_translation=np.concatenate([c.root_translation for c in clips]),
            rotations=np.concatenate([c.rotations for c in clips]),
            local_translations=local,
            name=name or "+".join(c.name for c in clips),
            labels=shared,
            frame_labels=frame_labels,
        )

    def resample(self, fps: float) -> Clip:
        """The clip at another frame rate over the same duration: slerp for rotations, linear for translations,
        nearest frame for frame labels."""
        if not np.isfinite(fps) or fps <= 0:
            raise OptiqError(f"clip {self.name!r}: target fps must be positive and finite, got {fps}")
        if abs(fps - self.fps) < 1e-9 or self.num_frames < 2:
            return replace(self, fps=float(fps)) if self.num_frames < 2 else self
        n = int(np.floor(self.duration * fps + 1e-6)) + 1
        src = np.arange(n) * (self.fps / fps)
        i0 = np.minimum(np.floor(src).astype(np.int64), self.num_frames - 1)
        i1 = np.minimum(i0 + 1, self.num_frames - 1)
        w = src - i0

        def lerp(a: np.ndarray) -> np.ndarray:
            ww = w.reshape(-1, *([1] * (a.ndim - 1)))
            return a[i0] * (1 - ww) + a[i1] * ww

        rot = quat.slerp(self.rotations[i0], self.rotations[i1], np.broadcast_to(w[:, None], (n, self.num_joints)))
        nearest = np.minimum(np.rint(src).astype(np.int64), self.num_frames - 1)
        return replace(
            self,
            fps=float(fps),
            root_translation=lerp(self.root_translation),
            rotations=rot,
            local_translations=None if self.local_translations is None else lerp(self.local_translations),
            labels=dict(self.labels),
            frame_labels={k: v[nearest] for k, v in self.frame_labels.items()},
        )

    def lateral_axis(self, perm: np.ndarray) -> int:
        """The world axis (0, 1, 2) along which left and right joints of the rest pose are separated."""
        rest = self.skeleton.rest_positions()
        moved = np.flatnonzero(perm != np.arange(len(perm)))
        if moved.size == 0:
            raise OptiqError(f"clip {self.name!r}: no left/right joint pairs found to mirror")
        spread = np.abs(rest[moved] - rest[perm[moved]]).sum(axis=0)
        return int(np.argmax(spread))

    def mirror(self, pairs: Sequence[tuple[str, str]] | None = None) -> Clip:
        """Left/right mirror image: swaps paired joints and reflects across the sagittal plane.

        pairs: ``(left, right)`` joint names; found from the names when omitted (see Skeleton.mirror_pairs).
        The lateral axis is the one separating the pairs in the rest pose. The skeleton is kept, so the result is
        exact for a symmetric skeleton.
        """
        perm = self.skeleton.mirror_pairs(pairs)
        axis = self.lateral_axis(perm)
        flip = np.ones(3)
        flip[axis] = -1.0
        # Reflecting a rotation R by M = diag(flip): M R M keeps the axis component along the mirror normal
        # and negates the other two.
        qflip = np.concatenate(([1.0], -flip))
        rot = self.rotations[:, perm] * qflip
        local = None
        if self.local_translations is not None:
            local = self.local_translations[:, perm] * flip
        return replace(
            self,
            root_translation=self.root_translation * flip,
            rotations=rot,
            local_translations=local,
            name=self.name + "_mirror",
            labels=dict(self.labels),
            frame_labels=dict(self.frame_labels),
        )

    def smooth(self, cutoff_hz: float, order: int = 4) -> Clip:
        """Zero-phase Butterworth low-pass (scipy ``butter`` + ``filtfilt``) of translations and rotations.

        cutoff_hz: cut-off frequency in Hz, below the Nyquist frequency ``fps / 2``. Rotations are made
        hemisphere-continuous, filtered per component and renormalised.
        """
        from scipy.signal import butter, filtfilt

        nyquist = 0.5 * self.fps
        if not 0 < cutoff_hz < nyquist:
            raise OptiqError(
                f"clip {self.name!r}: smoothing cut-off must be between 0 and the Nyquist frequency "
                f"{nyquist:g} Hz, got {cutoff_hz:g}"
            )
        b, a = butter(order, cutoff_hz / nyquist)
        padlen = 3 * max(len(a), len(b))
        if self.num_frames <= padlen:
            raise OptiqError(f"clip {self.name!r}: {self.num_frames} frames are too few to filter (need > {padlen})")
        rot = filtfilt(b, a, quat.make_continuous(self.rotations, axis=0), axis=0)
        local = None if self.local_translations is None else filtfilt(b, a, self.local_translations, axis=0)
        return replace(
            self,
            root_translation=filtfilt(b, a, self.root_translation, axis=0),
            rotations=quat.normalize(rot),
            local_translations=local,
            labels=dict(self.labels),
            frame_labels=dict(self.frame_labels),
        )

    def with_joint_order(self, names: Sequence[str]) -> Clip:
        """The same motion with joints listed in the order ``names`` (every joint once, the root first, parents
        before children): rotations, local translations, offsets and end sites are permuted together."""
        sk = self.skeleton
        if sorted(names) != sorted(sk.names):
            raise SkeletonMismatchError(f"clip {self.name!r}: joint order must name each of its {sk.num_joints} "
                                        "joints once")
        idx = np.array([sk.index(n) for n in names])
        if idx[0] != 0:
            raise SkeletonMismatchError(f"clip {self.name!r}: the root {sk.names[0]!r} must stay the first joint")
        inv = np.empty_like(idx)
        inv[idx] = np.arange(len(idx))
        parents = np.where(sk.parents[idx] >= 0, inv[np.maximum(sk.parents[idx], 0)], -1)
        skeleton = Skeleton(tuple(names), parents, sk.offsets[idx], {int(inv[j]): v for j, v in sk.end_sites.items()})
        labels = dict(self.labels)
        orders = labels.get("rotation_orders", "").split(",")
        if len(orders) == sk.num_joints > 1:  # per-joint Euler orders of a BVH file move with their joints
            labels["rotation_orders"] = ",".join(orders[i] for i in idx)
        return replace(
            self,
            skeleton=skeleton,
            rotations=self.rotations[:, idx],
            local_translations=None if self.local_translations is None else self.local_translations[:, idx],
            labels=labels,
            frame_labels=dict(self.frame_labels),
        )

    def depth_first(self) -> Clip:
        """The clip with joints in depth-first pre-order, children in their original relative order (the order
        BVH nests them in; ``optiq.io.load`` gives every loaded clip this order). Returns ``self`` when the joints
        are in that order already."""
        order = self.skeleton.depth_first_order()
        if np.array_equal(order, np.arange(self.num_joints)):
            return self
        return self.with_joint_order([self.skeleton.names[j] for j in order])

    def with_labels(self, labels: Mapping[str, str] | None = None, frame_labels: Mapping[str, np.ndarray] | None = None) -> Clip:
        """A copy with clip labels and frame labels added (existing keys replaced)."""
        return replace(
            self,
            labels={**self.labels, **(labels or {})},
            frame_labels={**self.frame_labels, **{k: np.asarray(v) for k, v in (frame_labels or {}).items()}},
        )

    def transformed(self, matrix: np.ndarray, scale: float = 1.0) -> Clip:
        """Change of world axes and units: ``matrix [3, 3]`` a proper rotation taking file axes to optiq axes,
        ``scale`` the file's length unit in metres. Valid because rest frames are world-aligned."""
        m = np.asarray(matrix, dtype=np.float64)
        if not np.allclose(m @ m.T, np.eye(3), atol=1e-9) or np.linalg.det(m) < 0:
            raise ValueError("axis change must be a proper rotation matrix")
        rot = self.rotations.copy()
        rot[..., 1:] = rot[..., 1:] @ m.T
        local = None if self.local_translations is None else (self.local_translations @ m.T) * scale
        return replace(
            self,
            skeleton=self.skeleton.transformed(m, scale),
            root_translation=(self.root_translation @ m.T) * scale,
            rotations=rot,
            local_translations=local,
            labels=dict(self.labels),
            frame_labels=dict(self.frame_labels),
        )

    def subset(self, joints: Sequence[str]) -> Clip:
        """The motion of the named joints only, in this clip's order, every kept joint's world position and
        rotation unchanged.

        joints: a connected subset: one of them (the new root) is an ancestor of all the others. A kept joint
        whose parent is dropped hangs from its nearest kept ancestor, with the dropped joints' transforms folded
        into its local rotation and translation (per-frame ``local_translations`` are stored when the dropped
        joints move it relative to that ancestor). The new root's translation ``[T, 3]`` and rotation are its
        world transform. End sites of dropped joints are dropped.
        """
        sk = self.skeleton
        unknown = [n for n in joints if n not in sk.names]
        if unknown:
            raise SkeletonMismatchError(f"clip {self.name!r}: no joint {', '.join(map(repr, unknown))}; "
                                        f"joints: {', '.join(sk.names)}")
        kept = np.isin(np.array(sk.names), list(joints))
        ancestor = np.full(sk.num_joints, -1)  # nearest kept proper ancestor of each joint
        for j in range(1, sk.num_joints):
            p = sk.parents[j]
            ancestor[j] = p if kept[p] else ancestor[p]
        keep = np.flatnonzero(kept)
        tops = keep[ancestor[keep] < 0]
        if len(tops) != 1:
            raise SkeletonMismatchError(f"clip {self.name!r}: joints {', '.join(sk.names[j] for j in tops)} have "
                                        f"no kept joint above them; the joints kept must hang from one of them")
        if len(keep) == sk.num_joints:
            return self
        new_index = np.cumsum(kept) - 1
        anc = ancestor[keep]
        folded = (sk.parents[keep] != anc) & (anc >= 0)
        rest = sk.rest_positions()
        offsets = sk.offsets[keep].copy()
        offsets[0] = rest[tops[0]]
        offsets[folded] = rest[keep[folded]] - rest[anc[folded]]
        pos, rot = self.forward_kinematics()
        rotations = self.rotations[:, keep].copy()
        rotations[:, 0] = rot[:, tops[0]]
        local = self.local_offsets()[:, keep] if self.local_translations is not None else None
        if folded.any():
            a, j = anc[folded], keep[folded]
            inv = quat.conj(rot[:, a])
            rotations[:, folded] = quat.qmul(inv, rot[:, j])
            moved = quat.rotate(inv, pos[:, j] - pos[:, a])
            if local is None and not np.allclose(moved, offsets[folded], rtol=0, atol=1e-9):
                local = np.broadcast_to(offsets, (self.num_frames, len(keep), 3)).copy()
            if local is not None:
                local[:, folded] = moved
        if local is not None:
            local[:, 0] = pos[:, tops[0]]
        skeleton = Skeleton(tuple(sk.names[j] for j in keep), np.where(anc >= 0, new_index[anc], -1), offsets,
                            {int(new_index[j]): v for j, v in sk.end_sites.items() if kept[j]})
        return replace(self, skeleton=skeleton, root_translation=pos[:, tops[0]], rotations=rotations,
                       local_translations=local, labels=dict(self.labels), frame_labels=dict(self.frame_labels))

    def rerooted(self, joint: str) -> Clip:
        """The clip with ``joint`` as its root: the joints above it (and their other branches) are dropped and
        their transforms folded into it, so that the root translation and rotation are ``joint``'s world
        transform and every kept joint's world position is unchanged (see ``subset``)."""
        sk = self.skeleton
        try:
            top = sk.index(joint)
        except KeyError as exc:
            raise SkeletonMismatchError(f"clip {self.name!r}: cannot make {joint!r} the root: {exc.args[0]}") from None
        below = np.zeros(sk.num_joints, dtype=bool)
        below[top] = True
        for j in range(top + 1, sk.num_joints):
            below[j] = below[sk.parents[j]]
        return self.subset([n for n, b in zip(sk.names, below, strict=True) if b])

    def renamed(self, names: Mapping[str, str]) -> Clip:
        """The clip with joints renamed by ``names`` (``{old: new}``; joints not named keep their name)."""
        sk = self.skeleton
        unknown = sorted(set(names) - set(sk.names))
        if unknown:
            raise SkeletonMismatchError(f"clip {self.name!r}: cannot rename {', '.join(map(repr, unknown))}: no "
                                        f"such joint; joints: {', '.join(sk.names)}")
        try:
            skeleton = Skeleton(tuple(names.get(n, n) for n in sk.names), sk.parents, sk.offsets, sk.end_sites)
        except SkeletonMismatchError as exc:
            raise SkeletonMismatchError(f"clip {self.name!r}: after renaming, {exc}") from None
        return replace(self, skeleton=skeleton, labels=dict(self.labels), frame_labels=dict(self.frame_labels))
