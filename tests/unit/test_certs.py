"""tls.mode letsencrypt without the network: what the certificate covers, when it is renewed,
the state kept with the provision stack, and that no key ever reaches an error or a repr."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from dynia.operations import certs
from dynia.acme.client import Issued, new_key_pem
from dynia.operations.certs import AcmeState, covered_domains, needs_renewal, renewal_reason
from dynia.errors import DyniaError
from dynia.state.store import Project
from dynia.spec.load import load_cluster
from dynia.tls import proxied, self_signed_pem, uses_acme

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.timezone.utc)
STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
ALL = ["admin.example.com", "api.example.com", "example.com", "www.example.com"]


def unbound(spec, *names):
    """The spec with these services' domains unbound (specs are frozen: a copy)."""
    services = {n: s.model_copy(update={"domain": None}) if n in names else s for n, s in spec.services.items()}
    return spec.model_copy(update={"services": services})


@pytest.fixture
def shop(project):
    path = project / "clusters/shop.yaml"
    path.write_text(path.read_text().replace("  mode: origin\n", "  mode: letsencrypt\n  acme_directory: staging\n"))
    return load_cluster(Project(project), "shop")


def state(domains, days_left=60.0, directory=STAGING, placeholder=False, key=True) -> AcmeState:
    return AcmeState(new_key_pem() if key else None, self_signed_pem("example.com").decode(),
                     NOW + dt.timedelta(days=days_left), tuple(domains), directory, placeholder)


def test_the_certificate_covers_every_bound_domain_and_the_apex_when_a_service_is_bound_to_it(shop):
    assert covered_domains(shop.spec) == ALL
    assert covered_domains(unbound(shop.spec, "web")) == ALL[:2]   # the apex only when bound


def test_letsencrypt_records_are_dns_only_and_origin_records_proxied():
    assert proxied("origin") is True and proxied("letsencrypt") is False
    assert uses_acme("letsencrypt") and not uses_acme("origin")


@pytest.mark.parametrize("current,expected", [
    (None, "no certificate yet"),
    ("placeholder", "only the self-signed placeholder so far"),
    ("expiring", "expires 2026-12-18 (20 days left, renewed within 30)"),
    ("narrow", "does not cover example.com, www.example.com"),
    ("other-ca", f"issued by https://acme.example/dir, tls.acme_directory is now {STAGING}"),
    ("fresh", None),
])
def test_renewal_is_due_when_missing_placeholder_expiring_narrow_or_from_another_ca(shop, current, expected):
    both = ALL
    s = {None: None, "placeholder": state([], placeholder=True, key=False), "expiring": state(both, 20),
         "narrow": state(ALL[:2]), "other-ca": state(both, directory="https://acme.example/dir"),
         "fresh": state(both + ["old.example.com"], 31)}[current]
    assert renewal_reason(s, shop.spec, NOW) == expected
    assert needs_renewal(s, shop.spec, NOW) is (expected is not None)


def test_exactly_thirty_days_left_renews():
    class Spec:
        services: dict = {}
        tls = type("T", (), {"directory_url": STAGING})()
    assert needs_renewal(state([], 30), Spec(), NOW) and not needs_renewal(state([], 30.01), Spec(), NOW)


def test_the_state_round_trips_through_the_dict_the_provision_stack_keeps():
    s = state(["api.example.com"])
    s = AcmeState(s.account_key, s.pem, s.not_after.replace(microsecond=0), s.domains, s.directory,
                  issued_at=NOW)
    assert AcmeState.from_dict(s.to_dict()) == s
    p = state([], placeholder=True, key=False)
    back = AcmeState.from_dict(p.to_dict())
    assert back.placeholder and back.account_key is None


@pytest.mark.parametrize("damage", [
    lambda d: d.pop("pem"), lambda d: d.update(version=2), lambda d: d.update(pem="not a pem"),
    lambda d: d.update(not_after="tomorrow"), lambda d: d.update(domains="example.com"),
    lambda d: d.update(account_key="ssh-ed25519 AAAA"),
])
def test_a_damaged_state_is_a_state_error_that_quotes_nothing_of_it(damage):
    data = state(["api.example.com"]).to_dict()
    damage(data)
    with pytest.raises(DyniaError) as caught:
        AcmeState.from_dict(data)
    err = caught.value
    assert err.kind == "state" and "corrupt" in err.message
    assert "PRIVATE KEY" not in err.message + err.hint and "BEGIN" not in err.message + err.hint


