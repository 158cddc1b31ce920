"""dynia infra verify: the provider side (reserved IP, DNS, certificate) against the live nodes."""
from __future__ import annotations

import typer

from .common import CLUSTER_OPT, JSON_OPT, cluster_name, emit_json, project, say

STYLE = {"ok": "green", "warning": "yellow", "failed": "bold red", "skipped": "yellow"}


def register(infra_app: typer.Typer) -> None:
    infra_app.command("verify")(verify_cmd)


def verify_cmd(ctx: typer.Context, cluster: str = CLUSTER_OPT, as_json: bool = JSON_OPT,
               timeout: float = typer.Option(5.0, "--timeout", min=0.5, max=120.0,
                                             help="Seconds per node (one SSH round trip; the TLS handshake runs on the node).")) -> None:
    """Check the provider side against reality: reserved-IP holder = VRRP MASTER, every backend
    up, one config version, the state's certificate served on every node (a warning with 21 days
    left or fewer, a failure with 7 or fewer), DNS
    records → reserved IP, proxied, each data volume attached to the reserved IP's holder and mounted
    there only. Exit 0 when nothing failed, 4 otherwise (skipped rows say why)."""
    from ..errors import EXIT_UNHEALTHY
    from ..operations import verify
    from ..spec.load import load_cluster

    c = load_cluster(project(ctx), cluster_name(ctx, cluster))
    checks = verify.verify(c, timeout=timeout)
    if as_json:
        emit_json(verify.as_json(c.name, checks))
    else:
        width = max((len(f"{r.check} {r.target}") for r in checks), default=0)
        for r in checks:
            say((f"{r.status:<7}", STYLE[r.status]), " ", f"{r.check} {r.target}".ljust(width), "  ", r.detail)
        counts = verify.summary(checks)
        verdict = "healthy" if verify.healthy(checks) else "NOT healthy"
        say((verdict, "green" if verify.healthy(checks) else "bold red"),
            f": {counts['ok']} ok, {counts['warning']} warning{'s' if counts['warning'] != 1 else ''}, "
            f"{counts['failed']} failed, {counts['skipped']} skipped")
    if not verify.healthy(checks):
        raise typer.Exit(EXIT_UNHEALTHY)
