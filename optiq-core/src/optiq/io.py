"""Loading and saving clips through the loader registry (by name, ``module:attr``, suffix or content)."""

from __future__ import annotations

import inspect
import os
import stat
import sys
from pathlib import Path
from typing import Any

from .clip import Clip
from .errors import OptiqError, PluginError
from .registry import INSTALL_HINTS, Capability, resolve_target
from .tpose import drop_leading_tpose


def _loaders():
    from .plugins import registry

    return registry("loader")


def loader_for(path: str | os.PathLike, loader: str | None = None) -> Capability:
    """The loader capability for ``path``: the one named, else the one whose suffix matches, using content
    sniffing when several loaders claim the suffix."""
    reg = _loaders()
    if loader:
        return reg.get(loader)
    path = Path(path)
    if path.is_dir():
        return folder_loader(path)
    suffix, matches = _match_suffix(path, lambda c: True)
    if not matches:
        extra = INSTALL_HINTS["loader"].get(suffix)
        hint = f'; install "optiq[{extra}]"' if extra else f"; known suffixes: {', '.join(_known_suffixes())}"
        raise PluginError(f"no loader for {suffix or 'files without a suffix'}{hint}", path)
    if len(matches) == 1:
        return matches[0]
    head = _head(path)
    sniffed = [c for c in matches if c.meta.get("sniff") and resolve_target(c.meta["sniff"])(path, head)]
    if len(sniffed) == 1:
        return sniffed[0]
    # Content no loader recognises goes to the suffix's own loader (registered fallback=True: optiq's JSON motion
    # loader for .json), whose error then says what the file lacks.
    fallback = [c for c in matches if c.meta.get("fallback")]
    if not sniffed and len(fallback) == 1:
        return fallback[0]
    names = ", ".join(c.name for c in (sniffed or matches))
    raise PluginError(f"several loaders read {suffix} files ({names}) and the content does not decide; "
                      f"choose one with --loader", path)


def folder_loader(path: Path, loader: str | None = None) -> Capability:
    """The loader that reads the folder ``path`` as one recording (one file per frame, such as OpenPose JSON):
    the one named when it registered ``folder=``, else the one whose ``folder`` predicate accepts it."""
    if loader:
        cap = _loaders().get(loader)
        found = [cap] if cap.meta.get("folder") else []
    else:
        found = [c for c in _loaders() if c.meta.get("folder") and resolve_target(c.meta["folder"])(path)]
    if len(found) != 1:
        which = f" ({', '.join(c.name for c in found)})" if found else ""
        raise OptiqError(f"is a folder, expected a file (no single loader{which} reads this folder as one "
                         "recording)", path)
    return found[0]


def reads_folder(path: Path, loader: str | None = None) -> bool:
    """Whether a loader reads the folder ``path`` as one input (see folder_loader)."""
    try:
        folder_loader(path, loader)
    except OptiqError:
        return False
    return True


def _match_suffix(path: Path, accept) -> tuple[str, list[Capability]]:
    """The longest multi-part suffix of ``path`` (``.motion.csv`` before ``.csv``) that registered capabilities
    claim, and those capabilities; ``(path.suffix, [])`` when none does."""
    parts = [s.lower() for s in path.suffixes]
    for k in range(len(parts), 0, -1):
        suffix = "".join(parts[-k:])
        found = _loaders().find(lambda c, s=suffix: s in c.meta.get("suffixes", ()) and accept(c))
        if found:
            return suffix, found
    return path.suffix.lower(), []


def _known_suffixes() -> list[str]:
    return sorted({s for c in _loaders() for s in c.meta.get("suffixes", ())})


def _head(path: Path, size: int = 4096) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError as exc:
        raise OptiqError(f"cannot read file: {exc.strerror}", path) from None


def load(path: str | os.PathLike, loader: str | None = None, **options: Any) -> list[Clip]:
    """Read every clip of a motion file.

    path: the file. loader: a registered loader name or ``"module:attr"``; by default chosen by suffix and
    content. options: passed to the loader (for example ``unit="cm"``, ``up="y"``); an option the loader does
    not take (see ``loader_options``) is an error naming the options it takes. ``drop_tpose`` is taken by
    every loader (the rule of :mod:`optiq.tpose` where the loader does not name it). Returns clips in metres,
    Z up, wxyz quaternions, joints in depth-first order (``Clip.depth_first``; docs/loaders.md, "Joint order").
    """
    path = check_input_file(path)
    cap = loader_for(path, loader)
    if cap.meta.get("output") == "points":  # marker/keypoint loaders (C3D) return optiq.Points, not Clips
        raise OptiqError(f"holds points (loader {cap.name!r}: markers, no skeleton), not clips; read it with "
                         f"optiq.load_points", path)
    function = loader_function(cap, path)
    check_loader_options(cap, function, options, path)
    # A loader that names drop_tpose drops its own T-pose; for every other one (FBX, plugins) io.load applies
    # optiq.tpose's rule to the clips it returns.
    accepted = loader_options(function)
    generic_tpose = (accepted is None or "drop_tpose" not in accepted) and bool(options.pop("drop_tpose", False))
    clips = _checked_clips(cap, _call_loader(cap, function, path, options), path)
    clips = [c.depth_first() for c in clips]  # one canonical joint order, whatever the loader (docs/loaders.md)
    return [drop_leading_tpose(c) for c in clips] if generic_tpose else clips


# Options that io.load handles for every loader, whether or not the loader's signature names them.
GENERIC_OPTIONS = frozenset({"drop_tpose"})


