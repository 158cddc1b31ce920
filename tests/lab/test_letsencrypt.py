"""tls.mode letsencrypt against a real ACME server on the lab: pebble (the Let's Encrypt
project's RFC 8555 test CA) validates HTTP-01 through the VIP → HAProxy → the holder's Caddy,
and the real phase programs (provision → infra → apps, on LabEngineDouble) push the one
certificate of the cluster to every node.

The product's own sequence runs: dynia.operations.certs.roll (what `dynia cert provision|renew` call)
decides whether an order is due, orders (dynia.operations.certs.obtain: key authorizations on every node
of dynia.engine.session.targets), keeps the new state, then runs provision (which stores it as its
secret `acme` output) and infra (which rolls it node by node). Only the engine is a stand-in:
`DoubleEngine` runs those phases on LabEngineDouble, as dynia.engine.automation.Engine runs them on Pulumi.
Before the first order the provision phase keeps a self-signed placeholder, so HAProxy binds
443 and answers the first challenge on 80.

One lab per module (bringing three nodes up and rolling them costs half a minute): the tests
run in file order, each on the state the previous ones left, and each says what it starts
from (a test run alone orders the first certificate itself).
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dynia.errors import DyniaError
from dynia.paths import PATHS
from dynia.nodes.lab import Lab

from ..engine.lab_double import CommandFailed, LabEngineDouble, lab_inputs, run_phase
from .acme_lab import AcmeLab, directory_url
from .acme_lab import missing_tools as acme_missing_tools
from .conftest import LabCluster, eventually, record
from .own_subnet import examples_copy

REPO = Path(__file__).resolve().parents[2]
DOMAINS = ("lab.example", "api.lab.example", "admin.lab.example")
NODES = ("misty-owl", "brave-panda", "calm-otter")


class Run:
    """The module's lab: project, lab nodes, pebble, the engine double's references, and every
    byte the runs wrote to stdout/stderr (scanned for secrets by the last test)."""

    def __init__(self, root: Path, lab_dir: Path, acme_dir: Path, output: Path):
        self.root, self.lab_dir, self.acme_dir, self.output = root, lab_dir, acme_dir, output
        self.references: dict = {}
        self.acme: AcmeLab | None = None
        self.state = None            # dynia.operations.certs.AcmeState: the provision stack's `acme` output
        self.pending = False         # an order kept but not yet stored (Engine.acme_pending)
        self.states: list = []       # every state issued, for the secret scan
        self.failures: list[str] = []  # outputs of failed commands (LabEngineDouble.failures)
        self.ran: list[str] = []       # the phases DoubleEngine.up ran, in order
        self.progress: list[str] = []  # the engine's progress lines (DoubleEngine.on_progress)
        self.lc: LabCluster | None = None

    def phase(self, module, name: str, check: bool = True):
        """Run one phase program; its exported outputs (check=False: (outputs, the first failed
        command or None))."""
        from dynia.operations.certs import AcmeState

        double = LabEngineDouble(self.references)
        # As the engine does: the provision stack's own `acme` output goes back in on every run.
        extra = {"acme": self.state.to_dict() if self.state else None} if name == "provision" else {}
        with _captured(self.output):
            outputs, error = run_phase(module, lab_inputs(self.root, self.lab_dir, **extra), name, double)
        self.failures += [f.output for f in double.failures]
        failure = double.failures[0] if double.failures else error
        if failure is None and name == "provision":
            self.references["lab-provision"] = outputs
            self.state, self.pending = AcmeState.from_dict(outputs["acme"]), False
            assert outputs["originPem"] == self.state.pem
        if not check:
            return outputs, failure
        assert failure is None, failure
        return outputs

    def cluster(self):
        from dynia.state.store import Project
        from dynia.spec.load import load_cluster

        return load_cluster(Project(self.root), "lab")


class DoubleEngine:
    """What dynia.operations.certs.roll uses of dynia.engine.automation.Engine (acme_state, keep_acme, up, cluster),
    with the phases run on LabEngineDouble; a failed push is the engine's typed error."""

    def __init__(self, run: Run):
        self.run = run
        self.cluster = run.cluster()

    def refresh_outputs(self) -> None:
        """The lab's .dynia/cache is already what a provision leaves (cache_as_after_up)."""

    # The release ledger (dynia.operations.releases.after_roll): no tag is pinned by this double,
    # and the ledger is kept in memory, as the releases stack would keep it.
    def pinned_images(self) -> dict:
        return {}

    def rolled_back(self) -> dict:
        return {}

    def releases(self) -> list:
        return list(getattr(self, "_releases", []))

    def keep_releases(self, history) -> None:
        self._releases = list(history)

    def on_progress(self, line: str) -> None:
        self.run.progress.append(line)

    def preview(self, phases) -> list:
        """Pulumi's preview, which cannot run here: for infra, each node whose rendered infra
        files differ from what it last applied (the node's own record, read by drift-check) is
        its push updated, as the preview shows it; provision changes nothing in these tests."""
        from dynia.engine.automation import ChangeRow
        from dynia.operations import drift

        if "infra" not in phases:
            return []
        report, _ = drift.check(self.cluster, timeout=60)
        nodes = sorted({n.node for n in report.nodes for d in n.drift if d.kind == "pending" and d.layer == "infra"})
        return [ChangeRow("infra", n, f"{n}-infra-push", "command:remote:Command", "update") for n in nodes]

    def cache_certificate(self, pem) -> None:
        from dynia.engine.automation import Engine

        Engine.cache_certificate(self, pem)   # the engine's own: it uses only self.cluster

    def acme_state(self):
        return self.run.state

    def acme_pending(self) -> bool:
        return self.run.pending

    def keep_acme(self, state) -> None:
        # The engine keeps it durably (the stack's config) until provision exports it: here,
        # until the double's provision succeeds (Run.phase).
        self.run.states.append(state)
        self.run.state, self.run.pending = state, True

    def up(self, phases, **kw) -> dict:
        from dynia.nodes.push_errors import push_error
        from dynia.stacks import apps, infra, provision

        for name in phases:
            self.run.ran.append(name)
            module = {"provision": provision, "infra": infra, "apps": apps}[name]
            _, failure = self.run.phase(module, name, check=False)
            if failure is not None:
                if isinstance(failure, CommandFailed):
                    raise push_error(failure.resource, failure.output, failure.exit_status, "lab")
                raise failure
        return {}


