"""Motion files -> dataset: expand inputs, survey every file, agree on one unit and up axis, then load and write.

The conversion reads files in a process pool and never holds more than a few large files' clips:
1. a survey records what each file holds (clip names, frames, skeleton topology, frame-label dtypes) and what its
   loader guessed (the ``length_unit`` and ``up`` clip labels); it keeps the clips of small files (up to
   KEEP_BYTES of frames each, KEEP_TOTAL_BYTES in all) and drops the others;
2. one decision is made for the whole input: the skeleton topology, and per dialect (one loader and one topology)
   the unit and up axis that most frames were guessed in; files guessed otherwise are re-loaded with that unit and
   up axis (reported);
3. each clip is streamed to the dataset writer: kept clips as they are, the other files loaded a second time.
Smoothing and resampling happen here, at conversion time, so a dataset states exactly what a model is trained
on. A bad file stops the run before anything is written, unless ``skip_bad`` (then it is reported and left out).
The dataset is written atomically: a failed or killed run leaves no output file.
"""

from __future__ import annotations

import contextlib
import glob
import inspect
import os
import stat
import warnings
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path, check_output_path
from .clip import Clip
from .datasets import check_topology, format_for, merged_label_dtype
from .datasets.base import ClipInfo
from .errors import DatasetError, OptiqError, OptiqWarning
from .skeleton import Skeleton

# Clip label written by loaders -> the loader option that sets it: what one conversion agrees on.
CONSENSUS = {"length_unit": "unit", "up": "up"}
# The survey keeps a file's clips, rather than reading the file again to write it, when their frames take at most
# KEEP_BYTES (a CMU BVH take of a few thousand frames: about 2 MB) and the clips kept so far at most
# KEEP_TOTAL_BYTES: a corpus of small files is read once, while memory still holds a few large files at a time.
KEEP_BYTES = 16 * 2**20
KEEP_TOTAL_BYTES = 64 * 2**20


@dataclass(frozen=True)
class ConvertOptions:
    """What happens to every clip: loader options, then the joints kept (``root``, ``joints``, ``rename``),
    then scaling, then smoothing (Hz), then resampling (fps), then labels.

    unit, up: the files' length unit and up axis (default: guessed per file, then agreed per dialect).
    options: more loader options (``{"character": "x.txt"}``), checked against the loader's signature.
    root: keep this joint and its descendants, with the dropped joints' transforms folded into it.
    joints: keep only these joints (a connected subset, transforms folded). rename: ``{old: new}`` joint names.
    scale multiplies every length after loading (for files whose declared unit is wrong, such as the CMU
    FBX exports that hold CMU units: scale 0.0564444)."""

    loader: str | None = None
    unit: str | None = None
    up: str | None = None
    scale: float | None = None
    drop_tpose: bool = False
    smooth: float | None = None
    fps: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    root: str | None = None
    joints: Sequence[str] | None = None
    rename: Mapping[str, str] = field(default_factory=dict)


@dataclass
class ConvertResult:
    """The written dataset, its clips (as ClipInfo: the frames are on disk, not in memory), the input files,
    the files left out with their error, and the files re-loaded with the agreed ``{option: value}``."""

    path: Path
    clips: list[ClipInfo]
    files: list[Path]
    skipped: list[tuple[Path, str]]
    reloaded: dict[Path, dict[str, str]] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return sum(c.num_frames for c in self.clips)


