"""dynia cluster: create and shape a cluster spec."""
from __future__ import annotations

import typer

from .common import next_step, project, say

app = typer.Typer(help="Create a cluster spec (more cluster commands arrive with the engine).", no_args_is_help=True, rich_markup_mode=None)


@app.command("init")
def init_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Cluster name; the spec becomes clusters/NAME.yaml."),
    region: str = typer.Option(..., "--region", help="DigitalOcean region, e.g. sgp1."),
    size: str = typer.Option("s-1vcpu-1gb", "--size", help="Droplet size slug."),
    nodes: int = typer.Option(2, "--nodes", help="Number of nodes (1-5)."),
    domain: str = typer.Option(..., "--domain", help="The Cloudflare zone, e.g. example.com."),
    image: str = typer.Option("ubuntu-24-04-x64", "--image", help="Droplet image slug."),
) -> None:
    """Write clusters/NAME.yaml (spec only: nothing is created anywhere)."""
    from ..editing import init_cluster

    step = init_cluster(project(ctx), name, region=region, size=size, nodes=nodes, domain=domain, image=image)
    say(f"wrote clusters/{name}.yaml")
    next_step(step)
