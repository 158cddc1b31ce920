"""The nodes' SSH targets, from this machine's cache (each pinned to its host key), the nodes
dynia will not connect to (unpinned), and the refresh from the provision state when the cache
cannot be trusted to reach them. Below the session and the engine alike: both read targets."""
from __future__ import annotations

from typing import Any, Callable

from .. import providers
from ..nodes.push import Target
from ..spec.load import Cluster
from ..state.cache import ClusterCache


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


def refresh_if_stale(cluster: Cluster, state: Callable[[], Any]) -> None:
    """When this machine's cache is missing or older than the state (stale_addresses), the
    addresses and pinned host keys come from the provision stack's outputs through `state()`
    (what reads the state: the engine, which rewrites the cache; called only then). A cluster
    whose state holds no nodes was never provisioned: a typed `state` error."""
    from ..errors import DyniaError

    why = stale_addresses(cluster)
    if why is not None:
        try:
            found = state().refresh_outputs()
        except DyniaError as exc:
            if ClusterCache.of(cluster).read_outputs() is not None:
                found = True  # the older cache still reaches the nodes it knows; status shows the rest
            else:
                raise DyniaError(exc.kind, f"cluster {cluster.name}: {why}, and its state could not be read: "
                                 f"{exc.message}", exc.hint) from None
        if not found and ClusterCache.of(cluster).read_outputs() is None:
            raise DyniaError("state", f"cluster {cluster.name} was never provisioned (its state holds no nodes)",
                             f"run `dynia up --cluster {cluster.name}` to provision it")


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
    from .host_keys import PIN_FIRST_USE_ENV

    return {n: (f"no SSH host key for {n} in {shown} (written by a provision run since dynia pinned host keys); "
                f"dynia did not connect. Run `{up}`: it records every node's key from the state. A droplet created "
                f"before dynia pinned host keys needs it once as `{PIN_FIRST_USE_ENV}=1 {up}` (it prints each "
                "fingerprint: compare with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on its console)")
            for n, a in outputs.nodes.items() if n in cluster.spec.nodes and a.host_key in (None, UNPINNED_HOST_KEY)}


def target_of(cluster: Cluster, node: str) -> Target | None:
    """The node's SSH target, None when no provision has reported it."""
    return next((t for t in targets(cluster) if t.node == node), None)
