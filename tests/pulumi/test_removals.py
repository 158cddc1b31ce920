"""A service removed from the spec is removed from every node, read from what Pulumi itself
registers: the apps program finds it in its stack's last `layers` output (which travels with
the Pulumi state, so every machine finds the same), and pushes, node by node, a bundle that
stops its compose project and deletes exactly its compose file and route."""
from __future__ import annotations

import json

from dynia.nodes.commands import NodeCommands
from dynia.paths import PATHS
from dynia.providers import get
from dynia.stacks import apps

from .conftest import GraphMocks
from .test_minimal_plans import layers, plain, pushes

PUSH = "command:remote:Command"
DO = NodeCommands(get("digitalocean").profile)


def bundles(mocks) -> dict[str, dict]:
    """push name -> the bundle it carries on stdin."""
    out = {}
    for reg in mocks.created.values():
        if reg.typ == PUSH:
            script_len, rest = plain(reg.inputs["stdin"]).encode().split(b"\n", 1)
            out[reg.name] = json.loads(rest[int(script_len):])
    return out


def remove_service(project, name: str) -> None:
    spec = project / "clusters/shop.yaml"
    lines = spec.read_text().splitlines(keepends=True)
    start = lines.index(f"  {name}:\n")
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("    ")), len(lines))
    spec.write_text("".join(lines[:start] + lines[end:]))


def record_exports(monkeypatch) -> dict:
    """The program's exports, resolved (the mocks' test runner registers no root stack)."""
    import pulumi

    exported: dict = {}
    monkeypatch.setattr(pulumi, "export", lambda name, value: pulumi.Output.from_input(value).apply(
        lambda v: exported.__setitem__(name, v)))
    return exported


def test_a_service_removed_from_the_spec_gets_one_removal_push_per_node_deleting_its_files_and_stopping_it(
        run_phase, project, monkeypatch):
    first = GraphMocks()
    assert run_phase(apps, "shop", "apps", first) is None
    before = pushes(first)
    remove_service(project, "api")

    second = GraphMocks()
    exported = record_exports(monkeypatch)
    assert run_phase(apps, "shop", "apps", second, previous_layers=layers(before)) is None
    carried = bundles(second)
    removals = {n: b for n, b in carried.items() if b["layer"] == "service:api"}
    assert sorted(removals) == ["brave-panda-service-api-push", "misty-owl-service-api-push"]
    for b in removals.values():
        assert b["files"] == []
        assert b["remove"] == [PATHS.compose_file("api"), PATHS.route_file("api")]
        assert b["removeComponents"] == {PATHS.compose_file("api"): "service:api", PATHS.route_file("api"): "caddy"}
        assert b["removeCommands"] == {"service:api": {"stop": DO.compose_remove("api"),
                                                       "running": DO.compose_running("api"),
                                                       "restart": DO.compose_up("api")}}
        assert b["reload"] == {"caddy": DO.reload("caddy")}
    # The other services' pushes are untouched, and the removal is not remembered as a layer:
    # once applied, the next run neither pushes nor removes it again.
    assert {n: p["trigger"] for n, p in pushes(second).items() if "service-api" not in n} == \
           {n: p["trigger"] for n, p in before.items() if "service-api" not in n}
    assert sorted(exported["layers"]) == ["brave-panda", "misty-owl"]
    for node_layers in exported["layers"].values():
        assert "service:api" not in node_layers and {"service:admin", "service:web"} <= set(node_layers)


def test_the_removal_runs_on_each_node_in_rolling_order_before_any_remaining_service(run_phase, project):
    first = GraphMocks()
    assert run_phase(apps, "shop", "apps", first) is None
    remove_service(project, "api")
    second = GraphMocks()
    assert run_phase(apps, "shop", "apps", second, previous_layers=layers(pushes(first))) is None
    by_name = {r.name: r for r in second.created.values()}
    gate = {r.name: r.urn for r in second.created.values()}
    # brave-panda's removal waits for nothing, misty-owl's (the holder, last) for brave-panda's,
    # and the first remaining service waits for the last removal.
    # (a dependency on a component is registered as one on its children: the push)
    assert by_name["brave-panda-service-api"].dependencies == []
    assert by_name["misty-owl-service-api"].dependencies == [gate["brave-panda-service-api-push"]]
    assert by_name["brave-panda-service-admin"].dependencies == [gate["misty-owl-service-api-push"]]


def test_nothing_is_removed_when_the_last_apply_never_pushed_the_service(run_phase, project):
    remove_service(project, "api")
    mocks = GraphMocks()
    assert run_phase(apps, "shop", "apps", mocks, previous_layers={"misty-owl": {"service:web": {}}}) is None
    assert not [b for b in bundles(mocks).values() if b["layer"] == "service:api"]
    assert not [b for b in bundles(mocks).values() if b["remove"] and not b["files"]]
