"""A real three-node lab (network namespaces, sshd, HAProxy, Caddy, keepalived, podman) per test.

Every namespace, process and mount is removed in the fixture's finalizer, also when a test fails.
"""
from __future__ import annotations

import atexit
import functools
import http.client
import ipaddress
import itertools
import json
import os
import shutil
import ssl
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dynia import providers
from dynia.render.bundle import build_bundles
from dynia.nodes.payload import Bundle
from dynia.errors import DyniaError
from dynia.nodes.push import ApplyResult, Target, push
from dynia.nodes.lab import Lab, LabError, missing_tools
from dynia.render.rendering import Rendering
from dynia.state.secrets import push_secrets
from dynia.render.rendered import render_cluster as render
from dynia.state.store import Project
from dynia.spec.load import load_cluster

from .lab_helpers import wait_ssh
from .own_subnet import examples_copy

REPO = Path(__file__).resolve().parents[2]


# A roll without the engine: what the phase programs do, node by node, for tests that
# drive pushes directly (the product rolls through the engine's chained pushes).
@dataclass
class RollResult:
    results: list[ApplyResult] = field(default_factory=list)
    stopped_at: str | None = None
    untouched: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.stopped_at is None

    def failure(self) -> ApplyResult | None:
        return next((r for r in self.results if not r.ok), None)


def roll(targets: list[Target], bundles: dict[str, dict[str, Bundle]], layers: list[str] | None = None) -> RollResult:
    """Apply node after node (targets are already in rolling order); the first failure stops the roll.

    bundles: node -> layer -> Bundle. layers: which layers to push (default: all, infra first).
    """
    out = RollResult()
    for i, target in enumerate(targets):
        node_bundles = bundles[target.node]
        for layer in (layers or ["infra"] + sorted(k for k in node_bundles if k != "infra")):
            if layer not in node_bundles:
                continue
            try:
                result = push(target, node_bundles[layer])
            except DyniaError as exc:
                result = ApplyResult(target.node, layer, 255, {"reason": exc.message}, exc.message, 0.0)
            out.results.append(result)
            if not result.ok:
                out.stopped_at = target.node
                out.untouched = [t.node for t in targets[i + 1:]]
                return out
    return out


def eventually(check, timeout: float = 15.0, interval: float = 0.1):
    """Poll check() until it returns truthy (bounded); return its last value."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


LAB_CLUSTER = "lab"  # examples/clusters/lab.yaml: every lab test's cluster


def _client_context(client_pem: bytes | None) -> ssl.SSLContext:
    """The lab's origin certificate is self-signed: the client checks nothing. client_pem: the
    certificate + key it presents (None: none)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if client_pem is not None:
        # ssl loads a certificate only from a file: mkstemp's is 0600, removed at exit (the key is
        # the lab cluster's, kept 0600 in its .dynia/secrets as well).
        fd, path = tempfile.mkstemp(prefix="dynia-lab-pull-", suffix=".pem")
        with os.fdopen(fd, "wb") as f:
            f.write(client_pem)
        atexit.register(os.unlink, path)
        ctx.load_cert_chain(path)
    return ctx


@functools.lru_cache(maxsize=None)
def _edge_context(client_pem: bytes) -> ssl.SSLContext:
    """Built once per certificate: loading a context per request costs more than the request."""
    return _client_context(client_pem)


_NO_CLIENT_CERT_TLS = _client_context(None)

# Each request from the lab's edge names its visitor in CF-Connecting-IP, as Cloudflare's do;
# HAProxy rate-limits per visitor. By default every request is another visitor (RFC 2544's
# benchmarking range, 198.18.0.0/15): load and rolling tests measure the deploy, not the limit.
# A test of the limit names its visitors itself.
_VISITORS = itertools.count(1)
_VISITOR_BASE = ipaddress.ip_address("198.18.0.0")


def new_visitor() -> str:
    """A new visitor address (thread-safe: itertools.count under the GIL)."""
    return str(_VISITOR_BASE + next(_VISITORS) % (1 << 17))


