"""dynia service: add or remove the operator's compose services in the spec."""
from __future__ import annotations

import typer

from .common import CLUSTER_OPT, cluster_name, next_step, project, say

app = typer.Typer(help="Add or remove services (spec only; `dynia plan` shows the effect).", no_args_is_help=True, rich_markup_mode=None)


@app.command("add")
def add_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Service name."),
    compose: str = typer.Option(..., "--compose", help="Compose file, relative to the project directory."),
    port: int = typer.Option(..., "--port", help="Host port the compose file publishes."),
    domain: str = typer.Option(None, "--domain", help="Domain routed to it (inside the cluster's zone)."),
    health_path: str = typer.Option("/", "--health-path", help="Path that answers 2xx when healthy."),
    placement: str = typer.Option("all", "--placement", help="all | active-only | standby-only"),
    cluster: str = CLUSTER_OPT,
) -> None:
    """Add a service to the spec."""
    from ..editing import add_service

    name_ = cluster_name(ctx, cluster)
    step = add_service(project(ctx), name_, name, compose=compose, port=port, domain=domain,
                       health_path=health_path, placement=placement)
    say(f"added service {name} to clusters/{name_}.yaml")
    next_step(step)


@app.command("remove")
def remove_cmd(ctx: typer.Context, name: str = typer.Argument(..., help="Service name."),
               cluster: str = CLUSTER_OPT) -> None:
    """Remove a service from the spec."""
    from ..editing import remove_service

    name_ = cluster_name(ctx, cluster)
    step = remove_service(project(ctx), name_, name)
    say(f"removed service {name} from clusters/{name_}.yaml")
    next_step(step)
