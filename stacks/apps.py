"""Phase 3: per service, per node in rolling order, push the compose file and route, start it,
pass its health gate; only then bind its domain in Cloudflare (the first deploy binds DNS)."""
from __future__ import annotations

import pulumi

from dynia.components.dns_records import DnsRecords

from .context import PhaseContext
from .pushes import chain, prepare


def program(ctx: PhaseContext) -> None:
    cluster, provision, bundles, order = prepare(ctx)
    spec = cluster.spec
    previous = None
    for name in sorted(spec.services):
        gates = chain(ctx, provision, bundles, f"service:{name}", order, after=previous)
        previous = gates[-1]
        svc = spec.services[name]
        if svc.domain and spec.provider.kind == "digitalocean":
            DnsRecords(f"{spec.name}-{name}-dns", spec.domain, [svc.domain], provision.get_output("reservedIp"),
                       gates, proxied=spec.tls.mode == "origin")
    pulumi.export("services", sorted(spec.services))
