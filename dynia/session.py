"""What every operating command starts from: the cluster lock, the validated spec, the nodes'
SSH targets (from the cache), the node that holds the reserved IP (read live) and the engine.

The CLI opens a session and calls one method; status, drift, repair and the tests open the
same session, so the order "lock → load → check the machine → read the holder" lives here once.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

from . import providers
from .cache import ClusterCache
from .nodes.push import Target
from .store import Cluster, Project, cluster_lock, load_cluster


def render_cluster(cluster: Cluster, *, holder: str | None = None, templates_dir: str | None = None):
    """The pure render, fed with what the cache holds: what `dynia render` and `plan` show."""
    from . import cache
    from .render import render

    return render(cluster, inventory=cache.inventory(cluster), applied=cache.applied(cluster), holder=holder,
                  templates_dir=templates_dir)


def targets(cluster: Cluster) -> list[Target]:
    """SSH targets of the nodes the last provision reported (none before the first one)."""
    outputs = ClusterCache.of(cluster).read_outputs()
    if outputs is None:
        return []
    identity = providers.of(cluster.spec).ssh_identity(cluster.project, cluster.name)
    return [Target(n, a.public_ip or a.private_ip, identity.key, identity.known_hosts)
            for n, a in outputs.nodes.items() if n in cluster.spec.nodes]


@dataclass
class Session:
    cluster: Cluster
    holder: str | None = None
    on_progress: Callable[[str], None] = field(default=lambda line: None)
    _engine: object = None

    @property
    def provider(self) -> providers.Provider:
        return providers.of(self.cluster.spec)

    @property
    def engine(self):
        """The Pulumi engine (imported on first use: commands that only read never load Pulumi)."""
        if self._engine is None:
            from .engine import Engine

            self._engine = Engine(self.cluster, holder=self.holder, on_progress=self.on_progress)
        return self._engine


def check_machine(cluster: Cluster) -> None:
    """What the engine needs from this machine, before any write (dynia.engine.preflight)."""
    from .engine import preflight

    preflight(providers.of(cluster.spec), cluster.spec.backend, cluster.project, cluster.name)


@contextlib.contextmanager
def engine_session(project: Project, name: str, *, before_load: Callable[[Project, str], None] | None = None,
                   on_progress: Callable[[str], None] | None = None) -> Iterator[Session]:
    """Lock the cluster, load it, check the machine, read the VIP holder live: ready to plan or apply."""
    from .nodes.gather import vip_holder

    with cluster_lock(project, name):
        if before_load is not None:  # e.g. revert restores the spec before it is read
            before_load(project, name)
        cluster = load_cluster(project, name)
        check_machine(cluster)
        nodes = targets(cluster)
        yield Session(cluster, vip_holder(nodes) if nodes else None, on_progress or (lambda line: None))
