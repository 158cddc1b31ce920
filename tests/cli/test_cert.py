"""`dynia cert renew|provision` as cron and CI see them: exit codes, "nothing to do", --json,
and on a failed order nothing stored or pushed. The engine is a stand-in (its conversation with
Pulumi is tests/engine's; the order itself is tests/unit/test_acme_pebble.py's)."""
from __future__ import annotations

import contextlib
import datetime as dt
import json

import pytest

from dynia.operations import certs
from dynia.acme.client import new_key_pem
from dynia.operations.certs import AcmeState
from dynia.engine.automation import Engine
from dynia.errors import DyniaError
from dynia.state.store import Project
from dynia.spec.load import load_cluster
from dynia.tls import self_signed_pem

ALL = ("admin.example.com", "api.example.com", "example.com", "www.example.com")
STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"


class Out:
    def __init__(self, value, secret=False):
        self.value, self.secret = value, secret


class FakeStack:
    """The provision stack as the engine sees it: its `acme` output and its config, both kept
    across commands (each command builds a new engine, as each dynia run does)."""

    def __init__(self):
        self.config: dict[str, str] = {}
        self.acme: dict | None = None
        self.nodes: dict | None = None

    def outputs(self):
        out = {"acme": Out(self.acme, True)} if self.acme else {}
        if self.nodes:
            out["nodes"], out["reservedIp"] = Out(self.nodes), Out("203.0.113.100")
        return out

    def get_config(self, key):
        from pulumi.automation import ConfigValue

        if key not in self.config:
            raise RuntimeError(f"configuration key '{key}' not found for stack")
        return ConfigValue(self.config[key], secret=True)

    def set_config(self, key, value):
        self.config[key] = value.value

    def remove_config(self, key):
        del self.config[key]


class FakeEngine(Engine):
    """The real Engine (acme_state, keep_acme, acme_pending, the config clean-up) on a fake
    stack; `up` stands in for Pulumi: provision exports the state in force, `fail` makes a
    phase fail the way Engine._failure reports it."""

    def __init__(self, cluster, stack, fail=None):
        super().__init__(cluster)
        self.fake, self.ran, self.fail = stack, [], fail
        self.previewed, self.pending = [], []

    def stack(self, phase):
        return self.fake

    def preview(self, phases):
        self.previewed.append(tuple(phases))
        return [row for row in self.pending if row.phase in phases]

    def releases(self):
        return list(getattr(self, "kept", []))

    def keep_releases(self, history):   # the ledger stack's update (dynia.operations.releases)
        self.kept = history

    def up(self, phases, **kw):
        for phase in phases:
            self.ran.append((phase,))
            if phase == self.fail:
                raise DyniaError("engine", f"phase {phase} failed: interrupted", "rerun with --debug",
                                 f"dynia up --phase {phase} --cluster shop")
            if phase == "provision":
                self.fake.acme = self.acme_state().to_dict()
                self._forget_acme_config(self.fake)
        return {}


@pytest.fixture
def letsencrypt(project, monkeypatch):
    path = project / "clusters/shop.yaml"
    path.write_text(path.read_text().replace("  mode: origin\n", "  mode: letsencrypt\n  acme_directory: staging\n"))
    box = {"stack": FakeStack(), "stale": {}, "fail": None}

    @contextlib.contextmanager
    def fake_engine_for(ctx, cluster, before_load=None, on_progress=None):
        if "state" in box:
            box["stack"].acme = box.pop("state").to_dict()
        box["engine"] = FakeEngine(load_cluster(Project(project), "shop"), box["stack"], box["fail"])
        box["engine"].pending = list(box.get("pending", []))
        yield box["engine"]

    monkeypatch.setattr("dynia.cli.cert.engine_for", fake_engine_for)
    monkeypatch.setattr("dynia.engine.session.targets", lambda cluster: ["misty-owl", "brave-panda"])
    monkeypatch.setattr(certs, "stale_nodes", lambda cluster, state, targets: dict(box["stale"]))
    # The zone's DNS API (DNS-01): tests/unit/test_acme_dns.py's; here the order is a stand-in.
    monkeypatch.setattr(certs, "default_dns", lambda cluster: box.get("dns"))
    return project, box


