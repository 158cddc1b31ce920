"""Each cluster its own private network: `cluster init` picks a /24 from the cluster's name,
DigitalOcean's reserved ranges are refused, and a range another VPC of the account overlaps is
refused before anything is created (DigitalOcean itself refuses it, mid-provision, otherwise).
The account is read from recorded API answers, replayed over HTTP (tests/do_replay.py)."""
from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from dynia.errors import DyniaError
from dynia.providers import digitalocean as do
from dynia.providers import do_api
from dynia.spec.model import Provider
from tests.do_replay import CATALOG, Replay

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def account(monkeypatch):
    replay = Replay({"/v2/vpcs": ["vpcs_page1", "vpcs_page2"], **CATALOG})
    monkeypatch.setenv(do_api.API_URL_ENV, replay.url)
    monkeypatch.setenv(do.TOKEN_ENV, "dop_v1_secret")
    yield replay
    replay.close()


def _spec(vpc: str, name: str = "shop"):
    return type("Spec", (), {"name": name, "nodes": ["misty-owl"],
                             "provider": Provider(kind="digitalocean", region="sgp1", size="s-1vcpu-1gb",
                                                  vpc_ip_range=vpc)})()


def test_cluster_init_gives_each_cluster_its_own_stable_24_from_its_name(tmp_path, cli):
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("shop", "blog"):
        r = cli("-C", str(proj), "cluster", "init", name, "--region", "sgp1", "--domain", "example.com")
        assert r.code == 0, r.err
    ranges = {n: YAML().load((proj / "clusters" / f"{n}.yaml").read_text())["provider"]["vpc_ip_range"]
              for n in ("shop", "blog")}
    # Stable: the documented rule (sha256 of the name, a /24 of 10.160.0.0/11) on every machine.
    assert ranges == {"shop": do.vpc_range_for("shop"), "blog": do.vpc_range_for("blog")}
    assert ranges["shop"] == "10.161.211.0/24"
    assert ranges["shop"] != ranges["blog"]
    assert all(ipaddress.ip_network(r).subnet_of(do.VPC_POOL) for r in ranges.values())


def test_no_name_can_be_given_a_range_digitalocean_reserves():
    assert not any(do.VPC_POOL.overlaps(r) for r in do.RESERVED_RANGES)
    picked = {do.vpc_range_for(f"c{i}") for i in range(3000)}
    assert all(ipaddress.ip_network(p).prefixlen == 24 and ipaddress.ip_network(p).subnet_of(do.VPC_POOL)
               for p in picked)


@pytest.mark.parametrize("vpc, words", [("10.244.3.0/24", "overlaps 10.244.0.0/16, which DigitalOcean reserves"),
                                        ("10.246.0.0/28", "overlaps 10.246.0.0/24"),
                                        ("10.0.0.0/12", "larger than DigitalOcean's largest VPC (/16)")])
def test_a_reserved_or_oversized_range_is_a_problem_of_the_key(vpc, words):
    problems = do.DigitalOcean().check(_spec(vpc).provider)
    assert [(p[0], words in p[1]) for p in problems] == [(("provider", "vpc_ip_range"), True)]


def test_a_range_another_vpc_of_the_account_overlaps_is_refused_naming_it_and_a_free_one(account):
    asked = []
    with pytest.raises(DyniaError) as err:
        do.DigitalOcean().check_account(_spec("10.110.0.0/24"), lambda: asked.append(1) or set())
    e = err.value
    assert e.kind == "config" and "overlaps the account's VPC 'team-old-cluster' (10.110.0.0/24 in ams3)" in e.message
    free = e.hint.split("vpc_ip_range: ")[1].split()[0]
    assert free == do.vpc_range_for("shop") and "clusters/shop.yaml" in e.hint
    # both pages were read, with the token in the header only
    assert [p for p, _ in account.requests if p.startswith("/v2/vpcs")] == ["/v2/vpcs?per_page=200&page=1",
                                                                           "/v2/vpcs?per_page=200&page=2"]
    assert {a for _, a in account.requests} == {"Bearer dop_v1_secret"}
    assert "dop_v1_secret" not in e.message + e.hint and asked == [1]


def test_the_hint_skips_a_derived_range_already_taken(account):
    # "blog"'s derived range is where the account's dynia-blog VPC sits (a copy of the cluster
    # whose state is elsewhere): the hint names the next free one
    with pytest.raises(DyniaError) as err:
        do.DigitalOcean().check_account(_spec("10.104.0.0/24", name="blog"), set)
    assert "'default-sgp1' (10.104.0.0/20 in sgp1, the default network of sgp1)" in err.value.message
    taken = ipaddress.ip_network("10.190.149.0/24")
    free = ipaddress.ip_network(err.value.hint.split("vpc_ip_range: ")[1].split()[0])
    assert do.vpc_range_for("blog") == str(taken) and not free.overlaps(taken) and free.subnet_of(do.VPC_POOL)


def test_the_clusters_own_vpc_is_not_in_its_way(account):
    own = {"2b8f3c4e-1d2a-4c3b-9e8f-7a6b5c4d3e2f"}  # the provision state holds it: this cluster's
    do.DigitalOcean().check_account(_spec("10.110.0.0/24"), lambda: own)


def test_a_free_range_passes_without_reading_the_clusters_state(account):
    do.DigitalOcean().check_account(_spec(do.vpc_range_for("shop")), lambda: pytest.fail("state read"))


def test_without_a_token_the_account_is_not_asked(account, monkeypatch):
    monkeypatch.delenv(do.TOKEN_ENV)
    do.DigitalOcean().check_account(_spec("10.110.0.0/24"), set)
    assert account.requests == []
