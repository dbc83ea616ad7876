"""What the viz commands draw: clips from a dataset or a motion file, and an optional prediction checked against
them."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import optiq
from optiq import Clip, OptiqError, SkeletonMismatchError
from optiq.datasets.base import check_topology

DATASET_SUFFIXES = (".parquet", ".h5", ".hdf5")


def is_dataset(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a dataset (by suffix) rather than a motion file."""
    return Path(path).suffix.lower() in DATASET_SUFFIXES


def load_clips(source: str | os.PathLike, names: Sequence[str] = (), *,
               note: Callable[[str], None] | None = None) -> list[Clip]:
    """The clips ``names`` of ``source``, in that order: a dataset (any registered format) or a motion file (any
    loader; a file may hold several clips, e.g. the stacks of an FBX). No names: the first clip, and when
    ``source`` holds several, ``note`` is called with a sentence saying which one is drawn.

    An unknown name is an OptiqError listing the clips that ``source`` holds; an empty clip is refused.
    """
    source = Path(source)
    if not source.exists():
        raise OptiqError("file does not exist", source)
    return [_non_empty(c, source) for c in _read(source, lambda known: _wanted(names, known, source, note))]


def _read(source: Path, choose: Callable[[list[str]], list[str]]) -> list[Clip]:
    """The clips that ``choose`` picks, in its order, from the names of the clips ``source`` holds; a dataset
    reads only the clips picked."""
    if is_dataset(source):
        with optiq.open_dataset(source) as ds:
            return [ds.read_clip(n) for n in choose(list(ds.clip_names))]
    clips = optiq.load(source)
    known = [c.name for c in clips]
    return [clips[known.index(n)] for n in choose(known)]


def _wanted(names: Sequence[str], known: list[str], source: Path, note: Callable[[str], None] | None) -> list[str]:
    """The clip names to read: ``names`` checked against ``known``, or the first known clip."""
    what = "the dataset" if is_dataset(source) else "the file"
    if not known:
        raise OptiqError(f"{what} holds no clips", source)
    for name in names:
        if name not in known:
            shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
            raise OptiqError(f"unknown clip {name!r}; {what} holds: {shown}", source)
    if not names and len(known) > 1 and note is not None:
        note(f"{source} holds {len(known)} clips; drawing the first, {known[0]!r} (choose one with --clip)")
    return list(names) or known[:1]


def load_prediction(path: str | os.PathLike, reference: Clip) -> Clip:
    """A prediction of ``reference``: its clip of the same name, else its only clip (a dataset) or its first clip
    (a motion file, any loader). Its skeleton topology and frame count must equal the reference's; the same
    joints listed in another order (as another exporter writes them) are put in the reference's order."""
    path = Path(path)
    if not path.exists():
        raise OptiqError("prediction file does not exist", path)

    def choose(names: list[str]) -> list[str]:
        if reference.name in names:
            return [reference.name]
        if len(names) == 1 or not is_dataset(path):
            return names[:1]
        raise OptiqError(f"no clip {reference.name!r} among the prediction's {len(names)} clips", path)

    [pred] = _read(path, choose)
    pred = same_joint_order(_non_empty(pred, path), reference)
    check_prediction(pred, reference, path)
    return pred


def same_joint_order(clip: Clip, reference: Clip) -> Clip:
    """``clip`` with its joints in ``reference``'s order when it has the same joint names in another order;
    otherwise unchanged (``check_prediction`` then says what differs)."""
    names, ref = clip.skeleton.names, reference.skeleton.names
    if tuple(names) == tuple(ref) or sorted(names) != sorted(ref) or names[0] != ref[0]:
        return clip
    try:
        return clip.with_joint_order(ref)
    except OptiqError:
        return clip


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
