"""What every command shares: the consoles and global flags (State), the error-to-exit-code group, --debug/-q.

Exit codes (README documents them as a contract): 0 success, 1 a check failed,
2 usage error, 3 bad input, 4 internal error, 130 interrupted.
"""

from __future__ import annotations

import functools
import sys
import traceback
from typing import Any, Callable

import click

from ..errors import EXIT_INTERNAL, EXIT_INTERRUPTED, SnrError
from ..safetext import printable

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class State:
    """What every command shares: the two consoles and the global flags."""

    def __init__(self) -> None:
        self.debug = False
        self.no_color = False
        self.quiet = False
        self.wide = False

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
            click.echo(f"warning: {printable(msg)}", err=True)


def get_state() -> State:
    ctx = click.get_current_context()
    ctx.ensure_object(State)
    return ctx.obj


class SnrGroup(click.Group):
    """Turns every error into one stderr line and its documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        ctx.ensure_object(State)  # created here, so flags given after the command reach it too
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except SnrError as e:
            self._traceback(ctx)
            click.echo(f"error: {printable(e)}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: stopped before finishing; nothing was written", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as e:  # noqa: BLE001 - the one place unexpected errors are turned into exit 4
            if self._traceback(ctx):
                click.echo(f"internal error: {type(e).__name__}: {printable(e)}", err=True)
            else:
                text = printable(" ".join(str(e).split())[:200])
                click.echo(f"internal error: {type(e).__name__}: {text}; run with --debug for the traceback",
                           err=True)
            ctx.exit(EXIT_INTERNAL)

    @staticmethod
    def _traceback(ctx: click.Context) -> bool:
        state = ctx.find_object(State)
        if state is not None and state.debug:
            traceback.print_exc(file=sys.stderr)
            return True
        return False


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