class _captured:
    """fd-level capture into a file (the phase programs, pulumi's mocks and asyncssh write to
    fds 1/2; pytest's own capture is restored on exit)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        sys.stdout.flush(), sys.stderr.flush()
        self.file = open(self.path, "ab")
        self.saved = (os.dup(1), os.dup(2))
        os.dup2(self.file.fileno(), 1)
        os.dup2(self.file.fileno(), 2)

    def __exit__(self, *exc):
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        os.close(self.saved[0]), os.close(self.saved[1])
        self.file.close()


def _letsencrypt_spec(root: Path, subnet: str) -> None:
    """The lab cluster, tls.mode letsencrypt against the lab's pebble (examples/ stays origin)."""
    path = root / "clusters" / "lab.yaml"
    text = path.read_text()
    assert "\ntls:" not in text
    path.write_text(text.replace("domain: lab.example\n",
                                 "domain: lab.example\ntls:\n  mode: letsencrypt\n"
                                 f"  acme_directory: {directory_url(subnet)}\n  email: ops@lab.example\n", 1))


@pytest.fixture(scope="module")
def le(tmp_path_factory, lab_tools):
    """A letsencrypt lab cluster rolled out on its placeholder certificate, pebble beside it."""
    missing = acme_missing_tools()
    if missing:
        pytest.fail(f"the ACME lab needs {missing}: apt-get install pebble (.ci/debian-packages installs it)")
    tmp = tmp_path_factory.mktemp("letsencrypt")
    root = tmp / "proj"
    with examples_copy(root, tmp / "lab") as subnet:
        _letsencrypt_spec(root, subnet)
        yield from _le_run(Run(root, tmp / "lab", tmp / "acme", tmp / "output.log"))


