"""DnsRecords: the Cloudflare records of one service, created only after its gates pass."""
from __future__ import annotations

import pulumi

MANAGED = "managed by dynia"


class DnsRecords(pulumi.ComponentResource):
    """One proxied A record (origin mode) per domain, pointing at the reserved IP.

    Cloudflare refuses to create a record whose name already exists, and dynia never asks it
    to overwrite: a record dynia does not own stops the deploy instead of being replaced.
    """

    def __init__(self, name: str, zone: str, domains: list[str], address: pulumi.Input[str],
                 gates: list[pulumi.Resource], proxied: bool = True, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dynia:index:DnsRecords", name, None, opts)
        import pulumi_cloudflare as cloudflare

        zone_id = cloudflare.get_zone_output(filter={"name": zone},
                                             opts=pulumi.InvokeOutputOptions(parent=self)).id
        self.records = []
        for domain in domains:
            label = "@" if domain == zone else domain[: -len(zone) - 1]
            self.records.append(cloudflare.DnsRecord(
                f"{name}-{label.replace('@', 'apex').replace('.', '-')}", zone_id=zone_id, name=domain,
                type="A", content=address, proxied=proxied, ttl=1, comment=MANAGED,
                opts=pulumi.ResourceOptions(parent=self, depends_on=gates)))
        self.register_outputs({"domains": domains})
