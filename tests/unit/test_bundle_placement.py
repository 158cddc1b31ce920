"""A service bundle follows the live VIP holder, not the spec's master, and carries that run
state (so a placement change alone is a change the node applies, and a new trigger); a service
without a route removes any route file a node still holds; the trigger ignores the cluster
version."""
from __future__ import annotations

import dataclasses

from dynia.state import secrets
from dynia.render.bundle import build_bundles
from dynia.paths import PATHS
from dynia.render.rendered import render_cluster
from dynia.state.store import Project
from dynia.spec.load import load_cluster


def bundles(project, node, holder=None, edit=None):
    spec_path = project / "clusters/shop.yaml"
    if edit:
        spec_path.write_text(edit(spec_path.read_text()))
    cluster = load_cluster(Project(project), "shop")
    rendering = render_cluster(cluster)
    slots = secrets.slot_values(cluster.project, "shop", b"PEM", "token", origin_pull_ca=b"CA")
    return build_bundles(cluster.spec, rendering, node, slots, holder=holder)


def runs_admin(b) -> bool:
    return b["service:admin"].run


def test_active_only_runs_on_the_live_holder_after_a_failover(project):
    # misty-owl is the configured master; keepalived moved the reserved IP to brave-panda
    assert runs_admin(bundles(project, "brave-panda", holder="brave-panda"))
    assert not runs_admin(bundles(project, "misty-owl", holder="brave-panda"))
    assert bundles(project, "brave-panda", holder="brave-panda")["service:admin"].health


def test_without_a_known_holder_the_configured_master_runs_it(project):
    assert runs_admin(bundles(project, "misty-owl"))
    assert not runs_admin(bundles(project, "brave-panda"))
    assert runs_admin(bundles(project, "misty-owl", holder="no-such-node"))


def test_every_node_gets_the_commands_to_start_and_stop_a_service_and_run_says_which(project):
    from dynia.nodes.commands import NodeCommands
    from dynia.providers.digitalocean import PROFILE
    do = NodeCommands(PROFILE)
    for node, runs in (("misty-owl", True), ("brave-panda", False)):
        b = bundles(project, node)["service:admin"]
        assert b.as_json()["run"] is runs
        assert b.reload == {"service:admin": do.compose_up("admin"), "caddy": do.reload("caddy")}
        assert b.stop == {"service:admin": do.compose_down("admin")}
        assert bool(b.health) is runs  # the app is gated only where it should run
    # all-nodes services run everywhere; infra has no run state
    assert all(bundles(project, n)["service:api"].run is True for n in ("misty-owl", "brave-panda"))
    assert bundles(project, "misty-owl")["infra"].as_json()["run"] is None


def test_a_service_bundle_carries_how_to_tell_whether_each_image_of_its_compose_file_is_on_the_node(project):
    from dynia.nodes.commands import NodeCommands
    from dynia.providers.digitalocean import PROFILE
    do = NodeCommands(PROFILE)
    api = bundles(project, "misty-owl")["service:api"]
    assert api.as_json()["images"] == {image: do.image_present(image)
                                       for image in ("ghcr.io/example/shop-api:2.0.1", "redis:7-alpine")}
    assert bundles(project, "misty-owl")["infra"].images == {}


def test_a_holder_change_changes_only_the_active_only_services_triggers_on_the_nodes_concerned(project):
    three = lambda t: t.replace("nodes: [misty-owl, brave-panda]", "nodes: [misty-owl, brave-panda, calm-otter]")  # noqa: E731
    nodes = ("misty-owl", "brave-panda", "calm-otter")
    before = {n: bundles(project, n, holder="misty-owl", edit=three) for n in nodes}
    after = {n: bundles(project, n, holder="brave-panda") for n in nodes}
    changed = sorted((n, layer) for n in nodes for layer in before[n]
                     if before[n][layer].digest != after[n][layer].digest)
    assert changed == [("brave-panda", "service:admin"), ("misty-owl", "service:admin")]
    # The compose file is the same on every node: only the run state (and its gate) moved.
    assert before["misty-owl"]["service:admin"].files == after["misty-owl"]["service:admin"].files
    assert (before["misty-owl"]["service:admin"].run, after["misty-owl"]["service:admin"].run) == (True, False)


def test_switching_a_service_to_all_nodes_starts_it_on_the_backups(project):
    before = bundles(project, "brave-panda")["service:admin"]
    after = bundles(project, "brave-panda", edit=lambda t: t.replace("placement: active-only", "placement: all"))
    assert (before.run, after["service:admin"].run) == (False, True)
    assert after["service:admin"].digest != before.digest


def test_unbinding_a_route_removes_the_route_file_and_reloads_caddy(project):
    bound = bundles(project, "misty-owl")["service:api"]
    assert bound.remove == [] and PATHS.route_file("api") in [f["target"] for f in bound.files]
    unbound = bundles(project, "misty-owl", edit=lambda t: t.replace("    domain: api.example.com\n", ""))
    b = unbound["service:api"]
    assert b.remove == [PATHS.route_file("api")]
    assert b.as_json()["removeComponents"] == {PATHS.route_file("api"): "caddy"}
    assert "caddy" in b.reload and PATHS.route_file("api") not in [f["target"] for f in b.files]


def test_the_trigger_ignores_the_cluster_version_but_not_the_content(project):
    b = bundles(project, "misty-owl")["service:api"]
    assert dataclasses.replace(b, config_version=b.config_version + 5).digest == b.digest
    changed = dataclasses.replace(b, files=[dict(f, mode="0600") for f in b.files])
    assert changed.digest != b.digest


def test_removed_services_are_the_service_layers_last_applied_that_the_spec_no_longer_names(project):
    from dynia.render.bundle import removed_services
    spec = load_cluster(Project(project), "shop").spec
    previous = {"misty-owl": {"infra": {}, "service:web": {}, "service:old": {}},
                "brave-panda": {"service:gone": {}, "service:api": {}}, "junk": None}
    assert removed_services(spec, previous) == ["gone", "old"]
    assert removed_services(spec, None) == [] and removed_services(spec, {"misty-owl": ["x"]}) == []


def test_a_removal_bundle_deletes_exactly_the_compose_file_and_route_and_stops_the_project(project):
    from dynia.render.bundle import removal_bundle
    spec = load_cluster(Project(project), "shop").spec
    b = removal_bundle(spec, "misty-owl", "old", 4)
    assert (b.layer, b.files, b.health, b.config_version) == ("service:old", [], [], 4)
    assert b.remove == [PATHS.compose_file("old"), PATHS.route_file("old")]
    assert b.remove_components == {PATHS.compose_file("old"): "service:old", PATHS.route_file("old"): "caddy"}
    assert b.remove_commands["service:old"]["stop"] == "docker compose -p dynia-old down"
    assert b.component_order == ["service:old", "caddy"] and set(b.reload) == {"caddy"}


def test_the_health_gate_asks_caddy_once_per_domain_of_the_service(project):
    for node in ("misty-owl", "brave-panda"):
        web = bundles(project, node)["service:web"].health
        via = [(c["name"], c["hostHeader"]) for c in web if "via caddy" in c["name"]]
        # the first keeps the name a one-domain service's check has (its bundle is unchanged)
        assert via == [("web via caddy", "example.com"), ("web via caddy as www.example.com", "www.example.com")]
        assert {c["path"] for c in web} == {"/"}
        api = bundles(project, node)["service:api"].health
        assert [(c["name"], c.get("hostHeader")) for c in api] == [("api app", "api.example.com"),
                                                                    ("api via caddy", "api.example.com")]
