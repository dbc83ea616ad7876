"""How the ``optiq`` CLI fails: one line for usage errors and bugs, ``--debug``/``-q`` after a subcommand, numbers
that are not finite refused, SIGTERM and SIGKILL during a write, a full disk. Signals and full disks run the real
CLI in a subprocess on the real CMU BVH files."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import types

import click
import numpy as np
import optiq
import pytest
from click.testing import CliRunner
from optiq.cli.main import build_cli, cli
from optiq.errors import OptiqError
from optiq.plugins import PluginManager, set_manager

WALK = "cmu_02_01_bvhtodeepmimic"
OPTIQ = [sys.executable, "-m", "optiq.cli.main"]


def run(*args):
    return CliRunner().invoke(build_cli(), [str(a) for a in args])


@pytest.fixture(scope="module")
def walk(data_dir):
    return data_dir / "bvh" / f"{WALK}.bvh"


def parts(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


# --- one error style ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["data", "convert", "--in", "x.bvh"], "Missing option '--out' (see 'optiq data convert --help')"),
    (["data", "convert", "--in", "x.bvh", "--out", "a.h5", "--jobs", "0"],
     "Invalid value for '--jobs' / '-j': 0 is not in the range x>=1 (see 'optiq data convert --help')"),
    (["data", "info"], "Missing argument 'PATH' (see 'optiq data info --help')"),
    (["data", "nosuch"], "No such command 'nosuch' (see 'optiq data --help')"),
    (["--bogus", "data"], "No such option '--bogus' (see 'optiq --help')"),
    (["data", "export", "ds.h5", "--clip", "a", "--out", "b.bvh", "--bogus"],
     "No such option '--bogus'. Did you mean '--out'? (see 'optiq data export --help')"),
])
def test_usage_errors_are_one_line(args, message):
    r = run(*args)
    assert r.exit_code == 2
    assert r.stderr == f"optiq: error: {message}\n"
    assert r.stdout == ""


def test_help_still_works():
    for args in (["--help"], ["data", "convert", "--help"], ["data", "-h"]):
        r = run(*args)
        assert r.exit_code == 0 and r.stdout.startswith(f"Usage: optiq {' '.join(args[:-1])}".rstrip())
    assert "--debug" in run("--help").stdout


@pytest.mark.parametrize("option, value, expected", [
    ("--fps", "nan", "expected a finite number > 0"),
    ("--fps", "inf", "expected a finite number > 0"),
    ("--fps", "-30", "expected a finite number > 0"),
    ("--fps", "1e400", "expected a finite number > 0"),  # float("1e400") is inf
    ("--fps", "1e7", "expected at most 10000 (a higher rate multiplies every clip's frames and its memory"),
    ("--smooth", "nan", "expected a finite number > 0"),
    ("--scale", "nan", "expected a finite number > 0"),
    ("--scale", "inf", "expected a finite number > 0"),
    ("--scale", "x", "'x' is not a number"),
])
def test_numbers_that_are_not_finite_are_refused(walk, tmp_path, option, value, expected):
    r = run("data", "convert", "--in", walk, "--out", tmp_path / "ds.h5", option, value)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith(f"optiq: error: Invalid value for '{option}': '{value}': {expected}"
                               if "not a number" not in expected else
                               f"optiq: error: Invalid value for '{option}': {expected}")
    assert list(tmp_path.iterdir()) == []


def test_fps_at_the_bound_is_accepted(walk, tmp_path):
    """10000 fps is allowed; the clip then holds (duration * 10000) + 1 frames."""
    clip = optiq.load_clip(walk)
    r = run("data", "convert", "--in", walk, "--out", tmp_path / "ds.parquet", "--fps", "1e4", "-q")
    assert r.exit_code == 0, r.output
    with optiq.open_dataset(tmp_path / "ds.parquet") as ds:
        assert ds.read_clip(0).num_frames == int(np.floor((clip.num_frames - 1) / clip.fps * 1e4 + 1e-6)) + 1


@pytest.mark.parametrize("fps", [float("nan"), float("inf"), -1.0, 0.0])
def test_resample_refuses_fps_that_is_not_finite_and_positive(walk, fps):
    clip = optiq.load_clip(walk)
    with pytest.raises(OptiqError, match=f"clip '{WALK}': target fps must be positive and finite, got {fps}"):
        clip.resample(fps)


# --- --debug and -q after a subcommand, plugin commands included; the last-resort net ----------------------

@click.group("probe")
def _probe() -> None:
    """A throw-away plugin's commands."""