@dataclass
class LabCluster:
    project: Project
    lab: Lab

    def cluster(self):
        return load_cluster(self.project, "lab")

    @functools.cached_property
    def client_tls(self) -> ssl.SSLContext:
        """The lab's clients stand for Cloudflare's edge (the lab machine is in the lab's edge
        ranges, dynia.providers.local.lab_edge): they present the cluster's own origin-pull client
        certificate, exactly what Cloudflare presents once provision uploaded it to the zone
        (Authenticated Origin Pulls; refused without it). Made once per LabCluster (the pair is
        made once per project): load loops ask for it on every request, and loading the cluster
        there read the spec and compose files a test was rewriting."""
        return _edge_context(providers.of(self.cluster().spec).origin_pull_client(self.project, LAB_CLUSTER))

    def cache_as_after_up(self) -> None:
        """What `dynia up`'s provision phase leaves in .dynia/ for a local cluster: the nodes'
        addresses and the SSH identity, so the product's read commands reach these nodes."""
        from dynia.state.cache import ClusterCache

        ClusterCache.of(self.cluster()).write_outputs(
            {"nodes": {n.id: {"private_ip": n.ip, "public_ip": n.ip} for n in self.lab.nodes},
             "reserved_ip": self.lab.vip})
        ident = self.project.lab_dir("lab")
        ident.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.lab.key, ident / "id_ed25519")
        shutil.copy(self.lab.known_hosts, ident / "known_hosts")

    def render(self) -> Rendering:
        return render(self.cluster())

    def bundles(self, rendering: Rendering | None = None, force: bool = False) -> dict:
        c = self.cluster()
        rendering = rendering or render(c)
        secrets = push_secrets(self.project, "lab", c.spec)
        return {n: build_bundles(c.spec, rendering, n, secrets, force=force) for n in c.spec.nodes}

    def targets(self, order: list[str]) -> list[Target]:
        return [Target(n, self.lab.node(n).ip, self.lab.key, self.lab.known_hosts) for n in order]

    def roll(self, bundles=None, layers=None, order=None) -> RollResult:
        rendering = self.render()
        bundles = bundles or self.bundles(rendering)
        return roll(self.targets(order or rendering.rolling_order), bundles, layers)

    def edit_spec(self, old: str, new: str) -> None:
        path = self.project.spec_path("lab")
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new, 1))

    def cat(self, node: str, path: str) -> bytes:
        return self.lab.run(node, f"cat {path}").stdout

    def sh(self, node: str, script: str, check: bool = True):
        return self.lab.run(node, script, check=check)

    def vip_holder(self) -> list[str]:
        holders = []
        for n in self.lab.nodes:
            out = self.lab.run(n.id, "ip -br addr show eth0").stdout.decode()
            if f" {self.lab.vip}/" in out:
                holders.append(n.id)
        return holders

    def get(self, host: str, path: str = "/", timeout: float = 5.0) -> tuple[int, bytes]:
        """HTTPS through the VIP: HAProxy → Caddy → app, as a new visitor through the lab's edge."""
        status, _, body = self.fetch(host, path, timeout=timeout)
        return status, body

    def fetch(self, host: str, path: str = "/", *, visitor: str | None = None, timeout: float = 5.0,
              context: ssl.SSLContext | None = None, headers: dict | None = None
              ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """GET through the VIP from this machine (the lab's edge): status, headers, body.
        visitor: the CF-Connecting-IP sent (default: a new one); context: the client's TLS (default:
        with the origin-pull client certificate)."""
        conn = http.client.HTTPSConnection(self.lab.vip, 443, timeout=timeout, context=context or self.client_tls)
        try:
            conn.request("GET", path, headers={"Host": host, "CF-Connecting-IP": visitor or new_visitor(),
                                               **(headers or {})})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()


def _require_lab_tools():
    """For fixtures of a scope the `lab_tools` fixture cannot serve; a lab fixture requests
    `lab_tools` too (tests/conftest.py), which is what marks its tests `root`."""
    missing = missing_tools()
    if os.geteuid() != 0 or missing:
        pytest.fail(f"lab tests need root and {missing or 'the lab tools'}: run `bash .ci/test` (README)")


@contextmanager
def _lab(tmp_path, **up):
    root = tmp_path / "proj"
    with examples_copy(root, tmp_path / "lab"):
        project = Project(root)
        c = load_cluster(project, "lab")
        lab = Lab.plan(tmp_path / "lab", c.spec.provider.vpc_ip_range, c.spec.nodes)
        try:
            lab.up(**up)
            wait_ssh(lab)
            yield LabCluster(project, lab)
        finally:
            lab.down()


@pytest.fixture
def lab_cluster(tmp_path, lab_tools) -> LabCluster:
    """Three nodes that start like fresh droplets (dynia.nodes.lab): the packages' default
    HAProxy and Caddy running, cloud-init "installing" for the first seconds."""
    with _lab(tmp_path) as lc:
        yield lc


@pytest.fixture
def installing_lab(tmp_path, lab_tools) -> LabCluster:
    """Fresh-droplet nodes whose cloud-init stand-in is still "installing" when the test starts."""
    with _lab(tmp_path, installing=INSTALLING_WINDOW) as lc:
        yield lc


INSTALLING_WINDOW = 12.0  # seconds: outlasts bringing up three nodes, so the first push meets it


def roll_out(lc: LabCluster) -> LabCluster:
    """Every layer rolled out once, the VIP on the configured MASTER."""
    result = lc.roll()
    assert result.ok, [(r.node, r.layer, r.reason) for r in result.results if not r.ok]
    # A backup holds the VIP until the roll reaches the MASTER, which then preempts it.
    master = lc.cluster().spec.master_node
    assert eventually(lambda: lc.vip_holder() == [master]), lc.vip_holder()
    return lc


@pytest.fixture
def applied_lab(lab_cluster) -> LabCluster:
    """The lab with every layer rolled out once."""
    return roll_out(lab_cluster)


class SharedLabs:
    """One lab at a time for the tests of a pytest process (an xdist worker), handed from test
    to test, across modules, while each leaves it as it found it: the project's files (spec,
    compose files) unchanged, sshd answering on every node, the VIP where it was. A test that
    leaves it otherwise (a failed one too) gets it torn down, and the next test a new one.
    take(prepare) gives the lab prepare(lab) made (None: as it came up); another prepare than
    the current lab's gets a new lab too."""

    def __init__(self, tmp_path_factory):
        self._factory = tmp_path_factory
        self._stack: ExitStack | None = None
        self._lc: LabCluster | None = None
        self._prepare = None
        self._found: tuple[dict, list[str]] | None = None

    def take(self, prepare=None) -> LabCluster:
        if self._lc is not None and (prepare is not self._prepare or not self._as_found(self._lc)):
            self.close()
        if self._lc is None:
            stack = ExitStack()
            try:
                lc = stack.enter_context(_lab(self._factory.mktemp("shared-lab")))
                if prepare is not None:
                    prepare(lc)
            except BaseException:
                stack.close()
                raise
            self._stack, self._lc, self._prepare = stack, lc, prepare
            self._found = self._state(lc)
        return self._lc

    @staticmethod
    def _inputs(lc: LabCluster) -> dict:
        """The project's own files (not .dynia/'s runtime data or the rendered deploy-config/)."""
        root = lc.project.root
        return {p: p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and p.relative_to(root).parts[0] not in (".dynia", "deploy-config")}

    def _state(self, lc: LabCluster) -> tuple[dict, list[str]]:
        return self._inputs(lc), lc.vip_holder()

    def _as_found(self, lc: LabCluster) -> bool:
        inputs, holder = self._found
        try:
            wait_ssh(lc.lab, timeout=5)
        except LabError:
            return False
        # A test that moved the VIP and started keepalived again waits for the preemption
        # itself, mostly; a second or two of it may be left.
        return self._inputs(lc) == inputs and bool(
            eventually(lambda: lc.vip_holder() == holder, timeout=10))

    def close(self) -> None:
        stack, self._stack, self._lc, self._prepare, self._found = self._stack, None, None, None, None
        if stack is not None:
            stack.close()


@pytest.fixture(scope="session")
def shared_labs(tmp_path_factory, lab_tools):
    """The process's SharedLabs (one lab alive at a time), brought down after its last test."""
    labs = SharedLabs(tmp_path_factory)
    try:
        yield labs
    finally:
        labs.close()


@pytest.fixture
def shared_lab(shared_labs) -> LabCluster:
    """lab_cluster's nodes, shared by the tests that leave them as they found them (SharedLabs)."""
    return shared_labs.take()


@pytest.fixture
def shared_applied_lab(shared_labs) -> LabCluster:
    """applied_lab's nodes (rolled out once), shared by the tests that leave them as they found
    them (SharedLabs)."""
    return shared_labs.take(roll_out)


def record(name: str, value) -> None:
    """Measurements for the closing note: printed (pytest -s) and appended to $DYNIA_MEASUREMENTS."""
    line = json.dumps({"measure": name, "value": value})
    print(line)
    path = os.environ.get("DYNIA_MEASUREMENTS")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")

