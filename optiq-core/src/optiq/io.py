"""Loading and saving clips through the loader registry (by name, ``module:attr``, suffix or content)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .clip import Clip
from .errors import OptiqError, PluginError
from .registry import INSTALL_HINTS, Capability, resolve_target


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
    names = ", ".join(c.name for c in (sniffed or matches))
    raise PluginError(f"several loaders read {suffix} files ({names}) and the content does not decide; "
                      f"choose one with --loader", path)


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
    content. options: passed to the loader (for example ``drop_tpose=True`` for BVH, ``unit="cm"``); loaders
    ignore options they do not know, so one set of options can be used for a folder of mixed files.
    Returns clips in metres, Z up, wxyz quaternions.
    """
    path = Path(path)
    if not path.exists():
        raise OptiqError("file does not exist", path)
    if path.is_dir():
        raise OptiqError("is a folder, expected a motion file", path)
    cap = loader_for(path, loader)
    clips = cap.load()(path, **options)
    if not clips:
        raise OptiqError("file holds no motion", path)
    return clips


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
