"""Every shell command a node runs, built as data from its profile (the Kamal way).

Validate, reload-or-start, is-it-running, compose up/down: one function each, for both
service managers (systemd on droplets, pid files in the lab, where every node shares the
machine's PID namespace and `pidof` would see the neighbours). Bundles, notify.sh and the
health gate take their commands from here; tests/unit/test_node_commands.py pins every
string for both profiles.
"""
from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field

from ..paths import CADDY_USER, NFT_TABLE, PORTS, compose_project
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
# (These are the daemons: status, drift and the `running` fact read them.)
COMPONENTS = ("caddy", "haproxy", "keepalived")
# What an infra push reloads, in order: the host firewall (nftables) before every daemon. A
# node's new peers and ports are admitted before the daemons that talk to them reload, and the
# gate then checks every component through the firewall it will live with. The firewall needs
# no port of anyone's, so it can go first; a rollback restores it last, after the daemons are
# back on their old files.
INFRA_COMPONENTS = ("nftables", *COMPONENTS)

# The firewall's table (dynia.paths.NFT_TABLE; one table of dynia's own) and, on systemd nodes,
# the unit that loads it at boot.
FIREWALL_TABLE = f"inet {NFT_TABLE}"
FIREWALL_UNIT = P.firewall_unit
# The MASTER assigns the reserved IP again, through its own notify script and node token
# (dynia.engine.holder_gate: keepalived runs the script on a transition only).
ASSIGN_RESERVED_IP = f"{P.notify} assign"


def ssh_admitted() -> str:
    """Exits 0 when the loaded `inet dynia` table admits SSH from the address this push's SSH
    connection comes from (SSH_CONNECTION, set by sshd; `::ffff:` stripped from a mapped IPv4).
    Fails closed: when that address is unknown (no SSH_CONNECTION: a root shell reached through
    `su -` or sudo's env_reset), nothing tells which admin range dynia needs, so only a table
    whose admin sets hold everyone (0.0.0.0/0 and ::/0) is admitted. Otherwise it prints the
    address (or that it is unknown) and the spec key on stderr: a firewall that would lock dynia
    out is refused."""
    return ('a=${SSH_CONNECTION%% *}; a=${a#::ffff:}; if [ -n "$a" ]; then '
            'case $a in *:*) s=admin6;; *) s=admin4;; esac; '
            f'nft get element {FIREWALL_TABLE} $s "{{ $a }}" >/dev/null 2>&1 || {{ '
            'echo "dynia: this push connects from $a, which firewall.admin_ranges does not admit: '
            'the firewall would lock dynia out" >&2; exit 1; }; '
            f'elif ! {{ nft get element {FIREWALL_TABLE} admin4 "{{ 0.0.0.0/0 }}" >/dev/null 2>&1 && '
            f'nft get element {FIREWALL_TABLE} admin6 "{{ ::/0 }}" >/dev/null 2>&1; }}; then '
            'echo "dynia: the address this push connects from is unknown (no SSH_CONNECTION: '
            'sudo or su reset the environment), and firewall.admin_ranges does not admit everyone: '
            'the firewall could lock dynia out" >&2; exit 1; fi')


def pid_alive(pidfile: str) -> str:
    """Exits 0 while the process in that pid file runs."""
    return f'[ -s {pidfile} ] && kill -0 "$(cat {pidfile})" 2>/dev/null'


# The lab's way to start Caddy as its distribution's user (caddy.service: User=caddy,
# AmbientCapabilities=CAP_NET_BIND_SERVICE, HOME its data directory).
AS_CADDY = (f"setpriv --reuid {CADDY_USER} --regid {CADDY_USER} --init-groups --inh-caps +net_bind_service "
            f"--ambient-caps +net_bind_service env HOME=/var/lib/caddy")
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


# Where a node takes one service's copy out of every HAProxy: while DRAIN_DIR/<service> exists,
# Caddy answers that service's health path with 503 (templates/caddy/route.caddy.j2), so each
# HAProxy's check marks this node's server down. DRAIN_DIR/<service>.up holds the sha256 of the
# compose file the running containers were started from. Under /run: a reboot clears both, so a
# node that died mid-drain never stays out of HAProxy.
DRAIN_DIR = P.drain_dir


