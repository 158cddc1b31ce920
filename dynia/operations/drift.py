"""drift-check: what each node holds, against what the render says it should hold.

Pure assembly (`assemble`) from the desired state (the render: files with content, secret slots
without) and each node's facts (dynia.nodes.drift_facts, the node's own applied.json and VRRP
record); `check` gathers those facts from every node at once (one SSH round trip each) and
assembles. No Pulumi, no secret: slots are compared by existence, mode, owner and against the
sha256 the node recorded when they were pushed.

Kinds of drift, per node:
  missing    a managed file (or secret slot) is not on the node
  content    its bytes differ; `whitespaceOnly` says whether only blanks/line endings changed
  pending    the render differs from what was last applied to the node (the spec changed and
             was not applied yet): `dynia up` applies it, repair does not
  mode, owner, type (a directory or symlink where a file belongs)
  immutable  lockdown is on and the file's immutable attribute is lifted
  leftover   a compose file of a service the spec does not have, a file in the routes directory
             that no service renders, a running container of a removed service; past 1,000
             entries in such a directory, one row `<directory>/…` counts the rest (not listed)
  image      a service container runs another image than its compose file resolves to
  stopped    something that should run on the node does not, while its files are unchanged
             (stopped or killed by hand): an infra component (target `component:<name>`, from
             the `running` fact, layer infra), or a service's containers where its placement
             says it runs (target `service:<name>`, layer service:<name>; `actual` lists the
             compose services with no running container). Where a service belongs follows the
             live VIP holder (the one node whose keepalived last reported MASTER, as `dynia up`
             reads it); with no such node only services placed on every node are checked.
             Repair forces a push of that layer: the apply script reload-or-starts it and gates it.

--json schema (schemaVersion 1):
  {schemaVersion, cluster, drift: bool, drifted: [node], unreachable: [node], exitCode, verdict,
   nodes: [{node, reachable, error, drifted, warnings: [str],
            drift: [{kind, target, layer, detail, expected, actual, whitespaceOnly, removal}]}]}
  kind is one of KINDS. Exit codes: 0 no drift, 3 drift (any kind, `stopped` included),
  the network code when a node did not answer.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import EXIT_CODES, EXIT_DRIFT, EXIT_OK
from ..names import NAME
from ..nodes import drift_facts as DF
from ..nodes import vip
from ..nodes.commands import COMPONENTS, compose_project
from ..paths import PATHS
from ..spec.compose import compose_images

KINDS = ("missing", "content", "pending", "mode", "owner", "type", "immutable", "leftover", "image", "stopped")
SCHEMA_VERSION = 1


@dataclass
class Drift:
    kind: str
    target: str              # a node path, or `container:<name>` for an image
    layer: str | None        # the push that repairs it: infra | service:<name>; None: by hand
    detail: str
    expected: str | None = None
    actual: str | None = None
    whitespace_only: bool | None = None  # content only
    removal: bool = False    # the repair removes (a leftover of a service the spec no longer has)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "target": self.target, "layer": self.layer, "detail": self.detail,
                "expected": self.expected, "actual": self.actual, "whitespaceOnly": self.whitespace_only,
                "removal": self.removal}


@dataclass
class NodeDrift:
    node: str
    drift: list[Drift] = field(default_factory=list)
    error: str | None = None         # why the node gave no answer
    applied_record: dict | None = None  # the node's applied.json (hashes only)
    vrrp: str | None = None
    warnings: list[str] = field(default_factory=list)  # what could not be checked (the container engine)

    @property
    def layers(self) -> list[str]:
        """The pushes a repair makes here, infra first."""
        found = {d.layer for d in self.drift if d.layer and d.kind != "pending"}
        return sorted(found, key=lambda name: (name != "infra", name))

    def as_dict(self) -> dict:
        return {"node": self.node, "reachable": self.error is None, "error": self.error,
                "drifted": bool(self.drift), "drift": [d.as_dict() for d in self.drift],
                "warnings": self.warnings}


@dataclass
class DriftReport:
    cluster: str
    nodes: list[NodeDrift]

    @property
    def drifted(self) -> list[str]:
        return [n.node for n in self.nodes if n.drift]

    @property
    def unreachable(self) -> list[str]:
        return [n.node for n in self.nodes if n.error]

    @property
    def holder(self) -> str | None:
        return vip.sole_master({n.node: n.vrrp for n in self.nodes})

    @property
    def exit_code(self) -> int:
        """network's code when a node did not answer (the answer is incomplete), else EXIT_DRIFT
        when any node drifted, else 0."""
        if self.unreachable:
            return EXIT_CODES["network"]
        return EXIT_DRIFT if self.drifted else EXIT_OK

    def verdict(self) -> str:
        parts = []
        if self.drifted:
            count = sum(len(n.drift) for n in self.nodes)
            parts.append(f"drift on {', '.join(self.drifted)} ({count} finding{'s' if count != 1 else ''}): "
                         + self.next_step())
        if self.unreachable:
            parts.append(f"no answer from {', '.join(self.unreachable)}")
        for n in self.nodes:
            parts += [f"{n.node}: not checked: {w}" for w in n.warnings]
        return "; ".join(parts) or f"no drift: every node of {self.cluster} matches the render"

    def next_step(self) -> str:
        """The command that clears the findings. `repair` restores what was applied and refuses
        while spec changes are pending (dynia.operations.repair.refuse): those need `up`, and `up` pushes
        only the layers whose render changed, so other drift still needs `repair` after it."""
        up, repair = f"`dynia up --cluster {self.cluster}`", f"`dynia repair --cluster {self.cluster}`"
        kinds = {d.kind for n in self.nodes for d in n.drift}
        if "pending" not in kinds:
            return f"{repair} re-applies them"
        if kinds == {"pending"}:
            return f"the spec changed since the last apply: {up} applies it"
        return (f"the spec changed since the last apply: {up} applies it first (repair refuses pending "
                f"changes), then {repair} re-applies what still drifts")

    def as_dict(self) -> dict:
        return {"schemaVersion": SCHEMA_VERSION, "cluster": self.cluster, "drift": bool(self.drifted),
                "drifted": self.drifted, "unreachable": self.unreachable, "exitCode": self.exit_code,
                "verdict": self.verdict(), "nodes": [n.as_dict() for n in self.nodes]}


# --- desired state ----------------------------------------------------------------------

def desired_images(rendering, node: str) -> dict[str, dict[str, str]]:
    """service -> {compose service -> image reference} on that node."""
    out = {}
    for f in rendering.files[node]:
        if f.layer.startswith("service:") and f.target == PATHS.compose_file(f.layer.split(":", 1)[1]):
            out[f.layer.split(":", 1)[1]] = compose_images(f.content)
    return out


def fact_for(rendering, profile) -> DF.Fact:
    """One drift fact for every node: the union of their managed paths and image references."""
    files = [f.target for fs in rendering.files.values() for f in fs]
    slots = [s.target for ss in rendering.slots.values() for s in ss]
    images = [ref for n in rendering.files for svc in desired_images(rendering, n).values() for ref in svc.values()]
    return DF.fact(files, slots, engine=profile.container_engine, images=images)


# --- classification (pure) ----------------------------------------------------------------

def _recorded(record: dict | None, layer: str, target: str) -> dict | None:
    layers = (record or {}).get("layers")
    entry = (layers or {}).get(layer) if isinstance(layers, dict) else None
    value = entry.get(target) if isinstance(entry, dict) else None
    return value if isinstance(value, dict) else None


def _attributes(out: list[Drift], target: str, layer: str, want_mode: str, want_owner: str, live: dict,
                lockdown: bool) -> None:
    if live.get("mode") != want_mode:
        out.append(Drift("mode", target, layer, f"mode {live.get('mode')}, should be {want_mode}",
                         want_mode, live.get("mode")))
    if live.get("owner") != want_owner:
        out.append(Drift("owner", target, layer, f"owner {live.get('owner')}, should be {want_owner}",
                         want_owner, live.get("owner")))
    if lockdown and live.get("immutable") is False:
        out.append(Drift("immutable", target, layer, "immutable attribute lifted (lockdown is on)", "+i", "-i"))


def classify_file(f, live: dict | None, record: dict | None, lockdown: bool) -> list[Drift]:
    """One rendered file (dynia.render.rendering.RenderedFile) against what the node holds."""
    out: list[Drift] = []
    if not live or not live.get("exists"):
        return [Drift("missing", f.target, f.layer, "not on the node", f.sha256, None)]
    if live.get("type") != "file":
        return [Drift("type", f.target, f.layer, f"a {live.get('type')} where a file belongs", "file", live.get("type"))]
    recorded = _recorded(record, f.layer, f.target)
    if recorded is not None and recorded.get("sha256") != f.sha256:
        # The spec moved on since the last apply: that is a pending change, not drift; the node
        # has drifted only if it no longer holds what was applied.
        out.append(Drift("pending", f.target, f.layer, "the render changed since the last apply (dynia up applies it)",
                         f.sha256, recorded.get("sha256")))
        if live.get("sha256") != recorded.get("sha256"):
            out.append(Drift("content", f.target, f.layer, "content changed since the last apply",
                             recorded.get("sha256"), live.get("sha256")))
    elif live.get("sha256") != f.sha256:
        ws = live.get("normalized") == DF.normalized_sha256(f.content)
        out.append(Drift("content", f.target, f.layer,
                         "whitespace or line endings only" if ws else "content changed",
                         f.sha256, live.get("sha256"), whitespace_only=ws))
    _attributes(out, f.target, f.layer, f"{f.mode:04o}", f.owner, live, lockdown)
    return out


def classify_slot(s, live: dict | None, record: dict | None, lockdown: bool) -> list[Drift]:
    """A secret slot (dynia.render.rendering.SecretSlot): its value is not known here, so its content is
    compared with the sha256 the node recorded when it was pushed (no record: not compared)."""
    out: list[Drift] = []
    if not live or not live.get("exists"):
        return [Drift("missing", s.target, s.layer, "secret not on the node")]
    if live.get("type") != "file":
        return [Drift("type", s.target, s.layer, f"a {live.get('type')} where a file belongs", "file", live.get("type"))]
    recorded = _recorded(record, s.layer, s.target)
    if recorded is not None and recorded.get("sha256") != live.get("sha256"):
        # Hashes of a secret are not printed either: equal or not is all the report says.
        out.append(Drift("content", s.target, s.layer, "secret differs from the one pushed", whitespace_only=False))
    _attributes(out, s.target, s.layer, f"{s.mode:04o}", s.owner, live, lockdown)
    return out


def leftovers(spec, facts: dict) -> list[Drift]:
    """Compose files and route files no service of the spec renders."""
    out: list[Drift] = []
    for entry in (facts.get("composeDirs") or {}).get(PATHS.compose_dir, []):
        name = entry.get("name", "")
        if name in spec.services or not entry.get("composeFile"):
            continue
        out.append(_leftover(PATHS.compose_file(name), name, "compose file of a service the spec does not have"))
    routed = {PATHS.route_file(n) for n, s in spec.services.items() if s.domains}
    for name in (facts.get("routes") or {}).get(PATHS.caddy_routes, []):
        target = f"{PATHS.caddy_routes}/{name}"
        if target in routed:
            continue
        service = name[:-len(".caddy")] if name.endswith(".caddy") else None
        if service in spec.services:  # its route was unbound: that service's push removes it
            out.append(Drift("leftover", target, f"service:{service}", "route of a service without a domain"))
        else:
            out.append(_leftover(target, service, "route file no service renders"))
    for directory, count in sorted((facts.get("listingOmitted") or {}).items()):
        out.append(Drift("leftover", f"{directory}/…", None,
                         f"{count} more entries, not listed (a listing stops at {DF.A.LISTING_MAX} names): "
                         "look on the node"))
    return out


def _leftover(target: str, service: str | None, why: str) -> Drift:
    """A removal push (dynia.render.bundle.removal_bundle) deletes it when the name is a service name;
    anything else dynia never wrote, and it is left to the operator."""
    if service and NAME.fullmatch(service):
        return Drift("leftover", target, f"service:{service}", why, removal=True)
    return Drift("leftover", target, None, why + " (not a name dynia writes: remove it by hand)")


def images(spec, rendering, node: str, facts: dict) -> tuple[list[Drift], str | None]:
    """Running service containers against the image their compose file resolves to on the node.
    Returns (drift, error of the container engine)."""
    seen = facts.get("containers")
    if not seen:
        return [], None
    if seen.get("error"):
        return [], f"{seen.get('engine')}: {seen['error']}"
    wanted = desired_images(rendering, node)
    projects = {compose_project(s): s for s in spec.services}
    resolved = seen.get("images") or {}
    out: list[Drift] = []
    for c in seen.get("running") or []:
        project, name = c.get("project") or "", c.get("name") or "?"
        target = f"container:{name}"
        if project not in projects:
            if project.startswith("dynia-"):
                service = project[len("dynia-"):]
                out.append(_leftover(target, service, f"container of {service}, a service the spec does not have"))
            continue
        service = projects[project]
        ref = wanted.get(service, {}).get(c.get("service") or "")
        layer = f"service:{service}"
        if ref is None:
            out.append(Drift("image", target, layer, f"container of {service} for a compose service its file "
                             f"does not have ({c.get('service')})", None, DF.image_id(c.get("image"))))
            continue
        want, have = DF.image_id(resolved.get(ref)), DF.image_id(c.get("image"))
        if want != have:
            why = f"runs {short_id(have) or '?'}, {ref} is {short_id(want) or 'not on the node'}"
            out.append(Drift("image", target, layer, why, want, have))
    return out, None


def short_id(value: str | None) -> str | None:
    """An image id as the engines print it (12 hex digits); anything that is not a full hex id,
    a name above all, is shown whole: a cut name reads as another name."""
    return value[:12] if value and re.fullmatch(r"[0-9a-f]{64}", value) else value


def stopped_components(running: dict | None) -> list[Drift]:
    """Infra components the `running` fact (dynia.nodes.facts.running) says are down. A component
    the fact does not name (no answer) is not reported: unknown is not stopped."""
    running = running if isinstance(running, dict) else {}
    return [Drift("stopped", f"component:{c}", "infra", f"{c} is not running", "running", "stopped")
            for c in COMPONENTS if running.get(c) is False]


def should_run(spec, service: str, node: str, holder: str | None) -> bool | None:
    """Does the service run on this node, as the push places it (dynia.render.bundle.active_node with
    the live holder)? None when that is unknown: nobody (or more than one node) claims the VIP,
    and the service is not placed on every node."""
    from ..render.bundle import active_node

    svc = spec.services[service]
    if svc.placement == "all":
        return True
    if holder is None:
        return None
    return svc.runs_on(node == active_node(spec, holder))


def stopped_services(spec, rendering, node: str, facts: dict, holder: str | None) -> list[Drift]:
    """Services whose containers are not running on a node where their placement says they run:
    one finding per service, naming the compose services with no running container."""
    seen = facts.get("containers")
    if not seen or seen.get("error"):
        return []  # no container engine here, or it failed (a warning already says so)
    wanted = desired_images(rendering, node)
    up: dict[str, set[str]] = {}
    for c in seen.get("running") or []:
        up.setdefault(c.get("project") or "", set()).add(c.get("service") or "")
    out: list[Drift] = []
    for service in sorted(spec.services):
        if not should_run(spec, service, node, holder):
            continue
        running = up.get(compose_project(service), set())
        expected = sorted(wanted.get(service) or {})
        missing = [s for s in expected if s not in running] if expected else ([] if running else [service])
        if missing:
            placement = spec.services[service].placement
            out.append(Drift("stopped", f"service:{service}", f"service:{service}",
                             f"no running container for {', '.join(missing)} (placement {placement}: it runs here)",
                             "running", ",".join(missing)))
    return out


def misplaced_volumes(spec, node: str, mounts: dict | None, holder: str | None) -> list[Drift]:
    """A data volume mounted on a node that does not hold the VIP (dynia.operations.volume_status): only the
    holder may have it. Nothing to say while the holder is unknown."""
    from .volume_status import misplaced_mounts
    from ..volumes import data_services, volume_name

    if holder is None or not isinstance(mounts, dict):
        return []
    return [Drift("volume", f"volume:{volume_name(spec.name, service)}", None,
                  f"data volume of {service} is mounted at {d.mount} here, but {holder} holds the VIP: stop "
                  f"{service} here and release it (python3 {PATHS.volume_script} release {service})",
                  f"mounted on {holder}", f"mounted on {node}")
            for service, d in data_services(spec).items()
            if node in misplaced_mounts(d.mount, {node: {"data_mounts": mounts}}, holder)]


def holder_of(answers: dict) -> str | None:
    """The live VIP holder as `dynia up` reads it (dynia.nodes.gather.vip_holder): the one node
    whose keepalived last reported MASTER; None when none or several do."""
    return vip.sole_master({n: (a.facts.get("vrrp") or {}).get("role") for n, a in answers.items()
                            if a is not None and not a.error})


def node_drift(spec, rendering, node: str, facts: dict, *, running: dict | None = None,
               holder: str | None = None, mounts: dict | None = None) -> list[Drift]:
    """Every finding for one node that answered. `facts`: the drift fact's answer; `running`: the
    `running` fact's answer; `holder`: the live VIP holder (where active-only services run);
    `mounts`: the data_mounts fact's answer (where data volumes are mounted)."""
    record = facts.get("_applied")
    lockdown = spec.lockdown
    live = facts.get("files") or {}
    out: list[Drift] = []
    for f in rendering.files[node]:
        out += classify_file(f, live.get(f.target), record, lockdown)
    for s in rendering.slots[node]:
        out += classify_slot(s, live.get(s.target), record, lockdown)
    out += leftovers(spec, facts)
    found, _ = images(spec, rendering, node, facts)
    return (out + found + stopped_components(running) + stopped_services(spec, rendering, node, facts, holder)
            + misplaced_volumes(spec, node, mounts, holder))


