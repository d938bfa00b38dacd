"""What every command shares: the consoles and global flags (State), the error-to-exit-code group, --debug/-q.

Exit codes (docs/troubleshooting.md documents them as a contract): 0 success, 1 a check failed,
2 usage error, 3 bad input, 4 internal error, 130 interrupted (Ctrl-C), 141 stdout
closed early (``snr ... | head``), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import sys
import traceback
from typing import Any, Callable

import click

from .. import signals
from ..errors import EXIT_BROKEN_PIPE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED, SnrError
from ..safetext import printable

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class State:
    """What every command shares: the two consoles and the global flags."""

    def __init__(self) -> None:
        self.debug = False
        self.no_color = False
        self.quiet = False
        self.wide = False
        self.wrote: str | None = None   # the --out folder, once written

    @functools.cached_property
    def out(self):
        from .render import make_console
        return make_console(no_color=self.no_color)

    @functools.cached_property
    def err(self):
        from .render import make_console
        return make_console(stderr=True, no_color=self.no_color)

    def print_grids(self, grids) -> None:
        """Tables on stdout, fitted to the terminal's width (at full width with --wide)."""
        from .render import print_grids
        print_grids(self.out, grids, wide=self.wide)

    def warn(self, msg: str) -> None:
        if not self.quiet:
            click.echo(one_line(f"warning: {msg}"), err=True)


def one_line(text: object) -> str:
    """``text`` with control characters escaped (a newline as \\n, others as \\xNN, a lone surrogate
    from an undecodable file name as \\udcNN): a message stays one line, and a name in it cannot send
    escape sequences to the terminal (``safetext.printable``)."""
    return printable(text)


def get_state() -> State:
    ctx = click.get_current_context()
    ctx.ensure_object(State)
    return ctx.obj


class SnrGroup(click.Group):
    """Turns every error into one stderr line and its documented exit code; Ctrl-C, SIGTERM and a
    closed stdout too, whenever they happen (click alone would print "Aborted!" and exit 1)."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        previous = signals.install()
        try:
            if not standalone_mode:
                return super().main(args, prog_name, complete_var, False, **extra)
            try:
                rv = super().main(args, prog_name, complete_var, False, **extra)
                code = rv if isinstance(rv, int) else 0
            except click.ClickException as e:
                e.show()
                code = e.exit_code
            except (click.exceptions.Abort, KeyboardInterrupt, signals.Terminated) as e:
                code = _stopped(None, e)    # before or after the command ran (click turns ^C into Abort)
            signals.finishing()
            sys.exit(code)
        finally:
            signals.restore(previous)

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except (KeyboardInterrupt, signals.Terminated) as e:
            raise click.exceptions.Exit(_stopped(None, e)) from None
        except OSError as e:        # --help or --version into a closed pipe
            if e.errno != errno.EPIPE:
                raise
            _silence_stdout()
            raise click.exceptions.Exit(EXIT_BROKEN_PIPE) from None

    def invoke(self, ctx: click.Context) -> Any:
        ctx.ensure_object(State)  # created here, so flags given after the command reach it too
        try:
            try:
                rv = super().invoke(ctx)
            except click.exceptions.Exit:
                sys.stdout.flush()
                raise
            sys.stdout.flush()      # a closed stdout shows here, not when Python exits
            return rv
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except (KeyboardInterrupt, signals.Terminated) as e:
            ctx.exit(_stopped(ctx, e))
        except OSError as e:
            if e.errno == errno.EPIPE:   # snr ... | head: not an error, and not "a check failed"
                _silence_stdout()
                ctx.exit(EXIT_BROKEN_PIPE)
            self._failed(ctx, e)
        except Exception as e:  # noqa: BLE001 - the one place unexpected errors are turned into exit codes
            self._failed(ctx, e)

    def _failed(self, ctx: click.Context, e: Exception) -> None:
        if signals.interrupted_by() is not None:
            ctx.exit(_stopped(ctx, e))   # e.g. an import interrupted half-way raises ImportError
        if isinstance(e, SnrError):
            self._traceback(ctx)
            click.echo(one_line(f"error: {e}"), err=True)
            ctx.exit(e.exit_code)
        if self._traceback(ctx):
            click.echo(one_line(f"internal error: {type(e).__name__}: {e}"), err=True)
        else:
            text = " ".join(str(e).split())[:200]
            click.echo(one_line(f"internal error: {type(e).__name__}: {text}; run with --debug for the traceback"),
                       err=True)
        ctx.exit(EXIT_INTERNAL)

    @staticmethod
    def _traceback(ctx: click.Context) -> bool:
        state = ctx.find_object(State)
        if state is not None and state.debug:
            traceback.print_exc(file=sys.stderr)
            return True
        return False


def _stopped(ctx: click.Context | None, e: BaseException) -> int:
    """Ctrl-C or SIGTERM: one line, and the exit code (130 or 143)."""
    signals.finishing()
    term = isinstance(e, signals.Terminated) or signals.interrupted_by() == signal.SIGTERM
    state = ctx.find_object(State) if ctx is not None else None
    done = f"{state.wrote} was already written" if state is not None and state.wrote else "nothing was written"
    click.echo(one_line(f"{'terminated' if term else 'interrupted'}: stopped before finishing; {done}"), err=True)
    return EXIT_TERMINATED if term else EXIT_INTERRUPTED


def _silence_stdout() -> None:
    """After EPIPE: point stdout at /dev/null, so that Python's final flush does not fail again."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):
        pass                # not a real file (tests): nothing is flushed at exit


def common_flags(f: Callable) -> Callable:
    """--debug, --quiet, --no-color and --wide, accepted on every command as well as before it."""

    def set_flag(name):
        def cb(ctx, _param, value):
            if value:
                setattr(ctx.ensure_object(State), name, True)
            return value
        return cb

    f = click.option("--debug", is_flag=True, expose_value=False, callback=set_flag("debug"),
                     help="Show the full traceback on errors.")(f)
    f = click.option("--quiet", "-q", is_flag=True, expose_value=False, callback=set_flag("quiet"),
                     help="No progress and no warnings on stderr (tables and JSON still print).")(f)
    f = click.option("--wide", is_flag=True, expose_value=False, callback=set_flag("wide"),
                     help="Print tables at their full width (default: fit the terminal: names wrap, "
                          "wide tables are stacked; numbers are never cut).")(f)
    f = click.option("--no-color", is_flag=True, expose_value=False, callback=set_flag("no_color"),
                     help="No colour (also when NO_COLOR is set or output is not a terminal).")(f)
    return f
