"""`dynia infra verify`: rows assembled from recorded facts, Cloudflare's recorded responses
(tests/fixtures/cloudflare, no network), a certificate read the way a node reads it (the fact's
script under sh against a real TLS listener on loopback), and the `--json` document's schema and exit codes."""
from __future__ import annotations

import datetime as dt
import io
import json
import socket
import ssl
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dynia.operations import verify as V
from dynia.errors import EXIT_UNHEALTHY, DyniaError
from dynia.providers.cloudflare_api import CloudflareApi, DnsRecord
from dynia.tls import certificate_record

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cloudflare"
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.timezone.utc)
RIP = "203.0.113.50"
TOKEN = "cf-test-token-never-shown"
NODES = ["misty-owl", "brave-panda"]
DOMAINS = ["admin.example.com", "api.example.com", "example.com"]
STATE_CERT = V.CertInfo("a" * 64, NOW + dt.timedelta(days=5000), ("*.example.com", "example.com"))


# --- Cloudflare, replayed -----------------------------------------------------------------------

class Replay:
    """urlopen's stand-in: answers each request from a recorded response, records what was asked."""

    def __init__(self, routes: dict[str, tuple[int, str]]):
        self.routes = routes  # "path?query" (after /client/v4) -> (status, fixture file)
        self.requests: list[urllib.request.Request] = []

    def __call__(self, request, timeout):
        self.requests.append(request)
        key = request.full_url.removeprefix("https://api.cloudflare.com/client/v4")
        status, name = self.routes[key]
        body = (FIXTURES / name).read_bytes()
        if status >= 400:
            raise urllib.error.HTTPError(request.full_url, status, "error", {}, io.BytesIO(body))
        resp = io.BytesIO(body)
        resp.status = status
        return resp


ZONE = "023e105f4ecef8ad9ca31a8372d0c353"
OK_ROUTES = {
    "/zones?name=example.com": (200, "zones.json"),
    f"/zones/{ZONE}/dns_records?per_page=100&page=1": (200, "dns_records_page1.json"),
    f"/zones/{ZONE}/dns_records?per_page=100&page=2": (200, "dns_records_page2.json"),
}


def test_cloudflare_records_are_read_page_after_page_with_the_token_only_in_the_header():
    replay = Replay(OK_ROUTES)
    records = CloudflareApi(TOKEN, replay).records_for("example.com")
    assert [r.full_url.removeprefix("https://api.cloudflare.com/client/v4") for r in replay.requests] == list(OK_ROUTES)
    assert all(r.get_method() == "GET" and r.get_header("Authorization") == f"Bearer {TOKEN}" for r in replay.requests)
    assert all(TOKEN not in r.full_url for r in replay.requests)
    assert records == [DnsRecord("example.com", "A", RIP, True), DnsRecord("api.example.com", "A", RIP, True),
                       DnsRecord("example.com", "MX", "mx.mail.example.net", False),
                       DnsRecord("admin.example.com", "A", "198.51.100.11", False)]


def test_a_refused_token_is_a_dns_error_that_never_shows_the_token():
    replay = Replay({"/zones?name=example.com": (403, "error_403.json")})
    with pytest.raises(DyniaError) as exc:
        CloudflareApi(TOKEN, replay).records_for("example.com")
    e = exc.value
    assert e.kind == "dns" and "403" in e.message and "10000: Authentication error" in e.message
    assert "CLOUDFLARE_API_TOKEN" in e.hint and TOKEN not in e.message + e.hint


def test_a_zone_the_token_cannot_see_is_a_dns_error_naming_the_zone():
    with pytest.raises(DyniaError) as exc:
        CloudflareApi(TOKEN, Replay({"/zones?name=example.com": (200, "zones_none.json")})).zone_id("example.com")
    assert exc.value.kind == "dns" and "example.com" in exc.value.message


def test_no_route_to_cloudflare_is_a_network_error():
    def offline(request, timeout):
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    with pytest.raises(DyniaError) as exc:
        CloudflareApi(TOKEN, offline).zone_id("example.com")
    assert exc.value.kind == "network" and "unreachable" in exc.value.message


def test_without_the_token_in_the_environment_the_client_says_which_variable(monkeypatch):
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    with pytest.raises(DyniaError) as exc:
        CloudflareApi.from_env()
    assert exc.value.kind == "dns" and "CLOUDFLARE_API_TOKEN" in exc.value.message


