"""What the commands that drive the Pulumi engine share: the session, the preview table, confirmation."""
from __future__ import annotations

import contextlib
from typing import Iterator

import typer

from .common import cluster_name, console, project, say


def ready(ctx: typer.Context, cluster: str) -> None:
    """Check what the engine will need before a command's first write (the spec stays as it was)."""
    from ..engine.session import check_machine
    from ..spec.load import load_cluster

    check_machine(load_cluster(project(ctx), cluster))


@contextlib.contextmanager
def engine_for(ctx: typer.Context, cluster: str | None, on_progress=None) -> Iterator:
    """The session's engine, with progress lines on the console (or where on_progress sends them)."""
    from ..engine.session import engine_session

    with engine_session(project(ctx), cluster_name(ctx, cluster),
                        on_progress=on_progress or (lambda line: say(("› ", "dim"), line))) as session:
        yield session.engine


def print_rows(rows) -> None:
    from rich.table import Table
    from rich.text import Text

    if not rows:
        console().print("engine: no resource changes")
        return
    t = Table(title="engine preview", title_justify="left", show_edge=False)
    for col in ("phase", "node", "resource", "op", "changed"):
        t.add_column(col)
    for r in rows:  # engine output is text, never markup
        # One line per changed property (`path: old → new`, secrets as [secret]); a replace
        # first says which properties force it.
        t.add_row(*(Text(v) for v in (r.phase, r.node, r.resource, r.op, "\n".join(r.describe()))))
    console().print(t)


def confirm(what: str, cluster: str, yes: bool, *, unattended: str = "pass --yes (a state snapshot is taken first)") -> None:
    import sys

    from ..errors import DyniaError

    if yes:
        return
    if not sys.stdin.isatty():
        raise DyniaError("config", f"{what} needs confirmation", unattended)
    answer = typer.prompt(f"{what}: type the cluster name ({cluster}) to confirm")
    if answer.strip() != cluster:
        raise DyniaError("config", "confirmation did not match; nothing was done", f"type {cluster} exactly, or pass --yes")
