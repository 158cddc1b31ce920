"""DNS-01 (dynia.acme.dns01) and the Cloudflare write path it uses (dynia.providers.cloudflare_api).

Cloudflare is replayed through `opener` (API v4 envelope, as tests/fixtures/cloudflare/README.md
describes; no network); the propagation wait runs on fake query/clock/sleep, and `txt_values` /
`wait_visible` run once more against a real DNS server — Debian's pebble-challtestsrv on
loopback high ports, whose TXT records are set and cleared through its management API."""
from __future__ import annotations

import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dynia.acme import dns01 as acme_dns
from dynia.acme.dns01 import CloudflareZone, Dns01, txt_values, wait_visible
from dynia.errors import DyniaError
from dynia.providers.cloudflare_api import CloudflareApi, managed_comment

from ..challtestsrv import binary as challtestsrv_binary
from ..challtestsrv import free_port_both
from ..challtestsrv import running as challtestsrv_running
from ..needs import need

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cloudflare"
API = "https://api.cloudflare.com/client/v4"
TOKEN = "cf-test-token-never-shown"
ZONE_ID = "023e105f4ecef8ad9ca31a8372d0c353"   # tests/fixtures/cloudflare/zones.json
RIP = "203.0.113.50"
CLUSTER = "shop"


def leaks_token(*texts: str) -> bool:
    """Whether the token is in any text (a bool, so a failing assert never prints the token)."""
    return any(TOKEN in (t or "") for t in texts)


# --- Cloudflare, replayed -----------------------------------------------------------------------

def envelope(result, success=True, errors=()):
    return {"result": result, "success": success, "errors": list(errors), "messages": []}


class Replay:
    """urlopen's stand-in: (method, path?query) → (status, JSON document or fixture file name);
    records every request it was asked."""

    def __init__(self, routes: dict[tuple[str, str], tuple[int, object]]):
        self.routes = routes
        self.requests: list[urllib.request.Request] = []

    def __call__(self, request, timeout):
        self.requests.append(request)
        status, doc = self.routes[(request.get_method(), request.full_url.removeprefix(API))]
        body = (FIXTURES / doc).read_bytes() if isinstance(doc, str) else json.dumps(doc).encode()
        if status >= 400:
            raise urllib.error.HTTPError(request.full_url, status, "error", {}, io.BytesIO(body))
        response = io.BytesIO(body)
        response.status = status
        return response

    def asked(self) -> list[tuple[str, str]]:
        return [(r.get_method(), r.full_url.removeprefix(API)) for r in self.requests]


def txt_record(record_id: str, name: str, content: str, comment: str) -> dict:
    return {"id": record_id, "zone_id": ZONE_ID, "zone_name": "example.com", "name": name, "type": "TXT",
            "content": content, "proxiable": False, "proxied": False, "ttl": 60, "settings": {}, "meta": {},
            "comment": comment, "tags": [], "created_on": "2026-12-07T10:00:00.000000Z",
            "modified_on": "2026-12-07T10:00:00.000000Z"}


def test_create_txt_posts_one_quoted_txt_record_with_comment_and_ttl_and_returns_its_id():
    path = f"/zones/{ZONE_ID}/dns_records"
    created = txt_record("7f3e2d1c0b9a88776655443322110000", "_acme-challenge.new.example.com",
                         '"abc-_123"', "managed by dynia: cluster shop (ACME challenge)")
    replay = Replay({("POST", path): (200, envelope(created))})

    record_id = CloudflareApi(TOKEN, replay).create_txt(ZONE_ID, "_acme-challenge.new.example.com", "abc-_123",
                                                      "managed by dynia: cluster shop (ACME challenge)")

    assert record_id == "7f3e2d1c0b9a88776655443322110000"
    assert replay.asked() == [("POST", path)]
    request = replay.requests[0]
    assert json.loads(request.data) == {"type": "TXT", "name": "_acme-challenge.new.example.com",
                                        "content": '"abc-_123"', "ttl": 60,
                                        "comment": "managed by dynia: cluster shop (ACME challenge)"}
    assert request.get_header("Content-type") == "application/json"
    assert request.get_header("Authorization") == f"Bearer {TOKEN}"
    assert not leaks_token(request.full_url, request.data.decode())


