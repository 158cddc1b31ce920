"""A lab node's size and power, as dynia's resize roll asks a provider for them (dynia.resize.Power).

Lab nodes stand in for droplets, so they have the droplet's contract: a size and a power state
the lab records (dynia.providers.lab_droplets). The engine powers nodes that live on this
machine (Provider.lab_dir) this way.

  shut_down  the node's services stopped as a shutdown stops them (containers, keepalived,
             HAProxy, Caddy; "power_off" when one does not stop in time), then everything left in
             its namespaces killed, its interface down, and what a reboot loses gone: /run and
             /dev/shm (fresh tmpfs), the VIP, the loaded nftables ruleset
  resize     the recorded size (only while off, as DigitalOcean refuses it otherwise)
  power_on   the interface up, then what the droplet's boot starts: sshd, dynia's firewall unit,
             Caddy, HAProxy and keepalived (enabled units: not one NodeCommands.at_boot disabled;
             their configs as the last push left them). Containers are not started: a container
             engine restarts none without a restart policy (the roll starts the node's services)
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import DyniaError
from ..paths import PATHS as P
from ..providers import lab_api, lab_droplets
from ..providers.local import PROFILE
from .commands import COMPONENTS, NodeCommands
from .lab import START_SSHD, STATE_FILE, Lab, sh


class LabPower:
    """dynia.resize.Power for the nodes of one lab."""

    def __init__(self, lab_dir: Path):
        self.dir = Path(lab_dir)

    def _lab(self) -> Lab:
        return Lab.load(self.dir)

    def _node(self, droplet_id: str) -> str:
        state = json.loads((self.dir / STATE_FILE).read_text())
        node = lab_api.droplets(state).get(int(droplet_id)) if str(droplet_id).isdigit() else None
        if node is None:
            raise DyniaError("provider", f"the lab has no droplet {droplet_id}",
                             "run `dynia up --phase provision` (the lab's droplet ids are its API stand-in's)")
        return node["id"]

    def size_of(self, droplet_id: str) -> str | None:
        return (lab_droplets.record(self.dir).get(self._node(droplet_id)) or {}).get("size")

    def shut_down(self, droplet_id: str) -> str:
        node = self._node(droplet_id)
        lab = self._lab()
        commands = NodeCommands(PROFILE)
        # A shutdown stops the container engine's containers, then the units (keepalived first:
        # it gives the VIP up with priority 0 rather than holding it while HAProxy goes).
        stops = ["podman stop -a -t 10 >/dev/null 2>&1 || true",
                 *(commands.stop(c) for c in reversed(COMPONENTS))]
        graceful = lab.run(node, " && ".join(f"{{ {s}; }}" for s in stops), check=False, timeout=90).returncode == 0
        lab.kill_node_processes(lab.node(node))
        netns = lab.node(node).netns
        # What a powered-off machine does not have: the VIP on its interface, a loaded ruleset, a
        # link; and what its next boot starts without: /run and /dev/shm.
        sh("ip", "-n", netns, "addr", "del", f"{lab.vip}/{PROFILE.vip_prefix}", "dev", "eth0", check=False)
        sh("ip", "netns", "exec", netns, "nft", "flush", "ruleset", check=False)
        sh("ip", "-n", netns, "link", "set", "eth0", "down")
        lab.run(node, "umount -l /run; mount -t tmpfs -o mode=755 tmpfs /run; "
                      "umount -l /dev/shm; mount -t tmpfs -o mode=1777 tmpfs /dev/shm")
        lab_droplets.update(self.dir, node, status="off")
        return "shutdown" if graceful else "power_off"

    def resize(self, droplet_id: str, size: str) -> None:
        node = self._node(droplet_id)
        if (lab_droplets.record(self.dir).get(node) or {}).get("status") != "off":
            raise DyniaError("provider", f"the lab refused to resize {node}: it is not powered off",
                             "the roll shuts a node down before its resize; rerun `dynia up`")
        lab_droplets.update(self.dir, node, size=size)

    def power_on(self, droplet_id: str) -> None:
        node = self._node(droplet_id)
        lab = self._lab()
        netns = lab.node(node).netns
        sh("ip", "-n", netns, "link", "set", "eth0", "up")
        sh("ip", "-n", netns, "route", "replace", "default", "via", lab.gateway)
        commands = NodeCommands(PROFILE)
        configs = {"nftables": P.firewall_rules, "caddy": P.caddyfile, "haproxy": P.haproxy_cfg,
                   "keepalived": P.keepalived_conf}
        # Boot order: the firewall unit before the network, then the enabled daemons.
        units = [f"if [ -e {configs[c]} ] && [ ! -e {P.boot_disabled_dir}/{c} ]; then {commands.reload(c)}; fi"
                 for c in ("nftables", *COMPONENTS)]
        lab.run(node, "; ".join([START_SSHD, *units]), timeout=120)
        lab_droplets.update(self.dir, node, status="active")
