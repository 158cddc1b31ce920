"""dynia state: snapshots of the spec and every phase's Pulumi state."""
from __future__ import annotations

import typer

from .common import CLUSTER_OPT, JSON_OPT, emit_json, say
from .engine_common import engine_for

app = typer.Typer(help="Snapshot, list and revert cluster state (spec + Pulumi stacks).", no_args_is_help=True,
                  rich_markup_mode=None)


@app.command("snapshot")
def snapshot_cmd(ctx: typer.Context, cluster: str = CLUSTER_OPT) -> None:
    """Save the spec and export every phase's stack (last 5 kept)."""
    from ..operations import snapshots

    with engine_for(ctx, cluster) as engine:
        say(f"snapshot {snapshots.take(engine, 'manual')}")


@app.command("list")
def list_cmd(ctx: typer.Context, cluster: str = CLUSTER_OPT, as_json: bool = JSON_OPT) -> None:
    """List the snapshots, oldest first."""
    from ..operations import snapshots
    from .common import cluster_name, project

    items = snapshots.describe(project(ctx), cluster_name(ctx, cluster))  # no engine needed
    if as_json:
        emit_json(items)
    else:
        for s in items:
            say(f"{s['id']}  ({s['reason']})")
        if not items:
            say("no snapshots")


@app.command("revert")
def revert_cmd(ctx: typer.Context, snapshot_id: str = typer.Argument(..., help="A snapshot id from `dynia state list`."), cluster: str = CLUSTER_OPT) -> None:
    """Import every phase's stack from a snapshot, then restore its spec."""
    from ..operations import snapshots
    from .common import cluster_name, project

    snapshots.revert(project(ctx), cluster_name(ctx, cluster), snapshot_id,
                     on_progress=lambda line: say(("› ", "dim"), line))
    say(f"reverted to {snapshot_id}; run `dynia plan` to see what the nodes need")
