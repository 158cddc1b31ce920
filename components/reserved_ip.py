"""ReservedIp: the cluster's one public address, created unassigned.

Its assignment has one owner from the very first `up`: keepalived's notify script, on the
node that turns MASTER (templates/keepalived/notify.sh.j2). No Pulumi resource assigns it —
an assignment made by Pulumi after the infra gates raced the notify script of the node that
had just become MASTER (DigitalOcean answers 422 while an action is pending; the provider does
not retry) and, declared again, could move the address back after a failover.
"""
from __future__ import annotations

from dataclasses import dataclass

import pulumi


@dataclass
class ReservedIpArgs:
    region: str


class ReservedIp(pulumi.ComponentResource):
    """Allocation (provision phase), unassigned: no node runs keepalived yet."""

    address: pulumi.Output[str]

    def __init__(self, name: str, args: ReservedIpArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dynia:index:ReservedIp", name, None, opts)
        import pulumi_digitalocean as do

        # No droplet_id: giving one would make Pulumi assign it. ignore_changes: after a refresh
        # (`state revert` runs one) the state holds the droplet keepalived assigned it to, and
        # an update must not "correct" that back to no droplet, i.e. unassign it.
        ip = do.ReservedIp(f"{name}-ip", region=args.region,
                           opts=pulumi.ResourceOptions(parent=self, ignore_changes=["dropletId"]))
        self.address = ip.ip_address
        self.register_outputs({"address": self.address})
