"""`dynia infra verify`: what the provider side should look like, checked against reality.

One row per check, each `ok`, `failed` or `skipped` with a one-line detail:

* reserved_ip_holder — the node the provider says holds the reserved IP is the one VRRP MASTER;
* reserved_ip_assignment — per node: notify.sh's last assignment of the reserved IP through the
                       provider's API (when, the HTTP status, the droplet it asked for); a MASTER
                       whose last one failed fails (its token was refused: the next failover fails too);
* haproxy_backends   — per node: HAProxy (admin socket `show stat`) sees every backend server up;
* config_version     — every node applied the same config version, the one the last apply recorded;
* certificate        — per node: the certificate its HAProxy *serves* (a TLS handshake made ON
                       the node to 127.0.0.1:443, SNI a bound domain, over the pinned SSH
                       session; the key is never read) is the state's; 21 days or fewer left is a
                       warning, 7 or fewer a failure (dynia.acme.expiry);
* dns_record         — per bound domain: an A record at Cloudflare, pointing at the reserved IP,
                       proxied as the TLS mode wants;
* origin_pull        — origin mode: zone-level Authenticated Origin Pulls on at Cloudflare, the
                       certificate uploaded for it the state's (by fingerprint) and `active`,
                       and no other uploaded certificate active beside it.

Collection (`collect`) does the I/O, in parallel: the node facts (one SSH round trip per node,
dynia.nodes.gather, the served certificate among them), the provider's holder and Cloudflare's
records. Nothing connects to a node's port 443 from the operator's machine: in origin mode the
host firewall opens it to Cloudflare's ranges only.
Assembly (`assemble`) is pure: facts + desired state → rows, tested on recorded inputs.
A skipped row says why (what the provider cannot answer: the lab has no DNS records; the
state's certificate missing from the cache); it does not fail the verdict. No Pulumi here: addresses and the state's certificate come from the cache.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from ..nodes import vip
from ..paths import PORTS
from ..state.cache import ORIGIN_PULL_CACHE, read_state_certificate
from ..tls import CertInfo, cert_info_der, name_covers

SCHEMA = "dynia.infra-verify/1"
TLS_TIMEOUT = 5.0
STATUSES = ("ok", "warning", "failed", "skipped")   # a warning does not fail the verdict
CHECKS = ("reserved_ip_holder", "haproxy_backends", "config_version", "certificate", "dns_record", "origin_pull",
          "reserved_ip_assignment")


@dataclass(frozen=True)
class Check:
    check: str      # one of CHECKS
    target: str     # a node, a domain, the reserved IP or "cluster"
    status: str     # one of STATUSES
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


# --- certificates (public parts only) -------------------------------------------------------

def served_certificate(host: str, sni: str, port: int = PORTS.https, timeout: float = TLS_TIMEOUT) -> CertInfo:
    """The certificate HAProxy serves at host:port for `sni`, over TLS from this machine. Only
    where 443 is open to the operator (tls.mode letsencrypt: dynia.operations.certs.stale_nodes); `infra
    verify` reads it on the node instead (served_from_fact): in origin mode the firewall opens
    443 to Cloudflare only. Not verified against any CA on purpose: what is compared is the
    fingerprint itself."""
    import socket
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as tls:
            der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError("the server sent no certificate")
    return cert_info_der(der)


def served_from_fact(fact: Any) -> tuple[CertInfo | None, str]:
    """(the certificate a node reported serving, None + why not): the `served_certificate` fact
    (dynia.nodes.facts) turned into a CertInfo; anything malformed is that node's failure."""
    if not isinstance(fact, dict):
        return None, "the node did not report it"
    if fact.get("error"):
        return None, str(fact["error"])
    try:
        when = dt.datetime.strptime(fact["not_after"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        names = tuple(n for n in fact.get("names") or () if isinstance(n, str))
        return CertInfo(str(fact["sha256"]), when, names, bool(fact.get("self_signed"))), ""
    except (KeyError, TypeError, ValueError):
        return None, "the node's answer is not a certificate"


# --- what verify compares ---------------------------------------------------------------------

@dataclass
class Expected:
    cluster: str
    nodes: list[str]
    reserved_ip: str
    domains: list[str]                  # bound domains (services with a domain)
    proxied: bool                       # what the TLS mode wants of their records
    applied_version: int | None         # the last apply's configVersion (cache), None before one
    certificate: CertInfo | None        # the state's, None: why in certificate_missing
    certificate_missing: str = ""
    dns_provider: str | None = "cloudflare"  # None: the provider manages no DNS
    provider_kind: str = ""
    addresses: dict[str, tuple[str, ...]] = field(default_factory=dict)  # node -> (public, private), cache
    placements: dict[str, str] = field(default_factory=dict)  # HAProxy backend -> its service's placement
    acme: bool = False                  # tls.mode letsencrypt: a self-signed certificate is the placeholder
    origin_pulls: bool = False          # tls.mode origin: the zone presents the cluster's client certificate
    origin_pull: CertInfo | None = None  # the state's client certificate, None: why in origin_pull_missing
    origin_pull_missing: str = ""
    assigns_reserved_ip: bool = False   # notify.sh assigns it through the provider's API (the node profile)
    data: dict[str, tuple[str, str]] = field(default_factory=dict)  # data service -> (volume, mount)


@dataclass
class Observed:
    facts: dict[str, dict]                     # node -> facts (dynia.nodes.facts names)
    unreachable: dict[str, str]                # node -> why it did not answer over SSH
    unreadable: dict[str, dict[str, str]] = field(default_factory=dict)  # node -> fact -> why it was not read
    holder: str | None = None                  # the provider's answer
    holder_error: str | None = None            # the provider was asked and failed
    served: dict[str, CertInfo] = field(default_factory=dict)        # node -> what it serves (read on it)
    served_errors: dict[str, str] = field(default_factory=dict)
    sni: str = ""
    dns: list[Any] | None = None               # DnsRecord-like: name, type, content, proxied
    dns_error: str | None = None
    origin_pull: Any = None                    # cloudflare_api.OriginPull: the zone's setting and uploads
    origin_pull_error: str | None = None
    attached: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # data service -> (node, error)


def _row(check: str, target: str, ok: bool, detail: str) -> Check:
    return Check(check, target, "ok" if ok else "failed", detail)


def _holder_rows(e: Expected, o: Observed) -> list[Check]:
    roles = {n: ((o.facts.get(n) or {}).get("vrrp") or {}).get("role") for n in e.nodes if n not in o.unreachable}
    masters = vip.masters(roles)
    if o.holder_error:
        return [_row("reserved_ip_holder", e.reserved_ip, False, f"the provider did not answer: {o.holder_error}")]
    unseen = f" ({', '.join(sorted(o.unreachable))} unreachable)" if o.unreachable else ""
    if o.holder is None:
        return [_row("reserved_ip_holder", e.reserved_ip, False,
                     f"no node holds it; VRRP MASTER: {', '.join(masters) or 'none'}{unseen}")]
    if vip.kept(o.holder, roles):
        return [_row("reserved_ip_holder", e.reserved_ip, True, f"held by {o.holder}, the VRRP MASTER")]
    if not masters:
        why = f"no node reports VRRP MASTER{unseen}"
    elif vip.split(roles):
        why = f"{len(masters)} nodes report VRRP MASTER ({', '.join(masters)}): a split brain"
    else:
        why = f"the VRRP MASTER is {masters[0]}"
    return [_row("reserved_ip_holder", e.reserved_ip, False, f"held by {o.holder}, but {why}")]


def _assignment_rows(e: Expected, o: Observed) -> list[Check]:
    from ..nodes.reserved_ip import assignment_of

    if not e.assigns_reserved_ip:
        return [Check("reserved_ip_assignment", e.reserved_ip, "skipped",
                      f"provider {e.provider_kind} moves no reserved IP through an API (keepalived puts the "
                      "address on the MASTER itself)")]
    rows = []
    for node in e.nodes:
        if node in o.unreachable:
            rows.append(Check("reserved_ip_assignment", node, "skipped", f"unreachable: {o.unreachable[node]}"))
            continue
        facts = o.facts.get(node) or {}
        record = assignment_of(facts.get("reserved_ip"))
        master = (facts.get("vrrp") or {}).get("role") == "MASTER"
        if record is None:
            rows.append(Check("reserved_ip_assignment", node, "skipped",
                              "no assignment recorded (notify.sh records one each time this node becomes MASTER)"))
        elif not record.failed:
            rows.append(_row("reserved_ip_assignment", node, True, f"last assignment {record.describe()}"))
        elif master:
            rows.append(_row("reserved_ip_assignment", node, False,
                             f"MASTER, and its last assignment was {record.describe()}: the next failover "
                             "fails the same way; check the node token and its scopes (README: DIGITALOCEAN_NODE_TOKEN)"))
        else:
            rows.append(Check("reserved_ip_assignment", node, "skipped",
                              f"last assignment, as MASTER earlier: {record.describe()}; not MASTER now"))
    return rows


def _servers(stat: Any) -> list[tuple[str, str, dict]] | None:
    """(backend, server, state) of every server in the `show_stat` fact (dynia.nodes.facts);
    None when the fact is missing (HAProxy's admin socket did not answer)."""
    if not isinstance(stat, dict) or not isinstance(stat.get("backends"), dict):
        return None
    return [(be, sv, state if isinstance(state, dict) else {})
            for be, data in sorted(stat["backends"].items()) if isinstance(data, dict)
            for sv, state in sorted((data.get("servers") or {}).items())]


def _expected_up(placement: str | None, node: str, server: str, holder: str | None) -> bool | None:
    """Whether `server` in a backend of `node`'s HAProxy should be up: every copy of a service
    placed on all nodes; an active-only service runs on the holder only, and only the holder's
    HAProxy gets its traffic; a standby-only one runs everywhere but the holder. None: cannot
    tell (the holder is unknown)."""
    if placement == "active-only":
        return None if holder is None else node == holder
    if placement == "standby-only":
        return None if holder is None else server != holder
    return True


def _backend_rows(e: Expected, o: Observed) -> list[Check]:
    rows = []
    for node in e.nodes:
        if node in o.unreachable:
            rows.append(_row("haproxy_backends", node, False, f"unreachable: {o.unreachable[node]}"))
            continue
        servers = _servers((o.facts.get(node) or {}).get("show_stat"))
        if servers is None:
            rows.append(_row("haproxy_backends", node, False, "HAProxy's admin socket did not answer (is it running?)"))
            continue
        if not servers:
            rows.append(_row("haproxy_backends", node, False, "HAProxy reports no backend servers"))
            continue
        wanted, unknown = [], 0
        for be, sv, st in servers:
            want = _expected_up(e.placements.get(be), node, sv, o.holder)
            if want is None:
                unknown += 1
            elif want:
                wanted.append((be, sv, st))
        # "UP" and "UP 1/2" (up, one failed check on the way down) are up; DOWN, MAINT, DRAIN,
        # NOLB and "no check" are not what dynia renders for a healthy node.
        down = [f"{be}/{sv} {st.get('status') or '?'}" + (f" ({st['check_status']})" if st.get("check_status") else "")
                for be, sv, st in wanted if not str(st.get("status") or "").startswith("UP")]
        backends = sorted({be for be, _, _ in wanted})
        aside = len(servers) - len(wanted) - unknown
        notes = (f"; {aside} not serving here by placement" if aside else "") + \
                (f"; {unknown} not judged (holder unknown)" if unknown else "")
        if down:
            rows.append(_row("haproxy_backends", node, False,
                             f"{len(down)} of {len(wanted)} down: " + ", ".join(down) + notes))
        else:
            rows.append(_row("haproxy_backends", node, True,
                             f"{len(wanted)} servers up in {', '.join(backends)}{notes}"))
    return rows


def _version_rows(e: Expected, o: Observed) -> list[Check]:
    versions: dict[str, int] = {}
    problems = []
    for node in e.nodes:
        if node in o.unreachable:
            problems.append(f"{node} unreachable")
            continue
        applied = (o.facts.get(node) or {}).get("applied")
        v = applied.get("configVersion") if isinstance(applied, dict) else None
        unreadable = o.unreadable.get(node, {}).get("applied")
        if not isinstance(v, int) or isinstance(v, bool):
            problems.append(f"{node}'s applied.json is unreadable ({unreadable})" if unreadable else
                            f"{node} has no applied config" if applied is None else f"{node}'s applied.json is unreadable")
            continue
        versions[node] = v
    distinct = sorted(set(versions.values()))
    shown = ", ".join(f"{n} v{v}" for n, v in versions.items())
    if len(distinct) > 1:
        problems.insert(0, f"nodes differ: {shown}")
    elif distinct and e.applied_version is not None and distinct[0] != e.applied_version:
        problems.insert(0, f"nodes at v{distinct[0]}, the last apply recorded v{e.applied_version}")
    if problems:
        return [_row("config_version", "cluster", False, "; ".join(problems))]
    recorded = "" if e.applied_version is not None else " (no applied record in the cache to compare with)"
    return [_row("config_version", "cluster", True, f"every node at v{distinct[0]}{recorded}")]


def _certificate_rows(e: Expected, o: Observed, now: dt.datetime) -> list[Check]:
    from ..acme.expiry import expiry_detail, expiry_level

    rows = []
    for node in e.nodes:
        if node in o.served_errors or node not in o.served:
            rows.append(_row("certificate", node, False,
                             f"no certificate from 127.0.0.1:{PORTS.https} on the node (SNI {o.sni}): "
                             f"{o.served_errors.get(node, 'not fetched')}"))
            continue
        got = o.served[node]
        problems = []
        if e.certificate is not None and got.sha256 != e.certificate.sha256:
            problems.append(f"serves sha256 {got.sha256[:16]}…, the state's is {e.certificate.sha256[:16]}…")
        days = (got.not_after - now).days
        level = expiry_level(got.not_after, now)
        if level == "failed":
            problems.append(expiry_detail(got.not_after, now))
        uncovered = [d for d in e.domains if got.names and not any(name_covers(p, d) for p in got.names)]
        if uncovered:
            problems.append(f"does not cover {', '.join(uncovered)}")
        if e.acme and got.self_signed:
            problems.append("serves the self-signed placeholder: no ACME certificate issued yet "
                            "(`dynia cert provision`)")
        if problems:
            rows.append(_row("certificate", node, False, "; ".join(problems)))
        elif level == "warning":
            rows.append(Check("certificate", node, "warning", expiry_detail(got.not_after, now)))
        elif e.certificate is None:
            rows.append(Check("certificate", node, "skipped",
                              f"expires {got.not_after:%Y-%m-%d} ({days} days), but not compared with the state: "
                              f"{e.certificate_missing}"))
        else:
            rows.append(_row("certificate", node, True,
                             f"the state's (sha256 {got.sha256[:16]}…), expires {got.not_after:%Y-%m-%d} ({days} days)"))
    # Nodes that all serve one certificate, even when the state's is unknown: say if they differ.
    if e.certificate is None and len({c.sha256 for c in o.served.values()}) > 1:
        rows = [_row(r.check, r.target, False, r.detail + "; the nodes serve different certificates")
                if r.status == "skipped" else r for r in rows]
    return rows


def _dns_rows(e: Expected, o: Observed) -> list[Check]:
    if e.dns_provider is None:
        return [Check("dns_record", d, "skipped",
                      f"provider {e.provider_kind} manages no DNS records (nothing to compare; "
                      f"served names are checked by the certificate rows)") for d in e.domains]
    if o.dns_error is not None:
        return [_row("dns_record", d, False, o.dns_error) for d in e.domains]
    rows = []
    want = "proxied" if e.proxied else "DNS only"
    for d in e.domains:
        found = [r for r in (o.dns or []) if r.name == d and r.type in ("A", "AAAA", "CNAME")]
        if not found:
            rows.append(_row("dns_record", d, False, "no A record"))
            continue
        problems = []
        others = [f"{r.type} {r.content}" for r in found if not (r.type == "A" and r.content == e.reserved_ip)]
        if others:
            problems.append(f"points at {', '.join(others)}, not the reserved IP {e.reserved_ip}")
        unproxied = [r for r in found if r.proxied != e.proxied]
        if unproxied:
            problems.append(f"{'not proxied' if e.proxied else 'proxied'} (the TLS mode wants {want})")
        rows.append(_row("dns_record", d, not problems,
                         "; ".join(problems) if problems else f"A {e.reserved_ip}, {want}"))
    return rows


def _origin_pull_rows(e: Expected, o: Observed) -> list[Check]:
    if not e.origin_pulls:
        return []
    if e.dns_provider is None:
        return [Check("origin_pull", "zone", "skipped",
                      f"provider {e.provider_kind} uploads nothing to Cloudflare (its stand-in for Cloudflare presents "
                      "the cluster's client certificate itself)")]
    if o.origin_pull_error is not None or o.origin_pull is None:
        return [_row("origin_pull", "zone", False, o.origin_pull_error or "not read")]
    pull = o.origin_pull
    problems = [] if pull.enabled else ["zone-level Authenticated Origin Pulls is off: Cloudflare presents no "
                                        "certificate of the cluster's and every origin pull gets 403"]
    if e.origin_pull is None:
        detail = "; ".join(problems) or "on"
        return [_row("origin_pull", "zone", False, detail)] if problems else [
            Check("origin_pull", "zone", "skipped", f"{detail}, but the upload is not compared with the state: "
                                                     f"{e.origin_pull_missing}")]
    ours = [c for c in pull.certificates if c.sha256 == e.origin_pull.sha256]
    others = [c for c in pull.certificates if c.sha256 != e.origin_pull.sha256 and c.status == "active"]
    if not ours:
        problems.append(f"the state's certificate (sha256 {e.origin_pull.sha256[:16]}…) is not uploaded "
                        f"({len(pull.certificates)} other(s) are)")
    elif not any(c.status == "active" for c in ours):
        problems.append(f"the state's certificate is uploaded but {ours[0].status}, not active "
                        "(Cloudflare deploys an upload within minutes)")
    if others:
        problems.append(f"another uploaded certificate is active too ({', '.join(c.id for c in others)}): "
                        "Cloudflare presents one of them; keep only the state's")
    return [_row("origin_pull", "zone", not problems, "; ".join(problems) if problems else
                 f"on; the state's certificate (sha256 {e.origin_pull.sha256[:16]}…) uploaded and active")]


def _volume_rows(e: Expected, o: Observed) -> list[Check]:
    """Each data volume attached to the reserved IP's holder and mounted there only (the provider's
    attachment, the nodes' mount tables: dynia.operations.volume_status)."""
    from .volume_status import views

    rows = []
    for v in views(e.data, None if o.holder_error else o.holder, o.facts, o.attached, sorted(o.unreachable)):
        last = v.last_action
        said = f"; last call {last['action']} {last['outcome']} {last.get('status') or ''}".rstrip() if last else ""
        if v.problems:
            rows.append(_row("data_volume", v.volume, False, "; ".join(v.problems) + said))
        elif o.holder is None:
            rows.append(Check("data_volume", v.volume, "skipped", "no node holds the reserved IP to compare with"))
        else:
            rows.append(_row("data_volume", v.volume, True, f"attached to {v.attached}, the reserved IP's holder, "
                                                            f"and mounted at {v.mount} there only{said}"))
    return rows


def assemble(e: Expected, o: Observed, now: dt.datetime | None = None) -> list[Check]:
    now = now or dt.datetime.now(dt.timezone.utc)
    return [*_holder_rows(e, o), *_backend_rows(e, o), *_version_rows(e, o),
            *_certificate_rows(e, o, now), *_dns_rows(e, o), *_origin_pull_rows(e, o), *_assignment_rows(e, o),
            *_volume_rows(e, o)]


def summary(checks: list[Check]) -> dict[str, int]:
    return {s: sum(1 for c in checks if c.status == s) for s in STATUSES}


def healthy(checks: list[Check]) -> bool:
    return not any(c.status == "failed" for c in checks)


def as_json(cluster: str, checks: list[Check]) -> dict:
    """The `--json` document (README, "infra verify --json"; pinned by tests/unit/test_verify.py)."""
    return {"schema": SCHEMA, "cluster": cluster, "ok": healthy(checks), "summary": summary(checks),
            "checks": [c.as_dict() for c in checks]}


# --- collection (I/O) -------------------------------------------------------------------------

def _provider_holder(provider, e: Expected, answers) -> tuple[str | None, str | None]:
    """(holder, error): the provider's own answer (DigitalOcean: its API; the lab: its stand-in for
    that API), given each node's cached addresses plus those read live on its VIP device
    (Provider.reserved_ip_holder)."""
    from ..errors import DyniaError
    from ..nodes.reserved_ip import claimed_addresses

    nodes, conflicts = claimed_addresses({n: set(e.addresses.get(n, ())) for n in e.nodes}, answers)
    if conflicts:
        return None, "conflict: " + "; ".join(conflicts)
    try:
        return provider.reserved_ip_holder(e.reserved_ip, nodes), None
    except DyniaError as exc:
        return None, exc.message


def expected(cluster) -> Expected:
    from .. import providers
    from ..errors import DyniaError
    from ..render.rendering import backend_name
    from ..state.cache import ClusterCache
    from ..tls import proxied, uses_acme
    from ..volumes import data_services, volume_name

    spec = cluster.spec
    cache = ClusterCache.of(cluster)
    outputs = cache.read_outputs()
    if outputs is None:
        raise DyniaError("state", f"cluster {cluster.name} has no provisioned nodes in the cache",
                         f"run `dynia up --cluster {cluster.name}` first (verify checks what an apply left)")
    applied = cache.read_applied()
    cert, missing = read_state_certificate(cluster)
    pull, pull_missing = read_state_certificate(cluster, ORIGIN_PULL_CACHE)
    provider = providers.of(spec)
    # The provider declares the DNS API it needs on the operator's machine (DigitalOcean pairs
    # with Cloudflare); a provider without one manages no records.
    dns = "cloudflare" if "cloudflare" in dict(provider.operator_env) else None
    domains = sorted({d for s in spec.services.values() for d in s.domains})
    addresses = {n: tuple(a for a in (ad.public_ip, ad.private_ip) if a) for n, ad in outputs.nodes.items()}
    placements = {backend_name(name): svc.placement for name, svc in spec.services.items() if svc.domains}
    data = {s: (volume_name(spec.name, s), d.mount) for s, d in data_services(spec).items()}
    return Expected(cluster.name, list(spec.nodes), outputs.reserved_ip, domains, proxied(spec.tls.mode),
                    applied.configVersion if applied else None, cert, missing, dns, spec.provider.kind, addresses,
                    placements, uses_acme(spec.tls.mode), proxied(spec.tls.mode), pull, pull_missing,
                    provider.profile.assigns_reserved_ip, data)


def collect(cluster, e: Expected, *, timeout: float = 5.0, cloudflare=None) -> Observed:
    """Everything verify reads, in parallel: node facts (one SSH round trip each, the served
    certificate read on the node among them), Cloudflare's records; then the provider's holder."""
    from concurrent.futures import ThreadPoolExecutor

    from .. import providers
    from ..engine.session import targets, unpinned
    from ..errors import DyniaError
    from ..nodes import facts as F
    from ..nodes.gather import gather

    provider = providers.of(cluster.spec)
    nodes = [t for t in targets(cluster) if t.node in e.nodes]
    sni = e.domains[0] if e.domains else cluster.spec.domain
    wanted = [F.VRRP, F.APPLIED, F.RESERVED_IP, F.SHOW_STAT, F.vip_device_addresses(provider.profile), F.served_certificate(sni)]
    if e.data:
        wanted += [F.DATA_MOUNTS, F.VOLUME_ACTIONS]

    def dns():
        """(records, error, origin pull, its error): Cloudflare's side, the zone looked up once."""
        if e.dns_provider is None:
            return None, None, None, None
        try:
            from ..providers.cloudflare_api import CloudflareApi

            api = cloudflare or CloudflareApi.from_env()
            zone_id = api.zone_id(cluster.spec.domain)
            records = api.dns_records(zone_id)
        except DyniaError as exc:
            return None, exc.message, None, exc.message
        if not e.origin_pulls:
            return records, None, None, None
        try:
            return records, None, api.origin_pull(zone_id), None
        except DyniaError as exc:
            return records, None, None, exc.message

    with ThreadPoolExecutor(max_workers=2) as pool:
        facts_f = pool.submit(gather, nodes, wanted, timeout, unpinned(cluster))
        dns_f = pool.submit(dns)
        answers = facts_f.result()
        records, dns_error, pull, pull_error = dns_f.result()
    o = Observed(facts={n: a.facts for n, a in answers.items() if a.error is None},
                 unreadable={n: a.unreadable for n, a in answers.items() if a.unreadable},
                 unreachable={n: a.error for n, a in answers.items() if a.error is not None},
                 sni=sni, dns=records, dns_error=dns_error, origin_pull=pull, origin_pull_error=pull_error)
    for n in e.nodes:
        if n not in answers:
            o.unreachable[n] = "not provisioned (no address in the cache)"
    for node, answer in answers.items():
        if answer.error is not None:
            o.served_errors[node] = f"unreachable: {answer.error}"
            continue
        info, why = served_from_fact(answer.facts.get("served_certificate"))
        if info is not None:
            o.served[node] = info
        else:
            o.served_errors[node] = why
    o.holder, o.holder_error = _provider_holder(provider, e, answers)
    if e.data:
        from ..nodes.reserved_ip import claimed_addresses
        from .volume_status import attachments

        addresses, _ = claimed_addresses({n: set(e.addresses.get(n, ())) for n in e.nodes}, answers)
        o.attached = attachments(cluster, provider, list(e.data), addresses)
    return o


def verify(cluster, **kw) -> list[Check]:
    from ..engine.session import reach

    reach(cluster)  # addresses and host keys from the state when this machine's cache lacks them
    e = expected(cluster)
    return assemble(e, collect(cluster, e, **kw))