# --- assembly --------------------------------------------------------------------------------------

def expected(**kw) -> V.Expected:
    base = dict(cluster="shop", nodes=list(NODES), reserved_ip=RIP, domains=list(DOMAINS), proxied=True,
                applied_version=7, certificate=STATE_CERT, dns_provider="cloudflare", provider_kind="digitalocean",
                assigns_reserved_ip=True)
    return V.Expected(**{**base, **kw})


def stat(*servers: tuple[str, str, str]) -> dict:
    """The `show_stat` fact's shape (dynia.nodes.facts.show_stat)."""
    backends: dict = {"stats": {"status": "UP", "hrsp": {}, "servers": {}}}
    for backend, server, status in servers:
        be = backends.setdefault(backend, {"status": "UP", "hrsp": {"2xx": 10}, "servers": {}})
        be["servers"][server] = {"status": status, "check_status": "L7OK" if status == "UP" else "L7STS",
                                 "check_desc": "Layer7 check passed", "last_chk": "HTTP status check returned code <200>"}
    return {"backends": backends}


HEALTHY_STAT = stat(("be_any_node", "misty-owl", "UP"), ("be_any_node", "brave-panda", "UP"))
GOOD_RECORDS = [DnsRecord(d, "A", RIP, True) for d in DOMAINS]


ASSIGNED = {"time": "2026-11-28T11:58:02Z", "outcome": "assigned", "status": "201", "droplet": "424242001"}
REFUSED = {"time": "2026-11-28T11:59:40Z", "outcome": "refused", "status": "403", "droplet": "424242001"}


def observed(**kw) -> V.Observed:
    facts = {n: {"vrrp": {"role": "MASTER" if n == "misty-owl" else "BACKUP", "since": "1764300000"},
                 "applied": {"configVersion": 7, "layers": {}}, "show_stat": HEALTHY_STAT} for n in NODES}
    facts["misty-owl"]["reserved_ip"] = ASSIGNED
    base = dict(facts=facts, unreachable={}, holder="misty-owl", served={n: STATE_CERT for n in NODES},
                sni="admin.example.com", dns=list(GOOD_RECORDS))
    return V.Observed(**{**base, **kw})


def rows(checks, check=None, status=None):
    return [(c.check, c.target, c.status) for c in checks
            if (check is None or c.check == check) and (status is None or c.status == status)]


def test_a_healthy_cluster_is_one_ok_row_per_check_and_target():
    checks = V.assemble(expected(), observed(), NOW)
    assert rows(checks) == [
        ("reserved_ip_holder", RIP, "ok"),
        ("haproxy_backends", "misty-owl", "ok"), ("haproxy_backends", "brave-panda", "ok"),
        ("config_version", "cluster", "ok"),
        ("certificate", "misty-owl", "ok"), ("certificate", "brave-panda", "ok"),
        *[("dns_record", d, "ok") for d in DOMAINS],
        ("reserved_ip_assignment", "misty-owl", "ok"), ("reserved_ip_assignment", "brave-panda", "skipped")]
    assert V.healthy(checks)
    assert checks[0].detail == "held by misty-owl, the VRRP MASTER"


@pytest.mark.parametrize("holder, roles, detail", [
    ("brave-panda", ("MASTER", "BACKUP"), "held by brave-panda, but the VRRP MASTER is misty-owl"),
    ("misty-owl", ("MASTER", "MASTER"), "2 nodes report VRRP MASTER (brave-panda, misty-owl): a split brain"),
    ("misty-owl", ("BACKUP", "FAULT"), "no node reports VRRP MASTER"),
    (None, ("MASTER", "BACKUP"), "no node holds it; VRRP MASTER: misty-owl"),
])
def test_the_reserved_ip_must_be_on_the_one_vrrp_master(holder, roles, detail):
    o = observed(holder=holder)
    for node, role in zip(NODES, roles):
        o.facts[node]["vrrp"] = {"role": role, "since": None}
    row = V.assemble(expected(), o, NOW)[0]
    assert (row.check, row.status) == ("reserved_ip_holder", "failed") and detail in row.detail


