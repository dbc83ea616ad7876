"""Test helpers for plugin authors: throw-away plugins registered into a fresh plugin manager.

Use the ``optiq_plugins`` fixture from a test module or conftest.py::

    from optiq.testing import optiq_plugins  # noqa: F401  (or: pytest_plugins = ["optiq.testing"])

    def test_my_loader(optiq_plugins, tmp_path):
        def optiq_register_loaders(register):
            register("mine", "my_pkg.mine:load_mine", suffixes=(".mine",))

        manager = optiq_plugins({"optiq_register_loaders": optiq_register_loaders})
        assert manager.records["throwaway"].status == "ok"
        clips = optiq.load(tmp_path / "walk.mine")  # goes through the throw-away plugin

The manager is installed as the process-wide one (what ``optiq.load`` and the CLI use) until the test ends.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from . import hookimpl
from .plugins import HOOKS, PluginManager, set_manager

Hooks = Mapping[str, Callable[..., Any]]


def make_plugin(hooks: Hooks, name: str = "throwaway") -> types.ModuleType:
    """A plugin module whose attributes are ``hooks`` (``{hook name: function}``) marked ``@optiq.hookimpl``."""
    unknown = sorted(set(hooks) - set(HOOKS))
    if unknown:
        raise ValueError(f"unknown hook(s) {', '.join(unknown)}; optiq's hooks are {', '.join(HOOKS)}")
    module = types.ModuleType(f"optiq_throwaway_{name}")
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return module


def make_manager(plugins: Mapping[str, Hooks | object] | None = None, *, core: bool = True,
                 discover: bool = False) -> PluginManager:
    """A fresh PluginManager with ``plugins`` (``{name: hooks dict or plugin object}``) registered.

    core: include optiq-core's own plugin. discover: also load the installed entry-point plugins.
    """
    objects = {name: make_plugin(p, name) if isinstance(p, Mapping) else p for name, p in (plugins or {}).items()}
    return PluginManager(discover=discover, core=core, plugins=objects)


@pytest.fixture
def optiq_plugins() -> Iterator[Callable[..., PluginManager]]:
    """Factory: ``optiq_plugins(hooks, name="throwaway", others=None, core=True, discover=False)`` builds a
    fresh PluginManager with the throw-away plugin ``name`` (and ``others``: ``{name: hooks}``) and makes it
    the process-wide manager for the rest of the test."""
    previous = set_manager(None)

    def factory(hooks: Hooks | None = None, name: str = "throwaway", others: Mapping[str, Hooks] | None = None,
                *, core: bool = True, discover: bool = False) -> PluginManager:
        plugins = ({name: hooks} if hooks is not None else {}) | dict(others or {})
        manager = make_manager(plugins, core=core, discover=discover)
        set_manager(manager)
        return manager

    try:
        yield factory
    finally:
        set_manager(previous)
