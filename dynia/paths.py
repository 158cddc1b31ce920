"""Every path and port dynia uses on a node, in one place.

Templates (as `paths.*` and `ports.*`), bundles, node commands, probes and tests all read
these; nothing else spells a node path. (The apply script, `templates/node/apply.py`, runs
on the node with the standard library only and keeps its own copy of the state paths.)
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodePaths:
    haproxy_cfg: str = "/etc/haproxy/haproxy.cfg"
    haproxy_env: str = "/etc/default/haproxy"          # stats credentials, 0600, filled at push
    origin_pem: str = "/etc/haproxy/certs/origin.pem"  # certificate + key, 0600, filled at push
    haproxy_admin_socket: str = "/run/haproxy/admin.sock"
    haproxy_master_socket: str = "/run/haproxy-master.sock"
    haproxy_pid: str = "/run/haproxy.pid"
    haproxy_run_dir: str = "/run/haproxy"
    # Where HAProxy's workers are jailed once they drop root (Debian's package makes it, empty).
    haproxy_chroot: str = "/var/lib/haproxy"
    caddy_pid: str = "/run/caddy.pid"
    caddy_start_log: str = "/var/log/caddy-start.log"
    keepalived_pid: str = "/run/keepalived.pid"
    keepalived_vrrp_pid: str = "/run/keepalived-vrrp.pid"
    keepalived_log: str = "/var/log/keepalived.log"
    # The apply script's record of every push and its gate, where a node runs no journald (the
    # lab); droplets keep it in the journal (APPLY_LOG_IDENTIFIER). `dynia logs dynia` reads it.
    apply_log: str = "/var/log/dynia/apply.log"
    caddyfile: str = "/etc/caddy/Caddyfile"
    caddy_routes: str = "/etc/caddy/routes"
    # Every routed request, one JSON line each (Caddy's access log), rolled by Caddy itself: at
    # CADDY_ACCESS_LOG_ROLL's size, keeping that many old files for that long. /var/log/caddy is
    # the Debian/Ubuntu package's own log directory, writable by the `caddy` user it runs as.
    caddy_access_log: str = "/var/log/caddy/access.log"
    keepalived_conf: str = "/etc/keepalived/keepalived.conf"
    notify: str = "/etc/keepalived/notify.sh"
    check_haproxy: str = "/etc/keepalived/check_haproxy.sh"
    provider_token: str = "/etc/dynia/provider-token"
    # Private registries' logins (dynia.state.registries), 0600, filled at push; the engine finds it as
    # DOCKER_CONFIG's config.json (docker) and REGISTRY_AUTH_FILE (podman).
    registry_auth_dir: str = "/etc/dynia/registry"
    registry_auth: str = "/etc/dynia/registry/config.json"
    # The host firewall (nftables): one table of dynia's own, loaded with `nft -f` (issue 11).
    firewall_rules: str = "/etc/dynia/firewall.nft"
    firewall_unit: str = "/etc/systemd/system/dynia-firewall.service"   # loads it at boot (droplets)
    # Cloudflare's origin-pull CA (origin mode): HAProxy asks Cloudflare for its client certificate.
    origin_pull_ca: str = "/etc/haproxy/certs/origin-pull-ca.pem"
    # tls.mode letsencrypt: HTTP-01 key authorizations, one file per token, served by Caddy on
    # ACME_HOST (HAProxy sends /.well-known/acme-challenge/ on port 80 there).
    acme_challenge_dir: str = "/opt/dynia/acme-challenge"
    compose_dir: str = "/opt/dynia/compose"
    state_dir: str = "/opt/dynia/state"
    backups_dir: str = "/opt/dynia/backups"
    # A service's drain marker and the record of the compose file it last started (under /run:
    # a reboot never leaves a node drained).
    drain_dir: str = "/run/dynia/drain"
    # The lab's record of a daemon its boot does not start (systemd's `disable`, in pid-file form).
    boot_disabled_dir: str = "/etc/dynia/boot-disabled"
    # The only node paths a service's compose file may bind-mount (dynia.spec.isolation): the node's
    # system, its secrets and dynia's own files all live outside it.
    data_root: str = "/srv"
    # A data service's volume (issue 23): the mover notify.sh and pushes run, its configuration,
    # and the node's record of what it holds (status reads it).
    volume_script: str = "/etc/dynia/volume.py"
    volumes_config: str = "/etc/dynia/volumes.json"
    volumes_state: str = "/opt/dynia/state/volumes"
    alerts_dir: str = "/opt/dynia/state/alerts"
    # The operator's app secrets (a service's `secrets:`), one 0600 root file each, filled at
    # push; compose mounts each read-only at /run/secrets/<NAME> in the service's containers.
    app_secrets_dir: str = "/etc/dynia/app-secrets"

    def compose_file(self, service: str) -> str:
        return f"{self.compose_dir}/{service}/docker-compose.yml"

    def app_secret_dir(self, service: str) -> str:
        """A service's secret slots: app_secret_path(service, NAME) inside it."""
        return f"{self.app_secrets_dir}/{service}"

    def route_file(self, service: str) -> str:
        return f"{self.caddy_routes}/{service}.caddy"

    def drain_marker(self, service: str) -> str:
        """While it exists, Caddy answers the service's health path with 503: every HAProxy
        takes this node's copy of the service out of its backend."""
        return f"{self.drain_dir}/{service}"

    def drain_record(self, service: str) -> str:
        """The sha256 of the compose file the service was last started from (drain only on a change)."""
        return f"{self.drain_dir}/{service}.up"

    def state(self, name: str) -> str:
        """A file of the node's own state: vrrp (notify.sh), applied.json, degraded (apply script)."""
        return f"{self.state_dir}/{name}"


