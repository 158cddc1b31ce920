"""Before creating a DNS record, a name that already has an A/AAAA/CNAME record this cluster
does not own stops the apps phase with a typed `dns` error (Cloudflare would accept a second A
record and split the traffic). A record is the cluster's by its comment, which names the cluster
("managed by dynia: cluster shop"); the comment every cluster wrote before ("managed by dynia")
counts only on a record pointing at this cluster's reserved IP, and is rewritten on the next up. Cloudflare's answers are the recorded v4 responses of
tests/fixtures/cloudflare, served through the provider's getDnsRecords invoke."""
from __future__ import annotations

import json
from pathlib import Path

from dynia.errors import DyniaError
from dynia.nodes.push_errors import typed_diagnostic
from dynia.providers.cloudflare_api import LEGACY_MANAGED, DnsRecord, conflicts, managed_comment, owns
from dynia.stacks import apps

from .conftest import ORIGIN_PULL, NODES, ORIGIN_PEM, GraphMocks
from .test_dns_names import records

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cloudflare"
ZONE = [r for page in ("dns_records_page1.json", "dns_records_page2.json")
        for r in json.loads((FIXTURES / page).read_text())["result"]]


class ZoneMocks(GraphMocks):
    """getDnsRecords answered from the recorded zone (name filter `exact`, case-insensitive)."""

    def __init__(self, zone):
        # provisioned nodes with their pinned host keys: the pushes before the records may run
        nodes = {n: {**v, "host_key": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{'k' * 43}",
                     "host_key_source": "generated"} for n, v in NODES.items()}
        super().__init__(provision_outputs={"nodes": nodes, "reservedIp": "203.0.113.50", "originPem": ORIGIN_PEM,
                                            "originPull": ORIGIN_PULL})
        self.zone, self.asked = zone, []

    def call(self, args):
        if args.token == "cloudflare:index/getDnsRecords:getDnsRecords":
            name = (args.args.get("name") or {}).get("exact", "")
            self.asked.append(name)
            return {"results": [{k: r.get(k) for k in ("id", "name", "type", "content", "proxied", "comment")}
                                for r in self.zone if r["name"].lower() == name.lower()]}
        return super().call(args)


def test_a_record_dynia_does_not_own_stops_the_apps_phase_with_a_dns_error(run_phase):
    # admin.example.com was pointed at one droplet by hand (page 2 of the recorded zone)
    mocks = ZoneMocks(ZONE)
    error = run_phase(apps, "shop", "apps", mocks)
    assert error is not None
    typed = error if isinstance(error, DyniaError) else None
    assert typed is not None and typed.kind == "dns", repr(error)
    assert "admin.example.com" in typed.message and "198.51.100.11" in typed.message
    assert "this cluster does not own" in typed.message and "Cloudflare" in typed.hint
    assert "admin.example.com" not in records(mocks)  # never created beside the other one
    assert set(mocks.asked) == {"example.com", "www.example.com", "api.example.com", "admin.example.com"}


def test_records_this_cluster_made_before_comments_named_it_are_its_own_and_get_its_comment(run_phase):
    # the recorded example.com and api.example.com A records carry the legacy comment and point at
    # shop's reserved IP (203.0.113.50); the apex MX is no address
    zone = [r for r in ZONE if r["name"] != "admin.example.com"]
    assert {r["comment"] for r in zone if r["type"] == "A"} == {LEGACY_MANAGED}
    mocks = ZoneMocks(zone)
    assert run_phase(apps, "shop", "apps", mocks) is None
    made = records(mocks)
    assert set(made) == {"example.com", "www.example.com", "api.example.com", "admin.example.com"}
    assert {r.inputs["comment"] for r in made.values()} == {"managed by dynia: cluster shop"}


def _other_cluster(comment: str) -> list[dict]:
    """The recorded zone, with api.example.com served by another dynia cluster (its own reserved IP)."""
    zone = [dict(r) for r in ZONE if r["name"] != "admin.example.com"]
    for r in zone:
        if r["name"] == "api.example.com":
            r.update(content="198.51.100.77", comment=comment)
    return zone


