"""Phase 3: per service, per node in rolling order, push the compose file and route, start it,
pass its health gate; only then bind its domain (the first deploy binds DNS)."""
from __future__ import annotations

import pulumi

from dynia import providers

from .inputs import PhaseInputs
from .pushes import chain, prepare


def program(inputs: PhaseInputs) -> None:
    cluster, provision, bundles, order = prepare(inputs)
    spec = cluster.spec
    provider = providers.of(spec)
    previous = None
    for name in sorted(spec.services):
        gates = chain(inputs, provision, bundles, f"service:{name}", order, after=previous)
        previous = gates[-1]
        domain = spec.services[name].domain
        if domain:
            provider.dns_records(spec, name, domain, provision.get_output("reservedIp"), gates)
    pulumi.export("services", sorted(spec.services))
