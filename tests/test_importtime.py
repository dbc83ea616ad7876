"""Listing plugins imports only plugin modules: never torch, mujoco, plotly, pyarrow, h5py or scipy, never a
capability's target module (core's loaders, the example plugin's csvmotion).

Measured twice: with ``python -X importtime`` (every ``import`` statement, nested ones included) and with
``sys.modules`` after the listing, because ``importlib.import_module`` (how entry points and targets are loaded)
does not appear in the importtime report.
"""

from __future__ import annotations

import json

import pytest
from plugin_env import run_optiq

HEAVY = {"torch", "mujoco", "plotly", "pyarrow", "h5py", "scipy", "pandas", "gymnasium", "stable_baselines3"}


def imported_modules(*args: str, code: str | None = None) -> set[str]:
    """Every module the command imported, from the ``-X importtime`` report on stderr."""
    result = run_optiq(*args, code=code, python_args=("-X", "importtime"))
    assert result.returncode == 0, result.stderr[-2000:]
    names = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
             if line.startswith("import time:") and "|" in line}
    assert "optiq" in names  # the report was parsed: an empty set would make every check below pass
    return names


LIST_THEN_MODULES = """
import json, sys
from optiq.cli.main import build_cli
build_cli().main(["plugins", "list"], prog_name="optiq", standalone_mode=False)
print("MODULES=" + json.dumps(sorted(sys.modules)))
"""


@pytest.fixture(scope="module")
def listing_imports() -> set[str]:
    return imported_modules("plugins", "list")


@pytest.fixture(scope="module")
def listing_modules() -> set[str]:
    result = run_optiq(code=LIST_THEN_MODULES)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "example  optiq-example-plugin" in result.stdout
    return set(json.loads(result.stdout.rsplit("MODULES=", 1)[1]))


def test_listing_imports_no_heavy_package(listing_imports):
    assert sorted(HEAVY & {m.split(".")[0] for m in listing_imports}) == []


def test_listing_imports_plugin_modules_but_not_their_targets(listing_imports, listing_modules):
    assert sorted(HEAVY & {m.split(".")[0] for m in listing_modules}) == []
    assert {"optiq.plugin", "optiq_example_plugin.plugin", "optiq.cli.plugins_cmd"} <= listing_modules
    targets = {"optiq.loaders.bvh", "optiq.loaders.bvh_write", "optiq.datasets", "optiq.datasets.parquet",
               "optiq.datasets.hdf5", "optiq_example_plugin.csvmotion", "optiq_example_plugin.render"}
    assert sorted(targets & (listing_imports | listing_modules)) == []


def test_json_listing_and_help_stay_light():
    for args in (("plugins", "list", "--json"), ("--help",)):
        assert sorted(HEAVY & {m.split(".")[0] for m in imported_modules(*args)}) == []


def test_import_optiq_is_light():
    names = imported_modules(code="import optiq")
    assert sorted(HEAVY & {m.split(".")[0] for m in names}) == []
    assert "optiq.plugins" not in names  # discovery waits for the first load or CLI call