def test_a_name_another_dynia_cluster_serves_stops_this_clusters_apps_phase(run_phase):
    for comment in (LEGACY_MANAGED, "managed by dynia: cluster blog"):
        mocks = ZoneMocks(_other_cluster(comment))
        error = run_phase(apps, "shop", "apps", mocks)
        assert isinstance(error, DyniaError) and error.kind == "dns", (comment, repr(error))
        assert "api.example.com" in error.message and "198.51.100.77" in error.message
        assert "another dynia cluster" in error.hint
        assert "api.example.com" not in records(mocks)


def test_each_domain_of_a_service_is_checked_the_storefronts_www_taken_by_hand_stops_the_apps_phase(run_phase):
    # the storefront serves the apex and www; www was pointed elsewhere by hand (a CNAME)
    zone = [r for r in ZONE if r["name"] != "admin.example.com"] + [
        {"id": "w1", "name": "www.example.com", "type": "CNAME", "content": "shop.example.net", "proxied": True,
         "comment": "by hand"}]
    mocks = ZoneMocks(zone)
    error = run_phase(apps, "shop", "apps", mocks)
    assert isinstance(error, DyniaError) and error.kind == "dns", repr(error)
    assert "www.example.com" in error.message and "shop.example.net" in error.message
    assert "www.example.com" not in records(mocks)
    assert "www.example.com" in mocks.asked


def test_ownership_is_this_clusters_comment_or_the_legacy_one_on_its_reserved_ip():
    rip = "203.0.113.50"
    mine = DnsRecord("api.example.com", "A", "198.51.100.9", True, managed_comment("shop"))
    assert owns(mine, "shop") and not owns(mine, "blog")
    legacy = DnsRecord("api.example.com", "A", rip, True, LEGACY_MANAGED)
    assert owns(legacy, "shop", rip) and not owns(legacy, "shop", "198.51.100.77") and not owns(legacy, "shop")
    assert not owns(DnsRecord("api.example.com", "CNAME", rip, True, LEGACY_MANAGED), "shop", rip)
    assert not owns(DnsRecord("api.example.com", "A", rip, True, "by hand"), "shop", rip)


def test_an_aaaa_or_cname_of_the_name_is_a_conflict_too():
    for typ in ("AAAA", "CNAME", "a"):
        assert conflicts([DnsRecord("Api.Example.com.", typ, "x", False, "")], "api.example.com", "shop")
    assert not conflicts([DnsRecord("api.example.com", "TXT", "x", False)], "api.example.com", "shop")
    assert not conflicts([DnsRecord("api.example.com", "A", "x", True, managed_comment("shop"))], "api.example.com",
                         "shop")


def test_the_engine_reads_the_programs_typed_error_back_from_its_log():
    typed = typed_diagnostic("dynia dns error: admin.example.com already has a record\n  hint: delete it\n",
                             "dynia up --phase apps --cluster shop")
    assert (typed.kind, typed.message, typed.hint, typed.resume) == (
        "dns", "admin.example.com already has a record", "delete it", "dynia up --phase apps --cluster shop")
    assert typed_diagnostic("error: something else") is None
    assert typed_diagnostic("dynia bogus error: x\n  hint: y") is None


def test_the_api_client_reads_each_records_owner_from_the_recorded_responses():
    from dynia.providers.cloudflare_api import CloudflareApi
    from tests.unit.test_verify import OK_ROUTES, TOKEN, Replay

    zone = CloudflareApi(TOKEN, Replay(OK_ROUTES)).records_for("example.com")
    assert [r.content for r in conflicts(zone, "admin.example.com", "shop", "203.0.113.50")] == ["198.51.100.11"]
    assert not conflicts(zone, "api.example.com", "shop", "203.0.113.50")
    assert conflicts(zone, "api.example.com", "blog", "198.51.100.77")  # shop's legacy record is not blog's