@dataclass(frozen=True)
class HAProxyTiming:
    """How every node's HAProxy checks each service's servers (templates/haproxy, `default-server`)
    and how long it lets a server answer; a drain's waits are derived from these, not guessed.
    Check intervals in milliseconds, as HAProxy reads them."""
    inter: int = 2000      # between checks of a server that is up
    fastinter: int = 500   # between checks of a server changing state (going down, coming up)
    downinter: int = 1000  # between checks of a server that is down
    fall: int = 2          # failed checks in a row that mark a server down
    rise: int = 2          # passed checks in a row that mark it up again
    server_timeout: int = 60  # s: `timeout server`, the longest a server may stay silent

    @property
    def check_timeout(self) -> int:
        # haproxy.cfg sets no `timeout check`: then one whole check (connect + answer) may take
        # `inter` (HAProxy's configuration manual, "timeout check").
        return self.inter

    @property
    def marked_down_within(self) -> int:
        """ms from the moment a server's health check starts failing until every HAProxy has
        marked it down: a check already in flight may still pass (its timeout), the next one
        starts `inter` after it, and each further failure of the `fall` follows `fastinter` later."""
        return self.check_timeout + self.inter + (self.fall - 1) * self.fastinter

    @property
    def marked_up_within(self) -> int:
        """ms from the moment a down server's check passes again until every HAProxy has marked it
        up: the next check within `downinter`, each further pass of the `rise` `fastinter` later,
        the last answer within the check's timeout."""
        return self.downinter + (self.rise - 1) * self.fastinter + self.check_timeout


HAPROXY_TIMING = HAProxyTiming()


@dataclass(frozen=True)
class Drain:
    """What a drained restart of one service needs (bundle → NodeCommands.compose_up): where its
    app answers on the node and how long a new container may take to answer there."""
    port: int             # the app's host port: Caddy's upstream 127.0.0.1:<port>
    health_path: str      # answers 2xx/3xx once the app is healthy (the spec's health_path)
    ready_timeout: float  # s: the spec's health timeout
    timing: HAProxyTiming = field(default=HAPROXY_TIMING)
    host: str | None = None  # the Host it is asked as (the service's first domain, as Caddy passes it)


def _seconds(ms: int) -> str:
    return f"{ms / 1000:g}"


