"""Who a narrowed `firewall.admin_ranges` locks out, and the bounded answer when it has.

Every push records the address it came from on the node (the apply script's
pushed-from.json); `plan` names the recorded addresses the spec's ranges no longer admit (a CI
runner, a colleague), not only the machine that plans. A node whose firewall drops this
machine's SSH answers nothing at all: `up` asks such a node once, within PROBE_SECONDS, and
stops with the way back instead of letting every push dial for minutes."""
from __future__ import annotations

import ipaddress
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import DyniaError
from .firewall import TABLE

PROBE_SECONDS = 10.0

# The way back when no address in firewall.admin_ranges can reach a node (README: "Locked out").
RECOVERY = (f"open the node's console at the provider (DigitalOcean: the droplet's Access → Recovery/Droplet "
            f"Console) and unload dynia's table: `nft delete table inet {TABLE}` (SSH is open to every key "
            "holder until the next push or reboot); then put your address in firewall.admin_ranges and run "
            "`dynia up --phase infra`")


@dataclass(frozen=True)
class Excluded:
    address: str
    last: str                 # the latest recorded push from it (UTC, ISO 8601)
    nodes: tuple[str, ...]    # the nodes that recorded it

    def describe(self) -> str:
        return f"{self.address} (last push {self.last}, recorded on {', '.join(self.nodes)})"


def notices(found: list[Excluded]) -> list[dict]:
    """The plan's notices (dynia.plan.report NOTICE_LABELS "lockout"), one per excluded address."""
    return [{"kind": "lockout", "text": f"firewall.admin_ranges does not admit {e.describe()}: pushes from there "
                                        "will be dropped by every node's firewall"} for e in found]


def admitted(address: str, ranges: list[str]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(r, strict=False) for r in ranges
               if ipaddress.ip_network(r, strict=False).version == ip.version)


def excluded(ranges: list[str], pushed: dict[str, dict[str, str] | None]) -> list[Excluded]:
    """The addresses some node recorded a push from that `ranges` would not admit, latest first.
    pushed: node → its record ({address: time}; None or {} when it has none)."""
    seen: dict[str, tuple[str, list[str]]] = {}
    for node in sorted(pushed):
        for address, when in (pushed[node] or {}).items():
            last, nodes = seen.get(address, ("", []))
            seen[address] = (max(last, when), nodes + [node])
    out = [Excluded(a, last, tuple(nodes)) for a, (last, nodes) in seen.items() if not admitted(a, ranges)]
    return sorted(out, key=lambda e: (e.last, e.address), reverse=True)


def silent(host: str, port: int = 22, timeout: float = PROBE_SECONDS) -> bool:
    """True when a TCP connection to host:port gets no answer at all within `timeout` (a firewall
    that drops, or a machine that is gone); a refusal or an answer is not silence."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return False
    except (TimeoutError, socket.timeout):
        return True
    except OSError:
        return False


def require_answers(targets, unanswered: set[str], timeout: float = PROBE_SECONDS) -> None:
    """Before a push: every node that did not answer the session's read is asked once more, at
    the TCP level, within `timeout`; the silent ones stop the command with a `network` error and
    the way back. (Without this, each push dials a silent node for many minutes: the dial budget
    is a fresh droplet's boot.)"""
    asked = [t for t in targets if t.node in unanswered]
    if not asked:
        return
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(asked)) as pool:
        quiet = [t for t, s in zip(asked, pool.map(lambda t: silent(t.host, t.port, timeout), asked)) if s]
    if quiet:
        names = ", ".join(f"{t.node} ({t.host}:{t.port})" for t in quiet)
        raise DyniaError("network", f"{names}: no answer to SSH within {time.monotonic() - started:.0f} s; nothing "
                         "was pushed. A node whose firewall.admin_ranges does not admit this machine's address "
                         "drops its connections silently (or the node is down)",
                         "push from an address firewall.admin_ranges admits (`dynia plan` lists the recorded "
                         f"addresses it excludes); if none can reach it: {RECOVERY}")
