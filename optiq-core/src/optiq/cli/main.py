"""Entry point of the ``optiq`` CLI.

Errors a user can fix (``OptiqError``) print one line, ``optiq: error: ...``, and exit 2; ``--debug`` shows the
traceback. Plugin subcommands are added through ``optiq_register_commands``.
"""

from __future__ import annotations

import sys

import click

from ..errors import OptiqError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OptiqError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"optiq: error: {exc}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("optiq: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.version_option(package_name="optiq-core", prog_name="optiq")
@click.pass_context
def cli(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """optiq: imitation-first motion learning."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["quiet"] = quiet or not sys.stderr.isatty()


def build_cli() -> click.Group:
    """The CLI with core commands and every plugin's commands."""
    from ..plugins import get_manager
    from .data import data
    from .plugins_cmd import plugins

    cli.add_command(plugins)
    cli.add_command(data)
    get_manager().add_commands(cli)
    return cli


def main(argv: list[str] | None = None) -> None:
    build_cli().main(args=argv, prog_name="optiq")


if __name__ == "__main__":
    main()
