"""dynia cert: the certificate HAProxy serves on every node.

origin mode: the Cloudflare Origin CA certificate, made by the provision phase.
letsencrypt mode: the cluster's one ACME certificate (dynia.operations.certs): ordered here (HTTP-01,
answered by whichever node holds the VIP; DNS-01 for a name without its record yet), kept with the cluster's state as a secret (the
provision phase), rolled node by node (the infra phase). Safe from cron or CI: no prompt, exit
0 when renewed or nothing is due, a typed error's exit code otherwise (`cert`: 18).
"""
from __future__ import annotations

import typer

from .common import CLUSTER_OPT, JSON_OPT, emit_json, say
from .engine_common import engine_for, print_rows

app = typer.Typer(help="The certificate HAProxy serves: Cloudflare Origin CA (origin) or ACME (letsencrypt).",
                  no_args_is_help=True, rich_markup_mode=None)


def _letsencrypt(engine) -> bool:
    from ..tls import uses_acme

    return uses_acme(engine.cluster.spec.tls.mode)


def _result(action: str, state, reason: str | None, nodes=()) -> dict:
    from ..operations.certs import public_facts

    out: dict[str, object] = {"action": action, "reason": reason, "certificate": public_facts(state) if state is not None else None}
    if nodes:
        out["nodes"] = list(nodes)
    return out


def _rolled(rolled) -> dict:
    out = _result(rolled.action, rolled.state, rolled.reason, rolled.nodes)
    if rolled.warnings:
        out["warnings"] = list(rolled.warnings)
    if rolled.over_dns:
        out["over_dns"] = list(rolled.over_dns)
    return out


def _say_result(out: dict) -> None:
    for line in out.get("warnings", ()):
        say(("warning: ", "yellow"), line)
    cert = out["certificate"]
    if out["action"] == "reused":
        say(f"reused the stored certificate: it covers every bound domain and expires {cert['not_after'][:10]}; "
            "nothing was ordered (`--force` orders a new one)")
        return
    if out["action"] == "nothing to do":
        when = f"; expires {cert['not_after'][:10]}" if cert else ""
        why = f" ({out['reason']})" if out["reason"] else ""
        say(f"nothing to do{why}: every node serves the stored certificate{when}")
        return
    if out["action"] == "rolled":
        say(f"rolled the stored certificate (expires {cert['not_after'][:10]}) to {len(out['nodes'])} "
            f"node{'s' if len(out['nodes']) != 1 else ''} that did not serve it: {out['reason']}")
        return
    if out["action"] == "stored":
        say(f"stored the certificate an earlier run ordered ({', '.join(cert['domains'])}, expires "
            f"{cert['not_after'][:10]}) and rolled it to every node; nothing was ordered")
        return
    if out.get("nodes"):   # a renewal while other changes are pending: the certificate slot alone
        say(f"certificate issued for {', '.join(cert['domains'])} (expires {cert['not_after'][:10]}; "
            f"{out['reason']}); kept with the cluster's state and rolled alone to {', '.join(out['nodes'])} "
            "(the next `dynia up` stores it as the provision stack's output)")
        return
    over_dns = f"; validated over DNS-01, no record yet: {', '.join(out['over_dns'])}" if out.get("over_dns") else ""
    say(f"certificate issued for {', '.join(cert['domains'])} (expires {cert['not_after'][:10]}; "
        f"{out['reason']}{over_dns}); stored with the cluster's state and rolled to every node")


