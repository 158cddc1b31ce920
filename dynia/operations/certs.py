"""tls.mode letsencrypt: the cluster's one ACME certificate — what it must cover, when it must
be renewed, how it is ordered, and the state it lives in.

One certificate for the cluster, ordered once and pushed to every node through the origin
certificate's secret slot: only the VIP holder receives the CA's validation request, so a
BACKUP could never answer for itself, and several nodes ordering the same names would burn
the CA's rate limits. The key authorization is published on every node — the VIP holder (read
live) must take it, the others are best effort, named in a warning — HTTP-01 through HAProxy →
the node's Caddy → PATHS.acme_challenge_dir.

The state (account key, certificate + key, expiry, names) is kept as the provision stack's
secret `acme` output (stacks/provision.py), read back by the engine on every run
(dynia.engine.automation.Engine.acme_state) — never in deploy-config/, the cache or any output. A fresh
order is first kept in the provision stack's secret config `dynia:acme` (Engine.keep_acme), so
a provision that fails after the order loses nothing: the next run stores that one. Before
the first order it holds a self-signed placeholder (`placeholder_state`): HAProxy cannot bind
443 without a certificate, and HTTP-01 validations need HAProxy running on 80.

A name bound just now has no DNS record yet — it gets one only after a certificate covers it
(dynia.cli.up orders before the apps phase, where records are made) — so the CA cannot reach
the cluster under it: such names are validated over DNS-01 through the zone's DNS API
(dynia.acme.dns01), every other name over HTTP-01.

No Pulumi import here: the CLI orders, then the engine stores (provision) and rolls (infra).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from ..acme.state import AcmeState, iso, newer, placeholder_state, public_facts
from ..errors import DyniaError

RENEW_DAYS = 30
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]+-----")


def covered_domains(spec) -> list[str]:
    """Every domain a service is bound to (the apex among them when a service is bound to it),
    sorted: the names the cluster's certificate must carry."""
    return sorted({d for svc in spec.services.values() for d in svc.domains})


def renewal_reason(state: AcmeState | None, spec, now: dt.datetime, days: int = RENEW_DAYS) -> str | None:
    """Why the cluster needs a new certificate now, or None: missing, a placeholder, expiring
    within `days`, not covering a bound domain, or issued by another ACME directory."""
    if state is None:
        return "no certificate yet"
    if state.placeholder:
        return "only the self-signed placeholder so far"
    left = state.not_after - now
    if left <= dt.timedelta(days=days):
        return f"expires {state.not_after:%Y-%m-%d} ({max(left.days, 0)} days left, renewed within {days})"
    missing = uncovered(state, spec, now)
    if missing:
        return f"does not cover {', '.join(missing)}"
    if state.directory and state.directory != spec.tls.directory_url:
        return f"issued by {state.shown_directory}, tls.acme_directory is now {spec.tls.directory_url}"
    return None


def uncovered(state: AcmeState | None, spec, now: dt.datetime) -> list[str]:
    """The bound domains `state` cannot serve a visitor a valid certificate for: all of them
    with no certificate, the placeholder or an expired one, else those it does not name."""
    domains = covered_domains(spec)
    if state is None or state.placeholder or state.not_after <= now:
        return domains
    return [d for d in domains if d not in state.domains]


def needs_renewal(state: AcmeState | None, spec, now: dt.datetime, days: int = RENEW_DAYS) -> bool:
    return renewal_reason(state, spec, now, days) is not None


def challenges(domains: list[str], dns) -> dict[str, str]:
    """domain → the challenge its order would use: dns-01 for a name without its record (with
    a DNS API, dynia.acme.dns01.Dns01), http-01 for the others."""
    without = set(dns.without_record(domains)) if dns is not None and domains else set()
    return {d: "dns-01" if d in without else "http-01" for d in domains}


def order_preview(state: AcmeState | None, spec, now: dt.datetime, dns=None) -> dict:
    """What `dynia cert provision --dry-run` shows: no key, nothing asked of the CA (the zone's
    DNS API, with `dns`, says which names have their record)."""
    domains = covered_domains(spec)
    return {"domains": domains, "challenges": challenges(domains, dns),
            "directory": spec.tls.directory_url, "email": spec.tls.email,
            "account": "existing" if state is not None and state.account_key else "new",
            "current": None if state is None else {
                "domains": list(state.domains), "not_after": iso(state.not_after), "placeholder": state.placeholder},
            "reason": renewal_reason(state, spec, now)}