def test_no_key_reaches_a_repr_or_the_printable_facts():
    s = state(["api.example.com"])
    issued = Issued(s.pem, new_key_pem(), s.not_after, s.domains)
    for text in (repr(s), str(s), repr(issued), repr(certs.public_facts(s)),
                 repr(certs.order_preview(s, type("S", (), {"services": {}, "tls": type(
                     "T", (), {"directory_url": STAGING, "email": None})()})(), NOW))):
        assert "PRIVATE KEY" not in text and "BEGIN" not in text


def test_the_placeholder_is_self_signed_for_the_zone_and_due_for_renewal(shop):
    p = certs.placeholder_state(shop.spec)
    assert p.placeholder and p.account_key is None and "BEGIN CERTIFICATE" in p.pem and "PRIVATE KEY" in p.pem
    assert needs_renewal(p, shop.spec, NOW)


def _valid_issue(fullchain="-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n"):
    return lambda domains, account_key_pem: (Issued(
        fullchain, "-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n",
        NOW + dt.timedelta(days=90), tuple(domains)), account_key_pem)


def test_obtain_publishes_on_every_node_with_the_live_holder_withdraws_always_and_keeps_the_account(
        shop, monkeypatch):
    from dynia.acme import client as acme_client
    from dynia.nodes import challenge

    calls = []
    monkeypatch.setattr("dynia.nodes.gather.vip_holder", lambda targets: calls.append(("holder", targets)) or "n2")
    monkeypatch.setattr(challenge, "publish",
                        lambda targets, answers, holder: calls.append(("publish", targets, answers, holder)) or {})
    monkeypatch.setattr(challenge, "withdraw", lambda targets, tokens: calls.append(("withdraw", targets, tokens)) or {})
    old = state(["api.example.com"])

    def fake_issue(domains, *, directory_url, email, account_key_pem, publish, withdraw, verify, timeout,
                   dns01, publish_txt, withdraw_txt):
        assert (domains, directory_url, account_key_pem, verify) == (
            ALL, STAGING, old.account_key, "/ca.pem")
        assert dns01 == frozenset() and publish_txt is None is withdraw_txt   # no DNS API: HTTP-01 only
        publish({"tok": "tok.thumb"})
        withdraw(["tok"])
        return _valid_issue()(domains, account_key_pem)

    monkeypatch.setattr(acme_client, "issue", fake_issue)
    warnings = []
    new = certs.obtain(shop, ["n1", "n2"], old, verify="/ca.pem", warnings=warnings)
    assert calls == [("holder", ["n1", "n2"]), ("publish", ["n1", "n2"], {"tok": "tok.thumb"}, "n2"),
                     ("withdraw", ["n1", "n2"], ["tok"])]
    assert warnings == []
    assert new.account_key == old.account_key and not new.placeholder and new.directory == STAGING
    assert new.domains == tuple(ALL)
    assert new.pem.index("BEGIN CERTIFICATE") < new.pem.index("BEGIN PRIVATE KEY")
    assert not needs_renewal(new, shop.spec, NOW)


def test_obtain_warns_about_a_node_that_missed_the_answers_or_kept_them(shop, monkeypatch):
    """One node down does not block the order (the holder answers the CA), and token files left
    behind are said, not discarded."""
    from dynia.acme import client as acme_client
    from dynia.nodes import challenge

    monkeypatch.setattr("dynia.nodes.gather.vip_holder", lambda targets: "n1")
    monkeypatch.setattr(challenge, "_run_all", lambda targets, command, stdin, timeout:
                        {"n3": "ConnectionRefusedError: refused"})

    def fake_issue(domains, *, account_key_pem, publish, withdraw, **kw):
        publish({"tok_AAAAAAAAAAAAAAAA": "tok_AAAAAAAAAAAAAAAA.thumb"})
        withdraw(["tok_AAAAAAAAAAAAAAAA"])
        return _valid_issue()(domains, account_key_pem)

    monkeypatch.setattr(acme_client, "issue", fake_issue)
    from dynia.nodes.push import Target

    nodes = [Target(n, f"203.0.113.{i}", "/k") for i, n in enumerate(["n1", "n2", "n3"])]
    warnings = []
    certs.obtain(shop, nodes, None, warnings=warnings)
    assert len(warnings) == 2
    assert warnings[0].startswith("the ACME challenge was not placed on n3 (ConnectionRefusedError: refused)")
    assert "only n1 (the VIP holder) answers it" in warnings[0]
    assert warnings[1].startswith("ACME challenge answers were left on n3") and "tok_AAAAAAAAAAAAAAAA" in warnings[1]