def test_create_txt_passes_a_custom_ttl():
    path = f"/zones/{ZONE_ID}/dns_records"
    replay = Replay({("POST", path): (200, envelope(txt_record("abc123", "_acme-challenge.x.example.com",
                                                                '"v"', "c")))})
    CloudflareApi(TOKEN, replay).create_txt(ZONE_ID, "_acme-challenge.x.example.com", "v", "c", ttl=120)
    assert json.loads(replay.requests[0].data)["ttl"] == 120


def test_a_token_without_dns_edit_is_a_dns_error_whose_hint_asks_for_dns_edit_and_never_shows_the_token():
    replay = Replay({("POST", f"/zones/{ZONE_ID}/dns_records"): (403, "error_403.json")})
    with pytest.raises(DyniaError) as caught:
        CloudflareApi(TOKEN, replay).create_txt(ZONE_ID, "_acme-challenge.new.example.com", "abc", "c")
    err = caught.value
    assert err.kind == "dns" and "403" in err.message and "10000: Authentication error" in err.message
    assert f"POST /zones/{ZONE_ID}/dns_records" in err.message
    assert "DNS:Edit" in err.hint and "CLOUDFLARE_API_TOKEN" in err.hint
    assert not leaks_token(err.message, err.hint, str(err))


def test_a_created_record_without_a_usable_id_is_a_dns_error_naming_the_record_to_delete_by_hand():
    replay = Replay({("POST", f"/zones/{ZONE_ID}/dns_records"):
                     (200, envelope(txt_record("../../zones", "_acme-challenge.x.example.com", '"v"', "c")))})
    with pytest.raises(DyniaError) as caught:
        CloudflareApi(TOKEN, replay).create_txt(ZONE_ID, "_acme-challenge.x.example.com", "v", "c")
    assert caught.value.kind == "dns" and "_acme-challenge.x.example.com" in caught.value.hint


def test_a_conflicting_record_is_a_dns_error_that_names_the_conflict_not_the_token():
    """Cloudflare answers 400 when a CNAME or an identical TXT is already at the name."""
    refused = {"success": False, "errors": [{"code": 81058, "message": "An identical record already exists."}],
               "messages": [], "result": None}
    replay = Replay({("POST", f"/zones/{ZONE_ID}/dns_records"): (400, refused)})
    with pytest.raises(DyniaError) as caught:
        CloudflareApi(TOKEN, replay).create_txt(ZONE_ID, "_acme-challenge.new.example.com", "abc", "c")
    err = caught.value
    assert err.kind == "dns" and "81058: An identical record already exists." in err.message
    assert "conflicts" in err.hint and "DNS:Edit" not in err.hint
    assert not leaks_token(err.message, err.hint)


def test_txt_record_ids_lists_the_records_of_that_name_and_content_quoted_or_not():
    path = f"/zones/{ZONE_ID}/dns_records?type=TXT&name=_acme-challenge.a.example.com&per_page=100"
    replay = Replay({("GET", path): (200, envelope([
        txt_record("aaa111", "_acme-challenge.a.example.com", '"v"', "c"),
        txt_record("bbb222", "_acme-challenge.a.example.com", "v", "c"),
        txt_record("ccc333", "_acme-challenge.a.example.com", '"other"', "c")]))})
    ids = CloudflareApi(TOKEN, replay).txt_record_ids(ZONE_ID, "_acme-challenge.a.example.com", "v")
    assert ids == ["aaa111", "bbb222"] and replay.asked() == [("GET", path)]


def test_delete_record_sends_delete_to_the_records_path():
    path = f"/zones/{ZONE_ID}/dns_records/7f3e2d1c0b9a88776655443322110000"
    replay = Replay({("DELETE", path): (200, envelope({"id": "7f3e2d1c0b9a88776655443322110000"}))})
    CloudflareApi(TOKEN, replay).delete_record(ZONE_ID, "7f3e2d1c0b9a88776655443322110000")
    assert replay.asked() == [("DELETE", path)]
    assert replay.requests[0].data is None
    assert replay.requests[0].get_header("Authorization") == f"Bearer {TOKEN}"


@pytest.mark.parametrize("zone_id,record_id", [
    (ZONE_ID, "../../accounts"), (ZONE_ID, "abc?x=1"), (ZONE_ID, ""), ("zone/../x", "abc123"), (ZONE_ID, None)])
