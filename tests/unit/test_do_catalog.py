"""Droplet sizes and regions: offline, a slug this dynia's lists lack is a warning (the guard
reads the memory from the slug); with DIGITALOCEAN_TOKEN, DigitalOcean's catalog (GET
/v2/sizes, two pages, and GET /v2/regions: recorded documented shapes replayed over HTTP by
tests/do_replay.py) refuses what it does not offer before anything is created."""
from __future__ import annotations

import pytest

from dynia.errors import DyniaError
from dynia.providers import digitalocean as do
from dynia.providers import do_api
from dynia.spec.model import Provider
from tests.do_replay import CATALOG, Replay


@pytest.fixture
def catalog(monkeypatch):
    replay = Replay({"/v2/vpcs": ["vpcs_account"], **CATALOG})
    monkeypatch.setenv(do_api.API_URL_ENV, replay.url)
    monkeypatch.setenv(do.TOKEN_ENV, "dop_v1_secret")
    yield replay
    replay.close()


def _spec(region="sgp1", size="s-1vcpu-1gb"):
    return type("Spec", (), {"name": "shop", "nodes": ["misty-owl", "brave-panda"],
                             "provider": Provider(kind="digitalocean", region=region, size=size,
                                                  vpc_ip_range=do.vpc_range_for("shop"))})()


def _droplets(*nodes, size="gd-2vcpu-8gb", region="sgp1"):
    return [{"urn": f"urn:pulumi:shop-provision::dynia::dynia:index:ClusterNode$digitalocean:index/droplet:Droplet::"
                    f"{n}-droplet", "type": "digitalocean:index/droplet:Droplet", "id": str(i),
             "outputs": {"size": size, "region": region}} for i, n in enumerate(nodes)]


def test_offline_an_unknown_size_naming_its_memory_or_an_unknown_region_is_a_warning_not_a_refusal():
    p = _spec("atl9", "s-4vcpu-16gb-320gb-intel").provider
    assert do.DigitalOcean().check(p) == []
    warnings = do.DigitalOcean().warnings(p)
    assert len(warnings) == 2
    assert "droplet size 's-4vcpu-16gb-320gb-intel' is not in this dynia's list" in warnings[0] and "16384 MiB" in warnings[0]
    assert "region 'atl9' is not in this dynia's list" in warnings[1] and "DIGITALOCEAN_TOKEN" in warnings[1]
    assert do.DigitalOcean().ram_mib("s-4vcpu-16gb-320gb-intel") == 16384
    assert do.DigitalOcean().ram_mib("s-1vcpu-512mb-10gb") == 512 and do.slug_ram_mib("c-32") is None
    assert do.DigitalOcean().warnings(_spec().provider) == []   # known slugs: nothing to say
    # a slug that names no memory leaves the resource guard nothing to go on: still refused
    assert [p[0] for p in do.DigitalOcean().check(_spec(size="c-32").provider)] == [("provider", "size")]


def test_plan_offline_prints_the_warning_and_exits_0(cli, project):
    spec = project / "clusters/shop.yaml"
    spec.write_text(spec.read_text().replace("size: s-2vcpu-4gb", "size: s-4vcpu-16gb-320gb-intel")
                    .replace("region: sgp1", "region: atl9"))
    r = cli("-C", str(project), "plan", "--offline", "--cluster", "shop")
    assert r.code == 0, r.err
    assert "warning: droplet size 's-4vcpu-16gb-320gb-intel' is not in this dynia's list" in r.err
    assert "warning: region 'atl9' is not in this dynia's list" in r.err


@pytest.mark.parametrize("region,size", [("sgp1", "s-1vcpu-1gb"), ("fra1", "s-4vcpu-16gb-320gb-intel"),
                                         ("atl9", "s-1vcpu-1gb")])
def test_a_size_and_region_digitalocean_offers_pass_whatever_this_dynias_lists_say(catalog, region, size):
    do.DigitalOcean().check_account(_spec(region, size), set)
    paths = [p for p, _ in catalog.requests]
    assert paths[:3] == ["/v2/regions?per_page=200&page=1", "/v2/sizes?per_page=200&page=1",
                         "/v2/sizes?per_page=200&page=2"]
    assert {a for _, a in catalog.requests} == {"Bearer dop_v1_secret"}