def test_each_nodes_last_reserved_ip_assignment_is_a_row_and_a_refused_master_fails_it():
    o = observed()
    o.facts["misty-owl"]["reserved_ip"] = REFUSED
    o.facts["brave-panda"]["reserved_ip"] = REFUSED
    got = {c.target: c for c in V.assemble(expected(), o, NOW) if c.check == "reserved_ip_assignment"}
    assert (got["misty-owl"].status, got["brave-panda"].status) == ("failed", "skipped")
    assert "refused (HTTP 403, droplet 424242001, 2026-11-28T11:59:40Z)" in got["misty-owl"].detail
    assert "DIGITALOCEAN_NODE_TOKEN" in got["misty-owl"].detail
    assert "not MASTER now" in got["brave-panda"].detail
    assert not V.healthy(list(got.values()))
    ok = {c.target: c for c in V.assemble(expected(), observed(), NOW) if c.check == "reserved_ip_assignment"}
    assert ok["misty-owl"].detail == "last assignment assigned (HTTP 201, droplet 424242001, 2026-11-28T11:58:02Z)"


def test_a_provider_that_moves_no_reserved_ip_through_an_api_skips_the_assignment_row():
    checks = V.assemble(expected(assigns_reserved_ip=False, provider_kind="local"), observed(), NOW)
    assert rows(checks, "reserved_ip_assignment") == [("reserved_ip_assignment", RIP, "skipped")]


def test_a_provider_that_cannot_tell_the_holder_fails_the_row_with_its_answer():
    row = V.assemble(expected(), observed(holder=None, holder_error="the VIP 10.213.0.100 is on 2 nodes"), NOW)[0]
    assert (row.status, row.detail) == ("failed", "the provider did not answer: the VIP 10.213.0.100 is on 2 nodes")


def test_the_labs_holder_reads_the_vip_on_the_interfaces_live_and_a_split_brain_is_an_error():
    from dynia.nodes.gather import NodeFacts
    from dynia.providers.local import Local

    e = expected(reserved_ip="10.213.0.100", addresses={"misty-owl": ("10.213.0.11",), "brave-panda": ("10.213.0.12",)})
    answers = {"misty-owl": NodeFacts("misty-owl", {"addresses": ["10.213.0.11", "10.213.0.100"]}),
               "brave-panda": NodeFacts("brave-panda", {"addresses": ["10.213.0.12", "10.213.0.100"]})}
    holder, error = V._provider_holder(Local(), e, answers)
    assert holder is None and "is on 2 nodes: brave-panda, misty-owl" in error


def test_a_backend_server_down_fails_that_nodes_row_and_names_the_server():
    o = observed()
    o.facts["brave-panda"]["show_stat"] = stat(("be_any_node", "misty-owl", "UP"), ("be_any_node", "brave-panda", "DOWN"))
    checks = V.assemble(expected(), o, NOW)
    assert rows(checks, "haproxy_backends") == [("haproxy_backends", "misty-owl", "ok"),
                                                ("haproxy_backends", "brave-panda", "failed")]
    assert "1 of 2 down: be_any_node/brave-panda DOWN (L7STS)" in checks[2].detail
    assert not V.healthy(checks)


def test_servers_not_placed_on_a_node_are_not_expected_up_and_are_counted_aside():
    """be_admin (active-only) lists each node's own Caddy: it serves on the holder only. A
    standby-only service's copy on the holder is down by design."""
    e = expected(placements={"be_admin": "active-only", "be_jobs": "standby-only", "be_api": "all"})
    o = observed()
    for node in NODES:
        holder = node == "misty-owl"
        o.facts[node]["show_stat"] = stat(("be_admin", node, "UP" if holder else "DOWN"),
                                          ("be_jobs", "misty-owl", "DOWN"), ("be_jobs", "brave-panda", "UP"),
                                          ("be_api", "misty-owl", "UP"), ("be_api", "brave-panda", "UP"))
    checks = [c for c in V.assemble(e, o, NOW) if c.check == "haproxy_backends"]
    assert [c.status for c in checks] == ["ok", "ok"]
    assert checks[0].detail == "4 servers up in be_admin, be_api, be_jobs; 1 not serving here by placement"
    assert checks[1].detail == "3 servers up in be_api, be_jobs; 2 not serving here by placement"
    o.facts["misty-owl"]["show_stat"]["backends"]["be_admin"]["servers"]["misty-owl"]["status"] = "DOWN"
    row = next(c for c in V.assemble(e, o, NOW) if c.check == "haproxy_backends")
    assert row.status == "failed" and row.detail.startswith("1 of 4 down: be_admin/misty-owl DOWN (L7OK)")
    # Without a holder, placement-bound servers cannot be judged: said, not guessed.
    row = next(c for c in V.assemble(e, observed(holder=None, facts=o.facts), NOW) if c.check == "haproxy_backends"
               and c.target == "brave-panda")
    assert "not judged (holder unknown)" in row.detail