def test_a_non_alphanumeric_id_is_refused_before_any_request(zone_id, record_id):
    replay = Replay({})
    api = CloudflareApi(TOKEN, replay)
    with pytest.raises(DyniaError) as caught:
        api.delete_record(zone_id, record_id)
    assert caught.value.kind == "dns"
    with pytest.raises(DyniaError):
        api.create_txt("zone/../x", "_acme-challenge.x.example.com", "v", "c")
    assert replay.requests == []


# --- CloudflareZone --------------------------------------------------------------------------

def a_record(name: str, content: str, *, proxied=False, type_="A", comment=None) -> dict:
    return {"id": "0" * 32, "zone_id": ZONE_ID, "zone_name": "example.com", "name": name, "type": type_,
            "content": content, "proxiable": True, "proxied": proxied, "ttl": 1, "settings": {}, "meta": {},
            "comment": managed_comment(CLUSTER) if comment is None else comment, "tags": [],
            "created_on": "2026-12-01T09:00:00.000000Z", "modified_on": "2026-12-01T09:00:00.000000Z"}


ZONE_RECORDS = [
    a_record("ours.example.com", RIP),
    a_record("blogs.example.com", RIP, comment=managed_comment("blog")),   # another cluster's
    a_record("proxied.example.com", RIP, proxied=True),                     # behind Cloudflare's proxy
    a_record("v6.example.com", "2001:db8::50", type_="AAAA"),
    a_record("elsewhere.example.com", "198.51.100.7"),                      # another address
    a_record("hand.example.com", RIP, comment="made by hand"),
]


def zone_replay(records=ZONE_RECORDS) -> Replay:
    page = {**envelope(records), "result_info": {"page": 1, "per_page": 100, "total_pages": 1,
                                                  "count": len(records), "total_count": len(records)}}
    return Replay({("GET", "/zones?name=example.com"): (200, "zones.json"),
                   ("GET", f"/zones/{ZONE_ID}/dns_records?per_page=100&page=1"): (200, page)})


def test_only_this_clusters_dns_only_a_record_on_the_reserved_ip_points_at_the_cluster():
    zone = CloudflareZone(CloudflareApi(TOKEN, zone_replay()), "example.com", CLUSTER, RIP)
    names = ["ours.example.com", "blogs.example.com", "proxied.example.com", "v6.example.com",
             "elsewhere.example.com", "hand.example.com", "absent.example.com"]
    assert zone.pointing_at_cluster(names) == {"ours.example.com"}


def test_a_pointing_record_for_a_name_not_asked_about_is_not_reported():
    zone = CloudflareZone(CloudflareApi(TOKEN, zone_replay()), "example.com", CLUSTER, RIP)
    assert zone.pointing_at_cluster(["absent.example.com"]) == set()


def test_without_a_reserved_ip_no_name_points_at_the_cluster_and_nothing_is_asked():
    replay = zone_replay()
    zone = CloudflareZone(CloudflareApi(TOKEN, replay), "example.com", CLUSTER, None)
    assert zone.pointing_at_cluster(["ours.example.com"]) == set()
    assert replay.requests == []


def test_without_record_names_only_those_that_do_not_point_at_the_cluster_in_their_order():
    dns01 = Dns01(CloudflareZone(CloudflareApi(TOKEN, zone_replay()), "example.com", CLUSTER, RIP))
    assert dns01.without_record(["proxied.example.com", "ours.example.com", "absent.example.com"]) == [
        "proxied.example.com", "absent.example.com"]


def test_the_zone_adds_and_removes_txt_records_in_its_zone_with_this_clusters_comment():
    created = txt_record("abc123", "_acme-challenge.new.example.com", '"v"', "x")
    replay = Replay({("GET", "/zones?name=example.com"): (200, "zones.json"),
                     ("POST", f"/zones/{ZONE_ID}/dns_records"): (200, envelope(created)),
                     ("DELETE", f"/zones/{ZONE_ID}/dns_records/abc123"): (200, envelope({"id": "abc123"}))})
    zone = CloudflareZone(CloudflareApi(TOKEN, replay), "example.com", CLUSTER, RIP)
    handle = zone.add_txt("_acme-challenge.new.example.com", "v")
    zone.remove_txt(handle)
    assert handle == "abc123"
    assert replay.asked() == [("GET", "/zones?name=example.com"), ("POST", f"/zones/{ZONE_ID}/dns_records"),
                              ("DELETE", f"/zones/{ZONE_ID}/dns_records/abc123")]   # the zone looked up once
    body = json.loads(replay.requests[1].data)
    assert body["comment"].startswith(managed_comment(CLUSTER)) and body["content"] == '"v"'


