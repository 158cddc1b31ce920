"""`dynia status`: one truthful view of a cluster, read back from its nodes.

Two halves. `read(cluster)` gathers the status facts (dynia.nodes.facts.status_facts) from every
node in parallel, one SSH round trip each, and asks the provider who holds the reserved IP.
`assemble(...)` is pure: facts + desired state → a ClusterStatus, whose verdict and exit code
follow from the problems it finds. No Pulumi anywhere (the addresses come from the cache).

The JSON form (`dynia status --json`) is `ClusterStatus.as_dict()`: exactly the dataclasses
below, field for field, each field name in camelCase as in every dynia JSON document
(`reserved_ip` → `reservedIp`; keys that are data — node, service, component names, HTTP
classes — are kept as they are). tests/unit/test_status.py checks the output against them.
Schema version 2 (1 had snake_case keys and `schema` for this field):

ClusterStatus
    schema_version: int         2
    cluster: str
    reserved_ip: str
    holder: str | None          the node the provider says holds the reserved IP (None: none/unknown)
    holder_error: str | None    why the provider could not tell
    masters: list[str]          nodes whose keepalived runs and last reported MASTER
    serving_node: str | None    whose HAProxy view `backends` shows (the holder; else a MASTER; else
                                the first node that answered)
    desired_version: int        the config version the current spec renders to
    http_window_seconds: float | None
                                the HTTP counts cover this many seconds (`--watch`: since the last
                                refresh); None: since each HAProxy last started (one-shot)
    nodes: list[NodeStatus]
    services: list[ServiceStatus]
    backends: list[BackendView] the serving node's HAProxy, every backend with its servers
    problems: list[str]         everything that makes the cluster unhealthy, worst first
    healthy: bool               no problems
    verdict: str                one line
    certificate: CertificateView | None
                                the certificate the nodes serve, as the last apply recorded it
    volumes: list[VolumeView]   each data volume (services.<name>.data; dynia.operations.volume_status):
                                {service, volume, mount, attached (the node the provider names, or
                                "droplet <id>"; None: nowhere), attached_error, mounted (nodes whose
                                mount table has it), last_action (the mover's last provider call:
                                {time, action, outcome, status, droplet}), problems}
CertificateView
    not_after: str | None       expiry (UTC, ISO 8601);  days_left: int | None
    names: list[str]            the DNS names it covers
    source: str                 "cache": .dynia/cache/<cluster>/certificate.json (written by
                                `dynia up` from the provision phase; status never reads Pulumi)
    error: str | None           why the expiry is unknown
    level: str                  "ok", "warning" (21 days or fewer left: named on its line), "failed"
                                (7 or fewer: a problem, so the verdict is unhealthy), "unknown"
NodeStatus
    node, address: str
    reachable: bool;  error: str | None        why the node did not answer
    role: MASTER | BACKUP | FAULT | STOP | None  (keepalived not running → STOP; None: never recorded)
    role_since: str | None      when notify.sh recorded the role (UTC, ISO 8601)
    priority: int | None        keepalived.conf's priority on the node
    holds_reserved_ip: bool | None
    applied_version: int | None (None: never applied);  desired_version: int
    degraded: Degraded | None   {reason, time, layer}: the apply script's marker
    lockdown: on | off | partial | None        immutable attribute on the managed files
    running: {haproxy, caddy, keepalived: bool | None}
    caddy_health: int | None;  caddy_error: str | None   HTTP status of Caddy's health URI
    containers: list[Container] {service, name, state, image, digest}
    unreadable: dict[str, str]  fact → why the node's answer to it was not read (it did not fit its
                                model, dynia.nodes.answers): that fact is shown as unknown
    problems: list[str]
    reserved_ip_assignment: ReservedIpAssignment | None
                                notify.sh's last assignment of the reserved IP through the provider's
                                API (None: it never made one): {time, outcome (assigned | refused |
                                gave-up | no-token), status (the API's HTTP status, 000: no answer),
                                droplet (the droplet it asked for)}
ServiceStatus
    service, placement: str
    backend: str | None         HAProxy backend of this service (None: it has none of its own)
    servers: dict[str, str]     node → that server's status in the serving node's backend
    http: dict[str, int] | None {1xx, 2xx, 3xx, 4xx, 5xx, other}: responses of the backend,
                                summed over every node's HAProxy
    containers: dict[str, list[Container]]     node → that node's containers of the service
    off_release: dict[str, list[str]]          node → the digests its containers run that the
                                               release in force does not pin (a problem each)
    problems: list[str]
    domains: list[str]          the domains routed to it (the spec's; one DNS record each)
    maintenance: str | None     the 503 page's sentence while the spec puts it in maintenance
                                (`dynia maintenance on`); None: in service
BackendView
    name: str;  service: str | None;  status: str | None;  http: dict[str, int]
    servers: list[ServerView]   {name, status, check_status, check_desc}

Backends are matched to services by the name render gives them (`dynia.render.rendering.backend_name`:
`be_<service>`). Other backends (be_any_node, stats) are listed in `backends` only.
"""
from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field
from typing import Any

