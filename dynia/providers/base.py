"""What a provider is: where nodes live, how they run, how dynia reaches them.

One module per provider (`digitalocean`, `local`) implements this; nothing outside
`dynia/providers/` asks which provider a cluster uses. Adding a provider = one module here
plus its name in `dynia.providers.KINDS`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping

if TYPE_CHECKING:  # no pulumi, no pydantic models at import time
    from ..inventory import Inventory


@dataclass(frozen=True)
class ProvisionPlan:
    """What the provision program gives a provider to create the nodes with: a provider renders
    nothing and reads no stack config itself."""
    order: list[str]                 # the nodes in rolling order (a resize reaches one at a time)
    # (node, private host key, public host key) -> the node's cloud-init user data; the key pair
    # is None until the state made one (dynia.render.rendering.cloud_init)
    user_data: Callable[[str, str | None, str | None], str]
    # node -> the host key pinned on first use (the provision stack's config dynia:hostKeys)
    first_use_host_keys: dict[str, str]
    # what the first node waits for: the data volumes (Provider.data_volumes), so a delete takes
    # the nodes, and with them the volumes' attachments, first
    after: tuple = ()


@dataclass(frozen=True)
class NodeProfile:
    """How a kind of node runs its components. Data only: dynia.nodes.commands builds every
    command a node runs from it (systemd on droplets, pid files in the lab)."""
    name: str
    private_interface: str      # VRRP unicast and the Caddy/stats binds live on this interface
    vip_device: str             # where keepalived puts the VIP on the MASTER
    vip_prefix: int
    service_manager: Literal["systemd", "pidfile"]
    compose_command: str
    container_engine: Literal["docker", "podman"]  # how a service's containers are found without its file
    compose_host_network: bool  # lab: podman without a network stack runs containers on the host network
    assigns_reserved_ip: bool   # notify.sh moves the reserved IP through the provider API
    # How notify.sh moves a service's data volume (templates/node/volume.py): the block-storage
    # API's kind and the node command that reaches it; "" = no block storage dynia can move.
    volume_api: str = ""
    volume_api_command: str = ""
    # digitalocean: the API root the volume actions go to, and the droplet's metadata service
    # (the node's own droplet id); the device the attached volume appears as is named after it.
    volume_api_url: str = ""
    metadata_url: str = ""
    volume_device_dir: str = ""


@dataclass(frozen=True)
class FirewallSources:
    """Where a provider's nodes are reached from, where that is not production's (dynia.render.firewall).
    edge: what stands in for Cloudflare's ranges on 80/443 in origin mode (None: Cloudflare's own,
    dynia/data/cloudflare-ips.json); monitors: besides the nodes themselves, who may read HAProxy's
    stats port. CIDR ranges."""
    edge: tuple[str, ...] | None = None
    edge_name: str = ""
    monitors: tuple[str, ...] = ()


@dataclass(frozen=True)
class SshIdentity:
    """The key dynia logs in with and the host keys it trusts (None: not pinned yet)."""
    key: Path
    known_hosts: Path | None


def private_key_encrypted(text: str) -> bool:
    """Whether a private key file needs a passphrase (then only an ssh-agent can use it):
    OpenSSH's format names its cipher ("none" when clear), PEM marks encryption in its header."""
    import base64
    import binascii
    import struct

    if "-----BEGIN OPENSSH PRIVATE KEY-----" in text:
        body = text.split("-----BEGIN OPENSSH PRIVATE KEY-----", 1)[1].split("-----END", 1)[0]
        try:
            blob = base64.b64decode("".join(body.split()))
            magic = b"openssh-key-v1\0"
            (length,) = struct.unpack(">I", blob[len(magic):len(magic) + 4])
            return blob.startswith(magic) and blob[len(magic) + 4:len(magic) + 4 + length] != b"none"
        except (binascii.Error, struct.error, ValueError):
            return False
    return "-----BEGIN ENCRYPTED PRIVATE KEY-----" in text or "Proc-Type: 4,ENCRYPTED" in text


def ssh_agent_socket() -> str | None:
    """The operator's ssh-agent (SSH_AUTH_SOCK), when its socket exists."""
    import os

    sock = os.environ.get("SSH_AUTH_SOCK")
    return sock if sock and Path(sock).exists() else None


