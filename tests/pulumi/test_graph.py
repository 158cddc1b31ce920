"""The phase programs' resource graphs: rolling order, gates, reserved IP, DNS, secrets."""
from __future__ import annotations

import base64
import json

import pytest

from dynia.nodes.payload import BOOTSTRAP
from dynia.paths import PATHS
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


def test_infra_pushes_chain_in_rolling_order(run_phase):
    mocks = GraphMocks(delay=0.05)
    assert run_phase(infra, "shop", "infra", mocks) is None
    first, last = by_name(mocks, "brave-panda-infra-push"), by_name(mocks, "misty-owl-infra-push")
    # the dependency Pulumi received, and the order the engine honoured
    assert any(u.endswith("brave-panda-infra-push") for u in last.dependencies)
    assert last.started >= first.finished


ASSIGNMENT_STATES = {
    "first up": dict(),
    # a preview: an update never runs before provision recorded the nodes (and their host keys)
    "before the first provision": dict(provision_outputs={}, preview=True),
    "a node holds the address": dict(holder="brave-panda"),
}


@pytest.mark.parametrize("state", sorted(ASSIGNMENT_STATES))
@pytest.mark.parametrize("module,phase", [(provision, "provision"), (infra, "infra"), (apps, "apps")])
def test_pulumi_registers_no_reserved_ip_assignment_in_any_state(run_phase, module, phase, state):
    """keepalived's notify script is the one owner of the assignment from the very first up:
    no phase, in no state, declares one (an existing stack's, created with retain_on_delete,
    is then dropped from the state as delete[retain], without an API call)."""
    more = dict(ASSIGNMENT_STATES[state])
    mocks = GraphMocks(provision_outputs=more.pop("provision_outputs", None))
    assert run_phase(module, "shop", phase, mocks, **more) is None
    assert mocks.created  # the phase did register its resources
    assert not [r.name for r in mocks.created.values() if "reservedipassignment" in r.typ.lower()]
    if phase == "provision":
        rip = next(r for r in mocks.created.values() if r.typ == "digitalocean:index/reservedIp:ReservedIp")
        assert "dropletId" not in rip.inputs  # created unassigned ...
        assert rip.ignore_changes == ["dropletId"]  # ... and never unassigned after a refresh saw keepalived's


def test_every_droplet_nodes_infra_push_carries_what_notify_needs_to_assign_the_reserved_ip(run_phase):
    """The notify script assigns the reserved IP when keepalived first turns MASTER during the
    infra push: the script (with the address), the provider token and keepalived's config
    arrive in that same bundle, which apply.py writes entirely before it reloads anything."""
    mocks = GraphMocks()
    assert run_phase(infra, "shop", "infra", mocks) is None
    for node in ("misty-owl", "brave-panda"):
        stdin = by_name(mocks, f"{node}-infra-push").inputs["stdin"]["value"]
        script_len, rest = stdin.encode().split(b"\n", 1)
        bundle = json.loads(rest[int(script_len):])
        files = {f["target"]: f for f in bundle["files"]}
        notify = base64.b64decode(files[PATHS.notify]["content"]).decode()
        assert "/v2/reserved_ips/203.0.113.50/actions" in notify and "assign_reserved_ip 9>&- &" in notify
        assert files[PATHS.notify]["mode"] == "0700"
        token = files[PATHS.provider_token]
        assert base64.b64decode(token["content"]).decode().strip() == PROVIDER_TOKEN
        assert (token["mode"], token["owner"]) == ("0600", "root:root")
        assert PATHS.notify in base64.b64decode(files[PATHS.keepalived_conf]["content"]).decode()
        assert {files[t]["component"] for t in (PATHS.notify, PATHS.provider_token, PATHS.keepalived_conf)} \
            == {"keepalived"}


def test_a_failed_gate_stops_every_later_node(run_phase):
    mocks = GraphMocks(fail={"brave-panda-infra-push"})
    error = run_phase(infra, "shop", "infra", mocks)
    assert error is not None and "health gate failed" in str(error)
    assert was_created(mocks, "brave-panda-infra") is True  # the component, not the failed push
    assert not was_created(mocks, "misty-owl-infra-push")


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
    # one record per domain: the storefront has two (the apex and www), each proxied
    assert sorted(records) == ["dns-api.example.com", "dns-example.com", "dns-www.example.com"]
    apex, www = records["dns-example.com"], records["dns-www.example.com"]
    assert (apex.inputs["name"], apex.inputs["type"], apex.inputs["content"], apex.inputs["proxied"]) == \
           ("example.com", "A", "203.0.113.50", True)
    assert (www.inputs["name"], www.inputs["type"], www.inputs["content"], www.inputs["proxied"]) == \
           ("www.example.com", "A", "203.0.113.50", True)
    assert apex.inputs["zoneId"] == www.inputs["zoneId"] == "zone-123"
    for service, record in (("api", records["dns-api.example.com"]), ("web", apex), ("web", www)):
        gates = [by_name(mocks, f"{n}-service-{service}-push") for n in ("brave-panda", "misty-owl")]
        assert all(record.started >= g.finished for g in gates)
        assert all(f"{n}-service-{service}" in " ".join(record.dependencies) for n in ("brave-panda", "misty-owl"))


def test_a_failed_service_gate_binds_no_domain(run_phase):
    mocks = GraphMocks(fail={"brave-panda-service-api-push"})
    assert run_phase(apps, "shop", "apps", mocks) is not None
    assert not was_created(mocks, "dns-api.example.com")
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
    # user data carries the node's private host key: a secret
    assert is_secret(droplet.inputs["userData"]) and "haproxy" in droplet.inputs["userData"]["value"]
    assert "userData" in droplet.ignore_changes


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
