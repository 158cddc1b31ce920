"""DigitalOcean droplets: regions and sizes, the systemd node profile, the operator's SSH key,
the VPC, droplets, reserved IP (keepalived's notify script assigns it); Cloudflare for the origin certificate
and DNS (the design pairs them: DigitalOcean nodes behind Cloudflare)."""
from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

from .. import images
from ..errors import DyniaError
from .base import NodeProfile, Problem, Provider, ProvisionPlan, SshIdentity
from .cloudflare_api import CLOUDFLARE_TOKEN_ENV
from .do_api import TOKEN_ENV, api_get

# The token written to every node (0600, root) for keepalived's notify script: a separate,
# custom-scoped token, never the operator's DIGITALOCEAN_TOKEN (a full-account token on every
# node would hand the whole account to anyone who gets root on one of them).
NODE_TOKEN_ENV = "DIGITALOCEAN_NODE_TOKEN"
# What notify.sh does with it: POST /v2/reserved_ips/<ip>/actions (assign), which needs
# reserved_ip:update; DigitalOcean makes a token with that scope also carry the scopes it
# requires (https://docs.digitalocean.com/reference/api/scopes/reserved_ip/update).
# A data service's volume moves with the same token (templates/node/volume.py): GET /v2/volumes
# needs block_storage:read, POST /v2/volumes/<id>/actions (attach, detach) block_storage_action:create,
# and polling the action block_storage_action:read.
NODE_TOKEN_SCOPES = ("reserved_ip:update", "reserved_ip:read", "droplet:read", "regions:read", "sizes:read",
                     "actions:read", "image:read", "block_storage:read", "block_storage_action:create",
                     "block_storage_action:read")
NODE_TOKEN_HINT = (f"create a custom-scoped token in DigitalOcean (API → Tokens → Custom Scopes) with only "
                   f"{', '.join(NODE_TOKEN_SCOPES)} and export {NODE_TOKEN_ENV}=… (it is written to every node; "
                   f"never reuse {TOKEN_ENV})")

# RAM in MiB of the common droplet sizes (DigitalOcean size slugs, 2024–2026 catalogue).
SIZE_RAM_MIB: dict[str, int] = {
    "s-1vcpu-512mb-10gb": 512,
    "s-1vcpu-1gb": 1024, "s-1vcpu-1gb-amd": 1024, "s-1vcpu-1gb-intel": 1024,
    "s-1vcpu-2gb": 2048, "s-1vcpu-2gb-amd": 2048, "s-1vcpu-2gb-intel": 2048,
    "s-2vcpu-2gb": 2048, "s-2vcpu-2gb-amd": 2048, "s-2vcpu-2gb-intel": 2048,
    "s-2vcpu-4gb": 4096, "s-2vcpu-4gb-amd": 4096, "s-2vcpu-4gb-intel": 4096,
    "s-4vcpu-8gb": 8192, "s-4vcpu-8gb-amd": 8192, "s-4vcpu-8gb-intel": 8192,
    "s-8vcpu-16gb": 16384, "s-8vcpu-16gb-amd": 16384, "s-8vcpu-16gb-intel": 16384,
    "c-2": 4096, "c-4": 8192, "c-8": 16384,
    "g-2vcpu-8gb": 8192, "g-4vcpu-16gb": 16384,
    "m-2vcpu-16gb": 16384, "m-4vcpu-32gb": 32768,
}
# Ranges DigitalOcean keeps for itself, which a VPC may not use: its "How to Plan Your Custom VPC
# Network" (docs.digitalocean.com/products/networking/vpc/concepts/plan-your-network) lists them
# under "DigitalOcean Reserved IP Addresses and Ranges"; the copy read 2026-12-07 was cut before
# the list, which is taken from a network plan that cites it (10.229, 10.244, 10.245, 10.246).
# A VPC is /16 to /28 (same page).
RESERVED_RANGES = tuple(ipaddress.ip_network(n) for n in ("10.229.0.0/16", "10.244.0.0/16", "10.245.0.0/16",
                                                         "10.246.0.0/24"))
