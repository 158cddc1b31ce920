"""Phase 1: the provider's nodes, the reserved IP (unassigned), the origin certificate. No SSH yet."""
from __future__ import annotations

import pulumi

from dynia import providers

from .inputs import PhaseInputs


def program(inputs: PhaseInputs) -> None:
    spec = inputs.load().spec
    provider = providers.of(spec)
    nodes, reserved_ip = provider.provision(inputs, spec)
    pulumi.export("nodes", {n: o.apply(lambda v: {"public_ip": v[0], "private_ip": v[1], "droplet_id": str(v[2])})
                            for n, o in nodes.items()})
    pulumi.export("reservedIp", reserved_ip)
    # Recorded so a later run can refuse a region change (it would replace every droplet).
    pulumi.export("region", spec.provider.region)
    pulumi.export("originPem", provider.origin_pem(inputs.project, spec))
    # Generated once and kept here, with the state: every machine pushes the same credentials.
    if inputs.stats_credentials is not None:
        pulumi.export("statsCredentials", pulumi.Output.secret(inputs.stats_credentials))
