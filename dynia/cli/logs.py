"""dynia logs / dynia exec: a service's logs from every node, a command in its container."""
from __future__ import annotations

import sys
from typing import List, Optional

import typer

from .common import CLUSTER_OPT, cluster_name, project

NODE_OPT = typer.Option(None, "--node", "-n", help="Only this node.")


def register(app: typer.Typer) -> None:
    app.command("logs")(logs_cmd)
    app.command("exec")(exec_cmd)


def logs_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="SERVICE", help="A service, or haproxy, caddy, keepalived, dynia."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines from every node (Ctrl-C ends)."),
    node: Optional[str] = NODE_OPT,
    since: Optional[str] = typer.Option(None, "--since", help="Only lines from this long ago on: 90s, 10m, 1h30m."),
    tail: Optional[int] = typer.Option(None, "--tail", min=0,
                                       help="The last N lines (default 100 unless --since is given)."),
    grep: Optional[str] = typer.Option(None, "--grep", help="Only lines matching this regular expression."),
    cluster: str = CLUSTER_OPT,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line (node, container, time, line)."),
) -> None:
    """A service's container logs from every node where it runs, merged in time order, each
    line after its node (and container, when the node runs several). -f follows every node at
    once, through a failover. haproxy, caddy, keepalived and dynia (the apply script's pushes
    and gates) are dynia's own logs, per node.

    Exit 0; 14 when a node could not be read (a line says which; the others' lines are shown).
    """
    from ..operations import logs as L
    from ..errors import EXIT_CODES
    from ..providers import of
    from ..engine.session import reach, unpinned
    from ..spec.load import load_cluster

    c = load_cluster(project(ctx), cluster_name(ctx, cluster))
    req = L.request(c.spec, name, since=since, tail=tail, follow=follow, grep=grep)
    targets = L.nodes_of(c, reach(c), node)
    refused = unpinned(c)
    show = _Printer(as_json, [t.node for t in targets])
    profile = of(c.spec).profile
    if follow:
        L.follow(targets, profile, req, show, refused)
        return
    lines, notices = L.read(targets, profile, req, refused)
    for line in lines:
        show(line)
    for notice in notices:
        show(notice)
    if any(n.failed for n in notices):
        raise typer.Exit(EXIT_CODES["network"])


class _Printer:
    """One line per event, written at once (a followed log is read as it comes)."""

    def __init__(self, as_json: bool, nodes: list[str]):
        self.as_json = as_json
        self.width = max((len(n) for n in nodes), default=0)

    def __call__(self, event) -> None:
        from ..operations.logs import Notice
        from ..shown import escape

        if self.as_json:
            import json

            sys.stdout.write(json.dumps(event.as_dict(), sort_keys=True) + "\n")
            sys.stdout.flush()
            return
        if isinstance(event, Notice):
            sys.stderr.write(f"{escape(event.node):<{self.width}} -- {escape(event.text)}\n")
            sys.stderr.flush()
            return
        where = event.node + (f"/{event.container}" if event.container else "")
        when = event.as_dict()["time"]
        when = when[:23] + "Z" if when else "-"
        sys.stdout.write(f"{escape(where):<{self.width}} {when} {escape(event.text)}\n")
        sys.stdout.flush()


def exec_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="SERVICE", help="The service (SERVICE/PART: one compose service of it)."),
    command: List[str] = typer.Argument(..., metavar="-- CMD…", help="The command and its arguments."),
    node: Optional[str] = NODE_OPT,
    holder: bool = typer.Option(False, "--holder", help="On the node holding the VIP (read live)."),
    interactive: bool = typer.Option(False, "--interactive", "-i", help="Pass this terminal's input to the command."),
    tty: bool = typer.Option(False, "--tty", "-t", help="Give the command a terminal (with -i: an interactive shell)."),
    cluster: str = CLUSTER_OPT,
) -> None:
    """Run a command in the service's container on one node: --node, --holder, else the VIP
    holder for an active-only service and the first node in rolling order for the others.

    Exits with the command's exit status (255: the connection ended first); dynia's own errors,
    before the command ran, exit with their kind's code.
    """
    from ..operations import execute as X
    from ..nodes.gather import vip_holder
    from ..providers import of
    from ..engine.session import reach
    from ..spec.load import load_cluster
    from .common import usage_error

    if node is not None and holder:
        raise usage_error("--node and --holder name different nodes: pass one", "--holder")
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise usage_error("no command to run: dynia exec SERVICE -- CMD…", "CMD")
    c = load_cluster(project(ctx), cluster_name(ctx, cluster))
    targets = reach(c)
    service, _ = X.split_name(name)
    target = X.choose_node(c, targets, service, node=node, holder=holder, vip_holder=lambda: vip_holder(targets))
    profile = of(c.spec).profile
    place = X.find(target, profile, name)
    rc = X.run(place, profile, command, interactive=interactive, tty=tty)
    raise typer.Exit(rc)