def fake_getaddrinfo(table: dict[str, list[str]], asked: list):
    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        asked.append((host, port, family, type))
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", (ip, port)) for ip in table[host]]
    return getaddrinfo


def test_nameservers_are_the_zones_name_servers_resolved_to_ipv4_on_port_53(monkeypatch):
    asked = []
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo(
        {"ada.ns.cloudflare.com": ["192.0.2.1", "192.0.2.2", "192.0.2.1"], "tom.ns.cloudflare.com": ["192.0.2.3"]},
        asked))
    zone = CloudflareZone(CloudflareApi(TOKEN, zone_replay()), "example.com", CLUSTER, RIP)
    assert zone.nameservers() == [("192.0.2.1", 53), ("192.0.2.2", 53), ("192.0.2.3", 53)]
    assert [a[0] for a in asked] == ["ada.ns.cloudflare.com", "tom.ns.cloudflare.com"]
    assert all(a[1] == 53 and a[2] == socket.AF_INET for a in asked)


def test_a_name_server_that_does_not_resolve_is_skipped_when_another_does(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo({"tom.ns.cloudflare.com": ["192.0.2.3"]}, []))
    zone = CloudflareZone(CloudflareApi(TOKEN, zone_replay()), "example.com", CLUSTER, RIP)
    assert zone.nameservers() == [("192.0.2.3", 53)]


def test_no_resolvable_name_server_is_a_cert_error_naming_them(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo({}, []))
    zone = CloudflareZone(CloudflareApi(TOKEN, zone_replay()), "example.com", CLUSTER, RIP)
    with pytest.raises(DyniaError) as caught:
        zone.nameservers()
    err = caught.value
    assert err.kind == "cert" and "ada.ns.cloudflare.com" in err.message and "tom.ns.cloudflare.com" in err.message
    assert not leaks_token(err.message, err.hint)


# --- wait_visible, on fake query / clock / sleep ----------------------------------------------------

class FakeTime:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


FQDN = "_acme-challenge.new.example.com"
NS1, NS2 = ("192.0.2.1", 53), ("192.0.2.2", 5353)


def test_wait_visible_returns_at_once_when_every_server_answers_every_value():
    t = FakeTime()
    asked = []

    def query(fqdn, server, port, timeout=None):
        asked.append((fqdn, server, port))
        return {"other", "v1"} if fqdn == FQDN else {"v2"}

    wait_visible({FQDN: "v1", "_acme-challenge.b.example.com": "v2"}, [NS1, NS2], query=query, clock=t.clock,
                 sleep=t.sleep)
    assert t.sleeps == []
    assert sorted(asked) == sorted([(f, s, p) for (s, p) in (NS1, NS2)
                                    for f in (FQDN, "_acme-challenge.b.example.com")])


def test_wait_visible_polls_every_interval_until_the_last_server_answers():
    t = FakeTime()

    def query(fqdn, server, port, timeout=None):
        return {"v1"} if server == NS1[0] or t.now >= 6 else set()

    wait_visible({FQDN: "v1"}, [NS1, NS2], timeout=60, interval=3, query=query, clock=t.clock, sleep=t.sleep)
    assert t.sleeps == [3, 3]


def test_a_server_that_raises_counts_as_missing_until_it_answers():
    t = FakeTime()

    def query(fqdn, server, port, timeout=None):
        if server == NS2[0] and t.now < 4:
            raise OSError("timed out")
        return {"v1"}

    wait_visible({FQDN: "v1"}, [NS1, NS2], timeout=60, interval=2, query=query, clock=t.clock, sleep=t.sleep)
    assert t.sleeps == [2, 2]