from ..acme.expiry import expiry_detail, expiry_level
from ..nodes import facts as F
from ..nodes import vip
from ..nodes.commands import COMPONENTS
from ..nodes.reserved_ip import ReservedIpAssignment, assignment_of, claimed_addresses
from .volume_status import VolumeView
from ..paths import PATHS

SCHEMA_VERSION = 2
HTTP_CLASSES = F.HRSP
GATHER_TIMEOUT = 8.0  # seconds per node: connect + one script (show stat, podman ps, a 2 s curl)
SERVER_BAD = ("DOWN", "MAINT", "NOLB", "DRAIN")


@dataclass
class Degraded:
    reason: str | None
    time: str | None
    layer: str | None


@dataclass
class Container:
    service: str
    name: str
    state: str | None
    image: str | None
    digest: str | None


@dataclass
class ServerView:
    name: str
    status: str | None
    check_status: str | None
    check_desc: str | None


@dataclass
class BackendView:
    name: str
    service: str | None
    status: str | None
    http: dict[str, int]
    servers: list[ServerView]


@dataclass(kw_only=True)
class NodeStatus:
    # Built by keyword only; what an unreachable node cannot say defaults to unknown.
    node: str
    address: str
    reachable: bool
    error: str | None = None
    role: str | None = None
    role_since: str | None = None
    priority: int | None = None
    holds_reserved_ip: bool | None = None
    applied_version: int | None = None
    desired_version: int
    degraded: Degraded | None = None
    lockdown: str | None = None
    running: dict[str, bool | None]
    caddy_health: int | None = None
    caddy_error: str | None = None
    containers: list[Container] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)
    problems: list[str]
    reserved_ip_assignment: ReservedIpAssignment | None = None


@dataclass
class ServiceStatus:
    service: str
    placement: str
    backend: str | None
    servers: dict[str, str]
    http: dict[str, int] | None
    containers: dict[str, list[Container]]
    problems: list[str]
    domains: list[str] = field(default_factory=list)
    off_release: dict[str, list[str]] = field(default_factory=dict)  # node -> digests its release does not pin
    maintenance: str | None = None  # the page's sentence while the spec puts it in maintenance


@dataclass
class ClusterStatus:
    schema_version: int
    cluster: str
    reserved_ip: str
    holder: str | None
    holder_error: str | None
    masters: list[str]
    serving_node: str | None
    desired_version: int
    http_window_seconds: float | None
    nodes: list[NodeStatus]
    services: list[ServiceStatus]
    backends: list[BackendView]
    problems: list[str]
    healthy: bool
    verdict: str
    certificate: "CertificateView | None" = None
    volumes: list[VolumeView] = field(default_factory=list)   # data volumes: attached and mounted where

    def as_dict(self) -> dict:
        return json_form(self)


def camel(name: str) -> str:
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)


