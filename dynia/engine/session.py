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
from ..state.cache import ClusterCache
from ..state.store import Project, cluster_lock


def stale_addresses(cluster: Cluster) -> str | None:
    """Why this machine's cache cannot be trusted to reach the nodes (None: it can): there is
    none (a fresh checkout, a CI job, a teammate's machine), it lacks a node of the spec, or a
    node's pinned host key where the cache is what pins them (written by an older dynia)."""
    cache = ClusterCache.of(cluster)
    outputs = cache.read_outputs()
    if outputs is None:
        return "no node addresses on this machine"
    missing = [n for n in cluster.spec.nodes if n not in outputs.nodes]
    if missing:
        return f"no address for {', '.join(missing)} on this machine"
    if not providers.of(cluster.spec).ssh_identity(cluster.project, cluster.name).known_hosts and \
            any(a.host_key is None for n, a in outputs.nodes.items() if n in cluster.spec.nodes):
        return "no pinned host keys on this machine"
    return None


def reach(cluster: Cluster, engine=None) -> list[Target]:
    """The targets of a command that reads the nodes, from any machine with the spec, the
    credentials and the state backend: when this machine's cache is missing or older than the
    state (stale_addresses), the addresses and pinned host keys come from the provision stack's
    outputs (through the engine, which rewrites the cache). A cluster whose state holds no nodes
    was never provisioned. `engine`: what reads the state (default: dynia.engine.automation.Engine)."""
    from ..errors import DyniaError

    why = stale_addresses(cluster)
    if why is not None:
        if engine is None:
            from .automation import (
                Engine,  # only here: a cache that is current needs no Pulumi
            )

            engine = Engine(cluster, read_only=True)
        try:
            found = engine.refresh_outputs()
        except DyniaError as exc:
            if ClusterCache.of(cluster).read_outputs() is not None:
                found = True  # the older cache still reaches the nodes it knows; status shows the rest
            else:
                raise DyniaError(exc.kind, f"cluster {cluster.name}: {why}, and its state could not be read: "
                                 f"{exc.message}", exc.hint) from None
        if not found and ClusterCache.of(cluster).read_outputs() is None:
            raise DyniaError("state", f"cluster {cluster.name} was never provisioned (its state holds no nodes)",
                             f"run `dynia up --cluster {cluster.name}` to provision it")
    return targets(cluster)


def targets(cluster: Cluster) -> list[Target]:
    """SSH targets of the nodes the last provision reported (none before the first one), each
    pinned to its host key: the provider's own known_hosts (the lab's), else the keys the last
    provision recorded in the cache (ClusterCache.known_hosts; a node without one is refused)."""
    cache = ClusterCache.of(cluster)
    outputs = cache.read_outputs()
    if outputs is None:
        return []
    identity = providers.of(cluster.spec).ssh_identity(cluster.project, cluster.name)
    known_hosts = identity.known_hosts or cache.known_hosts()
    return [Target(n, a.public_ip or a.private_ip, identity.key, known_hosts)
            for n, a in outputs.nodes.items() if n in cluster.spec.nodes]


def unpinned(cluster: Cluster) -> dict[str, str]:
    """node → why dynia will not connect to it and exactly what to run: the nodes whose host key
    this machine's cache does not hold (a cache written before dynia pinned host keys, or by a
    provision run elsewhere), when the cache's known_hosts is what pins them. Every connection
    to such a node is refused (no key is trusted); status, drift-check, repair and verify show
    this instead of a bare "not pinned"."""
    import os

    cache = ClusterCache.of(cluster)
    outputs = cache.read_outputs()
    if outputs is None or providers.of(cluster.spec).ssh_identity(cluster.project, cluster.name).known_hosts:
        return {}
    shown = os.path.relpath(cache.known_hosts(), cache.root)
    up = f"dynia up --phase provision --cluster {cluster.name}"
    from ..state.cache import UNPINNED_HOST_KEY
    from .automation import (
        PIN_FIRST_USE_ENV,  # no Pulumi at import: read commands stay Pulumi-free
    )

    return {n: (f"no SSH host key for {n} in {shown} (written by a provision run since dynia pinned host keys); "
                f"dynia did not connect. Run `{up}`: it records every node's key from the state. A droplet created "
                f"before dynia pinned host keys needs it once as `{PIN_FIRST_USE_ENV}=1 {up}` (it prints each "
                "fingerprint: compare with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on its console)")
            for n, a in outputs.nodes.items() if n in cluster.spec.nodes and a.host_key in (None, UNPINNED_HOST_KEY)}


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


def target_of(cluster: Cluster, node: str) -> Target | None:
    """The node's SSH target, None when no provision has reported it."""
    return next((t for t in targets(cluster) if t.node == node), None)


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
