"""dynia plan: what would change on which node, in rolling order (offline, or with the
Pulumi preview of each phase)."""
from __future__ import annotations

import sys

import typer

from .common import CLUSTER_OPT, JSON_OPT, Phase, PlanFormat, console, emit_json, usage_error
from .render import rendering, warn_guard


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_cmd)


def plan_cmd(
    ctx: typer.Context,
    offline: bool = typer.Option(False, "--offline", help="Only the file diff against the last applied manifest; no Pulumi, no network."),
    phase: Phase = typer.Option(None, "--phase", help="Preview from this phase on."),
    fmt: PlanFormat = typer.Option(PlanFormat.table, "--format", help="markdown: a pull-request comment."),
    cluster: str = CLUSTER_OPT,
    as_json: bool = JSON_OPT,
    detailed_exitcode: bool = typer.Option(False, "--detailed-exitcode", help="Exit 3 when changes are pending."),
) -> None:
    """Show what would change on which node, in rolling order, with the resource guard.

    Online (default) it adds the Pulumi preview of each phase; --offline needs no Pulumi.
    """
    from .. import cache
    from ..errors import EXIT_CHANGES
    from ..report import markdown, offline_plan, print_plan

    if as_json and fmt is PlanFormat.markdown:
        raise usage_error("--json and --format markdown both choose the output; pick one", "--json")
    proj, c, result = rendering(ctx, cluster)
    plan = offline_plan(result, cache.applied(c))
    rows = None
    if not offline:
        from ..phases import phases_from
        from .engine_common import engine_for, print_rows

        with engine_for(ctx, cluster) as engine:
            rows = engine.preview(phases_from(phase.value if phase else None))
        plan["resources"] = [r.as_dict() for r in rows]
        plan["pending"] += len(rows)
    if as_json:
        emit_json(plan)
    elif fmt is PlanFormat.markdown:
        sys.stdout.write(markdown(plan))
    else:
        print_plan(plan, console())
        if rows is not None:
            print_rows(rows)
    result.guard.enforce()
    warn_guard(result)
    if detailed_exitcode and plan["pending"]:
        raise typer.Exit(EXIT_CHANGES)
