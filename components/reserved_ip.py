"""ReservedIp: the cluster's one public address and its first assignment to the MASTER."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi


@dataclass
class ReservedIpArgs:
    region: str


class ReservedIp(pulumi.ComponentResource):
    """Allocation (provision phase), unassigned: no node is healthy yet."""

    address: pulumi.Output[str]

    def __init__(self, name: str, args: ReservedIpArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dynia:index:ReservedIp", name, None, opts)
        import pulumi_digitalocean as do

        ip = do.ReservedIp(f"{name}-ip", region=args.region, opts=pulumi.ResourceOptions(parent=self))
        self.address = ip.ip_address
        self.register_outputs({"address": self.address})


@dataclass
class ReservedIpAssignmentArgs:
    address: pulumi.Input[str]
    droplet_id: pulumi.Input[str]        # the MASTER's droplet
    gates: list[pulumi.Resource]         # every node's infra health gate


class ReservedIpAssignment(pulumi.ComponentResource):
    """Assign the reserved IP to the MASTER after every node's infra health gate passed.

    keepalived moves the address on failover (notify.sh); `ignore_changes` on the droplet id
    keeps Pulumi from ever moving it back.
    """

    def __init__(self, name: str, args: ReservedIpAssignmentArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dynia:index:ReservedIpAssignment", name, None, opts)
        import pulumi_digitalocean as do

        self.assignment = do.ReservedIpAssignment(
            f"{name}-assignment", ip_address=args.address,
            droplet_id=pulumi.Output.from_input(args.droplet_id).apply(int),
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.gates, ignore_changes=["dropletId"]))
        self.register_outputs({})
