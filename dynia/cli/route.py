"""dynia route: which domain reaches which service (spec only)."""
from __future__ import annotations

import typer

from .common import CLUSTER_OPT, cluster_name, next_step, project, say

app = typer.Typer(help="Bind or unbind a service's domain (spec only).", no_args_is_help=True, rich_markup_mode=None)


@app.command("bind")
def bind_cmd(ctx: typer.Context, service: str = typer.Argument(...), domain: str = typer.Argument(...),
             cluster: str = CLUSTER_OPT) -> None:
    """Route DOMAIN to SERVICE."""
    from ..editing import bind_route

    name = cluster_name(ctx, cluster)
    step = bind_route(project(ctx), name, service, domain)
    say(f"bound {domain} → {service} in clusters/{name}.yaml")
    next_step(step)


@app.command("unbind")
def unbind_cmd(ctx: typer.Context, service: str = typer.Argument(...), cluster: str = CLUSTER_OPT) -> None:
    """Remove SERVICE's domain."""
    from ..editing import unbind_route

    name = cluster_name(ctx, cluster)
    step = unbind_route(project(ctx), name, service)
    say(f"unbound {service}'s domain in clusters/{name}.yaml")
    next_step(step)