def test_a_value_never_seen_is_a_cert_error_after_the_timeout_naming_the_domain_and_the_server():
    t = FakeTime()
    with pytest.raises(DyniaError) as caught:
        wait_visible({FQDN: "v1"}, [NS1], timeout=10, interval=2, query=lambda f, s, p: {"stale"},
                     clock=t.clock, sleep=t.sleep)
    err = caught.value
    assert err.kind == "cert" and err.exit_code == 18
    assert err.message.startswith("new.example.com: ")
    assert FQDN in err.message and "192.0.2.1" in err.message and "10 s" in err.message
    assert "192.0.2.1:53" not in err.message            # the default port goes unsaid
    assert err.hint
    # Bounded: one round at 0, 2, …, 10 s — interval apart, nothing after the deadline.
    assert t.sleeps == [2, 2, 2, 2, 2] and t.now == 10


def test_a_server_that_never_answers_is_a_cert_error_naming_it_with_its_port():
    t = FakeTime()

    def query(fqdn, server, port, timeout=None):
        if server == NS2[0]:
            raise TimeoutError()
        return {"v1"}

    with pytest.raises(DyniaError) as caught:
        wait_visible({FQDN: "v1"}, [NS1, NS2], timeout=5, interval=1, query=query, clock=t.clock, sleep=t.sleep)
    err = caught.value
    assert err.kind == "cert" and err.message.startswith("new.example.com: ")
    assert "192.0.2.2:5353" in err.message and "no answer (TimeoutError)" in err.message
    assert "192.0.2.1" not in err.message
    assert len(t.sleeps) == 5 and set(t.sleeps) == {1}


def test_wait_visible_stays_bounded_by_its_clock_even_with_a_tiny_interval():
    t = FakeTime()
    rounds = []

    def query(fqdn, server, port, timeout=None):
        rounds.append(t.now)
        return set()

    with pytest.raises(DyniaError):
        wait_visible({FQDN: "v1"}, [NS1], timeout=1, interval=0.25, query=query, clock=t.clock, sleep=t.sleep)
    assert len(rounds) == 5 and t.now == 1


def test_no_server_to_wait_on_is_a_cert_error_at_once():
    t = FakeTime()
    with pytest.raises(DyniaError) as caught:
        wait_visible({FQDN: "v1"}, [], query=lambda *a: {"v1"}, clock=t.clock, sleep=t.sleep)
    assert caught.value.kind == "cert" and t.sleeps == []


# --- Dns01 over a fake TxtZone ----------------------------------------------------------------

class FakeZone:
    def __init__(self, pointing=(), failing_removals=(), servers=(NS1,)):
        self.pointing = set(pointing)
        self.failing = dict(failing_removals)   # handle → exception (raised once per call, every call)
        self.servers = list(servers)
        self.calls: list[tuple] = []
        self.records: dict[str, tuple[str, str]] = {}

    def pointing_at_cluster(self, names):
        self.calls.append(("pointing", tuple(names)))
        return {n for n in names if n in self.pointing}

    def add_txt(self, fqdn, value):
        handle = f"h{len(self.records) + 1}"
        self.calls.append(("add", fqdn, value))
        self.records[handle] = (fqdn, value)
        return handle

    def remove_txt(self, handle):
        self.calls.append(("remove", handle))
        if handle in self.failing:
            raise self.failing[handle]
        del self.records[handle]

    def find_txt(self, fqdn, value):
        self.calls.append(("find", fqdn, value))
        return [h for h, rec in self.records.items() if rec == (fqdn, value)]

    def nameservers(self):
        self.calls.append(("nameservers",))
        return list(self.servers)


def test_a_record_created_although_its_request_failed_is_found_and_withdrawn(monkeypatch):
    """The POST reached Cloudflare and its answer was lost: the record exists without a handle."""
    zone = FakeZone()
    real_add = zone.add_txt

    def add_then_lose_the_answer(fqdn, value):
        real_add(fqdn, value)
        raise DyniaError("network", "Cloudflare API unreachable (TimeoutError: timed out)", "retry")

    zone.add_txt = add_then_lose_the_answer
    dns01 = Dns01(zone)
    with pytest.raises(DyniaError):
        dns01.publish({"_acme-challenge.a.example.com": "va"})
    assert dns01.withdraw() == {} and zone.records == {}
    assert ("find", "_acme-challenge.a.example.com", "va") in zone.calls


def test_a_zone_whose_name_servers_cannot_be_found_gets_no_record(monkeypatch):
    zone = FakeZone()

    def no_servers():
        raise DyniaError("cert", "none of the zone's name servers resolves", "check the resolver")

    zone.nameservers = no_servers
    with pytest.raises(DyniaError):
        Dns01(zone).publish({"_acme-challenge.a.example.com": "va"})
    assert zone.records == {} and not [c for c in zone.calls if c[0] == "add"]


