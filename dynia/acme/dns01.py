"""DNS-01 for the names that have no DNS record yet (tls.mode letsencrypt).

Two challenges, each where it is the only one that works:

* HTTP-01 for every name that already points at the cluster (renewals; every name after its
  first order): it proves the path visitors take — the name, the reserved IP, HAProxy, the
  holder's Caddy — and needs nothing but the nodes (dynia.nodes.challenge).
* DNS-01 for a name bound just now. Its record may be created only after a certificate that
  covers it (a visitor must never meet the previous certificate under the new name), so the
  CA cannot resolve it yet and HTTP-01 cannot work. The answer is a TXT record
  `_acme-challenge.<name>` made through the zone's DNS API (Cloudflare's, with the token the
  provision phase already uses), waited for on the zone's authoritative servers — the CA asks
  those, and a TXT the CA does not see yet fails the order — then deleted again.

`Dns01` does the orchestration over any `TxtZone`: `CloudflareZone` here; the lab's stand-in
(tests/lab/acme_lab.py) drives pebble-challtestsrv's record API, and the propagation wait of
this module then queries that real DNS server.
"""
from __future__ import annotations

import socket
import time
from typing import Callable, Protocol

from ..errors import DyniaError

CHALLENGE_LABEL = "_acme-challenge"
WAIT = 120.0         # Cloudflare's authoritative servers take seconds; a minute is already unusual
INTERVAL = 2.0
QUERY_TIMEOUT = 3.0


class TxtZone(Protocol):
    """What DNS-01 needs of a zone's DNS API."""

    def pointing_at_cluster(self, names: list[str]) -> set[str]:
        """The names among `names` whose record already sends the CA to the cluster."""

    def add_txt(self, fqdn: str, value: str) -> str:
        """Create one TXT record; a handle remove_txt takes."""

    def remove_txt(self, handle: str) -> None: ...

    def find_txt(self, fqdn: str, value: str) -> list[str]:
        """Handles of the TXT records fqdn → value (one whose creation failed may exist)."""

    def nameservers(self) -> list[tuple[str, int]]:
        """The zone's authoritative servers, as (address, port)."""


def txt_values(fqdn: str, server: str, port: int = 53, timeout: float = QUERY_TIMEOUT) -> set[str]:
    """The TXT strings `server` answers for `fqdn` (none: no such name or no TXT). Asked
    without recursion, as an authoritative server is; UDP, TCP when the answer is truncated."""
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    query = dns.message.make_query(fqdn, dns.rdatatype.TXT)
    query.flags &= ~dns.flags.RD
    answer, _tcp = dns.query.udp_with_fallback(query, server, timeout=timeout, port=port)
    if answer.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise OSError(f"{server} answered {dns.rcode.to_text(answer.rcode())}")
    found = set()
    for rrset in answer.answer:
        if rrset.rdtype == dns.rdatatype.TXT:
            for rdata in rrset:
                found.add(b"".join(rdata.strings).decode("ascii", "replace"))
    return found


