"""Phase 2: per node, in rolling order, push HAProxy/Caddy/keepalived and pass the health
gate; then the provider assigns the reserved IP to the MASTER, after every gate."""
from __future__ import annotations

import pulumi

from dynia import providers

from .inputs import PhaseInputs
from .pushes import chain, prepare


def program(inputs: PhaseInputs) -> None:
    cluster, provision, bundles, order = prepare(inputs)
    gates = chain(inputs, provision, bundles, "infra", order, after=None)
    first = inputs.holder is None and not inputs.reserved_ip_assigned
    if first:
        # One owner after the first assignment: keepalived's notify script. Pulumi makes only
        # the first one (after every gate); once it was made, or a node is known to hold the
        # address, the program no longer declares it (the resource retains the assignment on
        # delete), so neither an update nor a refresh-then-update can move it back.
        providers.of(cluster.spec).assign_reserved_ip(cluster.spec, _Provisioned(provision), gates)
    # Resolves only when every gate passed (and with them the assignment's dependencies).
    pulumi.export("reservedIpAssigned", pulumi.Output.all(*[g.report for g in gates]).apply(lambda _: True)
                  if first else True)
    pulumi.export("rollingOrder", order)


class _Provisioned:
    """Provision's outputs with the node map always present: a preview before the first
    provision (or after `node add`) plans the assignment to a droplet that does not exist
    yet (id 0) instead of failing; `up` runs provision first, so a real id is always there."""

    def __init__(self, reference: pulumi.StackReference):
        self.reference = reference

    def get_output(self, name: str):
        out = self.reference.get_output(name)
        if name == "nodes":
            return out.apply(lambda n: _DefaultNodes(n if isinstance(n, dict) else {}))
        return out


class _DefaultNodes(dict):
    def __missing__(self, node):
        return {"droplet_id": "0", "public_ip": None, "private_ip": None}
