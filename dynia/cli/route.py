"""dynia route: which domain reaches which service (spec only)."""
from __future__ import annotations

import typer

from .common import CLUSTER_OPT, Phase, cluster_name, next_step, project, say
from .service import SERVICE_ARG

app = typer.Typer(help="Bind or unbind a service's domains (spec only).", no_args_is_help=True, rich_markup_mode=None)


APPLY_OPT = typer.Option(False, "--apply", help="Also apply: the apps phase (Caddy routes, then DNS), and infra first when HAProxy changes (active-only domains).")


@app.command("bind")
def bind_cmd(ctx: typer.Context, service: str = SERVICE_ARG,
             domain: str = typer.Argument(..., help="The domain, inside the cluster's zone."),
             apply: bool = APPLY_OPT, cluster: str = CLUSTER_OPT) -> None:
    """Route DOMAIN to SERVICE, beside the domains it already has."""
    from ..spec.editing import bind_route

    name = cluster_name(ctx, cluster)
    _ready_if(ctx, name, apply)
    step = bind_route(project(ctx), name, service, domain)
    say(f"bound {domain} → {service} in clusters/{name}.yaml")
    _apply_or_next(ctx, name, apply, step)


@app.command("unbind")
def unbind_cmd(ctx: typer.Context, service: str = SERVICE_ARG,
               domain: str = typer.Argument(None, help="Only this one of its domains (default: every one)."),
               apply: bool = APPLY_OPT, cluster: str = CLUSTER_OPT) -> None:
    """Remove DOMAIN, or every domain, from SERVICE."""
    from ..spec.editing import unbind_route

    name = cluster_name(ctx, cluster)
    _ready_if(ctx, name, apply)
    step = unbind_route(project(ctx), name, service, domain)
    what = f"{domain} from {service}" if domain else f"every domain of {service}"
    say(f"unbound {what} in clusters/{name}.yaml")
    _apply_or_next(ctx, name, apply, step)


@app.command("plan")
def plan_cmd(ctx: typer.Context, cluster: str = CLUSTER_OPT,
             offline: bool = typer.Option(False, "--offline", help="Only the file diff; no Pulumi, no network.")) -> None:
    """What the current routes would change: the files per node and the apps phase preview."""
    from .plan import show_plan

    show_plan(ctx, cluster, offline=offline, phase=Phase.apps)


def _ready_if(ctx, name: str, apply: bool) -> None:
    if apply:
        from .engine_common import ready

        ready(ctx, name)


def _apply_or_next(ctx, name: str, apply: bool, step: str) -> None:
    if apply:
        from .up import run_phases

        run_phases(ctx, name, ("apps",), and_changed=True)  # an active-only domain changes haproxy.cfg too
    else:
        next_step(step)
