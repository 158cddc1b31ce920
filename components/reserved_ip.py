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
    """The reserved IP's FIRST assignment, to the MASTER, after every node's infra health gate.

    After it, keepalived's notify script owns the assignment (it moves the address on
    failover). Pulumi must be unable to fight it: `ignore_changes` on the droplet id keeps an
    update from moving it back; the infra program declares this resource only while no node
    is known to hold the address, and `retain_on_delete` makes dropping it from the program
    (or from the state, as a refresh does when keepalived moved the address) leave the live
    assignment alone instead of unassigning it.
    """

    def __init__(self, name: str, args: ReservedIpAssignmentArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dynia:index:ReservedIpAssignment", name, None, opts)
        import pulumi_digitalocean as do

        self.assignment = do.ReservedIpAssignment(
            f"{name}-assignment", ip_address=args.address,
            droplet_id=pulumi.Output.from_input(args.droplet_id).apply(int),
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.gates, ignore_changes=["dropletId"],
                                        retain_on_delete=True))
        self.register_outputs({})
