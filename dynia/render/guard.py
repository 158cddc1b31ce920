"""Resource guard: will the services placed on a node fit in its RAM?

Per node: the infra budget plus the memory limits of the services that run there. A BACKUP
node must also hold the active-only services it starts when it takes over the reserved IP,
so the guard checks each node's peak, not only its steady state.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import render_error

# What every node spends before any service: OS, dockerd, HAProxy, Caddy, keepalived.
INFRA_BUDGET_MIB = 300


@dataclass(frozen=True)
class GuardRow:
    node: str
    role: str
    ram_mib: int
    infra_mib: int
    steady_mib: int      # services running in the node's planned role
    peak_mib: int        # after a failover makes it MASTER (or = steady for the MASTER)
    services: tuple[str, ...]
    peak_services: tuple[str, ...] = ()  # what it runs at its peak (as MASTER)

    @property
    def ratio(self) -> float:
        return (self.infra_mib + self.peak_mib) / self.ram_mib


@dataclass
class GuardReport:
    threshold: float
    on_exceed: str
    rows: list[GuardRow] = field(default_factory=list)
    assumed: list[str] = field(default_factory=list)  # "service/container" without a limit
    service_mib: dict[str, int] = field(default_factory=dict)  # each service's budget

    @property
    def exceeded(self) -> list[GuardRow]:
        return [r for r in self.rows if r.ratio > self.threshold]

    def as_dict(self) -> dict:
        return {"threshold": self.threshold, "onExceed": self.on_exceed, "assumedDefaults": self.assumed,
                "nodes": [{"node": r.node, "role": r.role, "ramMiB": r.ram_mib, "infraMiB": r.infra_mib,
                           "steadyMiB": r.steady_mib, "peakMiB": r.peak_mib,
                           "ratio": round(r.ratio, 3), "services": list(r.services),
                           "ok": r.ratio <= self.threshold} for r in self.rows]}

    def explain(self, row: GuardRow) -> str:
        """Where a node's memory goes, at its peak: every term of the sum and the assumed
        defaults. One decimal, so 80.3 % never reads as "80 % (threshold 80 %)"."""
        terms = [f"infra {row.infra_mib}"] + [f"{s} {self.service_mib[s]}" for s in row.peak_services]
        used = row.infra_mib + row.peak_mib
        text = (f"resource guard: node {row.node} would use {row.ratio:.1%} of its {row.ram_mib} MiB RAM "
                f"(threshold {self.threshold:.1%}): {' + '.join(terms)} = {used} MiB")
        mine = [a for a in self.assumed if a.split("/", 1)[0] in row.peak_services]
        return text + (f"; no memory limit: {', '.join(mine)}" if mine else "")

    def enforce(self) -> None:
        """Raise a render error in fail mode when a node exceeds the threshold."""
        over = self.exceeded
        if over and self.on_exceed == "fail":
            worst = max(over, key=lambda r: r.ratio)
            raise render_error(
                self.explain(worst),
                "pick a larger provider.size, set memory limits (deploy.resources.limits.memory) "
                "or lower them, or set guard.on_exceed: warn")


def check_guard(cluster, ram_mib: int) -> GuardReport:
    """ram_mib: the node size's memory (the provider knows it)."""
    from ..spec.compose import DEFAULT_SERVICE_MIB

    spec = cluster.spec
    report = GuardReport(spec.guard.memory_threshold, spec.guard.on_exceed)
    for name, info in sorted(cluster.compose.items()):
        report.assumed += [f"{name}/{c} ({DEFAULT_SERVICE_MIB} MiB assumed)" for c in info.unlimited]
    mem = report.service_mib = {name: info.memory_mib for name, info in cluster.compose.items()}
    for node in spec.nodes:
        is_master = node == spec.master_node
        steady = [n for n, s in spec.services.items() if s.runs_on(is_master)]
        as_master = [n for n, s in spec.services.items() if s.runs_on(True)]
        steady_mib = sum(mem[n] for n in steady)
        peak_mib = max(steady_mib, sum(mem[n] for n in as_master))
        report.rows.append(GuardRow(node, "MASTER" if is_master else "BACKUP", ram_mib,
                                    INFRA_BUDGET_MIB, steady_mib, peak_mib, tuple(sorted(steady)),
                                    tuple(sorted(as_master if peak_mib > steady_mib else steady))))
    return report
