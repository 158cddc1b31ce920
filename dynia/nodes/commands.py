"""Every shell command a node runs, built as data from its profile (the Kamal way).

Validate, reload-or-start, is-it-running, compose up/down: one function each, for both
service managers (systemd on droplets, pid files in the lab, where every node shares the
machine's PID namespace and `pidof` would see the neighbours). Bundles, notify.sh and the
health gate take their commands from here; tests/unit/test_node_commands.py pins every
string for both profiles.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..paths import PATHS as P
from ..providers.base import NodeProfile

# Reload order after a change: Caddy, then HAProxy, then keepalived. Caddy first because a
# fresh droplet's Caddy (the package's `:80 { file_server }`) holds :80: dynia's Caddyfile
# listens on the private address only, so Caddy's reload releases :80 before HAProxy's reload
# binds it (the other way round, HAProxy's new worker fails to bind and the gate fails on every
# try). Caddy never needs a port HAProxy holds, so this order is right on every later push too.
# keepalived last: its track script checks the HAProxy just reloaded. A rollback reloads in
# the reverse order (templates/node/apply.py), so HAProxy lets go of :80 before the restored
# package Caddyfile asks for it.
COMPONENTS = ("caddy", "haproxy", "keepalived")


def pid_alive(pidfile: str) -> str:
    """Exits 0 while the process in that pid file runs."""
    return f'[ -s {pidfile} ] && kill -0 "$(cat {pidfile})" 2>/dev/null'


HAPROXY_MASTER = f'"$(cat {P.haproxy_pid})"'   # the lab's HAProxy master, from its pid file


def env_current(pid: str) -> str:
    """Exits 0 when the process `pid` (a shell expression) already runs with every assignment of
    HAProxy's environment file. A reload re-executes HAProxy's master with its *own* environment,
    so a new or changed file (the stats credentials) only takes effect through a restart; this
    tells the two apart, so an unchanged file never costs a restart. The file's lines are read by
    grep as patterns (-f), never put on a command line: they hold the stats password."""
    return (f'{{ [ -r /proc/{pid}/environ ] && '
            f"[ \"$(grep -c '^[A-Za-z_][A-Za-z0-9_]*=' {P.haproxy_env})\" = "
            f"\"$(tr '\\0' '\\n' < /proc/{pid}/environ | grep -cxF -f {P.haproxy_env})\" ]; }}")


@dataclass(frozen=True)
class NodeCommands:
    profile: NodeProfile

    # --- infra components -------------------------------------------------------------

    def validate(self, component: str) -> str:
        return {
            # The stats credentials live in the environment file; HAProxy refuses the config without them.
            "haproxy": f"set -a; . {P.haproxy_env}; set +a; haproxy -c -q -f {P.haproxy_cfg}",
            "caddy": f"caddy validate --adapter caddyfile --config {P.caddyfile}",
            "keepalived": f"keepalived -t -f {P.keepalived_conf}",
        }[component]

    def reload(self, component: str) -> str:
        """Reload if running, else start: the first push starts what the next ones reload.
        HAProxy is restarted instead when its running master lacks the environment file's
        values (see env_current): a fresh droplet's package HAProxy never read dynia's file."""
        if self.profile.service_manager == "systemd":
            if component == "haproxy":
                main_pid = '"$(systemctl show -p MainPID --value haproxy)"'
                return (f"if systemctl is-active --quiet haproxy && {env_current(main_pid)}; "
                        "then systemctl reload haproxy; else systemctl restart haproxy; fi")
            return f"systemctl reload-or-restart {component}"
        return {
            # Master-worker: USR2 to the master is a seamless reload. A stale environment: stop
            # the master (SIGTERM, wait for it to go, bounded) and start it with the file read.
            "haproxy": (f'if {pid_alive(P.haproxy_pid)} && ! {env_current(HAPROXY_MASTER)}; '
                        f'then kill "$(cat {P.haproxy_pid})"; '
                        f"for i in $(seq 50); do {pid_alive(P.haproxy_pid)} || break; sleep 0.1; done; fi; "
                        f'if {pid_alive(P.haproxy_pid)}; then kill -USR2 "$(cat {P.haproxy_pid})"; '
                        f"else set -a; . {P.haproxy_env}; set +a; mkdir -p {P.haproxy_run_dir}; "
                        f"haproxy -W -D -f {P.haproxy_cfg} -p {P.haproxy_pid} -S {P.haproxy_master_socket}; fi"),
            # --force: Caddy skips a reload whose file it thinks unchanged.
            "caddy": (f"if {pid_alive(P.caddy_pid)}; then caddy reload --config {P.caddyfile} "
                      "--adapter caddyfile --force >/dev/null 2>&1; "
                      f"else caddy start --config {P.caddyfile} --adapter caddyfile --pidfile {P.caddy_pid} "
                      f">{P.caddy_start_log} 2>&1; fi"),
            "keepalived": (f'if {pid_alive(P.keepalived_pid)}; then kill -HUP "$(cat {P.keepalived_pid})"; '
                           # No syslog in the lab: stay in the foreground, logging to a file.
                           f"else setsid keepalived -n -l -D -G -f {P.keepalived_conf} "
                           f"-p {P.keepalived_pid} -r {P.keepalived_vrrp_pid} "
                           f"</dev/null >>{P.keepalived_log} 2>&1 & fi"),
        }[component]

    def stop(self, component: str) -> str:
        """Stops the component (a node leaving the cluster: its keepalived must be silent before
        the others drop it as a peer, or it turns MASTER and takes the reserved IP). Exits 0 once
        it is stopped; the pid-file form waits for the process to go (bounded, 5 s), as
        `systemctl stop` does, and exits non-zero if it is still running."""
        if self.profile.service_manager == "systemd":
            return f"systemctl stop {component}"
        pid = {"haproxy": P.haproxy_pid, "caddy": P.caddy_pid, "keepalived": P.keepalived_pid}[component]
        return (f'if {pid_alive(pid)}; then kill -TERM "$(cat {pid})"; '
                f"for i in $(seq 50); do {pid_alive(pid)} || break; sleep 0.1; done; fi; "
                f"! {{ {pid_alive(pid)}; }}")

    def running(self, component: str) -> str:
        """Exits 0 while the component runs (HAProxy and Caddy are gated by HTTP instead)."""
        if self.profile.service_manager == "systemd":
            return f"systemctl is-active --quiet {component}"
        return pid_alive({"haproxy": P.haproxy_pid, "caddy": P.caddy_pid, "keepalived": P.keepalived_pid}[component])

    # --- the operator's services --------------------------------------------------------

    def compose(self, service: str, *args: str) -> str:
        return f"{self.profile.compose_command} -f {P.compose_file(service)} {' '.join(args)}"

    def compose_up(self, service: str) -> str:
        return self.compose(service, "up", "-d")

    def compose_down(self, service: str) -> str:
        return self.compose(service, "down")

    def compose_remove(self, service: str) -> str:
        """Stop and remove a service's containers without its compose file: a removal deletes
        the file, and a retry (or a file already gone) must still find the containers. The
        rendered file names the project `dynia-<service>` (dynia.compose.wrapped), which Docker
        Compose resolves from its labels alone. podman-compose cannot (it exits "no compose.yaml
        … found" without a file), so its containers are found by the label it sets on each."""
        project = compose_project(service)
        if self.profile.container_engine == "podman":
            # Not a pipe into xargs: a failing `podman ps` must fail the removal, not read as "none".
            return (f"ids=$(podman ps -aq --filter label=io.podman.compose.project={project}) && "
                    '{ [ -z "$ids" ] || podman rm -f $ids >/dev/null; }')
        return f"{self.profile.compose_command} -p {project} down"


    def compose_running(self, service: str) -> str:
        """Exits 0 while any container of the service's project exists on the node (found the way
        compose_remove finds them, so it answers without the compose file too)."""
        project = compose_project(service)
        if self.profile.container_engine == "podman":
            return f"podman ps -q --filter label=io.podman.compose.project={project} | grep -q ."
        return f"{self.profile.compose_command} -p {project} ps -q | grep -q ."


def compose_project(service: str) -> str:
    """The compose project a service runs as (the `name:` dynia.compose.wrapped renders)."""
    return f"dynia-{service}"
