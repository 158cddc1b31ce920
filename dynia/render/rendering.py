"""Spec → the exact bytes each node receives. Pure: no network, no clock, no randomness.

Secrets are never rendered. Where a node needs one (origin certificate and key, stats
credentials, provider token) the render records a *slot*: target path, mode 0600, owner and
which secret fills it at push time.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .. import providers, volumes
from ..errors import render_error
from ..inventory import Inventory
from ..nodes.commands import (
    DRAIN_DIR,
    FIREWALL_UNIT,
    HAPROXY_TIMING,
    Drain,
    NodeCommands,
)
from ..paths import (
    ACME_HOST,
    ACME_PREFIX,
    CADDY_ACCESS_LOG_ROLL,
    HAPROXY_USER,
    HEALTH_HOST,
    HEALTH_URI,
    OWNER,
    PATHS,
    PORTS,
    app_secret_path,
    backend_name,
)
from ..planner import rolling_order
from ..providers.base import NodeProfile
from ..spec import compose
from ..spec.load import Cluster
from ..spec.model import ClusterSpec
from ..state.app_secrets import slot_secret
from . import edge, firewall
from .guard import GuardReport, check_guard


@dataclass(frozen=True)
class RenderedFile:
    layer: str       # "infra" or "service:<name>"
    target: str
    mode: int
    owner: str
    component: str   # what reloads when it changes: haproxy | caddy | keepalived | service:<name>
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def metadata(self) -> dict:
        return {"targetPath": self.target, "mode": f"{self.mode:04o}", "owner": self.owner,
                "sha256": self.sha256, "layer": self.layer, "component": self.component}


@dataclass(frozen=True)
class SecretSlot:
    layer: str
    target: str
    secret: str      # name of the secret that fills it at push time
    component: str
    mode: int = 0o600
    owner: str = OWNER

    def metadata(self) -> dict:
        return {"targetPath": self.target, "mode": f"{self.mode:04o}", "owner": self.owner,
                "secret": self.secret, "layer": self.layer, "component": self.component}


@dataclass(frozen=True)
class NodeAddr:
    id: str
    private_ip: str
    public_ip: str | None
    priority: int


@dataclass(frozen=True)
class ServiceBackend:
    """One routed service's HAProxy backend on one node."""
    name: str
    service: str
    domains: list[str]   # every host routed here; HAProxy's health check asks as the first
    health_path: str
    placement: str
    servers: list[NodeAddr]
    maintenance: "MaintenancePage | None" = None


@dataclass(frozen=True)
class MaintenancePage:
    """What HAProxy answers a service in maintenance with: 503, this page, Retry-After."""
    page: str          # ASCII HTML, no single quote: it sits inside '…' in haproxy.cfg
    retry_after: int   # seconds


def maintenance_page(message: str, retry_after: float) -> MaintenancePage:
    """The 503 page for a service in maintenance: the spec's sentence HTML-escaped, every
    non-ASCII character (and $, \\) as a numeric reference, so the page is plain ASCII with no
    quote HAProxy's strong quoting could end on."""
    import html

    text = html.escape(message, quote=True).encode("ascii", "xmlcharrefreplace").decode()
    # Inside '…' HAProxy expands nothing; written as references anyway, so no reading of the
    # config (a by-hand edit to double quotes) could make them a variable or an escape.
    text = text.replace("$", "&#36;").replace("\\", "&#92;")
    page = ("<!doctype html><html><head><meta charset=utf-8><title>Maintenance</title></head>"
            f"<body><h1>Maintenance</h1><p>{text}</p></body></html>")
    return MaintenancePage(page, int(retry_after))


def service_backends(spec: ClusterSpec, nodes: list[NodeAddr], me: NodeAddr) -> list[ServiceBackend]:
    """Every routed service's backend: each node's Caddy, or, for an active-only service, this
    node's own (it runs on the VIP holder only, and only the holder's HAProxy gets traffic)."""
    out = []
    for name in sorted(spec.services):
        svc = spec.services[name]
        if not svc.domains:
            continue
        servers = [me] if svc.placement == "active-only" else list(nodes)
        page = (maintenance_page(svc.maintenance.message, svc.maintenance.retry_after)
                if svc.maintenance is not None else None)
        out.append(ServiceBackend(backend_name(name), name, svc.domains, svc.health_path, svc.placement, servers,
                                  page))
    return out


def node_commands(spec: ClusterSpec) -> NodeCommands:
    """The node's commands for this cluster: its provider's profile, and whether its pulls log in
    to the spec's registries."""
    return NodeCommands(providers.of(spec).profile, registry_auth=bool(spec.registries))