Problem = tuple[tuple, str, str]  # (spec key path, message, hint), as dynia.spec.model.cross_check


class Provider(ABC):
    """The abstract methods are what every provider must answer; the others carry the answer of
    a provider that does not need them (no lab, no node token, nothing to unprotect)."""

    kind: str
    profile: NodeProfile
    # (API, environment variable) the operator's machine needs to plan and apply (checked up front).
    operator_env: tuple[tuple[str, str], ...] = ()
    # The environment variable of the separate, narrowly scoped token written to nodes
    # (node_token); None where nodes get no token. `context doctor` tells it from operator_env's.
    node_token_env: str | None = None
    node_token_hint: str = ""  # how to create it (the scopes it needs)

    @property
    def node_token_name(self) -> str | None:
        """How errors name the node token (its environment variable where it comes from one)."""
        return self.node_token_env
    # Nodes made before dynia pinned host keys get theirs pinned on first use (Engine.pin_first_use).
    first_use_host_keys: bool = False
    # tls.acme_directory may name a loopback or private address: only where the CA is a test
    # server on the operator's own machine or network (the lab's pebble). Elsewhere such a URL
    # is a mistake at best, and at worst points dynia's requests at the metadata service.
    private_acme_directory: bool = False

    # --- the spec -------------------------------------------------------------------------
    @abstractmethod
    def check(self, provider: Any) -> list[Problem]:
        """Rules on `provider:` that depend on the kind (regions, sizes)."""

    def warnings(self, provider: Any) -> list[str]:
        """What `plan` and `render` say about `provider:` without refusing it (a slug this dynia's
        lists do not know, which the provider's API may still offer)."""
        return []

    @abstractmethod
    def ram_mib(self, size: str) -> int:
        """The memory of a node of this size (the resource guard's budget)."""

    # --- addresses and access ---------------------------------------------------------
    @abstractmethod
    def planned_inventory(self, cluster: str, vpc: str, nodes: list[str]) -> "Inventory":
        """Addresses before (or without) a provision: what render uses until outputs exist."""

    def lab_dir(self, project, cluster: str) -> Path | None:
        """Where this machine keeps the cluster's nodes (the local lab); None for a cloud."""
        return None

    @abstractmethod
    def ssh_identity(self, project, cluster: str) -> SshIdentity:
        """The key dynia's own SSH (status, node remove) logs in with, and the pinned host keys."""

    @abstractmethod
    def ssh_key_pair(self, project, cluster: str) -> tuple[str, str]:
        """(private key text, public key text) for the engine; a typed error if unreadable."""


    @abstractmethod
    def reserved_ip_holder(self, reserved_ip: str, nodes: Mapping[str, Iterable[str]]) -> str | None:
        """Which node holds the reserved IP right now, as the provider sees it (read live, no Pulumi).

        nodes: node id → the IPv4 addresses that node has: its public and private address (the
        cache's outputs) plus those read live on its VIP device (the `addresses` fact, dynia.nodes
        .facts; leave them out for a node that did not answer). Each provider uses what it trusts:
        DigitalOcean asks its API which droplet has the address and matches the droplet's own
        addresses; the lab asks its stand-in for that API (dynia.providers.lab_api).
        Returns the node id; None when no node of `nodes` holds it (unassigned, or elsewhere).
        Raises DyniaError (`provider` or `network`) when the provider cannot tell.
        Used by `dynia status` and `dynia infra verify`."""

    def volume_holder(self, cluster, service: str, nodes: Mapping[str, Iterable[str]]) -> str | None:
        """Which node the provider says the data service's volume is attached to right now (read
        live; nodes as for reserved_ip_holder); None when attached nowhere; "droplet <id>" when
        attached to a machine that is no node of the cluster. Raises DyniaError when it cannot tell
        (no such volume, no answer). Used by `dynia status` and `dynia infra verify`."""
        from ..errors import DyniaError

        raise DyniaError("config", f"the {self.kind} provider has no block storage", "remove services.<name>.data")

    def power(self, project, cluster: str):
        """The power and size steps of the cluster's nodes (dynia.resize.Power); None where the
        provider has none (the lab's nodes are powered the lab's way: dynia.nodes.lab_power)."""
        return None

    # --- what nodes need ------------------------------------------------------------------
    def reserved_ip_api(self, spec) -> tuple[str, str]:
        """(the API base URL notify.sh assigns the reserved IP through, the metadata URL that
        answers the node's own droplet id): DigitalOcean's by default."""
        return "https://api.digitalocean.com", "http://169.254.169.254/metadata/v1/id"

    def node_token(self) -> str | None:
        """The token notify.sh moves the reserved IP with (None where nothing moves it)."""
        return None

    def firewall_sources(self, spec) -> FirewallSources:
        """Stand-ins for the firewall's sources (dynia.render.firewall): none on a cloud, where
        Cloudflare's edge really connects and only the nodes read each other's stats."""
        return FirewallSources()

    def origin_pem_for_push(self, project, cluster: str, domain: str) -> bytes | None:
        """The certificate a push made without the engine fills its slot with (lab tests)."""
        return None

    def origin_pull_for_push(self, project, cluster: str) -> dict[str, str] | None:
        """The Authenticated Origin Pulls pair ({"ca", "certificate", "private_key"}) a push made
        without the engine takes its CA from (lab tests); None: only the provision state has it."""
        return None

    # --- Pulumi programs (pulumi is imported inside, never at CLI start) ------------------
    def data_volumes(self, inputs, spec) -> dict[str, Any]:
        """Create each data service's block-storage volume: {service: resource with a `record`
        (Output[{"id", "name", "size_gb", "filesystem"}], the provision phase's `volumes` output)}.
        The nodes are created after them, so a delete takes the nodes (and their attachments)
        first. {} where no Pulumi resource holds the volumes."""
        return {}

    @abstractmethod
    def provision(self, inputs, spec, plan: ProvisionPlan) -> tuple[dict, Any]:
        """Create the nodes (`plan`: their order, user data, pins): ({node: Output[(public_ip, private_ip, id, host_key, host_key_source)]},
        reserved_ip). host_key: the node's SSH host public key ("ssh-ed25519 AAAA…") that every
        connection pins; host_key_source: generated | first-use | lab."""

    def origin_pull(self, inputs, spec):
        """Output[{"ca", "certificate"}] (public PEM) of the cluster's Authenticated Origin Pulls
        client certificate, made and kept in the provision state and presented by the edge;
        None when nothing is proxied (letsencrypt mode)."""
        return None

    @abstractmethod
    def origin_pem(self, project, spec):
        """Output[str], secret: the certificate and key HAProxy serves (*.domain and the apex)."""

    def release(self, engine, nodes: list[str] | None) -> None:
        """Before a delete: let the engine delete these nodes (None: every node, for destroy).
        Providers that protect their nodes against accidental deletion lift it here."""

    def check_account(self, spec, own_vpcs, provisioned=None) -> None:
        """Before a provision is previewed or applied: what the account would refuse (a typed
        `config` error), with nothing created yet. own_vpcs(): the ids of the networks the
        cluster's own state holds; provisioned(): its resources."""

    def keep_on_destroy(self, engine, delete_data: bool = False) -> list[str]:
        """Before destroy: mark what the cloud will not let go of, and the data volumes unless
        `delete_data`, to be kept (dropped from the state, left in the cloud); one line each
        saying what was kept and why (printed after the destroy)."""
        return []

    def after_destroy(self, engine, delete_data: bool) -> list[str]:
        """After destroy: what the provider keeps or deletes outside the state (the lab's volumes)."""
        return []

    def dns_api(self):
        """tls.mode letsencrypt: the zone's DNS API, through which DNS-01 validates the names
        without a DNS record yet (dynia.operations.certs.default_dns wraps it in a dynia.acme.dns01.Dns01), or
        None — no DNS API here (the lab: its tests bring pebble-challtestsrv's), every name is
        validated over HTTP-01."""
        return None

    def dns_records(self, spec, service: str, domains: list[str], address, gates, renamed_from=()) -> None:
        """After every gate of the service: one DNS record per domain. `renamed_from`: services the last
        apply had and the spec no longer names (a rename keeps a record created under the old name)."""