@_probe.command("flags")
@click.option("--name", default="")
@click.pass_context
def _flags(ctx, name):
    root = ctx.find_root().obj
    click.echo(json.dumps({"debug": root["debug"], "quiet": root["quiet"], "name": name}))


@_probe.command("boom")
def _boom():
    return len(None)


@pytest.fixture()
def with_plugin_command():
    plugin = types.SimpleNamespace(optiq_register_commands=optiq.hookimpl(lambda cli: cli.add_command(_probe)))
    previous = set_manager(PluginManager(plugins={"probe": plugin}))
    try:
        yield
    finally:
        cli.commands.pop("probe", None)
        set_manager(previous)


def test_debug_and_quiet_after_the_subcommand(with_plugin_command):
    flags = [json.loads(run(*args).stdout) for args in (
        ["probe", "flags"], ["probe", "flags", "--debug"], ["probe", "--debug", "flags", "-q"],
        ["--debug", "probe", "flags", "--name", "--quiet"])]
    # CliRunner's stderr is no terminal: quiet is always on there; debug follows the flag wherever it is.
    assert [f["debug"] for f in flags] == [False, True, True, True]
    assert flags[3]["name"] == "--quiet"  # an option's value is a value, not a flag


FLAGS_IN_A_TERMINAL = """
import json, sys, types, click, optiq
from optiq.cli.main import main
from optiq.plugins import PluginManager, set_manager
@click.command("flags")
@click.pass_context
def flags(ctx):
    click.echo(json.dumps(ctx.find_root().obj))
plugin = types.SimpleNamespace(optiq_register_commands=optiq.hookimpl(lambda cli: cli.add_command(flags)))
set_manager(PluginManager(plugins={"probe": plugin}))
main(sys.argv[1:])
"""


@pytest.mark.parametrize("args, quiet", [([], False), (["-q"], True), (["--quiet", "--debug"], True)])
def test_quiet_after_a_plugin_command_in_a_terminal(args, quiet):
    """With stderr a terminal, progress is on unless ``-q`` is given, here after the (plugin) subcommand."""
    pty = pytest.importorskip("pty")
    leader, follower = pty.openpty()
    try:
        p = subprocess.run([sys.executable, "-c", FLAGS_IN_A_TERMINAL, "flags", *args], stderr=follower,
                           stdout=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(follower)
        os.close(leader)
    assert p.returncode == 0
    assert json.loads(p.stdout) == {"debug": "--debug" in args, "quiet": quiet}


def test_a_bug_is_one_line_and_debug_shows_it(with_plugin_command):
    r = run("probe", "boom")
    assert r.exit_code == 1
    assert r.stderr == ("optiq: error: internal error: TypeError: object of type 'NoneType' has no len() "
                        "(run with --debug for the traceback; please report it)\n")
    r = run("probe", "boom", "--debug")
    assert isinstance(r.exception, TypeError) and r.exit_code == 1


def test_debug_after_the_subcommand_reraises_optiq_errors(tmp_path):
    r = run("data", "info", tmp_path / "missing.h5", "--debug")
    assert isinstance(r.exception, OptiqError) and "missing.h5" in str(r.exception)
    r = run("data", "info", tmp_path / "missing.h5")
    assert r.exit_code == 2 and r.stderr.startswith("optiq: error: ") and r.stderr.count("\n") == 1


# --- signals --------------------------------------------------------------------------------------------------

# The real CLI, with the dataset writer made to stop after its first clip until a signal comes: the test then
# signals a process that is certainly in its write phase (no timing involved).
STOP_WHILE_WRITING = """
import sys, time
from optiq.datasets import base
add = base.DatasetWriter.add
def stopping_add(self, *args, **kwargs):
    info = add(self, *args, **kwargs)
    print("writing", flush=True)
    time.sleep(3600)
    return info
base.DatasetWriter.add = stopping_add
from optiq.cli.main import main
main(sys.argv[1:])
"""

# Every read of a motion file in the conversion's workers (its survey and any second read) goes through io.load.
STOP_WHILE_LOADING = """
import os, sys, time
from optiq import io
def stopping_load(*args, **kwargs):
    os.write(1, b"loading\\n")  # one write: the lines of workers stopping at once do not interleave
    time.sleep(3600)
io.load = stopping_load
from optiq.cli.main import main
main(sys.argv[1:])
"""


def start(script, *args, **kwargs):
    p = subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, **kwargs)
    return p, p.stdout.readline()


