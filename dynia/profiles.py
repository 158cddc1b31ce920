"""Node profiles: how a kind of node runs, validates, reloads and checks its components.

The templates and the apply script never hard-code an init system or a compose command;
they take them from the profile (systemd on droplets, pid files in the local lab).
"""
from __future__ import annotations

from dataclasses import dataclass

VALIDATE = {
    # The stats credentials live in the environment file; HAProxy refuses the config without them.
    "haproxy": "set -a; . /etc/default/haproxy; set +a; haproxy -c -q -f /etc/haproxy/haproxy.cfg",
    "caddy": "caddy validate --adapter caddyfile --config /etc/caddy/Caddyfile",
    "keepalived": "keepalived -t -f /etc/keepalived/keepalived.conf",
}
COMPONENT_ORDER = ("haproxy", "caddy", "keepalived")


def _alive(pidfile: str) -> str:
    return f'[ -s {pidfile} ] && kill -0 "$(cat {pidfile})" 2>/dev/null'


@dataclass(frozen=True)
class NodeProfile:
    name: str
    private_interface: str      # VRRP unicast and Caddy/stats binds live on this interface
    vip_device: str             # where keepalived puts the VIP on the MASTER
    vip_prefix: int
    haproxy_pidfile: str
    compose_command: str
    compose_host_network: bool  # lab: podman without a network stack runs containers on the host network
    assigns_reserved_ip: bool   # notify.sh moves the reserved IP through the provider API
    reload: tuple[tuple[str, str], ...]  # component -> reload-or-start shell command
    alive: tuple[tuple[str, str], ...]   # component -> exits 0 while it runs (health gate)

    def reload_command(self, component: str) -> str:
        return dict(self.reload)[component]

    def compose(self, service: str, *args: str) -> str:
        return f"{self.compose_command} -f /opt/dynia/compose/{service}/docker-compose.yml {' '.join(args)}"


DIGITALOCEAN = NodeProfile(
    name="digitalocean",
    private_interface="eth1",
    # The reserved IP reaches a droplet through its anchor address; keeping it on lo as well
    # makes `ip addr` on the MASTER tell the truth about who holds it.
    vip_device="lo",
    vip_prefix=32,
    haproxy_pidfile="/run/haproxy.pid",
    compose_command="docker compose",
    compose_host_network=False,
    assigns_reserved_ip=True,
    reload=(("haproxy", "systemctl reload-or-restart haproxy"),
            ("caddy", "systemctl reload-or-restart caddy"),
            ("keepalived", "systemctl reload-or-restart keepalived")),
    alive=(("keepalived", "systemctl is-active --quiet keepalived"),),
)

LOCAL = NodeProfile(
    name="local",
    private_interface="eth0",
    vip_device="eth0",
    vip_prefix=24,
    haproxy_pidfile="/run/haproxy.pid",
    compose_command="podman-compose",
    compose_host_network=True,
    assigns_reserved_ip=False,
    reload=(
        # Master-worker: USR2 to the master is a seamless reload.
        ("haproxy", f'if {_alive("/run/haproxy.pid")}; then kill -USR2 "$(cat /run/haproxy.pid)"; '
                    "else set -a; . /etc/default/haproxy; set +a; mkdir -p /run/haproxy; "
                    "haproxy -W -D -f /etc/haproxy/haproxy.cfg -p /run/haproxy.pid -S /run/haproxy-master.sock; fi"),
        # --force: Caddy skips a reload whose file it thinks unchanged.
        ("caddy", f"if {_alive('/run/caddy.pid')}; then caddy reload --config /etc/caddy/Caddyfile "
                  "--adapter caddyfile --force >/dev/null 2>&1; "
                  "else caddy start --config /etc/caddy/Caddyfile --adapter caddyfile --pidfile /run/caddy.pid "
                  ">/var/log/caddy-start.log 2>&1; fi"),
        ("keepalived", f'if {_alive("/run/keepalived.pid")}; then kill -HUP "$(cat /run/keepalived.pid)"; '
                       # No syslog in the lab: stay in the foreground, logging to a file.
                       "else setsid keepalived -n -l -D -G -f /etc/keepalived/keepalived.conf "
                       "-p /run/keepalived.pid -r /run/keepalived-vrrp.pid "
                       "</dev/null >>/var/log/keepalived.log 2>&1 & fi"),
    ),
    alive=(("keepalived", _alive("/run/keepalived.pid")),),
)

PROFILES = {p.name: p for p in (DIGITALOCEAN, LOCAL)}