class FakeDns:
    """dynia.acme.dns01.Dns01's face: which names have a record, what was published, withdrawn."""

    def __init__(self, pointing, left=None):
        self.pointing, self.left, self.calls = set(pointing), left or {}, []

    def without_record(self, domains):
        return [d for d in domains if d not in self.pointing]

    def publish(self, values):
        self.calls.append(("publish_txt", dict(values)))

    def withdraw(self):
        self.calls.append(("withdraw_txt",))
        return dict(self.left)


def test_obtain_sends_names_without_a_record_over_dns01_and_the_rest_over_http01(shop, monkeypatch):
    from dynia.acme import client as acme_client
    from dynia.nodes import challenge

    monkeypatch.setattr("dynia.nodes.gather.vip_holder", lambda targets: "n1")
    monkeypatch.setattr(challenge, "publish", lambda targets, answers, holder: {})
    monkeypatch.setattr(challenge, "withdraw", lambda targets, tokens: {})
    seen = {}

    def fake_issue(domains, *, account_key_pem, dns01, publish_txt, withdraw_txt, publish, withdraw, **kw):
        seen["dns01"] = dns01
        publish_txt({f"_acme-challenge.{d}": "v" for d in sorted(dns01)})
        withdraw_txt()
        return _valid_issue()(domains, account_key_pem)

    monkeypatch.setattr(acme_client, "issue", fake_issue)
    dns = FakeDns(pointing=["api.example.com", "example.com"], left={"_acme-challenge.admin.example.com": "403"})
    warnings, over_dns = [], []
    certs.obtain(shop, ["n1", "n2"], None, dns=dns, warnings=warnings, over_dns=over_dns)
    # www.example.com (the storefront's second name) has no record yet either: DNS-01 too
    assert seen["dns01"] == frozenset({"admin.example.com", "www.example.com"})
    assert over_dns == ["admin.example.com", "www.example.com"]
    assert dns.calls == [("publish_txt", {"_acme-challenge.admin.example.com": "v",
                                          "_acme-challenge.www.example.com": "v"}), ("withdraw_txt",)]
    assert len(warnings) == 1 and warnings[0].startswith(
        "ACME TXT records were left in the zone: _acme-challenge.admin.example.com (403)")


def test_an_order_all_over_dns01_needs_neither_a_node_nor_the_vip_holder(shop, monkeypatch):
    """A first up: no name has a record yet, so nothing is published on a node."""
    from dynia.acme import client as acme_client

    monkeypatch.setattr("dynia.nodes.gather.vip_holder", lambda targets: pytest.fail("no holder needed"))

    def fake_issue(domains, *, account_key_pem, dns01, publish_txt, withdraw_txt, **kw):
        assert dns01 == frozenset(ALL)
        # the CA reused one authorization: only two TXT records
        publish_txt({f"_acme-challenge.{d}": "v" for d in ALL[1:]})
        withdraw_txt()
        return _valid_issue()(domains, account_key_pem)

    monkeypatch.setattr(acme_client, "issue", fake_issue)
    over_dns = []
    new = certs.obtain(shop, [], None, dns=FakeDns(pointing=[]), over_dns=over_dns)
    assert over_dns == ALL[1:] and new.domains == tuple(ALL)


def test_obtain_without_a_bound_domain_or_a_node_is_a_cert_error(shop):
    with pytest.raises(DyniaError) as caught:
        certs.obtain(shop, [], None)
    assert caught.value.kind == "cert" and "no node" in caught.value.message
    from dataclasses import replace

    bare = replace(shop, spec=unbound(shop.spec, *shop.spec.services))
    with pytest.raises(DyniaError) as caught:
        certs.obtain(bare, ["n1"], None)
    assert caught.value.kind == "cert" and "no service is bound" in caught.value.message