def _le_run(run: Run):
    from dynia.stacks import apps, infra, provision

    try:
        started = time.monotonic()
        run.phase(provision, "provision")
        for name, module in (("infra", infra), ("apps", apps)):
            run.phase(module, name)
        record("letsencrypt_lab_up_seconds", round(time.monotonic() - started, 1))
        run.lc = LabCluster(run.cluster().project, Lab.load(run.lab_dir))
        # What the engine's provision leaves in .dynia/ (addresses, SSH identity): roll's
        # session.targets reads the nodes from there.
        run.lc.cache_as_after_up()
        run.acme = AcmeLab.for_lab(run.lc.lab, run.acme_dir, names=DOMAINS).start()
        yield run
    finally:
        if run.acme is not None:
            run.acme.stop()
        if (run.lab_dir / "lab.json").exists():
            Lab.load(run.lab_dir).down()
    assert run.acme is None or run.acme.gone  # pebble's namespace, veth and processes are gone


def _roll(run: Run, **kw):
    """dynia.operations.certs.roll on the lab: (the state in force, why it ordered). pebble's listener is
    trusted through its own certificate, never by turning verification off."""
    from dynia.operations import certs

    started = time.monotonic()
    try:
        with _captured(run.output):
            return certs.roll(DoubleEngine(run), verify=str(run.acme.ca_bundle), dns=run.acme.dns01(), **kw)
    finally:
        record("letsencrypt_roll_seconds", round(time.monotonic() - started, 2))


def _ensure_issued(run: Run) -> None:
    """A test run alone (-k) still starts from a first certificate on every node."""
    if run.state.placeholder:
        _roll(run)


def _served(ip: str, host: str, root_pem: str):
    """The certificate HAProxy at ip presents for host, verified against pebble's root with the
    hostname checked (the handshake fails otherwise)."""
    from cryptography import x509

    ctx = ssl.create_default_context(cadata=root_pem)
    with socket.create_connection((ip, 443), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname=host) as tls:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def _served_everywhere(run: Run) -> dict[tuple[str, str], int]:
    """(address, domain) → serial of the verified certificate, through the VIP and on every node."""
    lab = run.lc.lab
    addresses = [lab.vip] + [lab.node(n).ip for n in NODES]
    return {(ip, d): _served(ip, d, run.acme.root_pem).serial_number for ip in addresses for d in DOMAINS}


def _slot_digests(run: Run) -> dict[str, str]:
    return {n: hashlib.sha256(run.lc.cat(n, PATHS.origin_pem)).hexdigest() for n in NODES}


def _vip_serial(run: Run) -> int:
    return _served(run.lc.lab.vip, DOMAINS[0], run.acme.root_pem).serial_number


def _validations(run: Run) -> int:
    """Authorizations pebble set valid by a completed challenge (its log: one line each; it
    fetches each HTTP-01 answer three times, as Let's Encrypt's several perspectives do)."""
    return run.acme.log("pebble").count("set VALID by completed challenge")


def _new_authorizations(run: Run) -> int:
    """Authorizations pebble created (its log: one line each). Even with PEBBLE_AUTHZREUSE=0
    pebble 2.4 reuses an account's valid authorization for a name 1% of the time
    (`rand.Intn(100) > percent` in wfe.makeAuthorizations): a new order validates exactly the
    authorizations it created, which is what the tests count."""
    return run.acme.log("pebble").count("authorizations in the db")


def _last_issued_serial(run: Run) -> int:
    """The serial of the certificate pebble issued last (its log)."""
    import re

    serials = re.findall(r"Issued certificate serial ([0-9a-f]+)", run.acme.log("pebble"))
    assert serials, run.acme.log("pebble")[-1000:]
    return int(serials[-1], 16)


