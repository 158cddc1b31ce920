"""dynia rollback: services back to a recorded release's compose files and images, through the
normal gated roll."""
from __future__ import annotations

import typer

from . import complete
from .common import CLUSTER_OPT, JSON_OPT, console, say


def register(app: typer.Typer) -> None:
    app.command("rollback")(rollback_cmd)


def rollback_cmd(
    ctx: typer.Context,
    release: int = typer.Argument(None, help="A release id from `dynia releases` (default: the one before the last).",
                                  min=1),
    service: list[str] = typer.Option([], "--service", "-s", help="Only this service (repeat for more; default: "
                                      "every service of the release).", autocompletion=complete.services),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    cluster: str = CLUSTER_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Show what changes where, then roll those services back to the release's compose files
    and image digests, node by node through each node's gates (the images are on the nodes: dynia
    prunes none). The rollback stays in effect — in plan, status and drift-check — until the next
    deploy from the spec (`dynia up`, `dynia service deploy`) replaces it."""
    from ..operations import releases
    from .engine_common import confirm
    from .up import run_phases

    def prepare(engine):
        history = releases.history(engine.cluster, engine)
        rollback, rows = releases.rollback_plan(history, release, service or None, engine.cluster)
        if not as_json:
            print_plan(rows)
        confirm(f"roll {', '.join(r['service'] for r in rows)} back", engine.cluster.name, yes,
                unattended="pass --yes")
        engine.roll_back(releases.in_force(history)[0], rollback)

    run_phases(ctx, cluster, ("apps",), as_json=as_json, prepare=prepare)


def print_plan(rows: list[dict]) -> None:
    from rich.table import Table
    from rich.text import Text

    from ..operations.status import short

    t = Table(title="rollback", title_justify="left", show_edge=False)
    for col in ("service", "to release", "compose", "image", "digest", "nodes"):
        t.add_column(col)
    for r in rows:
        compose = r["compose"]
        changed = "unchanged" if compose["from"] == compose["to"] else \
            f"{(compose['from'] or '?')[:12]} → {(compose['to'] or '?')[:12]}"
        images = r["images"] or {"-": {"from": None, "to": None}}
        for i, (ref, d) in enumerate(images.items()):
            digest = "unchanged" if d["from"] == d["to"] else f"{short(d['from'] or '?')} → {short(d['to'] or '?')}"
            t.add_row(*(Text(v) for v in (r["service"] if i == 0 else "", str(r["release"]) if i == 0 else "",
                                          changed if i == 0 else "", ref, digest,
                                          ", ".join(r["nodes"]) if i == 0 else "")))
    console().print(t)
    say("each node in rolling order, gated; nothing is pulled for an image the node still has")