def test_a_node_whose_admin_socket_did_not_answer_fails_its_backend_row():
    o = observed()
    o.facts["misty-owl"]["show_stat"] = None
    row = next(c for c in V.assemble(expected(), o, NOW) if c.check == "haproxy_backends")
    assert row.status == "failed" and "admin socket did not answer" in row.detail


@pytest.mark.parametrize("versions, recorded, detail", [
    ((7, 6), 7, "nodes differ: misty-owl v7, brave-panda v6"),
    ((6, 6), 7, "nodes at v6, the last apply recorded v7"),
    ((7, None), 7, "brave-panda has no applied config"),
])
def test_every_node_must_be_at_the_config_version_the_last_apply_recorded(versions, recorded, detail):
    o = observed()
    for node, v in zip(NODES, versions):
        o.facts[node]["applied"] = None if v is None else {"configVersion": v}
    row = next(c for c in V.assemble(expected(applied_version=recorded), o, NOW) if c.check == "config_version")
    assert row.status == "failed" and detail in row.detail


def test_a_node_serving_another_or_an_expiring_certificate_fails_its_row():
    o = observed()
    o.served["misty-owl"] = V.CertInfo("b" * 64, NOW + dt.timedelta(days=5000), STATE_CERT.names)
    o.served["brave-panda"] = V.CertInfo("a" * 64, NOW + dt.timedelta(days=6), STATE_CERT.names)
    checks = [c for c in V.assemble(expected(), o, NOW) if c.check == "certificate"]
    assert [c.status for c in checks] == ["failed", "failed"]
    assert "serves sha256 bbbbbbbbbbbbbbbb…, the state's is aaaaaaaaaaaaaaaa…" in checks[0].detail
    assert "expires 2026-12-04 (6 days left, 7 or fewer): run `dynia cert renew`" in checks[1].detail


@pytest.mark.parametrize("days,status", [(22, "ok"), (21, "warning"), (8, "warning"), (7, "failed"), (0, "failed")])
def test_the_served_certificate_warns_at_21_days_left_and_fails_at_7(days, status):
    o = observed(served={n: V.CertInfo("a" * 64, NOW + dt.timedelta(days=days), STATE_CERT.names) for n in NODES})
    checks = [c for c in V.assemble(expected(), o, NOW) if c.check == "certificate"]
    assert {c.status for c in checks} == {status}
    assert V.healthy(checks) is (status != "failed")
    if status == "warning":
        assert f"({days} days left, 21 or fewer): run `dynia cert renew`" in checks[0].detail


def test_a_certificate_that_does_not_cover_a_bound_domain_fails():
    o = observed(served={n: V.CertInfo("a" * 64, STATE_CERT.not_after, ("*.example.org",)) for n in NODES})
    row = next(c for c in V.assemble(expected(), o, NOW) if c.check == "certificate")
    assert row.status == "failed" and "does not cover admin.example.com, api.example.com, example.com" in row.detail


def test_without_the_states_certificate_in_the_cache_the_served_one_is_checked_but_not_compared():
    e = expected(certificate=None, certificate_missing=".dynia/cache/shop/certificate.json does not exist")
    checks = [c for c in V.assemble(e, observed(), NOW) if c.check == "certificate"]
    assert [c.status for c in checks] == ["skipped", "skipped"]
    assert "not compared with the state: .dynia/cache/shop/certificate.json does not exist" in checks[0].detail
    # Two nodes serving different certificates is wrong whatever the state holds.
    o = observed()
    o.served["brave-panda"] = V.CertInfo("c" * 64, STATE_CERT.not_after, STATE_CERT.names)
    assert [c.status for c in V.assemble(e, o, NOW) if c.check == "certificate"] == ["failed", "failed"]


def test_dns_records_from_recorded_cloudflare_responses_one_row_per_bound_domain():
    records = CloudflareApi(TOKEN, Replay(OK_ROUTES)).records_for("example.com")
    checks = [c for c in V.assemble(expected(), observed(dns=records), NOW) if c.check == "dns_record"]
    assert [(c.target, c.status) for c in checks] == [("admin.example.com", "failed"), ("api.example.com", "ok"),
                                                     ("example.com", "ok")]
    assert checks[0].detail == (f"points at A 198.51.100.11, not the reserved IP {RIP}; "
                                "not proxied (the TLS mode wants proxied)")
    assert checks[1].detail == f"A {RIP}, proxied"


