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


@app.command("deploy")
def deploy_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Service name."),
    compose: str = typer.Option(None, "--compose", help="Compose file (adds the service when it is new)."),
    port: int = typer.Option(None, "--port"),
    domain: str = typer.Option(None, "--domain"),
    health_path: str = typer.Option("/", "--health-path"),
    placement: str = typer.Option("all", "--placement"),
    cluster: str = CLUSTER_OPT,
) -> None:
    """Add the service to the spec if needed, then run the apps phase (DNS only after its gates pass), and infra first when the edit changes HAProxy (an active-only domain)."""
    from ..editing import add_service
    from ..errors import DyniaError
    from ..store import load_cluster
    from .up import run_phases

    from .engine_common import ready

    name_ = cluster_name(ctx, cluster)
    ready(ctx, name_)
    if name not in load_cluster(project(ctx), name_).spec.services:
        if compose is None or port is None:
            raise DyniaError("config", f"service {name!r} is not in the spec yet",
                             "pass --compose FILE and --port PORT to add it")
        add_service(project(ctx), name_, name, compose=compose, port=port, domain=domain,
                    health_path=health_path, placement=placement)
        say(f"added service {name} to clusters/{name_}.yaml")
    run_phases(ctx, name_, ("apps",), and_changed=True)  # an active-only domain changes haproxy.cfg too