@dataclass(frozen=True)
class NodePorts:
    http: int = 80
    https: int = 443
    caddy: int = 8880
    caddy_admin: int = 2019
    stats: int = 8404


def backend_name(service: str) -> str:
    """A service's HAProxy backend (what `show stat` calls it). Service names never hold `_`,
    so no service's backend can be named like the fallback, be_any_node; dynia.spec.reserved keeps
    services off dynia's other backends."""
    return f"be_{service}"


def app_secret_path(service: str, name: str) -> str:
    """The slot one of a service's secrets fills on every node (0600 root)."""
    return f"{PATHS.app_secret_dir(service)}/{name}"


def compose_project(service: str) -> str:
    """The compose project a service runs as (the `name:` dynia.spec.compose.wrapped renders)."""
    return f"dynia-{service}"


PATHS = NodePaths()
# Caddy's access log rotation (`roll_size` MiB, `roll_keep` files, `roll_keep_for` hours): at most
# 6 × 10 MiB per node, nothing older than two weeks.
CADDY_ACCESS_LOG_ROLL = {"roll_size_mib": 10, "roll_keep": 5, "roll_keep_for_hours": 336}
PORTS = NodePorts()
# What a service may not publish: every node listens there itself.
INFRA_PORTS: dict[int, str] = {PORTS.http: "HAProxy http", PORTS.https: "HAProxy https", PORTS.caddy: "Caddy",
                               PORTS.caddy_admin: "Caddy admin", PORTS.stats: "HAProxy stats"}
# Caddy answers this on every node (its own handle block); HAProxy's checks and the gate use it.
HEALTH_URI = "/dynia-health"
HEALTH_HOST = "dynia-health"
# HAProxy rewrites an ACME HTTP-01 request's Host to this and sends it to its own node's Caddy.
ACME_HOST = "dynia-acme"
ACME_PREFIX = "/.well-known/acme-challenge/"
OWNER = "root:root"
# The users the Debian packages create and run their daemons as (haproxy.cfg's `user`/`group`,
# caddy.service's `User=`): dynia's nodes run them the same way, the lab's included.
# dynia's own components whose logs `dynia logs NAME` reads (a service of the same name is read
# instead: the spec's names come first), and the apply script's identifier in a droplet's journal.
LOG_COMPONENTS = ("haproxy", "caddy", "keepalived", "dynia")
APPLY_LOG_IDENTIFIER = "dynia"
HAPROXY_USER = "haproxy"
CADDY_USER = "caddy"
# nftables names, shared by the template, the node commands (the SSH gate asks the admin sets)
# and the lab tests: one table of dynia's own, so Docker's and podman's tables stay untouched.
NFT_TABLE = "dynia"