def drain_for(spec: ClusterSpec, service: str) -> Drain | None:
    """How a service's copy on a node is drained before its containers are recreated (the
    service layer's compose_up): only where another node's copy takes its requests meanwhile,
    i.e. a routed service every node runs, on two or more nodes. Elsewhere draining would only
    turn a short restart into a longer 503."""
    svc = spec.services[service]
    if not svc.domains or svc.placement != "all" or len(spec.nodes) < 2:
        return None
    return Drain(port=svc.port, health_path=svc.health_path, ready_timeout=spec.health.timeout,
                 host=svc.domains[0])


@lru_cache(maxsize=4)
def _environment(templates_dir: str | None):
    import jinja2

    if templates_dir:
        loader: jinja2.BaseLoader = jinja2.FileSystemLoader(templates_dir)
    else:
        loader = jinja2.PackageLoader("dynia.templates", "")
    return jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                              autoescape=False)


def cloud_init(cluster: str, node: str, image: str, host_key: tuple[str, str] | None = None) -> str:
    """A droplet's cloud-init user data (the image's packages, dynia.images, and directories; no
    managed file) and, given host_key = (private key in OpenSSH format, "ssh-ed25519 AAAA…"),
    the SSH host key it installs.
    With a key it holds a secret: only the provision program renders it (as a secret Output);
    `dynia render` and deploy-config/ never do."""
    import re

    if host_key is not None:
        private, public = host_key
        if "PRIVATE KEY-----" not in private or not re.fullmatch(r"ssh-ed25519 [A-Za-z0-9+/]+={0,2}", public):
            raise render_error("the node's SSH host key is not an OpenSSH ed25519 key pair",
                               "check the provision stack's host key resources")
    from ..images import packages

    return _render(_environment(default_templates_dir()), "cloud-init/user-data.yaml.j2",
                   cluster=cluster, node=node, paths=PATHS, host_key=host_key, packages=packages(image)).decode()


def default_templates_dir() -> str | None:
    return os.environ.get("DYNIA_TEMPLATES") or None


def _render(env, name: str, **ctx) -> bytes:
    import jinja2

    try:
        return env.get_template(name).render(**ctx).encode()
    except jinja2.TemplateError as exc:
        raise render_error(f"template {name}: {exc}",
                           "this is a bug in dynia's templates; run with --debug and report it") from None


def vrid(cluster: str) -> int:
    """VRRP router id (1-255), stable per cluster so two clusters on one VPC do not collide."""
    return 1 + int(hashlib.sha256(cluster.encode()).hexdigest(), 16) % 254


@dataclass
class Rendering:
    cluster: str
    spec_hash: str
    config_version: int
    content_hash: str
    inventory: Inventory
    rolling_order: list[str]
    files: dict[str, list[RenderedFile]] = field(default_factory=dict)
    slots: dict[str, list[SecretSlot]] = field(default_factory=dict)
    guard: GuardReport | None = None
    notices: list[dict] = field(default_factory=list)  # dynia.spec.compose.notices: plan shows them first

    def manifest(self, node: str) -> dict[str, dict]:
        """target -> {sha256, mode, owner, component}: what the apply compares against."""
        out = {f.target: {"sha256": f.sha256, "mode": f"{f.mode:04o}", "owner": f.owner,
                          "component": f.component, "layer": f.layer} for f in self.files[node]}
        return dict(sorted(out.items()))

    def cluster_metadata(self) -> dict:
        return {
            "cluster": self.cluster,
            "configVersion": self.config_version,
            "specHash": self.spec_hash,
            "contentHash": self.content_hash,
            "addresses": "planned" if self.inventory.planned else "provisioned",
            "reservedIp": self.inventory.reserved_ip,
            "rollingOrder": self.rolling_order,
            "nodes": {n: {"privateIp": self.inventory.nodes[n][0],
                          "files": len(self.files[n]), "secretSlots": len(self.slots[n])}
                      for n in self.files},
        }


