"""optiq's hook specifications (pluggy project ``optiq``, entry-point group ``optiq``).

Registrar style: each hook receives a ``register`` callable and registers named capabilities with lazy
``"module:attr"`` targets, so that listing plugins imports none of their heavy dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    import click

hookspec = pluggy.HookspecMarker("optiq")


class LoaderRegister(Protocol):
    def __call__(self, name: str, load: str, *, suffixes: tuple[str, ...] = (), sniff: str | None = None,
                 write: str | None = None, description: str = "") -> None: ...


class FormatRegister(Protocol):
    def __call__(self, name: str, target: str, *, suffixes: tuple[str, ...] = (), description: str = "") -> None: ...


class Register(Protocol):
    def __call__(self, name: str, target: str, *, description: str = "", **meta: Any) -> None: ...


@hookspec
def optiq_register_loaders(register: LoaderRegister) -> None:
    """Register motion file loaders: ``register(name, "module:load", suffixes=(".bvh",), sniff=None, write=None)``."""


@hookspec
def optiq_register_formats(register: FormatRegister) -> None:
    """Register dataset formats: ``register(name, "module:FormatClass", suffixes=(".parquet",))``."""


@hookspec
def optiq_register_models(register: Register) -> None:
    """Register model architectures: ``register(name, "module:ModelClass", description="...")``."""


@hookspec
def optiq_register_adapters(register: Register) -> None:
    """Register RL adapters (feature extractors, observation/action adapters, envs): ``register(name, "module:attr")``."""


@hookspec
def optiq_register_renderers(register: Register) -> None:
    """Register visual outputs (html, video, ...): ``register(name, "module:render_function")``."""


@hookspec
def optiq_register_commands(cli: click.Group) -> None:
    """Add CLI subcommands to the ``optiq`` click group: ``cli.add_command(my_command)``."""