def obtain(cluster, targets, state: AcmeState | None, *, verify: bool | str = True,
           timeout: float = 120.0, warnings: list[str] | None = None, dns=None,
           over_dns: list[str] | None = None) -> AcmeState:
    """Order the cluster's certificate (every bound domain) and return the new state; nothing is
    stored or pushed here (the caller keeps it, runs provision, then infra).

    A name whose DNS record already sends the CA to the cluster is validated over HTTP-01: key
    authorizations go to every node — the VIP holder (read live) must take them, the others
    are best effort — and are removed again, whatever happens. With `dns` (a
    dynia.acme.dns01.Dns01: the zone's DNS API), a name without such a record yet is validated
    over DNS-01 instead (its record waits for this certificate); the names whose TXT record the
    CA was given are appended to `over_dns`. Without `dns` every name goes over HTTP-01. A node that missed the answers or
    kept them, a TXT record left behind, is a line in `warnings`. A failure is a `cert` error."""
    from ..acme import client as acme_client
    from ..nodes import challenge
    from ..nodes.gather import vip_holder

    spec = cluster.spec
    warnings = warnings if warnings is not None else []
    domains = covered_domains(spec)
    if not domains:
        raise DyniaError("cert", f"{cluster.name}: no service is bound to a domain, nothing to certify",
                         "bind one first: dynia route bind <service> <domain>")
    dns01 = frozenset(dns.without_record(domains)) if dns is not None else frozenset()
    over_http = len(dns01) < len(domains)   # an order all over DNS-01 (a first up's names) needs no node
    if not targets and over_http:
        raise DyniaError("cert", f"{cluster.name}: no node to answer the ACME challenge",
                         "provision the cluster first: dynia up")
    holder = vip_holder(targets) if over_http else None   # it answers HTTP-01

    def publish(answers):
        missed = challenge.publish(targets, answers, holder)
        if missed:
            warnings.append("the ACME challenge was not placed on " + "; ".join(
                f"{n} ({why})" for n, why in sorted(missed.items())) + f": only {holder} (the VIP holder) "
                "answers it, so the order fails if the reserved IP moves during validation")

    def withdraw(tokens):
        try:
            left = challenge.withdraw(targets, tokens)
        except Exception as exc:  # noqa: BLE001 — said, not raised: the order's outcome matters more
            left = {t.node: exc.__class__.__name__ for t in targets}
        if left:
            from ..paths import PATHS

            warnings.append("ACME challenge answers were left on " + "; ".join(
                f"{n} ({why})" for n, why in sorted(left.items())) + f": remove {PATHS.acme_challenge_dir}/"
                f"{{{','.join(tokens)}}} there (each answers nothing once the CA is done with it)")

    txt_left: list[str] = []

    def publish_txt(values):
        if over_dns is not None:   # the names the CA really validates over DNS-01 (not reused ones)
            over_dns.extend(fqdn.removeprefix("_acme-challenge.") for fqdn in values)
        dns.publish(values)

    def withdraw_txt():
        left = dns.withdraw()
        if left:
            txt_left.extend(f"{fqdn} ({why})" for fqdn, why in sorted(left.items()))
            warnings.append("ACME TXT records were left in the zone: " + "; ".join(txt_left) + " — delete them "
                            "in the DNS provider (each answers nothing once the CA is done with it)")

    try:
        issued, account_key = acme_client.issue(
            domains, directory_url=spec.tls.directory_url, email=spec.tls.email,
            account_key_pem=state.account_key if state is not None else None,
            publish=publish, withdraw=withdraw, verify=verify, timeout=timeout,
            dns01=dns01, publish_txt=publish_txt if dns01 else None, withdraw_txt=withdraw_txt if dns01 else None)
    except DyniaError as exc:
        if txt_left:   # the warnings die with the failed order: the error says it
            exc.hint = f"{exc.hint}; delete the ACME TXT records left in the zone: {'; '.join(txt_left)}"
        raise
    return AcmeState(account_key, issued.haproxy_pem(), issued.not_after, issued.domains, spec.tls.directory_url,
                     placeholder=False, issued_at=dt.datetime.now(dt.timezone.utc).replace(microsecond=0))


def fingerprint(state: AcmeState) -> str:
    """SHA-256 of the state's leaf certificate (DER): what a node serving it presents."""
    from ..tls import certificate_record

    return certificate_record(state.pem)["sha256"]