def spec_hash(cluster: Cluster) -> str:
    canonical = json.dumps(cluster.spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _firewall_files(cluster: Cluster, profile: NodeProfile, nodes: list[NodeAddr], me: NodeAddr,
                    env) -> list[RenderedFile]:
    """The host firewall (dynia.render.firewall): its rules, and on systemd nodes the unit that loads
    them at boot. Root-only readable: the admin ranges are the operator's business."""
    spec = cluster.spec
    ctx = dict(cluster=spec.name, node=me, paths=PATHS, ports=PORTS, table=firewall.TABLE,
               firewall=firewall.sources(spec, providers.of(spec), [n.private_ip for n in nodes]))
    files = [RenderedFile("infra", PATHS.firewall_rules, 0o600, OWNER, "nftables",
                          _render(env, "nftables/dynia.nft.j2", **ctx))]
    if profile.service_manager == "systemd":
        files.append(RenderedFile("infra", FIREWALL_UNIT, 0o644, OWNER, "nftables",
                                  _render(env, "nftables/dynia-firewall.service.j2", **ctx)))
    return files


def _node_files(cluster: Cluster, profile: NodeProfile, inv: Inventory, node: str,
                env, images: dict[str, str], rollback: dict[str, dict]) -> tuple[list[RenderedFile], list[SecretSlot]]:
    spec = cluster.spec
    order = spec.nodes
    nodes = [NodeAddr(n, inv.nodes[n][0], inv.nodes[n][1],
                      150 if n == spec.master_node else 100 - 10 * i) for i, n in enumerate(order)]
    me = next(a for a in nodes if a.id == node)
    services = spec.services
    policy = edge.policy(spec, providers.of(spec))
    ctx = dict(cluster=spec.name, node=me, nodes=nodes, master=spec.master_node, profile=profile,
               commands=node_commands(spec), paths=PATHS, ports=PORTS, health_uri=HEALTH_URI,
               health_host=HEALTH_HOST, vip=inv.reserved_ip, haproxy_user=HAPROXY_USER,
               reserved_ip_api=providers.of(spec).reserved_ip_api(spec),
               vrid=vrid(spec.name), timing=HAPROXY_TIMING, drain_dir=DRAIN_DIR,
               backends=service_backends(spec, nodes, me),
               active_only=sorted(n for n, s in services.items() if s.placement == "active-only"),
               standby_only=sorted(n for n, s in services.items() if s.placement == "standby-only"),
               data_services=sorted(n for n, s in services.items() if s.data is not None),
               edge=policy, acme_host=ACME_HOST, acme_prefix=ACME_PREFIX,
               access_log_roll=CADDY_ACCESS_LOG_ROLL)
    r = lambda name: _render(env, name, **ctx)  # noqa: E731
    files = [
        RenderedFile("infra", PATHS.haproxy_cfg, 0o644, OWNER, "haproxy", r("haproxy/haproxy.cfg.j2")),
        RenderedFile("infra", PATHS.caddyfile, 0o644, OWNER, "caddy", r("caddy/Caddyfile.j2")),
        RenderedFile("infra", PATHS.keepalived_conf, 0o644, OWNER, "keepalived",
                     r("keepalived/keepalived.conf.j2")),
        RenderedFile("infra", PATHS.notify, 0o700, OWNER, "keepalived", r("keepalived/notify.sh.j2")),
        RenderedFile("infra", PATHS.check_haproxy, 0o700, OWNER, "keepalived",
                     r("keepalived/check_haproxy.sh.j2")),
    ]
    volume_config = volumes.node_config(spec, profile, PATHS.provider_token)
    if volume_config is not None:
        # The mover is a plain script (no template): sent as it is, like the apply script.
        mover = env.loader.get_source(env, "node/volume.py")[0].encode()
        files += [RenderedFile("infra", PATHS.volume_script, 0o700, OWNER, "keepalived", mover),
                  RenderedFile("infra", PATHS.volumes_config, 0o600, OWNER, "keepalived", volume_config)]
    files += _firewall_files(cluster, profile, nodes, me, env)
    slots = [
        SecretSlot("infra", PATHS.origin_pem, "origin_certificate", "haproxy"),
        SecretSlot("infra", PATHS.haproxy_env, "stats_credentials", "haproxy"),
    ]
    if policy.origin_pulls:
        # The cluster's own origin-pull CA (HAProxy's ca-file): public, but made with the
        # provision state, so it fills a slot at push time like the certificate beside it.
        slots.append(SecretSlot("infra", PATHS.origin_pull_ca, "origin_pull_ca", "haproxy", mode=0o644))
    if profile.assigns_reserved_ip:
        slots.append(SecretSlot("infra", PATHS.provider_token, "provider_token", "keepalived"))
    if spec.registries:
        # Infra: written before any service layer pulls. Nothing reloads for it: the engine reads
        # it at the next pull.
        slots.append(SecretSlot("infra", PATHS.registry_auth, "registry_auth", "registry"))
    for name in sorted(services):
        svc = services[name]
        layer = f"service:{name}"
        # Mirrored everywhere: notify.sh starts active-only/standby-only services on a role change.
        kept = rollback.get(name)   # a rollback in effect: that release's compose file and digests
        info = compose.as_released(cluster.compose[name], kept["content"], kept["release"]) if kept \
            else cluster.compose[name]
        secrets = {s: app_secret_path(name, s) for s in sorted(svc.secrets)}
        files.append(RenderedFile(layer, PATHS.compose_file(name), 0o644, OWNER,
                                  layer, compose.wrapped(name, info, host_network=profile.compose_host_network,
                                                         images={**images, **kept["images"]} if kept else images,
                                                         secrets=secrets).encode()))
        # The values fill these at push time (dynia.state.app_secrets); a change restarts only this service.
        slots += [SecretSlot(layer, target, slot_secret(name, s), layer) for s, target in secrets.items()]
        if svc.domains:
            files.append(RenderedFile(layer, PATHS.route_file(name), 0o644, OWNER, "caddy",
                                      _render(env, "caddy/route.caddy.j2",
                                              service={"name": name, **svc.model_dump(), "domains": svc.domains},
                                              **ctx)))
    return files, slots


def render(cluster: Cluster, *, inventory: Inventory, applied: dict, holder: str | None = None,
           templates_dir: str | None = None, images: dict[str, str] | None = None,
           rollback: dict[str, dict] | None = None) -> Rendering:
    """Pure: the same spec, inventory, applied record and images give byte-identical files. The
    caller reads the inventory and the applied record (dynia.state.cache); nothing here touches .dynia/.
    images: {reference: sha256 digest} the release resolved (dynia.engine.pins): compose files name those.
    rollback: service -> {release, content, images}: a rollback in effect renders that release's
    compose file and digests for the service instead of the spec's (dynia.operations.releases)."""
    spec = cluster.spec
    profile = providers.of(spec).profile
    env = _environment(templates_dir or default_templates_dir())
    inv = inventory
    order = rolling_order(spec.nodes, spec.master_node, holder, applied)
    shash = spec_hash(cluster)

    files, slots = {}, {}
    digest = hashlib.sha256()
    for node in spec.nodes:
        files[node], slots[node] = _node_files(cluster, profile, inv, node, env, images or {}, rollback or {})
        for f in files[node]:
            digest.update(f"{node}\0{f.target}\0{f.mode}\0{f.owner}\0{f.sha256}\n".encode())
        for s in slots[node]:
            digest.update(f"{node}\0{json.dumps(s.metadata(), sort_keys=True)}\n".encode())
    content = digest.hexdigest()
    # Same content as the last apply keeps its version; anything new is the next version.
    last = int(applied.get("configVersion", 0))
    version = last if (last and applied.get("contentHash") == content) else last + 1
    rendering = Rendering(spec.name, shash, version, content, inv, order, files, slots)
    rendering.guard = check_guard(cluster, providers.of(spec).ram_mib(spec.provider.size))
    rendering.notices = compose.notices(spec, cluster.compose) + [
        {"service": name, "kind": "warning",
         "text": f"service {name} is rolled back to release {kept['release']}: its compose file and images are "
                 f"that release's, not the spec's, until the next deploy from the spec (`dynia up`, "
                 f"`dynia service deploy {name}`) replaces them"} for name, kept in sorted((rollback or {}).items())
        if name in spec.services]
    return rendering


def write_deploy_config(rendering: Rendering, out_dir: Path) -> None:
    """Replace out_dir with the rendering, as a whole: a reader never sees half of it."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        for node, files in rendering.files.items():
            for f in files:
                layer_dir = staging / node / f.layer.replace(":", "-")
                path = layer_dir / f.target.lstrip("/")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(f.content)
                os.chmod(path, 0o644)  # the node mode is metadata; the local copy stays readable
                (path.parent / f"{path.name}.metadata.json").write_text(
                    json.dumps(f.metadata(), indent=2, sort_keys=True) + "\n")
            slots = [s.metadata() for s in rendering.slots[node]]
            (staging / node / "secret-slots.json").write_text(json.dumps(slots, indent=2, sort_keys=True) + "\n")
        (staging / "cluster-metadata.json").write_text(
            json.dumps(rendering.cluster_metadata(), indent=2, sort_keys=True) + "\n")
        old = None
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(out_dir, old)
        os.rename(staging, out_dir)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
