"""tls.mode letsencrypt: the cluster's one ACME certificate — what it must cover, when it must
be renewed, how it is ordered, and the state it lives in.

One certificate for the cluster, ordered once and pushed to every node through the origin
certificate's secret slot: only the VIP holder receives the CA's validation request, so a
BACKUP could never answer for itself, and several nodes ordering the same names would burn
the CA's rate limits. The key authorization is published on every node (whichever holds the
VIP answers), HTTP-01 through HAProxy → the node's Caddy → PATHS.acme_challenge_dir.

The state (account key, certificate + key, expiry, names) is kept as the provision stack's
secret `acme` output (stacks/provision.py), read back by the engine on every run
(dynia.engine.Engine.acme_state) — never in deploy-config/, the cache or any output. Before
the first order it holds a self-signed placeholder (`placeholder_state`): HAProxy cannot bind
443 without a certificate, and the very first HTTP-01 validation needs HAProxy running on 80.

No Pulumi import here: the CLI orders, then the engine stores (provision) and rolls (infra).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from .errors import DyniaError

RENEW_DAYS = 30
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]+-----")


def covered_domains(spec) -> list[str]:
    """Every domain a service is bound to (the apex among them when a service is bound to it),
    sorted: the names the cluster's certificate must carry."""
    return sorted({svc.domain for svc in spec.services.values() if svc.domain})


@dataclass(frozen=True)
class AcmeState:
    """The cluster's ACME account and certificate. `pem` is what HAProxy reads (full chain +
    key); `placeholder`: a self-signed stand-in until the first order succeeds."""
    account_key: str | None
    pem: str
    not_after: dt.datetime
    domains: tuple[str, ...] = ()
    directory: str | None = None
    placeholder: bool = False
    issued_at: dt.datetime | None = field(default=None)

    def __repr__(self) -> str:  # keys never reach a log through a repr
        return (f"AcmeState(domains={self.domains!r}, not_after={self.not_after.isoformat()}, "
                f"placeholder={self.placeholder}, account={'yes' if self.account_key else 'no'})")

    def to_dict(self) -> dict:
        return {"version": 1, "account_key": self.account_key, "pem": self.pem,
                "not_after": _iso(self.not_after), "domains": list(self.domains), "directory": self.directory,
                "placeholder": self.placeholder, "issued_at": _iso(self.issued_at) if self.issued_at else None}

    @classmethod
    def from_dict(cls, data, shown: str = "the provision stack's acme output") -> "AcmeState":
        """Checked like every stored secret: a damaged value is a typed error naming where it
        came from — never a message quoting it."""
        fix = ("run `dynia cert provision`: it orders a new certificate (and keeps the account key when it "
               "is readable)")
        try:
            if not isinstance(data, dict) or data.get("version") != 1:
                raise ValueError
            pem, key = data["pem"], data.get("account_key")
            if not (isinstance(pem, str) and "BEGIN CERTIFICATE" in pem and "PRIVATE KEY" in pem):
                raise ValueError
            if key is not None and not (isinstance(key, str) and "PRIVATE KEY" in key):
                raise ValueError
            domains = data.get("domains") or []
            if not (isinstance(domains, list) and all(isinstance(d, str) for d in domains)):
                raise ValueError
            directory = data.get("directory")
            if directory is not None and not isinstance(directory, str):
                raise ValueError
            issued = data.get("issued_at")
            return cls(key, pem, _parse(data["not_after"]), tuple(domains), directory,
                       data.get("placeholder") is True, _parse(issued) if issued else None)
        except (KeyError, TypeError, ValueError):
            raise DyniaError("state", f"{shown} is corrupt (expected dynia's ACME state, version 1)", fix) from None


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text) -> dt.datetime:
    if not isinstance(text, str):
        raise ValueError
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def placeholder_state(spec, account_key: str | None = None) -> AcmeState:
    """A self-signed certificate for *.domain and the apex: what HAProxy binds 443 with before
    the first order (made once, then kept in the state until an order replaces it)."""
    from .acme_client import certificate_facts
    from .tls import self_signed_pem

    pem = self_signed_pem(spec.domain).decode()
    not_after, _ = certificate_facts(pem)
    return AcmeState(account_key, pem, not_after, (), None, placeholder=True)


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
    missing = [d for d in covered_domains(spec) if d not in state.domains]
    if missing:
        return f"does not cover {', '.join(missing)}"
    if state.directory and state.directory != spec.tls.directory_url:
        return f"issued by {state.directory}, tls.acme_directory is now {spec.tls.directory_url}"
    return None


