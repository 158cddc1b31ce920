"""What one push carries to one node for one layer (infra, or one service).

Files with target, mode, owner, sha256 and base64 content (binary-safe: a line `EOF` or a
NUL byte survives), the secret slots filled with their values, the layer's validate and
reload commands from the node profile, its health checks and the gate policy, the config
version. A service layer's bundle also says whether the service should run on this node
(`run`), which the apply script applies like a file: started or stopped when it differs from
what the node last recorded. The payload travels on the apply command's stdin, never on a
command line or in an environment variable; `describe()` is what may be logged.
"""
from __future__ import annotations

import base64
import hashlib
from typing import Any

from ..errors import DyniaError
from ..nodes.commands import INFRA_COMPONENTS, NodeCommands
from ..nodes.payload import Bundle
from ..paths import HEALTH_HOST, HEALTH_URI, PATHS, PORTS, app_secret_path
from ..spec.model import ClusterSpec
from .rendering import Rendering, drain_for, node_commands

SERVICE_LAYER = "service:"  # a service's layer: service:<name>; the other layer is infra
CERTIFICATE_SECRET = "origin_certificate"  # the slot HAProxy serves (origin CA or ACME alike)


def _policy(spec: ClusterSpec) -> dict:
    """The health gate's policy, as the apply script reads it."""
    h = spec.health
    return {"retries": h.retries, "interval": h.interval, "backoff": h.backoff, "timeout": h.timeout}


def _file(target: str, mode: int, owner: str, component: str, content: bytes) -> dict:
    return {"target": target, "mode": f"{mode:04o}", "owner": owner, "component": component,
            "sha256": hashlib.sha256(content).hexdigest(), "content": base64.b64encode(content).decode()}


def infra_health(commands: NodeCommands, private_ip: str) -> list[dict]:
    """Caddy and HAProxy answer the health URI over HTTP; keepalived has no port, so its
    process is checked (the profile's way: systemd, or its pid file). The firewall's table is
    loaded and still admits SSH from the address this push came from (a firewall that locks
    dynia out fails the gate and is rolled back while this connection still stands)."""
    return [
        {"name": "firewall", "type": "command", "command": commands.firewall_admits_ssh()},
        {"name": "caddy", "type": "http", "host": private_ip, "port": PORTS.caddy, "path": HEALTH_URI,
         "hostHeader": HEALTH_HOST, "expect": [200, 200]},
        {"name": "haproxy", "type": "http", "scheme": "https", "host": "127.0.0.1", "port": PORTS.https,
         "path": HEALTH_URI, "hostHeader": HEALTH_HOST, "expect": [200, 200]},
        {"name": "keepalived", "type": "command", "command": commands.running("keepalived")},
    ]


def service_health(spec: ClusterSpec, service: str, private_ip: str) -> list[dict]:
    svc = spec.services[service]
    app = {"name": f"{service} app", "type": "http", "host": "127.0.0.1", "port": svc.port,
           "path": svc.health_path, "expect": [200, 399]}
    # Asked as its first domain, as Caddy and HAProxy ask it: an app that allows only its own
    # hosts (Django's ALLOWED_HOSTS, Rails' host authorization) answers 400 to a bare address.
    checks = [{**app, "hostHeader": svc.domains[0]} if svc.domains else app]
    # Through Caddy once per host: each must reach this service's route. (The first keeps the
    # name it had when a service had one domain: a bundle that did not change is not re-pushed.)
    for i, domain in enumerate(svc.domains):
        checks.append({"name": f"{service} via caddy" + (f" as {domain}" if i else ""), "type": "http",
                       "host": private_ip, "port": PORTS.caddy, "path": svc.health_path, "hostHeader": domain,
                       "expect": [200, 399]})
    return checks


def build_bundles(spec: ClusterSpec, rendering: Rendering, node: str, secrets: dict[str, bytes],
                  *, force: bool = False, holder: str | None = None) -> dict[str, Bundle]:
    """Every layer's bundle for one node: {"infra": …, "service:api": …}.

    `holder` is the node holding the reserved IP, read live (None: the configured MASTER is
    assumed): active-only services run there."""
    commands = node_commands(spec)
    private_ip = rendering.inventory.nodes[node][0]
    layers: dict[str, list[dict]] = {}
    for f in rendering.files[node]:
        layers.setdefault(f.layer, []).append(_file(f.target, f.mode, f.owner, f.component, f.content))
    for s in rendering.slots[node]:
        if s.secret not in secrets:
            raise DyniaError("state", f"secret {s.secret} for {s.target} is not available",
                             "run `dynia context doctor` to see which secret is missing")
        layers.setdefault(s.layer, []).append(_file(s.target, s.mode, s.owner, s.component, secrets[s.secret]))
    bundles = {}
    for layer, files in sorted(layers.items()):
        common: dict[str, Any] = dict(node=node, layer=layer, config_version=rendering.config_version,
                      files=sorted(files, key=lambda f: f["target"]), policy=_policy(spec),
                      lockdown=spec.lockdown, force=force)
        if layer == "infra":
            bundles[layer] = Bundle(**common, validate={c: commands.validate(c) for c in INFRA_COMPONENTS},
                                    reload={c: commands.reload(c) for c in INFRA_COMPONENTS},
                                    # A first firewall whose gate fails is unloaded, not "reloaded"
                                    # from a file that did not exist (apply.py's undo_actions).
                                    stop={"nftables": commands.stop("nftables")},
                                    health=infra_health(commands, private_ip), component_order=list(INFRA_COMPONENTS))
            continue
        service = layer[len(SERVICE_LAYER):]
        here = spec.services[service].runs_on(node == active_node(spec, holder))
        # A service without a domain has no route: removing its route file is a no-op until a
        # route is unbound, then Caddy stops serving it. Derived from the spec, not from what
        # was applied, so the bundle (and its trigger) is the same on every machine.
        route = [] if spec.services[service].domains else [PATHS.route_file(service)]
        images = _images(rendering, node, service)
        bundles[layer] = Bundle(
            **common, validate={"caddy": commands.validate("caddy")},
            # How the service starts (or takes a new compose file) and stops on every node; `run`
            # says which it should be doing here. The apply script starts it only where it should
            # run, and starts or stops it when that differs from what the node last applied.
            reload={layer: _with_volume(commands, spec, service, commands.compose_up(
                service, drain_for(spec, service), tuple(app_secret_path(service, s)
                                                         for s in sorted(spec.services[service].secrets))), True),
                    "caddy": commands.reload("caddy")},
            stop={layer: _with_volume(commands, spec, service, commands.compose_down(service), False)}, run=here,
            images={image: commands.image_present(image) for image in images},
            prefetch={} if here else {image: commands.pull_missing(image) for image in images},
            health=service_health(spec, service, private_ip) if here else [],
            # Start the app before Caddy routes to it.
            component_order=[layer, "caddy"],
            remove=route, remove_components={t: "caddy" for t in route},
            prune=PATHS.app_secret_dir(service) + "/")
    return bundles


