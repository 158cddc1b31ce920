"""Where each data volume is (issue 23.2): attached — the provider's answer — and mounted — each
node's mount table (the data_mounts fact). One rule, read by status, infra verify and
drift-check: a volume is attached to the node that holds the reserved IP, and mounted there
only. `views` is pure; `attachments` asks the provider."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class VolumeView:
    service: str
    volume: str
    mount: str
    attached: str | None            # the node (or "droplet <id>") the provider names; None: nowhere
    attached_error: str | None      # the provider could not tell
    mounted: list[str]              # nodes whose mount table has the volume's mount point
    last_action: dict[str, Any] | None = None   # the holder's (else any node's) last provider call
    problems: list[str] = field(default_factory=list)


def attachments(cluster, provider, services: list[str], nodes) -> dict[str, tuple[str | None, str | None]]:
    """{service: (holder, error)}: the provider asked once per data volume."""
    from ..errors import DyniaError

    out: dict[str, tuple[str | None, str | None]] = {}
    for service in services:
        try:
            out[service] = (provider.volume_holder(cluster, service, nodes), None)
        except DyniaError as exc:
            out[service] = (None, exc.message)
    return out


def mounted_where(mount: str, facts: dict[str, dict]) -> list[str]:
    """The nodes (that answered) whose mount table has `mount`."""
    return sorted(n for n, f in facts.items() if mount in ((f or {}).get("data_mounts") or {}))


def misplaced_mounts(mount: str, facts: dict[str, dict], holder: str | None) -> list[str]:
    """Nodes with the volume mounted that may not have it: every one but the reserved IP's holder."""
    return [n for n in mounted_where(mount, facts) if n != holder]


def views(data: dict[str, tuple[str, str]], holder: str | None, facts: dict[str, dict],
          attached: dict[str, tuple[str | None, str | None]], unreachable=()) -> list[VolumeView]:
    """Pure. data: service → (volume name, mount); holder: the reserved IP's (None: nobody or
    unknown); facts: node → its facts (nodes that answered); attached: attachments()."""
    rows = []
    for service, (volume, mount) in sorted(data.items()):
        on, error = attached.get(service, (None, "not asked"))
        mounted = mounted_where(mount, facts)
        actions = {n: ((f or {}).get("volume_actions") or {}).get(service) for n, f in facts.items()}
        last = actions.get(holder) if holder else None
        last = last or next((a for _, a in sorted(actions.items()) if a), None)
        problems = []
        if error:
            problems.append(f"volume {volume} ({service}): where it is attached is unknown ({error})")
        elif on is None:
            problems.append(f"volume {volume} ({service}) is attached to no node: {service} cannot run"
                            + (f" (last call: {last['action']} {last['outcome']})" if last else ""))
        elif holder is not None and on != holder:
            problems.append(f"volume {volume} ({service}) is attached to {on}, which does not hold the reserved IP "
                            f"({holder} does)")
        for node in mounted:
            if node != holder:
                problems.append(f"volume {volume} ({service}) is mounted on {node}, which does not hold the "
                                f"reserved IP: it must be mounted on the holder only")
        if not error and on is not None and on == holder and holder not in mounted and holder not in unreachable \
                and holder in facts:
            problems.append(f"volume {volume} ({service}) is attached to {holder} but not mounted at {mount}")
        rows.append(VolumeView(service, volume, mount, on, error, mounted, last, problems))
    return rows
