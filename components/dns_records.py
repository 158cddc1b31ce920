"""DnsRecords: the Cloudflare records of one service, created only after its gates pass."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi

MANAGED = "managed by dynia"


@dataclass
class DnsRecordsArgs:
    zone: str
    domains: list[str]
    address: pulumi.Input[str]           # the reserved IP
    gates: list[pulumi.Resource]         # every node's gate of the service
    proxied: bool = True                 # origin mode: Cloudflare in front


class DnsRecords(pulumi.ComponentResource):
    """One A record per domain, pointing at the reserved IP.

    Cloudflare refuses to create a record whose name already exists, and dynia never asks it
    to overwrite: a record dynia does not own stops the deploy instead of being replaced.
    """

    def __init__(self, name: str, args: DnsRecordsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dynia:index:DnsRecords", name, None, opts)
        import pulumi_cloudflare as cloudflare

        zone_id = cloudflare.get_zone_output(filter={"name": args.zone},
                                             opts=pulumi.InvokeOutputOptions(parent=self)).id
        self.records = []
        for domain in args.domains:
            label = "@" if domain == args.zone else domain[: -len(args.zone) - 1]
            self.records.append(cloudflare.DnsRecord(
                f"{name}-{label.replace('@', 'apex').replace('.', '-')}", zone_id=zone_id, name=domain,
                type="A", content=args.address, proxied=args.proxied, ttl=1, comment=MANAGED,
                opts=pulumi.ResourceOptions(parent=self, depends_on=args.gates)))
        self.register_outputs({"domains": args.domains})
