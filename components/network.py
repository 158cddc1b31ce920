"""Network: the cluster's private network and the SSH key its droplets trust."""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import pulumi


@dataclass
class NetworkArgs:
    cluster: str
    region: str
    ip_range: str           # the spec's vpc_ip_range: every private address is in it
    ssh_public_key: str


def md5_fingerprint(public_key: str) -> str:
    """DigitalOcean's key fingerprint: the MD5 of the key blob, as colon-separated hex."""
    blob = base64.b64decode(public_key.split()[1])
    digest = hashlib.md5(blob).hexdigest()  # noqa: S324 (an identifier DigitalOcean defines, not a security use)
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


class Network(pulumi.ComponentResource):
    """A VPC for VRRP unicast, HAProxy → Caddy and the stats port; the operator's SSH key.

    DigitalOcean refuses a public key already on the account (422 "SSH Key is already in
    use") — the usual case for an operator's own key. A key on the account under another name
    is reused by its fingerprint; only a key that is not there yet (or is this cluster's own,
    `dynia-<cluster>`, so a later run keeps managing it) is created here.
    """

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
        own_name = f"dynia-{args.cluster}"
        fingerprint = md5_fingerprint(args.ssh_public_key)
        on_account = [k for k in (do.get_ssh_keys().ssh_keys or []) if k.fingerprint == fingerprint]
        if on_account and all(k.name != own_name for k in on_account):
            self.ssh_key_fingerprint = pulumi.Output.from_input(fingerprint)
        else:
            key = do.SshKey(f"{args.cluster}-ssh", name=own_name, public_key=args.ssh_public_key,
                            opts=child(f"{args.cluster}-ssh"))
            self.ssh_key_fingerprint = key.fingerprint
        self.vpc_id = vpc.id
        self.register_outputs({"vpc_id": self.vpc_id, "ssh_key_fingerprint": self.ssh_key_fingerprint})
