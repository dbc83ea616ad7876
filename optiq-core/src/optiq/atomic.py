"""Atomic writes: write to a temporary file beside the target, rename on success, remove on failure.

A failed or killed run therefore never leaves a partial dataset, model or export at the target path.

- The temporary file is ``.NAME.<8 hex>.part`` in the target's folder. While the block runs, the writer holds an
  exclusive ``flock`` on it. A part whose lock can be taken has no living writer (the kernel drops the locks of a
  process that dies, even by SIGKILL), so the next write to the same output removes it; a part whose lock is held
  belongs to a write in progress and is left alone. A library that flocks the file it writes conflicts with that
  lock: open the part as a file object, or with ``h5py.File(tmp, "w", locking=False)`` (HDF5's own locking).
- An output that is a symbolic link is written through to its target: the link stays a link.
- ``suffixes`` restricts the output to the suffixes a writer can produce; ``inputs`` names the files a run reads,
  and an output that is one of them (same path, through a symlink or a hard link) is refused. A caller that writes
  in place on purpose (``optiq data label --out`` equal to ``--in``) passes no inputs: the write stays atomic.
- A full disk (``ENOSPC``, ``EDQUOT``, or ``EFBIG`` from a size limit) inside the block becomes one OptiqError,
  ``no space left on device writing OUT``, also when a library reports it without the errno (h5py's
  RuntimeError at close, pyarrow); the part is removed and the old output is left intact. An OptiqError
  that names the temporary path is re-raised naming the output.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from .errors import DiskFullError, OptiqError

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
#: The C library's words for a full disk, as libraries and tools (ffmpeg) quote them. Those that wrap the C error in
#: their own exception keep its text but not its errno: h5py raises
#: RuntimeError("... file write failed: ... errno = 27, error message = 'File too large' ...") when HDF5 flushes
#: at close, and pyarrow builds without errno give "... Detail: [errno 28] No space left on device".
DISK_FULL_TEXT = re.compile(
    r"no space left on device|disk quota exceeded|file too large|"
    rf"errno\s*=?\s*({'|'.join(str(code) for code in sorted(_DISK_FULL))})\b", re.I)


def check_output_path(path: str | os.PathLike, *, suffixes: Sequence[str] | None = None,
                      inputs: Sequence[str | os.PathLike] = (), what: str = "output") -> Path:
    """The output path as a Path, checked before any work is done.

    suffixes: accepted suffixes (``".parquet"``, ``".tar.gz"``; case-insensitive); None accepts any name.
    inputs: files this run reads; the output may not be one of them. what: the word used in messages.
    Raises OptiqError when the folder does not exist or is not writable, the path is a folder, the suffix is not
    accepted, or the output is an input.
    """
    path = Path(path)
    target = _target(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OptiqError(f"{what} folder {str(parent)!r} does not exist", path)
    if not os.access(parent, os.W_OK):
        raise OptiqError(f"{what} folder {str(parent)!r} is not writable", path)
    if target.is_dir():
        raise OptiqError(f"{what} path is a folder, expected a file name", path)
    if suffixes is not None and not _has_suffix(path.name, suffixes):
        got = f"suffix {''.join(path.suffixes)!r}" if path.suffix else "no suffix"
        raise OptiqError(f"{what} has {got}; expected {', '.join(suffixes)}", path)
    for src in inputs:
        if target.exists() and os.path.exists(src) and os.path.samefile(target, src):
            raise OptiqError(f"{what} is the input file {os.fspath(src)}; choose another {what}", path)
    return path


def _has_suffix(name: str, suffixes: Sequence[str]) -> bool:
    name = name.lower()
    return any(name.endswith(s.lower()) and len(name) > len(s) for s in suffixes)


def _target(path: Path) -> Path:
    """The file a write to ``path`` must replace: the end of a symlink chain, else ``path`` itself."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffixes: Sequence[str] | None = None,
                inputs: Sequence[str | os.PathLike] = ()) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces ``path`` (or the file a symlink
    ``path`` points to) atomically. The checks of ``check_output_path`` run first."""
    path = check_output_path(path, suffixes=suffixes, inputs=inputs)
    target = _target(path)
    remove_stale_parts(target)
    fd, tmp = _locked_part(target)
    try:
        yield tmp
        _copy_mode(target, tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        _rename_in_error(exc, tmp, path)
        if _is_disk_full(exc):
            raise DiskFullError(f"no space left on device writing {path}") from exc
        raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_text(path: str | os.PathLike, encoding: str = "utf-8", *, suffixes: Sequence[str] | None = None,
                inputs: Sequence[str | os.PathLike] = ()) -> Iterator[TextIO]:
    """Open a text file for writing that appears at ``path`` only when the block succeeds."""
    with atomic_path(path, suffixes=suffixes, inputs=inputs) as tmp, \
            open(tmp, "w", encoding=encoding, newline="\n") as fh:
        yield fh


def remove_stale_parts(target: str | os.PathLike) -> list[Path]:
    """Remove the ``.NAME.*.part`` files of output ``target`` whose writer is dead (their flock can be taken);
    returns them. Parts held by a living writer are left."""
    target = Path(target)
    pattern = re.compile(re.escape(f".{target.name}.") + r"[a-z0-9_]{8}\.part")
    removed = []
    try:
        names = [n for n in os.listdir(target.parent) if pattern.fullmatch(n)]
    except OSError:
        return removed
    for name in names:
        part = target.parent / name
        try:
            fd = os.open(part, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(part)
            removed.append(part)
        except OSError:
            continue  # locked: a write in progress
        finally:
            os.close(fd)
    return removed


def _locked_part(target: Path) -> tuple[int, Path]:
    """Create ``.NAME.<8 hex>.part`` beside ``target`` and lock it; returns the open descriptor and the path."""
    while True:
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.part"
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # Another writer's clean-up may have taken the unlocked file between creation and lock: start again.
            with contextlib.suppress(FileNotFoundError):
                if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                    return fd, tmp
        except BaseException:  # Ctrl-C or SIGTERM before the caller's clean-up is in place
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.close(fd)
            raise
        os.close(fd)


def _copy_mode(target: Path, tmp: Path) -> None:
    """A replaced file keeps its permissions; a new one has those of a plain open() (the umask's)."""
    with contextlib.suppress(FileNotFoundError):
        os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))


def _rename_in_error(exc: BaseException, tmp: Path, path: Path) -> None:
    """An OptiqError that names the temporary file names the output instead."""
    if not isinstance(exc, OptiqError):
        return
    if exc.path is not None and os.path.abspath(exc.path) == os.path.abspath(tmp):
        exc.path = os.fspath(path)
    exc.message = exc.message.replace(str(tmp), str(path))
    if exc.where:
        exc.where = exc.where.replace(str(tmp), str(path))
    exc.args = (str(exc),)


def _is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` or an exception it was raised from is a full disk (or quota, or file size limit)."""
    if not isinstance(exc, Exception) or (isinstance(exc, OptiqError) and not isinstance(exc, DiskFullError)):
        return False
    seen = 0
    while exc is not None and seen < 20:
        code = exc.errno if isinstance(exc, OSError) else None
        if code in _DISK_FULL:
            return True
        if code is None and isinstance(exc, (OSError, RuntimeError)) and DISK_FULL_TEXT.search(str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False