def test_the_vip_holder_must_take_the_challenge_the_others_are_best_effort(monkeypatch):
    from dynia.nodes import challenge
    from dynia.nodes.push import Target

    nodes = [Target("misty-owl", "203.0.113.1", "/k"), Target("brave-panda", "203.0.113.2", "/k")]
    failed = {"brave-panda": "exit 1: x"}
    monkeypatch.setattr(challenge, "_run_all", lambda targets, command, stdin, timeout: dict(failed))
    answers = {"tok_1": "tok_1.thumb"}
    assert challenge.publish(nodes, answers, "misty-owl") == {"brave-panda": "exit 1: x"}
    with pytest.raises(DyniaError) as caught:
        challenge.publish(nodes, answers, "brave-panda")
    assert caught.value.kind == "cert" and "brave-panda, the node holding the reserved IP (exit 1: x)" in \
        caught.value.message
    for holder in (None, "calm-heron"):   # unknown (no MASTER, or two), or not a provisioned node
        with pytest.raises(DyniaError) as caught:
            challenge.publish(nodes, answers, holder)
        assert caught.value.kind == "cert" and "which node holds it is unknown" in caught.value.message
    with pytest.raises(DyniaError):
        challenge.publish(nodes, {"../x": "../x.thumb"}, "misty-owl")   # never a path on a node


# --- status and infra verify show the expiry; verify flags letsencrypt's placeholder -------------

def test_status_shows_the_certificate_expiry_from_the_cache_and_never_a_key(shop):
    from dynia.state.cache import ClusterCache
    from dynia.operations.status import CertificateView, certificate_view
    from dynia.state.store import write_json
    from dynia.state.cache import CERTIFICATE_CACHE
    from dynia.tls import certificate_record

    missing = certificate_view(shop, NOW)
    assert missing.not_after is None and "does not exist" in missing.error
    pem = self_signed_pem("example.com", days=40).decode()
    cache = ClusterCache.of(shop)
    cache.dir.mkdir(parents=True, exist_ok=True)
    write_json(cache.dir / CERTIFICATE_CACHE, certificate_record(pem))
    view = certificate_view(shop, dt.datetime.now(dt.timezone.utc))
    assert isinstance(view, CertificateView) and view.days_left in (39, 40) and view.source == "cache"
    assert sorted(view.names) == ["*.example.com", "example.com"] and "KEY" not in repr(view)


def test_verify_fails_a_node_serving_the_letsencrypt_placeholder():
    from dynia.operations import verify as V

    der_pem = self_signed_pem("example.com").decode()
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    der = x509.load_pem_x509_certificate(der_pem.split("-----BEGIN PRIVATE KEY")[0].encode()).public_bytes(Encoding.DER)
    served = V.cert_info_der(der)
    assert served.self_signed
    base = dict(cluster="shop", nodes=["misty-owl"], reserved_ip="203.0.113.50", domains=["api.example.com"],
                proxied=False, applied_version=1, certificate=served, dns_provider=None, provider_kind="local")
    observed = V.Observed(facts={}, unreachable={}, served={"misty-owl": served}, sni="api.example.com")
    rows = [r for r in V.assemble(V.Expected(**base, acme=True), observed) if r.check == "certificate"]
    assert rows[0].status == "failed" and "self-signed placeholder" in rows[0].detail
    rows = [r for r in V.assemble(V.Expected(**base), observed) if r.check == "certificate"]
    assert rows[0].status == "ok"   # origin mode (the lab's stand-in is self-signed too)


# --- the engine keeps the state with the cluster's (the provision stack's secret output) ---------

@pytest.mark.parametrize("mode,stored,expect", [
    ("letsencrypt", None, "placeholder"), ("letsencrypt", "issued", "issued"), ("origin", None, None),
    ("origin", "issued", "issued")])