def expand_inputs(inputs: Sequence[str | os.PathLike], loader: str | None = None, *,
                  recursive: bool = False) -> list[Path]:
    """Files named, files in named folders (those a loader reads, by suffix; subfolders too when ``recursive``;
    a folder that a loader reads as one recording is itself one input)
    and glob matches (judged like a folder's files: ``take_*`` passes over the ``take_*.json`` label files beside
    the motions), sorted within each input, each file once. A named FIFO, device or socket is refused."""
    from .io import check_input_file, reads_folder

    suffixes = _readable_suffixes(loader)
    out: dict[Path, None] = {}
    for item in inputs:
        p = Path(item)
        if p.is_dir() and reads_folder(p, loader):
            found = [p]  # one recording, one file per frame (OpenPose JSON): one input, not one per file
        elif p.is_dir():
            candidates = p.rglob("*") if recursive else p.iterdir()
            found = sorted(f for f in candidates if _is_regular(f) and _is_motion_file(f, suffixes, loader))
            if not found:
                where = "folder or its subfolders" if recursive else "folder"
                raise OptiqError(f"no motion files in {where} (looked for {', '.join(sorted(suffixes))})", p)
        elif os.path.lexists(p):
            found = [check_input_file(p)]
        else:
            matches = [Path(m) for m in glob.glob(str(item), recursive=True)]
            if not matches:
                raise OptiqError("no such file or folder, and no file matches it as a pattern", str(item))
            found = sorted(f for f in matches if _is_regular(f) and _is_motion_file(f, suffixes, loader))
            if not found:
                raise OptiqError(f"no motion file matches the pattern ({len(matches)} other files do; looked for "
                                 f"{', '.join(sorted(suffixes))})", str(item))
        out.update(dict.fromkeys(found))
    return list(out)


def _is_regular(path: Path) -> bool:
    """A regular file (or a link to one): found files that are FIFOs, devices or sockets are passed over."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _is_motion_file(path: Path, suffixes: set[str], loader: str | None) -> bool:
    """Whether a file found in a folder is motion: a loader claims its suffix and, when every such loader can
    sniff content, one of them recognises it (so a DeepMimic character file or a trajectory's ``.spec.json``
    beside the motions is passed over rather than failing the folder)."""
    from .io import _head, _match_suffix
    from .registry import resolve_target

    if loader:
        return any("".join(path.suffixes[-k:]).lower() in suffixes for k in range(1, len(path.suffixes) + 1))
    _, caps = _match_suffix(path, lambda c: True)
    if not caps:
        return False
    if any(not c.meta.get("sniff") for c in caps):
        return True
    head = _head(path)
    return any(resolve_target(c.meta["sniff"])(path, head) for c in caps)


def _readable_suffixes(loader: str | None) -> set[str]:
    from .plugins import registry

    reg = registry("loader")
    caps = [reg.get(loader)] if loader else list(reg)
    return {s for c in caps for s in c.meta.get("suffixes", ())}


def load_file(path: Path, options: ConvertOptions, **overrides: Any) -> list[Clip]:
    """The clips of one file after the conversion steps of ``options``. overrides: loader options that win
    over those of ``options`` (the unit and up axis a conversion agreed on)."""
    return [_steps(clip, options) for clip in _read(path, options, overrides)]


def _read(path: Path, options: ConvertOptions, overrides: Mapping[str, Any]) -> list[Clip]:
    """The clips of ``path`` as its loader gives them (before the conversion steps)."""
    from .io import load

    return load(path, options.loader, **{**_loader_options(options), **overrides})


def _loader_options(options: ConvertOptions) -> dict[str, Any]:
    """The options every file's loader is called with: ``options.options``, ``unit`` and ``up``, ``drop_tpose``."""
    out: dict[str, Any] = {"drop_tpose": options.drop_tpose, **options.options}
    if options.unit:
        out["unit"] = options.unit
    if options.up:
        out["up"] = options.up
    return out


def _guessed_options(function: Callable, options: ConvertOptions) -> frozenset[str]:
    """The options of CONSENSUS that ``function`` (a load function) guesses a file's value of: those whose value,
    given or else its default, is ``"auto"``. A value the file states (an FBX unit scale, an ASF ``length``: the
    default is not "auto") is the file's own and is never overridden by what other files hold."""
    given = _loader_options(options)
    params = inspect.signature(function).parameters
    default = {o: params[o].default for o in CONSENSUS.values() if o in params}
    return frozenset(o for o in CONSENSUS.values()
                     if str(given.get(o, default.get(o))).strip().lower() == "auto")


