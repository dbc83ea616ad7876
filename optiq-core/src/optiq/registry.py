"""Registries of named capabilities with lazy ``"module:attr"`` targets."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import PluginError

# Where a capability that is not installed usually comes from, for the install hint.
INSTALL_HINTS: dict[str, dict[str, str]] = {
    # Video containers: optiq-video's loader (2D keypoints by a pose estimator), kept out of the core install.
    "loader": {"fbx": "fbx", ".fbx": "fbx", "video": "video",
               **dict.fromkeys((".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm"), "video")},
    "format": {},
    "model": {"mlp": "ml", "transformer": "ml", "unet": "ml", "vqvae": "ml"},
    "adapter": {},
    "renderer": {"plotly": "viz", "html": "viz", "video": "viz", "plots": "viz"},
}
DEFAULT_EXTRA = {"adapter": "rl", "model": "ml", "renderer": "viz"}


@dataclass
class Capability:
    """One registered thing: ``kind`` (loader, format, ...), ``name``, lazy ``target``, the registering plugin."""

    kind: str
    name: str
    target: str | Any
    plugin: str
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        """Import and return the target object."""
        return resolve_target(self.target, f"{self.kind} {self.name!r} (plugin {self.plugin})")

    def info(self) -> dict[str, Any]:
        target = self.target if isinstance(self.target, str) else _dotted_name(self.target)
        out = {"name": self.name, "target": target, "description": self.description}
        out.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in self.meta.items() if v is not None})
        return out


def _dotted_name(obj: Any) -> str:
    """``module:qualname`` of a function or class registered directly instead of as a string."""
    named = obj if hasattr(obj, "__qualname__") else type(obj)
    return f"{named.__module__}:{named.__qualname__}"


def resolve_target(target: str | Any, what: str = "target") -> Any:
    """Import ``"module:attr"`` (attr may be dotted); any non-string is returned as is."""
    if not isinstance(target, str):
        return target
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise PluginError(f"{what}: target {target!r} is not of the form 'module:attr'")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # a plugin's module failing at import is the plugin's error, shown in one line
        raise PluginError(f"{what}: cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(f"{what}: module {module_name!r} has no attribute {attr!r}") from None
    return obj


class Registry:
    """Named capabilities of one kind. A name registered by two plugins is a clash: it is kept, reported by
    ``optiq plugins list`` and refused on use, never settled by load order."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Capability] = {}
        self.clashes: dict[str, list[Capability]] = {}

    def add(self, cap: Capability) -> None:
        if cap.name in self.clashes:
            self.clashes[cap.name].append(cap)
        elif cap.name in self._items:
            self.clashes[cap.name] = [self._items.pop(cap.name), cap]
        else:
            self._items[cap.name] = cap

    def remove(self, cap: Capability) -> None:
        """Take back one registration (its plugin failed after registering)."""
        if self._items.get(cap.name) is cap:
            del self._items[cap.name]
        elif cap in self.clashes.get(cap.name, ()):
            rest = [c for c in self.clashes.pop(cap.name) if c is not cap]
            if len(rest) == 1:
                self._items[cap.name] = rest[0]
            else:
                self.clashes[cap.name] = rest

    def names(self) -> list[str]:
        return sorted(set(self._items) | set(self.clashes))

    def __iter__(self):
        return iter(self._items.values())

    def __contains__(self, name: str) -> bool:
        return name in self._items or name in self.clashes

    def get(self, name: str) -> Capability:
        """The capability named ``name``, or a ``module:attr`` string wrapped as an ad-hoc capability."""
        if name in self.clashes:
            raise self._clash_error(name)
        if name in self._items:
            return self._items[name]
        if ":" in name:
            return Capability(self.kind, name, name, plugin="<module:attr>")
        raise PluginError(self.unknown_message(name))

    def _clash_error(self, name: str) -> PluginError:
        who = ", ".join(c.plugin for c in self.clashes[name])
        return PluginError(
            f"{self.kind} {name!r} is registered by several plugins ({who}); "
            f"disable all but one with OPTIQ_DISABLE_PLUGINS or name a 'module:attr' target"
        )

    def unknown_message(self, name: str) -> str:
        installed = ", ".join(self.names()) or "none"
        extra = INSTALL_HINTS.get(self.kind, {}).get(name, DEFAULT_EXTRA.get(self.kind))
        hint = f'. Try: pip install "optiq[{extra}]"' if extra else ""
        return f"unknown {self.kind} {name!r}; installed: {installed}{hint}"

    def load(self, name: str) -> Any:
        return self.get(name).load()

    def find(self, predicate: Callable[[Capability], bool]) -> list[Capability]:
        """Capabilities for which ``predicate`` holds (for example: loaders of a suffix).

        A clashed name that would match raises the clash error rather than letting the other match win.
        """
        for name, caps in self.clashes.items():
            if any(predicate(c) for c in caps):
                raise self._clash_error(name)
        return [c for c in self._items.values() if predicate(c)]