def test_the_engine_reads_the_acme_state_back_from_the_provision_stack_once(shop, monkeypatch, mode, stored, expect):
    from dataclasses import replace

    from dynia.engine.automation import Engine

    issued = AcmeState(new_key_pem(), self_signed_pem("example.com").decode(),
                       NOW.replace(microsecond=0), ("api.example.com",), STAGING)
    cluster = shop if mode == "letsencrypt" else replace(
        shop, spec=shop.spec.model_copy(update={"tls": shop.spec.tls.model_copy(update={"mode": "origin"})}))
    engine = Engine(cluster)
    reads = []

    class Stack:   # no dynia:acme in its config; set_config is what keep_acme must call
        config: dict = {}

        def get_config(self, key):
            reads.append(("config", key))
            raise RuntimeError(f"error: configuration key '{key}' not found for stack 'shop-provision'")

        def set_config(self, key, value):
            self.config[key] = value

    stack = Stack()
    monkeypatch.setattr(engine, "stack", lambda phase: stack if phase == "provision" else None)
    monkeypatch.setattr(Engine, "_output", staticmethod(
        lambda stack, name: reads.append(("provision", name))
        or (issued.to_dict() if stored and name == "acme" else None)))
    got = engine.acme_state()
    assert engine.acme_state() is got   # read once per command
    assert reads[:2] == [("provision", "acme"), ("config", "dynia:acme")][:2 if mode == "letsencrypt" else 1]
    assert reads[2:] == ([("provision", "originPem")] if expect == "placeholder" else [])  # not an origin cluster
    if expect is None:
        assert got is None
    elif expect == "placeholder":
        assert got.placeholder and got.account_key is None
    else:
        assert got == issued
    fresh = replace(issued, domains=ALL)
    engine.keep_acme(fresh)
    assert engine.acme_state() is fresh and len(reads) == 1 + (mode == "letsencrypt") + (expect == "placeholder")
    assert json.loads(stack.config["dynia:acme"].value) == fresh.to_dict() and stack.config["dynia:acme"].secret


def _fresh(days_ago: float, days_left: float = 60) -> AcmeState:
    return AcmeState(new_key_pem(), self_signed_pem("example.com").decode(), NOW + dt.timedelta(days=days_left),
                     tuple(ALL), STAGING, issued_at=NOW - dt.timedelta(days=days_ago))


class ConfigStack:
    """The provision stack's outputs and config, as the engine reads and writes them."""

    def __init__(self, output=None, config=None):
        self.output, self.config = output, dict(config or {})

    def outputs(self):
        return {"acme": type("O", (), {"value": self.output.to_dict(), "secret": True})()} if self.output else {}

    def get_config(self, key):
        from pulumi.automation import ConfigValue

        if key not in self.config:
            raise RuntimeError(f"error: configuration key '{key}' not found for stack 'shop-provision'")
        return ConfigValue(self.config[key], secret=True)

    def set_config(self, key, value):
        assert value.secret
        self.config[key] = value.value

    def remove_config(self, key):
        del self.config[key]


@pytest.mark.parametrize("output_age,config_age,wins,pending", [
    (40, 1, "config", True),      # an order a failed provision did not store: reused
    (1, 40, "output", False),     # a by-hand copy that outlived a renewal: never rolls it back
    (5, 5, "output", False),      # the same state
    (None, 3, "config", True),    # a first order: no output yet
])
def test_the_engine_takes_whichever_of_config_and_output_is_newer(shop, monkeypatch, output_age, config_age,
                                                                  wins, pending):
    from dynia.engine.automation import Engine

    out = _fresh(output_age) if output_age is not None else None
    kept = _fresh(config_age) if config_age != output_age else out
    stack = ConfigStack(out, {"dynia:acme": json.dumps(kept.to_dict())})
    engine = Engine(shop)
    monkeypatch.setattr(engine, "stack", lambda phase: stack)
    assert engine.acme_state() == (kept if wins == "config" else out) and engine.acme_pending() is pending
    engine._forget_acme_config(stack)   # what Engine.up does after a provision exported the state
    assert stack.config == {} and engine.acme_pending() is False


def test_an_order_kept_by_one_run_is_the_state_of_the_next_run(shop, monkeypatch):
    """keep_acme writes before provision runs: a new process (the retry) reads it back."""
    from dynia.engine.automation import Engine

    stack = ConfigStack(_fresh(80, 10))
    first = Engine(shop)
    monkeypatch.setattr(first, "stack", lambda phase: stack)
    first.acme_state()
    order = _fresh(0, 90)
    first.keep_acme(order)
    again = Engine(shop)
    monkeypatch.setattr(again, "stack", lambda phase: stack)
    assert again.acme_state() == order and again.acme_pending()