def _steps(clip: Clip, options: ConvertOptions) -> Clip:
    """One loaded clip after the joint selection, scaling, smoothing, resampling and labels of ``options``."""
    if options.root:
        clip = clip.rerooted(options.root)
    if options.joints:
        clip = clip.subset(options.joints)
    if options.rename:
        clip = clip.renamed(options.rename)
    if options.scale is not None and options.scale != 1.0:
        from .axes import scaled_unit

        # length_unit keeps saying what one unit of the source file now is in metres (docs/loaders.md).
        unit = scaled_unit(clip.labels.get("length_unit"), options.scale)
        clip = clip.transformed(np.eye(3), options.scale).with_labels({"length_unit": unit})
    if options.smooth:
        clip = clip.smooth(options.smooth)
    if options.fps:
        clip = clip.resample(options.fps)
    return clip.with_labels(dict(options.labels)) if options.labels else clip


@dataclass
class _Survey:
    """What a file holds: per clip its name, frames, topology, the loader's ``length_unit`` and ``up`` labels,
    frame-label dtypes; the loader and the options of CONSENSUS it guessed (``_guessed_options``); the clips
    themselves (before resampling) when they are small enough to keep (KEEP_BYTES), else None."""

    loader: str
    guessed_options: frozenset[str]
    names: list[str]
    frames: list[int]
    skeleton: Skeleton
    guesses: dict[str, str]
    frame_labels: dict[str, np.dtype]
    local_translations: bool
    notices: list[str] = field(default_factory=list)
    clips: list[Clip] | None = None

    @property
    def topology(self) -> frozenset[tuple[str, str | None]]:
        """The joint tree as (joint, parent) pairs: the same for two orders of the same joints."""
        sk = self.skeleton
        return frozenset((n, sk.names[p] if p >= 0 else None) for n, p in zip(sk.names, sk.parents, strict=True))

    def describe(self) -> str:
        return f"root {self.skeleton.names[0]!r}, {self.skeleton.num_joints} joints"


def _survey(job: tuple[Path, ConvertOptions]) -> tuple[_Survey | None, str | None]:
    """Worker: the survey of a file, or the one-line error of a file that cannot be read."""
    from .io import loader_for, loader_function

    path, options = job

    def survey() -> _Survey:
        cap = loader_for(path, options.loader)
        with warnings.catch_warnings(record=True) as caught:
            # Recorded here and reported by the parent (through on_warning), so a warning raised in a worker
            # process reaches the user as one line like any other notice.
            warnings.simplefilter("always")
            raw = _read(path, options, {})
        guesses = {k: raw[0].labels[k] for k in CONSENSUS if k in raw[0].labels}
        # Resampling never fails and keeps the names, topology and label types the survey is for: skip it here.
        clips = [_steps(c, replace(options, fps=None)) for c in raw]
        first = clips[0]
        for c in clips[1:]:
            check_topology(c.skeleton, first.skeleton, f"clip {c.name!r}", path, f"the first clip {first.name!r}")
        dtypes: dict[str, list[np.dtype]] = {}
        for c in clips:
            for k, v in c.frame_labels.items():
                dtypes.setdefault(k, []).append(v.dtype)
        return _Survey(cap.name, _guessed_options(loader_function(cap, path), options), [c.name for c in clips],
                       [c.num_frames for c in clips], first.skeleton, guesses, _merged_dtypes(dtypes, path),
                       any(c.local_translations is not None for c in clips), _messages(caught),
                       clips if _frame_bytes(clips) <= KEEP_BYTES else None)

    return _caught(path, survey)


def _frame_bytes(clips: Sequence[Clip]) -> int:
    """The memory the per-frame arrays of ``clips`` take (rotations, translations, frame labels)."""
    return sum(c.rotations.nbytes + c.root_translation.nbytes
               + (0 if c.local_translations is None else c.local_translations.nbytes)
               + sum(v.nbytes for v in c.frame_labels.values()) for c in clips)


