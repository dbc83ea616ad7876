"""Entry point of the ``optiq`` CLI.

Every failure prints one line on stderr and sets the exit code:

- ``optiq: error: ...``, exit 2: errors a user can fix (``OptiqError``) and usage errors (a bad option value, a
  missing option, an unknown command);
- ``optiq: interrupted``, exit 130 (Ctrl-C); ``optiq: terminated``, exit 143 (SIGTERM, as sent by ``timeout``,
  schedulers and containers): both unwind through the atomic writes, so no partial output or part file is left;
- ``optiq: error: internal error: ...``, exit 1: a bug (please report it).

``--debug`` shows the traceback instead. ``--debug`` and ``-q/--quiet`` are accepted before or after any subcommand.
Plugin subcommands are added through ``optiq_register_commands``.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings

import click

from ..errors import OptiqError, OptiqWarning, Terminated

GLOBAL_FLAGS = {"debug": ("--debug",), "quiet": ("--quiet", "-q")}


def _on_sigterm(signum, frame) -> None:
    if os.getpid() != _on_sigterm.pid:
        # A forked worker (a process pool) inherits the handler: it dies as by default; its parent reports.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if _on_sigterm.received:
        return  # already unwinding: a second signal must not interrupt the clean-up (removing a part file)
    _on_sigterm.received = True
    raise Terminated()


_on_sigterm.pid = os.getpid()
_on_sigterm.received = False


def install_sigterm_handler() -> None:
    """Turn SIGTERM into ``Terminated`` in this process (the main thread only: that is where Python runs
    handlers), so that it unwinds through clean-up code like Ctrl-C does."""
    _on_sigterm.pid = os.getpid()
    _on_sigterm.received = False
    signal.signal(signal.SIGTERM, _on_sigterm)


def _usage_line(exc: click.UsageError) -> str:
    where = exc.ctx.command_path if exc.ctx else "optiq"
    message = " ".join(exc.format_message().split())  # one line even when click's message has several
    return f"optiq: error: {message.rstrip('.')} (see '{where} --help')"


class _Group(click.Group):
    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise  # click prints the help
        except click.UsageError as exc:  # options of the root group itself (``optiq --bogus``)
            click.echo(_usage_line(exc), err=True)
            raise click.exceptions.Exit(2) from exc

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort, click.exceptions.NoArgsIsHelpError):
            raise
        except click.UsageError as exc:
            click.echo(_usage_line(exc), err=True)
            ctx.exit(2)
        except click.ClickException as exc:
            click.echo(f"optiq: error: {exc.format_message()}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("optiq: interrupted", err=True)
            ctx.exit(130)
        except Terminated:
            _terminated(ctx)
        except BrokenPipeError:
            # The reader of our output went away (``optiq data info x | head``): stop quietly, as Unix tools do,
            # and keep Python from reporting the same broken pipe again when it flushes stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(141)
        except Exception as exc:
            if _on_sigterm.received:
                _terminated(ctx)
            if _debug(ctx):
                raise
            if isinstance(exc, OptiqError):
                click.echo(f"optiq: error: {exc}", err=True)
                ctx.exit(2)
            message = " ".join(str(exc).split())
            click.echo(f"optiq: error: internal error: {type(exc).__name__}: {message} "
                       "(run with --debug for the traceback; please report it)", err=True)
            ctx.exit(1)


def _terminated(ctx: click.Context) -> None:
    """Exit as terminated; also for an error that a SIGTERM caused after its own exception (a process pool whose
    workers the signal killed too)."""
    click.echo("optiq: terminated", err=True)
    ctx.exit(143)


def _debug(ctx: click.Context) -> bool:
    return bool(ctx.obj and ctx.obj.get("debug"))


@click.group("optiq", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors (also after a subcommand).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars (also after a subcommand).")
@click.version_option(package_name="optiq-core", prog_name="optiq")
@click.pass_context
def cli(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """optiq: imitation-first motion learning."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["quiet"] = quiet or not sys.stderr.isatty()


def _set_global_flag(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().ensure_object(dict)[param.name] = True


def add_global_flags(command: click.Command) -> None:
    """Accept ``--debug`` and ``-q/--quiet`` on ``command`` and every subcommand below it (hidden from their help:
    the root's help lists them). A command that defines one of these names itself keeps its own."""
    if command is not cli:
        taken = {opt for p in command.params for opt in [*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ())]}
        names = {p.name for p in command.params}
        for name, opts in GLOBAL_FLAGS.items():
            free = tuple(o for o in opts if o not in taken)
            if free and name not in names:
                command.params.append(click.Option((name, *free), is_flag=True, expose_value=False, hidden=True,
                                                   callback=_set_global_flag))
    for sub in getattr(command, "commands", {}).values():
        add_global_flags(sub)


def build_cli() -> click.Group:
    """The CLI with core commands and every plugin's commands."""
    from ..plugins import get_manager
    from .data import data
    from .groups import SHARED_GROUPS
    from .plugins_cmd import plugins

    cli.add_command(plugins)
    cli.add_command(data)
    # Core owns the groups that several packages extend (optiq train model, optiq train rl): added before the
    # plugins' commands, so that a plugin adds to them instead of registering a clashing `train`.
    for group in SHARED_GROUPS.values():
        cli.add_command(group)
    get_manager().add_commands(cli)
    add_global_flags(cli)
    return cli


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line each, like errors (Python's default prints the source line under it)."""
    text = " ".join(str(message).split())
    if not issubclass(category, OptiqWarning):
        text = f"{category.__name__}: {text}"
    click.echo(f"optiq: warning: {text}", err=True)


def main(argv: list[str] | None = None) -> None:
    install_sigterm_handler()
    warnings.showwarning = _show_warning
    try:
        build_cli().main(args=argv, prog_name="optiq")
    except Terminated:  # outside a command (while parsing): nothing to clean up
        click.echo("optiq: terminated", err=True)
        sys.exit(143)


if __name__ == "__main__":
    main()
