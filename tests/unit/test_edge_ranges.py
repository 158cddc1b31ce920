"""Cloudflare's edge ranges: the age warning (plan, context doctor) and `dynia edge
refresh-ranges` against a local double of Cloudflare's API serving GET /ips in its documented
shape (tests/fixtures/cloudflare/ips.json, not captured live): no test reaches the network."""
from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from dynia.operations import edge_ranges
from dynia.render import firewall
from dynia.errors import DyniaError
from dynia.state.store import Project
from dynia.spec.load import load_cluster

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cloudflare"
TODAY = dt.date(2027, 3, 1)


@pytest.fixture
def data_copy(tmp_path):
    path = tmp_path / "cloudflare-ips.json"
    shutil.copy(edge_ranges.data_path(), path)
    return path


def test_refresh_writes_the_apis_ranges_dated_today_and_says_what_changed(cloudflare_api, data_copy):
    out = edge_ranges.refresh(TODAY, data_copy, cloudflare_api["url"])
    assert cloudflare_api["seen"] == ["/client/v4/ips"]
    assert out.added == ["198.51.100.0/24"] and out.removed == ["131.0.72.0/22"] and out.changed
    assert out.taken == "2027-03-01" and out.taken_before == json.loads(edge_ranges.data_path().read_text())["taken"]
    data = json.loads(data_copy.read_text())
    api = json.loads((FIXTURES / "ips.json").read_text())["result"]
    assert data["taken"] == "2027-03-01" and data["ipv4"] == api["ipv4_cidrs"] and data["ipv6"] == api["ipv6_cidrs"]
    assert data["source"][0] == f"{cloudflare_api['url']}/ips"
    # a second refresh: nothing changed, only the date it was checked
    again = edge_ranges.refresh(TODAY + dt.timedelta(days=1), data_copy, cloudflare_api["url"])
    assert not again.changed and json.loads(data_copy.read_text())["taken"] == "2027-03-02"


@pytest.mark.parametrize("status,body,kind,says", [
    (500, b'{"success": false, "errors": [], "messages": [], "result": null}', "provider", "HTTP 500"),
    (200, b'{"success": false, "errors": [{"code": 1000, "message": "down"}], "result": null}', "provider", "down"),
    (200, b'{"success": true, "errors": [], "result": {"ipv4_cidrs": ["1.2.3.4/8"], "ipv6_cidrs": ["::/0"]}}',
     "provider", "not the documented shape"),
    (200, b'{"success": true, "errors": [], "result": {"ipv4_cidrs": [], "ipv6_cidrs": ["2400:cb00::/32"]}}',
     "provider", "empty range list"),
    (200, b"<html>", "provider", "not JSON")])
def test_a_refused_or_misshapen_answer_is_a_typed_error_and_writes_nothing(cloudflare_api, data_copy, status, body,
                                                                           kind, says):
    before = data_copy.read_bytes()
    cloudflare_api["answers"]["/client/v4/ips"] = (status, body)
    with pytest.raises(DyniaError) as err:
        edge_ranges.refresh(TODAY, data_copy, cloudflare_api["url"])
    assert err.value.kind == kind and says in err.value.message and "nothing was written" in err.value.hint
    assert data_copy.read_bytes() == before


def test_an_unreachable_api_is_a_network_error(data_copy):
    with pytest.raises(DyniaError) as err:
        edge_ranges.refresh(TODAY, data_copy, "http://127.0.0.1:9/client/v4")
    assert err.value.kind == "network"


def _taken(monkeypatch, taken: dt.date):
    real = firewall.cloudflare_ranges()
    monkeypatch.setattr(edge_ranges, "cloudflare_ranges", lambda: firewall.CloudflareRanges(
        taken, real.source, real.ipv4, real.ipv6))


def test_the_ranges_warn_once_older_than_90_days_and_never_in_letsencrypt_mode(project, monkeypatch):
    spec = load_cluster(Project(project), "shop").spec
    _taken(monkeypatch, TODAY - dt.timedelta(days=90))
    assert edge_ranges.age_warning(TODAY, spec) is None
    _taken(monkeypatch, TODAY - dt.timedelta(days=91))
    warning = edge_ranges.age_warning(TODAY, spec)
    assert "(91 days ago, over 90)" in warning and "dynia edge refresh-ranges" in warning
    acme = spec.model_copy(update={"tls": spec.tls.model_copy(update={"mode": "letsencrypt"})})
    assert edge_ranges.age_warning(TODAY, acme) is None


def test_plan_and_context_doctor_warn_about_old_ranges_without_failing(cli, project, monkeypatch):
    _taken(monkeypatch, dt.date.today() - dt.timedelta(days=120))
    r = cli("-C", str(project), "plan", "--offline", "--cluster", "shop")
    assert r.code == 0, r.err
    assert "warning: Cloudflare's edge ranges in this dynia were taken" in r.err and "(120 days ago" in r.err
    r = cli("-C", str(project), "context", "doctor", "--cluster", "shop", "--json")
    row = next(c for c in json.loads(r.out)["checks"] if c["name"] == "cloudflare ranges")
    assert row["ok"] is True and row["warning"] is True and row["fix"] == "dynia edge refresh-ranges"
    _taken(monkeypatch, dt.date.today() - dt.timedelta(days=10))
    r = cli("-C", str(project), "plan", "--offline", "--cluster", "shop")
    assert r.code == 0 and "edge ranges" not in r.err


def test_the_refresh_command_prints_each_change_and_dry_run_writes_nothing(cli, cloudflare_api, data_copy, monkeypatch):
    monkeypatch.setattr(edge_ranges, "data_path", lambda: data_copy)
    before = data_copy.read_bytes()
    env = {edge_ranges.API_URL_ENV: cloudflare_api["url"]}
    r = cli("edge", "refresh-ranges", "--dry-run", env=env)
    assert r.code == 0, r.err
    assert "+ 198.51.100.0/24" in r.out and "- 131.0.72.0/22" in r.out and "nothing written" in r.out
    assert data_copy.read_bytes() == before
    r = cli("edge", "refresh-ranges", "--json", env=env)
    doc = json.loads(r.out)
    assert r.code == 0 and doc["added"] == ["198.51.100.0/24"] and doc["written"] is True
    assert "198.51.100.0/24" in json.loads(data_copy.read_text())["ipv4"]