def assemble(cluster, rendering, answers: dict, reachable: list[str]) -> DriftReport:
    """answers: node -> dynia.nodes.gather.NodeFacts (facts "drift", "applied", "vrrp", "running")."""
    spec = cluster.spec
    holder = holder_of(answers)
    nodes = []
    for node in spec.nodes:
        if node not in reachable:
            nodes.append(NodeDrift(node, error="not provisioned (no address in the cluster's state): run dynia up"))
            continue
        answer = answers.get(node)
        if answer is None or answer.error:
            nodes.append(NodeDrift(node, error=answer.error if answer else "no answer"))
            continue
        unreadable = answer.unreadable
        facts = dict(answer.facts.get(DF.DRIFT) or {"error": f"the drift reader's answer is unreadable "
                                                             f"({unreadable[DF.DRIFT]})" if DF.DRIFT in unreadable
                                                    else "no answer from the drift reader"})
        applied = answer.facts.get("applied")
        vrrp = (answer.facts.get("vrrp") or {}).get("role")
        if facts.get("error"):
            nodes.append(NodeDrift(node, error=facts["error"], vrrp=vrrp))
            continue
        facts["_applied"] = applied if isinstance(applied, dict) else None
        # An unreadable fact is not checked against: say so rather than report a clean bill.
        warnings = [f"{fact} (its answer is unreadable: {why})" for fact, why in unreadable.items()]
        claimed = (applied or {}).get("node")
        if claimed not in (None, node):  # another node's record: never compared against
            facts["_applied"] = None
            warnings.append(f"applied record (it names {claimed}: a node claims another's identity)")
        drift = node_drift(spec, rendering, node, facts, running=answer.facts.get("running"), holder=holder,
                           mounts=answer.facts.get("data_mounts"))
        _, engine_error = images(spec, rendering, node, facts)
        nodes.append(NodeDrift(node, drift, applied_record=facts["_applied"], vrrp=vrrp,
                               warnings=warnings + ([f"running images ({engine_error})"] if engine_error else [])))
    return DriftReport(cluster.name, nodes)


