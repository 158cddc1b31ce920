"""dynia run (one-off tasks, recorded) and dynia maintenance (a 503 page per service)."""
from __future__ import annotations

import sys
from enum import Enum

import typer

from . import complete
from .common import CLUSTER_OPT, JSON_OPT, cluster_name, console, emit_json, project, say


def register(app: typer.Typer) -> None:
    app.command("run")(run_cmd)
    app.command("maintenance")(maintenance_cmd)


def run_cmd(ctx: typer.Context,
            service: str = typer.Argument(None, help="The service whose image and environment the task gets.",
                                          autocompletion=complete.services),
            command: list[str] = typer.Argument(None, help="The command and its arguments, after --."),
            node: str = typer.Option(None, "--node", help="Run it on this node (default: the VIP holder for an "
                                                          "active-only service, else the first in rolling order).",
                                     autocompletion=complete.nodes),
            list_: bool = typer.Option(False, "--list", help="List the recorded runs instead."),
            cluster: str = CLUSTER_OPT, as_json: bool = JSON_OPT) -> None:
    """Run CMD once in a new container of SERVICE's image (its environment and networks, no
    published port) on one node, removed after: output streamed, exit status passed on, the run
    recorded with the cluster's state. `dynia run SERVICE -- CMD…`; `dynia run --list [--json]`."""
    from ..errors import DyniaError
    from ..spec.load import load_cluster

    c = load_cluster(project(ctx), cluster_name(ctx, cluster))
    if list_:
        if service or command:
            raise DyniaError("config", "--list takes no service or command", "run `dynia run --list` alone")
        _list(c, as_json)
        return
    if service is None:
        raise DyniaError("config", "no service named", "dynia run SERVICE -- CMD [ARG…], or dynia run --list")
    if as_json:
        raise DyniaError("config", "--json is for --list (a run prints its command's own output)",
                         "drop --json, or list the runs: dynia run --list --json")
    from ..operations.tasks import run_task

    def on_line(stream: str, line: str) -> None:
        from ..shown import escape

        out = sys.stdout if stream == "stdout" else sys.stderr
        out.write(escape(line) + "\n")
        out.flush()

    record = run_task(c, service, list(command or ()), on_line, node=node)
    raise typer.Exit(record.exit if record.exit is not None else 255)


def _list(c, as_json: bool) -> None:
    from rich.table import Table

    from ..operations.tasks import list_runs

    runs = list_runs(c)
    if as_json:
        emit_json({"schemaVersion": 1, "runs": [r.model_dump() for r in runs]})
        return
    if not runs:
        say(f"no run recorded for cluster {c.name}")
        return
    table = Table(title=f"runs of {c.name} (oldest first)", title_justify="left")
    for col in ("time", "who", "kind", "service", "node", "exit", "seconds", "command"):
        table.add_column(col)
    for r in runs:
        table.add_row(r.time, r.who, r.kind, r.service, r.node, "?" if r.exit is None else str(r.exit),
                      f"{r.seconds:g}", " ".join(r.command))
    console().print(table)


class Switch(str, Enum):
    on = "on"
    off = "off"


def maintenance_cmd(ctx: typer.Context,
                    switch: Switch = typer.Argument(..., help="on: answer 503; off: serve again."),
                    services: list[str] = typer.Argument(None, help="Services (default: every one with a domain).",
                                                         autocompletion=complete.services),
                    message: str = typer.Option(None, "--message", help="The sentence the 503 page shows."),
                    cluster: str = CLUSTER_OPT) -> None:
    """Put services in maintenance (every node's HAProxy answers their domains with a 503 page and
    Retry-After; health checks and other services untouched) or take them out: the spec records
    it, then the infra phase pushes it through the gated roll."""
    from ..spec.editing import set_maintenance
    from ..errors import DyniaError
    from .engine_common import ready
    from .up import run_phases

    if message is not None and switch is Switch.off:
        raise DyniaError("config", "--message is for `maintenance on`", "drop --message")
    name = cluster_name(ctx, cluster)
    ready(ctx, name)
    named = set_maintenance(project(ctx), name, list(services or ()), message, on=switch is Switch.on)
    say(f"maintenance {switch.value}: {', '.join(named)} in clusters/{name}.yaml")
    run_phases(ctx, name, ("infra",), and_changed=True)