def test_a_missing_record_and_an_api_error_fail_every_domain_row():
    o = observed(dns=[r for r in GOOD_RECORDS if r.name != "api.example.com"])
    assert [c.status for c in V.assemble(expected(), o, NOW) if c.check == "dns_record"] == ["ok", "failed", "ok"]
    o = observed(dns=None, dns_error="Cloudflare refused /zones (403: 10000: Authentication error)")
    dns = [c for c in V.assemble(expected(), o, NOW) if c.check == "dns_record"]
    assert {c.status for c in dns} == {"failed"} and "403" in dns[0].detail


def test_the_local_provider_skips_dns_and_says_why():
    checks = V.assemble(expected(dns_provider=None, provider_kind="local"), observed(dns=None), NOW)
    dns = [c for c in checks if c.check == "dns_record"]
    assert {c.status for c in dns} == {"skipped"}
    assert dns[0].detail.startswith("provider local manages no DNS records")
    assert V.healthy(checks)


def test_an_unreachable_node_is_failed_rows_never_a_crash():
    o = observed(unreachable={"brave-panda": "ConnectionRefusedError: connection refused"},
                 served={"misty-owl": STATE_CERT}, served_errors={"brave-panda": "ConnectionRefusedError: refused"})
    del o.facts["brave-panda"]
    checks = V.assemble(expected(), o, NOW)
    failed = rows(checks, status="failed")
    assert ("haproxy_backends", "brave-panda", "failed") in failed
    assert ("config_version", "cluster", "failed") in failed and ("certificate", "brave-panda", "failed") in failed
    assert next(c for c in checks if c.check == "config_version").detail == "brave-panda unreachable"


# --- the --json document ---------------------------------------------------------------------------

def test_the_json_document_has_the_documented_schema():
    o = observed()
    o.facts["brave-panda"]["show_stat"] = stat(("be_any_node", "brave-panda", "DOWN"))
    doc = V.as_json("shop", V.assemble(expected(dns_provider=None, provider_kind="local", assigns_reserved_ip=False),
                                       o, NOW))
    assert set(doc) == {"schema", "cluster", "ok", "summary", "checks"}
    assert doc["schema"] == "dynia.infra-verify/1" and doc["cluster"] == "shop" and doc["ok"] is False
    assert doc["summary"] == {"ok": 5, "warning": 0, "failed": 1, "skipped": 4}   # +1: the lab assigns through no API
    for row in doc["checks"]:
        assert set(row) == {"check", "target", "status", "detail"}
        assert row["check"] in V.CHECKS and row["status"] in V.STATUSES and isinstance(row["detail"], str)
    json.dumps(doc)


# --- certificates: served over TLS, compared by fingerprint ---------------------------------------

@pytest.fixture
def tls_server(tmp_path):
    """A real TLS listener on loopback serving the lab's kind of certificate (dynia.tls)."""
    from dynia.tls import self_signed_pem

    pem = self_signed_pem("example.com", days=90)
    (tmp_path / "server.pem").write_bytes(pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "server.pem")
    sock = socket.create_server(("127.0.0.1", 0))
    seen_sni: list[str | None] = []
    ctx.sni_callback = lambda s, name, c: seen_sni.append(name)

    def serve():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            try:
                with ctx.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    yield pem.decode(), sock.getsockname()[1], seen_sni
    sock.close()


def _on_node(fact, port: int) -> tuple[str, int]:
    """Run a fact's one-round-trip script under sh, as a node runs it, with HAProxy's :443
    played by the loopback listener on `port`: (its framed output, parsed back) → (body, rc)."""
    import dataclasses
    import subprocess

    from dynia.nodes import facts as F

    assert " 127.0.0.1 443 " in fact.command  # on the node: loopback, HAProxy's https port
    fact = dataclasses.replace(fact, command=fact.command.replace(" 127.0.0.1 443 ", f" 127.0.0.1 {port} "),
                               parser=lambda out, rc: (out, rc))
    out = subprocess.run(["sh", "-c", F.script([fact])], capture_output=True, text=True, check=True).stdout
    return F.parse([fact], out)[fact.name]


