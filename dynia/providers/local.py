"""The local provider: lab nodes on this machine (network namespaces with private mounts, real
sshd, HAProxy, Caddy, keepalived; see dynia.nodes.lab). For tests, demos and contributors:
the same programs and node side as on droplets, with pid files instead of systemd."""
from __future__ import annotations

import ipaddress

from .base import FirewallSources, NodeProfile, Problem, Provider, SshIdentity
from .digitalocean import NODE_TOKEN_ENV, NODE_TOKEN_SCOPES, DropletSizes
from .lab_api import TOKEN_FILE as LAB_API_TOKEN_FILE

# The node's way to the lab's block-storage "API" (dynia.providers.lab_volumes), bound to its
# id: dynia.nodes.lab installs it on each node.
LAB_VOLUME_API = "/usr/local/sbin/dynia-lab-volume"

PROFILE = NodeProfile(
    name="local",
    private_interface="eth0",
    vip_device="eth0",
    vip_prefix=24,
    service_manager="pidfile",
    compose_command="podman-compose",
    container_engine="podman",
    compose_host_network=True,
    # notify.sh assigns it through the lab's stand-in for DigitalOcean's API (dynia.providers.lab_api)
    assigns_reserved_ip=True,
    volume_api="local",
    volume_api_command=LAB_VOLUME_API,
)
# The token the lab's API stand-in accepts (its lab-api-token file): it opens nothing but that
# stand-in, so it is no secret; a test gives the nodes another to see a refused one.
LAB_NODE_TOKEN = "dynia-lab-node-token"


def addresses(subnet: str, node_ids: list[str]) -> tuple[dict[str, str], str]:
    """Node i gets host .11+i of the subnet, the VIP is .100, the bridge .1 (lab_gateway)."""
    hosts = list(ipaddress.ip_network(subnet).hosts())
    return {n: str(hosts[10 + i]) for i, n in enumerate(node_ids)}, str(hosts[99])


def lab_gateway(reserved_ip: str) -> str:
    """This machine's address on the lab bridge, from the lab's VIP (.100 and .1 of one subnet,
    `addresses`): where the lab's API stand-in listens."""
    return str(ipaddress.ip_address(reserved_ip) - 99)


def lab_api_url(gateway: str) -> str:
    from .lab_api import PORT

    return f"http://{gateway}:{PORT}"


def vip_on_interfaces(reserved_ip: str, nodes) -> list[str]:
    """The nodes whose VIP device carries the address (keepalived puts it on the MASTER's)."""
    return sorted(n for n, addrs in nodes.items() if reserved_ip in set(addrs))


def lab_edge(subnet: str) -> tuple[str, str]:
    """(the bridge's gateway address, the lab's "Cloudflare" range): what stands in for
    Cloudflare's edge in the lab firewall (Cloudflare's own addresses cannot reach a lab).
    The gateway is this machine on the lab bridge, where dynia, the tests' clients and the
    host's SSH connect from; the range is the subnet's last /28, which no node, VIP or bridge
    address uses (nodes .11–.15, VIP .100, gateway .1 on a /25 or larger), for a client
    namespace that stands for one of Cloudflare's servers (dynia.nodes.lab.Lab.add_client)."""
    net = ipaddress.ip_network(subnet)
    gateway = str(next(net.hosts()))
    last = list(net.subnets(new_prefix=28))[-1]
    return gateway, str(last)


def lab_host_key(lab_dir: str, ip: str) -> str | None:
    """The host key the lab recorded for the node at `ip` (the lab's known_hosts: "ip type key"),
    None when the lab has none for it."""
    from pathlib import Path

    try:
        lines = (Path(lab_dir) / "known_hosts").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and parts[0] == ip and parts[1] == "ssh-ed25519":
            return f"{parts[1]} {parts[2]}"
    return None


