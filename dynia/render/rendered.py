"""The pure render fed with what this machine's cache holds (the last provision's addresses, the
last applied record): what `dynia render`, `plan` and `status` show, and what `up` records as
applied."""
from __future__ import annotations

from ..spec.load import Cluster
from ..state import cache
from .rendering import render


def render_cluster(cluster: Cluster, *, holder: str | None = None, templates_dir: str | None = None,
                   images: dict[str, str] | None = None, rollback: dict[str, dict] | None = None):
    """The pure render, fed with what the cache holds: what `dynia render` and `plan` show.
    images, rollback: what a roll resolved and rolls back (dynia.engine.pins,
    dynia.operations.releases); None: the release in force on this machine."""
    return render(cluster, inventory=cache.inventory(cluster), applied=cache.applied(cluster), holder=holder,
                  templates_dir=templates_dir, images=cache.images(cluster) if images is None else images,
                  rollback=cache.rollback(cluster) if rollback is None else rollback)