WRONG_PASSPHRASE = ("error: incorrect passphrase, please set PULUMI_CONFIG_PASSPHRASE to the correct passphrase or "
                    "set PULUMI_CONFIG_PASSPHRASE_FILE to a file containing the passphrase")


@pytest.mark.parametrize("fails", ["outputs", "config"])
def test_a_backend_error_reading_the_saved_order_is_an_engine_error_not_no_order(shop, monkeypatch, fails):
    """Only "configuration key … not found" means no order was kept: a wrong passphrase read as
    "nothing saved" would place a second order (Let's Encrypt allows 5 duplicates a week)."""
    from dynia.engine.automation import Engine

    class Locked(ConfigStack):
        name = "shop-provision"

        def outputs(self):
            if fails == "outputs":
                raise RuntimeError(f"\n code: 255\n stdout: \n stderr: {WRONG_PASSPHRASE}\n")
            return super().outputs()

        def get_config(self, key):
            if fails == "config":
                raise RuntimeError(f"\n code: 255\n stdout: \n stderr: {WRONG_PASSPHRASE}\n")
            return super().get_config(key)   # none kept: "configuration key … not found"

    engine = Engine(shop)
    monkeypatch.setattr(engine, "stack", lambda phase: Locked(_fresh(80, 10)))
    with pytest.raises(DyniaError) as exc:
        engine.acme_state()
    assert exc.value.kind == "engine" and exc.value.message == (
        "reading the state of stack shop-provision failed: error: incorrect passphrase, please set "
        "PULUMI_CONFIG_PASSPHRASE to the correct passphrase or set PULUMI_CONFIG_PASSPHRASE_FILE to a file containing "
        "the passphrase")
    assert exc.value.hint.startswith("PULUMI_CONFIG_PASSPHRASE must be the passphrase the state was made with")


def test_a_damaged_config_copy_is_a_state_error_that_quotes_nothing_of_it(shop, monkeypatch):
    from dynia.engine.automation import Engine

    stack = ConfigStack(None, {"dynia:acme": '{"version": 1, "pem": "-----BEGIN PRIVATE KEY----- secret"}'})
    engine = Engine(shop)
    monkeypatch.setattr(engine, "stack", lambda phase: stack)
    with pytest.raises(DyniaError) as exc:
        engine.acme_state()
    assert exc.value.kind == "state" and "dynia:acme" in exc.value.message and "secret" not in str(exc.value)


def test_status_json_with_a_certificate_is_the_documented_document():
    import dataclasses
    import json

    from dynia.operations import status as S
    from tests.unit.test_status import _conforms, assemble, recorded

    st = assemble(*recorded("lab-applied"))
    st.certificate = S.CertificateView("2027-02-01T00:00:00Z", 65, ["api.lab.example"], "cache")
    data = json.loads(json.dumps(st.as_dict()))
    _conforms(data, S.ClusterStatus)
    assert data["certificate"]["daysLeft"] == 65
    assert all(f.name in S.__doc__ for f in dataclasses.fields(S.CertificateView))


def test_status_prints_the_certificate_expiry(monkeypatch):
    from typer.testing import CliRunner

    from dynia.operations import status as S
    from tests.unit.test_status import _app, _fake_read, assemble, recorded

    st = assemble(*recorded("lab-applied"))
    st.certificate = S.CertificateView("2027-02-01T00:00:00Z", 65, ["api.lab.example"], "cache")
    _fake_read(monkeypatch, st)
    r = CliRunner().invoke(_app(), ["status"])
    assert r.exit_code == 0 and "certificate: expires 2027-02-01 (65 days)" in r.output
    st.certificate = S.CertificateView(None, None, [], "cache", "certificate.json does not exist")
    r = CliRunner().invoke(_app(), ["status"])
    assert "certificate: expiry unknown (certificate.json does not exist)" in r.output


