"""ClusterNode: one node of a cluster on DigitalOcean (a droplet)."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi


@dataclass
class DropletArgs:
    cluster: str
    node: str
    region: str
    size: str
    image: str
    vpc_id: pulumi.Input[str]
    ssh_key_fingerprint: pulumi.Input[str]
    user_data: str


class ClusterNode(pulumi.ComponentResource):
    """A droplet in the cluster VPC with the SSH key, tags and cloud-init; no SSH yet."""

    public_ip: pulumi.Output[str]
    private_ip: pulumi.Output[str]
    droplet_id: pulumi.Output[str]

    def __init__(self, name: str, args: DropletArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dynia:index:ClusterNode", name, None, opts)
        import pulumi_digitalocean as do

        droplet = do.Droplet(
            f"{name}-droplet", name=f"{args.cluster}-{args.node}", region=args.region, size=args.size,
            image=args.image, vpc_uuid=args.vpc_id, ssh_keys=[args.ssh_key_fingerprint],
            user_data=args.user_data, tags=["dynia", f"dynia-{args.cluster}"], monitoring=True,
            # The droplet is the node; never replace it because cloud-init text changed.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["user_data"]))
        self.public_ip = droplet.ipv4_address
        self.private_ip = droplet.ipv4_address_private
        self.droplet_id = droplet.id
        self.register_outputs({"public_ip": self.public_ip, "private_ip": self.private_ip,
                               "droplet_id": self.droplet_id})