def needs_renewal(state: AcmeState | None, spec, now: dt.datetime, days: int = RENEW_DAYS) -> bool:
    return renewal_reason(state, spec, now, days) is not None


def order_preview(state: AcmeState | None, spec, now: dt.datetime) -> dict:
    """What `dynia cert provision --dry-run` shows: no key, no network."""
    return {"domains": covered_domains(spec), "directory": spec.tls.directory_url, "email": spec.tls.email,
            "account": "existing" if state is not None and state.account_key else "new",
            "current": None if state is None else {
                "domains": list(state.domains), "not_after": _iso(state.not_after), "placeholder": state.placeholder},
            "reason": renewal_reason(state, spec, now)}


def obtain(cluster, targets, state: AcmeState | None, *, verify: bool | str = True,
           timeout: float = 120.0) -> AcmeState:
    """Order the cluster's certificate (every bound domain) and return the new state; nothing is
    stored or pushed here (the caller runs provision, then infra). Key authorizations go to
    EVERY node and are removed again, whatever happens. A failure is a `cert` error."""
    from . import acme_client
    from .nodes import challenge

    spec = cluster.spec
    domains = covered_domains(spec)
    if not domains:
        raise DyniaError("cert", f"{cluster.name}: no service is bound to a domain, nothing to certify",
                         "bind one first: dynia route bind <service> <domain>")
    if not targets:
        raise DyniaError("cert", f"{cluster.name}: no node to answer the ACME challenge",
                         "provision the cluster first: dynia up")

    issued, account_key = acme_client.issue(
        domains, directory_url=spec.tls.directory_url, email=spec.tls.email,
        account_key_pem=state.account_key if state is not None else None,
        publish=lambda answers: challenge.publish(targets, answers),
        withdraw=lambda tokens: challenge.withdraw(targets, tokens),
        verify=verify, timeout=timeout)
    return AcmeState(account_key, issued.haproxy_pem(), issued.not_after, issued.domains, spec.tls.directory_url,
                     placeholder=False, issued_at=dt.datetime.now(dt.timezone.utc).replace(microsecond=0))


def public_facts(state: AcmeState) -> dict:
    """What may be printed or cached: names, expiry, placeholder or not — never a PEM."""
    return {"domains": list(state.domains), "not_after": _iso(state.not_after), "placeholder": state.placeholder,
            "directory": state.directory, "account": bool(state.account_key)}


__all__ = ["AcmeState", "RENEW_DAYS", "covered_domains", "needs_renewal", "obtain", "order_preview",
           "placeholder_state", "public_facts", "renewal_reason"]


def roll(engine, *, force: bool = False, verify: bool | str = True,
         now: dt.datetime | None = None) -> tuple[AcmeState | None, str | None]:
    """tls.mode letsencrypt: order when due (or `force`), then store it (provision) and roll it
    to every node (infra, node by node through the apply protocol, health-gated). Returns
    (the state now in force, why it was ordered — None when nothing was due). Any failure
    before the store raises a `cert` error: nothing is pushed, every node keeps its certificate.

    `engine`: a dynia.engine.Engine (duck-typed: acme_state, keep_acme, up, cluster); the node
    list is the last provision's (dynia.session.targets), read after whatever the engine just
    applied. The ACME directory's TLS is checked with `verify` (True: the system's CAs, or
    REQUESTS_CA_BUNDLE)."""
    from .session import targets
    from .tls import uses_acme

    cluster = engine.cluster
    if not uses_acme(cluster.spec.tls.mode):
        return None, None
    state = engine.acme_state()
    now = now or dt.datetime.now(dt.timezone.utc)
    reason = renewal_reason(state, cluster.spec, now) or ("ordered on request" if force else None)
    if reason is None or not covered_domains(cluster.spec):
        return state, None
    new = obtain(cluster, targets(cluster), state, verify=verify)
    engine.keep_acme(new)
    engine.up(("provision",))
    engine.up(("infra",))
    return new, reason