def _messages(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    """Each distinct warning once, in order, as one line (a category other than OptiqWarning is named, as the
    CLI does for warnings raised in its own process)."""
    def line(w: warnings.WarningMessage) -> str:
        text = " ".join(str(w.message).split())
        return text if issubclass(w.category, OptiqWarning) else f"{w.category.__name__}: {text}"

    return list(dict.fromkeys(line(w) for w in caught))


def _load(job: tuple[Path, ConvertOptions, dict[str, str]]) -> tuple[list[Clip] | None, str | None]:
    """Worker: the clips of a file for the dataset (with the agreed loader options), or its one-line error."""
    path, options, overrides = job
    with warnings.catch_warnings():
        # The survey loaded this file the same way (or with the unit and up axis it was reported for) and its
        # warnings were shown then: once per file is enough.
        warnings.simplefilter("ignore")
        return _caught(path, lambda: load_file(path, options, **overrides))


def _caught(path: Path, work: Callable[[], Any]) -> tuple[Any, str | None]:
    """``(work(), None)``, or ``(None, message)`` for an OptiqError (other errors are bugs and propagate)."""
    try:
        return work(), None
    except OptiqError as exc:
        msg = str(exc)
        return None, msg if str(path) in msg else f"{path}: {msg}"


def _merged_dtypes(dtypes: Mapping[str, Sequence[np.dtype]], where: Any) -> dict[str, np.dtype]:
    out = {}
    for name, dts in dtypes.items():
        merged = merged_label_dtype(list(dts))
        if merged is None:
            raise DatasetError(f"frame label {name!r} is text in some clips and numbers in others", where)
        out[name] = merged
    return out


def convert(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, options: ConvertOptions | None = None, *,
            velocities: bool = False, skip_bad: bool = False, jobs: int | None = None, progress: bool = False,
            on_skip: Callable[[Path, str], None] | None = None, format: str | None = None,
            recursive: bool = False, on_warning: Callable[[str], None] | None = None) -> ConvertResult:
    """Convert motion files into one dataset at ``out`` (format by suffix unless named).

    inputs: files, folders (subfolders too when ``recursive``) and glob patterns. velocities: store world
    velocities. skip_bad: leave out files that cannot be read, and when the files hold several skeleton
    topologies keep the one most files have (``on_skip(path, message)`` is called for each file left out, and
    the topologies found are reported through ``on_warning``); otherwise the first such file raises OptiqError
    and nothing is written. jobs: worker processes (default: one per CPU, at most one per file; 1 loads in this
    process). progress: tqdm bars on stderr. on_warning: called with each one-line notice (files whose unit or
    up axis was guessed unlike the rest of their dialect); default ``warnings.warn``.
    """
    options = options or ConvertOptions()
    out = check_output_path(out)
    fmt = format_for(out, format)
    files = expand_inputs(inputs, options.loader, recursive=recursive)
    check_output_path(out, inputs=files)  # the output may not replace one of the files it is made from
    # Marker files (C3D: optiq.Points, no skeleton) make a points dataset; see optiq.points_convert.
    from .points_convert import convert_points, points_inputs

    if points_inputs(files, options.loader):
        return convert_points(files, out, fmt, options, velocities=velocities, skip_bad=skip_bad, on_skip=on_skip)
    warn = on_warning or (lambda message: warnings.warn(message, OptiqWarning, stacklevel=3))
    jobs = min(jobs or os.cpu_count() or 1, len(files))
    skipped: list[tuple[Path, str]] = []

    def skip(path: Path, error: str) -> None:
        if not skip_bad:
            raise OptiqError(error)
        skipped.append((path, error))
        if on_skip:
            on_skip(path, error)

    with _Pool(jobs) as pool:
        surveys: dict[Path, _Survey] = {}
        kept_bytes = 0
        for path, (survey, error) in zip(files, pool.map(_survey, [(f, options) for f in files], progress,
                                                          "reading"), strict=False):
            if error is None:
                surveys[path] = survey
                for notice in survey.notices:
                    warn(notice)
                if survey.clips is not None:
                    kept_bytes += _frame_bytes(survey.clips)
                    if kept_bytes > KEEP_TOTAL_BYTES:
                        survey.clips = None  # read again when written
            else:
                skip(path, error)
        _keep_one_topology(surveys, skip, warn)
        _check_names(surveys, skip)
        if not surveys:
            raise OptiqError(f"no clips to write: all {len(files)} input files were skipped", out)
        reloaded = _agree(surveys, warn)
        for path in reloaded:
            surveys[path].clips = None  # read with other options than the agreed ones
        paths = list(surveys)
        again = [(f, options, reloaded.get(f, {})) for f in paths if surveys[f].clips is None]
        loaded = _in_order(paths, surveys, options, pool.map(_load, again, progress, "writing"))
        infos = _write(out, fmt, surveys, loaded, paths, velocities)
    return ConvertResult(out, infos, files, skipped, reloaded)


def _in_order(paths: Sequence[Path], surveys: Mapping[Path, _Survey], options: ConvertOptions,
              loaded: Iterator) -> Iterator[tuple[list[Clip] | None, str | None]]:
    """``(clips, error)`` per file of ``paths``: the clips the survey kept (resampled now: the survey skips
    that step), else the next result of ``loaded`` (the files read again, in the same order)."""
    for path in paths:
        clips = surveys[path].clips
        if clips is None:
            yield next(loaded)
            continue
        surveys[path].clips = None  # the writer takes them; memory need not hold them any longer
        yield [c.resample(options.fps) for c in clips] if options.fps else clips, None


def _keep_one_topology(surveys: dict[Path, _Survey], skip: Callable[[Path, str], None],
                       warn: Callable[[str], None]) -> None:
    """Leave in ``surveys`` only the files of one skeleton topology: the one most files have (the first file's
    on a tie). The others are passed to ``skip`` with the joint that differs; with more than one topology, a
    notice lists each (files, root, joints, an example file) so that the user can pick with --root/--joints."""
    groups: dict[frozenset, list[Path]] = {}
    for path, s in surveys.items():
        groups.setdefault(s.topology, []).append(path)
    if len(groups) < 2:
        return
    keep = max(groups.values(), key=len)
    reference = surveys[keep[0]]
    found = "; ".join(f"{len(g)} file{'s' * (len(g) > 1)} with {surveys[g[0]].describe()} (e.g. {g[0].name})"
                      for g in sorted(groups.values(), key=len, reverse=True))
    for path in [p for g in groups.values() if g is not keep for p in g]:
        try:
            check_topology(surveys[path].skeleton, reference.skeleton, f"clip {surveys[path].names[0]!r}", path,
                           f"the {len(keep)} files like {keep[0].name}")
        except OptiqError as exc:
            # Joint order alone differs in no topology here, so check_topology always raises.
            skip(path, str(exc))
        del surveys[path]
    warn(f"{len(groups)} skeleton topologies in the input: {found}; kept the {len(keep)} files of the most "
         f"common one. To convert them into one dataset, pick a common root joint with --root JOINT (or a joint "
         f"subset with --joints)")


def _check_names(surveys: dict[Path, _Survey], skip: Callable[[Path, str], None]) -> None:
    """Leave out (through ``skip``) a file whose clip name another file already uses."""
    owner: dict[str, Path] = {}
    for path in list(surveys):
        names = surveys[path].names
        clash = next((n for n in names if n in owner or names.count(n) > 1), None)
        if clash is not None:
            skip(path, f"{path}: clip name {clash!r} is already used by {owner.get(clash, path)}; clip names "
                       f"must be unique")
            del surveys[path]
            continue
        owner.update(dict.fromkeys(names, path))


def _agree(surveys: dict[Path, _Survey], warn: Callable[[str], None]) -> dict[Path, dict]:
    """One length unit and up axis per dialect (files of one loader and one topology): for each label of
    CONSENSUS that the loader guessed (the user set no value, the file states none), the value most frames were
    guessed in. Returns the loader options that files guessed otherwise are re-loaded with, and reports those
    files."""
    dialects: dict[tuple, list[Path]] = {}
    for path, s in surveys.items():
        dialects.setdefault((s.loader, s.topology), []).append(path)
    reloaded: dict[Path, dict[str, str]] = {}
    for (loader, _), paths in dialects.items():
        guessed = surveys[paths[0]].guessed_options  # one loader, the same options: the same for every file
        agreed = {}
        for label, option in CONSENSUS.items():
            if option not in guessed:
                continue
            votes: Counter[str] = Counter()
            for p in paths:
                if label in surveys[p].guesses:
                    votes[surveys[p].guesses[label]] += sum(surveys[p].frames)
            if votes:
                agreed[option] = votes.most_common(1)[0][0]
        labels = {option: label for label, option in CONSENSUS.items()}
        odd = [p for p in paths if any(surveys[p].guesses.get(labels[o]) != v for o, v in agreed.items())]
        for p in odd:
            reloaded[p] = dict(agreed)
        if odd:
            said = " ".join(f"{labels[o]}={v}" for o, v in agreed.items())
            guessed = Counter(" ".join(f"{k}={v}" for k, v in surveys[p].guesses.items()) for p in odd)
            names = ", ".join(p.name for p in odd[:5]) + (", ..." if len(odd) > 5 else "")
            warn(f"{len(odd)} of {len(paths)} files read by {loader!r} ({surveys[paths[0]].describe()}) were "
                 f"guessed {'; '.join(f'{g} ({n} files)' for g, n in guessed.items())}, unlike the most frames: "
                 f"converted them with {said}: {names}. Set the unit and up axis with --unit and --up")
    return reloaded


def _write(out: Path, fmt: Any, surveys: Mapping[Path, _Survey], loaded: Iterator, paths: Sequence[Path],
           velocities: bool) -> list[ClipInfo]:
    """Stream the clips of ``loaded`` (``(clips, error)`` per file of ``paths``) into a new dataset at ``out``,
    atomically. The writer's columns come from the surveys; a file that reads differently the second time
    (it changed on disk) stops the run."""
    dtypes: dict[str, list[np.dtype]] = {}
    for s in surveys.values():
        for k, v in s.frame_labels.items():
            dtypes.setdefault(k, []).append(v)
    frame_labels = _merged_dtypes(dtypes, out)
    local = any(s.local_translations for s in surveys.values())
    writer = None
    with atomic_path(out) as tmp, contextlib.ExitStack() as stack:
        for path, (clips, error) in zip(paths, loaded, strict=True):
            if error is not None:
                raise OptiqError(f"{error} (the file read without error a moment before)")
            if writer is None:
                # The context closes the file on success and removes it on any error (or Ctrl-C).
                writer = stack.enter_context(fmt.writer(tmp, clips[0].skeleton, frame_labels=frame_labels,
                                                        local_translations=local, velocities=velocities))
            for clip in clips:
                clip = _same_joint_order(clip, writer.skeleton)
                check_topology(clip.skeleton, writer.skeleton, f"clip {clip.name!r}", path,
                               f"the first clip ({paths[0]})")
                writer.add(clip)
    return list(writer.clips.values())


def _same_joint_order(clip: Clip, reference: Skeleton) -> Clip:
    """``clip`` with its joints in the reference's order when it has the same joints listed in another order
    (exporters do not keep one order across files); otherwise unchanged, for the topology check to judge."""
    names = clip.skeleton.names
    if names == reference.names or sorted(names) != sorted(reference.names) or names[0] != reference.names[0]:
        return clip
    try:
        return clip.with_joint_order(reference.names)
    except OptiqError:
        return clip


class _Pool:
    """Runs a worker function over jobs in file order: in this process when ``jobs <= 1``, else in a process
    pool (one pool for both passes) with at most two jobs per worker in flight, so results that the writer
    has not taken yet do not pile up in memory."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.pool = ProcessPoolExecutor(max_workers=jobs) if jobs > 1 else None

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            # A stop at a bad file (or Ctrl-C) must not wait for the files still queued.
            self.pool.shutdown(wait=True, cancel_futures=True)

    def map(self, function: Callable, jobs_in: Sequence, progress: bool, desc: str) -> Iterator:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs_in), unit="file", desc=desc, disable=not progress, leave=False)
        try:
            if self.pool is None:
                for job in jobs_in:
                    yield function(job)
                    bar.update()
                return
            queue = iter(jobs_in)
            pending = deque(self.pool.submit(function, job) for job in islice(queue, 2 * self.jobs))
            while pending:
                result = pending.popleft().result()
                pending.extend(self.pool.submit(function, job) for job in islice(queue, 1))  # the next, if any
                yield result
                bar.update()
        finally:
            bar.close()
