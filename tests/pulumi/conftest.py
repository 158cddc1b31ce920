"""Pulumi programs under pulumi.runtime.set_mocks: the resource graph, recorded as registered.

A MockMonitor subclass records what Pulumi itself sends for each resource — its declared
dependencies (URNs) and ignoreChanges — so the tests read the real graph, not our intent.
"""
from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pytest
from pulumi.runtime.mocks import MockMonitor

# A failed gate (an exception in new_resource) leaves Pulumi-internal futures whose errors are
# never retrieved; asyncio logs each one when it is collected — at interpreter exit that logging
# crashes CPython 3.11's traceback formatter. The failure itself is asserted by the tests.
logging.getLogger("asyncio").setLevel(logging.CRITICAL)

REPO = Path(__file__).resolve().parents[2]
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"

HOST_KEYS = {"misty-owl": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGmt3qYqL4nKkQ2xXw0m3o3h6b9tqPq8S4cNn2x3mZ1a",
             "brave-panda": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq7s1gR0v9m2rJc5aT8qZlP3wYk6dN4hX2bV9uE0fLc"}
NODES = {"misty-owl": {"public_ip": "198.51.100.11", "private_ip": "10.110.0.11", "droplet_id": "1001",
                       "host_key": HOST_KEYS["misty-owl"], "host_key_source": "generated"},
         "brave-panda": {"public_ip": "198.51.100.12", "private_ip": "10.110.0.12", "droplet_id": "1002",
                         "host_key": HOST_KEYS["brave-panda"], "host_key_source": "generated"}}
ORIGIN_PEM = "-----BEGIN CERTIFICATE-----\nMIIBtestcert\n-----END CERTIFICATE-----\n" \
             "-----BEGIN PRIVATE KEY-----\nMIGHorigin-key-secret-material\n-----END PRIVATE KEY-----\n"
# provision's public `originPull` output: the cluster's origin-pull CA and client certificate.
ORIGIN_PULL = {"ca": "-----BEGIN CERTIFICATE-----\nMIIBtestca\n-----END CERTIFICATE-----\n",
               "certificate": "-----BEGIN CERTIFICATE-----\nMIIBtestclient\n-----END CERTIFICATE-----\n"}
PROVIDER_TOKEN = "dop_v1_test_token_value_123456"


def is_secret(value) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def plain_strings(value):
    """Every string in an input tree that is *not* inside a secret."""
    if is_secret(value):
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from plain_strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from plain_strings(v)


@dataclass
class Registered:
    typ: str
    name: str
    urn: str
    inputs: dict
    dependencies: list[str]
    ignore_changes: list[str]
    started: float = 0.0
    finished: float = 0.0
    outputs: dict = field(default_factory=dict)   # register_outputs (a stack's exports), raw
    retain_on_delete: bool = False
    parent: str = ""                                # the parent's URN, as registered
    aliases: list[str] = field(default_factory=list)  # each alias as the URN the engine resolves it to


@dataclass
class GraphMocks(pulumi.runtime.Mocks):
    fail: set[str] = field(default_factory=set)       # resource names whose creation raises (a failed gate)
    delay: float = 0.0                                # seconds each command resource "takes"
    provision_outputs: dict | None = None   # None: two provisioned nodes; {}: before the first provision
    created: dict[str, Registered] = field(default_factory=dict)
    references: list[str] = field(default_factory=list)  # StackReference names, as registered
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new_resource(self, args):
        if args.typ == "pulumi:pulumi:StackReference":
            with self.lock:
                self.references.append(args.name)
            return args.name, {"name": args.name, "outputs": self.provision_outputs,
                               "secretOutputNames": ["originPem", "statsCredentials"]}
        started = time.monotonic()
        if args.typ.startswith("command:"):
            time.sleep(self.delay)
        if args.name in self.fail:
            raise Exception(f"{args.name}: health gate failed (mock)")
        state = dict(args.inputs)
        if args.typ == "digitalocean:index/droplet:Droplet":
            state.update(ipv4Address="198.51.100.1", ipv4AddressPrivate="10.110.0.1")
        if args.typ == "digitalocean:index/reservedIp:ReservedIp":
            state.update(ipAddress="203.0.113.50")
        if args.typ.startswith("tls:"):
            state.update(privateKeyPem="KEY", certRequestPem="CSR", certPem="CERT")
        if args.typ == "cloudflare:index/originCaCertificate:OriginCaCertificate":
            state.update(certificate="ORIGIN-CERT")
        with self.lock:
            reg = self.created.get(args.name)
            if reg is not None:
                reg.inputs, reg.started, reg.finished = args.inputs, started, time.monotonic()
        return f"{args.name}-id", state

    def call(self, args):
        if args.token == "cloudflare:index/getZone:getZone":
            return {"id": "zone-123", "name": args.args.get("filter", {}).get("name")}
        return {}


ROOT_STACK = "pulumi:pulumi:Stack"


def engine_urn(urn: str) -> str:
    """A URN as Pulumi's engine writes it: the root stack's type is never part of a type chain
    (resource.NewURN skips it; the mock monitor keeps it)."""
    return urn.replace(f"::{ROOT_STACK}$", "::", 1)


def alias_urn(alias, request, stack: str, project: str) -> str:
    """The URN an alias stands for, resolved as Pulumi's engine does (resource.NewURN): an
    empty field is the resource's own; without noParent the parent is the resource's parent,
    whose *type chain* (not its name) prefixes the type."""
    if alias.urn:
        return engine_urn(alias.urn)
    spec = alias.spec
    parent = "" if spec.noParent else (spec.parentUrn or request.parent)
    typ = spec.type or request.type
    chain = engine_urn(parent).split("::")[2] if parent else ""
    if chain and chain != ROOT_STACK:
        typ = chain + "$" + typ
    return f"urn:pulumi:{spec.stack or stack}::{spec.project or project}::{typ}::{spec.name or request.name}"


class RecordingMonitor(MockMonitor):
    def RegisterResource(self, request):
        mocks = self.mocks
        stack, project = pulumi.get_stack(), pulumi.get_project()
        with mocks.lock:
            mocks.created[request.name] = Registered(request.type, request.name, "", {}, list(request.dependencies),
                                                     list(request.ignoreChanges),
                                                     retain_on_delete=bool(request.retainOnDelete),
                                                     parent=request.parent,
                                                     aliases=[alias_urn(a, request, stack, project)
                                                              for a in request.aliases])
        response = super().RegisterResource(request)
        mocks.created[request.name].urn = response.urn
        return response

    def RegisterResourceOutputs(self, request):
        from google.protobuf.json_format import MessageToDict

        with self.mocks.lock:
            for reg in self.mocks.created.values():
                if reg.urn == request.urn:
                    reg.outputs = MessageToDict(request.outputs)
        return super().RegisterResourceOutputs(request)


@pytest.fixture
def project(tmp_path) -> Path:
    dest = tmp_path / "proj"
    shutil.copytree(REPO / "examples", dest, ignore=shutil.ignore_patterns(".dynia", "deploy-config"))
    return dest


@pytest.fixture
def run_phase(project):
    """run_phase(program_module, stack, mocks) → mocks, with its error (if any)."""
    from dynia.stacks.inputs import PhaseInputs

    def run(module, cluster: str, phase: str, mocks: GraphMocks, organization: str | None = None,
            in_stack: bool = False, by_hand: dict | None = None, preview: bool = False, **more):
        """in_stack: run the program inside its own pulumi:pulumi:Stack, as `pulumi up` does, so
        its exports reach RegisterResourceOutputs (recorded on the stack's Registered entry,
        `dynia-<stack>`) exactly when the SDK would send them.
        by_hand: the stack's `dynia:` config ({key: (value, secret)}, projectRoot and cluster
        added): the inputs come from PhaseInputs.from_config, as in `pulumi up --stack …`."""
        import asyncio

        # An earlier test's asyncio.run() leaves the main thread without a loop; Outputs need one.
        asyncio.set_event_loop(asyncio.new_event_loop())
        if mocks.provision_outputs is None:
            mocks.provision_outputs = {"nodes": NODES, "reservedIp": "203.0.113.50", "originPem": ORIGIN_PEM,
                                       "originPull": ORIGIN_PULL, "kind": "digitalocean"}
        pulumi.runtime.set_mocks(mocks, project="dynia", stack=f"{cluster}-{phase}", preview=preview,
                                 monitor=RecordingMonitor(mocks), organization=organization)
        if by_hand is not None:
            config = {"projectRoot": (str(project), False), "cluster": (cluster, False), **by_hand}
            pulumi.runtime.set_all_config({f"dynia:{k}": v for k, (v, _) in config.items()},
                                          [f"dynia:{k}" for k, (_, secret) in config.items() if secret])
        ctx = PhaseInputs.from_config() if by_hand is not None else PhaseInputs(project_root=project, cluster=cluster,
                           ssh_private_key=pulumi.Output.secret("-----BEGIN OPENSSH PRIVATE KEY-----\nssh-secret\n"),
                           ssh_public_key="ssh-ed25519 AAAAtest dynia", provider_token=pulumi.Output.secret(PROVIDER_TOKEN),
                           **more)

        @pulumi.runtime.test
        def program():
            module.program(ctx)

        try:
            if in_stack:
                from pulumi.runtime import settings
                from pulumi.runtime.stack import run_in_stack
                from pulumi.runtime.sync_await import _sync_await

                # set_mocks made (and finished) a root stack of its own: start from none, as a
                # program run by the engine does.
                settings.SETTINGS.rpc_manager.clear()
                settings.SETTINGS.outputs.clear()
                settings.set_root_resource(None)
                _sync_await(run_in_stack(lambda: module.program(ctx)))
            else:
                program()
            return None
        except Exception as exc:  # a failed gate surfaces when the program settles
            return exc
        finally:
            if by_hand is not None:
                pulumi.runtime.set_all_config({}, [])

    return run
