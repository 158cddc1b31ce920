"""Release commands (`services.<name>.release_command`): once per release — a compose file the
node it runs on has not applied (a new image, a new environment) — before the roll, on one node,
in a new container of the *new* compose file (sent on stdin, kept only while it runs). Gated
like a push: when it fails, no push has run, every node is as it was, and the error carries its
output. Each one is recorded with the runs (dynia.engine.records)."""
from __future__ import annotations

from typing import Callable

from ..engine import records
from ..engine.session import reach
from ..errors import DyniaError
from ..nodes import facts as F
from ..nodes.gather import gather
from ..paths import PATHS
from ..render.rendered import render_cluster
from ..render.rendering import node_commands
from .oneoff import Tail, compose_of, container_of, default_node, execute, target_named


def pending(cluster, rendering, holder: str | None, applied: dict) -> list[tuple[str, str]]:
    """(service, node) for every service with a release command whose rendered compose file
    differs from the one its node's own record says it applied. `applied`: node → that node's
    applied.json as read (the `applied` fact: dynia.nodes.answers.Applied's fields), None when
    it has none."""
    spec = cluster.spec
    out = []
    for name in sorted(spec.services):
        if not spec.services[name].release_command:
            continue
        node = default_node(spec, name, holder, rendering.rolling_order)
        record = applied.get(node)
        layer = ((record or {}).get("layers") or {}).get(f"service:{name}") or {}
        entry = layer.get(PATHS.compose_file(name)) or {}
        if entry.get("sha256") != compose_of(rendering, node, name).sha256:
            out.append((name, node))
    return out


def run_releases(engine, say: Callable[[str], object]) -> list:
    """Every pending release command, one after the other, before any push of this command;
    the first that fails (or cannot run) stops everything with its output. The records."""
    cluster = engine.cluster
    if not any(s.release_command for s in cluster.spec.services.values()):
        return []
    nodes = reach(cluster, engine=engine)
    if not nodes:
        return []   # nothing provisioned: nothing to run on (provision runs first in `up`)
    rendering = render_cluster(cluster, holder=engine.holder)
    answers = gather(nodes, [F.APPLIED])
    done = []
    for service, node in pending(cluster, rendering, engine.holder,
                                 {n: a.facts.get("applied") for n, a in answers.items()}):
        unread = answers.get(node)
        if unread is None or unread.error:
            raise DyniaError("network", f"release command of {service}: node {node} did not answer "
                             f"({unread.error if unread else 'no address'}); nothing was pushed",
                             "bring it back (dynia status), then rerun `dynia up`")
        argv = list(cluster.spec.services[service].release_command or ())
        compose = compose_of(rendering, node, service).content
        command = node_commands(cluster.spec).compose_run(service, container_of(cluster.spec, rendering, node, service),
                                                          argv, from_stdin=True)
        tail = Tail()

        def on_line(_stream: str, line: str, service=service, node=node, tail=tail) -> None:
            tail.add(line)
            say(f"release {service} on {node}: {line}")

        say(f"release {service} on {node}: {' '.join(argv)}")
        record = execute(target_named(nodes, node, cluster.name), "release", service, argv, command, on_line,
                         stdin=compose)
        records.keep(engine, record)
        done.append(record)
        if record.exit != 0:
            raise DyniaError("health", f"the release command of {service} failed on {node} (exit {record.exit}); "
                             f"the roll did not start, no node was changed. Its output (last "
                             f"{len(tail.lines)} lines):\n{tail.text()}",
                             "fix what made it fail (its output is above), then rerun `dynia up`: nothing is pushed until "
                             "it passes",
                             resume=f"dynia up --cluster {cluster.name}")
    return done