def stored(box) -> AcmeState | None:
    return AcmeState.from_dict(box["stack"].acme) if box["stack"].acme else None


def state(days_left: float, domains=ALL, issued=False) -> AcmeState:
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    return AcmeState(new_key_pem(), self_signed_pem("example.com").decode(), now + dt.timedelta(days=days_left),
                     tuple(domains), STAGING, issued_at=now if issued else None)


def test_renew_with_more_than_30_days_left_is_nothing_to_do_and_exit_0(cli, letsencrypt):
    project, box = letsencrypt
    box["state"] = state(60)
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop")
    assert r.code == 0 and "nothing to do" in r.out
    assert box["engine"].ran == [] and box["stack"].config == {}
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop", "--json")
    out = json.loads(r.out)
    assert r.code == 0 and out["action"] == "nothing to do" and out["certificate"]["domains"] == list(ALL)
    assert "PRIVATE KEY" not in r.out + r.err


def test_renew_when_due_orders_stores_then_rolls_and_prints_no_key(cli, letsencrypt, monkeypatch):
    project, box = letsencrypt
    box["state"] = state(10)
    fresh = state(90, issued=True)
    monkeypatch.setattr(certs, "obtain", lambda cluster, targets, old, verify=True, **kw: fresh)
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["action"] == "renewed" and out["reason"].startswith("expires ")
    assert stored(box) == fresh and box["engine"].ran == [("provision",), ("infra",)]
    assert box["stack"].config == {}   # stored as the output: the config copy is gone
    assert "PRIVATE KEY" not in r.out + r.err


def test_renew_when_a_bound_domain_is_not_covered_renews(cli, letsencrypt, monkeypatch):
    project, box = letsencrypt
    box["state"] = state(80, domains=ALL[1:])
    monkeypatch.setattr(certs, "obtain", lambda cluster, targets, old, verify=True, **kw: state(90, issued=True))
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop")
    assert r.code == 0 and "does not cover admin.example.com" in r.out


def test_a_failed_order_exits_18_with_the_domain_and_pushes_nothing(cli, letsencrypt, monkeypatch):
    project, box = letsencrypt
    box["state"] = state(5)

    def refused(cluster, targets, old, verify=True, **kw):
        raise DyniaError("cert", "api.example.com: Non-200 status code from HTTP", "check the record")

    monkeypatch.setattr(certs, "obtain", refused)
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop")
    assert r.code == 18
    assert "api.example.com: Non-200 status code from HTTP" in r.err and "dynia cert renew --cluster shop" in r.err
    assert box["engine"].ran == [] and box["stack"].config == {}   # nothing kept, stored or pushed


