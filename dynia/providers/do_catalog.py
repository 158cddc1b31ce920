"""DigitalOcean's catalog: the spec's droplet size and region checked against what the account
can create (GET /v2/sizes, GET /v2/regions), before a provision is previewed or applied, when
DIGITALOCEAN_TOKEN is set.

dynia's own lists (digitalocean.REGIONS, SIZE_RAM_MIB) date from its release: DigitalOcean
adds sizes and regions and retires others, so offline a slug they do not know is a warning
(dynia.providers.digitalocean.DropletSizes), and only the API's answer refuses one — a size or
region it does not offer, or a size not offered in the spec's region — as a `config` error
naming what it does offer, with nothing created.
"""
from __future__ import annotations

from ..errors import DyniaError
from .do_api import api_get

SHOWN = 12   # slugs named in a hint
DROPLET_TYPE = "digitalocean:index/droplet:Droplet"


def _paged(path: str, key: str, asking: str) -> list[dict]:
    items: list[dict] = []
    for page in range(1, 101):
        data = api_get(f"{path}?per_page=200&page={page}", asking=asking)
        items += [x for x in data.get(key) or [] if isinstance(x, dict) and isinstance(x.get("slug"), str)]
        if not ((data.get("links") or {}).get("pages") or {}).get("next"):
            break
    return items


def _named(slugs: list[str]) -> str:
    return ", ".join(slugs[:SHOWN]) + (f" (and {len(slugs) - SHOWN} more)" if len(slugs) > SHOWN else "")


def _kept(provider, nodes: list[str], provisioned) -> bool:
    """Every node's droplet already exists at this size in this region (the provision state
    says so): nothing of that size is created or resized to, and DigitalOcean keeps droplets of
    a size or region it no longer offers — refusing them would block every `plan` and `cert
    renew` of a running cluster."""
    if provisioned is None:
        return False
    have = {}
    for r in provisioned():
        if r.get("type") == DROPLET_TYPE:
            name = str(r.get("urn", "")).rsplit("::", 1)[-1].removesuffix("-droplet")
            outputs = r.get("outputs") or {}
            have[name] = (outputs.get("size"), outputs.get("region"))
    return bool(nodes) and all(have.get(n) == (provider.size, provider.region) for n in nodes)


def check_catalog(provider, cluster: str, nodes: list[str] | None = None, provisioned=None) -> None:
    """Refuse (config) a region or size DigitalOcean does not offer for a new droplet, unless
    every node's droplet already runs at it (`provisioned()`: the provision state's resources)."""
    try:
        _check(provider, cluster)
    except DyniaError:
        if _kept(provider, nodes or [], provisioned):
            return
        raise


def _check(provider, cluster: str) -> None:
    where = f"clusters/{cluster}.yaml"
    regions = {r["slug"]: r for r in _paged("/regions", "regions", "list DigitalOcean's regions")}
    open_regions = sorted(s for s, r in regions.items() if r.get("available") is True)
    region, size = provider.region, provider.size
    if region not in regions:
        raise DyniaError("config", f"provider.region {region!r}: DigitalOcean has no such region",
                         f"set provider.region in {where} to one of: {_named(open_regions)}")
    if regions[region].get("available") is not True:
        raise DyniaError("config", f"provider.region {region}: DigitalOcean creates no new droplets there",
                         f"create the cluster in another region: {_named(open_regions)}")
    sizes = {s["slug"]: s for s in _paged("/sizes", "sizes", "list DigitalOcean's droplet sizes")}
    here = sorted((s for s, v in sizes.items() if v.get("available") is True and region in (v.get("regions") or [])),
                  key=lambda s: (sizes[s].get("memory") or 0, s))
    if size not in sizes:
        raise DyniaError("config", f"provider.size {size!r}: DigitalOcean has no such droplet size",
                         f"set provider.size in {where} to one offered in {region}: {_named(here)}")
    offered = sizes[size]
    if offered.get("available") is not True or region not in (offered.get("regions") or []):
        elsewhere = sorted(r for r in offered.get("regions") or [] if r in open_regions)
        raise DyniaError("config", f"provider.size {size} is not offered in {region}"
                         + (f" (only in {', '.join(elsewhere)})" if elsewhere and offered.get("available") else ""),
                         f"set provider.size in {where} to one offered in {region}: {_named(here)}")
