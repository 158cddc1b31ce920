"""`dynia up`'s order where tls.mode is letsencrypt: the certificate must cover every bound
domain before the apps phase creates their DNS records, so the phases before apps run, then the
certificate is ordered, stored and rolled where it does not, then apps. The CLI parses and
prints; these decisions are here."""
from __future__ import annotations

import datetime as dt
from typing import Callable

from ..errors import DyniaError
from ..tls import uses_acme
from . import certs


def apply_parts(engine, phases: tuple[str, ...], continue_on_error: bool, before_apps,
                say: Callable[[str], object] | None = None) -> dict:
    """engine.up(phases); in tls.mode letsencrypt as (the phases before apps), before_apps(),
    ("apps",): the certificate goes in between. When apps is applied, the release commands run
    first, right before the first push (dynia.operations.release; `say` shows their output lines)."""
    if "apps" in phases:
        from .release import run_releases

        engine.before_pushes = lambda: run_releases(engine, say or engine.on_progress)
    if "apps" not in phases or not uses_acme(engine.cluster.spec.tls.mode):
        return engine.up(phases, continue_on_error=continue_on_error)
    at = phases.index("apps")
    outputs: dict = {}
    if phases[:at]:
        outputs.update(engine.up(phases[:at], continue_on_error=continue_on_error))
    before_apps()
    outputs.update(engine.up(phases[at:], continue_on_error=continue_on_error))
    return outputs


def certificate_before_apps(engine, phases, *, on_progress: Callable[[str], object] | None = None) -> dict | None:
    """tls.mode letsencrypt, before the apps phase runs: the certificate must cover every bound
    domain before that phase creates their DNS records (after each service's gates). When it
    does not, it is ordered (a name without a record over DNS-01, the others over HTTP-01),
    stored (provision) and rolled (infra) here, and a failure stops the run before apps: no
    record for a name its certificate does not cover. When the stored one covers them all and is
    merely due for renewal, an order that fails before anything was kept is a warning and apps
    goes on (`dynia cert renew` retries). The public facts of the certificate when one was
    stored, else None. Called by apply_parts, only where that applies."""
    name, spec = engine.cluster.name, engine.cluster.spec
    state = engine.acme_state()
    now = dt.datetime.now(dt.timezone.utc)
    missing = certs.uncovered(state, spec, now)
    if on_progress is not None and missing:
        on_progress(f"certificate: ordering one that covers {', '.join(missing)} before the apps phase "
                    "creates their DNS records")
    try:
        # Nodes are probed only when this run did not just push infra to every node itself.
        rolled = certs.roll(engine, check_nodes="infra" not in phases)   # its errors say how to retry
        if rolled.action == "stored" and certs.uncovered(rolled.state, spec, now):
            # An order an interrupted run kept, from before a domain was bound: now order one.
            rolled = certs.roll(engine, check_nodes=False)
    except DyniaError as exc:
        if missing or not getattr(exc, "nothing_kept", False):
            exc.hint = (f"{exc.hint} — the apps phase did not run (no DNS record for a name the certificate does "
                        f"not cover); once the certificate is done, `dynia up --phase apps --cluster {name}`")
            raise
        return {**certs.public_facts(state), "action": "nothing to do",
                "warnings": [f"the certificate is due for renewal but the order failed: {exc.message} ({exc.hint}); "
                             f"it covers every domain until {state.not_after:%Y-%m-%d}: retry with "
                             f"`dynia cert renew --cluster {name}`"]}
    left = certs.uncovered(rolled.state, spec, now)
    if left:   # roll orders every bound domain: a CA that dropped one is not a certificate to route by
        raise DyniaError("cert", f"the certificate in force does not cover {', '.join(left)}",
                         f"run `dynia cert provision --cluster {name}`, then `dynia up --phase apps --cluster {name}`; "
                         "the apps phase did not run")
    if rolled.action not in ("issued", "stored"):
        return None
    assert rolled.state is not None  # issued or stored: a certificate
    return {**certs.public_facts(rolled.state), "action": rolled.action, "over_dns": list(rolled.over_dns),
            **({"warnings": list(rolled.warnings)} if rolled.warnings else {})}
