"""Where the nodes are: their addresses and the reserved IP, provisioned or planned."""
from __future__ import annotations

from dataclasses import dataclass

# RFC 5737 documentation range: a reserved IP that cannot exist until provision allocates one.
PLANNED_RESERVED_IP = "192.0.2.10"


@dataclass(frozen=True)
class Inventory:
    """Addresses of the nodes and the reserved IP: from the last apply, or planned."""
    nodes: dict[str, tuple[str, str | None]]  # id -> (private, public)
    reserved_ip: str
    planned: bool

    def ssh_host(self, node: str) -> str:
        private, public = self.nodes[node]
        return public or private
