"""Training data: clips -> normalised feature windows, with splits that keep held-out takes held out.

The flow is one way: a dataset (Parquet/HDF5, or motion files converted on the fly) -> ``open_source`` ->
``Split`` (clip names per side) -> ``FeatureStore`` (every clip featurized once into a float32 memory map,
``[N_frames, F]``) -> ``WindowSampler`` (random windows as tensors). Memory stays bounded: building the store
holds one clip at a time, and training reads only the windows it samples from the map (the OS pages the rest in
and out), as nanoGPT reads its token memmap.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from optiq import Clip, DatasetError, OptiqError
from optiq.atomic import atomic_path

#: Bandai-Namco take names: ``dataset-1_<content>_<style>_<take>`` (content may hold dashes: ``walk-back``).
BANDAI_NAME = re.compile(r"^dataset-\d+_(?P<content>[a-z0-9-]+)_(?P<style>[a-z0-9-]+)_(?P<take>\d+)(_mirror)?$")
MIRROR_SUFFIX = "_mirror"


# --- labels --------------------------------------------------------------------------------------------------
def bandai_labels(name: str) -> dict[str, str]:
    """``{"content": ..., "style": ...}`` from a Bandai-Namco take name (``dataset-1_walk-back_happy_002``),
    or ``{}`` for any other name. Used when a clip's labels are read (``clip_labels``), so that datasets
    converted without labels still carry them."""
    m = BANDAI_NAME.match(name)
    return {"content": m["content"], "style": m["style"]} if m else {}


def clip_labels(name: str, labels: Mapping[str, str]) -> dict[str, str]:
    """The labels a clip trains with: labels derived from its name (Bandai takes), then its stored labels
    (stored ones win)."""
    return {**bandai_labels(name), **labels}


def original_name(name: str) -> str:
    """The take a clip comes from: ``walk_mirror`` -> ``walk`` (a mirror goes to its original's side)."""
    return name[: -len(MIRROR_SUFFIX)] if name.endswith(MIRROR_SUFFIX) else name


# --- sources -------------------------------------------------------------------------------------------------
@dataclass
class Source:
    """Clips to train or evaluate on: a dataset opened for reading.

    path: the dataset file. dataset: the open ``optiq.datasets.Dataset``. names: clip names in storage order.
    labels: clip name -> labels (``clip_labels``). key: identifies the content (path, size, modification time)
    for the feature cache.
    """

    path: Path
    dataset: Any
    names: list[str]
    labels: dict[str, dict[str, str]]
    key: str

    @property
    def skeleton(self):
        return self.dataset.skeleton

    def fps(self, name: str) -> float:
        return float(self.dataset.info(name).fps)

    def num_frames(self, name: str) -> int:
        return int(self.dataset.info(name).num_frames)

    def read_clip(self, name: str) -> Clip:
        """The whole clip (float64), with its training labels."""
        clip = self.dataset.read_clip(name)
        return clip.with_labels(self.labels[name])

    def close(self) -> None:
        self.dataset.close()


DATASET_SUFFIXES = (".parquet", ".h5", ".hdf5")


def open_source(data: str | os.PathLike | Sequence[str | os.PathLike], *, cache_dir: str | os.PathLike | None = None,
                progress: bool = False) -> Source:
    """Open ``data``: a dataset file, or motion files / folders / globs (converted once into a Parquet dataset
    in ``cache_dir``, reused while the files are unchanged)."""
    from optiq import open_dataset

    items = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    if not items:
        raise OptiqError("no --data given: expected a dataset (.parquet, .h5) or motion files")
    datasets = [str(i).lower().endswith(DATASET_SUFFIXES) for i in items]
    if len(items) == 1 and datasets[0]:
        path = Path(items[0])
    elif all(datasets):
        path = _merged([Path(i) for i in items], cache_dir)
    elif any(datasets):
        raise OptiqError("--data mixes datasets and motion files; convert the files into a dataset first "
                         "(optiq data convert), then give the datasets")
    else:
        path = _converted(items, cache_dir, progress)
    ds = open_dataset(path)
    if not hasattr(ds, "read_clip"):
        ds.close()
        raise DatasetError("is a points dataset (markers); models train on skeleton datasets", path)
    names = list(ds.clip_names)
    labels = {i.name: clip_labels(i.name, i.labels) for i in ds.clips}
    return Source(path, ds, names, labels, _file_key([path]))


def _file_key(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = Path(p).stat()
        h.update(f"{Path(p).resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def default_cache_dir() -> Path:
    """``$OPTIQ_CACHE`` or ``~/.cache/optiq``."""
    return Path(os.environ.get("OPTIQ_CACHE") or Path.home() / ".cache" / "optiq")


def _merged(paths: Sequence[Path], cache_dir) -> Path:
    """Several datasets of one skeleton topology as one Parquet dataset in the cache (made once, reused while the
    files are unchanged); the same clip name in two of them is an error naming both files."""
    from optiq import open_dataset, write_dataset

    for p in paths:
        if not p.is_file():
            raise DatasetError("no such dataset", p)
    cache = Path(cache_dir or default_cache_dir()) / "datasets"
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / f"merged_{_file_key(paths)}.parquet"
    if out.exists():
        return out
    clips, seen = [], {}
    for p in paths:
        with open_dataset(p) as ds:
            for name in ds.clip_names:
                if name in seen:
                    raise DatasetError(f"clip {name!r} is also in {seen[name]}: clip names must differ across "
                                       "the datasets given", p)
                seen[name] = p
                clips.append(ds.read_clip(name))
    write_dataset(out, clips)  # SkeletonMismatchError names the clip whose skeleton differs
    return out


def _converted(items: Sequence[str | os.PathLike], cache_dir, progress: bool) -> Path:
    from optiq.convert import convert, expand_inputs

    files = expand_inputs(items)
    cache = Path(cache_dir or default_cache_dir()) / "datasets"
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / f"{_file_key(files)}.parquet"
    if not out.exists():
        convert(files, out, progress=progress)
    return out


# --- splits --------------------------------------------------------------------------------------------------
@dataclass
class Split:
    """Clip names on each side: ``train``, ``val`` (early stopping), ``test`` (never seen in training).

    how: what made it (``clip``, ``label:KEY``, ``regex:PATTERN``), seed and test_ratio, kept for the record.
    """

    train: list[str]
    val: list[str]
    test: list[str]
    how: str = "clip"
    seed: int = 0
    test_ratio: float = 0.15

    def side(self, name: str) -> list[str]:
        """The clip names of ``name``: train, val, test, or all (every side)."""
        if name == "all":
            return [*self.train, *self.val, *self.test]
        if name not in ("train", "val", "test"):
            raise OptiqError(f"unknown split {name!r}; expected train, val, test or all")
        return list(getattr(self, name))

    def to_json(self) -> dict[str, Any]:
        return {"train": list(self.train), "val": list(self.val), "test": list(self.test), "how": self.how,
                "seed": self.seed, "test_ratio": self.test_ratio}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Split:
        return cls([str(n) for n in d["train"]], [str(n) for n in d["val"]], [str(n) for n in d["test"]],
                   str(d.get("how", "clip")), int(d.get("seed", 0)), float(d.get("test_ratio", 0.15)))

    def write(self, path: str | os.PathLike) -> Path:
        """Write the split as JSON (atomically)."""
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        return Path(path)


def make_split(names: Sequence[str], labels: Mapping[str, Mapping[str, str]], *, by: str = "clip",
               test_ratio: float = 0.15, val_ratio: float = 0.1, seed: int = 0) -> Split:
    """Split clips into train / val / test so that a take and its mirror (``*_mirror``) share a side.

    by: ``clip`` (random takes), ``label:KEY`` (stratified: ``test_ratio`` of the takes of every value of label
    KEY, at least one per value with two or more takes, so that held-out walks exist), or ``regex:PATTERN`` (the
    takes whose name matches PATTERN are the test side: held-out subjects). ``val`` is ``val_ratio`` of what is
    left for training, chosen the same way. Deterministic for a seed.
    """
    if not 0 <= test_ratio < 1 or not 0 <= val_ratio < 1:
        raise OptiqError(f"test and validation ratios must be in [0, 1), got {test_ratio} and {val_ratio}")
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(original_name(n), []).append(n)
    takes = sorted(groups)
    rng = np.random.default_rng(seed)
    if by.startswith("regex:"):
        try:
            pattern = re.compile(by[len("regex:"):])
        except re.error as exc:
            raise OptiqError(f"--split-by {by!r}: not a regular expression: {exc}") from None
        test = [t for t in takes if pattern.search(t)]
        held = set(test)
        rest = [t for t in takes if t not in held]
        val = _pick(rest, val_ratio, rng, None, labels)
    elif by == "clip" or by.startswith("label:"):
        key = by[len("label:"):] if by != "clip" else None
        if key is not None and not any(key in labels.get(n, {}) for n in names):
            known = sorted({k for n in names for k in labels.get(n, {})})
            raise OptiqError(f"--split-by {by!r}: no clip has label {key!r}; labels: {', '.join(known) or 'none'}")
        test = _pick(takes, test_ratio, rng, key, labels)
        held = set(test)
        rest = [t for t in takes if t not in held]
        val = _pick(rest, val_ratio, rng, key, labels)
    else:
        raise OptiqError(f"--split-by {by!r}: expected clip, label:KEY or regex:PATTERN")
    held = set(test) | set(val)
    train = [t for t in takes if t not in held]

    def expand(side: list[str]) -> list[str]:
        return [n for t in sorted(side) for n in sorted(groups[t])]

    return Split(expand(train), expand(val), expand(test), by, seed, test_ratio)


def _pick(takes: list[str], ratio: float, rng: np.random.Generator, key: str | None,
          labels: Mapping[str, Mapping[str, str]]) -> list[str]:
    """``ratio`` of ``takes`` at random; per value of label ``key`` when given (at least one of each value that
    has two or more takes, so that no value is all held out or never held out by rounding)."""
    if ratio <= 0 or not takes:
        return []
    strata: dict[str, list[str]] = {}
    for t in takes:
        strata.setdefault(labels.get(t, {}).get(key, "") if key else "", []).append(t)
    chosen = []
    for members in strata.values():
        k = int(round(ratio * len(members)))
        if key is not None and len(members) >= 2:
            k = max(k, 1)
        k = min(k, len(members) - 1)  # every value keeps a take to train on
        chosen += list(rng.choice(members, size=k, replace=False)) if k > 0 else []
    return sorted(chosen)


# --- the feature store ---------------------------------------------------------------------------------------
@dataclass
class FeatureStore:
    """Features of many clips in one float32 file ``[N, F]``, clip after clip.

    features: the file as a read-only memory map (``clip(name)`` -> a ``[T, F]`` view, for evaluation).
    Training reads through ``rows`` instead (``os.pread`` into a fresh array): the pages it reads stay in the OS
    page cache, not in the process, so the resident memory of a run does not grow with the corpus.
    names: clip names; offsets ``[C + 1]``: clip ``i`` is rows ``offsets[i]:offsets[i+1]``; fps and labels per clip.
    """

    features: np.ndarray
    names: list[str]
    offsets: np.ndarray
    fps: list[float]
    labels: list[dict[str, str]]
    path: Path | None = None
    frame_labels: dict[str, np.ndarray] = field(default_factory=dict)
    """name -> ``[N]`` per row: float32 for float labels (NaN where a clip lacks it), str otherwise ("" where
    a clip lacks it)."""
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {n: i for i, n in enumerate(self.names)}
        self._fd: int | None = None

    def rows(self, start: int, count: int) -> np.ndarray:
        """Rows ``[start, start + count)`` as a new ``[count, F]`` float32 array."""
        if self.path is None:
            return np.array(self.features[start:start + count])
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        width = self.dim * 4
        buf = os.pread(self._fd, count * width, start * width)
        return np.frombuffer(buf, dtype=np.float32).reshape(count, self.dim)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def clip(self, name: str) -> np.ndarray:
        """Features ``[T, F]`` of one clip (a view into the map)."""
        i = self.index[name]
        return self.features[self.offsets[i]:self.offsets[i + 1]]

    def clip_frame_labels(self, name: str) -> dict[str, np.ndarray]:
        """Frame labels ``name -> [T]`` of one clip (see ``frame_labels``)."""
        i = self.index[name]
        return {k: v[self.offsets[i]:self.offsets[i + 1]] for k, v in self.frame_labels.items()}

    def iter_clips(self, names: Sequence[str]) -> Iterator[np.ndarray]:
        """Features ``[T, F]`` of each clip of ``names`` in turn, read one clip at a time."""
        for n in names:
            i = self.index[n]
            yield self.rows(int(self.offsets[i]), int(self.offsets[i + 1] - self.offsets[i]))


def build_store(source: Source, spec: Any, *, cache_dir: str | os.PathLike | None = None,
                progress: bool = False) -> FeatureStore:
    """Featurize every clip of ``source`` once (``optiq.features.featurize``) into a cached float32 memory map,
    one clip in memory at a time; later runs on the unchanged dataset with the same spec reuse the cache."""
    from optiq.features import featurize

    cache = Path(cache_dir or default_cache_dir()) / "features"
    cache.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha256(f"{source.key}|{json.dumps(spec.to_json(), sort_keys=True)}".encode()).hexdigest()[:20]
    data_path, meta_path, labels_path = cache / f"{tag}.f32", cache / f"{tag}.json", cache / f"{tag}.labels.npz"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    if not (data_path.exists() and "frame_labels" in meta and (not meta["frame_labels"] or labels_path.exists())):
        lengths, dim, frame = [], None, []
        with atomic_path(data_path) as tmp, open(tmp, "wb") as fh:
            for name in _progress(source.names, progress, "features"):
                clip = source.read_clip(name)
                f = np.ascontiguousarray(featurize(clip, spec), dtype=np.float32)
                dim = f.shape[1]
                lengths.append(len(f))
                frame.append(clip.frame_labels)
                fh.write(f.tobytes())
        kinds, arrays = _stack_frame_labels(frame, lengths)
        if arrays:
            with atomic_path(labels_path) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        meta = {"lengths": lengths, "dim": dim, "frame_labels": kinds}
        with atomic_path(meta_path) as tmp:
            Path(tmp).write_text(json.dumps(meta), encoding="utf-8")
    offsets = np.concatenate(([0], np.cumsum(meta["lengths"]))).astype(np.int64)
    features = np.memmap(data_path, dtype=np.float32, mode="r", shape=(int(offsets[-1]), int(meta["dim"])))
    frame_labels = {}
    if meta["frame_labels"]:
        with np.load(labels_path, allow_pickle=False) as z:
            frame_labels = {k: z[k] for k in meta["frame_labels"]}
    return FeatureStore(features, list(source.names), offsets, [source.fps(n) for n in source.names],
                        [source.labels[n] for n in source.names], data_path, frame_labels)


def _stack_frame_labels(per_clip: Sequence[Mapping[str, np.ndarray]],
                        lengths: Sequence[int]) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Frame labels of all clips as one ``[N]`` array per name: ``float`` when every clip that has the label
    stores floats (float32, NaN where a clip lacks it), else ``category`` (strings, "" where a clip lacks it)."""
    names = sorted({k for d in per_clip for k in d})
    kinds, arrays = {}, {}
    for name in names:
        parts = [d.get(name) for d in per_clip]
        is_float = all(p is None or np.asarray(p).dtype.kind == "f" for p in parts)
        if is_float:
            filled = [np.full(n, np.nan, np.float32) if p is None else np.asarray(p, np.float32)
                      for p, n in zip(parts, lengths, strict=True)]
        else:
            filled = [np.full(n, "", dtype="U1") if p is None else np.asarray(p).astype(str)
                      for p, n in zip(parts, lengths, strict=True)]
        kinds[name] = "float" if is_float else "category"
        arrays[name] = np.concatenate(filled) if filled else np.zeros(0, np.float32)
    return kinds, arrays


def _progress(items: Sequence[str], on: bool, what: str):
    if not on:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=what, unit="clip", leave=False)


def residual_variance(store: FeatureStore, names: Sequence[str], normalizer: Any) -> np.ndarray:
    """Per-feature variance ``[F]`` of the frame-to-frame change ``x[t+1] - x[t]`` in normalised units over the
    clips ``names`` (streamed clip by clip): what ``loss_weights="auto"`` balances."""
    dim = store.dim
    s, s2, n = np.zeros(dim), np.zeros(dim), 0
    for x in store.iter_clips(names):
        d = np.diff(normalizer.normalize(np.asarray(x, dtype=np.float32)), axis=0).astype(np.float64)
        s += d.sum(0)
        s2 += (d * d).sum(0)
        n += len(d)
    if n == 0:
        return np.ones(dim)
    mean = s / n
    return np.maximum(s2 / n - mean * mean, 1e-12)


# --- windows -------------------------------------------------------------------------------------------------
class WindowSampler:
    """Random windows of ``length`` frames from the clips ``names`` of a store, as normalised tensors.

    A window's clip is drawn with probability proportional to its number of windows, its start uniformly, so
    every frame is equally likely. ``rng``: the numpy generator that decides (its state is saved for
    ``--resume``). Clips shorter than ``length`` are skipped (``skipped`` names them).
    """

    def __init__(self, store: FeatureStore, names: Sequence[str], length: int, normalizer: Any, vocab: Any,
                 rng: np.random.Generator):
        self.store, self.length, self.normalizer, self.rng = store, int(length), normalizer, rng
        all_lengths = store.lengths()
        lengths = np.array([all_lengths[store.index[n]] for n in names], dtype=np.int64)
        ok = lengths >= self.length
        self.skipped = [n for n, k in zip(names, ok, strict=True) if not k]
        self.names = [n for n, k in zip(names, ok, strict=True) if k]
        if not self.names:
            raise OptiqError(f"no clip has the {self.length} frames a training window needs "
                             f"({len(names)} clips, longest {int(lengths.max()) if len(lengths) else 0} frames)")
        self.rows = np.array([store.offsets[store.index[n]] for n in self.names], dtype=np.int64)
        counts = lengths[ok] - self.length + 1
        self.weights = counts / counts.sum()
        self.counts = counts
        self.cond = encode_labels(vocab, [store.labels[store.index[n]] for n in self.names])
        self.frame = encode_frame_labels(vocab, store)

    def sample(self, batch: int, length: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``x [B, L, F]`` float32 normalised features, ``cond``: label name -> ``[B]`` int64 value indices.
        length: shorter windows than the sampler's (their start is still drawn among the long ones)."""
        length = length or self.length
        c = self.rng.choice(len(self.names), size=batch, p=self.weights)
        start = self.rows[c] + (self.rng.random(batch) * self.counts[c]).astype(np.int64)
        x = np.stack([self.store.rows(int(s), length) for s in start])
        x = self.normalizer.normalize(x)
        cond = {k: v[c] for k, v in self.cond.items() if k not in self.frame}
        rows = start[:, None] + np.arange(length)[None]
        cond.update({k: v[rows] for k, v in self.frame.items()})
        return np.asarray(x, dtype=np.float32), cond


def encode_labels(vocab: Any, labels: Sequence[Mapping[str, str]]) -> dict[str, np.ndarray]:
    """Label value indices ``name -> [N]`` int64 for clips with ``labels``, for every label of ``vocab``. A clip
    without a label, or with a value no training clip had (a held-out style), gets 0: unconditioned, as the
    model learnt with label dropout. (What a user asks for is checked strictly: ``vocab.encode``.)"""
    rows = [vocab.encode({k: v for k, v in lab.items() if v in vocab.labels.get(k, ())}) for lab in labels]
    return {k: np.array([r[k] for r in rows], dtype=np.int64) for k in vocab.names}


def encode_frame_labels(vocab: Any, store: FeatureStore) -> dict[str, np.ndarray]:
    """The model's frame labels over every row of ``store``: name -> ``[N]`` int64 value indices (categorical;
    0 where unknown) or float32 values (NaN where unknown). A label the store lacks is unknown throughout."""
    n = int(store.offsets[-1])
    out = {}
    for name in vocab.frame:
        raw = store.frame_labels.get(name)
        if name in vocab.floats:
            out[name] = np.full(n, np.nan, np.float32) if raw is None or raw.dtype.kind != "f" else \
                np.asarray(raw, np.float32)
            continue
        index = np.zeros(n, np.int64)
        if raw is not None:
            values, inverse = np.unique(raw.astype(str), return_inverse=True)
            known = vocab._index.get(name, {})
            index = np.array([known.get(v, 0) for v in values], np.int64)[inverse]
        out[name] = index
    return out


def build_vocab(labels: Iterable[Mapping[str, str]], keys: Sequence[str], frame_keys: Sequence[str] = (),
                store: FeatureStore | None = None, names: Sequence[str] = ()) -> Any:
    """The label vocabulary of clip labels ``keys`` over the training clips' ``labels`` and of frame labels
    ``frame_keys`` over the frames of the training clips ``names`` of ``store`` (sorted values per key; float
    frame labels keep their values, and are ``cyclic`` when they all lie in [0, 1) and wrap, as gait phase
    does). A key no clip carries is an error naming the labels the data has."""
    from .nets.conditioning import LabelVocab

    labels = list(labels)
    both = sorted(set(keys) & set(frame_keys))
    if both:
        raise OptiqError(f"label {both[0]!r} is asked for as a clip label and as a frame label; name it once")
    missing = [k for k in keys if not any(k in lab for lab in labels)]
    if missing:
        known = sorted({k for lab in labels for k in lab})
        raise OptiqError(f"asked to condition on label {', '.join(map(repr, missing))}, but no training clip has "
                         f"it; labels in the data: {', '.join(known) or 'none'}")
    vocab = LabelVocab.from_label_dicts(labels, list(keys))
    if not frame_keys:
        return vocab
    present = store.frame_labels if store is not None else {}
    absent = [k for k in frame_keys if k not in present]
    if absent:
        raise OptiqError(f"asked to condition on frame label {absent[0]!r}, but the data has no such frame label; "
                         f"frame labels in the data: {', '.join(sorted(present)) or 'none'} (optiq data label "
                         "--auto phase|contacts writes some)")
    rows = np.concatenate([np.arange(store.offsets[store.index[n]], store.offsets[store.index[n] + 1])
                           for n in names]) if names else np.zeros(0, np.int64)
    categories, floats = dict(vocab.labels), {}
    for k in frame_keys:
        v = present[k][rows]
        if v.dtype.kind == "f":
            v = v[np.isfinite(v)]
            wraps = bool(len(v) > 1 and v.min() >= 0 and v.max() < 1 and (np.diff(v) < -0.5).any())
            floats[k] = {"cyclic": wraps}
        else:
            categories[k] = sorted(set(np.unique(v).tolist()) - {""})
    return LabelVocab(categories, floats=floats, frame=frame_keys)
