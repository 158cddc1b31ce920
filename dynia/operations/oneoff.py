"""What `dynia run` and a release command share: where a one-off container runs, which compose
service it is a new container of, who ran it, and the run itself (streamed, recorded as a
dynia.engine.records.RunRecord)."""
from __future__ import annotations

import datetime as dt
import getpass
import socket
import time
from collections import deque
from typing import Callable

from ..engine.records import RunRecord
from ..errors import DyniaError
from ..nodes.push import Target
from ..nodes.stream import stream
from ..paths import PATHS
from ..shown import escape
from ..spec.compose import app_container

TAIL_LINES = 40    # how much of a failed release command's output its error shows
TAIL_WIDTH = 300   # characters of each of those lines


def operator() -> str:
    """Who ran it: $USER@host of this machine (dynia records no other identity)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def default_node(spec, service: str, holder: str | None, order: list[str]) -> str:
    """An active-only service's one copy is on the VIP holder (the configured MASTER when no node
    says), so its tasks run there; any other service's on the first node of the rolling order (a
    backup: the holder, which serves most, comes last)."""
    if spec.services[service].placement == "active-only":
        return holder if holder is not None and holder in spec.nodes else spec.master_node
    return order[0]


def compose_of(rendering, node: str, service: str):
    """The service's rendered compose file for `node` (dynia.render.rendering.RenderedFile)."""
    target = PATHS.compose_file(service)
    return next(f for f in rendering.files[node] if f.target == target)


def container_of(spec, rendering, node: str, service: str) -> str:
    """The compose service a one-off container is made from: the one publishing the service's
    port (dynia.spec.compose.app_container)."""
    name = app_container(compose_of(rendering, node, service).content, spec.services[service].port)
    if name is None:
        raise DyniaError("config", f"service {service}: no container of its compose file publishes port "
                         f"{spec.services[service].port}, so dynia cannot tell which one to start",
                         f"publish port {spec.services[service].port} from the app's container")
    return name


def target_named(targets: list[Target], node: str, cluster: str) -> Target:
    found = next((t for t in targets if t.node == node), None)
    if found is None:
        known = ", ".join(t.node for t in targets) or "none"
        raise DyniaError("config", f"no node {node!r} with an address in cluster {cluster} (nodes: {known})",
                         "name one of them with --node")
    return found


class Tail:
    """The last TAIL_LINES lines of output, each cut to TAIL_WIDTH characters and escaped."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque(maxlen=TAIL_LINES)

    def add(self, line: str) -> None:
        self.lines.append(escape(line if len(line) <= TAIL_WIDTH else line[:TAIL_WIDTH] + "…"))

    def text(self) -> str:
        return "\n".join(self.lines)


def execute(target: Target, kind: str, service: str, argv: list[str], command: str,
            on_line: Callable[[str, str], None], *, stdin: bytes | None = None) -> RunRecord:
    """Run the one-off command on its node, streaming its lines to on_line; the record of it.
    A connection lost midway is a network error (the node may still be running it)."""
    started = dt.datetime.now(dt.timezone.utc)
    clock = time.monotonic()
    status = stream(target, command, on_line, stdin=stdin)
    return RunRecord(time=started.isoformat(timespec="seconds"), who=operator(), kind=kind, service=service,
                     node=target.node, command=list(argv), exit=status, seconds=round(time.monotonic() - clock, 1))
