"""`dynia run SERVICE -- CMD…`: a one-off task in a new container of the service's image (its
compose file: image, environment, volumes, networks; no published port), on exactly one node,
removed after; its output streamed, its exit status returned, and the run recorded with the
cluster's state (dynia.engine.records) so every machine lists it (`dynia run --list`)."""
from __future__ import annotations

from typing import Callable

from ..engine import records
from ..engine.records import RunRecord
from ..engine.session import check_machine, reach
from ..errors import DyniaError
from ..nodes import facts as F
from ..nodes.gather import gather, holder_of
from ..paths import PATHS
from ..render.rendered import render_cluster
from ..render.rendering import node_commands
from ..spec.model import check_argv
from .oneoff import container_of, default_node, execute, target_named


def _check(cluster, service: str, argv: list[str]) -> None:
    if service not in cluster.spec.services:
        known = ", ".join(cluster.spec.services) or "none"
        raise DyniaError("config", f"no service {service!r} in cluster {cluster.name}", f"services here: {known}")
    if not argv:
        raise DyniaError("config", "no command to run", f"give it after --: dynia run {service} -- CMD [ARG…]")
    try:
        check_argv(argv)
    except ValueError as exc:
        raise DyniaError("config", f"the command: {exc}", "pass each word as an argument after --") from None


def run_task(cluster, service: str, argv: list[str], on_line: Callable[[str, str], None], *,
             node: str | None = None, engine=None) -> RunRecord:
    """Run `argv` once on `node` (default: dynia.operations.oneoff.default_node) and record it. `engine`:
    what keeps the record (default: the cluster's own, after this machine was checked for it —
    before anything runs, so a run is never left unrecorded for a missing Pulumi CLI)."""
    _check(cluster, service, argv)
    if engine is None:
        from ..engine.automation import Engine  # only here: it loads Pulumi

        check_machine(cluster)
        engine = Engine(cluster)
    nodes = reach(cluster, engine=engine)
    answers = gather(nodes, [F.VRRP, F.APPLIED])
    holder = holder_of(answers)
    rendering = render_cluster(cluster, holder=holder)
    chosen = node or default_node(cluster.spec, service, holder, rendering.rolling_order)
    target = target_named(nodes, chosen, cluster.name)
    answer = answers[chosen]
    if answer.error:
        raise DyniaError("network", f"node {chosen} did not answer: {answer.error}",
                         "bring it back (dynia status), or pick another with --node")
    applied = answer.facts.get("applied")
    layer = ((applied or {}).get("layers") or {}).get(f"service:{service}") or {}
    if PATHS.compose_file(service) not in layer:
        raise DyniaError("config", f"service {service} was never applied on {chosen}: it has no compose file there",
                         f"run `dynia up --cluster {cluster.name}` first, or pick another node with --node")
    command = node_commands(cluster.spec).compose_run(service, container_of(cluster.spec, rendering, chosen, service),
                                                      argv)
    record = execute(target, "run", service, argv, command, on_line)
    records.keep(engine, record)
    return record


def list_runs(cluster, engine=None) -> list[RunRecord]:
    """The recorded runs, oldest first, as the cluster's state holds them."""
    if engine is None:
        from ..engine.automation import Engine

        engine = Engine(cluster, read_only=True)
    return records.read(engine)
