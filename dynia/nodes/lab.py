"""Lab nodes: real cluster nodes on one Linux machine, as root (the basis of the local provider).

A node is a network namespace (veth `eth0` on a lab bridge, an address in the lab subnet)
plus a persistent mount namespace with its own /run (tmpfs) and overlays over /etc, /opt,
/root and /var, so files written on one node are invisible on the others. Each node runs
sshd on its own address with a generated key; HAProxy, Caddy and keepalived run through the
`local` node profile's commands (pid files, since every node shares the machine's PID
namespace); services run under podman-compose with host networking.

By default a node starts like a fresh droplet after its cloud-init (`--blank` for a bare one):
the distribution packages' own configs, unedited (checked against dpkg's record), with HAProxy
and Caddy already running on them — Caddy's `:80 { file_server }` holding :80, HAProxy on its
default config without dynia's environment — and keepalived stopped (its package ships no
config, and its unit starts only with one). For the first seconds the node is "still
installing": a lab stand-in for `cloud-init` answers `status: running` and the three daemons'
commands answer "not found", as while apt runs; then the stand-in "installs" them, starts
HAProxy and Caddy the lab's way (pid files) and answers `status: done`.

    python -m dynia.nodes.lab up DIR --subnet 10.213.0.0/24 --node misty-owl --node brave-panda
    python -m dynia.nodes.lab down DIR

Teardown kills every process living in a node's network namespace, unmounts and deletes
everything it created; it is safe to run twice and after a failed `up`.
"""
from __future__ import annotations

import ipaddress
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..providers import lab_api, lab_droplets, lab_subnets, lab_volumes
from ..providers.local import LAB_NODE_TOKEN
from ..providers.local import LAB_VOLUME_API as VOLUME_API
from ..providers.local import addresses

APP_IMAGE = "localhost/dynia-lab-app"
# /usr/local: the node's own PATH entries (the cloud-init stand-in and "not installed yet" shims).
# /srv: the data root, where a service's block-storage volume is mounted (one node's, not all).
OVERLAID = ("etc", "opt", "root", "var", "usr/local", "srv")

INSTALLING_SECONDS = 3.0   # the fresh node's "cloud-init still running" window
PACKAGES = ("haproxy", "caddy", "keepalived")
# The lab's stand-ins live under these names on the node (never on the machine itself).
STANDIN_MARKER = "/run/dynia-lab/cloud-init-running"
STANDIN_LOG = "/var/log/dynia-lab-cloud-init.log"
CLOUD_INIT_STANDIN = f"""#!/bin/sh
# dynia LAB STAND-IN for cloud-init (not cloud-init): answers `cloud-init status [--wait]`
# like a droplet's first boot, "running" while {STANDIN_MARKER} exists.
[ "${{1:-}}" = status ] || {{ echo "dynia lab stand-in for cloud-init: only 'status' is supported" >&2; exit 1; }}
if [ "${{2:-}}" = --wait ]; then
    while [ -e {STANDIN_MARKER} ]; do printf .; sleep 0.1; done
    echo
fi
if [ -e {STANDIN_MARKER} ]; then echo "status: running"; else echo "status: done"; fi
"""
NOT_INSTALLED_SHIM = """#!/bin/sh
# dynia LAB STAND-IN: {name} is "not installed yet" (cloud-init is still running apt).
echo "sh: 1: {name}: not found" >&2
exit 127
"""
STATE_FILE = "lab.json"

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:20000", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
# vfs, on every machine: a node's /var is itself an overlay, and podman 4.3 (Debian 12) refuses
# the overlay driver there ("not supported over overlayfs, a mount_program is required"; an
# ext4 graphroot bind-mounted in fails on its whiteouts). vfs copies each layer instead of
# stacking it, which costs nothing for the one-binary busybox image, and needs neither
# fuse-overlayfs nor a particular podman version.
STORAGE_CONF = """\
[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
"""
# What starts the node's sshd (its host key and config written when the node was made): at its
# first start and at every boot (dynia.nodes.lab_power).
START_SSHD = "mkdir -p /run/sshd && /usr/sbin/sshd -f /etc/ssh/sshd_dynia.conf"
SSHD_CONFIG = """\
ListenAddress {ip}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile /run/sshd.pid
AuthorizedKeysFile /root/.ssh/authorized_keys
HostKey /etc/ssh/ssh_host_ed25519_key
MaxStartups 50:30:100
"""


class LabError(RuntimeError):
    pass


