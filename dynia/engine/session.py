"""What every operating command starts from: the cluster lock, the validated spec, the nodes'
SSH targets (from the cache), the node that holds the reserved IP (read live) and the engine.

The CLI opens a session and calls one method; status, drift, repair and the tests open the
same session, so the order "lock → load → check the machine → read the holder" lives here once.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

from .. import providers
from ..nodes.push import Target
from ..spec.load import Cluster, load_cluster
from ..state.store import Project, cluster_lock
from .targets import refresh_if_stale, stale_addresses, target_of, targets, unpinned

# The targets' own names stay importable from here: the commands (and the tests standing in for
# the nodes) reach them through the session.
__all__ = ["Session", "check_machine", "engine_session", "reach", "silence_leaving_node", "stale_addresses",
           "target_of", "targets", "unpinned"]


def reach(cluster: Cluster, engine=None) -> list[Target]:
    """The targets of a command that reads the nodes, from any machine with the spec, the
    credentials and the state backend: when this machine's cache is missing or older than the
    state (stale_addresses), the addresses and pinned host keys come from the provision stack's
    outputs (through the engine, which rewrites the cache). A cluster whose state holds no nodes
    was never provisioned. `engine`: what reads the state (default: dynia.engine.automation.Engine)."""
    def state():
        if engine is not None:
            return engine
        from .automation import Engine  # only here: a cache that is current needs no Pulumi

        return Engine(cluster, read_only=True)

    refresh_if_stale(cluster, state)
    return targets(cluster)


def silence_leaving_node(target: Target, profile: providers.NodeProfile) -> None:
    """Stop keepalived on a node that is about to leave, before the others are re-pushed without
    it: once they stop advertising to it, a running keepalived turns MASTER after its master-down
    interval (~3 s) and its notify script takes the reserved IP, which then dies with its droplet.
    A node dynia cannot reach is refused, not skipped: unreachable over SSH is not the same as
    down (a firewall, a dead sshd or a partition leave keepalived and the provider API working)."""
    from ..errors import DyniaError
    from ..nodes.commands import NodeCommands
    from ..nodes.push import run

    try:
        status, _, err = run(target, NodeCommands(profile).stop("keepalived"))
    except DyniaError as exc:
        raise DyniaError("network", f"cannot stop keepalived on {target.node} before removing it: {exc.message}",
                         f"bring {target.node} back, or power it off (it must not take the reserved IP), "
                         f"then retry with --node-down") from None
    if status != 0:
        raise DyniaError("sync", f"keepalived on {target.node} did not stop (exit {status}): "
                         f"{err.strip()[-300:]}", f"stop it by hand on {target.node}, then retry")


@dataclass
class Session:
    cluster: Cluster
    holder: str | None = None
    on_progress: Callable[[str], None] = field(default=lambda line: None)
    _engine: object = None
    # node → what it answered when the session opened (vrrp, pushed_from; or its error)
    answers: dict = field(default_factory=dict)

    @property
    def engine(self):
        """The Pulumi engine (imported on first use: commands that only read never load Pulumi)."""
        if self._engine is None:
            from .automation import Engine

            self._engine = Engine(self.cluster, holder=self.holder, on_progress=self.on_progress,
                                  answers=self.answers)
        return self._engine


def check_machine(cluster: Cluster) -> None:
    """What the engine needs from this machine, before any write (dynia.engine.automation.preflight)."""
    from .automation import preflight

    preflight(providers.of(cluster.spec), cluster.spec.backend, cluster.project, cluster.name)


@contextlib.contextmanager
def engine_session(project: Project, name: str, *,
                   on_progress: Callable[[str], None] | None = None) -> Iterator[Session]:
    """Lock the cluster, load it, check the machine, read the VIP holder and the addresses pushes
    came from live (one round trip per node): ready to plan or apply."""
    from ..nodes import facts as F
    from ..nodes.gather import gather, holder_of

    with cluster_lock(project, name):
        cluster = load_cluster(project, name)
        check_machine(cluster)
        nodes = targets(cluster)
        answers = gather(nodes, [F.VRRP, F.PUSHED_FROM]) if nodes else {}
        yield Session(cluster, holder_of(answers) if nodes else None, on_progress or (lambda line: None),
                      answers=answers)