def test_publish_adds_every_record_then_waits_for_them_on_the_zones_name_servers(monkeypatch):
    zone = FakeZone(servers=[NS1, NS2])
    waited = []

    def fake_wait(values, servers, *, timeout, interval):
        waited.append((dict(values), list(servers), timeout, interval, list(zone.calls)))

    monkeypatch.setattr(acme_dns, "wait_visible", fake_wait)
    values = {"_acme-challenge.a.example.com": "va", "_acme-challenge.b.example.com": "vb"}
    Dns01(zone, timeout=33, interval=0.5).publish(values)
    assert len(waited) == 1
    seen_values, servers, timeout, interval, calls_before_wait = waited[0]
    assert seen_values == values and servers == [NS1, NS2] and (timeout, interval) == (33, 0.5)
    # The name servers are read before anything is written: a zone whose servers cannot be
    # found fails with no record left behind.
    assert calls_before_wait == [("nameservers",), ("add", "_acme-challenge.a.example.com", "va"),
                                 ("add", "_acme-challenge.b.example.com", "vb")]


def test_publish_returns_once_the_name_servers_answer_the_records(monkeypatch):
    zone = FakeZone(servers=[("192.0.2.9", 53)])

    def answers(fqdn, server, port, timeout=None):
        assert (server, port) == ("192.0.2.9", 53)
        return {v for f, v in zone.records.values() if f == fqdn}

    monkeypatch.setattr(acme_dns, "txt_values", answers)
    Dns01(zone, timeout=2, interval=0.01).publish({"_acme-challenge.a.example.com": "va"})
    assert zone.records == {"h1": ("_acme-challenge.a.example.com", "va")}


def test_a_publish_that_times_out_still_leaves_every_created_record_to_withdraw(monkeypatch):
    zone = FakeZone()

    def never(values, servers, **kw):
        raise DyniaError("cert", "a.example.com: not visible", "retry")

    monkeypatch.setattr(acme_dns, "wait_visible", never)
    dns01 = Dns01(zone)
    with pytest.raises(DyniaError):
        dns01.publish({"_acme-challenge.a.example.com": "va", "_acme-challenge.b.example.com": "vb"})
    assert dns01.withdraw() == {}
    assert zone.records == {}
    assert [c for c in zone.calls if c[0] == "remove"] == [("remove", "h1"), ("remove", "h2")]


def test_withdraw_removes_every_created_record_and_returns_those_whose_removal_failed(monkeypatch):
    monkeypatch.setattr(acme_dns, "wait_visible", lambda *a, **kw: None)
    zone = FakeZone(failing_removals={"h2": DyniaError("dns", "Cloudflare refused DELETE (403)", "DNS:Edit"),
                                      "h3": ConnectionResetError()})
    dns01 = Dns01(zone)
    dns01.publish({"_acme-challenge.a.example.com": "va", "_acme-challenge.b.example.com": "vb",
                   "_acme-challenge.c.example.com": "vc"})
    left = dns01.withdraw()
    assert left == {"_acme-challenge.b.example.com": "Cloudflare refused DELETE (403)",
                    "_acme-challenge.c.example.com": "ConnectionResetError"}
    assert [c for c in zone.calls if c[0] == "remove"] == [("remove", "h1"), ("remove", "h2"), ("remove", "h3")]
    assert list(zone.records) == ["h2", "h3"]


def test_a_second_withdraw_retries_only_what_is_left_never_a_removed_record(monkeypatch):
    monkeypatch.setattr(acme_dns, "wait_visible", lambda *a, **kw: None)
    zone = FakeZone(failing_removals={"h2": OSError("reset")})
    dns01 = Dns01(zone)
    dns01.publish({"_acme-challenge.a.example.com": "va", "_acme-challenge.b.example.com": "vb"})
    assert dns01.withdraw() == {"_acme-challenge.b.example.com": "OSError"}
    zone.calls.clear()
    assert dns01.withdraw() == {"_acme-challenge.b.example.com": "OSError"}
    assert zone.calls == [("remove", "h2")]
    del zone.failing["h2"]
    zone.calls.clear()
    assert dns01.withdraw() == {} and zone.calls == [("remove", "h2")] and zone.records == {}
    zone.calls.clear()
    assert dns01.withdraw() == {} and zone.calls == []