@pytest.mark.parametrize("days,level,code,line", [
    (40, "ok", 0, "certificate: expires {d} (39 days)\n"),
    (20, "warning", 0, "certificate: expires {d} (19 days): renew it (`dynia cert renew`) and check the job"),
    (6, "failed", 4, "certificate: expires {d} (5 days): renew it now (`dynia cert renew`)")])
def test_status_warns_at_21_days_left_and_is_unhealthy_at_7(shop, monkeypatch, days, level, code, line):
    from typer.testing import CliRunner

    from dynia.operations import status as S
    from dynia.state.cache import CERTIFICATE_CACHE, ClusterCache
    from dynia.state.store import write_json
    from dynia.tls import certificate_record
    from tests.unit.test_status import _app, _fake_read, assemble, recorded

    pem = self_signed_pem("example.com", days=days).decode()
    ClusterCache.of(shop).dir.mkdir(parents=True, exist_ok=True)
    write_json(ClusterCache.of(shop).dir / CERTIFICATE_CACHE, certificate_record(pem))
    now = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    view = S.certificate_view(shop, now)
    assert view.level == level
    st = S.with_certificate(assemble(*recorded("lab-applied")), view, now)
    assert st.healthy is (level != "failed") and (level == "failed") == st.verdict.startswith(
        "unhealthy: the certificate expires")
    _fake_read(monkeypatch, st)
    r = CliRunner().invoke(_app(), ["status"])
    assert r.exit_code == code and line.format(d=view.not_after[:10]) in r.output, r.output


def test_stale_nodes_names_each_node_serving_another_certificate_or_not_answering(shop):
    """What decides "nothing to do": the fingerprint each node's own handshake reports."""
    from dynia.nodes import facts as F
    from dynia.nodes.gather import NodeFacts
    from dynia.nodes.push import Target

    current, old = _fresh(1), _fresh(70)

    def served(s):   # the fact as a node reports it (its parser, on the certificate block)
        return F.served_certificate_pem(s.pem.split("-----BEGIN PRIVATE KEY-----")[0], 0)

    answers = {"misty-owl": NodeFacts("misty-owl", {"served_certificate": served(current)}),
               "brave-panda": NodeFacts("brave-panda", {"served_certificate": served(old)}),
               "calm-heron": NodeFacts("calm-heron", error="timed out after 5s"),
               "shy-lynx": NodeFacts("shy-lynx", {"served_certificate": F.served_certificate_pem("", 1)})}
    asked = []

    def gather(targets, wanted):
        asked.extend(f.command for f in wanted)
        return {t.node: answers[t.node] for t in targets}

    nodes = [Target(n, f"203.0.113.{i}", "/k") for i, n in enumerate(answers)]
    stale = certs.stale_nodes(shop, current, nodes, gather=gather)
    assert sorted(stale) == ["brave-panda", "calm-heron", "shy-lynx"]
    assert stale["brave-panda"].startswith("serves ") and stale["calm-heron"] == "unreachable: timed out after 5s"
    assert "no TLS handshake" in stale["shy-lynx"]
    assert all(ALL[0] in c for c in asked)     # the SNI of a bound domain
    assert certs.stale_nodes(shop, current, nodes[:1], gather=gather) == {}


def test_switching_an_origin_cluster_to_letsencrypt_is_refused_before_anything_runs(shop, monkeypatch):
    """The provision stack holds an Origin CA certificate and no ACME state: letsencrypt now
    would revoke it and serve the self-signed placeholder behind the proxy (526)."""
    from dynia.engine.automation import Engine

    class Origin(ConfigStack):
        def outputs(self):
            out = type("O", (), {"value": "-----BEGIN CERTIFICATE-----…", "secret": True})()
            return {"originPem": out, "nodes": type("O", (), {"value": {"misty-owl": {}}, "secret": False})()}

    engine = Engine(shop)
    monkeypatch.setattr(engine, "stack", lambda phase: Origin())
    with pytest.raises(DyniaError) as caught:
        engine.acme_state()
    err = caught.value
    assert err.kind == "config" and "526" in err.message and "set tls.mode back to origin" in err.hint
    fresh = Engine(shop)   # a cluster never provisioned: the placeholder, no refusal
    monkeypatch.setattr(fresh, "stack", lambda phase: ConfigStack())
    assert fresh.acme_state().placeholder


