"""dynia plan: what would change on which node, in rolling order (offline, or with the
Pulumi preview of each phase)."""
from __future__ import annotations

import dataclasses
import sys

import typer

from .common import (
    CLUSTER_OPT,
    JSON_OPT,
    Phase,
    PlanFormat,
    console,
    emit_json,
    usage_error,
)
from .render import rendering, warn_guard, warn_provider


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
    against: str = typer.Option(None, "--against", metavar="REF",
                                help="With --offline: diff against the spec and compose files at this git "
                                     "revision (e.g. origin/main) instead of the last apply; reads no .dynia/ state."),
) -> None:
    """Show what would change on which node, in rolling order, with the resource guard.

    Online (default) it adds the Pulumi preview of each phase; --offline needs no Pulumi.
    Every changed file comes with a line diff against what the node had at the last apply
    (or, with --against REF, against the render at that git revision).
    """
    show_plan(ctx, cluster, offline=offline, phase=phase, fmt=fmt, as_json=as_json,
              detailed_exitcode=detailed_exitcode, against=against)


def show_plan(ctx: typer.Context, cluster: str | None, *, offline: bool, phase: Phase | None = None,
              fmt: PlanFormat = PlanFormat.table, as_json: bool = False, detailed_exitcode: bool = False,
              against: str | None = None) -> None:
    """The plan itself, with plain defaults: other commands (`route plan`) call this, never the
    Typer function, whose defaults are option descriptions rather than values."""
    from ..errors import EXIT_CHANGES
    from ..plan.report import markdown, offline_plan, print_plan
    from ..state import cache

    if as_json and fmt is PlanFormat.markdown:
        raise usage_error("--json and --format markdown both choose the output; pick one", "--json")
    if against is not None and not offline:
        raise usage_error("--against compares two renders without Pulumi; add --offline", "--against")
    if against is not None:
        result, plan = _against(ctx, cluster, against)
    else:
        from ..resize import notices as resizes

        proj, c, result = rendering(ctx, cluster)
        store = cache.ClusterCache.of(c)
        plan = offline_plan(result, cache.applied(c), store.read_content)
        outputs = store.read_outputs()
        if outputs is not None:
            plan["notices"] = [*plan.get("notices", ()),
                               *resizes(c.spec, {n: a.size for n, a in outputs.nodes.items()})]
    rows = None
    if not offline:
        from ..phases import phases_from
        from ..render.lockout import notices
        from .engine_common import engine_for, print_rows

        with engine_for(ctx, cluster) as engine:
            rows = engine.preview(phases_from(phase.value if phase else None))
            locked_out = engine.excluded_pushers()
        plan["resources"] = [r.as_dict() for r in rows]
        plan["lockedOut"] = [dataclasses.asdict(e) for e in locked_out]
        plan["notices"] = [*plan.get("notices", ()), *notices(locked_out)]
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
    if against is None:
        warn_provider(c.spec)
        _warn_old_ranges(c.spec)
    if detailed_exitcode and plan["pending"]:
        raise typer.Exit(EXIT_CHANGES)


def _against(ctx: typer.Context, cluster: str | None, ref: str):
    """This render and the one at REF, both with planned addresses and no applied record:
    nothing of .dynia/ is read, so the comparison is the same on every machine."""
    from ..plan.against import load_at
    from ..plan.report import against_plan
    from ..render.rendering import render
    from ..spec.load import load_cluster
    from ..state.cache import merged_inventory
    from .common import cluster_name, project

    proj = project(ctx)
    name = cluster_name(ctx, cluster)
    current = load_cluster(proj, name)
    new = render(current, inventory=merged_inventory(current, None)[0], applied={})
    at = load_at(proj, name, ref)
    old = None if at.cluster is None else render(at.cluster, inventory=merged_inventory(at.cluster, None)[0], applied={})
    return new, against_plan(new, old, ref, at.commit)


def _warn_old_ranges(spec) -> None:
    import datetime as dt

    from ..operations.edge_ranges import age_warning

    warning = age_warning(dt.datetime.now(dt.timezone.utc).date(), spec)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