@dataclass(frozen=True)
class NodeCommands:
    profile: NodeProfile
    # The spec names private registries: every pull (compose's, and the ahead-of-time one) logs
    # in with the node's registry auth slot (dynia.state.registries).
    registry_auth: bool = False

    def _engine_env(self) -> str:
        """The environment that points the container engine at the registry auth slot: Docker
        reads DOCKER_CONFIG/config.json, podman REGISTRY_AUTH_FILE. Only when the spec names a
        registry (podman refuses a REGISTRY_AUTH_FILE that does not exist)."""
        if not self.registry_auth:
            return ""
        return f"DOCKER_CONFIG={P.registry_auth_dir} REGISTRY_AUTH_FILE={P.registry_auth} "

    # --- infra components -------------------------------------------------------------

    def validate(self, component: str) -> str:
        if component == "nftables":
            # The syntax against the live ruleset, then the whole file loaded in a scratch network
            # namespace (the node's own is untouched) to ask it whether this push's address may
            # still reach SSH: refused before it is ever loaded.
            return (f"nft -c -f {P.firewall_rules} && "
                    f"unshare -n sh -c 'nft -f {P.firewall_rules} && {{ {ssh_admitted()}; }}'")
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
        if component == "nftables":
            # One transaction (the file deletes and redefines the table). On systemd nodes the
            # unit loads the same file at every boot, before the network comes up.
            load = f"nft -f {P.firewall_rules}"
            if self.profile.service_manager == "systemd":
                return f"{load} && systemctl daemon-reload && systemctl enable --quiet dynia-firewall.service"
            return load
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
                      # Started as Debian's caddy.service runs it: as `caddy`, allowed to bind
                      # ports below 1024 and nothing else (the pid file made for it first: /run is
                      # root's). Ports are per user: as root, a Caddy holding :80 would let
                      # HAProxy (root) bind it too, and hide an order that fails on a droplet.
                      f"else install -o {CADDY_USER} -g {CADDY_USER} -m 644 /dev/null {P.caddy_pid}; "
                      f"{AS_CADDY} caddy start --config {P.caddyfile} --adapter caddyfile --pidfile {P.caddy_pid} "
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
        `systemctl stop` does, and exits non-zero if it is still running. The firewall's
        stop deletes dynia's table (and, on systemd, no longer loads it at boot)."""
        if component == "nftables":
            delete = f"if nft list table {FIREWALL_TABLE} >/dev/null 2>&1; then nft delete table {FIREWALL_TABLE}; fi"
            if self.profile.service_manager == "systemd":
                return f"systemctl disable --quiet dynia-firewall.service 2>/dev/null; {delete}"
            return delete
        if self.profile.service_manager == "systemd":
            return f"systemctl stop {component}"
        pid = {"haproxy": P.haproxy_pid, "caddy": P.caddy_pid, "keepalived": P.keepalived_pid}[component]
        return (f'if {pid_alive(pid)}; then kill -TERM "$(cat {pid})"; '
                f"for i in $(seq 50); do {pid_alive(pid)} || break; sleep 0.1; done; fi; "
                f"! {{ {pid_alive(pid)}; }}")

    def at_boot(self, component: str, start: bool) -> str:
        """Whether the node's boot starts the component (systemd: its unit enabled; the lab's
        boot, dynia.nodes.lab_power, skips one with a marker). A resized node's keepalived
        waits for dynia's roll, not for the boot: it would take the VIP back before its gate."""
        if self.profile.service_manager == "systemd":
            return f"systemctl {'enable' if start else 'disable'} --quiet {component}"
        marker = f"{P.boot_disabled_dir}/{component}"
        return f"rm -f {marker}" if start else f"mkdir -p {P.boot_disabled_dir} && : > {marker}"

    def running(self, component: str) -> str:
        """Exits 0 while the component runs (HAProxy and Caddy are gated by HTTP instead); the
        firewall "runs" while its table is loaded."""
        if component == "nftables":
            return f"nft list table {FIREWALL_TABLE} >/dev/null 2>&1"
        if self.profile.service_manager == "systemd":
            return f"systemctl is-active --quiet {component}"
        return pid_alive({"haproxy": P.haproxy_pid, "caddy": P.caddy_pid, "keepalived": P.keepalived_pid}[component])

    def firewall_admits_ssh(self) -> str:
        """The health gate's firewall check: the table is loaded, its SSH rules read the admin
        sets, and those admit the address this push connects from (ssh_admitted)."""
        return (f"r=$(nft list chain {FIREWALL_TABLE} input) || exit 1; "
                "for w in 'ip saddr @admin4' 'ip6 saddr @admin6'; do "
                'printf \'%s\\n\' "$r" | grep -qF "tcp dport 22 $w accept" || '
                '{ echo "dynia: the loaded firewall has no SSH rule for $w" >&2; exit 1; }; done; '
                f"{ssh_admitted()}")

    # --- the operator's services --------------------------------------------------------

    def compose(self, service: str, *args: str) -> str:
        return f"{self._engine_env()}{self.profile.compose_command} -f {P.compose_file(service)} {' '.join(args)}"

    def compose_up(self, service: str, drain: Drain | None = None, secrets: tuple[str, ...] = ()) -> str:
        """Start the service, or let it take a new compose file (compose recreates the containers
        whose configuration changed). Without `drain`, a recreated container's in-flight requests
        are lost: right where there is no other copy to send them to (an active-only service,
        a one-node cluster), and when nothing runs yet.

        With `drain` (a routed service every node runs), Kamal's per-host rollout: when the
        service runs here and the compose file differs from the one its containers came from,
        mark it draining (every HAProxy's check of this node's server gets 503 and marks it down
        within the check timing), wait for Caddy's requests to the app to finish (bounded by
        HAProxy's `timeout server`), `compose up`, wait for the app's own health on the node
        (bounded by the spec's health timeout), remove the mark, wait for every HAProxy to mark
        it up again. The mark goes on every exit. Nothing running (a first deploy, a new VIP
        holder) or the same file (a forced re-apply): a plain `compose up`.

        `secrets`: the service's secret slots (dynia.state.app_secrets). Compose sees no change in a
        file a container mounts (its configuration hash covers the path), and a container keeps
        the file it was started with: the apply script replaces a slot (a new inode), so the old
        one stays mounted. The record is a hash over the compose file and each slot's content and
        inode: when it differs from what the running containers started from, they are recreated
        (`--force-recreate`), drained first where a drain applies. A slot edited in place by hand
        (same inode) is put back by a replace, so `repair` recreates them too."""
        up = self.compose(service, "up", "-d")
        if drain is None and not secrets:
            return up
        mark, record = P.drain_marker(service), P.drain_record(service)
        if secrets:
            # A hash over the files' hashes and the slots' inodes: sha256sum or stat fails on a
            # missing slot, and stops here.
            summed = (f"mkdir -p {DRAIN_DIR} && sum=$(sha256sum {P.compose_file(service)} {' '.join(secrets)}) && "
                      f"ino=$(stat -c %i {' '.join(secrets)}) && "
                      "sum=$(printf '%s %s' \"$sum\" \"$ino\" | sha256sum) && sum=${sum%% *} || exit 1; ")
            changed_up = self.compose(service, "up", "-d", "--force-recreate")
        else:
            # A pipeline's status is its last command's: sha256sum's own failure must stop here.
            summed = (f"mkdir -p {DRAIN_DIR} && sum=$(sha256sum < {P.compose_file(service)}) && "
                      "sum=${sum%% *} || exit 1; ")
            changed_up = up
        differs = f'{self.compose_running(service)} && [ "$(cat {record} 2>/dev/null)" != "$sum" ]'
        if drain is None:
            return (f"{summed}if {differs}; then rm -f {record}; {changed_up} && echo \"$sum\" > {record}; "
                    f"else rm -f {record}; {up} && echo \"$sum\" > {record}; fi")
        t = drain.timing
        ready_s = math.ceil(drain.ready_timeout)
        # Caddy's in-flight requests per upstream (admin API, `num_requests`): idle when the
        # answer holds no entry for this app's address with a count other than 0.
        idle = (f"u=$(curl -fsS --max-time 2 http://localhost:{PORTS.caddy_admin}/reverse_proxy/upstreams) && "
                f"! printf '%s\\n' \"$u\" | tr '{{' '\\n' | grep -F '\"address\":\"127.0.0.1:{drain.port}\"' "
                "| grep -qv '\"num_requests\":0[,}]'")
        ready = self.app_answers(drain)
        return (
            f"{summed}if {differs}; then "
            # dash skips EXIT traps on a signal: turn TERM/HUP/INT into an exit that runs it.
            f"trap 'rm -f {mark}' EXIT; trap 'exit 143' TERM HUP INT; : > {mark} || exit 1; "
            f"sleep {_seconds(t.marked_down_within)}; "
            f"end=$(($(date +%s) + {t.server_timeout})); "
            f"until {{ {idle}; }} || [ $(date +%s) -ge $end ]; do sleep 0.1; done; "
            f"rm -f {record}; {changed_up} || exit 1; echo \"$sum\" > {record}; "
            f"end=$(($(date +%s) + {ready_s})); "
            f"until {ready}; do [ $(date +%s) -lt $end ] || "
            f"{{ echo \"dynia: {service} did not answer {drain.health_path} on 127.0.0.1:{drain.port} "
            f"within {ready_s} s of its restart\" >&2; exit 1; }}; sleep 0.2; done; "
            f"rm -f {mark}; sleep {_seconds(t.marked_up_within)}; "
            f"else rm -f {record}; {up} && echo \"$sum\" > {record}; fi")

    def volume(self, action: str, service: str) -> str:
        """Take (attach, check, mount) or release (unmount, detach) a data service's volume
        (templates/node/volume.py): taken before the service starts, released after it stops."""
        return f"python3 {P.volume_script} {action} {service}"

    @staticmethod
    def app_answers(drain: Drain) -> str:
        """Exits 0 when the app answers its health path on the node with 2xx/3xx, asked as its
        domain (an app that allows only its own hosts answers 400 to a bare address)."""
        host = f"-H {shlex.quote('Host: ' + drain.host)} " if drain.host else ""
        return f"curl -fs -o /dev/null --max-time 2 {host}http://127.0.0.1:{drain.port}{drain.health_path}"

    def image_present(self, image: str) -> str:
        """Exits 0 when the image is in the node's container engine (pulled or built there)."""
        quoted = shlex.quote(image)
        if self.profile.container_engine == "podman":
            return f"podman image exists {quoted}"
        return f"docker image inspect {quoted} >/dev/null 2>&1"

    def pull_missing(self, image: str) -> str:
        """Pull the image unless the node has it (what `compose up` would pull on its start), with
        the registry login: a node where the service does not run yet (an active-only service's
        standby) then starts it on a failover without asking a registry."""
        engine = "podman" if self.profile.container_engine == "podman" else "docker"
        return f"{self.image_present(image)} || {self._engine_env()}{engine} pull -q {shlex.quote(image)}"

    def compose_run(self, service: str, container: str, argv: list[str], *, from_stdin: bool = False) -> str:
        """A new container of the service's `container`, with its image, environment, volumes and
        networks, running `argv` once and removed after (`dynia run`, a release command): no
        published port (compose run publishes none, so the running copy keeps its port), no
        dependency started, no TTY. Its exit status is the command's. from_stdin: the compose file
        comes on stdin (a release's new one, before any node has it), kept in a directory of its
        own that goes on every exit; otherwise the node's current one."""
        words = " ".join(shlex.quote(w) for w in argv)
        run = f"run --rm --no-deps -T {shlex.quote(container)} {words}"
        if not from_stdin:
            return self.compose(service, run)
        file = '"$d/docker-compose.yml"'
        command = f"{self._engine_env()}{self.profile.compose_command} -f {file} {run}"
        return (f"d=$(mktemp -d) || exit 125; trap 'rm -rf \"$d\"' EXIT; trap 'exit 143' TERM HUP INT; "
                f"cat > {file} || exit 125; {command}")

    def compose_down(self, service: str) -> str:
        return self.compose(service, "down")

    def compose_remove(self, service: str) -> str:
        """Stop and remove a service's containers without its compose file: a removal deletes
        the file, and a retry (or a file already gone) must still find the containers. The
        rendered file names the project `dynia-<service>` (dynia.spec.compose.wrapped), which Docker
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


# --- tls.mode letsencrypt: HTTP-01 key authorizations (dynia.nodes.challenge) ---------------
# One file per token under PATHS.acme_challenge_dir, 0644 (Caddy serves them as its own user).
# A token is the CA's base64url string; dynia.acme.client checks it, and the node checks it again
# before it becomes a file name. The tokens and key authorizations are public (the CA fetches
# them over plain HTTP), but they travel on stdin, one "token key-authorization" line each, so
# the command itself stays constant.
ACME_TOKEN_CHARS = "A-Za-z0-9_-"


def acme_publish() -> str:
    d = P.acme_challenge_dir
    return ("umask 022 && mkdir -p " + d + " && chmod 0755 " + d + " && "
            'while read -r t k; do case "$t" in ""|*[!' + ACME_TOKEN_CHARS + ']*) '
            'echo "dynia: malformed ACME token" >&2; exit 2;; esac; '
            f"printf '%s' \"$k\" > {d}/.$t.tmp && chmod 0644 {d}/.$t.tmp && mv -f {d}/.$t.tmp {d}/$t "
            "|| exit 1; done")


def acme_withdraw(tokens: list[str]) -> str:
    import re

    bad = [t for t in tokens if not re.fullmatch(f"[{ACME_TOKEN_CHARS}]+", t)]
    if bad or not tokens:
        raise ValueError("ACME tokens are base64url strings")
    return "rm -f " + " ".join(f"{P.acme_challenge_dir}/{t}" for t in tokens)