def test_withdraw_before_any_publish_removes_nothing():
    zone = FakeZone()
    assert Dns01(zone).withdraw() == {} and zone.calls == []


def test_without_record_is_every_name_the_zone_does_not_point_at_the_cluster_in_order():
    zone = FakeZone(pointing={"www.example.com"})
    names = ["new.example.com", "www.example.com", "api.example.com"]
    assert Dns01(zone).without_record(names) == ["new.example.com", "api.example.com"]
    assert zone.calls == [("pointing", tuple(names))]


@pytest.fixture(scope="module")
def challtestsrv(tmp_path_factory):
    need(challtestsrv_binary() is not None, "pebble-challtestsrv not installed (Debian package pebble)")
    with challtestsrv_running(tmp_path_factory.mktemp("challtestsrv")) as srv:
        yield srv


def test_txt_values_reads_a_txt_record_from_a_real_dns_server_as_it_appears_and_goes(challtestsrv):
    address, port = challtestsrv.dns
    fqdn = "_acme-challenge.x.test"
    assert txt_values(fqdn, address, port, timeout=2) == set()
    challtestsrv.manage("set-txt", host=fqdn + ".", value="abc")
    try:
        assert txt_values(fqdn, address, port, timeout=2) == {"abc"}
        assert txt_values(fqdn + ".", address, port, timeout=2) == {"abc"}
        assert txt_values("_acme-challenge.other.test", address, port, timeout=2) == set()
    finally:
        challtestsrv.manage("clear-txt", host=fqdn + ".")
    assert txt_values(fqdn, address, port, timeout=2) == set()


def test_txt_values_of_a_server_that_does_not_answer_raises_within_its_timeout():
    port = free_port_both()          # nothing listens there
    started = time.monotonic()
    with pytest.raises(Exception):   # noqa: B017 — dnspython's Timeout or the socket's refusal
        txt_values("_acme-challenge.x.test", "127.0.0.1", port, timeout=0.5)
    assert time.monotonic() - started < 5


def test_wait_visible_sees_a_txt_record_appear_on_a_real_dns_server(challtestsrv):
    fqdn = "_acme-challenge.appear.test"
    timer = threading.Timer(0.4, challtestsrv.manage, ("set-txt",), {"host": fqdn + ".", "value": "late"})
    timer.start()
    try:
        started = time.monotonic()
        wait_visible({fqdn: "late"}, [challtestsrv.dns], timeout=10, interval=0.1)
        assert 0.3 < time.monotonic() - started < 10
    finally:
        timer.join(5)
        challtestsrv.manage("clear-txt", host=fqdn + ".")


def test_wait_visible_times_out_on_a_real_dns_server_once_the_txt_record_is_gone(challtestsrv):
    fqdn = "_acme-challenge.gone.test"
    challtestsrv.manage("set-txt", host=fqdn + ".", value="v")
    wait_visible({fqdn: "v"}, [challtestsrv.dns], timeout=5, interval=0.1)
    challtestsrv.manage("clear-txt", host=fqdn + ".")
    started = time.monotonic()
    with pytest.raises(DyniaError) as caught:
        wait_visible({fqdn: "v"}, [challtestsrv.dns], timeout=0.5, interval=0.1)
    assert time.monotonic() - started < 5
    address, port = challtestsrv.dns
    assert caught.value.kind == "cert" and caught.value.message.startswith("gone.test: ")
    assert f"{address}:{port}" in caught.value.message and "not there yet" in caught.value.message


def test_dns01_publishes_on_a_real_dns_server_waits_until_it_answers_and_withdraws(challtestsrv):
    address, port = challtestsrv.dns
    dns01 = Dns01(challtestsrv.zone(), timeout=5, interval=0.1)
    values = {"_acme-challenge.one.test": "v1", "_acme-challenge.two.test": "v2"}
    try:
        dns01.publish(values)
        assert {f: txt_values(f, address, port, timeout=2) for f in values} == {f: {v} for f, v in values.items()}
    finally:
        assert dns01.withdraw() == {}
    assert all(txt_values(f, address, port, timeout=2) == set() for f in values)
