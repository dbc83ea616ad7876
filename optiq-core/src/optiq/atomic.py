"""Atomic writes: write to a temporary file beside the target, rename on success, remove on failure.

A failed or killed run therefore never leaves a partial dataset, model or export at the target path.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import OptiqError


def check_output_path(path: str | os.PathLike) -> Path:
    """The output path as a Path; raises OptiqError when its folder does not exist or is not writable."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OptiqError(f"output folder {str(parent)!r} does not exist", path)
    if not os.access(parent, os.W_OK):
        raise OptiqError(f"output folder {str(parent)!r} is not writable", path)
    if path.is_dir():
        raise OptiqError("output path is a folder, expected a file name", path)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces ``path`` atomically."""
    path = check_output_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file private (0600); give it the mode a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_text(path: str | os.PathLike, encoding: str = "utf-8") -> Iterator:
    """Open a text file for writing that appears at ``path`` only when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding=encoding, newline="\n") as fh:
        yield fh
