"""optiq's hook specifications (pluggy project ``optiq``, entry-point group ``optiq``).

Registrar style: each hook receives a ``register`` callable and registers named capabilities with lazy
``"module:attr"`` targets, so that listing plugins imports none of their heavy dependencies. docs/plugins.md is
the reference; tests/test_plugin_meta.py checks that every hook here is documented there with this signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    import click

hookspec = pluggy.HookspecMarker("optiq")

Target = str | Callable[..., Any]
"""A ``"module:attr"`` string (imported on first use) or the object itself (imported now: avoid in plugin.py)."""


class LoaderRegister(Protocol):
    """``register`` of :func:`optiq_register_loaders`.

    name: the loader's name (``optiq.load(path, loader=name)``). target: ``load(path, **options) -> list[Clip]``;
    a loader ignores options it does not know. suffixes: file suffixes it reads, e.g. ``(".bvh",)``.
    sniff: ``"module:attr"`` of ``sniff(path, head: bytes) -> bool``, asked when several loaders share a suffix.
    write: ``"module:attr"`` of ``write(clip, path, **options)``, used by ``optiq.save_clip``.
    """

    def __call__(self, name: str, target: Target, *, suffixes: tuple[str, ...] = (), sniff: str | None = None,
                 write: str | None = None, description: str = "") -> None: ...


class FormatRegister(Protocol):
    """``register`` of :func:`optiq_register_formats`: name, ``"module:FormatClass"``, dataset file suffixes."""

    def __call__(self, name: str, target: Target, *, suffixes: tuple[str, ...] = (),
                 description: str = "") -> None: ...


class Register(Protocol):
    """``register`` of the model, adapter and renderer hooks: name, target, and free-form metadata shown by
    ``optiq plugins list --json``."""

    def __call__(self, name: str, target: Target, *, description: str = "", **meta: Any) -> None: ...


@hookspec
def optiq_register_loaders(register: LoaderRegister) -> None:
    """Register motion file loaders: ``register("bvh", "pkg.mod:load_bvh", suffixes=(".bvh",))``."""


@hookspec
def optiq_register_formats(register: FormatRegister) -> None:
    """Register dataset formats: ``register("parquet", "pkg.mod:ParquetFormat", suffixes=(".parquet",))``."""


@hookspec
def optiq_register_models(register: Register) -> None:
    """Register model architectures: ``register("mlp", "pkg.mod:MLP", description="...")``."""


@hookspec
def optiq_register_adapters(register: Register) -> None:
    """Register RL adapters (feature extractors, observation/action adapters, envs): ``register(name, target)``."""


@hookspec
def optiq_register_renderers(register: Register) -> None:
    """Register visual outputs (html, video, ...): ``register("html", "pkg.mod:render_html")``."""


@hookspec
def optiq_register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``optiq`` click group: ``cli.add_command(my_command)``; keep their imports lazy."""