def test_first_certificate_is_validated_through_the_vip_and_served_for_every_domain(le):
    """Starts from the rolled-out cluster on its self-signed placeholder."""
    run = le
    assert eventually(lambda: run.lc.vip_holder() == ["misty-owl"]), run.lc.vip_holder()
    with pytest.raises(ssl.SSLCertVerificationError):  # the placeholder: not pebble's
        _vip_serial(run)
    # Every node's host firewall is loaded (infra): pebble's address is in no range it singles
    # out, so the validation below also proves letsencrypt mode opens port 80 to everyone.
    from dynia.nodes.commands import FIREWALL_TABLE
    for node in NODES:
        assert run.lc.sh(node, f"nft list table {FIREWALL_TABLE} >/dev/null", check=False).returncode == 0, node
    # The harness: pebble answers its directory, challtestsrv sends every service domain to the VIP.
    assert {"newAccount", "newNonce", "newOrder"} <= set(run.acme.directory())
    assert [run.acme.resolve(d) for d in DOMAINS] == [[run.lc.lab.vip]] * 3
    before = _validations(run)
    rolled = _roll(run)
    assert rolled.action == "issued" and rolled.reason == "only the self-signed placeholder so far"
    assert rolled.over_dns == ()   # every name has its record: all validated over HTTP-01
    assert rolled.state.pem == run.state.pem and not run.pending  # stored
    # pebble really validated one challenge per domain (a new account: nothing to reuse),
    # from its own address through the VIP: only misty-owl held it.
    assert _validations(run) - before == len(DOMAINS) == _new_authorizations(run), run.acme.log("pebble")[-2000:]
    assert run.lc.vip_holder() == ["misty-owl"]
    assert sorted(run.state.domains) == sorted(DOMAINS) and not run.state.placeholder
    served = _served_everywhere(run)
    # One certificate for the cluster, on every node: the one pebble just issued.
    assert set(served.values()) == {_last_issued_serial(run)}, served
    # The challenge files are gone again from every node.
    for node in NODES:
        assert run.lc.sh(node, f"ls -A {PATHS.acme_challenge_dir} 2>/dev/null").stdout == b""
    for domain in DOMAINS:  # and the services answer over the verified TLS
        assert _https_status(run, domain) == 200


def _https_status(run: Run, host: str) -> int:
    import http.client

    ctx = ssl.create_default_context(cadata=run.acme.root_pem)
    conn = http.client.HTTPSConnection(host, 443, timeout=5, context=ctx)
    conn.sock = ctx.wrap_socket(socket.create_connection((run.lc.lab.vip, 443), timeout=5), server_hostname=host)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    finally:
        conn.close()


def test_unvalidatable_domain_is_a_cert_error_and_nothing_is_pushed(le):
    """Starts from the first certificate on every node. The api moves to a new domain whose
    record points at the VIP, but port 80 refuses pebble's address on every node (a provider
    firewall closing 80, say): the HTTP-01 validation of the re-issue fails. A name never
    validated before, so pebble cannot reuse an authorization for it."""
    run = le
    _ensure_issued(run)
    served_before, slots_before, state_before = _vip_serial(run), _slot_digests(run), run.state
    states_before = len(run.states)
    run.lc.edit_spec("domain: api.lab.example", "domain: shop.lab.example")
    run.acme.add_a("shop.lab.example", [run.lc.lab.vip])
    block = (f"nft add table inet lab_block && nft add chain inet lab_block input "
             f"'{{ type filter hook input priority -10; }}' && nft add rule inet lab_block input "
             f"ip saddr {run.acme.ip} tcp dport 80 reject with tcp reset")
    try:
        for node in NODES:
            run.lc.sh(node, block)
        assert run.acme.resolve("shop.lab.example") == [run.lc.lab.vip]
        _roll(run)  # due: the certificate does not cover shop.lab.example
    except DyniaError as exc:
        err = exc
    else:
        pytest.fail(f"the order succeeded: {run.acme.log('pebble')[-3000:]}")
    finally:
        for node in NODES:
            run.lc.sh(node, "nft delete table inet lab_block", check=False)
        run.acme.clear_a("shop.lab.example")
        run.lc.edit_spec("domain: shop.lab.example", "domain: api.lab.example")
    run.failures.append(f"{err.message}\n{err.hint}")  # scanned for secrets by the last test
    assert err.kind == "cert", err
    assert "shop.lab.example" in err.message and "connection refused" in err.message, err.message
    assert err.hint
    record("letsencrypt_unvalidatable_error", err.message[:300])
    assert run.state is state_before and len(run.states) == states_before  # nothing kept or stored
    assert _slot_digests(run) == slots_before  # nothing pushed
    assert _vip_serial(run) == served_before   # the old certificate is still served
    for node in NODES:  # and the key authorizations were withdrawn from every node
        assert run.lc.sh(node, f"ls -A {PATHS.acme_challenge_dir} 2>/dev/null").stdout == b""