def _alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text()), 0)
        return True
    except (OSError, ValueError):
        return False


def missing_tools(with_apps: bool = True) -> list[str]:
    """The programs lab nodes need that this machine lacks."""
    # losetup, mkfs.ext4, fsck.ext4: the lab's block storage (dynia.providers.lab_volumes).
    missing = [b for b in ("ip", "nsenter", "unshare", "sshd", "ssh-keygen", "haproxy", "caddy", "keepalived",
                           "losetup", "mkfs.ext4", "fsck.ext4")
               if not shutil.which(b) and not Path(f"/usr/sbin/{b}").exists()]
    if with_apps:
        missing += [b for b in ("podman", "busybox") if not shutil.which(b)]
        missing += [] if compose_binary() else ["podman-compose"]
    return missing


def compose_binary() -> str | None:
    """podman-compose: on PATH, or beside this interpreter — the virtual environment `.ci/test`
    installs it into, whose bin/ is on no PATH (not this process's, not a node's SSH session's)."""
    found = shutil.which("podman-compose")
    if found:
        return found
    beside = Path(sys.executable).parent / "podman-compose"
    return str(beside) if os.access(beside, os.X_OK) else None


def sh(*argv: str, check: bool = True, input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, input=input, timeout=timeout)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)[:200]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-500:]}")
    return proc


@dataclass
class LabNode:
    id: str
    ip: str
    netns: str
    veth: str

    def mnt(self, lab_dir: Path) -> Path:
        return lab_dir / "ns" / f"{self.id}.mnt"

    def uts(self, lab_dir: Path) -> Path:
        return lab_dir / "ns" / f"{self.id}.uts"


@dataclass
class LabClient:
    """A bare network namespace on the lab bridge (no mounts, no daemons): a client standing
    somewhere on the network, e.g. one of Cloudflare's servers, or an outsider."""
    name: str
    ip: str
    netns: str
    veth: str


