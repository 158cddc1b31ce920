"""Phase 3: per service, per node in rolling order, push the compose file and route, start it,
pass its health gate; only then bind its domain (the first deploy binds DNS). A service the
last apply pushed but the spec no longer names is removed first, node by node (stopped, its
compose file and route deleted, Caddy reloaded)."""
from __future__ import annotations

import pulumi

from dynia import providers
from dynia.render.bundle import SERVICE_LAYER, removed_services

from .inputs import PhaseInputs
from .pushes import chain, export_layers, prepare


def program(inputs: PhaseInputs) -> None:
    cluster, provision, bundles, order = prepare(inputs)
    spec = cluster.spec
    provider = providers.of(spec)
    previous = None
    every: list = []
    # Removals first: a service renamed with its domain must give up the route before its
    # successor claims the same host (two sites for one host fail Caddy's validation).
    removed = removed_services(spec, inputs.previous_layers)
    for name in removed:
        gates = chain(inputs, provision, bundles, SERVICE_LAYER + name, order, after=previous)
        every += gates
        previous = gates[-1]
    for name in sorted(spec.services):
        gates = chain(inputs, provision, bundles, f"service:{name}", order, after=previous)
        every += gates
        previous = gates[-1]
        domains = spec.services[name].domains
        if domains:
            provider.dns_records(spec, name, domains, provision.get_output("reservedIp"), gates, renamed_from=removed)
    export_layers(bundles, every)
    pulumi.export("services", sorted(spec.services))