def test_the_served_certificate_is_read_on_the_node_over_loopback_with_the_sni_and_matches_the_state_record(tls_server):
    from dynia.nodes import facts as F

    pem, port, seen_sni = tls_server
    output, rc = _on_node(F.served_certificate("api.example.com"), port)
    fact = F.served_certificate_pem(output, rc)
    served, why = V.served_from_fact(fact)
    record = certificate_record(pem)
    assert why == "" and served.sha256 == record["sha256"] and served.as_dict() == record
    assert served.self_signed is True  # the lab's stand-in: what letsencrypt mode calls the placeholder
    assert seen_sni == ["api.example.com"]
    assert sorted(record["names"]) == ["*.example.com", "example.com"]
    assert set(record) == {"sha256", "not_after", "names"}  # the key is never part of the record
    assert "PRIVATE" not in output


def test_no_listener_on_the_nodes_loopback_is_that_nodes_failed_certificate_row():
    from dynia.nodes import facts as F

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    output, rc = _on_node(F.served_certificate("api.example.com"), port)
    info, why = V.served_from_fact(F.served_certificate_pem(output, rc))
    assert info is None and why == f"no TLS handshake on the node's loopback (exit {rc})" and rc != 0
    o = observed()
    o.served.pop("misty-owl")
    o.served_errors["misty-owl"] = why
    row = next(c for c in V.assemble(expected(), o, NOW) if c.check == "certificate")
    assert (row.target, row.status) == ("misty-owl", "failed")
    assert row.detail.startswith("no certificate from 127.0.0.1:443 on the node (SNI ")


RECORDED = sorted((Path(__file__).resolve().parents[1] / "facts" / "served_certificate").glob("*.recorded"))


@pytest.mark.parametrize("case", RECORDED, ids=[p.stem for p in RECORDED])
def test_the_served_certificate_fact_parses_its_recorded_output(case):
    from dynia.nodes import facts as F

    data = json.loads(case.read_text())
    assert F.served_certificate(data["sni"]).command == data["command"]
    assert F.served_certificate_pem(data["output"], data["exit_status"]) == data["fact"]


def test_verify_never_opens_tls_to_a_nodes_public_address_it_asks_the_node(project, monkeypatch):
    """Origin mode: the host firewall opens 443 to Cloudflare's ranges only, so a handshake
    from the operator's machine to public_ip:443 fails on DigitalOcean; the certificate comes
    from the node itself, in the same SSH round trip as the other facts."""
    import dynia.nodes.gather as G
    import dynia.engine.session as S
    from dynia.nodes.gather import NodeFacts
    from dynia.nodes.push import Target

    cert = {"sha256": "a" * 64, "not_after": "2040-01-01T00:00:00Z", "names": ["*.example.com"],
            "self_signed": False}
    asked = []

    def gather(targets, wanted, timeout=5.0, refused=None):
        asked.append([f.name for f in wanted])
        return {t.node: NodeFacts(t.node, {"served_certificate": cert}) for t in targets}

    monkeypatch.setattr(G, "gather", gather)
    monkeypatch.setattr(S, "targets", lambda cluster: [Target(n, f"198.51.100.{i}", Path("/k"), None)
                                                       for i, n in enumerate(NODES, 11)])
    monkeypatch.setattr(S, "unpinned", lambda cluster: {})
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail(f"connected to {a[0]} from here"))

    class Provider:
        profile = __import__("dynia.providers.digitalocean", fromlist=["PROFILE"]).PROFILE

        def reserved_ip_holder(self, rip, nodes):
            return "misty-owl"

    import dynia.providers as P

    monkeypatch.setattr(P, "of", lambda spec: Provider())
    cluster = type("C", (), {"spec": type("S", (), {"domain": "example.com"})(), "name": "shop"})()
    o = V.collect(cluster, expected(dns_provider=None))
    assert "served_certificate" in asked[0]
    assert set(o.served) == set(NODES) and o.served["misty-owl"].sha256 == "a" * 64 and not o.served_errors


def test_certificate_record_parses_only_the_certificate_of_a_certificate_plus_key_bundle():
    from dynia.tls import self_signed_pem

    pem = self_signed_pem("example.com").decode()
    assert "PRIVATE KEY" in pem
    record = certificate_record(pem)
    assert "PRIVATE" not in json.dumps(record)
    with pytest.raises(ValueError):
        certificate_record(pem.split("-----BEGIN CERTIFICATE-----")[0] + pem.split("-----END CERTIFICATE-----")[1])


