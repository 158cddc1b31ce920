"""LocalNode: one lab node on this machine (the local provider)."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi


@dataclass
class LocalNodeArgs:
    lab_dir: str
    subnet: str
    nodes: list[str]   # every node of the cluster: addresses derive from the position
    node: str
    python: str = "python3"


class LocalNode(pulumi.ComponentResource):
    """Create brings the lab node up, delete tears it down (dynia.nodes.lab)."""

    public_ip: pulumi.Output[str]
    private_ip: pulumi.Output[str]
    droplet_id: pulumi.Output[str]

    def __init__(self, name: str, args: LocalNodeArgs, opts: pulumi.ResourceOptions | None = None):
        # Formerly dynia:index:LabNode; the alias keeps existing lab stacks' nodes.
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(type_="dynia:index:LabNode")]))
        super().__init__("dynia:index:LocalNode", name, None, opts)
        import shlex

        import pulumi_command as command

        from dynia.providers.lab_api import FIRST_DROPLET_ID
        from dynia.providers.local import addresses

        base = (f"{shlex.quote(args.python)} -m dynia.nodes.lab {{verb}} {shlex.quote(args.lab_dir)} "
                f"--subnet {shlex.quote(args.subnet)} " + " ".join(f"--node {n}" for n in args.nodes)
                + f" --only {args.node}")
        self.command = command.local.Command(
            f"{name}-lab", create=base.format(verb="up"), delete=base.format(verb="down"),
            opts=pulumi.ResourceOptions(parent=self))
        ip = addresses(args.subnet, args.nodes)[0][args.node]
        self.public_ip = self.command.stdout.apply(lambda _: ip)
        self.private_ip = self.public_ip
        # The lab's droplet id: what its API stand-in answers for the node (dynia.providers.lab_api)
        # and what the lab's power and size steps take (dynia.nodes.lab_power).
        droplet = str(FIRST_DROPLET_ID + args.nodes.index(args.node))
        self.droplet_id = self.command.stdout.apply(lambda _: droplet)
        self.register_outputs({"public_ip": self.public_ip, "private_ip": self.private_ip})
