"""Plans that are truthful and minimal, read from what Pulumi itself registers: a push's
trigger and payload change only when what that push delivers changes; phases plan before
the first provision and after `node add`; stack references name the backend's organization."""
from __future__ import annotations

import json

import pytest

from dynia.stacks import apps, infra, provision

from .conftest import ORIGIN_PULL, NODES, ORIGIN_PEM, GraphMocks, is_secret

PUSH = "command:remote:Command"


def plain(value):
    return value["value"] if is_secret(value) else value


def pushes(mocks) -> dict[str, dict]:
    """push name -> {"trigger", "stdin", "version"} as registered."""
    out = {}
    for reg in mocks.created.values():
        if reg.typ != PUSH:
            continue
        stdin = plain(reg.inputs["stdin"])
        script_len, rest = stdin.encode().split(b"\n", 1)  # the length counts bytes
        bundle = json.loads(rest[int(script_len):])
        out[reg.name] = {"trigger": [plain(t) for t in plain(reg.inputs["triggers"])], "stdin": stdin,
                         "version": bundle["configVersion"], "node": bundle["node"], "layer": bundle["layer"]}
    return out


def layers(registered: dict[str, dict]) -> dict:
    """What the phase exports as `layers` (the engine hands it to the next run)."""
    out: dict = {}
    for p in registered.values():
        out.setdefault(p["node"], {})[p["layer"]] = {"digest": p["trigger"][0], "version": p["version"]}
    return out


def applied_after_up(project, version: int) -> None:
    """What `dynia up` leaves in the applied cache: the version, and a content hash that the
    next render (after an edit) no longer matches, so its version is the next one."""
    cache = project / ".dynia/cache/shop"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "applied.json").write_text(json.dumps({"configVersion": version, "contentHash": "0" * 64,
                                                    "nodes": {}}))


@pytest.mark.parametrize("module,phase", [(infra, "infra"), (apps, "apps")])
def test_a_second_plan_right_after_up_changes_no_push(run_phase, project, module, phase):
    first = GraphMocks()
    assert run_phase(module, "shop", phase, first) is None
    before = pushes(first)
    applied_after_up(project, 7)  # whatever the cluster's version is now, an unchanged layer keeps its own
    second = GraphMocks()
    assert run_phase(module, "shop", phase, second, previous_layers=layers(before)) is None
    after = pushes(second)
    assert sorted(after) == sorted(before)
    assert {n: (p["trigger"], p["stdin"]) for n, p in after.items()} == \
           {n: (p["trigger"], p["stdin"]) for n, p in before.items()}


def test_one_image_change_changes_exactly_that_services_pushes(run_phase, project):
    first = GraphMocks()
    assert run_phase(apps, "shop", "apps", first) is None
    before = pushes(first)
    infra_first = GraphMocks()
    assert run_phase(infra, "shop", "infra", infra_first) is None
    applied_after_up(project, 1)
    compose = project / "services/api.yml"
    compose.write_text(compose.read_text().replace("shop-api:2.0.1", "shop-api:2.0.2"))

    second = GraphMocks()
    assert run_phase(apps, "shop", "apps", second, previous_layers=layers(before)) is None
    after = pushes(second)
    changed = sorted(n for n in after if after[n]["trigger"] != before[n]["trigger"])
    assert changed == ["brave-panda-service-api-push", "misty-owl-service-api-push"]
    restaged = sorted(n for n in after if after[n]["stdin"] != before[n]["stdin"])
    assert restaged == changed
    assert {after[n]["version"] for n in changed} == {2}  # the new version, on the changed layer only
    assert {after[n]["version"] for n in after if n not in changed} == {1}

    infra_second = GraphMocks()
    assert run_phase(infra, "shop", "infra", infra_second, previous_layers=layers(pushes(infra_first))) is None
    assert {n: p["stdin"] for n, p in pushes(infra_second).items()} == \
           {n: p["stdin"] for n, p in pushes(infra_first).items()}


