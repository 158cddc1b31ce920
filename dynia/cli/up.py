"""dynia up | infra sync: apply phases through the Pulumi engine, node by node."""
from __future__ import annotations

import typer

from .common import CLUSTER_OPT, JSON_OPT, Phase, emit_json, say
from .engine_common import engine_for

infra_app = typer.Typer(help="Push the infra layer (HAProxy, Caddy, keepalived) to every node.",
                        no_args_is_help=True, rich_markup_mode=None)


def register(app: typer.Typer) -> None:
    app.command("up")(up_cmd)
    app.add_typer(infra_app, name="infra")


def run_phases(ctx, cluster, phases, continue_on_error=False, as_json=False, *, and_changed: bool = False) -> dict:
    """Apply `phases`; with and_changed, also every other push phase the spec edit changes
    (computed inside the session: the render uses the live holder and the last applied record)."""
    # --json: nothing but the JSON on stdout. Otherwise the roll's progress (dynia.cli.progress)
    # stands for the engine's progress lines.
    with engine_for(ctx, cluster, on_progress=lambda line: None) as engine:
        if and_changed:
            phases = phases_with_changes(engine, tuple(phases))
        if as_json:
            outputs = engine.up(phases, continue_on_error=continue_on_error)
        else:
            outputs = up_with_progress(engine, phases, continue_on_error)
        issued = certificate_after_apps(engine, phases)
    if as_json:
        emit_json({"phases": list(phases), "outputs": {p: {k: v for k, v in o.items() if k != "originPem"}
                                                       for p, o in outputs.items()},
                   **({"certificate": issued} if issued else {})})
    else:
        say(f"applied: {', '.join(phases)}")
        for line in (issued or {}).get("warnings", ()):
            say(("warning: ", "yellow"), line)
        if issued:
            say(f"certificate issued for {', '.join(issued['domains'])} (expires {issued['not_after'][:10]}) "
                "and rolled to every node")
    return outputs


def certificate_after_apps(engine, phases) -> dict | None:
    """tls.mode letsencrypt: once the apps phase has run, the certificate must cover every bound
    domain: order it (HTTP-01), store it (provision), roll it (infra). After apps, not before:
    the CA resolves a brand-new name to the reserved IP, so its DNS-only record must exist, and
    it is created only after the service's gates. The public facts of a new certificate, or None.
    A failed order is a `cert` error: nothing pushed, every node keeps its certificate, the
    services stay applied; `dynia cert renew` retries it."""
    from .. import certs

    if "apps" not in phases:
        return None
    # Nodes are probed only when this run did not just push infra to every node itself.
    rolled = certs.roll(engine, check_nodes="infra" not in phases)   # its errors say how to retry
    if rolled.action not in ("issued", "stored"):
        return None
    return {**certs.public_facts(rolled.state), **({"warnings": list(rolled.warnings)} if rolled.warnings else {})}


def up_with_progress(engine, phases, continue_on_error: bool) -> dict:
    """engine.up with the live display (a terminal) or plain one-line events (anything else)."""
    from .common import console
    from .progress import Display, expected_rows

    display = Display(console())
    for row in expected_rows(engine.cluster, engine.holder, phases):
        display.progress.expect(*row)
    engine.watcher = display
    try:
        with display:
            return engine.up(phases, continue_on_error=continue_on_error)
    finally:
        engine.watcher = None


def phases_with_changes(engine, own: tuple[str, ...]) -> tuple[str, ...]:
    from .. import cache
    from ..phases import with_changed
    from ..session import render_cluster

    return with_changed(own, render_cluster(engine.cluster, holder=engine.holder), cache.applied(engine.cluster))


def up_cmd(ctx: typer.Context,
           phase: Phase = typer.Option(None, "--phase", help="Start at this phase; resumes a stopped roll."),
           continue_on_error: bool = typer.Option(False, "--continue-on-error", help="Pulumi's: keep applying independent resources after a failure."),
           cluster: str = CLUSTER_OPT, as_json: bool = JSON_OPT) -> None:
    """Apply the spec: provision → infra → apps, each node health-gated, in rolling order."""
    from ..phases import phases_from

    run_phases(ctx, cluster, phases_from(phase.value if phase else None), continue_on_error, as_json)


@infra_app.command("sync")
def infra_sync_cmd(ctx: typer.Context, cluster: str = CLUSTER_OPT, as_json: bool = JSON_OPT) -> None:
    """Re-render and push the infra layer to every node (backups first, VIP holder last)."""
    run_phases(ctx, cluster, ("infra",), as_json=as_json)
