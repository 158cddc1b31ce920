"""Every node's host firewall (nftables): who may reach which port, as data for
templates/nftables/dynia.nft.j2.

Per node: 22 from the operator's admin ranges (spec `firewall.admin_ranges`); 80/443 from the
edge — Cloudflare's published ranges in origin mode (dynia/data/cloudflare-ips.json, dated, see
dynia/data/README.md), everyone with `tls.mode: letsencrypt` (the records are DNS-only and the
ACME server must reach port 80); VRRP (IP protocol 112), Caddy and HAProxy's stats port only
from the cluster's nodes' private addresses (the node's own included: HAProxy checks its own
Caddy over the private address). A provider whose nodes Cloudflare cannot reach (the lab)
substitutes its own stand-in for Cloudflare's ranges (Provider.firewall_sources).
Pure: no network, no clock.
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from importlib import resources
from typing import Iterable

from ..errors import DyniaError
from ..paths import NFT_TABLE

CLOUDFLARE_IPS = "data/cloudflare-ips.json"
TABLE = NFT_TABLE  # the nftables table (dynia.paths.NFT_TABLE)
EVERYONE = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class CloudflareRanges:
    taken: date
    source: tuple[str, ...]
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]


def _bad_data(detail: str) -> DyniaError:
    return DyniaError("state", f"dynia's Cloudflare range data ({CLOUDFLARE_IPS}) is unusable: {detail}",
                      "reinstall dynia, or refresh the file as dynia/data/README.md describes")


@lru_cache(maxsize=1)
def cloudflare_ranges() -> CloudflareRanges:
    """Cloudflare's published IPv4/IPv6 ranges, as taken on `taken` (package data)."""
    try:
        data = json.loads(resources.files("dynia").joinpath(CLOUDFLARE_IPS).read_text())
        taken = date.fromisoformat(data["taken"])
        v4 = tuple(_networks(data["ipv4"], 4))
        v6 = tuple(_networks(data["ipv6"], 6))
        source = tuple(str(s) for s in data["source"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _bad_data(str(exc)) from None
    if not v4 or not v6 or not source:
        raise _bad_data("a list is empty")
    return CloudflareRanges(taken, source, v4, v6)


def _networks(ranges: Iterable[str], version: int) -> list[str]:
    out = []
    for r in ranges:
        net = ipaddress.ip_network(r, strict=True)
        if net.version != version:
            raise ValueError(f"{r} is not an IPv{version} range")
        out.append(str(net))
    return out


def split(ranges: Iterable[str]) -> tuple[list[str], list[str]]:
    """(IPv4, IPv6) ranges, normalised, each list in the order given without repeats."""
    v4: list[str] = []
    v6: list[str] = []
    for r in ranges:
        net = ipaddress.ip_network(r, strict=False)
        (v4 if net.version == 4 else v6).append(str(net))
    return list(dict.fromkeys(v4)), list(dict.fromkeys(v6))


def host(address: str) -> str:
    """One address as a range (/32 or /128)."""
    return str(ipaddress.ip_network(address))


@dataclass(frozen=True)
class Sources:
    """Who may reach a node, by family: what the template renders into the table's sets."""
    admin: tuple[list[str], list[str]]   # 22
    edge: tuple[list[str], list[str]]    # 80, 443
    peers: tuple[list[str], list[str]]   # VRRP, Caddy: every node's private address, its own too
    stats: tuple[list[str], list[str]]   # HAProxy stats: the peers, plus a provider's monitors
    edge_name: str                       # what the edge is, for the file's comment

    def sets(self) -> list[dict]:
        """The named sets, in the order the template declares them."""
        out = []
        for name, (v4, v6) in (("admin", self.admin), ("edge", self.edge), ("peers", self.peers),
                               ("stats", self.stats)):
            out.append({"name": f"{name}4", "type": "ipv4_addr", "elements": v4})
            out.append({"name": f"{name}6", "type": "ipv6_addr", "elements": v6})
        return out


def sources(spec, provider, private_addresses: Iterable[str]) -> Sources:
    """The firewall's sources for a node of `spec`. `private_addresses`: every node's private
    address (this node's included). `provider`: the cluster's provider (its stand-ins)."""
    substitute = provider.firewall_sources(spec)
    if spec.tls.mode == "letsencrypt":
        edge, name = split(EVERYONE), "everyone (tls.mode letsencrypt: DNS-only records, ACME HTTP-01)"
    elif substitute.edge is not None:
        edge, name = split(substitute.edge), substitute.edge_name
    else:
        cf = cloudflare_ranges()
        edge, name = (list(cf.ipv4), list(cf.ipv6)), f"Cloudflare's published ranges, taken {cf.taken.isoformat()}"
    peers = split(host(a) for a in sorted(set(private_addresses), key=ipaddress.ip_address))
    stats = split([*(host(a) for a in sorted(set(private_addresses), key=ipaddress.ip_address)),
                   *substitute.monitors])
    return Sources(admin=split(spec.firewall.admin_ranges), edge=edge, peers=peers, stats=stats, edge_name=name)