def check(cluster, *, timeout: float = 10.0, holder: str | None = None) -> tuple[DriftReport, object]:
    """Gather every node's facts (parallel, one round trip each) and assemble the report.
    Returns (report, rendering)."""
    from .. import providers
    from ..engine.session import reach
    from ..nodes import facts as F
    from ..nodes.gather import gather
    from ..render.rendered import render_cluster

    profile = providers.of(cluster.spec).profile
    nodes = reach(cluster)
    rendering = render_cluster(cluster, holder=holder)  # after reach: the addresses it may have read from the state
    if not nodes:
        from ..errors import DyniaError

        raise DyniaError("state", f"cluster {cluster.name} has no node addresses yet (never provisioned)",
                         "run `dynia up` first; drift-check reads the addresses the last provision reported")
    # `running` rides in the same round trip: a component stopped by hand leaves its files alone.
    wanted = [fact_for(rendering, profile), F.APPLIED, F.VRRP, F.running(profile), F.DATA_MOUNTS]
    # A node whose host key this machine does not hold is not connected to: its row says what to run.
    from ..engine.session import unpinned

    answers = gather(nodes, wanted, timeout=timeout, refused=unpinned(cluster)) if nodes else {}
    return assemble(cluster, rendering, answers, [t.node for t in nodes]), rendering