def test_a_holder_change_changes_exactly_the_active_only_services_pushes(run_phase, project):
    # After a failover the live holder is brave-panda: only admin (active-only) moves, so only
    # its pushes re-run (stop on misty-owl, start on brave-panda); infra and the all-nodes
    # services keep their pushes.
    for module, phase, expected in ((apps, "apps", ["brave-panda-service-admin-push", "misty-owl-service-admin-push"]),
                                    (infra, "infra", [])):
        first = GraphMocks()
        assert run_phase(module, "shop", phase, first, holder="misty-owl") is None
        before = pushes(first)
        applied_after_up(project, 1)
        second = GraphMocks()
        assert run_phase(module, "shop", phase, second, holder="brave-panda", previous_layers=layers(before)) is None
        after = pushes(second)
        assert sorted(n for n in after if after[n]["trigger"] != before[n]["trigger"]) == expected, phase
        assert sorted(n for n in after if after[n]["stdin"] != before[n]["stdin"]) == expected, phase


def test_the_stats_credentials_come_from_the_provision_stack_not_this_machine(run_phase, project):
    creds = {"stats_user": "stats-0a1b2c3d", "stats_password": "kept-with-the-state-0123456789"}
    outputs = {"nodes": NODES, "reservedIp": "203.0.113.50", "originPem": ORIGIN_PEM, "statsCredentials": creds,
               "originPull": ORIGIN_PULL}
    mocks = GraphMocks(provision_outputs=outputs)
    assert run_phase(infra, "shop", "infra", mocks) is None
    assert not (project / ".dynia/secrets/shop.json").exists()  # nothing generated on this machine
    # a second machine (a fresh copy of the project) pushes byte-identical infra bundles
    other = GraphMocks(provision_outputs=outputs)
    assert run_phase(infra, "shop", "infra", other) is None
    assert {n: p["trigger"] for n, p in pushes(other).items()} == {n: p["trigger"] for n, p in pushes(mocks).items()}
    payload = pushes(mocks)["misty-owl-infra-push"]["stdin"]
    import base64
    env = base64.b64encode(f"DYNIA_STATS_USER={creds['stats_user']}\nDYNIA_STATS_PASSWORD="
                           f"{creds['stats_password']}\n".encode()).decode()
    assert env in payload


def test_provision_keeps_the_engines_credentials_as_a_secret_output(run_phase, monkeypatch):
    import asyncio

    import pulumi

    creds = {"stats_user": "stats-0a1b2c3d", "stats_password": "kept-with-the-state-0123456789"}
    exported = {}
    monkeypatch.setattr(pulumi, "export", lambda name, value: exported.__setitem__(name, value))
    mocks = GraphMocks()
    assert run_phase(provision, "shop", "provision", mocks, stats_credentials=creds) is None
    kept = exported["statsCredentials"]
    loop = asyncio.get_event_loop()
    assert loop.run_until_complete(kept.is_secret()) is True
    assert loop.run_until_complete(kept.future()) == creds


@pytest.mark.parametrize("module,phase", [(infra, "infra"), (apps, "apps")])
def test_plan_before_the_first_provision_uses_planned_addresses(run_phase, module, phase):
    mocks = GraphMocks(provision_outputs={})
    assert run_phase(module, "shop", phase, mocks, preview=True) is None
    registered = pushes(mocks)
    assert {p["node"] for p in registered.values()} == {"misty-owl", "brave-panda"}
    hosts = {plain(r.inputs["connection"])["host"] for r in mocks.created.values() if r.typ == PUSH}
    assert all(h.startswith("10.110.0.") for h in hosts)  # the provider's planned private addresses


def test_plan_after_node_add_plans_the_new_node_with_a_planned_address(run_phase, project):
    spec = project / "clusters/shop.yaml"
    spec.write_text(spec.read_text().replace("nodes: [misty-owl, brave-panda]", "nodes: [misty-owl, brave-panda, calm-heron]"))
    mocks = GraphMocks()
    assert run_phase(infra, "shop", "infra", mocks, preview=True) is None
    registered = pushes(mocks)
    assert "calm-heron-infra-push" in registered
    # the provisioned nodes keep their real addresses inside the render
    haproxy_cfg_host = {plain(r.inputs["connection"])["host"] for r in mocks.created.values()
                        if r.typ == PUSH and r.name.startswith("misty-owl")}
    assert haproxy_cfg_host == {"198.51.100.11"}


@pytest.mark.parametrize("organization,expected", [(None, "organization/dynia/shop-provision"),
                                                   ("acme", "acme/dynia/shop-provision")])
def test_stack_references_name_the_backends_organization(run_phase, organization, expected):
    mocks = GraphMocks()
    assert run_phase(infra, "shop", "infra", mocks, organization=organization) is None
    assert mocks.references == [expected]
