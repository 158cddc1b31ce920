"""Node profiles: how a kind of node runs, reloads and checks its components.

The templates never hard-code an init system or a compose command; they ask the profile.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeProfile:
    name: str
    private_interface: str      # VRRP unicast and Caddy/stats binds live on this interface
    vip_device: str             # where keepalived puts the VIP on the MASTER
    vip_prefix: int
    haproxy_pidfile: str
    compose_command: str
    assigns_reserved_ip: bool   # notify.sh moves the reserved IP through the provider API
    reload: tuple[tuple[str, str], ...]  # component -> shell command

    def reload_command(self, component: str) -> str:
        return dict(self.reload)[component]


DIGITALOCEAN = NodeProfile(
    name="digitalocean",
    private_interface="eth1",
    # The reserved IP reaches a droplet through its anchor address; keeping it on lo as well
    # makes `ip addr` on the MASTER tell the truth about who holds it.
    vip_device="lo",
    vip_prefix=32,
    haproxy_pidfile="/run/haproxy.pid",
    compose_command="docker compose",
    assigns_reserved_ip=True,
    reload=(("haproxy", "systemctl reload haproxy"),
            ("caddy", "systemctl reload caddy"),
            ("keepalived", "systemctl reload keepalived")),
)

PROFILES = {p.name: p for p in (DIGITALOCEAN,)}
