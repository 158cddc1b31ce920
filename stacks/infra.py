"""Phase 2: per node, in rolling order, push HAProxy/Caddy/keepalived and pass the health
gate; then assign the reserved IP to the MASTER, after every gate."""
from __future__ import annotations

import pulumi

from dynia.components.reserved_ip import ReservedIpAssignment

from .context import PhaseContext
from .pushes import chain, prepare


def program(ctx: PhaseContext) -> None:
    cluster, provision, bundles, order = prepare(ctx)
    spec = cluster.spec
    gates = chain(ctx, provision, bundles, "infra", order, after=None)
    if spec.provider.kind == "digitalocean":
        master = spec.master_node
        ReservedIpAssignment(f"{spec.name}-rip", provision.get_output("reservedIp"),
                             provision.get_output("nodes").apply(lambda n: n[master]["droplet_id"]), gates)
    pulumi.export("rollingOrder", order)
