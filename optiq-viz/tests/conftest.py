"""Fixtures of the viz tests: a headless Chromium (Debian ``chromium``), a PNG reader for screenshots and the
one-line error of a CLI run."""

from __future__ import annotations

import os
import shutil
import struct
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from optiq.cli.main import build_cli


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of Chromium (``OPTIQ_CHROMIUM`` overrides). Missing: a failure with CI set, a skip elsewhere."""
    exe = os.environ.get("OPTIQ_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return exe
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed (CI is set, so this is a failure): apt-get install chromium")
    pytest.skip("chromium not found (Debian: apt-get install chromium; `make setup` installs it)")


@pytest.fixture(scope="session")
def read_png():
    """``read_png(data: bytes) -> [H, W, C] uint8``."""
    return _read_png


@pytest.fixture(scope="session")
def cli_error():
    """``cli_error(*args) -> str``: run ``optiq ARGS`` and return its one stderr line ``optiq: error: ...``,
    asserting exit code 2 and nothing else on stderr."""
    return _cli_error


def _cli_error(*args) -> str:
    result = CliRunner().invoke(build_cli(), [str(a) for a in args])
    assert result.exit_code == 2, result.output
    lines = [s for s in result.stderr.splitlines() if s.strip()]
    assert len(lines) == 1 and lines[0].startswith("optiq: error: "), result.stderr
    return lines[0]


def _read_png(data: bytes) -> np.ndarray:
    """``[H, W, C]`` uint8 pixels of an 8-bit non-interlaced RGB(A) PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks = 8, []
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + size]
        pos += 12 + size
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    c = 3 if color == 2 else 4
    n = width * c
    raw = np.frombuffer(zlib.decompress(b"".join(chunks)), np.uint8).reshape(height, n + 1)
    rows = np.zeros((height + 1, n), np.int64)  # rows[0]: the zero row above the image
    for y in range(height):
        kind, line, up = raw[y, 0], raw[y, 1:].astype(np.int64), rows[y]
        if kind == 0:
            rows[y + 1] = line
        elif kind == 1:  # Sub: a running sum along each channel
            rows[y + 1] = np.cumsum(line.reshape(width, c), axis=0).reshape(n) & 255
        elif kind == 2:  # Up
            rows[y + 1] = (line + up) & 255
        else:
            rows[y + 1] = _average_or_paeth(kind, line.tolist(), up.tolist(), c)
    return rows[1:].reshape(height, width, c).astype(np.uint8)


def _average_or_paeth(kind: int, line: list[int], up: list[int], c: int) -> list[int]:
    out = [0] * len(line)
    for i, value in enumerate(line):
        a = out[i - c] if i >= c else 0
        b = up[i]
        if kind == 3:
            out[i] = (value + ((a + b) >> 1)) & 255
            continue
        d = up[i - c] if i >= c else 0
        p = a + b - d
        pa, pb, pd = abs(p - a), abs(p - b), abs(p - d)
        out[i] = (value + (a if pa <= pb and pa <= pd else b if pb <= pd else d)) & 255
    return out