@pytest.mark.parametrize("region,size,message,hint", [
    ("xyz1", "s-1vcpu-1gb", "provider.region 'xyz1': DigitalOcean has no such region",
     "set provider.region in clusters/shop.yaml to one of: ams3, atl1, atl9, blr1"),
    ("nyc2", "s-1vcpu-1gb", "provider.region nyc2: DigitalOcean creates no new droplets there",
     "create the cluster in another region"),
    ("sgp1", "s-99vcpu-1tb", "provider.size 's-99vcpu-1tb': DigitalOcean has no such droplet size",
     "set provider.size in clusters/shop.yaml to one offered in sgp1: s-1vcpu-1gb, s-1vcpu-2gb, s-2vcpu-4gb"),
    ("sgp1", "gd-2vcpu-8gb", "provider.size gd-2vcpu-8gb is not offered in sgp1 (only in fra1, nyc1, nyc3)",
     "one offered in sgp1: s-1vcpu-1gb, s-1vcpu-2gb, s-2vcpu-4gb")])
def test_a_size_or_region_digitalocean_does_not_offer_is_a_config_error_naming_what_it_does(
        catalog, region, size, message, hint):
    with pytest.raises(DyniaError) as err:
        do.DigitalOcean().check_account(_spec(region, size), set)
    assert err.value.kind == "config" and err.value.message == message and hint in err.value.hint
    assert "dop_v1_secret" not in err.value.message + err.value.hint
    assert not [p for p, _ in catalog.requests if p.startswith("/v2/vpcs")]   # refused before the VPCs are read


def test_without_a_token_the_catalog_is_not_asked(catalog, monkeypatch):
    monkeypatch.delenv(do.TOKEN_ENV)
    do.DigitalOcean().check_account(_spec("xyz1", "s-99vcpu-1tb"), set)
    assert catalog.requests == []


@pytest.mark.parametrize("region,size", [("Mars 1", "s-1vcpu-1gb"), ("sgp1\nlockdown: true", "s-1vcpu-1gb"),
                                         ("sgp1", "s-1vcpu-1gb\nx: 1"), ("sgp1", "S-1VCPU-1GB")])
def test_a_slug_that_is_not_one_is_still_refused_offline(region, size):
    problems = do.DigitalOcean().check(_spec(region, size).provider)
    assert [p[0][1] for p in problems] == ["region" if region != "sgp1" else "size"]
    assert all("fix the value" in p[2] for p in problems)


def test_droplets_already_running_at_a_size_no_longer_offered_are_kept_but_a_new_one_is_refused(catalog):
    """DigitalOcean keeps droplets of a retired size: a running cluster's plan (and its `cert
    renew`) must not fail on them; a node that would be created at that size still is refused."""
    spec = _spec("sgp1", "gd-2vcpu-8gb")
    do.DigitalOcean().check_account(spec, set, lambda: _droplets("misty-owl", "brave-panda"))
    for state in (_droplets("misty-owl"), _droplets("misty-owl", "brave-panda", size="s-1vcpu-1gb"), []):
        with pytest.raises(DyniaError) as err:
            do.DigitalOcean().check_account(spec, set, lambda state=state: state)
        assert "gd-2vcpu-8gb is not offered in sgp1" in err.value.message
    asked = []
    do.DigitalOcean().check_account(_spec(), set, lambda: asked.append(1) or [])
    assert asked == []   # an offered size never reads the state


def test_a_connection_reset_once_is_tried_again_and_twice_is_a_network_error(monkeypatch):
    """A GET is safe to repeat: one reset (a real server closing with SO_LINGER 0) costs a retry."""
    import socket
    import struct
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    resets = {"left": 1}

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            if resets["left"] > 0:
                resets["left"] -= 1
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()   # RST: "Connection reset by peer"
                continue
            body = b'{"regions": [], "links": {}, "meta": {"total": 0}}'
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.setenv(do_api.API_URL_ENV, f"http://127.0.0.1:{listener.getsockname()[1]}")
    monkeypatch.setenv(do.TOKEN_ENV, "dop_v1_secret")
    try:
        assert do_api.api_get("/regions")["regions"] == []
        resets["left"] = 2
        with pytest.raises(DyniaError) as err:
            do_api.api_get("/regions")
        assert err.value.kind == "network" and "dop_v1_secret" not in err.value.message
    finally:
        listener.close()
