"""Network: the cluster's private network and the SSH key its droplets trust."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi


@dataclass
class NetworkArgs:
    cluster: str
    region: str
    ip_range: str           # the spec's vpc_ip_range: every private address is in it
    ssh_public_key: str


class Network(pulumi.ComponentResource):
    """A VPC for VRRP unicast, HAProxy → Caddy and the stats port; the operator's SSH key."""

    vpc_id: pulumi.Output[str]
    ssh_key_fingerprint: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dynia:index:Network", name, None, opts)
        import pulumi_digitalocean as do

        # Created at the stack's top level before this component existed: the aliases keep
        # their identity, so an existing cluster's VPC is not replaced.
        def child(old: str) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(name=old, parent=pulumi.ROOT_STACK_RESOURCE)])

        vpc = do.Vpc(f"{args.cluster}-vpc", name=f"dynia-{args.cluster}", region=args.region,
                     ip_range=args.ip_range, opts=child(f"{args.cluster}-vpc"))
        key = do.SshKey(f"{args.cluster}-ssh", name=f"dynia-{args.cluster}", public_key=args.ssh_public_key,
                        opts=child(f"{args.cluster}-ssh"))
        self.vpc_id = vpc.id
        self.ssh_key_fingerprint = key.fingerprint
        self.register_outputs({"vpc_id": self.vpc_id, "ssh_key_fingerprint": self.ssh_key_fingerprint})
