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
