"""Before creating a DNS record, a name that already has an A/AAAA/CNAME record dynia does not
own stops the apps phase with a typed `dns` error (Cloudflare would accept a second A record
and split the traffic). Cloudflare's answers are the recorded v4 responses of
tests/fixtures/cloudflare, served through the provider's getDnsRecords invoke."""
from __future__ import annotations

import json
from pathlib import Path

from dynia.errors import DyniaError
from dynia.nodes.push_errors import typed_diagnostic
from dynia.providers.cloudflare_api import DnsRecord, conflicts
from dynia.stacks import apps

from .conftest import NODES, ORIGIN_PEM, GraphMocks
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
        super().__init__(provision_outputs={"nodes": nodes, "reservedIp": "203.0.113.50", "originPem": ORIGIN_PEM})
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
    assert "dynia does not own" in typed.message and "Cloudflare" in typed.hint
    assert "admin.example.com" not in records(mocks)  # never created beside the other one
    assert set(mocks.asked) == {"example.com", "api.example.com", "admin.example.com"}


def test_records_dynia_owns_and_other_types_are_no_conflict(run_phase):
    # the recorded example.com and api.example.com A records carry dynia's comment; the apex MX is no address
    zone = [r for r in ZONE if r["name"] != "admin.example.com"]
    mocks = ZoneMocks(zone)
    assert run_phase(apps, "shop", "apps", mocks) is None
    assert set(records(mocks)) == {"example.com", "api.example.com", "admin.example.com"}


def test_an_aaaa_or_cname_of_the_name_is_a_conflict_too():
    for typ in ("AAAA", "CNAME", "a"):
        assert conflicts([DnsRecord("Api.Example.com.", typ, "x", False, "")], "api.example.com", "managed by dynia")
    assert not conflicts([DnsRecord("api.example.com", "TXT", "x", False)], "api.example.com", "managed by dynia")
    assert not conflicts([DnsRecord("api.example.com", "A", "x", True, "managed by dynia")], "api.example.com",
                         "managed by dynia")


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
    assert [r.content for r in conflicts(zone, "admin.example.com", "managed by dynia")] == ["198.51.100.11"]
    assert not conflicts(zone, "api.example.com", "managed by dynia")