@dataclass
class Lab:
    dir: Path
    subnet: str
    prefix: str
    nodes: list[LabNode]
    vip: str
    clients: list[LabClient] = field(default_factory=list)

    # --- naming and persistence ---------------------------------------------------------

    @classmethod
    def plan(cls, directory: Path, subnet: str, node_ids: list[str]) -> "Lab":
        # Interface and namespace names from the subnet, which the lab claims on this machine
        # (lab_subnets): unique as long as the lab runs.
        prefix = lab_subnets.names_prefix(subnet)
        ips, vip = addresses(subnet, node_ids)
        nodes = [LabNode(n, ips[n], f"{prefix}-{n}", f"{prefix}v{i}") for i, n in enumerate(node_ids)]
        return cls(directory.resolve(), subnet, prefix, nodes, vip)

    @classmethod
    def load(cls, directory: Path) -> "Lab":
        data = json.loads((directory / STATE_FILE).read_text())
        return cls(Path(data["dir"]), data["subnet"], data["prefix"],
                   [LabNode(**n) for n in data["nodes"]], data["vip"],
                   [LabClient(**c) for c in data.get("clients", [])])

    def save(self) -> None:
        data = {"dir": str(self.dir), "subnet": self.subnet, "prefix": self.prefix, "vip": self.vip,
                "nodes": [asdict(n) for n in self.nodes], "clients": [asdict(c) for c in self.clients]}
        (self.dir / STATE_FILE).write_text(json.dumps(data, indent=2))

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    @property
    def gateway(self) -> str:
        return str(list(ipaddress.ip_network(self.subnet).hosts())[0])

    @property
    def key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    def node(self, node_id: str) -> LabNode:
        return next(n for n in self.nodes if n.id == node_id)

    # --- entering a node ------------------------------------------------------------------

    def enter_argv(self, node: LabNode) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{node.netns}", f"--mount={node.mnt(self.dir)}",
                f"--uts={node.uts(self.dir)}", "--"]

    def run(self, node_id: str, script: str, check: bool = True, input: bytes | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a shell script inside the node (its network, mounts and hostname)."""
        return sh(*self.enter_argv(self.node(node_id)), "sh", "-c", script, check=check, input=input,
                  timeout=timeout)

    # --- up -------------------------------------------------------------------------------

    def _check_tools(self, with_apps: bool) -> None:
        if os.geteuid() != 0:
            raise LabError("lab nodes need root (network and mount namespaces)")
        missing = missing_tools(with_apps)
        if missing:
            raise LabError(f"missing on this machine: {', '.join(missing)} (bash .ci/test installs them)")

    def _ensure_shared(self) -> None:
        """Directory, nsfs mount point, SSH key and bridge: idempotent."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.save()
        ns = self.dir / "ns"
        ns.mkdir(exist_ok=True)
        if sh("mountpoint", "-q", str(ns), check=False).returncode != 0:
            # nsfs bind mounts need a private mount point to live on.
            sh("mount", "--bind", str(ns), str(ns))
            sh("mount", "--make-private", str(ns))
        if not self.key.exists():
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dynia-lab", "-f", str(self.key))
        if sh("ip", "link", "show", self.bridge, check=False).returncode != 0:
            sh("ip", "link", "add", self.bridge, "type", "bridge")
            sh("ip", "addr", "add", f"{self.gateway}/{ipaddress.ip_network(self.subnet).prefixlen}",
               "dev", self.bridge)
            sh("ip", "link", "set", self.bridge, "up")
        for lower in ("/opt", "/srv"):
            Path(lower).mkdir(exist_ok=True)  # overlay lower dirs on a bare machine
        self._ensure_api()

    def _ensure_api(self) -> None:
        """The lab's stand-in for the provider's reserved-IP API (dynia.providers.lab_api), on the
        gateway: one per lab, running as long as its shared parts."""
        import socket

        pid_file = self.dir / lab_api.PID_FILE
        if _alive(pid_file):
            return
        token = self.dir / lab_api.TOKEN_FILE
        if not token.exists():
            token.write_text(LAB_NODE_TOKEN + "\n")
        with open(self.dir / lab_api.LOG_FILE, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "dynia.providers.lab_api", str(self.dir),
                                     "--host", self.gateway], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)
        pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((self.gateway, lab_api.PORT), timeout=0.5).close()
                return
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log_text = (self.dir / lab_api.LOG_FILE).read_text(errors="replace")[-400:]
                    raise LabError(f"the lab's API stand-in did not start: {log_text}") from None
                time.sleep(0.05)

    def _stop_api(self) -> None:
        pid_file = self.dir / lab_api.PID_FILE
        if _alive(pid_file):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        pid_file.unlink(missing_ok=True)

    def up(self, with_apps: bool = True, only: list[str] | None = None, fresh: bool = True,
           installing: float = INSTALLING_SECONDS) -> "Lab":
        """Bring up every node (or only some: the local provider creates them one by one).
        fresh: start each node like a fresh droplet (package defaults running, cloud-init
        "installing" for `installing` seconds); False: a bare node, nothing running but sshd."""
        self._check_tools(with_apps)
        # Claimed before anything is created: a refused lab touches nothing of the lab holding it
        # (which may have these very names).
        try:
            lab_subnets.claim(self.subnet, self.dir)
        except lab_subnets.SubnetTaken as exc:
            raise LabError(f"{exc}: a lab needs a subnet of its own (set provider.vpc_ip_range to "
                           "a free range, or bring the other lab down)") from None
        wanted = [n for n in self.nodes if only is None or n.id in only]
        try:
            self._ensure_shared()
            image = self._app_image() if with_apps else None
            for node in wanted:
                if self._netns_inode(node) is None:
                    self._up_node(node, image, fresh, installing)
            self._write_known_hosts()
        except BaseException:
            self.down(only=[n.id for n in wanted])
            raise
        return self

    def _plug(self, netns: str, veth: str, ip: str) -> None:
        """A new network namespace on the lab's bridge: its eth0 at `ip`, routed via the gateway."""
        prefixlen = ipaddress.ip_network(self.subnet).prefixlen
        sh("ip", "netns", "add", netns)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
        sh("ip", "link", "set", veth, "master", self.bridge, "up")
        for cmd in (["link", "set", "lo", "up"], ["link", "set", "eth0", "up"],
                    ["addr", "add", f"{ip}/{prefixlen}", "dev", "eth0"],
                    ["route", "add", "default", "via", self.gateway]):
            sh("ip", "-n", netns, *cmd)

    def _up_node(self, node: LabNode, image: Path | None, fresh: bool = True,
                 installing: float = INSTALLING_SECONDS) -> None:
        self._plug(node.netns, node.veth, node.ip)
        upper = self.dir / "nodes" / node.id
        for d in OVERLAID:
            (upper / f"{d.replace('/', '-')}-up").mkdir(parents=True, exist_ok=True)
            (upper / f"{d.replace('/', '-')}-work").mkdir(parents=True, exist_ok=True)
        node.mnt(self.dir).touch()
        node.uts(self.dir).touch()
        overlays = "; ".join(
            f"mount -t overlay overlay -o lowerdir=/{d},upperdir={upper}/{d.replace('/', '-')}-up,"
            f"workdir={upper}/{d.replace('/', '-')}-work /{d}"
            for d in OVERLAID)
        # A private /dev/shm too: podman keeps its lock table there (libpod_lock), and one table
        # shared by every node and every earlier lab hands out locks of containers that are gone
        # ("no container with name … found" on the next compose up).
        setup = (f"hostname {shlex.quote(node.id)}; mount -t tmpfs -o mode=755 tmpfs /run; "
                 f"mount -t tmpfs -o mode=1777 tmpfs /dev/shm; {overlays}; "
                 # crun refuses cgroup v1 with a v2 'unified' hierarchy beside it (hybrid mode).
                 "if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi")
        sh("nsenter", f"--net=/run/netns/{node.netns}", "unshare", f"--mount={node.mnt(self.dir)}",
           f"--uts={node.uts(self.dir)}", "--propagation", "private", "sh", "-ec", setup)
        pub = (self.key.with_suffix(".pub")).read_text()
        # root's shell setup is a fresh Debian root's (/etc/skel), not this machine's: sshd runs
        # every command through bash, which reads ~/.bashrc, and a build machine's (a pyenv
        # rehash under a lock file) made each SSH command wait, and a session cut mid-way left
        # the lock behind for every later one to wait 60 s on.
        self.run(node.id, "set -e; rm -f /etc/ssh/ssh_host_*; ssh-keygen -q -t ed25519 -N '' "
                          "-f /etc/ssh/ssh_host_ed25519_key; mkdir -p /root/.ssh; "
                          "cp /etc/skel/.bashrc /etc/skel/.profile /root/; "
                          "chmod 700 /root/.ssh; cat > /root/.ssh/authorized_keys; "
                          f"cat > /etc/ssh/sshd_dynia.conf <<'EOF'\n{SSHD_CONFIG.format(ip=node.ip)}EOF\n"
                          + START_SSHD, input=pub.encode())
        api = (f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m dynia.providers.lab_volumes "
               f"{shlex.quote(str(self.dir))} --node {shlex.quote(node.id)} \"$@\"\n")
        self.run(node.id, f"mkdir -p /usr/local/sbin && printf '%s' {shlex.quote(api)} > {VOLUME_API} && "
                          f"chmod 755 {VOLUME_API}")
        if image is not None:
            # The node's own /usr/local (an overlay): a droplet has its compose on the SSH
            # session's PATH; here it is this machine's podman-compose, wherever pip put it.
            compose = compose_binary()
            link = (f"ln -sf {shlex.quote(compose)} /usr/local/bin/podman-compose; "
                    if compose and compose != "/usr/local/bin/podman-compose" else "")
            self.run(node.id, "set -e; mkdir -p /etc/containers /usr/local/bin; " + link +
                              f"printf '%s' {shlex.quote(CONTAINERS_CONF)} > /etc/containers/containers.conf; "
                              f"printf '%s' {shlex.quote(STORAGE_CONF)} > /etc/containers/storage.conf; "
                              f"podman import -q --change 'CMD [\"/bin/sh\"]' {image} {APP_IMAGE} >/dev/null")
        if fresh:
            self._fresh_droplet(node, installing)

    def _fresh_droplet(self, node: LabNode, installing: float) -> None:
        """What a droplet looks like when it turns `active`: cloud-init still installing, then the
        packages' defaults running (see the module docstring)."""
        from ..providers.local import PROFILE
        from .commands import NodeCommands

        commands = NodeCommands(PROFILE)
        # The packages' own files, as dpkg installed them: the node sees the machine's /etc
        # through its overlay, so an edited copy on this machine would fake the start state.
        conffiles = sh("dpkg-query", "-W", "-f", "${Conffiles}\n", *PACKAGES).stdout.decode().split("\n")
        wanted = {"/etc/haproxy/haproxy.cfg", "/etc/default/haproxy", "/etc/caddy/Caddyfile"}
        found = {}
        for line in conffiles:
            parts = line.split()
            if len(parts) >= 2 and parts[0] in wanted:
                found[parts[0]] = parts[1]
        if set(found) != wanted:
            raise LabError(f"dpkg records no package default for {sorted(wanted - set(found))}: "
                           "reinstall haproxy and caddy (bash .ci/test installs them)")
        check = "; ".join(f'[ "$(md5sum < {path} | cut -d" " -f1)" = {md5} ] || echo {path}'
                          for path, md5 in sorted(found.items()))
        edited = self.run(node.id, check).stdout.decode().split()
        if edited:
            raise LabError(f"this machine's {', '.join(edited)} differ from the package default: fresh-droplet "
                           "lab nodes start from the packages' files (restore them: apt-get install --reinstall "
                           "-o Dpkg::Options::=--force-confask haproxy caddy)")
        shims = {"haproxy": "/usr/local/sbin/haproxy", "caddy": "/usr/local/bin/caddy",
                 "keepalived": "/usr/local/sbin/keepalived"}
        setup = ["set -e", "mkdir -p /usr/local/bin /usr/local/sbin /run/dynia-lab",
                 # keepalived's package ships no keepalived.conf (and its unit needs one to start).
                 "rm -f /etc/keepalived/keepalived.conf",
                 f"printf '%s' {shlex.quote(CLOUD_INIT_STANDIN)} > /usr/local/bin/cloud-init",
                 "chmod 755 /usr/local/bin/cloud-init", f": > {STANDIN_MARKER}"]
        for name, path in shims.items():
            setup += [f"printf '%s' {shlex.quote(NOT_INSTALLED_SHIM.format(name=name))} > {path}", f"chmod 755 {path}"]
        # "apt finishes": the real binaries appear, the packages' postinst starts HAProxy and
        # Caddy on their default configs (the lab's way: pid files), cloud-init reports done.
        finish = "; ".join([f"sleep {installing}", f"rm -f {' '.join(shims.values())}",
                            commands.reload("haproxy"), commands.reload("caddy"), f"rm -f {STANDIN_MARKER}"])
        setup.append(f"setsid sh -c {shlex.quote(finish)} </dev/null >>{STANDIN_LOG} 2>&1 &")
        self.run(node.id, "\n".join(setup))

    def _app_image(self) -> Path:
        """A tiny image from the machine's static busybox (no registry): sh, httpd, wget."""
        tar = self.dir / "app.tar"
        if tar.exists():
            return tar
        rootfs = self.dir / "app-rootfs"
        (rootfs / "bin").mkdir(parents=True, exist_ok=True)
        busybox = shutil.which("busybox")
        assert busybox is not None  # missing_tools checked it first
        shutil.copy(busybox, rootfs / "bin" / "busybox")
        for applet in ("sh", "httpd", "wget", "echo", "cat", "mkdir", "sleep", "ls", "printf"):
            link = rootfs / "bin" / applet
            if not link.exists():
                link.symlink_to("busybox")
        sh("tar", "-C", str(rootfs), "-cf", str(tar), ".")
        return tar

    def _write_known_hosts(self) -> None:
        lines = []
        for node in self.nodes:
            if self._netns_inode(node) is None:
                continue
            pub = self.run(node.id, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.decode().split()
            lines.append(f"{node.ip} {pub[0]} {pub[1]}")
        self.known_hosts.write_text("\n".join(lines) + "\n")

    # --- client namespaces ----------------------------------------------------------------

    def add_client(self, name: str, ip: str) -> LabClient:
        """A client namespace with `ip` on the lab bridge (default route via the gateway), torn
        down with the lab (down) or on its own (remove_client). The lab must be up."""
        if any(c.name == name for c in self.clients):
            raise LabError(f"lab client {name} exists already")
        taken = {n.ip for n in self.nodes} | {c.ip for c in self.clients} | {self.vip, self.gateway}
        if ip in taken or ipaddress.ip_address(ip) not in ipaddress.ip_network(self.subnet):
            raise LabError(f"lab client {name}: {ip} is taken or outside {self.subnet}")
        index = max([int(c.veth.rsplit("c", 1)[1]) for c in self.clients], default=-1) + 1
        client = LabClient(name, ip, f"{self.prefix}-client-{name}", f"{self.prefix}c{index}")
        self.clients.append(client)
        self.save()  # saved first: a failed setup is still found and removed by down()
        try:
            self._plug(client.netns, client.veth, ip)
        except BaseException:
            self.remove_client(name)
            raise
        return client

    def remove_client(self, name: str) -> None:
        for client in [c for c in self.clients if c.name == name]:
            self._kill_in_netns(client.netns)
            sh("ip", "netns", "del", client.netns, check=False)
            sh("ip", "link", "del", client.veth, check=False)
            self.clients.remove(client)
        if self.dir.exists():
            self.save()

    # --- down -----------------------------------------------------------------------------

    def _netns_inode(self, node: LabNode) -> int | None:
        try:
            return os.stat(f"/run/netns/{node.netns}").st_ino
        except FileNotFoundError:
            return None

    def kill_node_processes(self, node: LabNode) -> int:
        """SIGKILL every process in the node's network or mount namespace (daemons, containers,
        and a container's own processes when it has a network namespace of its own)."""
        return self._kill_in_netns(node.netns, node.mnt(self.dir))

    def _kill_in_netns(self, netns: str, mnt: Path | None = None) -> int:
        inodes = set()
        for path in [Path(f"/run/netns/{netns}")] + ([mnt] if mnt is not None else []):
            try:
                inodes.add(os.stat(path).st_ino)
            except FileNotFoundError:
                continue
        if not inodes:
            return 0
        killed = 0
        # Up to 10 s: a process killed while it waits on a device (a loop volume) dies when that
        # wait ends, not at once.
        for _ in range(200):
            pids = []
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        if any(os.stat(f"/proc/{entry}/ns/{kind}").st_ino in inodes for kind in ("net", "mnt")):
                            pids.append(int(entry))
                    except (FileNotFoundError, ProcessLookupError, PermissionError):
                        continue
            if not pids:
                return killed
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        return killed

    def down(self, only: list[str] | None = None) -> None:
        """Remove the nodes (or only some); the shared parts (and every client namespace) go
        with the last node. A lab whose subnet another lab holds (its up was refused) has
        nothing to remove, and the names it would remove are the other lab's."""
        if lab_subnets.held_elsewhere(self.subnet, self.dir):
            return
        if only is None:
            for client in list(self.clients):
                self.remove_client(client.name)
        for node in self.nodes:
            if only is not None and node.id not in only:
                continue
            self.kill_node_processes(node)
            for f in (node.mnt(self.dir), node.uts(self.dir)):
                sh("umount", "-l", str(f), check=False)
            sh("ip", "netns", "del", node.netns, check=False)
            sh("ip", "link", "del", node.veth, check=False)
        lab_droplets.forget(self.dir, [n.id for n in self.nodes if only is None or n.id in only])
        if any(self._netns_inode(n) is not None for n in self.nodes):
            if self.known_hosts.exists():
                self._write_known_hosts()
            return
        for client in list(self.clients):
            self.remove_client(client.name)
        self._stop_api()
        # The volumes outlive the lab (every loop device released), as a DigitalOcean volume outlives
        # its droplet: `cluster destroy --delete-data` deletes them (Local.after_destroy).
        kept = lab_volumes.release_all(self.dir)
        sh("ip", "link", "del", self.bridge, check=False)
        sh("umount", "-l", str(self.dir / "ns"), check=False)
        if kept:
            for path in self.dir.iterdir():
                if path.name != "volumes":
                    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        lab_subnets.release(self.subnet, self.dir)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m dynia.nodes.lab", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up")
    up.add_argument("dir", type=Path)
    up.add_argument("--subnet", default="10.213.0.0/24")
    up.add_argument("--node", action="append", required=True)
    up.add_argument("--no-apps", action="store_true")
    up.add_argument("--blank", action="store_true",
                    help="a bare node (nothing running but sshd) instead of a fresh droplet's start")
    up.add_argument("--installing-seconds", type=float, default=INSTALLING_SECONDS,
                    help="how long the fresh node's cloud-init stand-in reports 'running'")
    down = sub.add_parser("down")
    down.add_argument("dir", type=Path)
    for p in (up, down):
        p.add_argument("--only", action="append", help="only this node (repeatable)")
    down.add_argument("--subnet", default=None)
    down.add_argument("--node", action="append")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "up":
            lab = Lab.plan(args.dir, args.subnet, args.node).up(with_apps=not args.no_apps, only=args.only,
                                                                fresh=not args.blank,
                                                                installing=args.installing_seconds)
            print(json.dumps({"nodes": {n.id: n.ip for n in lab.nodes if not args.only or n.id in args.only},
                              "vip": lab.vip, "key": str(lab.key)}))
        elif (args.dir / STATE_FILE).exists():
            Lab.load(args.dir).down(only=args.only)
    except LabError as exc:
        print(f"dynia.nodes.lab: {exc}", file=__import__("sys").stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
