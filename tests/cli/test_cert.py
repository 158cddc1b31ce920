"""`dynia cert renew|provision` as cron and CI see them: exit codes, "nothing to do", --json,
and on a failed order nothing stored or pushed. The engine is a stand-in (its conversation with
Pulumi is tests/engine's; the order itself is tests/unit/test_acme_pebble.py's)."""
from __future__ import annotations

import contextlib
import datetime as dt
import json

import pytest

from dynia import certs
from dynia.acme_client import new_key_pem
from dynia.certs import AcmeState
from dynia.errors import DyniaError
from dynia.store import Project, load_cluster
from dynia.tls import self_signed_pem

ALL = ("admin.example.com", "api.example.com", "example.com")
STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"


class FakeEngine:
    def __init__(self, cluster, state):
        self.cluster, self._state, self.ran, self.kept = cluster, state, [], None

    def acme_state(self):
        return self._state

    def keep_acme(self, state):
        self.kept = self._state = state

    def up(self, phases, **kw):
        self.ran.append(tuple(phases))
        return {}


@pytest.fixture
def letsencrypt(project, monkeypatch):
    path = project / "clusters/shop.yaml"
    path.write_text(path.read_text().replace("  mode: origin\n", "  mode: letsencrypt\n  acme_directory: staging\n"))
    box = {}

    @contextlib.contextmanager
    def fake_engine_for(ctx, cluster, before_load=None, on_progress=None):
        box["engine"] = FakeEngine(load_cluster(Project(project), "shop"), box["state"])
        yield box["engine"]

    monkeypatch.setattr("dynia.cli.cert.engine_for", fake_engine_for)
    monkeypatch.setattr("dynia.session.targets", lambda cluster: ["misty-owl", "brave-panda"])
    return project, box


def state(days_left: float, domains=ALL) -> AcmeState:
    return AcmeState(new_key_pem(), self_signed_pem("example.com").decode(),
                     dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(days=days_left),
                     tuple(domains), STAGING)


def test_renew_with_more_than_30_days_left_is_nothing_to_do_and_exit_0(cli, letsencrypt):
    project, box = letsencrypt
    box["state"] = state(60)
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop")
    assert r.code == 0 and "nothing to do" in r.out
    assert box["engine"].ran == [] and box["engine"].kept is None
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop", "--json")
    out = json.loads(r.out)
    assert r.code == 0 and out["action"] == "nothing to do" and out["certificate"]["domains"] == list(ALL)
    assert "PRIVATE KEY" not in r.out + r.err


def test_renew_when_due_orders_stores_then_rolls_and_prints_no_key(cli, letsencrypt, monkeypatch):
    project, box = letsencrypt
    box["state"] = state(10)
    fresh = state(90)
    monkeypatch.setattr(certs, "obtain", lambda cluster, targets, old, verify=True: fresh)
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["action"] == "renewed" and out["reason"].startswith("expires ")
    assert box["engine"].kept is fresh and box["engine"].ran == [("provision",), ("infra",)]
    assert "PRIVATE KEY" not in r.out + r.err


def test_renew_when_a_bound_domain_is_not_covered_renews(cli, letsencrypt, monkeypatch):
    project, box = letsencrypt
    box["state"] = state(80, domains=ALL[1:])
    monkeypatch.setattr(certs, "obtain", lambda cluster, targets, old, verify=True: state(90))
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop")
    assert r.code == 0 and "does not cover admin.example.com" in r.out


def test_a_failed_order_exits_18_with_the_domain_and_pushes_nothing(cli, letsencrypt, monkeypatch):
    project, box = letsencrypt
    box["state"] = state(5)

    def refused(cluster, targets, old, verify=True):
        raise DyniaError("cert", "api.example.com: Non-200 status code from HTTP", "check the record")

    monkeypatch.setattr(certs, "obtain", refused)
    r = cli("-C", str(project), "cert", "renew", "--cluster", "shop")
    assert r.code == 18
    assert "api.example.com: Non-200 status code from HTTP" in r.err and "dynia cert renew --cluster shop" in r.err
    assert box["engine"].ran == [] and box["engine"].kept is None   # nothing stored, nothing pushed


def test_cert_provision_dry_run_previews_the_order_without_the_network_or_a_key(cli, letsencrypt):
    project, box = letsencrypt
    box["state"] = certs.placeholder_state(load_cluster(Project(project), "shop").spec)
    r = cli("-C", str(project), "cert", "provision", "--dry-run", "--cluster", "shop", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["domains"] == list(ALL) and out["directory"] == STAGING and out["account"] == "new"
    assert out["reason"] == "only the self-signed placeholder so far" and box["engine"].ran == []
    assert "PRIVATE KEY" not in r.out


def test_cert_provision_orders_even_when_nothing_is_due(cli, letsencrypt, monkeypatch):
    project, box = letsencrypt
    box["state"] = state(80)
    monkeypatch.setattr(certs, "obtain", lambda cluster, targets, old, verify=True: state(90))
    r = cli("-C", str(project), "cert", "provision", "--cluster", "shop")
    assert r.code == 0 and "certificate issued for admin.example.com, api.example.com, example.com" in r.out
    assert box["engine"].ran == [("provision",), ("infra",)]


def test_up_orders_after_the_apps_phase_when_a_newly_bound_domain_is_not_covered(cli, letsencrypt, monkeypatch):
    """The certificate after the service's gates and its DNS-only record (apps), then stored
    (provision) and rolled (infra): the CA must resolve a brand-new name to the reserved IP."""
    project, box = letsencrypt
    box["state"] = state(80, domains=ALL[1:])
    monkeypatch.setattr("dynia.cli.up.engine_for", __import__("dynia.cli.cert", fromlist=["x"]).engine_for)
    monkeypatch.setattr(certs, "obtain", lambda cluster, targets, old, verify=True: state(90))
    r = cli("-C", str(project), "up", "--phase", "apps", "--cluster", "shop", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["phases"] == ["apps"] and out["certificate"]["domains"] == list(ALL)
    assert box["engine"].ran == [("apps",), ("provision",), ("infra",)]
    assert "PRIVATE KEY" not in r.out


def test_up_orders_nothing_when_the_certificate_covers_every_domain(cli, letsencrypt, monkeypatch):
    project, box = letsencrypt
    box["state"] = state(80)
    monkeypatch.setattr("dynia.cli.up.engine_for", __import__("dynia.cli.cert", fromlist=["x"]).engine_for)
    r = cli("-C", str(project), "up", "--phase", "apps", "--cluster", "shop", "--json")
    assert r.code == 0 and "certificate" not in json.loads(r.out)
    assert box["engine"].ran == [("apps",)]


def test_a_failed_order_after_apps_exits_18_and_says_how_to_retry(cli, letsencrypt, monkeypatch):
    project, box = letsencrypt
    box["state"] = state(80, domains=ALL[1:])
    monkeypatch.setattr("dynia.cli.up.engine_for", __import__("dynia.cli.cert", fromlist=["x"]).engine_for)

    def refused(cluster, targets, old, verify=True):
        raise DyniaError("cert", "admin.example.com: DNS problem: NXDOMAIN", "check the record")

    monkeypatch.setattr(certs, "obtain", refused)
    r = cli("-C", str(project), "up", "--phase", "apps", "--cluster", "shop", "--json")
    assert r.code == 18 and "dynia cert renew --cluster shop" in r.err
    assert box["engine"].ran == [("apps",)] and box["engine"].kept is None