LARGEST_VPC = 16
# `cluster init` gives each cluster a /24 of this pool, picked by its name (vpc_range_for): clear
# of the reserved ranges and of the low 10.x /16s of the droplets' anchor addresses (10.19.0.6 in
# tests/fixtures/digitalocean). What the account already has there, check_account finds.
VPC_POOL = ipaddress.ip_network("10.160.0.0/11")
VPC_TYPE = "digitalocean:index/vpc:Vpc"
VOLUME_TYPE = "digitalocean:index/volume:Volume"
CHECKED_ONLINE = (f"; `dynia plan` checks it against DigitalOcean's API when {TOKEN_ENV} is set, and refuses it "
                  "there if DigitalOcean does not offer it")
REGIONS: tuple[str, ...] = ("ams3", "atl1", "blr1", "fra1", "lon1", "nyc1", "nyc2", "nyc3",
                            "sfo2", "sfo3", "sgp1", "syd1", "tor1")

PROFILE = NodeProfile(
    name="digitalocean",
    private_interface="eth1",
    # The reserved IP reaches a droplet through its anchor address; keeping it on lo as well
    # makes `ip addr` on the MASTER tell the truth about who holds it.
    vip_device="lo",
    vip_prefix=32,
    service_manager="systemd",
    compose_command="docker compose",
    container_engine="docker",
    compose_host_network=False,
    assigns_reserved_ip=True,
    volume_api="digitalocean",
    volume_api_url="https://api.digitalocean.com",
    metadata_url="http://169.254.169.254/metadata/v1",
    # DigitalOcean's udev rules name an attached volume's disk after the volume.
    volume_device_dir="/dev/disk/by-id",
)


def ssh_key_path() -> Path:
    """The operator's key: DYNIA_SSH_KEY, else the first of ~/.ssh/id_{ed25519,ecdsa,rsa}."""
    explicit = os.environ.get("DYNIA_SSH_KEY")
    if explicit:
        return Path(explicit).expanduser()
    for name in ("id_ed25519", "id_ecdsa", "id_rsa"):
        p = Path.home() / ".ssh" / name
        if p.exists():
            return p
    return Path.home() / ".ssh" / "id_ed25519"


def _agent_public_key(agent: str | None) -> str | None:
    """The agent's first public key (`ssh-add -L`), None without an agent or keys in it."""
    import subprocess

    if not agent:
        return None
    try:
        out = subprocess.run(["ssh-add", "-L"], capture_output=True, text=True, timeout=10,
                             env={**os.environ, "SSH_AUTH_SOCK": agent})
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line.strip() for line in out.stdout.splitlines() if line.startswith(("ssh-", "ecdsa-", "sk-"))]
    return lines[0] if out.returncode == 0 and lines else None


def vpc_range_for(cluster: str, taken=()) -> str:
    """The cluster's /24: the sha256 of its name picks one of VPC_POOL's 8,192 (stable: the same
    name gives the same range on every machine); the next free one after it where `taken`
    (ranges already on the account) overlaps."""
    import hashlib

    slots = VPC_POOL.num_addresses // 256
    start = int.from_bytes(hashlib.sha256(cluster.encode()).digest()[:4], "big") % slots
    used = [ipaddress.ip_network(t) for t in taken]
    for i in range(slots):
        net = ipaddress.ip_network((int(VPC_POOL.network_address) + ((start + i) % slots) * 256, 24))
        if not any(net.overlaps(u) for u in used):
            return str(net)
    raise DyniaError("config", f"every /24 of {VPC_POOL} overlaps a VPC of the account",
                     "set provider.vpc_ip_range to a free private range by hand")


def vpc_name(cluster: str) -> str:
    return f"dynia-{cluster}"  # components/network.py names the VPC so


# A size slug names its memory (s-1vcpu-512mb-10gb, s-4vcpu-16gb-320gb-intel, gd-2vcpu-8gb): the
# first size token after the CPUs. What a slug dynia's table lacks is read from.
_SLUG_MEMORY = re.compile(r"-(\d+)(gb|mb)(?=-|$)")


_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_REGION = re.compile(r"[a-z]+[0-9]+")   # ams3, nyc1, sfo2


