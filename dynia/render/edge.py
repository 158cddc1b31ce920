"""The edge policy every node's HAProxy enforces, as data for templates/haproxy/haproxy.cfg.j2.

- Security headers on every response (dynia's defaults, one place: dynia.spec.headers), merged
  per service with `services.<n>.headers` (a value replaces or adds a header, null removes it).
- A rate limit per service, keyed on the real client address, answering 429 over the limit
  (`services.<n>.rate_limit`; null turns it off).
- Whose address is the client's: `CF-Connecting-IP` only when the TCP source is the edge
  (origin mode: Cloudflare's published ranges, or the provider's stand-in in the lab), the
  source address otherwise; letsencrypt mode trusts no header (the records are DNS-only).
- Origin mode: Authenticated Origin Pulls — HAProxy asks every client on 443 for the client
  certificate the zone presents: the cluster's own, signed by the cluster's own CA (made with
  the provision state, components/origin_pull.py), never Cloudflare's shared one, which any
  Cloudflare customer's zone can make Cloudflare present.

Pure: no network, no clock, no randomness (render's promise).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..errors import render_error
from ..spec.headers import merged

# What one rate-limit bucket is: an IPv4 address, or an IPv6 /64. An IPv6 client gets a whole /64
# (the smallest prefix a network hands out: SLAAC needs it), so counting per address would give it
# 2^64 fresh buckets, one per request. /64 rather than a shorter prefix: a /56 or /48 is often
# one ISP customer, but just as often a hosting provider's or a carrier's block shared by strangers,
# who would then share one limit.
RATE_KEY = "var(txn.client),ipmask(32,64)"
# Entries per service backend's stick table (one per bucket seen within a window; an entry expires
# one window after its last request, when its rate has fallen to 0 anyway). Each holds an IPv6 key
# and a rate counter (well under 100 bytes): 50k entries stay a few MB on a 1 GB droplet, however
# many distinct buckets a flood brings. A full table evicts its least recently used entries to make
# room: a flood of distinct keys can at worst reset other clients' counts early (the limit lets
# them through), never make HAProxy refuse or block a client who stays under the limit.
RATE_TABLE_SIZE = 50_000

# Request headers that name a client address, which HAProxy deletes from every request on 443
# before anything else reads them: a client could write any address there, and an app (or its
# framework's "real IP" middleware) that believes one would log, allow-list or rate-limit by it.
# HAProxy then sets the one answer itself: X-Forwarded-For (fe_https), and CF-Connecting-IP stays
# only on a connection from the edge. Forwarded (RFC 7239) and X-Forwarded-Host/-Port would
# also let a client choose the host or scheme an app builds its redirects and links from.
SPOOFABLE_CLIENT_HEADERS = ("Forwarded", "X-Real-IP", "True-Client-IP", "X-Client-IP", "Client-IP",
                            "X-Cluster-Client-IP", "Fastly-Client-IP", "X-Originating-IP",
                            "CF-Connecting-IPv6", "CF-Pseudo-IPv4", "X-Forwarded-Host", "X-Forwarded-Port")


@dataclass(frozen=True)
class HeaderRule:
    """One `http-after-response` rule: set a header to a value, or delete it."""
    action: str      # "set" | "del"
    name: str
    value: str = ""  # HAProxy-quoted, ready to render (set only)

    def line(self) -> str:
        return f"set-header {self.name} {self.value}" if self.action == "set" else f"del-header {self.name}"


@dataclass(frozen=True)
class RateLimit:
    requests: int
    window: int      # whole seconds (the spec allows 1s-1h)
    table_size: int = RATE_TABLE_SIZE
    key: str = RATE_KEY  # the sample HAProxy tracks: the client's bucket


@dataclass(frozen=True)
class ServiceEdge:
    headers: list[HeaderRule]
    rate_limit: RateLimit | None


@dataclass(frozen=True)
class EdgePolicy:
    """The node-independent part: what every HAProxy of the cluster does at its frontends."""
    trusted_edge: list[str]          # sources whose CF-Connecting-IP names the client ([]: none)
    origin_pulls: bool               # 443 asks for the cluster's origin-pull client certificate
    acme_http01: bool                # port 80 sends ACME HTTP-01 requests to this node's Caddy
    default_headers: list[HeaderRule]
    services: dict[str, ServiceEdge]
    spoofable_headers: tuple[str, ...] = SPOOFABLE_CLIENT_HEADERS  # deleted from every request on 443


def haproxy_quote(value: str) -> str:
    """A header value as one double-quoted HAProxy argument. The spec refuses `"`, `\\` and `%`
    (a log-format directive); `$` is escaped here, since HAProxy expands `${VAR}` inside double
    quotes from its environment, which holds the stats credentials."""
    if any(c in value for c in '"\\%') or not value.isprintable():
        raise render_error(f"header value {value!r} cannot be rendered into HAProxy's configuration",
                           'use printable ASCII without ", \\ or %')
    return '"' + value.replace("$", "\\$") + '"'


def header_rules(overrides: dict[str, str | None] | None = None) -> list[HeaderRule]:
    """dynia's defaults merged with a service's overrides (dynia.spec.headers.merged); a null deletes."""
    return [HeaderRule("set", name, haproxy_quote(value)) if value is not None else HeaderRule("del", name)
            for name, value in merged(overrides).values()]


def rate_limit(limit) -> RateLimit | None:
    """A service's `rate_limit` (dynia.spec.model.RateLimit or None) as HAProxy's numbers."""
    if limit is None:
        return None
    return RateLimit(requests=int(limit.requests), window=int(limit.window))


def trusted_edge(spec, provider) -> list[str]:
    """Where a CF-Connecting-IP header is believed: origin mode only, and only from Cloudflare's
    published ranges (dynia/data/cloudflare-ips.json, read through dynia.render.firewall) or the
    provider's stand-in for them (the lab's: Provider.firewall_sources). The firewall lets the
    same sources reach 80/443, so the two never disagree."""
    if spec.tls.mode != "origin":
        return []
    substitute = provider.firewall_sources(spec).edge
    if substitute is not None:
        ranges = list(substitute)
    else:
        from .firewall import cloudflare_ranges

        cf = cloudflare_ranges()
        ranges = [*cf.ipv4, *cf.ipv6]
    return [str(ipaddress.ip_network(r, strict=True)) for r in ranges]


def policy(spec, provider) -> EdgePolicy:
    services = {name: ServiceEdge(header_rules(svc.headers), rate_limit(svc.rate_limit))
                for name, svc in sorted(spec.services.items())}
    return EdgePolicy(trusted_edge=trusted_edge(spec, provider), origin_pulls=spec.tls.mode == "origin",
                      acme_http01=spec.tls.mode == "letsencrypt", default_headers=header_rules(),
                      services=services)
