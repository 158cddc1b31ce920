"""What the commands that drive the Pulumi engine share: load, lock, probe the holder, print progress."""
from __future__ import annotations

import contextlib
from typing import Iterator

import typer

from .common import cluster_name, console, project


def ready(ctx: typer.Context, cluster: str) -> None:
    """Check what the engine will need before a command's first write (the spec stays as it was)."""
    from ..engine import preflight
    from ..store import load_cluster

    spec = load_cluster(project(ctx), cluster).spec
    preflight(spec.provider.kind, spec.backend)


@contextlib.contextmanager
def engine_for(ctx: typer.Context, cluster: str | None, before_load=None) -> Iterator:
    from ..engine import Engine, preflight
    from ..nodes.probe import targets_from_cache, vip_holder
    from ..store import cluster_lock, load_cluster

    proj = project(ctx)
    name = cluster_name(ctx, cluster)
    with cluster_lock(proj, name):
        if before_load is not None:  # e.g. revert restores the spec before it is read
            before_load(proj, name)
        c = load_cluster(proj, name)
        preflight(c.spec.provider.kind, c.spec.backend)
        targets = targets_from_cache(c)
        holder = vip_holder(targets) if targets else None
        yield Engine(c, holder=holder, on_progress=lambda line: console().print(f"[dim]›[/] {line}"))


def phases_from(phase: str | None) -> tuple[str, ...]:
    from ..engine import PHASES
    from ..errors import DyniaError

    if phase is None:
        return PHASES
    if phase not in PHASES:
        raise DyniaError("config", f"--phase {phase!r} is not a phase", f"use one of: {', '.join(PHASES)}")
    return PHASES[PHASES.index(phase):]


def print_rows(rows) -> None:
    from rich.table import Table

    if not rows:
        console().print("engine: no resource changes")
        return
    t = Table(title="engine preview", title_justify="left", show_edge=False)
    for col in ("phase", "node", "resource", "op", "changed"):
        t.add_column(col)
    for r in rows:
        t.add_row(r.phase, r.node, r.resource, r.op, ", ".join(r.changed))
    console().print(t)


def confirm(what: str, cluster: str, yes: bool) -> None:
    import sys

    from ..errors import DyniaError

    if yes:
        return
    if not sys.stdin.isatty():
        raise DyniaError("config", f"{what} needs confirmation", "pass --yes (a state snapshot is taken first)")
    answer = typer.prompt(f"{what}: type the cluster name ({cluster}) to confirm")
    if answer.strip() != cluster:
        raise DyniaError("config", "confirmation did not match; nothing was done", f"type {cluster} exactly, or pass --yes")
