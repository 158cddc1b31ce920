"""What tests do with a lab that the product never does: wait for every node's sshd, run a program
inside a client namespace, pick an address the lab firewall admits on no port."""
from __future__ import annotations

import ipaddress
import socket
import time

from dynia.nodes.lab import Lab, LabError
from dynia.providers.local import lab_edge


def wait_ssh(lab: Lab, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    for node in lab.nodes:
        while True:
            try:
                socket.create_connection((node.ip, 22), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise LabError(f"sshd on {node.id} ({node.ip}) did not come up")
                time.sleep(0.05)


def client_argv(lab: Lab, name: str) -> list[str]:
    """Prefix that runs a program inside the client's network namespace."""
    client = next(c for c in lab.clients if c.name == name)
    return ["ip", "netns", "exec", client.netns]


def lab_outsider(subnet: str) -> str:
    """An address of the lab subnet outside every range the lab firewall allows: two below the
    "Cloudflare" range (no node, VIP or gateway address either)."""
    _, cloudflare = lab_edge(subnet)
    return str(ipaddress.ip_network(cloudflare).network_address - 2)