def slug_ram_mib(size: str) -> int | None:
    m = _SLUG_MEMORY.search(size)
    if m is None:
        return None
    return int(m.group(1)) * (1024 if m.group(2) == "gb" else 1)


class DropletSizes:
    """Node sizes are droplet slugs (the lab borrows them for its resource guard). dynia's table
    dates from its release: a slug it lacks is a warning (`size_warnings`), its memory read from
    the slug; DigitalOcean's API, when a token is present, has the last word (do_catalog)."""

    def check_size(self, provider) -> list[Problem]:
        if not _SLUG.fullmatch(provider.size):
            return [(("provider", "size"), f"{provider.size!r} is not a droplet size slug",
                     "fix the value: lower-case letters, digits and dashes, e.g. s-1vcpu-1gb")]
        if provider.size not in SIZE_RAM_MIB and slug_ram_mib(provider.size) is None:
            return [(("provider", "size"), f"unknown droplet size {provider.size!r}, and its slug names no memory "
                     "(the resource guard needs it)", "fix the value; known sizes: " + ", ".join(sorted(SIZE_RAM_MIB)))]
        return []

    def size_warnings(self, provider) -> list[str]:
        if provider.size in SIZE_RAM_MIB or slug_ram_mib(provider.size) is None:
            return []
        return [f"droplet size {provider.size!r} is not in this dynia's list: the resource guard reads its memory "
                f"from the slug ({slug_ram_mib(provider.size)} MiB){CHECKED_ONLINE}"]

    def ram_mib(self, size: str) -> int:
        ram = SIZE_RAM_MIB.get(size) or slug_ram_mib(size)
        if ram is None:   # check_size refused it first
            raise DyniaError("config", f"unknown droplet size {size!r}, and its slug names no memory",
                             "fix the value; known sizes: " + ", ".join(sorted(SIZE_RAM_MIB)))
        return ram


