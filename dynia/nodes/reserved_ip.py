"""What the nodes say about the reserved IP: the addresses each claims on its VIP device, and the
last assignment its notify script made (/opt/dynia/state/reserved-ip.json) as a row. Read by
status, infra verify and the holder gate alike."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ReservedIpAssignment:
    time: str | None
    outcome: str
    status: str | None
    droplet: str | None

    @property
    def failed(self) -> bool:
        return self.outcome != "assigned"

    def describe(self) -> str:
        answer = "no answer" if self.status in (None, "000") else f"HTTP {self.status}"
        return f"{self.outcome} ({answer}" + (f", droplet {self.droplet}" if self.droplet else "") \
            + f", {self.time or 'time unknown'})"


def assignment_of(fact) -> ReservedIpAssignment | None:
    """The reserved_ip fact (checked against its model, dynia.nodes.answers) as a row."""
    if not isinstance(fact, dict) or "outcome" not in fact:
        return None
    return ReservedIpAssignment(fact.get("time"), fact["outcome"], fact.get("status"), fact.get("droplet"))


def claimed_addresses(known: dict[str, set[str]], answers: dict) -> tuple[dict[str, set[str]], list[str]]:
    """(node → its addresses, conflicts): each node's known addresses (the cache: what the
    provider gave it) plus those read live on its VIP device (nodes that did not answer
    contribute their known addresses only). A live address that is another node's known one is
    not taken: it is a conflict, named, for the provider would otherwise match both nodes."""
    addresses, conflicts = {}, []
    for node, known_here in known.items():
        answer = answers.get(node)
        live = set((answer.facts.get("addresses") or []) if answer is not None and answer.error is None else [])
        for other, theirs in known.items():
            taken = sorted(live & set(theirs)) if other != node else []
            if taken:
                conflicts.append(f"{node} claims {other}'s address {', '.join(taken)} on its VIP device")
                live -= set(taken)
        addresses[node] = set(known_here) | live
    return addresses, conflicts
