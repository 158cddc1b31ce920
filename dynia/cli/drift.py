"""dynia drift-check / dynia repair: what differs on the nodes from the render, and putting it back."""
from __future__ import annotations

import typer

from .common import (
    CLUSTER_OPT,
    JSON_OPT,
    cluster_name,
    console,
    emit_json,
    project,
    say,
)

YES_OPT = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")


def register(app: typer.Typer) -> None:
    app.command("drift-check")(drift_check_cmd)
    app.command("repair")(repair_cmd)


def drift_check_cmd(
    ctx: typer.Context,
    cluster: str = CLUSTER_OPT,
    as_json: bool = JSON_OPT,
    timeout: float = typer.Option(10.0, "--timeout", min=0.5, max=300.0, help="Seconds each node may take to answer."),
) -> None:
    """Per node, per managed file: missing, content (whitespace only or real), mode, owner,
    immutable bit, leftovers, running image; per node, infra components and services stopped
    where they should run. Exit 0: no drift; 3: drift; 14: a node did not answer.

    Reads the nodes over SSH (one round trip each, in parallel); no Pulumi.
    """
    from ..operations import drift
    from ..spec.load import load_cluster

    c = load_cluster(project(ctx), cluster_name(ctx, cluster))
    report, _ = drift.check(c, timeout=timeout)
    if as_json:
        emit_json(report.as_dict())
    else:
        print_report(report)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def print_report(report) -> None:
    from rich.table import Table
    from rich.text import Text

    t = Table(title=f"drift: {report.cluster}", title_justify="left", show_edge=False)
    for col in ("node", "kind", "target", "layer", "detail"):
        t.add_column(col)
    for n in report.nodes:
        if n.error:
            t.add_row(Text(n.node), Text("error", style="red"), Text(""), Text(""), Text(n.error))
        elif not n.drift and not n.warnings:
            t.add_row(Text(n.node), Text("ok", style="green"), Text(""), Text(""), Text(""))
        for w in n.warnings:
            t.add_row(Text(n.node), Text("not checked", style="red"), Text(""), Text(""), Text(w))
        for d in n.drift:  # node output is text, never markup
            t.add_row(Text(n.node), Text(d.kind, style="yellow"), Text(d.target), Text(d.layer or "by hand"),
                      Text(d.detail))
    console().print(t)
    say((report.verdict(), "bold"))


def repair_cmd(
    ctx: typer.Context,
    node: str = typer.Option(None, "--node", help="Repair only this node."),
    cluster: str = CLUSTER_OPT,
    yes: bool = YES_OPT,
    as_json: bool = JSON_OPT,
    timeout: float = typer.Option(10.0, "--timeout", min=0.5, max=300.0, help="Seconds each node may take to answer the checks."),
) -> None:
    """Re-apply exactly the drifted nodes and layers, in rolling order, through the apply protocol
    (backup, validate, reload, health gate, rollback); then check again.

    A node whose gate fails is rolled back and stops the repair (exit 16).
    """
    from ..operations import drift
    from ..operations.repair import repair
    from ..spec.load import load_cluster
    from ..state.store import cluster_lock
    from .engine_common import confirm

    proj, name = project(ctx), cluster_name(ctx, cluster)
    progress = (lambda line: None) if as_json else (lambda line: say(("› ", "dim"), line))
    with cluster_lock(proj, name):
        c = load_cluster(proj, name)
        if node is not None and node not in c.spec.nodes:
            from ..errors import DyniaError

            raise DyniaError("config", f"{node} is not a node of {name}", f"pick one of: {', '.join(c.spec.nodes)}")
        if not yes:
            report, _ = drift.check(c, timeout=timeout)
            if as_json:  # stdout carries JSON only; the table would break it
                if not report.drifted:
                    emit_json(report.as_dict())
            else:
                print_report(report)
            if not report.drifted:
                raise typer.Exit(report.exit_code)
            confirm(f"repair {', '.join(n for n in report.drifted if node is None or n == node)}", name, yes,
                    unattended="pass --yes to repair without asking (nothing is pushed until you confirm)")
        result = repair(c, node=node, on_progress=progress, timeout=timeout)
    if as_json:
        emit_json(result.as_dict())
    elif result.after is not None:
        print_report(result.after)
    after = result.after
    if after is not None and after.exit_code:
        if after.drifted and not as_json:
            say(("drift remains after the repair: see above", "red"))
        raise typer.Exit(after.exit_code)