class DigitalOcean(DropletSizes, Provider):
    kind = "digitalocean"
    profile = PROFILE
    operator_env = (("digitalocean", TOKEN_ENV), ("cloudflare", CLOUDFLARE_TOKEN_ENV))
    node_token_env = NODE_TOKEN_ENV
    node_token_hint = NODE_TOKEN_HINT
    first_use_host_keys = True  # droplets created before host keys were pinned (see Engine.pin_first_use)

    def check(self, provider) -> list[Problem]:
        problems = self.check_size(provider)
        if provider.region is None:
            problems.append((("provider", "region"), "region is required for digitalocean",
                             f"add `region:` (one of: {', '.join(REGIONS)})"))
        elif not _REGION.fullmatch(provider.region):
            problems.append((("provider", "region"), f"{provider.region!r} is not a DigitalOcean region slug",
                             f"fix the value: a slug like sgp1 (this dynia knows {', '.join(REGIONS)})"))
        if provider.image not in images.IMAGES:
            why = images.REFUSED.get(provider.image)
            problems.append((("provider", "image"), f"image {provider.image!r} is not supported"
                             + (f": {why}" if why else ""), f"use one of: {images.supported()}"))
        vpc = ipaddress.ip_network(provider.vpc_ip_range)
        reserved = [str(r) for r in RESERVED_RANGES if vpc.overlaps(r)]
        if reserved:
            problems.append((("provider", "vpc_ip_range"), f"{vpc} overlaps {reserved[0]}, which DigitalOcean "
                             "reserves for itself", "fix the value (`cluster init` picks a free /24 from the name)"))
        elif vpc.prefixlen < LARGEST_VPC:
            problems.append((("provider", "vpc_ip_range"), f"{vpc} is larger than DigitalOcean's largest VPC "
                             f"(/{LARGEST_VPC})", f"fix the value: a /{LARGEST_VPC} to /28"))
        return problems

    def warnings(self, provider) -> list[str]:
        out = self.size_warnings(provider)
        if provider.region is not None and _REGION.fullmatch(provider.region) and provider.region not in REGIONS:
            out.append(f"region {provider.region!r} is not in this dynia's list ({', '.join(REGIONS)}){CHECKED_ONLINE}")
        return out

    def check_account(self, spec, own_vpcs, provisioned=None) -> None:
        """DigitalOcean refuses a size or region it does not offer (do_catalog), and a VPC whose
        range overlaps another VPC of the account (in any region): refused here, as a config
        error, before anything is created. own_vpcs() is the ids of the VPCs the cluster's own
        state holds (asked only when something overlaps); provisioned(), its resources (asked
        only when the size or region is not offered: droplets already at it are kept)."""
        if not os.environ.get(TOKEN_ENV):
            return
        from .do_catalog import check_catalog

        check_catalog(spec.provider, spec.name, list(spec.nodes), provisioned)
        mine = ipaddress.ip_network(spec.provider.vpc_ip_range)
        vpcs = account_vpcs()
        clashes = [v for v in vpcs if _overlaps(v, mine)]
        if clashes:
            own = own_vpcs()
            clashes = [v for v in clashes if v.get("id") not in own]
        if not clashes:
            return
        v = clashes[0]
        default = f", the default network of {v.get('region')}" if v.get("default") else ""
        free = self.free_vpc_range(spec.name, vpcs)
        raise DyniaError("config", f"provider.vpc_ip_range {mine} overlaps the account's VPC {v.get('name')!r} "
                         f"({v.get('ip_range')} in {v.get('region')}{default}): DigitalOcean refuses overlapping "
                         "VPC ranges", f"set provider.vpc_ip_range: {free} in clusters/{spec.name}.yaml "
                         "(free on this account)")

    def free_vpc_range(self, cluster: str, vpcs: list[dict] | None = None) -> str:
        """The name's /24, or the next one no VPC of the account (`vpcs`, else read) overlaps
        (cluster create: the account is at hand, so its spec is one provision can create)."""
        vpcs = account_vpcs() if vpcs is None else vpcs
        return vpc_range_for(cluster, [v["ip_range"] for v in vpcs if _overlaps(v, VPC_POOL)])

    def keep_on_destroy(self, engine, delete_data: bool = False) -> list[str]:
        """A VPC DigitalOcean made its region's default (the first VPC of an account in a region
        becomes it) cannot be deleted: marked retainOnDelete in the provision state, so destroy
        drops it from the state and leaves it on the account, and the operator is told. The data
        volumes are kept the same way (the program retains them), unless `delete_data`."""
        return self._keep_volumes(engine, delete_data) + self._keep_default_vpc(engine)

    def _keep_volumes(self, engine, delete_data: bool) -> list[str]:
        from ..volumes import data_services

        # The state holds a volume only for a data service (a removed `data:` is refused by plan).
        if not delete_data and not data_services(engine.cluster.spec):
            return []
        volumes: dict = {}   # id -> the state's resource, as retain reads them (one export)

        def volume(resource: dict) -> bool:
            if resource.get("type") != VOLUME_TYPE:
                return False
            volumes[resource.get("id")] = resource
            return True

        engine.retain(volume, keep=not delete_data)
        out = []
        for vid, r in volumes.items():
            o = r.get("outputs") or {}
            if delete_data:
                out.append(f"deleted volume {o.get('name')} ({o.get('size')} GiB) and its data")
            else:
                out.append(f"kept volume {o.get('name')} ({o.get('size')} GiB in {o.get('region')}, id {vid}): "
                           "its data outlives the cluster; delete it by hand when it is no longer needed "
                           f"(doctl compute volume delete {vid}): while it exists, a new cluster "
                           f"{engine.cluster.name} in {o.get('region')} cannot create its own")
        return out

    def _keep_default_vpc(self, engine) -> list[str]:
        name = vpc_name(engine.cluster.name)
        defaults = {v["id"]: v for v in account_vpcs() if v.get("name") == name and v.get("default") and v.get("id")}
        if not defaults:
            return []
        kept = engine.retain(lambda r: r.get("type") == VPC_TYPE and r.get("id") in defaults)
        return [f"kept VPC {name} ({defaults[i].get('ip_range')}): DigitalOcean made it the default network of "
                f"{defaults[i].get('region')}, which cannot be deleted (it holds no droplet and costs nothing; "
                "make another VPC the region's default to delete it)" for i in kept]

    def planned_inventory(self, cluster: str, vpc: str, nodes: list[str]):
        from ..inventory import PLANNED_RESERVED_IP, Inventory

        hosts = list(ipaddress.ip_network(vpc).hosts())
        # DigitalOcean hands out VPC addresses from .2 on; the real ones arrive with provision.
        return Inventory({n: (str(hosts[i + 1]), None) for i, n in enumerate(nodes)}, PLANNED_RESERVED_IP,
                         planned=True)

    def ssh_identity(self, project, cluster: str) -> SshIdentity:
        return SshIdentity(ssh_key_path(), None)

    def ssh_key_pair(self, project, cluster: str) -> tuple[str, str]:
        """("" when the ssh-agent signs instead, public key). A passphrase-protected key, or none
        on disk, works through the operator's ssh-agent (SSH_AUTH_SOCK): the private key is then
        never read, and the public key comes from KEY.pub or, without one, the agent's first key."""
        from .base import private_key_encrypted, ssh_agent_socket

        key = ssh_key_path()
        agent = ssh_agent_socket()
        try:
            private = key.read_text()
        except (OSError, UnicodeDecodeError):
            private = None
        if private is not None and private_key_encrypted(private):
            if not agent:
                raise DyniaError("config", f"SSH key {key} is passphrase-protected and no ssh-agent is running",
                                 f"start one and add the key: eval \"$(ssh-agent)\" && ssh-add {key}")
            private = ""
        elif private is None and not agent:
            raise DyniaError("config", f"SSH key {key} is not readable and no ssh-agent is running",
                             "create one (ssh-keygen -t ed25519), point DYNIA_SSH_KEY at it, or ssh-add it to an agent")
        agent_key = None
        if not private:  # the agent signs: it must hold a key
            agent_key = _agent_public_key(agent)
            if not agent_key:
                raise DyniaError("config", "the ssh-agent holds no key (SSH_AUTH_SOCK is set, the key file is "
                                 f"{'passphrase-protected' if private == '' else 'missing'})",
                                 f"add it: ssh-add {key}")
        try:
            public = Path(str(key) + ".pub").read_text().strip()
        except (OSError, UnicodeDecodeError):
            if not agent_key:
                raise DyniaError("config", f"SSH public key {key}.pub is not readable",
                                 f"write it next to the key: ssh-keygen -y -f {key} > {key}.pub") from None
            public = agent_key
        return private or "", public

    def reserved_ip_holder(self, reserved_ip, nodes):
        """GET /v2/reserved_ips/<ip>: the droplet it is assigned to, matched to a node by the
        droplet's own addresses (droplet names are the operator's to change; addresses are not)."""
        return holder_in(api_get(f"/reserved_ips/{reserved_ip}"), reserved_ip, nodes)

    def volume_holder(self, cluster, service, nodes):
        """GET /v2/volumes?name=&region= (its droplet_ids), then that droplet's addresses matched
        to a node, as for the reserved IP."""
        from urllib.parse import urlencode

        from ..volumes import volume_name

        name, region = volume_name(cluster.spec.name, service), cluster.spec.provider.region
        asking = f"ask DigitalOcean where volume {name} is attached"
        data = api_get("/volumes?" + urlencode({"name": name, "region": region}), asking=asking)
        found = [v for v in data.get("volumes") or [] if isinstance(v, dict) and v.get("name") == name]
        if not found:
            raise DyniaError("provider", f"DigitalOcean has no volume {name} in {region}",
                             f"`dynia up --phase provision --cluster {cluster.spec.name}` creates it")
        ids = [i for i in found[0].get("droplet_ids") or [] if isinstance(i, int)]
        if not ids:
            return None
        droplet = api_get(f"/droplets/{ids[0]}", asking=asking).get("droplet") or {}
        return node_of_droplet(droplet, nodes, None, f"droplet {ids[0]}") or f"droplet {ids[0]}"

    def power(self, project, cluster: str):
        from .do_actions import DropletPower

        return DropletPower()

    def node_token(self) -> str | None:
        """DIGITALOCEAN_NODE_TOKEN: what nodes move the reserved IP with. Never DIGITALOCEAN_TOKEN:
        missing is an error, not a fallback, and the same value as the operator's token is refused
        (it would put the full-account token on every node). Asked only where a push needs it
        (plan, up, repair, the engine's preflight); status, drift and verify never ask."""
        return node_token_from_env()

    # --- Pulumi ---------------------------------------------------------------------------

    def data_volumes(self, inputs, spec):
        """One Block Storage volume per data service, in the cluster's region (components/data_volume.py)."""
        from ..components.data_volume import DataVolume, DataVolumeArgs
        from ..volumes import data_services, volume_name

        return {service: DataVolume(f"{spec.name}-{service}-data", DataVolumeArgs(
                    spec.name, service, volume_name(spec.name, service), spec.provider.region, d.size_gb,
                    d.filesystem))
                for service, d in data_services(spec).items()}

    def provision(self, inputs, spec, plan: ProvisionPlan):
        import pulumi

        from ..components.cluster_node import ClusterNode, DropletArgs
        from ..components.network import Network, NetworkArgs
        from ..components.reserved_ip import ReservedIp, ReservedIpArgs

        p = spec.provider
        network = Network(f"{spec.name}-network", NetworkArgs(spec.name, p.region, p.vpc_ip_range,
                                                             inputs.ssh_public_key))
        nodes: dict = {}
        previous: list = list(plan.after)
        # Rolling order (plan.order): droplets are created and updated one at a time (a resize is dynia's roll).
        for node in plan.order:
            n = ClusterNode(node, DropletArgs(spec.name, node, p.region, p.size, p.image, network.vpc_id,
                                              network.ssh_key_fingerprint,
                                              lambda private, public, node=node: plan.user_data(node, private, public),
                                              after=previous))
            previous = [n.droplet]
            # A droplet created before host keys were pinned never got the generated key (user
            # data is ignored on existing droplets): the key it presented on first use, pinned
            # once by the engine (stack config dynia:hostKeys, see Engine.pin_first_use), is its pin.
            first_use = plan.first_use_host_keys.get(node)
            host_key = first_use or n.host_key
            nodes[node] = pulumi.Output.all(n.public_ip, n.private_ip, n.droplet_id, host_key,
                                            "first-use" if first_use else "generated", n.size)
        nodes = {node: nodes[node] for node in spec.nodes}
        return nodes, ReservedIp(f"{spec.name}-rip", ReservedIpArgs(p.region)).address

    def origin_pull(self, inputs, spec):
        """Origin mode: the cluster's own Authenticated Origin Pulls certificate (made and kept in
        the provision state), uploaded as the zone's, the zone-level setting on, and the zone's
        SSL mode strict (all set by provision, before any record points at the nodes). Letsencrypt
        mode proxies nothing: the zone's settings are left as the operator has them."""
        import pulumi

        from ..components.origin_pull import OriginPullCertificate
        from ..components.zone_settings import ZoneSettings, ZoneSettingsArgs
        from ..tls import proxied

        if not proxied(spec.tls.mode):
            return None
        pull = OriginPullCertificate(f"{spec.name}-origin-pull", spec.name)
        ZoneSettings(f"{spec.name}-zone", ZoneSettingsArgs(spec.domain, origin_pull=(pull.certificate,
                                                                                     pull.private_key)))
        return pulumi.Output.all(ca=pull.ca, certificate=pull.certificate)

    def release(self, engine, nodes: list[str] | None) -> None:
        """Lift the protection of the droplets about to be deleted (None: every one, for destroy).

        `pulumi state unprotect` on the provision stack: the only way a protected resource can
        be deleted, and it touches nothing in the cloud. Called by `cluster destroy` and
        `cluster node remove` after their confirmation and snapshot, right before the delete.
        """
        stack = engine.stack("provision")
        urn = "urn:pulumi:{}::dynia::dynia:index:ClusterNode$digitalocean:index/droplet:Droplet::{}-droplet"
        calls = ([["state", "unprotect", "--all", "--yes"]] if nodes is None else
                 [["state", "unprotect", urn.format(stack.name, node), "--yes"] for node in nodes])
        ws = stack.workspace
        for args in calls:
            try:
                ws.pulumi_command.run([*args, "--stack", stack.name], ws.work_dir, dict(ws.env_vars or {}))
            except Exception as exc:
                text = (getattr(exc, "stderr", "") or str(exc)).strip().splitlines()
                if nodes is not None and any("no such resource" in line.lower() for line in text):
                    continue  # never provisioned: nothing to unprotect
                raise DyniaError("engine", f"could not lift the droplets' protection: {text[-1] if text else exc}",
                                 "nothing was deleted; --debug prints the engine's full output and logs it") from None

    def origin_pem(self, project, spec):
        from ..components.origin_certificate import OriginCertificate, OriginCertificateArgs

        return OriginCertificate(f"{spec.name}-origin", OriginCertificateArgs(spec.domain)).pem

    def dns_api(self):
        from .cloudflare_api import CloudflareApi

        return CloudflareApi.from_env()

    def dns_records(self, spec, service: str, domains: list[str], address, gates, renamed_from=()) -> None:
        from ..components.dns_records import DnsRecords, DnsRecordsArgs

        from ..tls import proxied

        DnsRecords(f"{spec.name}-{service}-dns", DnsRecordsArgs(
            spec.domain, list(domains), address, gates, proxied=proxied(spec.tls.mode), cluster=spec.name,
            renamed_from=[f"{spec.name}-{old}-dns" for old in renamed_from]))


