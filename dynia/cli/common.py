"""What every command group shares: the project, the selected cluster, output helpers.

Kept free of heavy imports: `dynia --help` must start fast.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import typer

from . import complete

JSON_OPT = typer.Option(False, "--json", help="Print machine-readable JSON.")
CLUSTER_OPT = typer.Option(None, "--cluster", "-c", help="Cluster name (default: DYNIA_CLUSTER, then `dynia context use`).",
                           autocompletion=complete.clusters)


# Choices are click choices, so a wrong value is a usage error (exit 2, completion offers them),
# never a config error: the spec is not what is wrong. Kept equal to dynia.phases.PHASES by
# tests/unit/test_phases_and_order.py (importing phases here would slow every start-up).
class Phase(str, Enum):
    provision = "provision"
    infra = "infra"
    apps = "apps"


class Placement(str, Enum):  # kept equal to spec.Service.placement by tests/cli/test_options.py
    all = "all"
    active_only = "active-only"
    standby_only = "standby-only"


class PlanFormat(str, Enum):
    table = "table"
    markdown = "markdown"


def usage_error(message: str, param_hint: str):
    """A usage error raised from inside a command: exit 2, `error:` and `hint:` like click's own."""
    return typer.BadParameter(message, param_hint=param_hint)


@dataclass
class GlobalOptions:
    """What `dynia -C DIR --debug …` said before the command."""
    root: Path
    debug: bool = False


def global_options(ctx: typer.Context) -> GlobalOptions:
    obj = ctx.find_root().obj
    if obj is None:  # invoked without the root callback (tests calling a sub-app)
        obj = GlobalOptions(Path(os.getcwd()))
    return obj


def project(ctx: typer.Context):
    from ..state.store import Project

    return Project(global_options(ctx).root)


def cluster_name(ctx: typer.Context, explicit: str | None) -> str:
    from ..spec.selection import resolve

    return resolve(project(ctx), explicit)


_console = None


def console():
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(highlight=False)
        if not _console.is_terminal:  # pipes and CI logs: do not cut paths at 80 columns
            _console = Console(highlight=False, width=160)
        _console.push_render_hook(_escaping())
        # Rich exits 1 when the reader of a pipe leaves (`dynia plan | head`); 1 means a bug
        # here, so leave as a shell does after SIGPIPE instead.
        _console.on_broken_pipe = _reader_left
    return _console


def _escaping():
    """The render hook that makes every table and line this console prints terminal-safe
    (dynia.shown): printers pass text they did not write as it is, and it is escaped here, before
    layout, so columns are measured on what is shown."""
    from rich.console import RenderHook
    from rich.table import Table
    from rich.text import Text

    from ..shown import UNSAFE, escape

    def text(t):
        if isinstance(t, str):
            return escape(t)
        if not isinstance(t, Text) or not UNSAFE.search(t.plain):
            return t
        # Escaping lengthens the text: rebuild it piece by piece between style boundaries.
        out = t.blank_copy()
        cuts = sorted({0, len(t.plain), *(s.start for s in t.spans), *(s.end for s in t.spans)})
        for a, b in zip(cuts, cuts[1:]):
            start = len(out.plain)
            out.append(escape(t.plain[a:b]))
            for span in t.spans:
                if span.start <= a and b <= span.end:
                    out.stylize(span.style, start, len(out.plain))
        return out

    def renderable(r):
        if isinstance(r, Table):
            r.title, r.caption = text(r.title), text(r.caption)
            for column in r.columns:
                column.header = text(column.header)
                column._cells[:] = [text(c) for c in column._cells]
            return r
        return text(r)

    class Escaping(RenderHook):
        def process_renderables(self, renderables):
            return [renderable(r) for r in renderables]

    return Escaping()


def _reader_left() -> None:
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    raise SystemExit(141)


def emit_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


# Output carries user text (cluster names, paths, service names, remote output): it is never
# read as Rich markup, where `[/x]` raises and `proj[red]old` loses its brackets.
def say(*parts: str | tuple[str, str]) -> None:
    """One line from plain-text parts; a part may be (text, style), e.g. ("(from env)", "dim")."""
    from rich.text import Text

    console().print(Text.assemble(*parts))


def next_step(command: str) -> None:
    say("next: ", (command, "bold"))


def command_words(ctx: typer.Context) -> str:
    """The command as the operator typed it, without the program's name: "service deploy"."""
    words = []
    at = ctx
    while at.parent is not None:
        words.append(at.info_name or "")
        at = at.parent   # type: ignore[assignment]  # click's Context, which typer's is
    return " ".join(reversed(words))
