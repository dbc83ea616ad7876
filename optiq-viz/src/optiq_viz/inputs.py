"""What the viz commands draw: clips from a dataset, and an optional prediction checked against them."""

from __future__ import annotations

import os
from pathlib import Path

from optiq import Clip, OptiqError, SkeletonMismatchError
from optiq.datasets.base import check_topology

DATASET_SUFFIXES = (".parquet", ".h5", ".hdf5")


def load_dataset_clips(dataset: str | os.PathLike, names: list[str]) -> list[Clip]:
    """The clips ``names`` of ``dataset`` (any registered dataset format), in that order.

    An unknown name is an OptiqError listing the dataset's clips; an empty clip is refused.
    """
    import optiq

    if not names:
        raise OptiqError("name at least one clip with --clip", dataset)
    with optiq.open_dataset(dataset) as ds:
        known = list(ds.clip_names)
        clips = []
        for name in names:
            if name not in known:
                shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
                raise OptiqError(f"unknown clip {name!r}; the dataset holds: {shown}", dataset)
            clips.append(_non_empty(ds.read_clip(name), dataset))
    return clips


def load_prediction(path: str | os.PathLike, reference: Clip) -> Clip:
    """A prediction of ``reference``: a motion file (any loader) or a dataset holding a clip of the same name
    (or exactly one clip). Its skeleton topology and frame count must equal the reference's."""
    import optiq

    path = Path(path)
    if not path.exists():
        raise OptiqError("prediction file does not exist", path)
    if path.suffix.lower() in DATASET_SUFFIXES:
        with optiq.open_dataset(path) as ds:
            names = list(ds.clip_names)
            if reference.name in names:
                pred = ds.read_clip(reference.name)
            elif len(names) == 1:
                pred = ds.read_clip(names[0])
            else:
                raise OptiqError(f"no clip {reference.name!r} among the prediction's {len(names)} clips", path)
    else:
        pred = optiq.load_clip(path)
    pred = _non_empty(pred, path)
    check_prediction(pred, reference, path)
    return pred


def check_prediction(pred: Clip, reference: Clip, path: str | os.PathLike | None = None) -> None:
    """Raise SkeletonMismatchError (naming ``path`` when given) unless ``pred`` has the reference's skeleton
    topology and frame count."""
    check_topology(pred.skeleton, reference.skeleton, f"prediction {pred.name!r}", path,
                   f"clip {reference.name!r}")
    if pred.num_frames != reference.num_frames:
        raise SkeletonMismatchError(
            f"prediction {pred.name!r} has {pred.num_frames} frames, clip {reference.name!r} has "
            f"{reference.num_frames}", path)


def _non_empty(clip: Clip, source: str | os.PathLike) -> Clip:
    if clip.num_frames == 0:
        raise OptiqError(f"clip {clip.name!r} is empty (0 frames)", source)
    return clip