def stale_nodes(cluster, state: AcmeState, targets, gather=None) -> dict[str, str]:
    """node → why it does not serve the stored certificate (another fingerprint, or no answer),
    read as `dynia infra verify` reads it: the node's own TLS handshake on its loopback
    (dynia.nodes.facts.served_certificate — the host firewall may keep this machine off 443),
    one SSH round trip per node. Empty: every node serves it. A node that does not answer
    counts as not serving it — unknown is not done, and the infra roll that follows says
    precisely what is wrong with it."""
    from ..nodes import facts as F
    from .verify import served_from_fact

    if not targets:
        return {}
    if gather is None:
        from ..nodes.gather import gather
    want = fingerprint(state)
    domains = covered_domains(cluster.spec)
    sni = domains[0] if domains else cluster.spec.domain
    stale = {}
    for node, answer in gather(targets, [F.served_certificate(sni)]).items():
        if answer.error is not None:
            stale[node] = f"unreachable: {answer.error}"
            continue
        info, why = served_from_fact(answer.facts.get("served_certificate"))
        if info is None:
            stale[node] = why
        elif info.sha256 != want:
            stale[node] = f"serves {info.sha256[:16]}…, the stored certificate is {want[:16]}…"
    return stale


@dataclass(frozen=True)
class Rolled:
    """What `roll` did: `action` is "issued" (ordered, stored, rolled), "stored" (an order kept by
    an earlier run whose provision failed: stored and rolled, nothing ordered), "rolled" (the
    stored certificate pushed to the nodes that did not serve it) or "nothing to do"."""
    state: AcmeState | None
    action: str
    reason: str | None = None
    nodes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    over_dns: tuple[str, ...] = ()   # the names validated over DNS-01 (no record yet)


__all__ = ["AcmeState", "RENEW_DAYS", "Rolled", "challenges", "covered_domains", "default_dns", "needs_renewal", "newer", "obtain",
           "order_preview", "placeholder_state", "public_facts", "renewal_reason", "roll", "stale_nodes", "uncovered"]


def pending_changes(engine, stale: dict[str, str]) -> list[str]:
    """What `dynia up` would change besides this certificate, read from the engine's preview of
    provision and infra before anything is ordered (with the state in force, so the certificate
    itself changes nothing yet): one line per resource. The pushes to `stale` nodes (a roll that
    stopped at a failed gate left them behind) are what the certificate roll finishes, and are
    left out — their bundles are secret, so whether they carry other changes too cannot be told
    apart here."""
    rows = engine.preview(("provision", "infra"))
    return [f"{r.phase}: {r.op} {r.resource}" for r in rows
            if not (r.phase == "infra" and r.node in stale and r.resource.endswith("-push"))]


def default_dns(cluster):
    """The cluster provider's DNS-01 (dynia.acme.dns01.Dns01 on the zone's DNS API), or None (a
    provider with no DNS API: every name over HTTP-01)."""
    from .. import providers
    from ..acme.dns01 import CloudflareZone, Dns01
    from ..state.cache import ClusterCache

    outputs = ClusterCache.of(cluster).read_outputs()
    api = providers.of(cluster.spec).dns_api()
    if api is None:
        return None
    return Dns01(CloudflareZone(api, cluster.spec.domain, cluster.name, outputs.reserved_ip if outputs else None))