def test_the_states_certificate_comes_from_the_cache_and_a_corrupt_record_says_so(project):
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    cluster = load_cluster(Project(project), "shop")
    info, why = V.read_state_certificate(cluster)
    assert info is None and why == ".dynia/cache/shop/certificate.json does not exist (written by `dynia up` from the provision phase)"
    path = Project(project).cache_dir("shop")
    path.mkdir(parents=True)
    (path / "certificate.json").write_text('{"sha256": "nope"}')
    assert "is corrupt" in V.read_state_certificate(cluster)[1]
    (path / "certificate.json").write_text(json.dumps(STATE_CERT.as_dict()))
    assert V.read_state_certificate(cluster) == (STATE_CERT, "")


def test_expected_state_comes_from_the_spec_and_the_cache(project):
    from dynia.state.cache import ClusterCache
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    shop = load_cluster(Project(project), "shop")
    with pytest.raises(DyniaError) as exc:
        V.expected(shop)
    assert exc.value.kind == "state" and "dynia up" in exc.value.hint
    ClusterCache.of(shop).write_outputs({"nodes": {"misty-owl": {"private_ip": "10.110.0.11", "public_ip": "198.51.100.11"},
                                                   "brave-panda": {"private_ip": "10.110.0.12", "public_ip": "198.51.100.12"}},
                                         "reserved_ip": RIP})
    e = V.expected(shop)
    # every domain of every service gets its own dns_record row: the storefront's www too
    assert (e.reserved_ip, e.domains, e.proxied, e.dns_provider) == (RIP, DOMAINS + ["www.example.com"], True,
                                                                     "cloudflare")
    assert e.applied_version is None and e.certificate is None
    lab = load_cluster(Project(project), "lab")
    ClusterCache.of(lab).write_outputs({"nodes": {"misty-owl": {"private_ip": "10.213.0.11"}}, "reserved_ip": "10.213.0.100"})
    assert V.expected(lab).dns_provider is None


# --- the command -----------------------------------------------------------------------------------

@pytest.fixture
def verify_cli(cli, project, monkeypatch):
    """`dynia infra verify` (registered here until dynia/cli/main.py registers it)."""
    from dynia.cli import up, verify as cli_verify

    if "verify" not in [c.name for c in up.infra_app.registered_commands]:
        cli_verify.register(up.infra_app)
    return lambda *args: cli("-C", str(project), "infra", "verify", "--cluster", "shop", *args)


def test_the_command_exits_0_when_nothing_failed_and_4_with_the_json_document_otherwise(verify_cli, monkeypatch):
    ok = [V.Check("config_version", "cluster", "ok", "every node at v7"),
          V.Check("dns_record", "example.com", "skipped", "provider local manages no DNS records")]
    monkeypatch.setattr(V, "verify", lambda cluster, **kw: ok)
    r = verify_cli()
    assert r.code == 0, r.err
    assert "healthy: 1 ok, 0 warnings, 0 failed, 1 skipped" in r.out
    bad = ok + [V.Check("certificate", "misty-owl", "failed", "expires 2026-12-01 (3 days left, 7 or fewer)")]
    monkeypatch.setattr(V, "verify", lambda cluster, **kw: bad)
    r = verify_cli("--json")
    assert r.code == EXIT_UNHEALTHY == 4
    doc = json.loads(r.out)
    assert doc["ok"] is False and doc["summary"] == {"ok": 1, "warning": 0, "failed": 1, "skipped": 1}
    assert doc["checks"][-1] == {"check": "certificate", "target": "misty-owl", "status": "failed",
                                 "detail": "expires 2026-12-01 (3 days left, 7 or fewer)"}


def test_an_unreadable_applied_record_fails_the_version_row_with_its_reason():
    o = observed()
    o.facts[NODES[1]]["applied"] = None
    o.unreadable[NODES[1]] = {"applied": "configVersion: Input should be a valid integer"}
    row = next(c for c in V.assemble(expected(), o, NOW) if c.check == "config_version")
    assert row.status == "failed"
    assert f"{NODES[1]}'s applied.json is unreadable (configVersion: Input should be a valid integer)" in row.detail


# --- zone-level Authenticated Origin Pulls: the upload is the state's and active -------------------

