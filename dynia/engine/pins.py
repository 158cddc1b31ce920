"""One image per tag per release: before a roll, every tag the services' compose files name is
resolved to a digest once, from this machine, through the registry's API; every node's compose
file then names that digest (dynia.spec.compose.wrapped), so a tag moved while the roll goes on
cannot leave two nodes on different images.

Why this machine and not the first node: the operator's machine (or CI runner) already holds
each registry's login (the spec's `registries:` with its token_env), it resolves before anything
is pushed (a tag that does not resolve changes nothing on any node), and the answer is one
value recorded in the release — no node's pull, cache or platform decides it. The price: this
machine must reach the registry, which it needs for `docker push` anyway.
"""
from __future__ import annotations

from typing import Callable

from ..providers import registry_api
from ..spec import image_refs
from ..state.registries import DOCKER_HUB, token

Resolver = Callable[..., str]


def image_references(cluster) -> dict[str, list[str]]:
    """service -> the image references its compose file names, sorted (each once)."""
    out: dict[str, list[str]] = {}
    for name, info in sorted(cluster.compose.items()):
        refs = {str(c["image"]).strip() for c in (info.data.get("services") or {}).values()
                if isinstance(c, dict) and isinstance(c.get("image"), str) and c["image"].strip()}
        out[name] = sorted(refs)
    return out


def resolve(cluster, *, resolver: Resolver = registry_api.manifest_digest) -> dict[str, str]:
    """{reference: sha256 digest} for every tag a service runs (a local image and a reference
    already by digest are left as written): asked once per reference."""
    out: dict[str, str] = {}
    for ref in sorted({r for refs in image_references(cluster).values() for r in refs}):
        if not image_refs.resolvable(ref):
            continue
        parsed = image_refs.parse(ref)
        out[ref] = resolver(parsed.api_host, parsed.repository, parsed.tag or "latest",
                            _login(cluster, parsed.host), shown=ref)
    return out


def _login(cluster, host: str) -> tuple[str, str] | None:
    for registry in cluster.spec.registries or ():
        if registry.server == host or (host == image_refs.DOCKER_HUB and registry.server in DOCKER_HUB):
            return registry.user, token(cluster.project, cluster.name, registry)
    return None
