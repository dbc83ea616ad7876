"""The command groups that several packages extend: ``optiq train`` and ``optiq eval``.

Core owns the groups; a package adds its subcommands to them from its ``optiq_register_commands`` hook::

    @optiq.hookimpl
    def optiq_register_commands(cli):
        from optiq.cli.groups import shared_group
        shared_group(cli, "train").add_command(train_model)   # optiq train model
        shared_group(cli, "eval").add_command(eval_model)     # optiq eval model

Two packages adding ``train`` is therefore no clash: they add to the same group. Two packages adding the same
subcommand (``optiq train model``) are, and are reported like any command clash.
"""

from __future__ import annotations

import click


@click.group("train")
def train_group() -> None:
    """Train models (each package adds its kind: optiq train model, optiq train rl)."""


@click.group("eval")
def eval_group() -> None:
    """Evaluate trained models (optiq eval model, optiq eval rl)."""


#: name -> the core group of that name.
SHARED_GROUPS: dict[str, click.Group] = {"train": train_group, "eval": eval_group}


def shared_group(cli: click.Group, name: str) -> click.Group:
    """The shared group ``name`` of the CLI ``cli`` (the one a plugin's ``optiq_register_commands`` receives),
    added to it when it is not there yet. A plugin attaches its subcommands to what this returns."""
    if name not in SHARED_GROUPS:
        raise KeyError(f"no shared command group {name!r}; shared groups: {', '.join(SHARED_GROUPS)}")
    group = cli.commands.get(name)
    if not isinstance(group, click.Group):
        group = SHARED_GROUPS[name]
        cli.add_command(group)
    return group
