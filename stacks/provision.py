"""Phase 1: droplets (or lab nodes), the reserved IP, the origin certificate. No SSH yet."""
from __future__ import annotations

import pulumi

from dynia.components.cluster_node import ClusterNode, DropletArgs, LabNode, LabNodeArgs
from dynia.components.origin_certificate import OriginCertificate
from dynia.components.reserved_ip import ReservedIp

from .context import PhaseContext


def cloud_init(cluster: str, node: str) -> str:
    from dynia.render import _environment

    return _environment(None).get_template("cloud-init/user-data.yaml.j2").render(cluster=cluster, node=node)


def program(ctx: PhaseContext) -> None:
    spec = ctx.load().spec
    nodes: dict[str, pulumi.Output] = {}
    if spec.provider.kind == "local":
        previous = None
        for node in spec.nodes:
            # One after the other: lab nodes share a bridge that the first one creates.
            n = LabNode(node, LabNodeArgs(ctx.lab_dir, spec.provider.vpc_ip_range, spec.nodes, node, ctx.python),
                        opts=pulumi.ResourceOptions(depends_on=[previous] if previous else []))
            nodes[node] = pulumi.Output.all(n.public_ip, n.private_ip, n.droplet_id)
            previous = n
        from dynia.lab import addresses

        reserved_ip: pulumi.Input[str] = addresses(spec.provider.vpc_ip_range, spec.nodes)[1]
    else:
        import pulumi_digitalocean as do

        vpc = do.Vpc(f"{spec.name}-vpc", name=f"dynia-{spec.name}", region=spec.provider.region,
                     ip_range=spec.provider.vpc_ip_range)
        key = do.SshKey(f"{spec.name}-ssh", name=f"dynia-{spec.name}", public_key=ctx.ssh_public_key)
        for node in spec.nodes:
            n = ClusterNode(node, DropletArgs(spec.name, node, spec.provider.region, spec.provider.size,
                                              spec.provider.image, vpc.id, key.fingerprint,
                                              cloud_init(spec.name, node)))
            nodes[node] = pulumi.Output.all(n.public_ip, n.private_ip, n.droplet_id)
        reserved_ip = ReservedIp(f"{spec.name}-rip", spec.provider.region).address
    cert = OriginCertificate(f"{spec.name}-origin", spec.domain, local=spec.provider.kind == "local")
    pulumi.export("kind", spec.provider.kind)
    pulumi.export("nodes", {n: o.apply(lambda v: {"public_ip": v[0], "private_ip": v[1], "droplet_id": str(v[2])})
                            for n, o in nodes.items()})
    pulumi.export("reservedIp", reserved_ip)
    pulumi.export("originPem", cert.pem)
