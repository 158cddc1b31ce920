"""dynia service: add or remove the operator's compose services in the spec."""
from __future__ import annotations

import typer

from . import complete
from .common import CLUSTER_OPT, Placement, cluster_name, next_step, project, say

app = typer.Typer(help="Add or remove services (spec only; `dynia plan` shows the effect).", no_args_is_help=True, rich_markup_mode=None)

# A service of the selected cluster's spec (completion offers them).
SERVICE_ARG = typer.Argument(..., help="Service name (services.NAME in the spec).", autocompletion=complete.services)
PORT_HELP = "Host port the compose file publishes (bound to 127.0.0.1; Caddy routes to it)."
DOMAIN_OPT = typer.Option([], "--domain", help="Domain routed to it (inside the cluster's zone); repeat for more "
                                               "(--domain example.com --domain www.example.com).")
HEALTH_OPT = typer.Option("/", "--health-path", help="Path that answers 2xx or 3xx when the service is healthy.")
PLACEMENT_OPT = typer.Option(Placement.all, "--placement",
                             help="all nodes, only the reserved-IP holder (active-only) or only the others (standby-only).")


@app.command("add")
def add_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Service name (new)."),
    compose: str = typer.Option(..., "--compose", help="Compose file, relative to the project directory."),
    port: int = typer.Option(..., "--port", help=PORT_HELP),
    domain: list[str] = DOMAIN_OPT,
    health_path: str = HEALTH_OPT,
    placement: Placement = PLACEMENT_OPT,
    cluster: str = CLUSTER_OPT,
) -> None:
    """Add a service to the spec."""
    from ..spec.editing import add_service

    name_ = cluster_name(ctx, cluster)
    step = add_service(project(ctx), name_, name, compose=compose, port=port, domains=domain,
                       health_path=health_path, placement=placement.value)
    say(f"added service {name} to clusters/{name_}.yaml")
    next_step(step)


@app.command("remove")
def remove_cmd(ctx: typer.Context, name: str = SERVICE_ARG,
               cluster: str = CLUSTER_OPT) -> None:
    """Remove a service from the spec."""
    from ..spec.editing import remove_service

    name_ = cluster_name(ctx, cluster)
    step = remove_service(project(ctx), name_, name)
    say(f"removed service {name} from clusters/{name_}.yaml")
    next_step(step)


@app.command("deploy")
def deploy_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Service name (a new one needs --compose and --port).",
                               autocompletion=complete.services),
    compose: str = typer.Option(None, "--compose", help="Compose file (adds the service when it is new)."),
    port: int = typer.Option(None, "--port", help=PORT_HELP + " With --compose, for a new service."),
    domain: list[str] = DOMAIN_OPT,
    health_path: str = HEALTH_OPT,
    placement: Placement = PLACEMENT_OPT,
    cluster: str = CLUSTER_OPT,
) -> None:
    """Add the service to the spec if needed, then run the apps phase (DNS only after its gates pass), and infra first when the edit changes HAProxy (an active-only domain)."""
    from ..errors import DyniaError
    from ..spec.editing import add_service
    from ..spec.load import load_cluster
    from .engine_common import ready
    from .up import run_phases

    name_ = cluster_name(ctx, cluster)
    ready(ctx, name_)
    if name not in load_cluster(project(ctx), name_).spec.services:
        if compose is None or port is None:
            raise DyniaError("config", f"service {name!r} is not in the spec yet",
                             "pass --compose FILE and --port PORT to add it")
        add_service(project(ctx), name_, name, compose=compose, port=port, domains=domain,
                    health_path=health_path, placement=placement.value)
        say(f"added service {name} to clusters/{name_}.yaml")
    run_phases(ctx, name_, ("apps",), and_changed=True)  # an active-only domain changes haproxy.cfg too