def check_input_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path when it is an existing regular file (or a link to one); a FIFO, device or socket
    would block or never end when read, so it is refused, as are folders and missing files."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise OptiqError("file does not exist", path) from None
    except OSError as exc:
        raise OptiqError(f"cannot read file: {exc.strerror}", path) from None
    if stat.S_ISDIR(mode):
        raise OptiqError("is a folder, expected a motion file", path)
    if not stat.S_ISREG(mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise OptiqError(f"is {kind}, expected a regular motion file", path)
    return path


def loader_function(cap: Capability, path: Path | None = None) -> Any:
    """The load function of a loader capability, checked to be one: a Python callable, not from the standard
    library, whose signature takes the path as its first argument. No standard-library function loads motion,
    and some given a path run it or delete it (``os:system``, ``pathlib:Path.unlink``): a mistyped or hostile
    ``module:attr`` loader is refused before it sees the file."""
    function = cap.load()
    what = f"loader {cap.name!r}"
    if not callable(function) or inspect.isbuiltin(function) or inspect.isclass(function):
        raise PluginError(f"{what} is not a load function (got {type(function).__name__}); expected a Python "
                          f"function load(path, **options) -> list[Clip]", path)
    module = (getattr(function, "__module__", None) or "").partition(".")[0]
    if module in sys.stdlib_module_names:
        raise PluginError(f"{what} is a function of the standard library module {module!r}, not a load "
                          f"function; expected load(path, **options) -> list[Clip]", path)
    try:
        params = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        raise PluginError(f"{what}: its signature cannot be read; expected load(path, **options)", path) from None
    if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        raise PluginError(f"{what} does not take a file path as its first argument; expected "
                          f"load(path, **options) -> list[Clip]", path)
    return function


def loader_options(function: Any) -> frozenset[str] | None:
    """The option names a load function takes (its keyword parameters after the path), or None when it takes
    any (a public ``**options``). A ``**_ignored`` catch-all does not count: the loader ignores those."""
    params = list(inspect.signature(function).parameters.values())[1:]
    if any(p.kind is p.VAR_KEYWORD and not p.name.startswith("_") for p in params):
        return None
    return frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def check_loader_options(cap: Capability, function: Any, options: dict[str, Any], path: Path) -> None:
    """Raise OptiqError naming the loader and the options it takes when ``options`` holds one it does not
    (a misspelt ``drop_tposee=True`` would otherwise be ignored without a word)."""
    accepted = loader_options(function)
    if accepted is None:
        return
    unknown = sorted(set(options) - accepted - GENERIC_OPTIONS)
    if unknown:
        takes = ", ".join(sorted(accepted | GENERIC_OPTIONS))
        raise OptiqError(f"loader {cap.name!r} does not take option {', '.join(map(repr, unknown))}; "
                         f"it takes: {takes}", path)


def _call_loader(cap: Capability, function: Any, path: Path, options: dict[str, Any]) -> Any:
    """Call the loader. A registered loader's non-optiq exception is a bug and propagates; an ad-hoc
    ``module:attr`` target is the user's own code, so what it raises is reported in one line."""
    if cap.plugin != "<module:attr>":
        return function(path, **options)
    try:
        return function(path, **options)
    except OptiqError:
        raise
    except Exception as exc:
        raise PluginError(f"loader {cap.name!r} failed: {type(exc).__name__}: {exc}", path) from exc


def _checked_clips(cap: Capability, clips: Any, path: Path) -> list[Clip]:
    """The loader's result as a non-empty list of clips, or one line saying what it returned instead."""
    if isinstance(clips, Clip):
        clips = [clips]
    if not isinstance(clips, (list, tuple)) or not all(isinstance(c, Clip) for c in clips):
        got = type(clips).__name__ if not isinstance(clips, (list, tuple)) else \
            f"a list holding {type(next(c for c in clips if not isinstance(c, Clip))).__name__}"
        raise PluginError(f"loader {cap.name!r} returned {got}, expected a list of Clip", path)
    if not clips:
        raise OptiqError("file holds no motion", path)
    return list(clips)


def load_clip(path: str | os.PathLike, loader: str | None = None, **options: Any) -> Clip:
    """Read a file that holds one clip (the first when it holds several)."""
    return load(path, loader, **options)[0]


def save_clip(clip: Clip, path: str | os.PathLike, writer: str | None = None, **options: Any) -> Path:
    """Write ``clip`` to a motion file (``.bvh``, ``.json``, or any loader that registered ``write=``).

    writer: a registered loader name, or the ``"module:attr"`` of a write function; by default chosen by suffix.
    The write is atomic: the file appears only when complete.
    """
    path = Path(path)
    reg = _loaders()
    if writer and writer not in reg and ":" in writer:
        # A "module:attr" writer names the write function itself (a registered name names a loader).
        resolve_target(writer, "writer")(clip, path, **options)
        return path
    if writer:
        cap = reg.get(writer)
    else:
        suffix, caps = _match_suffix(path, lambda c: bool(c.meta.get("write")))
        if not caps:
            extra = INSTALL_HINTS["loader"].get(suffix)
            writable = sorted({s for c in reg if c.meta.get("write") for s in c.meta.get("suffixes", ())})
            hint = f'; install "optiq[{extra}]"' if extra else f"; writable: {', '.join(writable)}"
            raise PluginError(f"no writer for {suffix or 'files without a suffix'}{hint}", path)
        cap = caps[0]
    if not cap.meta.get("write"):
        raise PluginError(f"loader {cap.name!r} cannot write files", path)
    write = resolve_target(cap.meta["write"], f"writer of {cap.name!r}")
    write(clip, path, **options)
    return path
