"""repair: re-apply exactly the drifted nodes and layers, in rolling order, through the apply
protocol every push uses (backup, validate, reload what changed, health gate, rollback).

The drift report names, per node, the layers to push (infra, a service, or the removal of a
service the spec no longer has). The bundles are the ones `dynia up` would send for the same
render, pushed with dynia.nodes.push. A layer is forced (every file rewritten, its components
reloaded) only where comparing hashes cannot see the drift: a lifted immutable bit, a
container on the wrong image, or something stopped by hand (`stopped`: the forced push
reload-or-starts every component of the layer and health-gates it). A node whose gate fails
is rolled back by the apply script and stops the repair (typed `health` error); later nodes
are not touched.

Secrets: the slots are filled from this machine (.dynia/secrets and the provider's push-time
certificate and token), but only when each value's sha256 equals the one the node recorded
when it was last pushed, i.e. when they are the values the engine pushed. Otherwise (a second
machine, a DigitalOcean origin certificate, which only the provision stack holds) the engine is
imported, here and only here, to read them from the cluster's state.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

from ..errors import DyniaError
from .drift import DriftReport

FORCED = ("immutable", "image", "stopped")


@dataclass
class RepairStep:
    node: str
    layer: str
    forced: bool
    removal: bool
    # Containers removed (by project label) before the push: one runs another image than its
    # compose file resolves to, or it belongs to a removed service whose files are gone already
    # (a removal push then finds nothing to remove, and would leave it running).
    remove_containers: bool = False


@dataclass
class RepairResult:
    before: DriftReport
    after: DriftReport | None = None
    steps: list[RepairStep] = field(default_factory=list)
    reports: list[dict] = field(default_factory=list)  # the apply script's report per push
    secrets_from: str | None = None                    # "local" | "engine"

    def as_dict(self) -> dict:
        return {"before": self.before.as_dict(), "after": self.after.as_dict() if self.after else None,
                "pushes": [{"node": s.node, "layer": s.layer, "forced": s.forced, "removal": s.removal}
                           for s in self.steps],
                "reports": self.reports, "secretsFrom": self.secrets_from}


def plan(report: DriftReport, order: list[str], node: str | None = None) -> list[RepairStep]:
    """The pushes that heal the report, node by node in rolling order (infra first on a node)."""
    by_node = {n.node: n for n in report.nodes}
    steps = []
    for name in order:
        if node is not None and name != node:
            continue
        nd = by_node.get(name)
        if nd is None or not nd.drift:
            continue
        for layer in nd.layers:
            items = [d for d in nd.drift if d.layer == layer]
            steps.append(RepairStep(name, layer, forced=any(d.kind in FORCED for d in items),
                                    removal=any(d.removal for d in items),
                                    remove_containers=any(d.kind == "image" or d.target.startswith("container:")
                                                          for d in items)))
    return steps


def refuse(report: DriftReport, node: str | None, nodes: list[str]) -> None:
    """What a repair cannot start from: an unknown or unreachable node, pending spec changes."""
    if node is not None and node not in nodes:
        raise DyniaError("config", f"{node} is not a node of {report.cluster}", f"pick one of: {', '.join(nodes)}")
    scope = [n for n in report.nodes if node is None or n.node == node]
    dark = [n for n in scope if n.error]
    if dark:
        raise DyniaError("network", "cannot check " + "; ".join(f"{n.node}: {n.error}" for n in dark),
                         "bring the node back (or repair the others with --node N); nothing was changed",
                         resume=f"dynia repair --cluster {report.cluster}")
    pending = sorted({n.node for n in scope for d in n.drift if d.kind == "pending"})
    if pending:
        raise DyniaError("state", f"the spec has changes not applied yet on {', '.join(pending)}",
                         "apply them with `dynia up` (it re-applies drifted files too); repair only restores "
                         "what was applied", resume=f"dynia up --cluster {report.cluster}")
    manual = [(n.node, d.target) for n in scope for d in n.drift if d.layer is None]
    if manual and len(manual) == sum(len(n.drift) for n in scope):
        raise DyniaError("sync", "only drift dynia cannot repair: " + ", ".join(f"{n}:{t}" for n, t in manual),
                         "remove those files by hand (dynia never wrote them)")


def _needed_slots(rendering, steps: list[RepairStep]) -> list:
    pushed = {(s.node, s.layer) for s in steps if not s.removal}
    return [(node, slot) for node, slots in rendering.slots.items() for slot in slots if (node, slot.layer) in pushed]


def slot_secrets(cluster, rendering, report: DriftReport, steps: list[RepairStep],
                 on_progress: Callable[[str], None]) -> tuple[dict[str, bytes], str]:
    """The values that fill the slots of the layers to push, and where they came from."""
    from ..state import secrets

    needed = _needed_slots(rendering, steps)
    if not needed:
        # build_bundles fills every layer of a node, infra's slots too; only layers without a
        # slot are pushed here, so infra's bundle is built and dropped: it never gets a value.
        return {s.secret: b"" for slots in rendering.slots.values() for s in slots}, "none"
    records = {n.node: n.applied_record for n in report.nodes}
    try:
        local = secrets.push_secrets(cluster.project, cluster.name, cluster.spec)
    except DyniaError:
        local = {}

    def recorded(node, slot):
        from .drift import _recorded

        return (_recorded(records.get(node), slot.layer, slot.target) or {}).get("sha256")

    if all(slot.secret in local and hashlib.sha256(local[slot.secret]).hexdigest() == recorded(node, slot)
           for node, slot in needed):
        return local, "local"
    on_progress("secrets: reading them from the cluster's state (engine)")
    return engine_secrets(cluster), "engine"


def engine_secrets(cluster) -> dict[str, bytes]:
    """The slot values `dynia up` pushes: stats credentials, origin certificate and origin-pull
    CA from the provision stack. Needs the Pulumi CLI and the passphrase (checked first, typed errors)."""
    from .. import providers
    from ..engine.session import Session, check_machine
    from ..state import secrets

    check_machine(cluster)
    engine = Session(cluster).engine
    stats = engine.stats_credentials()
    pem = engine._output(engine.stack("provision"), "originPem")
    if not pem:
        raise DyniaError("state", "the provision stack holds no origin certificate",
                         "run `dynia up --phase provision`, then repair again")
    pull = engine._output(engine.stack("provision"), "originPull")
    ca = pull.get("ca") if isinstance(pull, dict) else None
    if cluster.spec.tls.mode == "origin" and not ca:
        raise DyniaError("state", "the provision stack holds no origin-pull CA",
                         "run `dynia up --phase provision`, then repair again")
    return secrets.slot_values(cluster.project, cluster.name, pem.encode(), providers.of(cluster.spec).node_token(),
                               credentials=stats, registries=cluster.spec.registries,
                               origin_pull_ca=ca.encode() if ca else None, services=cluster.spec.services)


def _remove_containers(target, spec, step: RepairStep) -> None:
    """A container of a removed service whose files are gone: nothing else finds it. A container
    on another image than its compose file resolves to: `compose up -d` keeps it
    when its configuration hash is unchanged (podman-compose 1.6 compares only that; an image
    committed from the container even carries the label), so it is removed first (the profile's
    compose_remove: by project label) and the forced push that follows starts it from the right
    image and gates it. Only this node's copy of this service is down meanwhile."""
    from .. import providers
    from ..nodes.commands import NodeCommands
    from ..nodes.push import run

    service = step.layer.split(":", 1)[1]
    try:
        status, _, err = run(target, NodeCommands(providers.of(spec).profile).compose_remove(service))
    except DyniaError as exc:
        raise DyniaError(exc.kind, f"repair stopped at {step.node}, {step.layer}: {exc.message}", exc.hint,
                         resume=f"dynia repair --node {step.node}") from None
    if status != 0:
        raise DyniaError("sync", f"repair stopped at {step.node}: removing {service}'s containers failed "
                         f"(exit {status}): {err.strip()[-300:]}", f"check the container engine on {step.node}",
                         resume=f"dynia repair --node {step.node}")