def test_renewal_after_failover_is_validated_by_the_new_holder_and_served(le):
    """Starts from the first certificate (ordered while misty-owl held the VIP). misty-owl's
    keepalived stops: brave-panda takes the VIP, and answers the renewal's challenges."""
    from dynia.nodes.commands import NodeCommands
    from dynia.providers.local import PROFILE

    run = le
    _ensure_issued(run)
    lab, old = run.lc.lab, _vip_serial(run)
    # Today nothing is due (`dynia cert renew` from cron: "nothing to do"); 20 days before the
    # certificate expires, it is.
    # (every node serves the stored certificate: probed on each node's loopback)
    rolled = _roll(run)
    assert (rolled.action, rolled.state, rolled.nodes) == ("nothing to do", run.state, ())
    due = run.state.not_after - datetime.timedelta(days=20)
    os.kill(int(run.lc.cat("misty-owl", PATHS.keepalived_pid).strip()), signal.SIGTERM)
    assert eventually(lambda: run.lc.vip_holder() == ["brave-panda"], timeout=15), run.lc.vip_holder()
    before, created, kept = _validations(run), _new_authorizations(run), len(run.states)
    # The roll goes node by node through the apply protocol: misty-owl, whose keepalived is
    # still down, fails its health gate and stops the roll there (typed) — after the order
    # (validated through brave-panda), the store, and brave-panda and calm-otter's pushes.
    with pytest.raises(DyniaError) as caught:
        _roll(run, now=due)
    typed = caught.value
    assert typed.kind == "health" and "misty-owl" in typed.message, typed
    validated = _validations(run) - before
    assert validated >= 1 and validated == _new_authorizations(run) - created  # validated again
    assert run.lc.vip_holder() == ["brave-panda"]      # ... through brave-panda, the whole time
    assert len(run.states) == kept + 1 and run.references["lab-provision"]["acme"]["pem"] == run.state.pem
    new = _last_issued_serial(run)
    assert new != old
    for ip in (lab.vip, lab.node("brave-panda").ip, lab.node("calm-otter").ip):
        assert {_served(ip, d, run.acme.root_pem).serial_number for d in DOMAINS} == {new}, ip
    # misty-owl comes back (and takes the VIP home, priority 150). `dynia cert renew` (what
    # the typed error says) finds it still serving the old certificate — nothing is due, but a
    # node differs — and rolls the stored one to it: no new order.
    assert typed.resume == "dynia cert renew --cluster lab" and "nothing is ordered again" not in typed.hint
    assert "rolls the stored certificate to every node that does not serve it" in typed.hint
    run.lc.sh("misty-owl", NodeCommands(PROFILE).reload("keepalived"))
    assert eventually(lambda: run.lc.vip_holder() == ["misty-owl"], timeout=15), run.lc.vip_holder()
    orders = len(run.states)
    rolled = _roll(run)
    assert rolled.action == "rolled" and rolled.nodes == ("misty-owl",), rolled
    assert len(run.states) == orders   # stored certificate, nothing ordered
    rolled = _roll(run)
    assert rolled.action == "nothing to do", rolled
    served = _served_everywhere(run)
    assert set(served.values()) == {new}, served  # the renewed certificate, on every node
    assert run.states[-1].account_key == run.states[0].account_key  # one ACME account, kept