def json_form(value: Any) -> Any:
    """A dataclass as JSON data: field names in camelCase, dict keys (data) as they are."""
    if dataclasses.is_dataclass(value):
        return {camel(f.name): json_form(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: json_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_form(v) for v in value]
    return value


@dataclass
class CertificateView:
    not_after: str | None
    days_left: int | None
    names: list[str]
    source: str
    error: str | None = None
    level: str = "unknown"


def certificate_view(cluster, now=None) -> CertificateView:
    """The served certificate's expiry from the cache (the public facts `dynia up` recorded from
    the provision phase: origin or ACME alike); never a key, never Pulumi."""
    import datetime as dt

    from ..state.cache import read_state_certificate

    cert, missing = read_state_certificate(cluster)
    if cert is None:
        return CertificateView(None, None, [], "cache", missing)
    now = now or dt.datetime.now(dt.timezone.utc)
    return CertificateView(cert.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"), (cert.not_after - now).days,
                           list(cert.names), "cache", level=expiry_level(cert.not_after, now))


def with_certificate(st: "ClusterStatus", view: CertificateView, now=None) -> "ClusterStatus":
    """The status with the certificate's expiry in it: 7 days or fewer left is a problem that
    makes the verdict unhealthy (exit 4), as `dynia infra verify` fails its row."""
    import datetime as dt

    st.certificate = view
    if view.level == "failed" and view.not_after is not None:
        when = dt.datetime.strptime(view.not_after, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        st.problems.append(f"the certificate {expiry_detail(when, now or dt.datetime.now(dt.timezone.utc))}")
        more = f" (+{len(st.problems) - 1} more)" if len(st.problems) > 1 else ""
        st.healthy, st.verdict = False, f"unhealthy: {st.problems[0]}{more}"
    return st


# --- pure assembly --------------------------------------------------------------------------

def backend_service(backend: str, services: list[str]) -> str | None:
    """The service a backend serves, by its name (see the module docstring), or None."""
    from ..render.rendering import backend_name

    return next((s for s in services if backend_name(s) == backend), None)


def _backends(show_stat: dict | None, services: list[str]) -> list[BackendView]:
    out = []
    for name, be in ((show_stat or {}).get("backends") or {}).items():
        out.append(BackendView(name, backend_service(name, services), be.get("status"),
                               {k: int((be.get("hrsp") or {}).get(k, 0)) for k in HTTP_CLASSES},
                               [ServerView(sv, s.get("status"), s.get("check_status"), s.get("check_desc"))
                                for sv, s in (be.get("servers") or {}).items()]))
    return out


def _node(node: str, address: str, answer, desired: int, vip: str) -> NodeStatus:
    """One node's row and its own problems (the cluster-wide ones come later)."""
    running: dict[str, bool | None] = {c: None for c in COMPONENTS}
    if answer is None or answer.error is not None:
        error = answer.error if answer is not None else "not gathered"
        return NodeStatus(node=node, address=address, reachable=False, error=error, desired_version=desired,
                          running=running, problems=[f"{node} is unreachable: {error}"])
    f = answer.facts
    running.update({k: v for k, v in (f.get("running") or {}).items() if k in running})
    vrrp = f.get("vrrp") or {}
    role, since = vrrp.get("role"), vrrp.get("since")
    if running.get("keepalived") is False:
        role = "STOP"  # a killed keepalived leaves its last role in the file: it is in no role now
    applied = f.get("applied") or {}
    version = applied.get("configVersion") if isinstance(applied.get("configVersion"), int) else None
    marker = f.get("degraded")
    degraded = (Degraded(marker.get("reason") or "unknown", marker.get("time"), marker.get("layer"))
                if marker else None)  # checked against its model (dynia.nodes.answers.Degraded)
    caddy = f.get("caddy_health") or {}
    addresses = f.get("addresses")
    lock = f.get("lockdown") or {}
    containers = [Container(c["service"], c["name"], c.get("state"), c.get("image"), c.get("digest"))
                  for c in f.get("containers") or []]
    unreadable = dict(answer.unreadable)
    problems = [f"{node}'s answer is unreadable: {fact}: {why}" for fact, why in unreadable.items()]
    if applied.get("node") not in (None, node):
        problems.append(f"{node} answers as {applied['node']} (its applied.json names that node): "
                        "a node claims another's identity")
    if degraded:
        problems.append(f"{node} is degraded since {degraded.time or '?'}: {degraded.reason}")
    if "applied" in unreadable:
        pass  # said above; its version is unknown, not "never applied"
    elif version is None:
        problems.append(f"{node} was never applied (desired v{desired})")
    elif version < desired:
        problems.append(f"{node} is behind: v{version}, desired v{desired}")
    elif version > desired:
        problems.append(f"{node} runs v{version}, newer than this spec's v{desired} (is your spec up to date?)")
    for c in COMPONENTS:
        if running[c] is False:
            problems.append(f"{c} is not running on {node}")
    assignment = assignment_of(f.get("reserved_ip"))
    if assignment is not None and assignment.failed and role == "MASTER":
        # Only the MASTER's record is the latest attempt: a BACKUP keeps the one from its last
        # turn as MASTER, which a later token may already have fixed.
        problems.append(f"{node} is MASTER and its last reserved-IP assignment was {assignment.describe()}")
    if caddy.get("code") != 200:
        problems.append(f"Caddy on {node} answers its health check with "
                        f"{caddy.get('code') or caddy.get('error') or 'nothing'}")
    return NodeStatus(node=node, address=address, reachable=True, role=role, role_since=since,
                      priority=f.get("priority"),
                      holds_reserved_ip=(vip in addresses) if addresses is not None else None,
                      applied_version=version, desired_version=desired, degraded=degraded,
                      lockdown=lock.get("lockdown"), running=running, caddy_health=caddy.get("code"),
                      caddy_error=caddy.get("error"), containers=containers, unreadable=unreadable,
                      problems=problems, reserved_ip_assignment=assignment)


def _expected_on(placement: str, node: str, holder: str | None) -> bool:
    if placement == "all":
        return True
    if holder is None:
        return False  # nobody holds the VIP: where active-only/standby-only belong is unknown
    return (node == holder) == (placement == "active-only")


def _delta(now: dict[str, int], before: dict[str, int] | None) -> dict[str, int]:
    # A HAProxy restart resets its counters: a negative delta means "since the restart".
    return {k: (now[k] - before.get(k, 0)) if before and now[k] >= before.get(k, 0) else now[k] for k in now}


def assemble(*, cluster: str, nodes: dict[str, str], services: dict[str, str], desired_version: int,
             reserved_ip: str, answers: dict[str, Any], holder: str | None, holder_error: str | None = None,
             previous: ClusterStatus | None = None, window: float | None = None,
             domains: dict[str, list[str]] | None = None, volumes: list[VolumeView] | None = None,
             pinned: dict[str, set[str]] | None = None,
             maintenance: dict[str, str] | None = None) -> ClusterStatus:
    """Pure: the facts every node answered (dynia.nodes.gather.NodeFacts by node), the holder the
    provider named → the cluster's status. nodes: node → address shown; services: name →
    placement; domains: name → its domains; pinned: name → the digests its release pins (a
    container on another one is a problem); maintenance: name → its page's sentence, for the
    services the spec puts in maintenance. With `previous` (the last `--watch` sample) HTTP
    counts are the difference."""
    rows = [_node(n, addr, answers.get(n), desired_version, reserved_ip) for n, addr in nodes.items()]
    by_node = {r.node: r for r in rows}
    service_names = list(services)
    roles = {r.node: r.role for r in rows}
    masters = vip.masters(roles)
    reachable = [r.node for r in rows if r.reachable]
    serving = (holder if holder in reachable else
               next((m for m in masters if m in reachable), None) or (reachable[0] if reachable else None))
    views = {n: _backends((answers[n].facts or {}).get("show_stat"), service_names) for n in reachable}
    backends = views.get(serving, []) if serving else []

    # Worst first: a node that did not answer, then what the answering nodes reported.
    problems = [p for r in rows if not r.reachable for p in r.problems]
    problems += [p for r in rows if r.reachable for p in r.problems]
    problems += _holder_problems(reserved_ip, holder, holder_error, roles)
    problems += _server_problems(backends, serving)
    service_rows = []
    for name, placement in services.items():
        row = _service(name, placement, backends, views, by_node, reachable, holder, previous, domains,
                       (pinned or {}).get(name))
        row.maintenance = (maintenance or {}).get(name)
        service_rows.append(row)
        problems += row.problems
    problems += [p for v in volumes or [] for p in v.problems]
    healthy = not problems
    if healthy:
        verdict = (f"healthy: {len(rows)} node{'s' if len(rows) != 1 else ''} at v{desired_version}, "
                   f"{holder} is MASTER and holds {reserved_ip}")
    else:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        verdict = f"unhealthy: {problems[0]}{more}"
    return ClusterStatus(SCHEMA_VERSION, cluster, reserved_ip, holder, holder_error, masters, serving,
                         desired_version, window if previous else None, rows, service_rows, backends, problems,
                         healthy, verdict, volumes=list(volumes or []))


def _holder_problems(reserved_ip: str, holder: str | None, holder_error: str | None,
                     roles: dict[str, str | None]) -> list[str]:
    """Breaches of the one rule of the VIP (dynia.nodes.vip), worded for status."""
    masters = vip.masters(roles)
    problems = []
    if holder_error:
        problems.append(f"reserved IP {reserved_ip}: holder unknown ({holder_error})")
    elif holder is None:
        problems.append(f"no node holds the reserved IP {reserved_ip}")
    elif holder not in masters:
        role = roles.get(holder)
        problems.append(f"{holder} holds the reserved IP {reserved_ip} but is {role or 'in no known role'}, "
                        f"not the VRRP MASTER ({', '.join(masters) or 'none'})")
    if vip.split(roles):
        problems.append(f"more than one VRRP MASTER: {', '.join(masters)}")
    return problems


def _server_problems(backends: list[BackendView], serving: str | None) -> list[str]:
    """Every backend server the serving node's HAProxy reports down."""
    return [f"HAProxy on {serving}: {be.name}/{sv.name} is {sv.status}"
            f" ({sv.check_desc or sv.check_status or 'no check'})"
            for be in backends for sv in be.servers if ((sv.status or "").split() or ["?"])[0] in SERVER_BAD]


def _service(name: str, placement: str, backends: list[BackendView], views: dict[str, list[BackendView]],
             by_node: dict[str, NodeStatus], reachable: list[str], holder: str | None,
             previous: ClusterStatus | None, domains: dict[str, list[str]] | None,
             pinned: set[str] | None = None) -> ServiceStatus:
    """One service's row: its backend on the serving node, HTTP counts summed over every node
    (the difference from `previous` when watching), its containers, what is missing where, and
    each node whose container runs a digest the release does not pin (off_release)."""
    mine = [b for b in backends if b.service == name]
    backend = mine[0] if mine else None
    http = None
    if backend is not None:
        total = {k: 0 for k in HTTP_CLASSES}
        for n in reachable:
            for b in views[n]:
                if b.name == backend.name:
                    total = {k: total[k] + b.http[k] for k in HTTP_CLASSES}
        prev = next((s.http for s in previous.services if s.service == name), None) if previous else None
        http = _delta(total, prev) if previous else total
    containers = {n: [c for c in by_node[n].containers if c.service == name] for n in reachable}
    problems = []
    for n in reachable:
        up = [c for c in containers[n] if c.state == "running"]
        if _expected_on(placement, n, holder) and not up:
            problems.append(f"{name} has no running container on {n}")
    off = {n: sorted({c.digest or "?" for c in containers[n] if c.digest not in pinned})
           for n in reachable if pinned} if pinned else {}
    off = {n: d for n, d in off.items() if d}
    for n, digests in off.items():
        problems.append(f"{name} on {n} runs {', '.join(short(d) for d in digests)}, not the digest its release "
                        f"pins ({', '.join(short(d) for d in sorted(pinned or ()))})")
    return ServiceStatus(name, placement, backend.name if backend else None,
                         {s.name: s.status or "?" for s in backend.servers} if backend else {},
                         http, containers, problems, list((domains or {}).get(name, [])), off)


def short(digest: str) -> str:
    """A digest as people compare them: its first 12 hex digits."""
    return digest.removeprefix("sha256:")[:12]


def pinned_digests(rendering) -> dict[str, set[str]]:
    """service -> the digests its rendered compose file pins (none for a service whose images
    are local or unresolved)."""
    from ..spec.compose import compose_images
    from ..spec.image_refs import pinned_digest

    out: dict[str, set[str]] = {}
    for files in rendering.files.values():
        for f in files:
            if f.layer.startswith("service:") and f.target == PATHS.compose_file(f.layer.split(":", 1)[1]):
                digests = {pinned_digest(ref) for ref in compose_images(f.content).values()}
                out.setdefault(f.layer.split(":", 1)[1], set()).update(d for d in digests if d)
        break   # every node gets the same compose files
    return {s: d for s, d in out.items() if d}


# --- reading the cluster --------------------------------------------------------------------

def gather_status_facts(targets, profile, private_ips: dict[str, str], timeout: float = GATHER_TIMEOUT,
                        refused: dict[str, str] | None = None) -> dict:
    """Every node's status facts, in parallel, one round trip per node. The facts differ per node
    (Caddy answers on the node's own private address), so each target gets its own list."""
    from ..nodes import gather as G

    return G.gather(targets, lambda t: F.status_facts(profile, private_ips[t.node]), timeout, refused=refused)


def holder_of(provider, reserved_ip: str, known: dict[str, set[str]], answers: dict) -> tuple[str | None, str | None]:
    """(holder, error): the provider's answer, given each node's claimed addresses (above); a
    conflict between nodes is the error, never read as "no holder"."""
    from ..errors import DyniaError

    addresses, conflicts = claimed_addresses(known, answers)
    if conflicts:
        return None, "conflict: " + "; ".join(conflicts)
    try:
        return provider.reserved_ip_holder(reserved_ip, addresses), None
    except DyniaError as exc:
        return None, exc.message


def read(cluster, previous: ClusterStatus | None = None, window: float | None = None,
         timeout: float = GATHER_TIMEOUT) -> ClusterStatus:
    """Gather and assemble the status of a loaded cluster (dynia.spec.load.Cluster)."""
    from .. import providers
    from ..engine.session import reach, unpinned
    from ..errors import DyniaError
    from ..render.rendered import render_cluster

    order = list(cluster.spec.nodes)
    nodes = sorted(reach(cluster), key=lambda t: order.index(t.node))  # rows in the spec's order
    rendering = render_cluster(cluster)  # after reach: with the addresses it may have read from the state
    if not nodes:
        raise DyniaError("state", f"cluster {cluster.name} has no node addresses yet (never provisioned)",
                         "run `dynia up` first; status reads the addresses the last provision reported")
    inv = rendering.inventory
    private = {n: inv.nodes[n][0] for n in inv.nodes}
    provider = providers.of(cluster.spec)
    answers = gather_status_facts(nodes, provider.profile, private, timeout, refused=unpinned(cluster))
    known = {t.node: {a for a in (inv.nodes[t.node][0], inv.nodes[t.node][1], t.host) if a} for t in nodes}
    holder, holder_error = holder_of(provider, inv.reserved_ip, known, answers)
    st = assemble(volumes=volume_views(cluster, provider, holder, known, answers),cluster=cluster.name, nodes={t.node: t.host for t in nodes},
                  services={s: svc.placement for s, svc in cluster.spec.services.items()},
                  domains={s: svc.domains for s, svc in cluster.spec.services.items()},
                  maintenance={s: svc.maintenance.message for s, svc in cluster.spec.services.items()
                               if svc.maintenance is not None},
                  desired_version=desired_version(cluster, rendering, answers), reserved_ip=inv.reserved_ip,
                  answers=answers, holder=holder, holder_error=holder_error, previous=previous, window=window,
                  pinned=pinned_digests(rendering))
    return with_certificate(st, certificate_view(cluster))


def volume_views(cluster, provider, holder: str | None, known: dict[str, set[str]], answers: dict) -> list[VolumeView]:
    """Each data volume: where the provider says it is attached, where the nodes have it mounted."""
    from .volume_status import attachments, views
    from ..volumes import data_services, volume_name

    data = {s: (volume_name(cluster.name, s), d.mount) for s, d in data_services(cluster.spec).items()}
    if not data:
        return []
    addresses, _ = claimed_addresses(known, answers)
    facts = {n: a.facts for n, a in answers.items() if a is not None and a.error is None}
    return views(data, holder, facts, attachments(cluster, provider, list(data), addresses),
                 [n for n, a in answers.items() if a is None or a.error is not None])


def desired_version(cluster, rendering, answers: dict) -> int:
    """The version every node should be at: the render's, which counts on from this machine's
    record of the last apply. A machine without that record (a fresh checkout, a CI job) has no
    count to go on (its render says v1): there the newest version a node reports stands for the
    cluster's, so status still shows a node behind the others and never calls the nodes newer
    than the spec."""
    from ..state import cache

    if cache.applied(cluster):
        return rendering.config_version
    reported = [v for a in answers.values() if a is not None and a.error is None
                for v in [(a.facts.get("applied") or {}).get("configVersion")]
                if isinstance(v, int) and not isinstance(v, bool)]
    return max(reported, default=rendering.config_version)


def watch(cluster, interval: float, on_sample, stop=lambda: False) -> None:
    """Sample every `interval` seconds until stop() (or Ctrl-C, which propagates); each sample's
    HTTP counts cover the time since the previous one."""
    previous, last = None, None
    while not stop():
        started = time.monotonic()
        current = read(cluster, previous, (started - last) if last is not None else None)
        on_sample(current)
        previous, last = current, started
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