def _failed(node: str, layer: str, result) -> DyniaError:
    from ..nodes.push_errors import APPLY_EXIT

    kind, what = APPLY_EXIT.get(result.exit_status, ("sync", f"the apply failed (exit {result.exit_status})"))
    return DyniaError(kind, f"repair stopped at {node}, {layer}: {what}: {result.reason}",
                      "fix the cause on that node; nodes before it are repaired, later ones were not touched "
                      "(dynia drift-check shows what is left)", resume=f"dynia repair --node {node}")


def repair(cluster, *, node: str | None = None, on_progress: Callable[[str], None] = lambda line: None,
           timeout: float = 10.0) -> RepairResult:
    """Check, push what drifted, check again. The caller holds the cluster lock."""
    from ..engine.session import targets
    from ..nodes.push import push
    from ..planner import rolling_order
    from ..render.bundle import build_bundles, removal_bundle
    from ..render.rendered import render_cluster
    from . import drift

    spec = cluster.spec
    report, _ = drift.check(cluster, timeout=timeout)
    refuse(report, node, spec.nodes)
    holder = report.holder
    rendering = render_cluster(cluster, holder=holder)
    order = rolling_order(spec.nodes, spec.master_node, holder, {"nodes": {n: {} for n in spec.nodes}})
    steps = plan(report, order, node)
    result = RepairResult(report, steps=steps)
    if not steps:
        on_progress("nothing to repair")
        result.after = report
        return result
    values, result.secrets_from = slot_secrets(cluster, rendering, report, steps, on_progress)
    hosts = {t.node: t for t in targets(cluster)}
    built: dict[tuple[str, bool], dict] = {}
    for step in steps:
        if step.removal:
            bundle = removal_bundle(spec, step.node, step.layer.split(":", 1)[1], rendering.config_version)
        else:
            key = (step.node, step.forced)
            if key not in built:
                built[key] = build_bundles(spec, rendering, step.node, values, force=step.forced, holder=holder)
            bundle = built[key][step.layer]
            slot_targets = {sl.target for sl in rendering.slots[step.node]}
            if result.secrets_from == "none" and any(f["target"] in slot_targets for f in bundle.files):
                raise DyniaError("state", f"repair would push {step.layer} to {step.node} without its secrets",
                                 "this is a bug in dynia; rerun with --debug and report it")
        on_progress(f"{step.node}: {step.layer}{' (forced)' if step.forced else ''}{' (removal)' if step.removal else ''}")
        if step.remove_containers:
            _remove_containers(hosts[step.node], spec, step)
            on_progress(f"{step.node}: {step.layer}: containers removed")
        try:
            applied = push(hosts[step.node], bundle)
        except DyniaError as exc:
            raise DyniaError(exc.kind, f"repair stopped at {step.node}, {step.layer}: {exc.message}", exc.hint,
                             resume=f"dynia repair --node {step.node}") from None
        result.reports.append({"node": step.node, "layer": step.layer, "exitStatus": applied.exit_status,
                               **applied.report})
        if not applied.ok:
            raise _failed(step.node, step.layer, applied)
        on_progress(f"{step.node}: {step.layer} {applied.report.get('status', 'done')}"
                    + (f", reloaded {', '.join(applied.report['reloaded'])}" if applied.report.get("reloaded") else ""))
    result.after, _ = drift.check(cluster, timeout=timeout, holder=holder)
    return result