def wait_visible(values: dict[str, str], servers: list[tuple[str, int]], *, timeout: float = WAIT,
                 interval: float = INTERVAL, query: Callable[..., set[str]] | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
    """Return once every server answers every {fqdn: value}; a `cert` error naming the first
    missing one after `timeout` seconds (an unreachable server counts as not answering)."""
    if not servers:
        raise DyniaError("cert", "the zone has no authoritative name server to check the ACME TXT records on",
                         "check the zone's name servers (Cloudflare: Overview → Nameservers); nothing was pushed")
    query = query or txt_values
    deadline = clock() + timeout
    missing: list[tuple[str, tuple[str, int], str]] = []
    while True:
        missing = []
        for server in servers:
            for fqdn, value in values.items():
                try:   # a round never outlasts the deadline by more than one short query
                    seen = query(fqdn, server[0], server[1], timeout=max(0.5, min(QUERY_TIMEOUT, deadline - clock())))
                except Exception as exc:  # noqa: BLE001 — sockets', and dnspython's timeouts and format errors
                    missing.append((fqdn, server, f"no answer ({exc.__class__.__name__})"))
                    continue
                if value not in seen:
                    missing.append((fqdn, server, "not there yet"))
        if not missing:
            return
        if clock() >= deadline:
            fqdn, (address, port), why = missing[0]
            silent = all(w.startswith("no answer") for _, _, w in missing) and len(missing) == len(servers) * len(values)
            hint = ("no name server answered this machine at all: check that it may send DNS queries (port 53, UDP "
                    "and TCP) to the zone's name servers" if silent else
                    "retry in a minute (the DNS provider may be slow to publish)")
            raise DyniaError("cert", f"{fqdn.removeprefix(CHALLENGE_LABEL + '.')}: the DNS-01 TXT record {fqdn} "
                             f"was not visible on the zone's name server {address}"
                             f"{'' if port == 53 else f':{port}'} within {timeout:.0f} s ({why})",
                             f"{hint}; nothing was pushed, every node keeps its certificate")
        sleep(interval)


class Dns01:
    """The TXT answers of one order: publish (create, then wait until the authoritative servers
    answer them), withdraw (delete what was created — always, whatever happened)."""

    def __init__(self, zone: TxtZone, *, timeout: float = WAIT, interval: float = INTERVAL):
        self.zone = zone
        self.timeout = timeout
        self.interval = interval
        self._created: dict[str, str] = {}   # handle → fqdn

    def without_record(self, domains: list[str]) -> list[str]:
        """The names the CA cannot reach the cluster under yet: validated over DNS-01."""
        pointing = self.zone.pointing_at_cluster(list(domains))
        return [d for d in domains if d not in pointing]

    def publish(self, values: dict[str, str]) -> None:
        servers = self.zone.nameservers()   # before anything is written: its failure leaves nothing behind
        for fqdn, value in values.items():
            try:
                self._created[self.zone.add_txt(fqdn, value)] = fqdn
            except Exception:
                # The request may have reached the API and its answer been lost: a record made
                # anyway is found and withdrawn with the others.
                try:
                    self._created.update({h: fqdn for h in self.zone.find_txt(fqdn, value)})
                except Exception:  # noqa: BLE001 — the first failure is the one to report
                    pass
                raise
        wait_visible(values, servers, timeout=self.timeout, interval=self.interval)

    def withdraw(self) -> dict[str, str]:
        """{fqdn: why} of the records that could not be deleted."""
        left = {}
        for handle, fqdn in list(self._created.items()):
            try:
                self.zone.remove_txt(handle)
            except Exception as exc:  # noqa: BLE001 — said, not raised: the order's outcome matters more
                left[fqdn] = getattr(exc, "message", None) or exc.__class__.__name__
            else:
                del self._created[handle]
        return left


class CloudflareZone:
    """The cluster's zone on Cloudflare (dynia.providers.cloudflare_api)."""

    def __init__(self, api, zone: str, cluster: str, reserved_ip: str | None):
        self.api, self.zone, self.cluster, self.reserved_ip = api, zone, cluster, reserved_ip
        self._zone: dict | None = None

    def _info(self) -> dict:
        if self._zone is None:
            self._zone = self.api.zone(self.zone)
        return self._zone

    def pointing_at_cluster(self, names: list[str]) -> set[str]:
        """Names with this cluster's DNS-only A record on the reserved IP (what the apps phase
        creates in letsencrypt mode) and no other address record (an AAAA added by hand would
        send the CA elsewhere over IPv6). Anything else — no record yet, a proxied one, another
        owner's — cannot carry HTTP-01 to the cluster."""
        from ..providers.cloudflare_api import conflicts, owns

        if self.reserved_ip is None:
            return set()
        records = self.api.dns_records(self._info()["id"])
        wanted = {n.lower().rstrip(".") for n in names}
        ours = {r.name.lower().rstrip(".") for r in records
                if r.name.lower().rstrip(".") in wanted and r.type.upper() == "A" and r.content == self.reserved_ip
                and not r.proxied and owns(r, self.cluster, self.reserved_ip)}
        return {n for n in ours if not conflicts(records, n, self.cluster, self.reserved_ip)}

    def add_txt(self, fqdn: str, value: str) -> str:
        from ..providers.cloudflare_api import managed_comment

        return self.api.create_txt(self._info()["id"], fqdn, value,
                                   f"{managed_comment(self.cluster)} (ACME challenge, deleted after the order)")

    def remove_txt(self, handle: str) -> None:
        self.api.delete_record(self._info()["id"], handle)

    def find_txt(self, fqdn: str, value: str) -> list[str]:
        return self.api.txt_record_ids(self._info()["id"], fqdn, value)

    def nameservers(self) -> list[tuple[str, int]]:
        """The zone's name servers (Cloudflare names two), each at its IPv4 addresses."""
        names = [n for n in self._info().get("name_servers") or [] if isinstance(n, str)]
        found: list[tuple[str, int]] = []
        for name in names:
            try:
                infos = socket.getaddrinfo(name, 53, socket.AF_INET, socket.SOCK_DGRAM)
            except OSError:
                continue
            for address in dict.fromkeys(info[4][0] for info in infos):
                found.append((str(address), 53))
        if names and not found:
            raise DyniaError("cert", f"none of the zone's name servers ({', '.join(names)}) resolves from this "
                             "machine", "check this machine's DNS resolver; nothing was pushed, every node keeps "
                             "its certificate")
        return found