def test_an_unattended_renewal_with_other_changes_pending_rolls_the_certificate_slot_alone(le):
    """Starts from a certificate on every node. An unrelated change is pending (a firewall admin
    range: every node's infra files differ from what it applied). `dynia cert renew` (cron's:
    unattended) 20 days before expiry orders, then pushes the certificate slot alone node by
    node, the VIP holder last: every node serves the new certificate, no phase ran, the pending
    change is named and still pending. The next full roll stores the kept order (no new one)."""
    from dynia.operations import drift

    run = le
    _ensure_issued(run)
    spec = run.root / "clusters" / "lab.yaml"
    original = spec.read_text()
    firewall = {n: run.lc.cat(n, PATHS.firewall_rules) for n in NODES}
    applied = {n: json.loads(run.lc.cat(n, PATHS.state("applied.json")))["configVersion"] for n in NODES}
    spec.write_text(original.replace("domain: lab.example\n", "domain: lab.example\nfirewall:\n  admin_ranges: "
                                     "[0.0.0.0/0, '::/0', 192.0.2.0/24]\n", 1))
    try:
        old, ran, orders = _vip_serial(run), list(run.ran), len(run.states)
        holder = run.lc.vip_holder()
        rolled = _roll(run, now=run.state.not_after - datetime.timedelta(days=20), unattended=True)
        assert rolled.action == "issued" and len(run.states) == orders + 1, rolled
        assert sorted(rolled.nodes) == sorted(NODES) and [rolled.nodes[-1]] == holder, (rolled.nodes, holder)
        slot = "rolled the certificate slot alone; pending changes left for `dynia plan` and `dynia up --cluster lab`: "
        warning = next((w for w in rolled.warnings if w.startswith(slot)), rolled.warnings)
        assert all(f"infra: update {n}-infra-push" in warning for n in NODES), warning
        assert run.ran == ran                  # no phase ran: provision, infra, apps untouched
        new = _last_issued_serial(run)
        served = _served_everywhere(run)
        assert new != old and set(served.values()) == {new}, served
        # the pending change is still only pending: not one node took it
        assert {n: run.lc.cat(n, PATHS.firewall_rules) for n in NODES} == firewall
        assert {n: json.loads(run.lc.cat(n, PATHS.state("applied.json")))["configVersion"] for n in NODES} == applied
        report, _ = drift.check(run.cluster(), timeout=60)
        assert {n.node for n in report.nodes if any(d.kind == "pending" and d.layer == "infra" for d in n.drift)} \
            == set(NODES)
    finally:
        spec.write_text(original)
    # Reviewed (here: the change withdrawn), the next roll stores the kept order: nothing ordered.
    rolled = _roll(run)
    assert rolled.action == "stored" and len(run.states) == orders + 1, rolled
    assert run.references["lab-provision"]["acme"]["pem"] == run.state.pem
    assert set(_served_everywhere(run).values()) == {new}


def test_a_new_domain_is_certified_over_dns01_before_its_record_exists_then_served(le, monkeypatch):
    """Starts from a certificate for DOMAINS on every node. The api moves to new.lab.example,
    which has no DNS record (challtestsrv answers no A for it: its record would be made by the
    apps phase, after the service's gates). `dynia up`'s own sequence (dynia.cli.up.run_phases,
    the engine on LabEngineDouble) orders before the apps phase: pebble validates the new name
    over DNS-01 (the TXT written through the zone stand-in, waited for on the DNS server pebble
    asks) and the others over HTTP-01 through the VIP; the certificate is stored and rolled;
    only then does apps run. The name never resolved, so HTTP-01 could not have carried it."""
    from dynia.cli import up as up_cli

    run = le
    _ensure_issued(run)
    new_name = "new.lab.example"
    published_at = []
    zone = run.acme.dns01()
    real_publish = zone.publish

    def publish(values):
        published_at.append((list(run.ran), dict(values)))
        real_publish(values)

    zone.publish = publish

    @contextlib.contextmanager
    def engine_for(ctx, cluster, before_load=None, on_progress=None):
        yield DoubleEngine(run)

    monkeypatch.setattr(up_cli, "engine_for", engine_for)
    monkeypatch.setattr("dynia.operations.certs.default_dns", lambda cluster: zone)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(run.acme.ca_bundle))   # pebble's listener, trusted
    run.lc.edit_spec("domain: api.lab.example", f"domain: {new_name}")
    try:
        assert run.acme.resolve(new_name) == []
        run.ran.clear()
        before, created = _validations(run), _new_authorizations(run)
        with _captured(run.output):
            up_cli.run_phases(None, "lab", ("infra", "apps"), as_json=True)
        # infra (the new route), then the certificate (stored: provision, rolled: infra), then apps.
        assert run.ran == ["infra", "provision", "infra", "apps"], run.ran
        assert len(published_at) == 1
        ran_then, values = published_at[0]
        assert ran_then == ["infra"] and set(values) == {f"_acme-challenge.{new_name}"}   # before apps
        assert run.acme.resolve(new_name) == []        # no record, before or after
        assert run.acme.txt(f"_acme-challenge.{new_name}") == set()   # the TXT is withdrawn
        validated = _validations(run) - before
        assert validated >= 1 and validated == _new_authorizations(run) - created   # each validated anew
        assert sorted(run.state.domains) == sorted([new_name, "lab.example", "admin.lab.example"])
        lab = run.lc.lab
        new = _last_issued_serial(run)
        for ip in [lab.vip] + [lab.node(n).ip for n in NODES]:
            assert _served(ip, new_name, run.acme.root_pem).serial_number == new, ip
        assert _https_status(run, new_name) == 200     # the api answers under its new name
    finally:
        run.lc.edit_spec(f"domain: {new_name}", "domain: api.lab.example")
    # Back to api.lab.example, which has its record: re-issued over HTTP-01 alone.
    with _captured(run.output):
        up_cli.run_phases(None, "lab", ("infra", "apps"), as_json=True)
    assert len(published_at) == 1 and _https_status(run, "api.lab.example") == 200
    assert sorted(run.state.domains) == sorted(DOMAINS)