PULL_ROUTES = {f"/zones/{ZONE}/origin_tls_client_auth/settings": (200, "origin_tls_client_auth_settings.json"),
               f"/zones/{ZONE}/origin_tls_client_auth": (200, "origin_tls_client_auth.json")}


def _state_pull() -> V.CertInfo:
    record = certificate_record((FIXTURES / "origin_pull_state_certificate.pem").read_text())
    return V.CertInfo(record["sha256"], dt.datetime(2036, 12, 5, tzinfo=dt.timezone.utc))


def _pull_rows(routes: dict, **kw) -> list[V.Check]:
    pull = CloudflareApi(TOKEN, Replay({**PULL_ROUTES, **routes})).origin_pull(ZONE)
    e = expected(origin_pulls=True, origin_pull=_state_pull(), **kw)
    return [c for c in V.assemble(e, observed(origin_pull=pull), NOW) if c.check == "origin_pull"]


def test_the_states_origin_pull_certificate_uploaded_active_and_the_setting_on_is_one_ok_row():
    [row] = _pull_rows({})
    assert (row.target, row.status) == ("zone", "ok")
    assert row.detail.startswith("on; the state's certificate (sha256 ") and row.detail.endswith("uploaded and active")


@pytest.mark.parametrize("routes, detail", [
    ({f"/zones/{ZONE}/origin_tls_client_auth/settings": (200, "origin_tls_client_auth_settings_off.json")},
     "zone-level Authenticated Origin Pulls is off"),
    ({f"/zones/{ZONE}/origin_tls_client_auth": (200, "origin_tls_client_auth_pending.json")},
     "the state's certificate is uploaded but pending_deployment, not active"),
    ({f"/zones/{ZONE}/origin_tls_client_auth": (200, "origin_tls_client_auth_pending.json")},
     "another uploaded certificate is active too (9a7806061c88ada191ed06f989cc3dac)"),
])
def test_an_origin_pull_setting_off_an_upload_not_yet_active_or_a_second_active_one_fails(routes, detail):
    [row] = _pull_rows(routes)
    assert row.status == "failed" and detail in row.detail, row.detail


def test_an_upload_that_is_not_the_states_certificate_fails():
    other = V.CertInfo("b" * 64, NOW)
    pull = CloudflareApi(TOKEN, Replay(PULL_ROUTES)).origin_pull(ZONE)
    [row] = [c for c in V.assemble(expected(origin_pulls=True, origin_pull=other), observed(origin_pull=pull), NOW)
             if c.check == "origin_pull"]
    assert row.status == "failed" and "the state's certificate (sha256 bbbbbbbbbbbbbbbb…) is not uploaded" in row.detail


def test_origin_pull_reads_ask_for_certificate_read_access_when_refused():
    replay = Replay({f"/zones/{ZONE}/origin_tls_client_auth/settings": (403, "error_403.json")})
    with pytest.raises(DyniaError) as exc:
        CloudflareApi(TOKEN, replay).origin_pull(ZONE)
    assert "SSL and Certificates:Read" in exc.value.hint and TOKEN not in exc.value.message + exc.value.hint


def test_origin_pull_rows_only_in_origin_mode_and_skipped_for_the_lab():
    assert not [c for c in V.assemble(expected(), observed(), NOW) if c.check == "origin_pull"]
    [row] = [c for c in V.assemble(expected(origin_pulls=True, dns_provider=None, provider_kind="local"),
                                   observed(dns=None), NOW) if c.check == "origin_pull"]
    assert row.status == "skipped" and row.detail.startswith("provider local uploads nothing to Cloudflare")


def test_the_origin_pull_certificate_is_cached_from_provisions_public_output(project):
    from dynia.state.cache import ClusterCache
    from dynia.engine.automation import Engine
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    shop = load_cluster(Project(project), "shop")
    pem = (FIXTURES / "origin_pull_state_certificate.pem").read_text()
    engine = Engine.__new__(Engine)
    engine.cluster = shop
    engine.cache_origin_pull({"ca": "-----BEGIN CERTIFICATE-----\n…", "certificate": pem})
    info, why = V.read_state_certificate(shop, V.ORIGIN_PULL_CACHE)
    assert info is not None and info.sha256 == _state_pull().sha256, why
    assert "PRIVATE" not in (ClusterCache.of(shop).dir / V.ORIGIN_PULL_CACHE).read_text()
