"""Small pieces every loader needs: reading a file with a clear error, and the frame rate a file meant."""

from __future__ import annotations

from pathlib import Path

from ..errors import ParseError


def read_text(path: Path, what: str = "file", *, allow_empty: bool = False) -> str:
    """The file's text (UTF-8, undecodable bytes replaced); ParseError when it cannot be read or is empty.

    what: how the file is named in the error (``"skeleton file"``, ``"spec file"``).
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ParseError(f"cannot read {what}: {exc.strerror}", path) from None
    if not allow_empty and not text.strip():
        raise ParseError(f"{what} is empty", path)
    return text


def read_bytes(path: Path, what: str = "file") -> bytes:
    """The file's bytes; ParseError when it cannot be read or holds only whitespace."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read {what}: {exc.strerror}", path) from None
    if not data.strip():
        raise ParseError(f"{what} is empty", path)
    return data


def snap_fps(rate: float) -> float:
    """The frame rate a file meant, from one it states rounded (a printed frame time or dt).

    Snapped to the nearest integer within 5e-4 (relative: ``.0083333`` s -> 120, dt ``0.033332`` -> 30), else to
    an NTSC rate N*1000/1001 within 1e-4 (``0.008342`` s -> 119.88), else returned as is.
    """
    whole = round(rate)
    if whole > 0 and abs(rate / whole - 1.0) < 5e-4:
        return float(whole)
    ntsc = round(rate * 1.001) / 1.001
    if ntsc > 0 and abs(rate / ntsc - 1.0) < 1e-4:
        return ntsc
    return float(rate)