def _secret_lines(pem: str) -> list[str]:
    """The base64 lines of every PRIVATE KEY block of a PEM text (what a leak would contain)."""
    lines, inside = [], False
    for line in pem.splitlines():
        if line.startswith("-----BEGIN") and "PRIVATE KEY" in line:
            inside = True
        elif line.startswith("-----END"):
            inside = False
        elif inside and len(line) >= 24:
            lines.append(line.strip())
    return lines


def test_no_account_key_or_certificate_key_in_any_output_log_or_rendered_file(le):
    """Runs last: scans everything the earlier tests' runs wrote."""
    run = le
    _ensure_issued(run)
    needles = sorted({line for s in run.states for line in _secret_lines(s.account_key or "") + _secret_lines(s.pem)})
    assert len(needles) >= 4
    # Positive control: the one store they belong in (the provision stack's secret `acme` output).
    assert all(n in json.dumps(run.references["lab-provision"]["acme"]) for n in _secret_lines(run.state.pem))
    # Commands on the cluster, as an operator runs them (their output and files are scanned
    # too): a read command, and render (deploy-config/).
    cli = {}
    for args in (("status", "--json"), ("render",)):
        r = subprocess.run([sys.executable, "-m", "dynia", "-C", str(run.root), *args, "--cluster", "lab"],
                           capture_output=True, text=True, timeout=60)
        assert r.stdout, r.stderr
        cli[f"dynia {' '.join(args)}"] = r.stdout + r.stderr
    assert (run.root / "deploy-config" / "lab").is_dir()
    leaks = []
    texts = {"stdout/stderr of every run": run.output.read_bytes().decode(errors="replace"),
             **cli,
             "failed commands' output": "\n".join(run.failures),
             "pebble's and challtestsrv's logs": run.acme.log("pebble") + run.acme.log("pebble-challtestsrv")}
    # The project: deploy-config/ and .dynia/ hold no ACME secret at all (the state lives in
    # the provision stack's secret output; the lab's SSH key and stats credentials are not ACME's).
    for base in (run.root / "deploy-config", run.root / ".dynia"):
        for path in base.rglob("*") if base.exists() else ():
            if path.is_file():
                texts[str(path.relative_to(run.root))] = path.read_bytes().decode(errors="replace")
    for name, text in texts.items():
        if any(n in text for n in needles):
            leaks.append(name)
    # The nodes: logs, dynia's state and rendered files. The certificate key's one home is the
    # secret slot PATHS.origin_pem (and the apply script's backups of that slot).
    pattern = "\n".join(needles)
    slots = []
    for node in NODES:
        found = run.lc.lab.run(node, "grep -rlF -f /dev/stdin /var/log /opt/dynia /etc/haproxy /etc/caddy "
                                     "/etc/keepalived /etc/dynia 2>/dev/null; true", input=pattern.encode())
        for path in found.stdout.decode().split():
            if path == PATHS.origin_pem:
                slots.append(node)
            elif not path.startswith(PATHS.backups_dir + "/"):
                leaks.append(f"{node}:{path}")
    assert not leaks, f"a private key's bytes in: {leaks}"
    assert slots == list(NODES)  # positive control: the grep finds the key in its slot
    # The state itself never prints its keys.
    assert all(n not in repr(s) for s in run.states for n in needles)
