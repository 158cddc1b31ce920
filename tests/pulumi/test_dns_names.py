"""DNS records are named by domain, not by service: renaming a service that keeps its domain
keeps the same record (Cloudflare refuses a second record of one name, so "create the new,
then delete the old" could never pass), and records made under the old names are adopted
through aliases instead of being recreated."""
from __future__ import annotations

import pulumi
import pytest

from dynia.components.dns_records import DnsRecords, DnsRecordsArgs
from dynia.stacks import apps

from .conftest import GraphMocks, engine_urn
from .test_minimal_plans import layers, pushes

RECORD = "cloudflare:index/dnsRecord:DnsRecord"
# URNs the records of the example cluster had when they were named by service
# (`<cluster>-<service>-dns-<label>`): what an existing apps stack holds.
LEGACY = "urn:pulumi:shop-apps::dynia::dynia:index:DnsRecords$cloudflare:index/dnsRecord:DnsRecord::"


def records(mocks) -> dict:
    return {r.inputs["name"]: r for r in mocks.created.values() if r.typ == RECORD}


def rename_service(project, old: str, new: str) -> None:
    spec = project / "clusters/shop.yaml"
    spec.write_text(spec.read_text().replace(f"\n  {old}:\n", f"\n  {new}:\n"))


def test_records_are_named_by_domain_and_adopt_the_records_named_by_service(run_phase):
    mocks = GraphMocks()
    assert run_phase(apps, "shop", "apps", mocks) is None
    found = records(mocks)
    assert {d: r.name for d, r in found.items()} == {
        "example.com": "dns-example.com", "www.example.com": "dns-www.example.com",
        "api.example.com": "dns-api.example.com", "admin.example.com": "dns-admin.example.com"}
    # each alias is exactly the URN the record has in a stack made before: Pulumi adopts it
    # (same id, no create, no delete), and nothing is sent to Cloudflare
    # (the SDK adds the provider's own type alias, cloudflare:index/record:Record, beside ours)
    assert LEGACY + "shop-web-dns-apex" in found["example.com"].aliases
    assert LEGACY + "shop-web-dns-www" in found["www.example.com"].aliases
    assert LEGACY + "shop-api-dns-api" in found["api.example.com"].aliases
    assert LEGACY + "shop-admin-dns-admin" in found["admin.example.com"].aliases
    # the new URN differs only in the name: same parent type, same record type
    assert all(engine_urn(r.urn) == LEGACY + r.name for r in found.values())


def test_renaming_a_service_that_keeps_its_domain_keeps_the_same_record(run_phase, project):
    before = GraphMocks()
    assert run_phase(apps, "shop", "apps", before) is None
    rename_service(project, "api", "backend")
    after = GraphMocks()
    assert run_phase(apps, "shop", "apps", after, previous_layers=layers(pushes(before))) is None
    old, new = records(before)["api.example.com"], records(after)["api.example.com"]
    assert new.urn == old.urn  # one resource: updated in place at most, never created beside the old one
    assert [r.name for r in after.created.values() if r.typ == RECORD].count(new.name) == 1
    # ... now bound by the renamed service, after its gates (and so after api's removal)
    deps = " ".join(new.dependencies)
    assert "brave-panda-service-backend" in deps and "misty-owl-service-backend" in deps
    assert new.parent.endswith("::shop-backend-dns")


def test_a_record_made_under_a_renamed_services_name_is_adopted_too(project):
    """`renamed_from` (the component names of services that had the domain): the record a stack
    made under `<cluster>-web-dns` before records were named by domain is the one kept."""
    import asyncio

    from .conftest import RecordingMonitor

    asyncio.set_event_loop(asyncio.new_event_loop())
    mocks = GraphMocks()
    pulumi.runtime.set_mocks(mocks, project="dynia", stack="shop-apps", preview=False, monitor=RecordingMonitor(mocks))

    @pulumi.runtime.test
    def program():
        DnsRecords("shop-site-dns", DnsRecordsArgs("example.com", ["www.example.com"], "203.0.113.50", [],
                                                   renamed_from=["shop-web-dns"]))

    program()
    record = records(mocks)["www.example.com"]
    assert {LEGACY + "shop-site-dns-www", LEGACY + "shop-web-dns-www"} <= set(record.aliases)


@pytest.mark.parametrize("domain,legacy", [("example.com", "shop-web-dns-apex"),
                                           ("a.b.example.com", "shop-web-dns-a-b")])
def test_the_legacy_name_is_the_one_records_had(domain, legacy):
    from dynia.components.dns_records import legacy_record_name

    assert legacy_record_name("shop-web-dns", "example.com", domain) == legacy
