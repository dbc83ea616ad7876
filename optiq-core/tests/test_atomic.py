"""``optiq.atomic``: output checks (suffixes, outputs that are inputs), symlinks written through, part files locked
and cleaned after a dead writer, a full disk reported as one error naming the output."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import subprocess
import sys

import pytest
from optiq.atomic import atomic_path, atomic_text, check_output_path, remove_stale_parts
from optiq.errors import DiskFullError, OptiqError, ParseError


def parts(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


@pytest.mark.parametrize("name, ok", [("a.parquet", True), ("A.PARQUET", True), ("a.tar.gz", True),
                                      ("a.gz", False), ("a", False), (".parquet", False), ("a.parquet.bak", False)])
def test_suffixes_are_checked(tmp_path, name, ok):
    suffixes = [".parquet", ".tar.gz"]
    if ok:
        assert check_output_path(tmp_path / name, suffixes=suffixes) == tmp_path / name
        return
    with pytest.raises(OptiqError) as info:
        check_output_path(tmp_path / name, suffixes=suffixes)
    assert str(info.value).startswith(f"{tmp_path / name}: output has ")
    assert str(info.value).endswith("expected .parquet, .tar.gz")


def test_an_output_that_is_an_input_is_refused(tmp_path):
    src = tmp_path / "ds.parquet"
    src.write_text("dataset")
    (tmp_path / "link.parquet").symlink_to(src)
    os.link(src, tmp_path / "hard.parquet")
    for out in (src, tmp_path / "link.parquet", tmp_path / "hard.parquet", tmp_path / "." / "ds.parquet"):
        with pytest.raises(OptiqError, match=f"output is the input file {src}; choose another output"):
            with atomic_text(out, inputs=[tmp_path / "x.json", src]) as fh:
                fh.write("html")
    assert src.read_text() == "dataset" and parts(tmp_path) == []
    # Another file, and one that does not exist yet, are fine; no inputs means writing in place on purpose.
    check_output_path(tmp_path / "other.parquet", inputs=[src])
    with atomic_text(src) as fh:
        fh.write("relabelled")
    assert src.read_text() == "relabelled"


def test_a_symlink_output_is_written_through(tmp_path):
    real = tmp_path / "real" / "ds.json"
    real.parent.mkdir()
    real.write_text("old")
    os.chmod(real, 0o640)
    link = tmp_path / "ds.json"
    link.symlink_to(real)
    with atomic_text(link) as fh:
        fh.write("new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640  # a replaced file keeps its permissions
    assert parts(real.parent) == [] and parts(tmp_path) == []


def test_the_part_is_hidden_beside_the_target_and_locked(tmp_path):
    out = tmp_path / "ds.h5"
    with atomic_path(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".ds.h5.") and tmp.name.endswith(".part")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        tmp.write_bytes(b"data")
    assert out.read_bytes() == b"data" and parts(tmp_path) == []


def test_stale_parts_are_removed_and_live_ones_kept(tmp_path):
    out = tmp_path / "ds.h5"
    dead = tmp_path / ".ds.h5.0a1b2c3d.part"  # left by a killed writer: no lock
    old_style = tmp_path / ".ds.h5.k_9x2mzq.part"  # tempfile.mkstemp's names (optiq before locks)
    live = tmp_path / ".ds.h5.77777777.part"
    other = tmp_path / ".other.h5.0a1b2c3d.part"  # another output's: not ours to judge
    for p in (dead, old_style, live, other):
        p.write_bytes(b"x" * 100)
    fd = os.open(live, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a writer still at work
    try:
        with atomic_path(out) as tmp:
            tmp.write_bytes(b"data")
        assert parts(tmp_path) == sorted([live.name, other.name])
        assert remove_stale_parts(out) == []
    finally:
        os.close(fd)
    assert remove_stale_parts(out) == [live]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG])
def test_a_full_disk_names_the_output_and_keeps_the_old_one(tmp_path, code):
    out = tmp_path / "ds.parquet"
    out.write_text("old")
    with pytest.raises(DiskFullError) as info:
        with atomic_path(out) as tmp:
            tmp.write_text("half")
            raise OSError(code, os.strerror(code), str(tmp))
    assert str(info.value) == f"no space left on device writing {out}"
    assert out.read_text() == "old" and parts(tmp_path) == []


def test_a_full_disk_wrapped_by_a_library_is_recognised(tmp_path):
    """pyarrow raises OSError without errno, with the C library's text in the message."""
    out = tmp_path / "ds.parquet"
    with pytest.raises(DiskFullError, match="writing .*ds.parquet$"):
        with atomic_path(out):
            raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")
    with pytest.raises(DiskFullError, match="writing .*ds.parquet$"):  # h5py, when HDF5 flushes at close
        with atomic_path(out):
            raise RuntimeError("Set slist enabled failed (file write failed: time = Sun Nov 29 2026\n, "
                               "filename = 'x.h5', errno = 28, error message = 'No space left on device')")
    with pytest.raises(RuntimeError, match="wrapped"):  # other errors pass through unchanged
        with atomic_path(out):
            raise RuntimeError("wrapped")
    assert list(tmp_path.iterdir()) == []


def test_an_error_naming_the_part_names_the_output(tmp_path):
    out = tmp_path / "ds.h5"
    with pytest.raises(ParseError) as info:
        with atomic_path(out) as tmp:
            raise ParseError(f"cannot write {tmp}", tmp, "clip 'walk'")
    assert str(info.value) == f"{out}: clip 'walk': cannot write {out}"
    assert ".part" not in str(info.value) and info.value.path == str(out)


# A child process under a file size limit of 3000 bytes writes an HDF5 file whose data fits in HDF5's cache: the
# write fails only when h5py closes the file, as a RuntimeError that carries the C error's text but no errno.
_H5_OVER_LIMIT = """
import resource, signal, sys
import h5py
from optiq.atomic import atomic_path
from optiq.errors import DiskFullError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))
try:
    with atomic_path(sys.argv[1]) as tmp, h5py.File(tmp, "w", locking=False) as f:
        for i in range(40):
            f.attrs[f"a{i}"] = "x" * 50
except DiskFullError as exc:
    print(exc)
"""


def test_a_size_limit_hit_when_h5py_closes_the_file_is_a_full_disk(tmp_path):
    out = tmp_path / "ds.h5"
    out.write_bytes(b"old")
    done = subprocess.run([sys.executable, "-c", _H5_OVER_LIMIT, str(out)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"no space left on device writing {out}"
    assert out.read_bytes() == b"old" and parts(tmp_path) == []
