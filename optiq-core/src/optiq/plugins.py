"""Plugin discovery through the ``optiq`` entry-point group, and the registries it fills.

Our own loop over entry points (not pluggy's ``load_setuptools_entrypoints``) so that a plugin that fails to
import is recorded with its error instead of breaking the CLI. ``OPTIQ_STRICT_PLUGINS=1`` re-raises;
``OPTIQ_DISABLE_PLUGINS=a,b`` blocks plugins by entry-point or distribution name.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .registry import Capability, Registry

GROUP = "optiq"
KINDS = {
    "optiq_register_loaders": "loader",
    "optiq_register_formats": "format",
    "optiq_register_models": "model",
    "optiq_register_adapters": "adapter",
    "optiq_register_renderers": "renderer",
}


@dataclass
class PluginRecord:
    """What discovery learnt about one plugin: where it comes from, whether it loaded, what it registered."""

    name: str
    dist: str
    version: str
    status: str = "ok"  # ok | error | disabled
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    capabilities: list[Capability] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        caps: dict[str, list[dict[str, Any]]] = {}
        for c in self.capabilities:
            caps.setdefault(c.kind + "s", []).append(c.info())
        return {
            "name": self.name,
            "distribution": self.dist,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "hooks": sorted(self.hooks),
            "capabilities": caps,
        }


def _env_list(var: str) -> set[str]:
    return {x.strip() for x in os.environ.get(var, "").split(",") if x.strip()}


class PluginManager:
    """Loads plugins once and holds one Registry per capability kind."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("optiq")
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.registries = {kind: Registry(kind) for kind in KINDS.values()}
        self.strict = os.environ.get("OPTIQ_STRICT_PLUGINS", "") not in ("", "0")
        self._discover()
        self._collect()

    # --- discovery -------------------------------------------------------------------------------------------
    def _discover(self) -> None:
        disabled = _env_list("OPTIQ_DISABLE_PLUGINS")
        for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: (e.name != "core", e.name)):
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            if ep.name in self.records:
                # Two distributions claim one plugin name: keep the first, show the second as an error.
                rec = PluginRecord(f"{ep.name} ({dist})", dist, version, "error",
                                   f"plugin name {ep.name!r} is already used by {self.records[ep.name].dist}")
                self.records[rec.name] = rec
                continue
            rec = PluginRecord(ep.name, dist, version)
            self.records[ep.name] = rec
            if ep.name in disabled or dist in disabled:
                rec.status = "disabled"
                continue
            try:
                module = ep.load()
                self.pm.register(module, name=ep.name)
            except Exception as exc:  # a broken plugin is recorded, never fatal
                if self.strict:
                    raise
                rec.status, rec.error = "error", _one_line(exc)
        if "core" not in self.records:
            # Running from a source tree without installed metadata: core is still its own first plugin.
            from . import plugin as core_plugin

            self.records["core"] = PluginRecord("core", "optiq-core", _version("optiq-core"))
            self.pm.register(core_plugin, name="core")

    def _collect(self) -> None:
        for hook_name, kind in KINDS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                rec = self.records[impl.plugin_name]
                rec.hooks.append(hook_name)
                try:
                    impl.function(register=self._registrar(kind, rec))
                except Exception as exc:
                    if self.strict:
                        raise
                    rec.status, rec.error = "error", f"{hook_name}: {_one_line(exc)}"
        for impl in self.pm.hook.optiq_register_commands.get_hookimpls():
            self.records[impl.plugin_name].hooks.append("optiq_register_commands")

    def _registrar(self, kind: str, rec: PluginRecord):
        registry = self.registries[kind]

        def register(name: str, target: Any = None, *, description: str = "", **meta: Any) -> None:
            if target is None:
                target = meta.pop("load", None)
            if target is None:
                raise TypeError(f"register({name!r}) needs a target")
            if "suffixes" in meta:
                meta["suffixes"] = tuple(s.lower() if s.startswith(".") else "." + s.lower() for s in meta["suffixes"])
            cap = Capability(kind, name, target, rec.name, description, meta)
            rec.capabilities.append(cap)
            registry.add(cap)

        return register

    def add_commands(self, cli: Any) -> None:
        """Let every plugin add its subcommands to the click group ``cli``; a failing plugin is recorded."""
        for impl in self.pm.hook.optiq_register_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception as exc:
                if self.strict:
                    raise
                rec = self.records[impl.plugin_name]
                rec.status, rec.error = "error", f"optiq_register_commands: {_one_line(exc)}"

    # --- queries ---------------------------------------------------------------------------------------------
    def clashes(self) -> list[str]:
        out = []
        for reg in self.registries.values():
            for name, caps in reg.clashes.items():
                out.append(f"{reg.kind} {name!r} registered by {', '.join(c.plugin for c in caps)}")
        return out

    def info(self) -> dict[str, Any]:
        return {"plugins": [r.info() for r in self.records.values()], "clashes": self.clashes()}


def _one_line(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return " ".join(text.split())


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


_MANAGER: PluginManager | None = None


def get_manager(reload: bool = False) -> PluginManager:
    """The process-wide plugin manager (discovered on first use)."""
    global _MANAGER
    if _MANAGER is None or reload:
        _MANAGER = PluginManager()
    return _MANAGER


def registry(kind: str) -> Registry:
    """The registry of ``kind``: loader, format, model, adapter or renderer."""
    return get_manager().registries[kind]
