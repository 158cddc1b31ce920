"""dynia render: from the spec to deploy-config/<cluster>/ (pure, no network)."""
from __future__ import annotations

import sys

import typer

from .common import (
    CLUSTER_OPT,
    JSON_OPT,
    cluster_name,
    emit_json,
    next_step,
    project,
    say,
)

# `dynia render --json`: the version of this document's shape, as every dynia JSON document has.
RENDER_SCHEMA_VERSION = 1


def register(app: typer.Typer) -> None:
    app.command("render")(render_cmd)


def rendering(ctx, cluster):
    """The project, the loaded cluster and its render with the cached addresses."""
    from ..render.rendered import render_cluster
    from ..spec.load import load_cluster

    proj = project(ctx)
    c = load_cluster(proj, cluster_name(ctx, cluster))
    return proj, c, render_cluster(c)


def warn_guard(result) -> None:
    for row in result.guard.exceeded:
        print(f"warning: {result.guard.explain(row)}", file=sys.stderr)


def warn_provider(spec) -> None:
    """A size or region slug this dynia's lists do not know: said, not refused (the provider's
    API, when a token is present, has the last word before anything is created)."""
    from .. import providers

    for warning in providers.of(spec).warnings(spec.provider):
        print(f"warning: {warning}", file=sys.stderr)


def warn_notices(result) -> None:
    """plan shows every notice in its output; render has only stderr for the warnings."""
    for n in result.notices:
        if n["kind"] == "warning":
            print(f"warning: {n['text']}", file=sys.stderr)


def render_cmd(ctx: typer.Context, cluster: str = CLUSTER_OPT, as_json: bool = JSON_OPT) -> None:
    """Render deploy-config/<cluster>/ from the spec (pure: no network)."""
    from ..render.rendering import write_deploy_config

    proj, c, result = rendering(ctx, cluster)
    result.guard.enforce()
    warn_guard(result)
    warn_notices(result)
    warn_provider(c.spec)
    out = proj.deploy_dir(c.name)
    write_deploy_config(result, out)
    meta = result.cluster_metadata()
    if as_json:
        emit_json({"schemaVersion": RENDER_SCHEMA_VERSION, "path": str(out), **meta})
        return
    files = sum(len(f) for f in result.files.values())
    say(f"rendered {files} files for {len(result.files)} node(s) into {out} "
        f"(config v{result.config_version}, spec {result.spec_hash[:12]})")
    next_step(f"dynia plan --offline --cluster {c.name}")
