"""The phase programs' resource graphs: rolling order, gates, reserved IP, DNS, secrets."""
from __future__ import annotations

import json

from dynia.bundle import BOOTSTRAP
from dynia.stacks import apps, infra, provision

from .conftest import ORIGIN_PEM, PROVIDER_TOKEN, GraphMocks, is_secret, plain_strings

PUSH = "command:remote:Command"


def pushes(mocks, suffix):
    return [r for r in mocks.created.values() if r.typ == PUSH and r.name.endswith(suffix)]


def by_name(mocks, name):
    return mocks.created[name]


def was_created(mocks, name) -> bool:
    reg = mocks.created.get(name)
    return reg is not None and reg.finished > 0


def test_infra_pushes_chain_in_rolling_order_and_the_reserved_ip_waits_for_every_gate(run_phase):
    mocks = GraphMocks(delay=0.05)
    assert run_phase(infra, "shop", "infra", mocks) is None
    first, last = by_name(mocks, "brave-panda-infra-push"), by_name(mocks, "misty-owl-infra-push")
    # the dependency Pulumi received, and the order the engine honoured
    assert any(u.endswith("brave-panda-infra-push") for u in last.dependencies)
    assert last.started >= first.finished
    assignment = by_name(mocks, "shop-rip-assignment")
    assert assignment.typ == "digitalocean:index/reservedIpAssignment:ReservedIpAssignment"
    deps = " ".join(assignment.dependencies)
    assert "brave-panda-infra" in deps and "misty-owl-infra" in deps
    assert assignment.started >= max(first.finished, last.finished)
    assert assignment.ignore_changes == ["dropletId"]
    assert assignment.inputs["dropletId"] == 1001  # the MASTER's droplet


def test_once_a_node_holds_the_reserved_ip_pulumi_no_longer_declares_the_assignment(run_phase):
    """keepalived's notify script owns the assignment after the first one: the program stops
    declaring it (retained on delete, so dropping it never unassigns), and nothing in Pulumi can
    move the address back to the configured MASTER, whether by update or after a refresh."""
    mocks = GraphMocks()
    assert run_phase(infra, "shop", "infra", mocks, holder="brave-panda") is None
    assert not any("reservedIpAssignment" in r.typ for r in mocks.created.values())
    made = GraphMocks()  # the infra stack's last run made it; nobody answers for the VIP right now
    assert run_phase(infra, "shop", "infra", made, reserved_ip_assigned=True) is None
    assert not any("reservedIpAssignment" in r.typ for r in made.created.values())
    first = GraphMocks()
    assert run_phase(infra, "shop", "infra", first) is None
    assert by_name(first, "shop-rip-assignment").retain_on_delete is True


def test_a_failed_gate_stops_every_later_node_and_the_assignment(run_phase):
    mocks = GraphMocks(fail={"brave-panda-infra-push"})
    error = run_phase(infra, "shop", "infra", mocks)
    assert error is not None and "health gate failed" in str(error)
    assert was_created(mocks, "brave-panda-infra") is True  # the component, not the failed push
    assert not was_created(mocks, "misty-owl-infra-push")
    assert not was_created(mocks, "shop-rip-assignment")


def test_holder_read_live_goes_last(run_phase, project):
    mocks = GraphMocks(delay=0.02)
    assert run_phase(infra, "shop", "infra", mocks, holder="brave-panda") is None
    assert any(u.endswith("misty-owl-infra-push") for u in by_name(mocks, "brave-panda-infra-push").dependencies)


def test_dns_records_wait_for_every_gate_of_their_service_and_exist_only_for_domains(run_phase, project):
    spec = project / "clusters/shop.yaml"
    spec.write_text(spec.read_text().replace("    domain: admin.example.com\n", ""))
    mocks = GraphMocks(delay=0.02)
    assert run_phase(apps, "shop", "apps", mocks) is None
    records = {r.name: r for r in mocks.created.values() if r.typ == "cloudflare:index/dnsRecord:DnsRecord"}
    assert sorted(records) == ["shop-api-dns-api", "shop-web-dns-apex"]
    apex = records["shop-web-dns-apex"]
    assert (apex.inputs["name"], apex.inputs["type"], apex.inputs["content"], apex.inputs["proxied"]) == \
           ("example.com", "A", "203.0.113.50", True)
    assert apex.inputs["zoneId"] == "zone-123"
    for service, record in (("api", records["shop-api-dns-api"]), ("web", apex)):
        gates = [by_name(mocks, f"{n}-service-{service}-push") for n in ("brave-panda", "misty-owl")]
        assert all(record.started >= g.finished for g in gates)
        assert all(f"{n}-service-{service}" in " ".join(record.dependencies) for n in ("brave-panda", "misty-owl"))


def test_a_failed_service_gate_binds_no_domain(run_phase):
    mocks = GraphMocks(fail={"brave-panda-service-api-push"})
    assert run_phase(apps, "shop", "apps", mocks) is not None
    assert not was_created(mocks, "shop-api-dns-api")
    assert not was_created(mocks, "misty-owl-service-api-push")
    assert not was_created(mocks, "brave-panda-service-web-push")  # services roll one after another


def test_provision_creates_nodes_reserved_ip_and_origin_certificate_but_no_dns(run_phase):
    mocks = GraphMocks()
    assert run_phase(provision, "shop", "provision", mocks) is None
    types = [r.typ for r in mocks.created.values()]
    assert types.count("digitalocean:index/droplet:Droplet") == 2
    assert "digitalocean:index/reservedIp:ReservedIp" in types
    assert not any("dnsRecord" in t or t.startswith("command:") for t in types)
    cert = next(r for r in mocks.created.values() if r.typ.endswith("OriginCaCertificate"))
    assert cert.inputs["hostnames"] == ["*.example.com", "example.com"]
    assert cert.inputs["requestedValidity"] == 5475  # an integer number of days (a JSON number on the wire)
    droplet = next(r for r in mocks.created.values() if r.typ.endswith("droplet:Droplet"))
    assert "haproxy" in droplet.inputs["userData"] and "userData" in droplet.ignore_changes


def test_every_secret_input_is_marked_secret_and_no_plain_string_holds_one(run_phase, project):
    mocks = GraphMocks()
    assert run_phase(infra, "shop", "infra", mocks) is None
    creds = json.loads((project / ".dynia/secrets/shop.json").read_text())
    secrets = [creds["stats_password"], "origin-key-secret-material", PROVIDER_TOKEN, "ssh-secret"]
    for reg in mocks.created.values():
        for s in plain_strings(reg.inputs):
            assert not any(secret in s for secret in secrets), (reg.name, s[:80])
    for push in pushes(mocks, "-push"):
        connection = push.inputs["connection"]
        assert is_secret(push.inputs["stdin"])
        assert is_secret(connection) or is_secret(connection["privateKey"])
        assert push.inputs["create"] == BOOTSTRAP
        payload = push.inputs["stdin"]["value"]
        assert ORIGIN_PEM.split("\n")[4] not in payload  # base64 inside the bundle, never raw
        assert push.inputs["logging"] == "stdoutAndStderr"