class Local(DropletSizes, Provider):
    kind = "local"
    profile = PROFILE
    private_acme_directory = True   # the lab's ACME server (pebble) runs on this machine

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

    def reserved_ip_holder(self, reserved_ip, nodes):
        """What the lab's API stand-in says (dynia.providers.lab_api: the droplet the node token
        last assigned it to), as DigitalOcean's API would. The VIP on two nodes' interfaces is a
        split brain: an error, whatever the record says."""
        from ..errors import DyniaError
        from .digitalocean import holder_in

        on = vip_on_interfaces(reserved_ip, nodes)
        if len(on) > 1:
            raise DyniaError("provider", f"the VIP {reserved_ip} is on {len(on)} nodes: {', '.join(on)}",
                             "VRRP split brain: check that the nodes reach each other (unicast peers, protocol 112)")
        return holder_in(lab_api_get(lab_api_url(lab_gateway(reserved_ip)), f"/v2/reserved_ips/{reserved_ip}"),
                         reserved_ip, nodes)

    def reserved_ip_api(self, spec) -> tuple[str, str]:
        api = lab_api_url(lab_edge(spec.provider.vpc_ip_range)[0])
        return api, f"{api}/metadata/v1/id"

    def node_token(self) -> str | None:
        return LAB_NODE_TOKEN

    # The lab's token comes from no environment (`context doctor` asks for none); the errors
    # that name it say where it is and what its DigitalOcean counterpart needs.
    node_token_name = "LAB_NODE_TOKEN (dynia/providers/local.py)"
    node_token_hint = (f"the lab's stand-in for DigitalOcean's API (dynia/providers/lab_api.py) accepts only the "
                       f"token in the lab directory's {LAB_API_TOKEN_FILE} file; on DigitalOcean this is "
                       f"{NODE_TOKEN_ENV}, with the scopes {', '.join(NODE_TOKEN_SCOPES)}")

    def volume_holder(self, cluster, service, nodes):
        """The node the lab's block-storage "API" has the volume attached to (dynia.providers.lab_volumes)."""
        from ..errors import DyniaError
        from ..volumes import volume_name
        from . import lab_volumes

        name = volume_name(cluster.spec.name, service)
        try:
            return lab_volumes.show(self.lab_dir(cluster.project, cluster.spec.name), name)["node"]
        except (lab_volumes.VolumeError, OSError, ValueError, KeyError) as exc:
            raise DyniaError("provider", f"the lab cannot say where volume {name} is: {exc}",
                             "`dynia up --phase provision` creates the lab's volumes") from None

    def firewall_sources(self, spec) -> FirewallSources:
        """The lab's edge: this machine (gateway) and the "Cloudflare" client range (lab_edge).
        The machine also reads every node's stats port (the lab tests check its credentials)."""
        gateway, cloudflare = lab_edge(spec.provider.vpc_ip_range)
        return FirewallSources(edge=(f"{gateway}/32", cloudflare),
                               edge_name=f"the lab's stand-in for Cloudflare: this machine ({gateway}) and {cloudflare}",
                               monitors=(f"{gateway}/32",))

    def ssh_identity(self, project, cluster: str) -> SshIdentity:
        lab = self.lab_dir(project, cluster)
        return SshIdentity(lab / "id_ed25519", lab / "known_hosts")

    def ssh_key_pair(self, project, cluster: str) -> tuple[str, str]:
        key = self.ssh_identity(project, cluster).key
        # Before the first provision the lab has no key yet; provision creates it.
        return (key.read_text() if key.exists() else ""), ""

    def origin_pull_for_push(self, project, cluster: str) -> dict[str, str]:
        """The lab's Authenticated Origin Pulls pair ({"ca", "certificate", "private_key"}), made
        once (dynia.tls.origin_pull_pair) and kept in .dynia/secrets/<cluster>.origin-pull (0600),
        as the lab keeps its origin certificate: its nodes trust the CA, its "Cloudflare"
        presents the client certificate (origin_pull_client), as the zone's upload makes
        Cloudflare present it on droplets."""
        import os

        from ..errors import DyniaError
        from ..tls import origin_pull_pair

        shown = os.path.relpath(project.secrets_path(cluster, "origin-pull"), project.root)
        fix = f"delete {shown}: the lab makes a new pair and the next push trusts it"
        data = project.read_secret_json(cluster, "origin-pull", fix, limit=64 * 1024)
        if data is None:
            data = origin_pull_pair(cluster)
            project.write_secret_json(cluster, "origin-pull", data)
        if not (isinstance(data, dict) and all(isinstance(data.get(k), str) and "-----BEGIN " in data[k]
                                               for k in ("ca", "certificate", "private_key"))):
            raise DyniaError("state", f"{shown} is corrupt (expected ca, certificate and private_key PEM)", fix)
        return data

    def origin_pull_client(self, project, cluster: str) -> bytes:
        """Certificate + key (PEM): what the lab's stand-in for Cloudflare presents on 443."""
        pair = self.origin_pull_for_push(project, cluster)
        return (pair["certificate"] + pair["private_key"]).encode()

    def origin_pull(self, inputs, spec):
        """The public half ({"ca", "certificate"}) the provision phase exports (origin mode)."""
        import pulumi

        from ..tls import proxied

        if not proxied(spec.tls.mode):
            return None
        pair = self.origin_pull_for_push(inputs.project, spec.name)
        return pulumi.Output.from_input({"ca": pair["ca"], "certificate": pair["certificate"]})

    def origin_pem_for_push(self, project, cluster: str, domain: str) -> bytes | None:
        from ..tls import self_signed_pem

        path = project.secrets_path(cluster, "origin.pem")
        if path.exists():
            return path.read_bytes()
        pem = self_signed_pem(domain)
        project.write_secret(cluster, "origin.pem", pem)
        return pem

    # --- Pulumi ---------------------------------------------------------------------------

    def data_volumes(self, inputs, spec):
        """One lab volume per data service (components/lab_volume.py), made by the lab's API."""
        from ..components.lab_volume import LabVolume, LabVolumeArgs
        from ..volumes import data_services, volume_name

        return {service: LabVolume(f"{spec.name}-{service}-data", LabVolumeArgs(
                    str(inputs.lab_dir), inputs.python, volume_name(spec.name, service), d.size_gb, d.filesystem))
                for service, d in data_services(spec).items()}

    def after_destroy(self, engine, delete_data: bool) -> list[str]:
        """The lab's nodes are gone and its volumes kept (dynia.providers.lab.Lab.down); with
        --delete-data they go too."""
        from . import lab_volumes

        lab = self.lab_dir(engine.cluster.project, engine.cluster.name)
        kept = sorted((lab / "volumes").glob("*.json")) if (lab / "volumes").is_dir() else []
        if not kept:
            return []
        if delete_data:
            lab_volumes.teardown(lab)
            import shutil

            shutil.rmtree(lab, ignore_errors=True)
            return [f"deleted lab volume {p.stem} and its data" for p in kept]
        return [f"kept lab volume {p.stem} ({p.with_suffix('.img')}): a new lab of this cluster takes it again; "
                f"`dynia cluster destroy --delete-data {engine.cluster.name}` deletes it" for p in kept]

    def provision(self, inputs, spec, plan):
        import pulumi

        from ..components.local_node import LocalNode, LocalNodeArgs
        from .lab_droplets import size_at_provision

        nodes, previous = {}, None
        for node in spec.nodes:
            # One after the other: lab nodes share a bridge that the first one creates.
            n = LocalNode(node, LocalNodeArgs(inputs.lab_dir, spec.provider.vpc_ip_range, spec.nodes, node,
                                                inputs.python),
                          opts=pulumi.ResourceOptions(depends_on=[previous] if previous else list(plan.after)))
            # The lab makes each node's host key when it starts the node and writes the lab's
            # known_hosts: read once the node is up (public_ip resolves after the lab command).
            host_key = n.public_ip.apply(lambda ip, lab=inputs.lab_dir: lab_host_key(lab, ip))
            # The size the lab records for the node (set when it was made), as a droplet's state
            # keeps the size it was created with: dynia's resize roll changes it, never Pulumi.
            size = n.public_ip.apply(lambda _, lab=inputs.lab_dir, node=node: size_at_provision(
                lab, node, spec.provider.size, pulumi.runtime.is_dry_run()))
            nodes[node] = pulumi.Output.all(n.public_ip, n.private_ip, n.droplet_id, host_key, "lab", size)
            previous = n
        return nodes, addresses(spec.provider.vpc_ip_range, spec.nodes)[1]

    def origin_pem(self, project, spec):
        """The lab's stand-in for the Origin CA certificate: the same self-signed PEM that a push
        made without the engine uses (one maker, dynia.tls), kept in .dynia/secrets."""
        import pulumi

        return pulumi.Output.secret(self.origin_pem_for_push(project, spec.name, spec.domain).decode())


def lab_api_get(api: str, path: str, timeout: float = 5.0) -> dict:
    """One read of the lab's API stand-in; every failure typed."""
    import json
    import urllib.error
    import urllib.request

    from ..errors import DyniaError

    try:
        with urllib.request.urlopen(api + path, timeout=timeout) as resp:
            return json.loads(resp.read(1 << 20))
    except (OSError, ValueError) as exc:   # URLError and HTTPError are OSErrors
        raise DyniaError("network", f"the lab's API stand-in at {api} did not answer GET {path}: "
                         f"{getattr(exc, 'reason', exc)}",
                         "the lab starts it with its nodes (dynia.providers.lab_api): `dynia up` the lab again") from None
