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
    providers.of(cluster.spec).assign_reserved_ip(cluster.spec, provision, gates)
    pulumi.export("rollingOrder", order)