@pytest.fixture(scope="module")
def cmu_files(data_dir):
    return [data_dir / "bvh" / f"{n}.bvh" for n in ("cmu_01_14_bvhtodeepmimic", WALK, "cmu_12_01_walk_pybvh")]


@pytest.mark.parametrize("suffix", [".parquet", ".h5"])
def test_sigterm_while_writing_leaves_nothing(cmu_files, tmp_path, suffix):
    out = tmp_path / f"ds{suffix}"
    p, line = start(STOP_WHILE_WRITING, "data", "convert", "--in", *cmu_files, "--out", out, "-j", "1")
    assert line == "writing\n"
    assert len(parts(tmp_path)) == 1  # the write is under way
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143 and err == "optiq: terminated\n"
    assert list(tmp_path.iterdir()) == []


def test_sigterm_to_the_process_group_stops_the_pool(cmu_files, tmp_path):
    """SIGTERM to the whole group (a container stop, a scheduler): the workers die quietly, the CLI reports."""
    out = tmp_path / "ds.parquet"
    p, line = start(STOP_WHILE_LOADING, "data", "convert", "--in", *cmu_files, "--out", out, "-j", "2",
                    start_new_session=True)
    assert line == "loading\n"
    os.killpg(p.pid, signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143 and err == "optiq: terminated\n"
    assert list(tmp_path.iterdir()) == []


def test_a_second_sigterm_does_not_interrupt_the_clean_up(monkeypatch):
    """The first SIGTERM unwinds; one that comes while the clean-up runs (removing a part file) is ignored."""
    from optiq.cli import main
    from optiq.errors import Terminated

    monkeypatch.setattr(main._on_sigterm, "pid", os.getpid())
    monkeypatch.setattr(main._on_sigterm, "received", False)
    with pytest.raises(Terminated):
        main._on_sigterm(signal.SIGTERM, None)
    assert main._on_sigterm.received
    assert main._on_sigterm(signal.SIGTERM, None) is None


def test_sigkill_leaves_a_part_that_the_next_write_removes(cmu_files, tmp_path):
    out = tmp_path / "ds.parquet"
    p, line = start(STOP_WHILE_WRITING, "data", "convert", "--in", *cmu_files, "--out", out, "-j", "1")
    assert line == "writing\n"
    p.kill()
    p.communicate(timeout=120)
    stale = parts(tmp_path)
    assert len(stale) == 1 and stale[0].startswith(".ds.parquet.") and not out.exists()
    assert (tmp_path / stale[0]).stat().st_size > 0
    # A writer still at work on the same output holds the lock of its part: that part is left alone.
    live = tmp_path / ".ds.parquet.0000beef.part"
    live.write_bytes(b"in progress")
    fd = os.open(live, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        r = run("data", "convert", "--in", cmu_files[1], "--out", out)
        assert r.exit_code == 0, r.output
        assert parts(tmp_path) == [live.name]
    finally:
        os.close(fd)
    with optiq.open_dataset(out) as ds:
        assert ds.clip_names == [WALK]


# --- a full disk ----------------------------------------------------------------------------------------------

# Run as a child: mounts a 64 KiB tmpfs on DISK, puts an old output there, runs the optiq command, reports.
ON_SMALL_DISK = """
import json, os, subprocess, sys
disk, name, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", disk], capture_output=True, text=True)
if mount.returncode:
    print(json.dumps({"skip": mount.stderr.strip()}))
    sys.exit()
try:
    with open(os.path.join(disk, name), "w") as fh:
        fh.write("old output")
    p = subprocess.run(cmd, capture_output=True, text=True)
    with open(os.path.join(disk, name)) as fh:
        old = fh.read()
    print(json.dumps({"rc": p.returncode, "stderr": p.stderr, "files": sorted(os.listdir(disk)), "old": old}))
finally:
    subprocess.run(["umount", disk])
"""


def on_small_disk(tmp_path, name, *args):
    """Run ``optiq ARGS`` (``{disk}`` replaced by the small disk's folder) with an old ``name`` on that disk."""
    disk = tmp_path / "disk"
    disk.mkdir()
    prefix = []
    if os.geteuid() != 0:  # a user namespace lets a user mount a tmpfs of its own
        if not shutil.which("unshare") or subprocess.run(["unshare", "-rm", "true"]).returncode:
            pytest.skip("needs root or a user namespace (unshare -rm) to mount a small tmpfs")
        prefix = ["unshare", "-rm"]
    cmd = [*OPTIQ, *(str(a).replace("{disk}", str(disk)) for a in args)]
    p = subprocess.run([*prefix, sys.executable, "-c", ON_SMALL_DISK, str(disk), name, *cmd],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    if "skip" in report:
        pytest.skip(f"cannot mount a tmpfs: {report['skip']}")
    return disk, report


@pytest.fixture(scope="module")
def dataset(walk, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "walk.parquet"
    r = run("data", "convert", "--in", walk, "--out", out)
    assert r.exit_code == 0, r.output
    return out


@pytest.mark.parametrize("name, command", [
    ("ds.parquet", ["data", "convert", "--in", "{walk}", "--out", "{disk}/ds.parquet"]),
    ("ds.h5", ["data", "convert", "--in", "{walk}", "--out", "{disk}/ds.h5"]),
    ("x.json", ["data", "export", "{dataset}", "--clip", WALK, "--out", "{disk}/x.json"]),
])
def test_a_full_disk_is_one_line_and_keeps_the_old_output(walk, dataset, tmp_path, name, command):
    command = [a.replace("{walk}", str(walk)).replace("{dataset}", str(dataset)) for a in command]
    disk, report = on_small_disk(tmp_path, name, *command)
    assert report["rc"] == 2
    assert report["stderr"] == f"optiq: error: no space left on device writing {disk / name}\n"
    assert report["files"] == [name] and report["old"] == "old output"


def test_a_reader_that_stops_early_is_not_an_error(walk):
    """``optiq data info x | head -1``: the pipe closes under us; we stop quietly with 141 (as a SIGPIPE'd Unix
    tool), not with an internal-error line about BrokenPipeError. The read end is closed before the command
    starts, so its first write already fails (no race with the pipe's buffer)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        p = subprocess.run([*OPTIQ, "data", "info", str(walk)], stdout=write_end, stderr=subprocess.PIPE,
                           text=True, timeout=300)
    finally:
        os.close(write_end)
    assert p.returncode == 141 and p.stderr == ""


WARNING_LOADER = '''
import warnings
from optiq.errors import OptiqWarning
from optiq.loaders.bvh import load_bvh


def load(path, drop_tpose=False):
    warnings.warn(f"{path}: a notice\\nover two lines", OptiqWarning)
    warnings.warn("a library's own warning", RuntimeWarning)
    return load_bvh(path)
'''


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_warnings_are_one_line_each_also_from_worker_processes(data_dir, tmp_path, jobs):
    """A loader's warning reaches the user as one ``optiq: warning:`` line per file, also when the file was read in
    a worker process of ``data convert`` (the survey records them and the parent reports them)."""
    (tmp_path / "warning_loader.py").write_text(WARNING_LOADER)
    files = [data_dir / "bvh" / f"{n}.bvh" for n in ("cmu_02_01_bvhtodeepmimic", "cmu_12_01_walk_pybvh")]
    p = subprocess.run([*OPTIQ, "data", "convert", "--in", *map(str, files), "--out", str(tmp_path / "w.parquet"),
                        "--loader", "warning_loader:load", "-j", jobs], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert sorted(lines) == sorted([f"optiq: warning: {f}: a notice over two lines" for f in files]
                                   + ["optiq: warning: RuntimeWarning: a library's own warning"] * 2)
