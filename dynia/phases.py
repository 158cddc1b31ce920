"""The three phases (one Pulumi stack each, applied in this order) and which layer is whose."""
from __future__ import annotations

from .errors import DyniaError

PHASES = ("provision", "infra", "apps")


def phase_of(layer: str) -> str:
    """The phase that pushes a layer: `infra`, or `service:<name>` (apps)."""
    return "infra" if layer == "infra" else "apps"


def phases_from(start: str | None) -> tuple[str, ...]:
    """Every phase from `start` on (all of them when None): how a stopped roll resumes."""
    if start is None:
        return PHASES
    if start not in PHASES:
        raise DyniaError("config", f"--phase {start!r} is not a phase", f"use one of: {', '.join(PHASES)}")
    return PHASES[PHASES.index(start):]


def changed_phases(rendering, applied: dict) -> set[str]:
    """The push phases whose files differ between a rendering and the last applied manifest.

    A file's layer decides its phase (an entry recorded before layers were kept counts as
    infra, as in dynia.state.cache). Added, changed (content, mode, owner) and removed files count.
    """
    from .planner import diff_node

    recorded = applied.get("nodes", {})
    out: set[str] = set()
    for node in rendering.files:
        desired, old = rendering.manifest(node), recorded.get(node, {})
        for change in diff_node(node, desired, old).pending:
            entry = desired.get(change.target) or old.get(change.target) or {}
            out.add(phase_of(entry.get("layer") or "infra"))
    return out


def with_changed(own: tuple[str, ...], rendering, applied: dict) -> tuple[str, ...]:
    """A command's own phases plus every phase whose files its edit changes, in phase order.

    `route bind --apply` of an active-only service's domain changes haproxy.cfg (infra) as
    well as the Caddy route (apps): pushing only apps would leave HAProxy routing the domain
    to every node. Without an applied record (another machine, CI, or nothing applied yet)
    nothing can be compared, so every push phase runs: pushes whose content did not change
    are no-ops, and a skipped infra push would be a wrong cluster.
    """
    wanted = set(own)
    if applied.get("nodes"):
        wanted |= changed_phases(rendering, applied)
    elif wanted & {"infra", "apps"}:
        wanted |= {"infra", "apps"}
    return tuple(p for p in PHASES if p in wanted)
