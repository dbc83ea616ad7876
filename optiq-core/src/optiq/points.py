"""Points: named 2D or 3D points over time with a confidence per point and frame, beside Clip.

Marker trajectories (C3D) and video keypoints (OpenPose BODY_25, COCO-17) have positions but no joint rotations,
so they are not Clips. A missing point (occluded, not reconstructed) has confidence 0 and NaN position: nothing
is ever filled in; interpolation, gap filling or smoothing are the caller's choice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OptiqError, PluginError

Edge = tuple[int | str, int | str]


@dataclass(eq=False)
class Points:
    """Named points over time, array-first.

    positions: ``[T, K, D]`` float64, D = 3 (metres, optiq's world: right-handed, Z up) or D = 2 (image
    pixels, x right, y down, origin at the top-left corner of the image). confidence: ``[T, K]`` in [0, 1]; 0 means
    missing (default: 1 where the position is finite, else 0). Missing points have NaN positions: on construction
    a point whose confidence is 0 or whose position holds a NaN becomes NaN with confidence 0.
    names: ``K`` unique point names (marker labels, keypoint names). edges: pairs of points to draw, given as
    names or indices, stored as ``[E, 2]`` int indices. fps: frames per second. unit: ``"m"`` for 3D,
    ``"px"`` for 2D. image_size: ``(width, height)`` pixels of the image 2D points lie in (None for 3D).
    name: unique within a dataset. labels: ``str -> str``. frame_labels: ``name -> array [T]``.
    """

    positions: np.ndarray
    names: Sequence[str]
    fps: float
    confidence: np.ndarray | None = None
    edges: Sequence[Edge] | np.ndarray = ()
    unit: str | None = None
    image_size: tuple[int, int] | None = None
    name: str = "points"
    labels: dict[str, str] = field(default_factory=dict)
    frame_labels: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fps = float(self.fps)
        self.names = tuple(str(n) for n in self.names)
        self.positions = np.array(self.positions, dtype=np.float64)
        if self.positions.ndim != 3 or self.positions.shape[2] not in (2, 3):
            raise OptiqError(f"points {self.name!r}: positions have shape {self.positions.shape}, "
                             "expected [T, K, 2] or [T, K, 3]")
        if self.unit is None:
            self.unit = "m" if self.dim == 3 else "px"
        if self.image_size is not None:
            self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        finite = np.isfinite(self.positions).all(axis=2)
        if self.confidence is None:
            self.confidence = finite.astype(np.float64)
        else:
            self.confidence = np.array(self.confidence, dtype=np.float64)
        self.edges = self._edge_indices(self.edges)
        self.labels = {str(k): str(v) for k, v in self.labels.items()}
        self.frame_labels = {str(k): np.asarray(v) for k, v in self.frame_labels.items()}
        self.validate()
        missing = ~finite | (self.confidence == 0)
        self.positions[missing] = np.nan
        self.confidence[missing] = 0.0

    def _edge_indices(self, edges: Sequence[Edge] | np.ndarray) -> np.ndarray:
        """Edges as ``[E, 2]`` int64 point indices (names looked up)."""
        index = {n: i for i, n in enumerate(self.names)}
        out = np.empty((len(edges), 2), dtype=np.int64)
        for e, pair in enumerate(edges):
            if len(pair) != 2:
                raise OptiqError(f"points {self.name!r}: edge {e} is {pair!r}, expected a pair of points")
            for s, p in enumerate(pair):
                if isinstance(p, str):
                    if p not in index:
                        raise OptiqError(f"points {self.name!r}: edge {e} names {p!r}, which is not a point")
                    out[e, s] = index[p]
                else:
                    out[e, s] = int(p)
        bad = (out < 0) | (out >= len(self.names))
        if bad.any():
            e = int(np.argmax(bad.any(axis=1)))
            raise OptiqError(f"points {self.name!r}: edge {e} {out[e].tolist()} is out of range for "
                             f"{len(self.names)} points")
        return out

    def validate(self) -> None:
        """Check shapes and values; raises OptiqError naming the points and the first bad frame."""
        t, k = self.positions.shape[:2]
        if not np.isfinite(self.fps) or self.fps <= 0:
            raise OptiqError(f"points {self.name!r}: fps must be positive, got {self.fps}")
        if len(self.names) != k:
            raise OptiqError(f"points {self.name!r}: {len(self.names)} names for {k} points")
        if len(set(self.names)) != k:
            dup = next(n for n in self.names if self.names.count(n) > 1)
            raise OptiqError(f"points {self.name!r}: point name {dup!r} is used twice; names must be unique")
        if self.confidence.shape != (t, k):
            raise OptiqError(f"points {self.name!r}: confidence has shape {self.confidence.shape}, expected ({t}, {k})")
        bad = ~((self.confidence >= 0) & (self.confidence <= 1)).all(axis=1)
        if bad.any():
            raise OptiqError(f"points {self.name!r}: frame {int(np.argmax(bad))}: confidence outside [0, 1]")
        bad = np.isinf(self.positions).any(axis=(1, 2))
        if bad.any():
            raise OptiqError(f"points {self.name!r}: frame {int(np.argmax(bad))}: position is infinite")
        if self.dim == 2 and self.image_size is not None and min(self.image_size) <= 0:
            raise OptiqError(f"points {self.name!r}: image size {self.image_size} must be positive")
        for key, arr in self.frame_labels.items():
            if arr.shape[:1] != (t,):
                raise OptiqError(f"points {self.name!r}: frame label {key!r} has "
                                 f"{arr.shape[0] if arr.ndim else 0} values, expected one per frame ({t})")

    # --- sizes ---------------------------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def num_points(self) -> int:
        return int(self.positions.shape[1])

    @property
    def dim(self) -> int:
        """2 (image points) or 3 (world points)."""
        return int(self.positions.shape[2])

    @property
    def dt(self) -> float:
        return 1.0 / self.fps

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame."""
        return (self.num_frames - 1) / self.fps

    @property
    def valid(self) -> np.ndarray:
        """``[T, K]`` bool: the point was seen (confidence > 0)."""
        return self.confidence > 0

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return (f"Points(name={self.name!r}, frames={self.num_frames}, points={self.num_points}, dim={self.dim}, "
                f"fps={self.fps:g}, valid={self.valid.mean() if self.valid.size else 0:.1%})")

    # --- editing -------------------------------------------------------------------------------------------
    def replace(self, **changes) -> Points:
        """A copy with fields replaced (``dataclasses.replace``)."""
        return replace(self, **changes)

    def slice(self, start: int | None = None, stop: int | None = None, step: int | None = None) -> Points:
        """Frames ``[start:stop:step]`` as new Points (fps divided by ``step``)."""
        s = slice(start, stop, step)
        if len(range(*s.indices(self.num_frames))) == 0:
            raise OptiqError(f"points {self.name!r}: slice {start}:{stop} of {self.num_frames} frames is empty")
        return replace(self, positions=self.positions[s], confidence=self.confidence[s], fps=self.fps / (step or 1),
                       labels=dict(self.labels), frame_labels={k: v[s] for k, v in self.frame_labels.items()})

    def __getitem__(self, item: slice) -> Points:
        if not isinstance(item, slice):
            raise TypeError("index points with a slice of frames, e.g. points[10:50]")
        return self.slice(item.start, item.stop, item.step)

    def resample(self, fps: float) -> Points:
        """The points at another frame rate over the same duration: linear between the two nearest frames,
        confidence likewise; a new frame that needs a missing frame is missing (gaps are never bridged);
        frame labels take the nearest frame."""
        if not np.isfinite(fps) or fps <= 0:
            raise OptiqError(f"points {self.name!r}: target fps must be positive, got {fps}")
        if self.num_frames < 2 or abs(fps - self.fps) < 1e-9:
            return replace(self, fps=float(fps))
        n = int(np.floor(self.duration * fps + 1e-6)) + 1
        src = np.arange(n) * (self.fps / fps)
        i0 = np.minimum(np.floor(src).astype(np.int64), self.num_frames - 1)
        i1 = np.minimum(i0 + 1, self.num_frames - 1)
        w = src - i0
        # A weight of exactly 0 uses frame i0 alone, so that a missing i1 does not hide a sample that exists.
        i1 = np.where(w > 0, i1, i0)
        pos = self.positions[i0] * (1 - w)[:, None, None] + self.positions[i1] * w[:, None, None]
        conf = self.confidence[i0] * (1 - w)[:, None] + self.confidence[i1] * w[:, None]
        conf[~(self.valid[i0] & self.valid[i1])] = 0.0
        nearest = np.minimum(np.rint(src).astype(np.int64), self.num_frames - 1)
        return replace(self, positions=pos, confidence=conf, fps=float(fps), labels=dict(self.labels),
                       frame_labels={k: v[nearest] for k, v in self.frame_labels.items()})

    def transformed(self, matrix: np.ndarray, scale: float = 1.0, unit: str | None = None) -> Points:
        """Change of axes and units: ``positions @ matrix.T * scale``.

        matrix: ``[D, D]`` orthonormal; for 3D a proper rotation (optiq's world stays right-handed), for 2D a
        rotation or a flip. scale: positive, new units per old unit (0.001 for mm -> m). unit: the new unit's
        name (unchanged when omitted)."""
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (self.dim, self.dim) or not np.allclose(m @ m.T, np.eye(self.dim), atol=1e-9):
            raise OptiqError(f"points {self.name!r}: axis change must be an orthonormal [{self.dim}, {self.dim}] matrix")
        if self.dim == 3 and np.linalg.det(m) < 0:
            raise OptiqError(f"points {self.name!r}: a 3D axis change must be a proper rotation (det +1)")
        if not np.isfinite(scale) or scale <= 0:
            raise OptiqError(f"points {self.name!r}: scale must be positive, got {scale}")
        return replace(self, positions=(self.positions @ m.T) * scale, confidence=self.confidence,
                       unit=unit or self.unit, labels=dict(self.labels), frame_labels=dict(self.frame_labels))

    def with_labels(self, labels: Mapping[str, str] | None = None,
                    frame_labels: Mapping[str, np.ndarray] | None = None) -> Points:
        """A copy with labels and frame labels added (existing keys replaced)."""
        return replace(self, labels={**self.labels, **(labels or {})},
                       frame_labels={**self.frame_labels, **{k: np.asarray(v) for k, v in (frame_labels or {}).items()}})


def load_points(path: str | os.PathLike, loader: str | None = None, **options: Any) -> list[Points]:
    """Read every take of a marker or keypoint file (C3D, ...) as Points.

    path: the file. loader: a registered loader name or ``"module:attr"``; by default chosen by suffix and
    content. options: passed to the loader (``unit=``, ``up=`` for C3D); an option it does not take is an error.
    Returns 3D points in metres, Z up (2D points in pixels).
    """
    from .io import check_input_file, check_loader_options, folder_loader, loader_for, loader_function

    # A folder is one recording when a loader reads it so (OpenPose JSON: one file per frame).
    path = Path(path)
    cap = folder_loader(path, loader) if path.is_dir() else loader_for(check_input_file(path), loader)
    function = loader_function(cap, path)
    check_loader_options(cap, function, options, path)
    out = function(path, **options)
    out = [out] if isinstance(out, Points) else out
    if not isinstance(out, (list, tuple)) or not all(isinstance(p, Points) for p in out):
        raise PluginError(f"loader {cap.name!r} does not read points (it returned {type(out).__name__}); "
                          f"use optiq.load for motion files", path)
    if not out:
        raise OptiqError("file holds no points", path)
    return list(out)