# --- the certificate slot alone (`dynia cert renew` while other changes are pending) -------------

def test_the_certificate_bundle_carries_the_certificate_slot_alone_as_a_partial_infra_push(shop):
    from dynia.render.bundle import build_bundles, certificate_bundle
    from dynia.paths import PATHS
    from dynia.render.rendered import render_cluster

    rendering = render_cluster(shop)
    pem = self_signed_pem("example.com").decode()
    bundle = certificate_bundle(shop.spec, rendering, "misty-owl", pem.encode())
    assert bundle.layer == "infra" and bundle.partial and bundle.as_json()["partial"] is True
    assert [(f["target"], f["mode"], f["component"]) for f in bundle.files] == [(PATHS.origin_pem, "0600", "haproxy")]
    assert set(bundle.validate) == set(bundle.reload) == {"haproxy"} and bundle.component_order == ["haproxy"]
    full = build_bundles(shop.spec, rendering, "misty-owl", {"origin_certificate": pem.encode(),
                                                            "stats_credentials": b"x", "provider_token": b"t"})
    assert bundle.health == full["infra"].health   # the node is judged as by a full infra push
    assert "partial" not in full["infra"].as_json()   # every other push (and its trigger) unchanged


def test_roll_slot_pushes_in_rolling_order_holder_last_and_stops_at_the_first_failed_node(shop, monkeypatch):
    from dynia.operations import cert_slot
    from dynia.nodes.push import ApplyResult, Target

    hosts = [Target(n, f"203.0.113.{i}", shop.project.root / "key") for i, n in enumerate(shop.spec.nodes)]
    holder = shop.spec.nodes[0]
    monkeypatch.setattr(cert_slot, "targets", lambda cluster: hosts)
    monkeypatch.setattr(cert_slot, "vip_holder", lambda targets: holder)
    pushed, fail = [], set()

    def push(target, bundle):
        pushed.append(target.node)
        assert bundle.partial and len(bundle.files) == 1
        code = 30 if target.node in fail else 0
        return ApplyResult(target.node, "infra", code, {"status": "applied", "reason": "gate failed: haproxy"}, "", 0.1)

    monkeypatch.setattr(cert_slot, "push", push)
    pem = self_signed_pem("example.com").decode()
    assert cert_slot.roll_slot(shop, pem) == tuple(pushed) and pushed[-1] == holder and set(pushed) == set(shop.spec.nodes)
    pushed.clear()
    first = next(n for n in shop.spec.nodes if n != holder)
    fail.add(first)
    with pytest.raises(DyniaError) as err:
        cert_slot.roll_slot(shop, pem)
    assert pushed == [first] and err.value.kind == "health" and f"certificate roll stopped at {first}" in err.value.message
    assert err.value.resume == "dynia cert renew --cluster shop" and "nothing is ordered again" in err.value.hint


def test_the_docs_scheduled_renewal_job_runs_cert_renew_and_holds_no_secret():
    """The GitHub Actions example of docs/tls.md: valid YAML, scheduled, one `dynia cert renew` step, and
    every credential it passes is a reference to the repository's secrets, never a value."""
    import re
    from pathlib import Path

    from ruamel.yaml import YAML

    text = (Path(__file__).resolve().parents[2] / "docs" / "tls.md").read_text()
    block = text.split("# .github/workflows/dynia-cert-renew.yml\n", 1)[1].split("```", 1)[0]
    job = YAML(typ="safe").load(block)
    assert job["on"]["schedule"][0]["cron"]
    steps = job["jobs"]["renew"]["steps"]
    renew = [s for s in steps if s.get("run", "").startswith("dynia cert renew")]
    assert len(renew) == 1 and "--json" in renew[0]["run"]
    env = {k: v for s in steps for k, v in (s.get("env") or {}).items()}
    for name in ("DIGITALOCEAN_TOKEN", "DIGITALOCEAN_NODE_TOKEN", "CLOUDFLARE_API_TOKEN", "PULUMI_CONFIG_PASSPHRASE"):
        assert re.fullmatch(r"\$\{\{ secrets\.[A-Z_]+ \}\}", env[name]), name
    assert all(re.fullmatch(r"\$\{\{ secrets\.[A-Z_]+ \}\}", v) for v in env.values())
