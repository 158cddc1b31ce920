"""dynia's command line: parse, delegate, print. No Pulumi import happens here."""
from __future__ import annotations

import sys
import traceback
from pathlib import Path

import typer

from . import apply, cert, cluster, context, render, route, service, state
from .common import State

app = typer.Typer(
    name="dynia",
    help="Plan and roll small high-availability clusters (DigitalOcean + Cloudflare) node by node.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: Typer's Rich help pulls in rich.markdown and pygments (~180 ms).
    rich_markup_mode=None,
)
app.add_typer(context.app, name="context")
app.add_typer(cluster.app, name="cluster")
app.add_typer(service.app, name="service")
app.add_typer(route.app, name="route")
app.add_typer(state.app, name="state")
app.add_typer(cert.app, name="cert")
render.register(app)
apply.register(app)

# The callback's State, kept here too: errors are printed after click has left its context.
_state: State | None = None


@app.callback()
def main(
    ctx: typer.Context,
    directory: Path = typer.Option(Path("."), "--dir", "-C", help="Project directory (holds clusters/ and .dynia/)."),
    debug: bool = typer.Option(False, "--debug", help="On error, print the trace and where it was logged."),
) -> None:
    global _state
    _state = ctx.obj = State(root=directory.resolve(), debug=debug)


def _log_trace(root: Path) -> Path | None:
    logs = root / ".dynia" / "logs"
    try:
        logs.mkdir(parents=True, exist_ok=True)
        path = logs / "last-error.log"
        path.write_text(traceback.format_exc())
        return path
    except OSError:
        return None


def run() -> None:
    global _state
    from ..errors import EXIT_INTERNAL, DyniaError

    _state = None
    try:
        rc = app(standalone_mode=False)  # returns the code of a typer.Exit
        sys.exit(rc if isinstance(rc, int) else 0)
    except DyniaError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        print(f"hint: {exc.hint}", file=sys.stderr)
        if exc.resume:
            print(f"resume: {exc.resume}", file=sys.stderr)
        if _state and _state.debug:
            traceback.print_exc()
            log = _log_trace(_state.root)
            if log:
                print(f"log: {log}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # click's usage errors and real bugs
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            print("aborted", file=sys.stderr)
            sys.exit(1)
        print(f"error: internal error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        print("hint: this is a bug in dynia; rerun with --debug and report the trace", file=sys.stderr)
        if _state and _state.debug:
            traceback.print_exc()
        sys.exit(EXIT_INTERNAL)