def roll(engine, *, force: bool = False, verify: bool | str = True, now: dt.datetime | None = None,
         days: int = RENEW_DAYS, check_nodes: bool = True, unattended: bool = False, dns=None) -> Rolled:
    """tls.mode letsencrypt: bring every node to a current certificate.

    1. An order kept by an earlier run that failed before storing it (engine.acme_pending) is
       stored and rolled — never ordered again (Let's Encrypt: 5 duplicates a week).
    2. Else order when due (or `force`): the new state is made durable at once (engine.keep_acme:
       the provision stack's secret config), then stored (provision) and rolled (infra, node by
       node through the apply protocol, health-gated).
    3. Else, with `check_nodes`, every node is probed (stale_nodes): a node that does not serve
       the stored certificate (a roll stopped at a failed gate) gets it through infra.
    A failed order raises a `cert` error: nothing stored, nothing pushed.
    `unattended` (cron's `dynia cert renew`): when provision or infra would change anything else
    (pending_changes, previewed before anything is ordered), the certificate slot alone is
    rolled (dynia.operations.cert_slot) and the pending changes are named in a warning — a renewal never
    applies a change nobody reviewed, and never waits for one either.

    `engine`: a dynia.engine.automation.Engine (duck-typed: refresh_outputs, acme_state, acme_pending,
    keep_acme, up, cluster); the node list is the provision stack's (refreshed into the cache
    first: a fresh checkout has none). The ACME directory's TLS is checked with `verify` (True:
    the system's CAs, or REQUESTS_CA_BUNDLE). `dns`: DNS-01 for the names without a record
    (obtain); None: the provider's (default_dns), made only when an order is due."""
    from ..engine.session import targets
    from ..tls import uses_acme

    cluster = engine.cluster
    if not uses_acme(cluster.spec.tls.mode):
        return Rolled(None, "nothing to do")
    engine.refresh_outputs()
    warnings: list[str] = []
    over_dns: list[str] = []
    state = engine.acme_state()
    reason: str | None
    now = now or dt.datetime.now(dt.timezone.utc)
    if engine.acme_pending():
        action, reason = "stored", "an order kept by an earlier run whose provision did not finish"
        if unattended and _left_pending(engine, {}, warnings):
            stale = stale_nodes(cluster, state, targets(cluster))
            if not stale:
                return Rolled(state, "nothing to do", "every node serves the kept order; the next `dynia up` "
                              "stores it", warnings=tuple(warnings))
            return _slot_rolled(engine, state, stale, warnings)
    else:
        reason = renewal_reason(state, cluster.spec, now, days) or ("ordered on request" if force else None)
        if reason is not None and not covered_domains(cluster.spec):
            return Rolled(state, "nothing to do", "no service is bound to a domain")
        stale = stale_nodes(cluster, state, targets(cluster)) if check_nodes else {}
        if reason is None and not stale:
            return Rolled(state, "nothing to do")
        # something will be done: with anything else pending, the certificate slot alone
        slot_only = unattended and _left_pending(engine, stale, warnings)
        if reason is None:
            if slot_only:
                return _slot_rolled(engine, state, stale, warnings)
            _apply(engine, ("infra",), "the stored certificate")
            return Rolled(state, "rolled", "; ".join(f"{n}: {why}" for n, why in sorted(stale.items())),
                          tuple(sorted(stale)))
        try:
            state = obtain(cluster, targets(cluster), state, verify=verify, warnings=warnings,
                           dns=dns if dns is not None else default_dns(cluster), over_dns=over_dns)
        except DyniaError as exc:
            exc.resume = exc.resume or f"dynia cert renew --cluster {cluster.name}"
            exc.nothing_kept = True   # failed before anything was kept, stored or pushed
            raise
        engine.keep_acme(state)
        action = "issued"
        if slot_only:
            from .cert_slot import roll_slot

            nodes = roll_slot(cluster, state.pem, on_progress=engine.on_progress)
            engine.cache_certificate(state.pem)
            return Rolled(state, action, reason, nodes, tuple(warnings), tuple(over_dns))
    _apply(engine, ("provision", "infra"), "the certificate just ordered" if action == "issued" else
           "the kept order")
    return Rolled(state, action, reason, warnings=tuple(warnings), over_dns=tuple(over_dns))


def _left_pending(engine, stale: dict[str, str], warnings: list[str]) -> bool:
    """Whether provision or infra would change anything besides the certificate; if so, says what
    (a renewal then rolls the certificate slot alone and leaves those for `dynia up`)."""
    pending = pending_changes(engine, stale)
    if pending:
        shown = "; ".join(pending[:8]) + (f"; and {len(pending) - 8} more" if len(pending) > 8 else "")
        warnings.append(f"rolled the certificate slot alone; pending changes left for `dynia plan` and `dynia up "
                        f"--cluster {engine.cluster.name}`: {shown}")
    return bool(pending)


def _slot_rolled(engine, state: AcmeState, stale: dict[str, str], warnings: list[str]) -> Rolled:
    """The stored (or kept) certificate, pushed alone to the nodes that do not serve it."""
    from .cert_slot import roll_slot

    nodes = roll_slot(engine.cluster, state.pem, set(stale), on_progress=engine.on_progress)
    engine.cache_certificate(state.pem)
    return Rolled(state, "rolled", "; ".join(f"{n}: {why}" for n, why in sorted(stale.items())), nodes,
                  tuple(warnings))


def _apply(engine, phases, what: str) -> None:
    """Store and/or roll; a failure says what the retry really does."""
    name = engine.cluster.name
    for phase in phases:
        try:
            engine.up((phase,))
        except DyniaError as exc:
            if phase == "provision":
                retry = (f"{what} is kept in the provision stack's config (dynia:acme): it stores that one and "
                         "rolls it, nothing is ordered again")
            else:
                retry = "it rolls the stored certificate to every node that does not serve it yet"
            exc.hint = f"{exc.hint} — then `dynia cert renew --cluster {name}`: {retry}"
            exc.resume = f"dynia cert renew --cluster {name}"
            raise
