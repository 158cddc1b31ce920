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
        providers.of(cluster.spec).assign_reserved_ip(cluster.spec, provision, gates)
    # Resolves only when every gate passed (and with them the assignment's dependencies).
    pulumi.export("reservedIpAssigned", pulumi.Output.all(*[g.report for g in gates]).apply(lambda _: True)
                  if first else True)
    pulumi.export("rollingOrder", order)
