"""dynia's command line: parse, delegate, print. No Pulumi import happens here.

The console script enters through `dynia.__main__.main`, which also turns a Ctrl-C during
these imports into one line and exit 130.
"""
from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

import typer

from ..errors import EXIT_INTERNAL, DyniaError
from ..shown import escape
from . import (cert, cluster, context, drift, edge, logs, plan, releases, render, rollback, route, schema, secret,
               service, state, status, tasks, up, verify)
from .common import GlobalOptions

app = typer.Typer(
    name="dynia",
    help="Plan and roll small high-availability clusters (DigitalOcean + Cloudflare) node by node.",
    no_args_is_help=True,
    # --install-completion/--show-completion: typer imports its completion code either way, so
    # they cost no measurable start-up time (A/B of `dynia --help`, 42 runs each).
    add_completion=True,
    pretty_exceptions_enable=False,
    # Plain click help: Typer's Rich help pulls in rich.markdown and pygments (~180 ms).
    rich_markup_mode=None,
)
app.add_typer(context.app, name="context")
app.add_typer(cluster.app, name="cluster")
app.add_typer(service.app, name="service")
app.add_typer(route.app, name="route")
app.add_typer(secret.app, name="secret")
app.add_typer(state.app, name="state")
app.add_typer(cert.app, name="cert")
app.add_typer(edge.app, name="edge")
for group in (schema, render, plan, up, status, drift, releases, rollback, logs, tasks):
    group.register(app)
verify.register(up.infra_app)

# The callback's options, kept here too: errors are printed after click has left its context.
_options: GlobalOptions | None = None


def _print_version(requested: bool) -> None:
    if requested:
        from importlib.metadata import version

        print(f"dynia {version('dynia')}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    directory: Path = typer.Option(Path("."), "--dir", "-C", help="Project directory (holds clusters/ and .dynia/)."),
    debug: bool = typer.Option(False, "--debug", help="On error, print the trace and where it was logged."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print dynia's version and exit."),
) -> None:
    global _options
    _options = ctx.obj = GlobalOptions(root=directory.resolve(), debug=debug)


def _trace(exc: BaseException) -> str:
    """The trace, and what a typed error was raised from: a failed `pulumi` or node command's
    full output (the error itself names only its last line)."""
    text = "".join(traceback.format_exception(exc))
    if exc.__suppress_context__ and exc.__context__ is not None:
        text = "".join(traceback.format_exception(exc.__context__)) + "\nwhich dynia reported as:\n\n" + text
    return text


def _log_trace(root: Path, exc: BaseException) -> Path | None:
    logs = root / ".dynia" / "logs"
    try:
        logs.mkdir(parents=True, exist_ok=True)
        path = logs / "last-error.log"
        path.write_text(_trace(exc))
        return path
    except OSError:
        return None


def _is_usage_error(exc: Exception) -> bool:
    """click's usage errors, whichever click raised them: typer ≤0.25 uses the `click` package,
    typer ≥0.26 a vendored copy (typer._click) and no longer installs click. Both keep
    ClickException's API, so the API is what is checked, never the class."""
    return isinstance(getattr(exc, "exit_code", None), int) and callable(getattr(exc, "format_message", None))


def _usage_error(exc: Any) -> None:  # click's ClickException, whichever click (_is_usage_error)
    if type(exc).__name__ == "NoArgsIsHelpError":  # bare `dynia` / `dynia service`: the help is the answer
        exc.show()
        sys.exit(exc.exit_code)
    print(f"error: {escape(' '.join(exc.format_message().split()))}", file=sys.stderr)
    print(f"hint: run `{_command_path(exc)} --help`", file=sys.stderr)
    sys.exit(exc.exit_code)


def _command_path(exc: Exception) -> str:
    """`dynia service add` for the hint. The option parser raises without a context (`--cluster`
    with no value), so fall back to the deepest context on the way the error came up."""
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        found, tb = [], exc.__traceback__
        while tb is not None:
            found.append(tb.tb_frame.f_locals.get("ctx"))
            tb = tb.tb_next
        ctx = next((c for c in reversed(found) if hasattr(c, "command_path")), None)
    return ctx.command_path if ctx is not None else "dynia"


def _fail(exc: DyniaError) -> None:
    # Messages quote what dynia did not write (node answers, names, refs): shown escaped.
    print(f"error: {escape(exc.message)}", file=sys.stderr)
    print(f"hint: {escape(exc.hint)}", file=sys.stderr)
    if exc.resume:
        print(f"resume: {escape(exc.resume)}", file=sys.stderr)
    if _debug():
        print(escape(_trace(exc)), end="", file=sys.stderr)
        log = _log_trace(_root(), exc)
        if log:
            print(f"log: {log}", file=sys.stderr)
    sys.exit(exc.exit_code)


def _internal(exc: Exception) -> None:
    """A bug: the trace is always logged (a report needs it, and the run may not repeat)."""
    log = _log_trace(_root(), exc)
    print(f"error: internal error: {exc.__class__.__name__}: {escape(str(exc))}", file=sys.stderr)
    where = f"the trace is in {log}" if log else "the trace could not be logged"
    if _debug():
        print(escape(_trace(exc)), end="", file=sys.stderr)
        print(f"hint: this is a bug in dynia; report it with the trace ({where})", file=sys.stderr)
    else:
        print(f"hint: this is a bug in dynia; report it with the trace ({where}; --debug prints it)", file=sys.stderr)
    sys.exit(EXIT_INTERNAL)


def _debug() -> bool:
    return bool(_options and _options.debug)


def _root() -> Path:
    return _options.root if _options else Path(os.getcwd())


_DEBUG = "--debug"


def _arguments() -> list[str]:
    """The command line with --debug moved in front of the command: it is a global option, and
    `dynia plan --offline --debug` (added while looking at an error) must mean the same as
    `dynia --debug plan --offline`. No dynia option takes a value that could be `--debug`."""
    args = sys.argv[1:]
    if _DEBUG not in args:
        return args
    return [_DEBUG] + [a for a in args if a != _DEBUG]


def run() -> None:
    """Run the app; every outcome is an exit code. Ctrl-C propagates as KeyboardInterrupt to
    `dynia.__main__.main`, the one place that reports it."""
    global _options
    _options = None
    try:
        rc = app(args=_arguments(), standalone_mode=False)  # returns the code of a typer.Exit
    except DyniaError as exc:
        _fail(exc)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BrokenPipeError:
        _reader_left()
    except typer.Abort as exc:  # typer ≤0.25 turns Ctrl-C into Abort; every typer does so for EOF at a prompt
        if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from exc
        _fail(DyniaError("config", "a prompt got no answer (end of input); nothing was done",
                         "answer the prompt, or pass --yes where the command offers it"))
    except Exception as exc:
        if _is_usage_error(exc):
            _usage_error(exc)
        _internal(exc)
    if rc == 130:  # typer ≥0.26 turns Ctrl-C into Exit(130); no dynia command exits 130 itself
        raise KeyboardInterrupt
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _reader_left()
    sys.exit(rc if isinstance(rc, int) else 0)


def _reader_left() -> None:
    """`dynia plan --json | head`: the reader left. Nothing more can be printed: exit as a shell
    would after SIGPIPE (141), and keep Python from complaining when it flushes stdout at exit."""
    from .common import _reader_left as leave

    leave()
