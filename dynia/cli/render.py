"""dynia schema | render | plan: from the spec to files, and what would change where."""
from __future__ import annotations

import sys

import typer

from .common import CLUSTER_OPT, JSON_OPT, cluster_name, console, emit_json, next_step, project, say


def register(app: typer.Typer) -> None:
    app.command("schema")(schema_cmd)
    app.command("render")(render_cmd)
    app.command("plan")(plan_cmd)


def schema_cmd() -> None:
    """Print the cluster spec's JSON Schema (for editor validation)."""
    from ..spec import json_schema

    emit_json(json_schema())


def _rendering(ctx, cluster):
    from ..render import render
    from ..store import load_cluster

    proj = project(ctx)
    c = load_cluster(proj, cluster_name(ctx, cluster))
    return proj, c, render(c)


def _warn_guard(rendering) -> None:
    for row in rendering.guard.exceeded:
        print(f"warning: resource guard: node {row.node} would use {row.ratio:.0%} of its "
              f"{row.ram_mib} MiB RAM (threshold {rendering.guard.threshold:.0%})", file=sys.stderr)


def render_cmd(ctx: typer.Context, cluster: str = CLUSTER_OPT, as_json: bool = JSON_OPT) -> None:
    """Render deploy-config/<cluster>/ from the spec (pure: no network)."""
    from ..render import write_deploy_config

    proj, c, rendering = _rendering(ctx, cluster)
    rendering.guard.enforce()
    _warn_guard(rendering)
    out = proj.deploy_dir(c.name)
    write_deploy_config(rendering, out)
    meta = rendering.cluster_metadata()
    if as_json:
        emit_json({"path": str(out), **meta})
        return
    files = sum(len(f) for f in rendering.files.values())
    say(f"rendered {files} files for {len(rendering.files)} node(s) into {out} "
        f"(config v{rendering.config_version}, spec {rendering.spec_hash[:12]})")
    next_step(f"dynia plan --offline --cluster {c.name}")


def plan_cmd(
    ctx: typer.Context,
    offline: bool = typer.Option(False, "--offline", help="Only the file diff against the last applied manifest; no Pulumi, no network."),
    phase: str = typer.Option(None, "--phase", help="Preview from this phase on (provision, infra, apps)."),
    fmt: str = typer.Option("table", "--format", help="table | markdown (a PR comment)."),
    cluster: str = CLUSTER_OPT,
    as_json: bool = JSON_OPT,
    detailed_exitcode: bool = typer.Option(False, "--detailed-exitcode", help="Exit 3 when changes are pending."),
) -> None:
    """Show what would change on which node, in rolling order, with the resource guard.

    Online (default) it adds the Pulumi preview of each phase; --offline needs no Pulumi.
    """
    from ..errors import EXIT_CHANGES, DyniaError
    from ..render import applied_record
    from ..report import markdown, offline_plan, print_plan

    if fmt not in ("table", "markdown"):
        raise DyniaError("config", f"--format {fmt!r} is not a plan format", "use --format table or --format markdown")
    proj, c, rendering = _rendering(ctx, cluster)
    plan = offline_plan(rendering, applied_record(c))
    rows = None
    if not offline:
        from .engine_common import engine_for, phases_from, print_rows

        with engine_for(ctx, cluster) as engine:
            rows = engine.preview(phases_from(phase))
        plan["resources"] = [r.as_dict() for r in rows]
        plan["pending"] += len(rows)
    if as_json:
        emit_json(plan)
    elif fmt == "markdown":
        sys.stdout.write(markdown(plan))
    else:
        print_plan(plan, console())
        if rows is not None:
            print_rows(rows)
    rendering.guard.enforce()
    _warn_guard(rendering)
    if detailed_exitcode and plan["pending"]:
        raise typer.Exit(EXIT_CHANGES)
