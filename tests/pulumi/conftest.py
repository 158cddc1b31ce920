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

# A failed gate (an exception in new_resource) leaves Pulumi-internal futures whose errors are
# never retrieved; asyncio logs each one when it is collected — at interpreter exit that logging
# crashes CPython 3.11's traceback formatter. The failure itself is asserted by the tests.
logging.getLogger("asyncio").setLevel(logging.CRITICAL)
import pytest
from pulumi.runtime.mocks import MockMonitor

REPO = Path(__file__).resolve().parents[2]
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"

NODES = {"misty-owl": {"public_ip": "198.51.100.11", "private_ip": "10.110.0.11", "droplet_id": "1001"},
         "brave-panda": {"public_ip": "198.51.100.12", "private_ip": "10.110.0.12", "droplet_id": "1002"}}
ORIGIN_PEM = "-----BEGIN CERTIFICATE-----\nMIIBtestcert\n-----END CERTIFICATE-----\n" \
             "-----BEGIN PRIVATE KEY-----\nMIGHorigin-key-secret-material\n-----END PRIVATE KEY-----\n"
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


class RecordingMonitor(MockMonitor):
    def RegisterResource(self, request):
        mocks = self.mocks
        with mocks.lock:
            mocks.created[request.name] = Registered(request.type, request.name, "", {}, list(request.dependencies),
                                                     list(request.ignoreChanges),
                                                     retain_on_delete=bool(request.retainOnDelete))
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

    def run(module, cluster: str, phase: str, mocks: GraphMocks, organization: str | None = None, **more):
        import asyncio

        # An earlier test's asyncio.run() leaves the main thread without a loop; Outputs need one.
        asyncio.set_event_loop(asyncio.new_event_loop())
        if mocks.provision_outputs is None:
            mocks.provision_outputs = {"nodes": NODES, "reservedIp": "203.0.113.50", "originPem": ORIGIN_PEM,
                                       "kind": "digitalocean"}
        pulumi.runtime.set_mocks(mocks, project="dynia", stack=f"{cluster}-{phase}", preview=False,
                                 monitor=RecordingMonitor(mocks), organization=organization)
        ctx = PhaseInputs(project_root=project, cluster=cluster,
                           ssh_private_key=pulumi.Output.secret("-----BEGIN OPENSSH PRIVATE KEY-----\nssh-secret\n"),
                           ssh_public_key="ssh-ed25519 AAAAtest dynia", provider_token=pulumi.Output.secret(PROVIDER_TOKEN),
                           **more)

        @pulumi.runtime.test
        def program():
            module.program(ctx)

        try:
            program()
            return None
        except Exception as exc:  # a failed gate surfaces when the program settles
            return exc

    return run
