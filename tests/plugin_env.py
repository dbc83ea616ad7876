"""Helpers for the plugin tests: temporary plugin installs and runs of the real ``optiq`` CLI in a subprocess.

A temporary install is a folder put on ``PYTHONPATH`` holding the plugin's modules and a ``*.dist-info`` with
its ``entry_points.txt``: importlib.metadata discovers it exactly like a pip-installed distribution, without
pip's start-up and build time, and without leaving the plugin in the venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "tests" / "plugins"


def install_dist(site: Path, name: str, version: str, entry_points: dict[str, str]) -> None:
    """Write the metadata of distribution ``name`` with ``[optiq]`` entry points into ``site``."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[optiq]\n{lines}")


def install_source_plugin(site: Path, folder: Path) -> str:
    """Install the plugin project in ``folder`` (pyproject.toml + src/) into ``site``; returns its name."""
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    for package in (folder / "src").iterdir():
        if package.is_dir() and (package / "__init__.py").exists():
            shutil.copytree(package, site / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    install_dist(site, project["name"], project["version"], project["entry-points"]["optiq"])
    return project["name"]


def run_optiq(*args: str, sites: tuple[Path, ...] = (), env: dict[str, str] | None = None,
              python_args: tuple[str, ...] = (), code: str | None = None) -> subprocess.CompletedProcess:
    """Run ``python [python_args] -m optiq ARGS`` (or ``-c code``) with ``sites`` on PYTHONPATH.

    The plugin switches of the calling environment are dropped so that each test states its own.
    """
    full_env = {k: v for k, v in os.environ.items() if k not in ("OPTIQ_STRICT_PLUGINS", "OPTIQ_DISABLE_PLUGINS")}
    full_env["PYTHONPATH"] = os.pathsep.join(str(s) for s in sites)
    full_env.update(env or {})
    cmd = [sys.executable, *python_args, *(["-c", code] if code is not None else ["-m", "optiq", *args])]
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=120)