def _with_volume(commands: NodeCommands, spec, service: str, compose: str, start: bool) -> str:
    """A data service's volume moves before it starts and after it stops, never the other way
    (a start without its volume would write to the node's own disk)."""
    if spec.services[service].data is None:
        return compose
    if start:
        return f"{commands.volume('take', service)} && {{ {compose}; }}"
    return f"{compose} && {commands.volume('release', service)}"


def _images(rendering: Rendering, node: str, service: str) -> list[str]:
    """The images the service's rendered compose file runs on that node, sorted."""
    from ..spec.compose import compose_images

    compose = PATHS.compose_file(service)
    return sorted({image for f in rendering.files[node] if f.target == compose
                   for image in compose_images(f.content).values()})


def active_node(spec: ClusterSpec, holder: str | None) -> str:
    """Where active-only services run: the live VIP holder when known, else the configured MASTER."""
    return holder if holder in spec.nodes else spec.master_node



def removed_services(spec: ClusterSpec, previous_layers: dict | None) -> list[str]:
    """Services pushed by an earlier apply but no longer in the spec. `previous_layers` is the
    apps stack's last `layers` output ({node: {layer: {digest, version}}}): it travels with the
    Pulumi state, so every machine (CI included, without .dynia/cache) finds the same ones."""
    previous = previous_layers if isinstance(previous_layers, dict) else {}
    named = {layer[len(SERVICE_LAYER):] for layers in previous.values() if isinstance(layers, dict)
             for layer in layers if isinstance(layer, str) and layer.startswith(SERVICE_LAYER)}
    return sorted(s for s in named if s and s not in spec.services)


def removal_bundle(spec: ClusterSpec, node: str, service: str, config_version: int) -> Bundle:
    """The push that removes a service from one node: stop its containers (by project, so a
    retry after the file is gone still finds them), delete its compose file and route, reload
    Caddy. On every node, whatever its placement was: a node where it never ran has nothing to
    stop and no files, and the apply leaves it unchanged. A failed gate restores both files and
    restarts the service only where it ran."""
    commands = node_commands(spec)
    layer = SERVICE_LAYER + service
    compose, route = PATHS.compose_file(service), PATHS.route_file(service)
    return Bundle(
        node=node, layer=layer, config_version=config_version, files=[],
        validate={"caddy": commands.validate("caddy")}, reload={"caddy": commands.reload("caddy")},
        stop={}, health=[], policy=_policy(spec), lockdown=spec.lockdown,
        # Stop the app first, then Caddy stops routing to it (the reverse of a deploy).
        component_order=[layer, "caddy"],
        remove=[compose, route], remove_components={compose: layer, route: "caddy"},
        remove_commands={layer: {"stop": commands.compose_remove(service),
                                 "running": commands.compose_running(service),
                                 "restart": commands.compose_up(service)}},
        prune=PATHS.app_secret_dir(service) + "/")


def certificate_bundle(spec: ClusterSpec, rendering: Rendering, node: str, pem: bytes) -> Bundle:
    """The certificate slot alone, as a partial infra push: what `dynia cert renew` rolls while
    other changes to the render are pending (they wait for `dynia up`). HAProxy validates and
    reloads it, and the infra gate judges the node, as in a full push."""
    commands = node_commands(spec)
    slot = next(s for s in rendering.slots[node] if s.secret == CERTIFICATE_SECRET)
    return Bundle(node=node, layer=slot.layer, config_version=rendering.config_version,
                  files=[_file(slot.target, slot.mode, slot.owner, slot.component, pem)],
                  validate={slot.component: commands.validate(slot.component)},
                  reload={slot.component: commands.reload(slot.component)}, stop={},
                  health=infra_health(commands, rendering.inventory.nodes[node][0]), policy=_policy(spec),
                  lockdown=spec.lockdown, component_order=[slot.component], partial=True)
