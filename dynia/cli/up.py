"""dynia up | infra sync: apply phases through the Pulumi engine, node by node."""
from __future__ import annotations

import typer

from ..operations.releases import after_roll
from ..operations.up import apply_parts, certificate_before_apps
from .common import CLUSTER_OPT, JSON_OPT, Phase, command_words, emit_json, say
from .engine_common import engine_for

infra_app = typer.Typer(help="Push the infra layer (HAProxy, Caddy, keepalived) to every node.",
                        no_args_is_help=True, rich_markup_mode=None)


def register(app: typer.Typer) -> None:
    app.command("up")(up_cmd)
    app.add_typer(infra_app, name="infra")


def run_phases(ctx, cluster, phases, continue_on_error=False, as_json=False, *, and_changed: bool = False,
               prepare=None) -> dict:
    """Apply `phases`; with and_changed, also every other push phase the spec edit changes
    (computed inside the session: the render uses the live holder and the last applied record).
    tls.mode letsencrypt: between infra and apps, the certificate (certificate_before_apps).
    prepare(engine): what the command sets up in the session before the roll (`dynia rollback`)."""
    # --json: nothing but the JSON on stdout. Otherwise the roll's progress (dynia.cli.progress)
    # stands for the engine's progress lines.
    with engine_for(ctx, cluster, on_progress=lambda line: None) as engine:
        if prepare is not None:
            prepare(engine)
        if and_changed:
            phases = phases_with_changes(engine, tuple(phases))
        certificate: dict = {}

        def before_apps():
            certificate["facts"] = certificate_before_apps(engine, phases, on_progress=None if as_json else say)

        if as_json:
            outputs = apply_parts(engine, tuple(phases), continue_on_error, before_apps)
        else:
            outputs = up_with_progress(engine, tuple(phases), continue_on_error, before_apps, say=say)
        issued = certificate.get("facts")
        # ctx is None when run_phases is called without a Typer context (tests call it directly)
        release = after_roll(engine, phases, command_words(ctx) if ctx is not None else "up")
    if as_json:
        emit_json({"phases": list(phases), "outputs": {p: {k: v for k, v in o.items() if k != "originPem"}
                                                       for p, o in outputs.items()},
                   **({"certificate": issued} if issued else {}),
                   **({"release": release} if release else {})})
    else:
        say(f"applied: {', '.join(phases)}")
        if release:
            say(f"recorded release {release['id']} (`dynia releases` lists them)")
        for line in (issued or {}).get("warnings", ()):
            say(("warning: ", "yellow"), line)
        if issued and issued.get("action") == "issued":
            over_dns = issued.get("over_dns") or []
            say(f"certificate issued for {', '.join(issued['domains'])} (expires {issued['not_after'][:10]}) "
                "and rolled to every node" + (f"; validated over DNS-01, before their records existed: "
                                              f"{', '.join(over_dns)}" if over_dns else ""))
        elif issued and issued.get("action") == "stored":
            say(f"stored the certificate an earlier run ordered ({', '.join(issued['domains'])}, expires "
                f"{issued['not_after'][:10]}) and rolled it to every node")
    return outputs


def up_with_progress(engine, phases, continue_on_error: bool, before_apps=lambda: None, say=None) -> dict:
    """apply_parts with the live display (a terminal) or plain one-line events (anything else);
    one display for the whole run, the certificate's own provision and infra rolls included."""
    from .common import console
    from .progress import Display, expected_rows

    display = Display(console())
    for row in expected_rows(engine.cluster, engine.holder, phases):
        display.progress.expect(*row)
    engine.watcher = display
    try:
        with display:
            return apply_parts(engine, phases, continue_on_error, before_apps, say)
    finally:
        engine.watcher = None


def phases_with_changes(engine, own: tuple[str, ...]) -> tuple[str, ...]:
    from ..phases import with_changed
    from ..render.rendered import render_cluster
    from ..state import cache

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