def holder_in(data: dict, reserved_ip: str, nodes) -> str | None:
    """The node of `nodes` that the droplet in a `GET /v2/reserved_ips/<ip>` answer is (the lab's
    API stand-in answers in the same shape); None when it names no droplet or none of them."""
    droplet = (data.get("reserved_ip") or {}).get("droplet")
    if not droplet:
        return None
    return node_of_droplet(droplet, nodes, reserved_ip, f"the droplet holding {reserved_ip}")


def node_of_droplet(droplet: dict, nodes, reserved_ip: str | None, which: str) -> str | None:
    """The node whose known addresses the droplet has (droplet names are the operator's to
    change; addresses are not); None when no node has them; two nodes is a conflict."""
    networks = (droplet.get("networks") or {}).get("v4") or []
    addresses = {n.get("ip_address") for n in networks if isinstance(n, dict)} - {reserved_ip, None}
    matches = [n for n, addrs in nodes.items() if addresses & (set(addrs) - {reserved_ip})]
    if len(matches) > 1:  # two nodes with one droplet's address: a conflict, not "no holder"
        raise DyniaError("provider", f"conflict: {which} has an address that {' and '.join(sorted(matches))} both claim",
                         "compare the node addresses in .dynia/cache/<cluster>/outputs.json with the droplets "
                         "(`doctl compute droplet list`); `dynia up --phase provision` refreshes them")
    return matches[0] if matches else None


def node_token_from_env(env=None) -> str:
    env = os.environ if env is None else env
    token = env.get(NODE_TOKEN_ENV)
    if not token:
        raise DyniaError("config", f"{NODE_TOKEN_ENV} is not set (keepalived's notify script on every node moves "
                         "the reserved IP with it)", NODE_TOKEN_HINT)
    if token == env.get(TOKEN_ENV):
        raise DyniaError("config", f"{NODE_TOKEN_ENV} is the same token as {TOKEN_ENV}: the operator's token "
                         "would be written to every node", NODE_TOKEN_HINT)
    return token


def _overlaps(vpc: dict, net) -> bool:
    try:
        return ipaddress.ip_network(str(vpc.get("ip_range")), strict=False).overlaps(net)
    except ValueError:
        return False


def account_vpcs() -> list[dict]:
    """Every VPC of the account (GET /v2/vpcs, page by page)."""
    vpcs: list[dict] = []
    for page in range(1, 101):
        data = api_get(f"/vpcs?per_page=200&page={page}", asking="list the account's VPCs")
        vpcs += [v for v in data.get("vpcs") or [] if isinstance(v, dict)]
        if not ((data.get("links") or {}).get("pages") or {}).get("next"):
            break
    return vpcs
