"""The local provider: lab nodes on this machine (network namespaces with private mounts, real
sshd, HAProxy, Caddy, keepalived; see dynia.providers.lab). For tests, demos and contributors:
the same programs and node side as on droplets, with pid files instead of systemd."""
from __future__ import annotations

import ipaddress

from .base import NodeProfile, Problem, Provider, SshIdentity
from .digitalocean import DropletSizes

PROFILE = NodeProfile(
    name="local",
    private_interface="eth0",
    vip_device="eth0",
    vip_prefix=24,
    service_manager="pidfile",
    compose_command="podman-compose",
    container_engine="podman",
    compose_host_network=True,
    assigns_reserved_ip=False,
)


def addresses(subnet: str, node_ids: list[str]) -> tuple[dict[str, str], str]:
    """Node i gets host .11+i of the subnet, the VIP is .100, the bridge .1."""
    hosts = list(ipaddress.ip_network(subnet).hosts())
    return {n: str(hosts[10 + i]) for i, n in enumerate(node_ids)}, str(hosts[99])


class Local(DropletSizes, Provider):
    kind = "local"
    profile = PROFILE

    def check(self, provider) -> list[Problem]:
        # Lab nodes stand in for droplets: the size only feeds the resource guard.
        problems = self.check_size(provider)
        if ipaddress.ip_network(provider.vpc_ip_range).num_addresses < 128:
            problems.append((("provider", "vpc_ip_range"), "the lab needs a /25 or larger (nodes .11+, VIP .100)",
                             "use a range like 10.213.0.0/24"))
        return problems

    def planned_inventory(self, cluster: str, vpc: str, nodes: list[str]):
        from ..inventory import Inventory

        # The lab assigns exactly these: they are real, not planned.
        ips, vip = addresses(vpc, nodes)
        return Inventory({n: (ip, ip) for n, ip in ips.items()}, vip, planned=False)

    def lab_dir(self, project, cluster: str):
        return project.lab_dir(cluster)

    holder_read_from_nodes = True

    def reserved_ip_holder(self, reserved_ip, nodes):
        """The node whose interface carries the VIP (keepalived puts it there; nothing else moves it).
        Two nodes with the address is a split brain: an error, not a guess."""
        from ..errors import DyniaError

        holders = sorted(n for n, addrs in nodes.items() if reserved_ip in set(addrs))
        if len(holders) > 1:
            raise DyniaError("provider", f"the VIP {reserved_ip} is on {len(holders)} nodes: {', '.join(holders)}",
                             "VRRP split brain: check that the nodes reach each other (unicast peers, protocol 112)")
        return holders[0] if holders else None

    def ssh_identity(self, project, cluster: str) -> SshIdentity:
        lab = self.lab_dir(project, cluster)
        return SshIdentity(lab / "id_ed25519", lab / "known_hosts")

    def ssh_key_pair(self, project, cluster: str) -> tuple[str, str]:
        key = self.ssh_identity(project, cluster).key
        # Before the first provision the lab has no key yet; provision creates it.
        return (key.read_text() if key.exists() else ""), ""

    def origin_pem_for_push(self, project, cluster: str, domain: str) -> bytes | None:
        from ..tls import self_signed_pem

        from ..store import write_atomic

        path = project.secrets_path(cluster, "origin.pem")
        if path.exists():
            return path.read_bytes()
        pem = self_signed_pem(domain)
        project.ensure_runtime()
        write_atomic(path, pem, mode=0o600)
        return pem

    # --- Pulumi ---------------------------------------------------------------------------

    def provision(self, inputs, spec):
        import pulumi

        from ..components.local_node import LocalNode, LocalNodeArgs

        nodes, previous = {}, None
        for node in spec.nodes:
            # One after the other: lab nodes share a bridge that the first one creates.
            n = LocalNode(node, LocalNodeArgs(inputs.lab_dir, spec.provider.vpc_ip_range, spec.nodes, node,
                                                inputs.python),
                          opts=pulumi.ResourceOptions(depends_on=[previous] if previous else []))
            nodes[node] = pulumi.Output.all(n.public_ip, n.private_ip, n.droplet_id)
            previous = n
        return nodes, addresses(spec.provider.vpc_ip_range, spec.nodes)[1]

    def origin_pem(self, project, spec):
        """The lab's stand-in for the Origin CA certificate: the same self-signed PEM that a push
        made without the engine uses (one maker, dynia.tls), kept in .dynia/secrets."""
        import pulumi

        return pulumi.Output.secret(self.origin_pem_for_push(project, spec.name, spec.domain).decode())
