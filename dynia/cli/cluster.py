"""dynia cluster: create and shape a cluster spec."""
from __future__ import annotations

import typer

from . import complete
from .common import CLUSTER_OPT, next_step, project, say

app = typer.Typer(help="Create, destroy and shape a cluster.", no_args_is_help=True, rich_markup_mode=None)


NAME_ARG = typer.Argument(..., help="Cluster name; the spec becomes clusters/NAME.yaml.")
REGION_OPT = typer.Option(..., "--region", help="DigitalOcean region, e.g. sgp1.")
SIZE_OPT = typer.Option("s-1vcpu-1gb", "--size", help="Droplet size slug.")
NODES_OPT = typer.Option(2, "--nodes", help="Number of nodes (1-5).")
DOMAIN_OPT = typer.Option(..., "--domain", help="The Cloudflare zone, e.g. example.com.")
IMAGE_OPT = typer.Option("ubuntu-24-04-x64", "--image", help="Droplet image: ubuntu-24-04-x64 or debian-13-x64.")
NODE_ARG = typer.Argument(..., help="Node id (one of the spec's nodes).", autocompletion=complete.nodes)
# -y as `repair` takes it: one spelling for "do not ask" across commands.
YES_HELP = "Do not ask (a state snapshot is still taken first)."


@app.command("init")
def init_cmd(ctx: typer.Context, name: str = NAME_ARG, region: str = REGION_OPT, size: str = SIZE_OPT,
             nodes: int = NODES_OPT, domain: str = DOMAIN_OPT, image: str = IMAGE_OPT) -> None:
    """Write clusters/NAME.yaml (spec only: nothing is created anywhere)."""
    from ..spec.editing import init_cluster

    step = init_cluster(project(ctx), name, region=region, size=size, nodes=nodes, domain=domain, image=image)
    say(f"wrote clusters/{name}.yaml")
    next_step(step)


@app.command("create")
def create_cmd(ctx: typer.Context, name: str = NAME_ARG, region: str = REGION_OPT, size: str = SIZE_OPT,
               nodes: int = NODES_OPT, domain: str = DOMAIN_OPT, image: str = IMAGE_OPT) -> None:
    """Write the spec and run the provision phase only (droplets, reserved IP, certificate; no SSH)."""
    from .. import providers
    from ..engine.automation import preflight
    from ..providers.digitalocean import DigitalOcean
    from ..spec.editing import init_cluster
    from .up import run_phases

    # Before the spec is written; `cluster init` writes DigitalOcean specs.
    do = providers.get("digitalocean")
    assert isinstance(do, DigitalOcean)
    preflight(do, None, project(ctx), name)
    init_cluster(project(ctx), name, region=region, size=size, nodes=nodes, domain=domain, image=image,
                 vpc_ip_range=do.free_vpc_range(name))
    say(f"wrote clusters/{name}.yaml")
    run_phases(ctx, name, ("provision",))
    next_step(f"dynia up --phase infra --cluster {name}")


@app.command("destroy")
def destroy_cmd(ctx: typer.Context, cluster: str = CLUSTER_OPT,
                yes: bool = typer.Option(False, "--yes", "-y", help=YES_HELP),
                delete_data: str = typer.Option(
                    None, "--delete-data", metavar="CLUSTER",
                    help="Delete the data volumes too (services.<name>.data): give the cluster's name again. "
                         "Without it they are kept, and said so.")) -> None:
    """Destroy every phase (apps → infra → provision) after a state snapshot; data volumes are kept."""
    from .. import providers
    from ..operations import snapshots
    from ..volumes import deleting_data
    from .engine_common import confirm, engine_for

    with engine_for(ctx, cluster) as engine:
        name = engine.cluster.name
        delete = deleting_data(delete_data, name)   # a wrong name refuses before anything is asked
        confirm("destroy every droplet, the reserved IP, DNS records and certificates"
                + (", and every data volume with its data" if delete else " (data volumes are kept)"), name, yes)
        snap = snapshots.take(engine, "before-destroy")
        say(f"snapshot {snap}")
        provider = providers.of(engine.cluster.spec)
        kept = provider.keep_on_destroy(engine, delete)  # what stays (the cloud's refusals, the data), said so
        provider.release(engine, None)  # droplets are protected against accidents
        engine.destroy()
        kept += provider.after_destroy(engine, delete)
    for line in kept:
        say(line)
    say(f"destroyed cluster {engine.cluster.name}; the spec is kept")
    next_step(f"dynia state revert {snap} --cluster {engine.cluster.name}  (to restore the state records)")


node_app = typer.Typer(help="Add, remove or activate nodes (spec edit, then every node is re-pushed).",
                       no_args_is_help=True, rich_markup_mode=None)
app.add_typer(node_app, name="node")


@node_app.command("add")
def node_add_cmd(ctx: typer.Context, cluster: str = CLUSTER_OPT) -> None:
    """Add one node; every node's HAProxy backends and keepalived peers then include it."""
    from ..spec.editing import add_node
    from .common import cluster_name
    from .engine_common import ready
    from .up import run_phases

    name = cluster_name(ctx, cluster)
    ready(ctx, name)
    node = add_node(project(ctx), name)
    say(f"added node {node} to clusters/{name}.yaml")
    run_phases(ctx, name, ("provision", "infra", "apps"))


@node_app.command("remove")
def node_remove_cmd(ctx: typer.Context, node: str = NODE_ARG,
                    cluster: str = CLUSTER_OPT,
                    yes: bool = typer.Option(False, "--yes", "-y", help=YES_HELP),
                    node_down: bool = typer.Option(
                        False, "--node-down",
                        help="NODE is powered off or gone: do not stop its keepalived first.")) -> None:
    """Remove a node (snapshot first); its keepalived is stopped, the others are re-pushed
    without it, then it is destroyed."""
    from .. import providers
    from ..engine.session import silence_leaving_node, target_of
    from ..operations import snapshots
    from ..spec.editing import check_removable, remove_node
    from .common import cluster_name
    from .engine_common import confirm, engine_for

    name = cluster_name(ctx, cluster)
    with engine_for(ctx, name) as engine:
        spec = engine.cluster.spec
        check_removable(spec.nodes, spec.master_node, node, engine.holder)  # before any snapshot
        confirm(f"remove node {node} and destroy its droplet", name, yes)
        say(f"snapshot {snapshots.take(engine, 'before-node-remove')}")
        # Silence it before anyone drops it as a peer, or it takes the reserved IP with it.
        target = target_of(engine.cluster, node)
        if target is not None and not node_down:
            silence_leaving_node(target, providers.of(spec).profile)
            say(f"stopped keepalived on {node}")
        # Droplets are protected against accidents: lift it for exactly this one.
        providers.of(spec).release(engine, [node])
    remove_node(project(ctx), name, node)
    from .up import run_phases

    # infra and apps first (nobody routes to it any more), then provision deletes the droplet.
    run_phases(ctx, name, ("infra", "apps"))
    run_phases(ctx, name, ("provision",))


@node_app.command("activate")
def node_activate_cmd(ctx: typer.Context, node: str = NODE_ARG,
                      cluster: str = CLUSTER_OPT) -> None:
    """Make NODE the MASTER (highest priority): keepalived moves the reserved IP to it."""
    from ..spec.editing import set_master
    from .common import cluster_name
    from .engine_common import ready
    from .up import run_phases

    name = cluster_name(ctx, cluster)
    ready(ctx, name)
    set_master(project(ctx), name, node)
    run_phases(ctx, name, ("infra",), and_changed=True)
