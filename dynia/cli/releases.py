"""dynia releases: what ran where after each roll, from the cluster's state."""
from __future__ import annotations

import typer

from . import complete
from .common import CLUSTER_OPT, JSON_OPT, cluster_name, console, emit_json, project, say


def register(app: typer.Typer) -> None:
    app.command("releases")(releases_cmd)


def releases_cmd(
    ctx: typer.Context,
    service: str = typer.Option(None, "--service", "-s", help="Only the releases that changed this service.",
                                autocompletion=complete.services),
    cluster: str = CLUSTER_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """The cluster's releases, newest first: id, time, who, git commit, and per service the
    compose file's hash and the image digest every node runs. Read from the cluster's state
    (the <cluster>-releases stack), so every machine with the backend sees the same list."""
    from ..operations import releases
    from ..errors import DyniaError
    from ..spec.load import load_cluster

    c = load_cluster(project(ctx), cluster_name(ctx, cluster))
    if service is not None and service not in c.spec.services:
        raise DyniaError("config", f"service {service!r} is not in the spec of {c.name}",
                         f"one of: {', '.join(sorted(c.spec.services)) or '(none)'}")
    shown = releases.listed(releases.history(c), service)
    if as_json:
        emit_json({"cluster": c.name, "releases": shown})
        return
    print_releases(shown, service)


def print_releases(shown: list[dict], service: str | None) -> None:
    from rich.table import Table
    from rich.text import Text

    from ..operations.status import short

    if not shown:
        say("no releases recorded yet (`dynia up` records one after each roll that changes what runs)")
        return
    t = Table(show_edge=False)
    for col in ("id", "time", "who", "command", "git", "service", "compose", "images (digest: nodes)"):
        t.add_column(col)
    for r in shown:
        git = r.get("git") or {}
        commit = (git.get("commit") or "")[:10] + (" dirty" if git.get("dirty") else "") if git else "-"
        for i, (name, svc) in enumerate(sorted((r.get("services") or {}).items())):
            if service and name != service:
                continue
            by_digest: dict[str, list[str]] = {}
            for node, containers in sorted((svc.get("nodes") or {}).items()):
                for digest in sorted(set(containers.values())):
                    by_digest.setdefault(short(digest or "?"), []).append(node)
            images = "\n".join(f"{d}: {', '.join(nodes)}" for d, nodes in by_digest.items()) or "-"
            first = i == 0 or bool(service)
            t.add_row(*(Text(v) for v in (str(r.get("id")) if first else "", r.get("time", "") if first else "",
                                          r.get("who", "") if first else "", r.get("command", "") if first else "",
                                          commit if first else "", name, (svc.get("compose") or "")[:12], images)))
    console().print(t)
