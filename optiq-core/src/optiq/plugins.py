"""Plugin discovery through the ``optiq`` entry-point group, and the registries it fills.

Our own loop over entry points (not pluggy's ``load_setuptools_entrypoints``) so that a plugin that fails to
import is recorded with its error instead of breaking the CLI. ``OPTIQ_STRICT_PLUGINS=1`` re-raises;
``OPTIQ_DISABLE_PLUGINS=a,b`` blocks plugins by entry-point or distribution name.

A plugin is all or nothing: when it fails to import, implements a hook optiq does not know, or one of its hooks
raises, its status is ``error`` and none of its capabilities or commands are registered.
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError
from .registry import Capability, Registry

GROUP = "optiq"
KINDS = {
    "optiq_register_loaders": "loader",
    "optiq_register_formats": "format",
    "optiq_register_models": "model",
    "optiq_register_adapters": "adapter",
    "optiq_register_renderers": "renderer",
}
HOOKS = (*KINDS, "optiq_register_commands")


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

    def fail(self, error: str) -> None:
        """Mark the plugin broken: it keeps its error and contributes nothing."""
        self.status, self.error = "error", error
        self.capabilities.clear()

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


def _normalize(name: str) -> str:
    """PEP 503 name normalisation, so that ``optiq_example_plugin`` disables ``optiq-example-plugin``."""
    return re.sub(r"[-_.]+", "-", name).lower()


class PluginManager:
    """Loads plugins once and holds one Registry per capability kind.

    discover: load the plugins of the ``optiq`` entry-point group (core included). core: when not discovering,
    still register optiq-core's own plugin. plugins: extra ``{name: plugin object}`` registered after discovery
    (what ``optiq.testing`` uses for throw-away plugins).
    """

    def __init__(self, *, discover: bool = True, core: bool = True,
                 plugins: Mapping[str, object] | None = None) -> None:
        self.pm = pluggy.PluginManager("optiq")
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.registries = {kind: Registry(kind) for kind in KINDS.values()}
        self.command_clashes: dict[str, list[str]] = {}
        self._command_groups: set[int] = set()
        self.strict = os.environ.get("OPTIQ_STRICT_PLUGINS", "") not in ("", "0")
        if discover:
            self._discover()
        if core and "core" not in self.records:
            # Running from a source tree without installed metadata: core is still its own first plugin.
            from . import plugin as core_plugin

            self._register(PluginRecord("core", "optiq-core", _version("optiq-core")), core_plugin)
        for name, obj in (plugins or {}).items():
            self._register(PluginRecord(name, "<in-process>", "-"), obj)
        self._collect()

    # --- discovery -------------------------------------------------------------------------------------------
    def _discover(self) -> None:
        disabled = {_normalize(x) for x in _env_list("OPTIQ_DISABLE_PLUGINS")}
        eps = sorted(metadata.entry_points(group=GROUP), key=lambda e: (e.name != "core", e.name))
        claims: dict[str, list[str]] = {}
        for ep in eps:
            claims.setdefault(ep.name, []).append(ep.dist.name if ep.dist else "?")
        for ep in eps:
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            if len(claims[ep.name]) > 1:
                # Two distributions claim one plugin name: neither is loaded, whatever the sys.path order.
                rec = PluginRecord(f"{ep.name} ({dist})", dist, version)
                rec.fail(f"plugin name {ep.name!r} is claimed by several distributions "
                         f"({', '.join(claims[ep.name])}); uninstall all but one")
                self.records[rec.name] = rec
                continue
            rec = PluginRecord(ep.name, dist, version)
            if _normalize(ep.name) in disabled or _normalize(dist) in disabled:
                rec.status = "disabled"
                self.records[ep.name] = rec
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin is recorded, never fatal
                if self.strict:
                    raise
                rec.fail(_one_line(exc))
                self.records[ep.name] = rec
                continue
            self._register(rec, module)

    def _register(self, rec: PluginRecord, obj: object) -> None:
        """Register ``obj`` with pluggy under ``rec.name``; a plugin pluggy rejects (a hook implementation with
        arguments the hook does not have) or one that implements an unknown hook is recorded as an error."""
        self.records[rec.name] = rec
        try:
            self.pm.register(obj, name=rec.name)
        except Exception as exc:
            if self.strict:
                raise
            rec.fail(_one_line(exc))
            return
        unknown = sorted(c.name for c in self.pm.get_hookcallers(obj) or [] if not c.has_spec())
        if unknown:
            self.pm.unregister(obj)
            error = PluginError(f"implements unknown hook(s) {', '.join(unknown)}; optiq's hooks are {', '.join(HOOKS)}")
            if self.strict:
                raise error
            rec.fail(str(error))

    def _collect(self) -> None:
        """Call every registrar hook plugin by plugin, then fill the registries from plugins that are still ok."""
        for hook_name, kind in KINDS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                rec = self.records[impl.plugin_name]
                if rec.status != "ok":
                    continue
                rec.hooks.append(hook_name)
                try:
                    _call(impl, register=self._registrar(kind, rec))
                except Exception as exc:
                    if self.strict:
                        raise
                    rec.fail(f"{hook_name}: {_one_line(exc)}")
        for impl in self.pm.hook.optiq_register_commands.get_hookimpls():
            rec = self.records[impl.plugin_name]
            if rec.status == "ok":
                rec.hooks.append("optiq_register_commands")
        for rec in self.records.values():
            if rec.status == "ok":
                for cap in rec.capabilities:
                    self.registries[cap.kind].add(cap)

    def _registrar(self, kind: str, rec: PluginRecord):
        def register(name: str, target: Any, *, description: str = "", **meta: Any) -> None:
            if not isinstance(name, str) or not name:
                raise TypeError(f"register() needs a non-empty name, got {name!r}")
            if not target:
                raise TypeError(f"register({name!r}) needs a target")
            if "suffixes" in meta:
                suffixes = (meta["suffixes"],) if isinstance(meta["suffixes"], str) else meta["suffixes"]
                meta["suffixes"] = tuple(s.lower() if s.startswith(".") else "." + s.lower() for s in suffixes)
            rec.capabilities.append(Capability(kind, name, target, rec.name, description, meta))

        return register

    def add_commands(self, cli: Any) -> None:
        """Let every plugin add its subcommands to the click group ``cli``.

        The commands already in ``cli`` are core's. A command name added by two plugins (or shadowing a core
        command) is a clash: the name is replaced by a command that fails with the clash, never settled by
        load order. The shared groups core puts in ``cli`` (``train``, ``eval``: optiq.cli.groups) are extended,
        not clashed: their subcommands (``train model``) are judged the same way, one level down. A plugin whose
        hook raises is recorded as an error and its commands are taken back.
        """
        from .cli.groups import SHARED_GROUPS

        if id(cli) in self._command_groups:
            return
        self._command_groups.add(id(cli))
        # Prefix -> group whose subcommands are tracked: the root, and the shared groups core added.
        groups = {"": cli, **{n: g for n, g in cli.commands.items() if n in SHARED_GROUPS}}
        owners: dict[tuple[str, str], list[str]] = {(p, n): ["core"] for p, g in groups.items() for n in g.commands}
        first = {(p, n): c for p, g in groups.items() for n, c in g.commands.items()}
        for impl in self.pm.hook.optiq_register_commands.get_hookimpls():
            rec = self.records[impl.plugin_name]
            if rec.status != "ok":
                continue
            before = {p: dict(g.commands) for p, g in groups.items()}
            try:
                _call(impl, cli=cli)
            except Exception as exc:
                if self.strict:
                    raise
                for p, g in groups.items():
                    g.commands.clear()
                    g.commands.update(before[p])
                self._drop(rec, f"optiq_register_commands: {_one_line(exc)}")
                continue
            for p, g in groups.items():
                for name, cmd in list(g.commands.items()):
                    if before[p].get(name) is cmd:
                        continue
                    owners.setdefault((p, name), []).append(rec.name)
                    first.setdefault((p, name), cmd)
                    g.commands[name] = first[(p, name)]
                    rec.capabilities.append(Capability("command", f"{p} {name}".strip(), _command_target(cmd),
                                                       rec.name, cmd.get_short_help_str()))
        for (p, name), who in owners.items():
            if len(who) > 1:
                full = f"{p} {name}".strip()
                self.command_clashes[full] = who
                groups[p].commands[name] = _clash_command(name, who, full)

    def _drop(self, rec: PluginRecord, error: str) -> None:
        """Fail a plugin after its capabilities reached the registries: take them back out."""
        for cap in rec.capabilities:
            if cap.kind in self.registries:
                self.registries[cap.kind].remove(cap)
        rec.fail(error)

    # --- queries ---------------------------------------------------------------------------------------------
    def clashes(self) -> list[dict[str, Any]]:
        """Every name registered by more than one plugin: ``{"kind", "name", "plugins"}``."""
        out = [{"kind": reg.kind, "name": name, "plugins": [c.plugin for c in caps]}
               for reg in self.registries.values() for name, caps in reg.clashes.items()]
        out += [{"kind": "command", "name": name, "plugins": who} for name, who in self.command_clashes.items()]
        return out

    def info(self) -> dict[str, Any]:
        return {"plugins": [r.info() for r in self.records.values()], "clashes": self.clashes()}


def _call(impl: pluggy.HookImpl, **kwargs: Any) -> Any:
    """Call one plugin's hook implementation with the arguments it asks for (pluggy allows a subset)."""
    return impl.function(**{name: kwargs[name] for name in impl.argnames})


def _command_target(cmd: Any) -> str:
    func = cmd.callback or type(cmd)
    return f"{func.__module__}:{func.__qualname__}"


def _clash_command(name: str, owners: list[str], full: str | None = None) -> Any:
    import click

    def fail(**_kwargs: Any) -> None:
        raise PluginError(f"command {full or name!r} is registered by several plugins ({', '.join(owners)}); "
                          f"disable all but one with OPTIQ_DISABLE_PLUGINS")

    return click.Command(name, callback=fail, help=f"(clash: {', '.join(owners)})",
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


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


def set_manager(manager: PluginManager | None) -> PluginManager | None:
    """Install ``manager`` as the process-wide one (``None``: rediscover on next use); returns the previous."""
    global _MANAGER
    previous, _MANAGER = _MANAGER, manager
    return previous


def registry(kind: str) -> Registry:
    """The registry of ``kind``: loader, format, model, adapter or renderer."""
    return get_manager().registries[kind]
