"""The one rule of the VIP (README: Words), written once: exactly one VRRP MASTER, and it is the
node that holds the reserved IP. Status, infra verify, the holder gate before DNS, drift-check
and the roll's order read the roles through here and word a breach for their own output."""
from __future__ import annotations

from collections.abc import Mapping


def masters(roles: Mapping[str, str | None]) -> list[str]:
    """The nodes whose keepalived last reported MASTER, sorted."""
    return sorted(n for n, r in roles.items() if r == "MASTER")


def sole_master(roles: Mapping[str, str | None]) -> str | None:
    """The one MASTER; None when no node or several nodes report MASTER."""
    found = masters(roles)
    return found[0] if len(found) == 1 else None


def split(roles: Mapping[str, str | None]) -> bool:
    """More than one MASTER: a split brain."""
    return len(masters(roles)) > 1


def kept(holder: str | None, roles: Mapping[str, str | None]) -> bool:
    """The rule holds: the holder (the provider's answer) is the one MASTER."""
    return holder is not None and masters(roles) == [holder]