def test_cert_provision_dry_run_previews_the_order_without_the_network_or_a_key(cli, letsencrypt):
    project, box = letsencrypt
    box["state"] = certs.placeholder_state(load_cluster(Project(project), "shop").spec)
    r = cli("-C", str(project), "cert", "provision", "--dry-run", "--cluster", "shop", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["domains"] == list(ALL) and out["directory"] == STAGING and out["account"] == "new"
    assert out["reason"] == "only the self-signed placeholder so far" and box["engine"].ran == []
    assert out["challenges"] == {d: "http-01" for d in ALL}   # no DNS API: every name over HTTP-01
    assert "PRIVATE KEY" not in r.out


def test_cert_provision_dry_run_says_which_names_would_go_over_dns01(cli, letsencrypt):
    project, box = letsencrypt

    class Zone:
        def without_record(self, domains):
            return [d for d in domains if d == "admin.example.com"]

    box["state"], box["dns"] = state(80, domains=ALL[1:]), Zone()
    r = cli("-C", str(project), "cert", "provision", "--dry-run", "--cluster", "shop")
    assert r.code == 0, r.err
    out = " ".join(r.out.split())
    assert ("admin.example.com (dns-01), api.example.com (http-01), example.com (http-01)" in out
            and "due: does not cover admin.example.com" in out), out
    assert box["engine"].ran == []


def test_cert_provision_reuses_a_valid_covering_certificate_unless_forced(cli, letsencrypt, monkeypatch):
    """Six provisions in a week must not hit Let's Encrypt's duplicate-certificate limit."""
    project, box = letsencrypt
    box["state"] = state(80)
    monkeypatch.setattr(certs, "obtain", lambda *a, **k: pytest.fail("a covering certificate is reused"))
    r = cli("-C", str(project), "cert", "provision", "--cluster", "shop", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["action"] == "reused" and box["engine"].ran == []
    r = cli("-C", str(project), "cert", "provision", "--cluster", "shop")
    assert "reused the stored certificate" in r.out and "`--force` orders a new one" in r.out
    r = cli("-C", str(project), "cert", "provision", "--dry-run", "--cluster", "shop")
    assert r.code == 0 and "would reuse the stored certificate" in r.out
    # one not covering a bound domain is not reused
    box["state"] = state(80, domains=ALL[1:])
    monkeypatch.setattr(certs, "obtain", lambda cluster, targets, old, verify=True, **kw: state(90, issued=True))
    r = cli("-C", str(project), "cert", "provision", "--cluster", "shop")
    assert r.code == 0 and "certificate issued for admin.example.com" in r.out
    box["state"] = state(80)
    r = cli("-C", str(project), "cert", "provision", "--force", "--cluster", "shop", "--json")
    out = json.loads(r.out)
    assert r.code == 0 and out["action"] == "issued" and out["reason"] == "ordered on request"
    assert box["engine"].ran == [("provision",), ("infra",)]


def test_up_orders_before_the_apps_phase_when_a_newly_bound_domain_is_not_covered(cli, letsencrypt, monkeypatch):
    """The certificate first — ordered, stored (provision), rolled (infra) — then the apps phase,
    which creates the new name's DNS record after the service's gates: the record never points
    at a name the certificate in force does not cover."""
    project, box = letsencrypt
    box["state"] = state(80, domains=ALL[1:])
    box["dns"] = object()   # the zone's DNS API, as obtain receives it
    monkeypatch.setattr("dynia.cli.up.engine_for", __import__("dynia.cli.cert", fromlist=["x"]).engine_for)
    seen = []

    def order(cluster, targets, old, verify=True, dns=None, over_dns=None, **kw):
        seen.append((list(box["engine"].ran), dns))
        over_dns.append("admin.example.com")   # no record yet: DNS-01
        return state(90, issued=True)

    monkeypatch.setattr(certs, "obtain", order)
    r = cli("-C", str(project), "up", "--phase", "apps", "--cluster", "shop", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["phases"] == ["apps"] and out["certificate"]["domains"] == list(ALL)
    assert out["certificate"]["over_dns"] == ["admin.example.com"]
    assert seen == [([], box["dns"])]                                 # ordered before anything ran
    assert box["engine"].ran == [("provision",), ("infra",), ("apps",)]
    assert "PRIVATE KEY" not in r.out


def test_a_whole_up_orders_between_infra_and_apps_and_says_which_names_went_over_dns(cli, letsencrypt,
                                                                                     monkeypatch):
    project, box = letsencrypt
    box["state"] = state(80, domains=ALL[1:])
    monkeypatch.setattr("dynia.cli.up.engine_for", __import__("dynia.cli.cert", fromlist=["x"]).engine_for)
    monkeypatch.setattr("dynia.cli.up.up_with_progress", __import__("dynia.cli.up", fromlist=["x"]).apply_parts)
    ran_at_order = []

    def order(cluster, targets, old, verify=True, dns=None, over_dns=None, **kw):
        ran_at_order.append(list(box["engine"].ran))
        over_dns.append("admin.example.com")
        return state(90, issued=True)

    monkeypatch.setattr(certs, "obtain", order)
    r = cli("-C", str(project), "up", "--cluster", "shop")
    assert r.code == 0, r.err
    assert ran_at_order == [[("provision",), ("infra",)]]
    assert box["engine"].ran == [("provision",), ("infra",), ("provision",), ("infra",), ("apps",)]
    out = " ".join(r.out.split())
    assert "ordering one that covers admin.example.com before the apps phase creates their DNS records" in out
    assert "validated over DNS-01, before their records existed: admin.example.com" in out


def test_up_orders_nothing_when_the_certificate_covers_every_domain(cli, letsencrypt, monkeypatch):
    project, box = letsencrypt
    box["state"] = state(80)
    monkeypatch.setattr("dynia.cli.up.engine_for", __import__("dynia.cli.cert", fromlist=["x"]).engine_for)
    r = cli("-C", str(project), "up", "--phase", "apps", "--cluster", "shop", "--json")
    assert r.code == 0 and "certificate" not in json.loads(r.out)
    assert box["engine"].ran == [("apps",)]


def test_a_failed_order_for_a_new_name_stops_before_apps_exits_18_and_says_how_to_retry(cli, letsencrypt,
                                                                                      monkeypatch):
    project, box = letsencrypt
    box["state"] = state(80, domains=ALL[1:])
    monkeypatch.setattr("dynia.cli.up.engine_for", __import__("dynia.cli.cert", fromlist=["x"]).engine_for)

    def refused(cluster, targets, old, verify=True, **kw):
        raise DyniaError("cert", "admin.example.com: DNS problem: NXDOMAIN", "check the record")

    monkeypatch.setattr(certs, "obtain", refused)
    r = cli("-C", str(project), "up", "--phase", "apps", "--cluster", "shop", "--json")
    assert r.code == 18 and "dynia cert renew --cluster shop" in r.err
    assert "the apps phase did not run" in r.err and "dynia up --phase apps --cluster shop" in r.err
    assert box["engine"].ran == [] and box["stack"].config == {}   # no apps: no record for admin.example.com


def test_a_kept_order_from_before_a_new_binding_is_stored_then_a_covering_one_ordered_before_apps(
        cli, letsencrypt, monkeypatch):
    """An interrupted run kept an order for api + apex; admin was bound since. Storing the kept
    order is not enough: apps would make admin's record under a certificate without it."""
    from dynia.engine.automation import ACME_CONFIG

    project, box = letsencrypt
    box["state"] = state(80, domains=ALL[1:])
    box["stack"].config[ACME_CONFIG] = json.dumps(state(85, domains=ALL[1:], issued=True).to_dict())
    monkeypatch.setattr("dynia.cli.up.engine_for", __import__("dynia.cli.cert", fromlist=["x"]).engine_for)
    orders = []

    def order(cluster, targets, old, verify=True, **kw):
        orders.append(list(box["engine"].ran))
        return state(90, issued=True)

    monkeypatch.setattr(certs, "obtain", order)
    r = cli("-C", str(project), "up", "--phase", "apps", "--cluster", "shop", "--json")
    assert r.code == 0, r.err
    assert orders == [[("provision",), ("infra",)]]   # after storing the kept one, before apps
    assert box["engine"].ran == [("provision",), ("infra",), ("provision",), ("infra",), ("apps",)]
    assert stored(box).domains == ALL and json.loads(r.out)["certificate"]["domains"] == list(ALL)


def test_an_expired_certificate_is_not_a_warning_its_failed_order_stops_before_apps(cli, letsencrypt, monkeypatch):
    project, box = letsencrypt
    box["state"] = state(-1)
    monkeypatch.setattr("dynia.cli.up.engine_for", __import__("dynia.cli.cert", fromlist=["x"]).engine_for)

    def refused(cluster, targets, old, verify=True, **kw):
        raise DyniaError("cert", "example.com: the ACME directory did not answer", "check the network")

    monkeypatch.setattr(certs, "obtain", refused)
    r = cli("-C", str(project), "up", "--phase", "apps", "--cluster", "shop", "--json")
    assert r.code == 18 and box["engine"].ran == []


@pytest.mark.parametrize("kind", ["dns", "network", "cert"])
def test_a_renewal_that_fails_before_ordering_for_any_reason_is_a_warning(cli, letsencrypt, monkeypatch, kind):
    """Cloudflare down, its token missing, the CA down: nothing was kept, the certificate still
    covers every domain for 20 days — apps goes on."""
    project, box = letsencrypt
    box["state"] = state(20)
    monkeypatch.setattr("dynia.cli.up.engine_for", __import__("dynia.cli.cert", fromlist=["x"]).engine_for)

    def no_dns(cluster):
        raise DyniaError(kind, "Cloudflare API unreachable (TimeoutError: timed out)", "check the network")

    monkeypatch.setattr(certs, "default_dns", no_dns)
    r = cli("-C", str(project), "up", "--phase", "apps", "--cluster", "shop", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert box["engine"].ran == [("apps",)] and "due for renewal but the order failed" in out["certificate"]["warnings"][0]


def test_a_failed_renewal_of_a_certificate_that_still_covers_everything_is_a_warning_and_apps_runs(
        cli, letsencrypt, monkeypatch):
    """20 days left and the CA is down: shipping an app fix must not wait for it."""
    project, box = letsencrypt
    box["state"] = state(20)
    monkeypatch.setattr("dynia.cli.up.engine_for", __import__("dynia.cli.cert", fromlist=["x"]).engine_for)
    monkeypatch.setattr("dynia.cli.up.up_with_progress", __import__("dynia.cli.up", fromlist=["x"]).apply_parts)

    def refused(cluster, targets, old, verify=True, **kw):
        raise DyniaError("cert", "example.com: the ACME directory did not answer", "check the network")

    monkeypatch.setattr(certs, "obtain", refused)
    r = cli("-C", str(project), "up", "--phase", "apps", "--cluster", "shop")
    assert r.code == 0, r.err
    assert box["engine"].ran == [("apps",)]
    out = " ".join(r.out.split())
    assert "due for renewal but the order failed" in out and "dynia cert renew --cluster shop" in out


# --- an order is never lost, a partial roll is finished, a fresh checkout finds its nodes ---------

def test_a_provision_failing_after_an_order_keeps_it_and_the_next_renew_stores_it_without_ordering(
        cli, letsencrypt, monkeypatch):
    """Ctrl-C, a provider error, a refused host key... between the order and the store: the
    order survives in the provision stack's config, and the retry reuses it (Let's Encrypt
    allows 5 duplicate certificates a week; a first order would also lose its account key)."""
    project, box = letsencrypt
    old = state(10)
    box["state"], box["fail"] = old, "provision"
    fresh = state(90, issued=True)
    orders = []
    monkeypatch.setattr(certs, "obtain", lambda cluster, targets, prev, verify=True, **kw: orders.append(1) or fresh)
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop")
    assert r.code != 0 and len(orders) == 1 and stored(box) == old   # ordered, not stored
    assert "kept in the provision stack's config (dynia:acme)" in r.err and "nothing is ordered again" in r.err
    assert "dynia cert renew --cluster shop" in r.err and "PRIVATE KEY" not in r.out + r.err
    box["fail"] = None
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert len(orders) == 1 and out["action"] == "stored"       # the second run ordered nothing
    assert stored(box) == fresh and box["engine"].ran == [("provision",), ("infra",)]
    assert box["stack"].config == {}    # the output holds it now: the config copy is removed


def test_a_stale_config_copy_never_wins_over_a_newer_output_and_is_removed_by_the_next_provision(
        cli, letsencrypt, monkeypatch):
    """A by-hand `pulumi config set dynia:acme` that outlived a renewal must not roll the old
    certificate back."""
    project, box = letsencrypt
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    older = AcmeState(new_key_pem(), self_signed_pem("example.com").decode(), now + dt.timedelta(days=40), ALL,
                      STAGING, issued_at=now - dt.timedelta(days=50))
    newer = AcmeState(older.account_key, self_signed_pem("example.com").decode(), now + dt.timedelta(days=89), ALL,
                      STAGING, issued_at=now - dt.timedelta(days=1))
    box["state"] = newer
    box["stack"].config["dynia:acme"] = json.dumps(older.to_dict())
    monkeypatch.setattr(certs, "obtain", lambda *a, **k: pytest.fail("nothing is due"))
    r = cli("-C", str(project), "cert", "provision", "--cluster", "shop", "--dry-run", "--json")
    assert json.loads(r.out)["current"]["not_after"][:10] == f"{newer.not_after:%Y-%m-%d}"
    box["stale"] = {"misty-owl": "serves 0123…"}
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop", "--json")
    assert r.code == 0, r.err
    assert box["engine"].ran == [("infra",)] and stored(box) == newer


def test_renew_rolls_the_stored_certificate_to_nodes_a_stopped_roll_left_behind(cli, letsencrypt, monkeypatch):
    """An infra roll that stopped at a failed gate leaves the VIP holder (last in rolling
    order) on the old certificate: renew must not say "nothing to do" while a node differs."""
    project, box = letsencrypt
    box["state"] = state(60)
    box["stale"] = {"misty-owl": "serves 0123456789abcdef…, the stored certificate is fedcba9876543210…"}
    monkeypatch.setattr(certs, "obtain", lambda *a, **k: pytest.fail("nothing is due: no order"))
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop")
    assert r.code == 0, r.err
    assert "rolled the stored certificate" in r.out and "to 1 node that did not serve it: misty-owl" in r.out
    assert box["engine"].ran == [("infra",)]
    box["stale"] = {}
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop", "--json")
    assert json.loads(r.out)["action"] == "nothing to do" and box["engine"].ran == []


def test_renew_on_a_fresh_checkout_reads_the_nodes_from_the_provision_stack(cli, letsencrypt, monkeypatch):
    """CI: no .dynia/cache. The nodes come from the provision stack's outputs, not a stale or
    missing cache."""
    from dynia.state.cache import ClusterCache

    project, box = letsencrypt
    cluster = load_cluster(Project(project), "shop")
    assert ClusterCache.of(cluster).read_outputs() is None   # no cache: a fresh checkout

    def cached_nodes(c):   # what session.targets reads: the cache's nodes (SSH set-up aside)
        outputs = ClusterCache.of(c).read_outputs()
        return sorted(outputs.nodes) if outputs else []

    monkeypatch.setattr("dynia.engine.session.targets", cached_nodes)
    seen = []
    monkeypatch.setattr(certs, "obtain", lambda c, targets, prev, verify=True, **kw:
                        seen.extend(targets) or state(90, issued=True))
    box["state"] = state(10)
    key = "AAAAC3NzaC1lZDI1NTE5AAAAIMzQ0zS2P0n2j1qk0p2yqgYb7b3Xc9m5g8a9m1Hq7nq0"
    box["stack"].nodes = {n: {"public_ip": f"203.0.113.{i + 10}", "private_ip": f"10.110.0.{i + 10}",
                              "droplet_id": str(i), "host_key": f"ssh-ed25519 {key}", "host_key_source": "generated"}
                          for i, n in enumerate(cluster.spec.nodes)}
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop", "--json")
    assert r.code == 0, r.err
    assert seen == sorted(cluster.spec.nodes) and json.loads(r.out)["action"] == "renewed"


def test_origin_renew_on_a_fresh_checkout_reads_the_certificate_from_the_provision_stack(cli, project, monkeypatch):
    from dynia.tls import self_signed_pem as pem_of

    stack = FakeStack()
    stack.nodes = {"misty-owl": {"public_ip": "203.0.113.10", "private_ip": "10.110.0.10", "droplet_id": "1"}}
    origin = pem_of("example.com").decode()
    outputs = stack.outputs

    stack.outputs = lambda: {**outputs(), "originPem": Out(origin, True)}

    @contextlib.contextmanager
    def fake_engine_for(ctx, cluster, before_load=None, on_progress=None):
        yield FakeEngine(load_cluster(Project(project), "shop"), stack)

    monkeypatch.setattr("dynia.cli.cert.engine_for", fake_engine_for)
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["action"] == "nothing to do" and "PRIVATE KEY" not in r.out


def _engine_for(project, box):
    @contextlib.contextmanager
    def fake_engine_for(ctx, cluster, before_load=None, on_progress=None):
        if "state" in box:
            box["stack"].acme = box.pop("state").to_dict()
        box["engine"] = FakeEngine(load_cluster(Project(project), "shop"), box["stack"], box["fail"])
        yield box["engine"]
    return fake_engine_for


def test_renew_with_pending_changes_rolls_the_certificate_slot_alone_and_names_what_it_left(
        cli, letsencrypt, monkeypatch):
    """Cron must neither roll out a change nobody reviewed nor wait for one (every dynia upgrade
    makes something pending): the certificate slot alone goes to the nodes, the rest is named."""
    from dynia.operations import cert_slot
    from dynia.engine.automation import ChangeRow

    project, box = letsencrypt
    box["state"] = state(10)
    fresh = state(90, issued=True)
    box["pending"] = [ChangeRow("provision", "misty-owl", "misty-owl", "digitalocean:index/droplet:Droplet", "update",
                                ["size"]),
                      ChangeRow("infra", "brave-panda", "brave-panda-infra-push", "dynia:push", "update")]
    monkeypatch.setattr(certs, "obtain", lambda *a, **k: fresh)
    rolled = []
    monkeypatch.setattr(cert_slot, "roll_slot", lambda cluster, pem, only=None, on_progress=None:
                        rolled.append((pem, only)) or ("brave-panda", "misty-owl"))
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop")
    assert r.code == 0, r.err
    assert box["engine"].ran == [] and box["engine"].previewed == [("provision", "infra")]   # no Pulumi update
    assert rolled == [(fresh.pem, None)]
    assert AcmeState.from_dict(json.loads(box["stack"].config["dynia:acme"])) == fresh   # kept: next `up` stores it
    text = " ".join((r.out + r.err).split())
    assert "rolled the certificate slot alone; pending changes left for `dynia plan` and `dynia up --cluster " \
           "shop`: provision: update misty-owl; infra: update brave-panda-infra-push" in text
    assert "rolled alone to brave-panda, misty-owl" in text and "PRIVATE KEY" not in r.out + r.err
    # the next renewal: the kept order is served everywhere, so nothing is pushed again
    rolled.clear()
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop", "--json")
    assert r.code == 0 and json.loads(r.out)["action"] == "nothing to do" and rolled == []
    # a node still serving the old one gets the kept order alone, nothing ordered
    box["stale"] = {"misty-owl": "serves 0123…"}
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop")
    assert r.code == 0 and rolled == [(fresh.pem, {"misty-owl"})] and box["engine"].ran == []
    # the push to a node a stopped roll left behind is what the roll itself finishes: not pending
    box["stale"], rolled[:] = {"brave-panda": "serves 0123…"}, []
    box["stack"].config.clear()
    box["state"] = state(60)
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop")
    assert r.code == 0, r.err
    assert box["engine"].ran == [] and rolled and rolled[0][1] == {"brave-panda"}
    box["pending"] = box["pending"][1:]   # only the push to that node: nothing else pending
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop")
    assert r.code == 0 and box["engine"].ran == [("infra",)]   # the full infra roll, as before


def test_renew_with_nothing_due_previews_nothing(cli, letsencrypt):
    """The daily cron run costs one probe of the nodes, not a Pulumi preview."""
    project, box = letsencrypt
    box["state"] = state(60)
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop")
    assert r.code == 0 and box["engine"].previewed == []