@app.command("provision")
def provision_cmd(ctx: typer.Context, dry_run: bool = typer.Option(False, "--dry-run", help="Preview only."),
                  force: bool = typer.Option(False, "--force", help="letsencrypt: order even when the stored "
                                             "certificate covers every bound domain and is not due."),
                  cluster: str = CLUSTER_OPT, as_json: bool = JSON_OPT) -> None:
    """Create the certificate and roll it to the nodes; --dry-run previews it. origin: the
    provision phase's Origin CA certificate. letsencrypt: orders one for every bound domain,
    unless the stored one covers them all and is not due (Let's Encrypt allows 5 duplicate
    certificates a week): that one is reused, and rolled to any node not serving it."""
    from ..operations import certs

    with engine_for(ctx, cluster) as engine:
        if not _letsencrypt(engine):
            if dry_run:
                rows = [r for r in engine.preview(("provision",)) if r.type.startswith(("tls:", "cloudflare:"))]
                if as_json:
                    emit_json([r.as_dict() for r in rows])
                else:
                    print_rows(rows)
                return
            engine.up(("provision",))
            say("origin certificate provisioned; `dynia infra sync` pushes it to the nodes")
            return
        if dry_run:
            # A preview, not a staging order: it needs no challenge on the nodes, spends no rate
            # limit, and says exactly what the real order would ask for.
            import datetime as dt

            engine.refresh_outputs()   # the reserved IP, for which names already point at the cluster
            preview = certs.order_preview(engine.acme_state(), engine.cluster.spec, dt.datetime.now(dt.timezone.utc),
                                          certs.default_dns(engine.cluster))
            preview["order"] = force or preview["reason"] is not None
            if as_json:
                emit_json(preview)
            elif not preview["order"]:
                say(f"would reuse the stored certificate (expires {preview['current']['not_after'][:10]}): it covers "
                    "every bound domain and is not due; `--force` orders a new one")
            else:
                say(f"would order from {preview['directory']} ({preview['account']} account): "
                    + (", ".join(f"{d} ({c})" for d, c in preview["challenges"].items()) or "no bound domain"))
                if preview["reason"]:
                    say(f"due: {preview['reason']}")
            return
        rolled = certs.roll(engine, force=force)
    out = _rolled(rolled)
    if out["action"] == "nothing to do" and out["reason"] is None:
        out["action"] = "reused"
    emit_json(out) if as_json else _say_result(out)


@app.command("renew")
def renew_cmd(ctx: typer.Context, cluster: str = CLUSTER_OPT, as_json: bool = JSON_OPT,
              days: int = typer.Option(30, "--days", min=1, max=89,
                                       help="Renew when fewer than this many days remain.")) -> None:
    """Renew when fewer than 30 days remain or a bound domain is not covered, then roll it to
    every node; store and roll an order an interrupted run kept; roll the stored certificate to
    any node that does not serve it; otherwise exit 0, "nothing to do". No prompt: safe from
    cron or CI."""
    from ..operations import certs

    with engine_for(ctx, cluster, on_progress=(lambda line: None) if as_json else None) as engine:
        if not _letsencrypt(engine):
            engine.refresh_outputs()  # a fresh checkout or CI runner has no cache yet
            out = _origin_renewal(engine.cluster, days)
        else:
            # due, or a kept order not yet stored, or a node not serving the stored certificate;
            # certs.roll's errors already say how to retry
            out = _rolled(certs.roll(engine, days=days, unattended=True))
            out["action"] = "renewed" if out["action"] == "issued" else out["action"]
    emit_json(out) if as_json else _say_result(out)


def _origin_renewal(cluster, days: int) -> dict:
    """origin mode: the Origin CA certificate lives for years; report it, or say it is due."""
    import datetime as dt

    from ..errors import DyniaError
    from ..state.cache import read_state_certificate

    cert, missing = read_state_certificate(cluster)
    if cert is None:
        raise DyniaError("cert", f"the origin certificate's expiry is unknown: {missing}",
                         f"run `dynia cert provision --cluster {cluster.name}` (origin mode: the provision phase)")
    left = cert.not_after - dt.datetime.now(dt.timezone.utc)
    if left <= dt.timedelta(days=days):
        raise DyniaError("cert", f"the origin certificate expires {cert.not_after:%Y-%m-%d} ({max(left.days, 0)} "
                         "days left)", "replace it: `pulumi up --replace` on its resource in the provision stack, "
                         "then `dynia infra sync`")
    return {"action": "nothing to do", "reason": None,
            "certificate": {"domains": list(cert.names), "not_after": cert.as_dict()["not_after"],
                            "placeholder": False, "directory": None, "account": False}}
