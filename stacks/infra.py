"""Phase 2: per node, in rolling order, push HAProxy/Caddy/keepalived and pass the health gate.

The reserved IP is not assigned here, not even on the first `up`: keepalived's notify script
is its one owner. Provision creates it unassigned; each node's infra push carries notify.sh
(with the address) and the provider token, written before keepalived (re)starts, so the first
node to turn MASTER assigns it and every failover moves it. A Pulumi assignment after the
gates would race that script (DigitalOcean answers 422 while its action is pending, and the
provider does not retry) and could later move the address back. Stacks whose earlier `up`
made one still hold a `ReservedIpAssignment` created with `retain_on_delete`: no longer
declared, Pulumi drops it from the state as `delete[retain]` without calling the provider's
Delete, so the live assignment stays where keepalived put it.
"""
from __future__ import annotations

import pulumi

from .inputs import PhaseInputs
from .pushes import chain, export_layers, prepare


def program(inputs: PhaseInputs) -> None:
    cluster, provision, bundles, order = prepare(inputs)
    gates = chain(inputs, provision, bundles, "infra", order, after=None)
    export_layers(bundles, gates)
    pulumi.export("rollingOrder", order)
