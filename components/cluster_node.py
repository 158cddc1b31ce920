"""ClusterNode: one node of a cluster on DigitalOcean (a droplet)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pulumi

# Droplet inputs whose change makes DigitalOcean replace the droplet (image, ssh_keys,
# vpc_uuid) or that only matter at first boot (user_data): a spec or key change must never
# replace every node at once, so Pulumi ignores them on existing droplets. A new node gets them.
# `size`: the provider's resize is a hard power-off; dynia's own roll resizes existing droplets
# (dynia.resize: VIP away, drain, shutdown, resize, power on, gate) and then refreshes the state.
IGNORED = ["image", "ssh_keys", "vpc_uuid", "user_data", "size"]


@dataclass
class DropletArgs:
    cluster: str
    node: str
    region: str
    size: str
    image: str
    vpc_id: pulumi.Input[str]
    ssh_key_fingerprint: pulumi.Input[str]
    # (host private key in OpenSSH format, host public key) → the cloud-init user data that
    # installs them (dynia.render.rendering.cloud_init): the droplet's SSH host key is made with the state.
    user_data: Callable[[str, str], str]
    # The previous node's droplet in rolling order (creations and updates one after the other).
    after: list = field(default_factory=list)
    protect: bool = True


class ClusterNode(pulumi.ComponentResource):
    """A droplet in the cluster VPC with the SSH key, tags and cloud-init; no SSH yet.

    Protected: nothing deletes or replaces it by accident (a node dropped from the spec by
    hand, a renamed cluster). `dynia cluster node remove` and `cluster destroy` lift the
    protection of exactly the droplets they delete (DigitalOcean.release) before deleting them.
    """

    public_ip: pulumi.Output[str]
    private_ip: pulumi.Output[str]
    droplet_id: pulumi.Output[str]
    size: pulumi.Output[str]         # as the state records it (the roll's refresh updates it)
    host_key: pulumi.Output[str | None]  # the public SSH host key cloud-init installs ("ssh-ed25519 AAAA…")

    def __init__(self, name: str, args: DropletArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dynia:index:ClusterNode", name, None, opts)
        import pulumi_digitalocean as do
        import pulumi_tls as tls

        # The node's SSH host key, made with the cluster's state (encrypted there): every push
        # pins its public half (host_key), and status/drift read it from the cache. A droplet
        # created before host keys were pinned ignores this (user_data is IGNORED on existing
        # droplets): the engine pins the key it presents, once, on first use and only with the
        # operator's consent (DYNIA_PIN_FIRST_USE=1; Engine.pin_first_use).
        key = tls.PrivateKey(f"{name}-host-key", algorithm="ED25519", opts=pulumi.ResourceOptions(parent=self))
        public = key.public_key_openssh.apply(lambda k: " ".join((k or "").split()[:2]) or None)
        # The private host key is inside: user data is a secret (never in a plan, log or deploy-config/).
        user_data: pulumi.Output[str] = pulumi.Output.secret(  # type: ignore[arg-type]  # Output.secret's own stub
            pulumi.Output.all(key.private_key_openssh, public).apply(lambda k: args.user_data(k[0], k[1])))
        droplet = do.Droplet(
            f"{name}-droplet", name=f"{args.cluster}-{args.node}", region=args.region, size=args.size,
            image=args.image, vpc_uuid=args.vpc_id, ssh_keys=[args.ssh_key_fingerprint],
            user_data=user_data, tags=["dynia", f"dynia-{args.cluster}"], monitoring=True,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, ignore_changes=list(IGNORED),
                                        depends_on=list(args.after)))
        self.droplet = droplet
        self.public_ip = droplet.ipv4_address
        self.private_ip = droplet.ipv4_address_private
        self.droplet_id = droplet.id
        self.size = droplet.size
        self.host_key = public
        self.register_outputs({"public_ip": self.public_ip, "private_ip": self.private_ip,
                               "droplet_id": self.droplet_id, "size": self.size, "host_key": self.host_key})
