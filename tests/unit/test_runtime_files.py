"""Runtime files are input too: every file dynia reads from .dynia/ (the address cache, the
applied manifest, the generated secrets, snapshots) and what provision returns is validated
as strictly as the spec. A crafted or corrupt file is a typed `state` error naming the file
and the fix, and nothing it holds reaches a rendered file."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynia.errors import DyniaError

STATE = 11
GOOD_NODES = {"misty-owl": {"private_ip": "10.110.0.5", "public_ip": "198.51.100.5"},
              "brave-panda": {"private_ip": "10.110.0.6", "public_ip": "198.51.100.6"}}

OUTPUTS_CASES = [
    ("server-line-in-private-ip", {"reserved_ip": "203.0.113.7", "nodes": {
        **GOOD_NODES, "misty-owl": {"private_ip": "10.110.0.5:8880\n    server evil 192.0.2.66", "public_ip": None}}}),
    ("shell-in-reserved-ip", {"reserved_ip": "203.0.113.7/32 dev lo\n}\n$(reboot)", "nodes": GOOD_NODES}),
    ("private-ip-outside-vpc", {"reserved_ip": "203.0.113.7", "nodes": {
        **GOOD_NODES, "brave-panda": {"private_ip": "192.168.7.6", "public_ip": "198.51.100.6"}}}),
    ("loopback-public-ip", {"reserved_ip": "203.0.113.7", "nodes": {
        **GOOD_NODES, "brave-panda": {"private_ip": "10.110.0.6", "public_ip": "127.0.0.1"}}}),
    ("node-id-with-newline", {"reserved_ip": "203.0.113.7", "nodes": {**GOOD_NODES, "misty-owl\n": GOOD_NODES["misty-owl"]}}),
    ("unknown-key", {"reserved_ip": "203.0.113.7", "nodes": GOOD_NODES, "extra": 1}),
    ("ip-as-number", {"reserved_ip": 3405803783, "nodes": GOOD_NODES}),
    ("a-list", [1, 2, 3]),
    ("missing-reserved-ip", {"nodes": GOOD_NODES}),
]

APPLIED_CASES = [
    ("version-is-a-string", {"configVersion": "7"}),
    ("version-negative", {"configVersion": -1}),
    ("version-is-a-float", {"configVersion": 1.5}),
    ("a-list", []),
    ("target-escapes", {"configVersion": 1, "nodes": {"misty-owl": {"/etc/../../root/x": {
        "sha256": "0" * 64, "mode": "0644", "owner": "root:root", "component": "caddy"}}}}),
    ("sha-not-hex", {"configVersion": 1, "nodes": {"misty-owl": {"/etc/x": {
        "sha256": "z" * 64, "mode": "0644", "owner": "root:root", "component": "caddy"}}}}),
    ("content-hash-with-newline", {"configVersion": 1, "contentHash": "0" * 63 + "\n"}),
]


def _cache(project: Path) -> Path:
    d = project / ".dynia/cache/shop"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _files(project: Path) -> dict[str, bytes]:
    return {str(p.relative_to(project)): p.read_bytes() for p in sorted(project.rglob("*")) if p.is_file()}


def _expect_state_error(result, shown: str) -> None:
    assert result.code == STATE, (result.code, result.err)
    err = result.err.strip().splitlines()
    assert err[0].startswith("error: ") and shown in err[0], result.err
    assert err[1].startswith("hint: delete it"), result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("data", [c[1] for c in OUTPUTS_CASES], ids=[c[0] for c in OUTPUTS_CASES])
def test_crafted_address_cache_is_a_state_error_and_renders_nothing(project, cli, data):
    (_cache(project) / "outputs.json").write_text(json.dumps(data))
    before = _files(project)
    for argv in (["render"], ["plan", "--offline"]):
        _expect_state_error(cli("-C", str(project), *argv, "--cluster", "shop"), ".dynia/cache/shop/outputs.json")
    assert _files(project) == before
    assert not (project / "deploy-config").exists()


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe\x00binary", b"[" * 100000 + b"]" * 100000],
                         ids=["not-json", "binary", "deeply-nested"])
def test_unreadable_address_cache_is_a_state_error(project, cli, raw):
    (_cache(project) / "outputs.json").write_bytes(raw)
    _expect_state_error(cli("-C", str(project), "plan", "--offline", "--cluster", "shop"),
                        ".dynia/cache/shop/outputs.json")


def test_address_cache_that_is_a_directory_is_a_state_error(project, cli):
    (_cache(project) / "outputs.json").mkdir()
    _expect_state_error(cli("-C", str(project), "plan", "--offline", "--cluster", "shop"),
                        ".dynia/cache/shop/outputs.json")


@pytest.mark.parametrize("data", [c[1] for c in APPLIED_CASES], ids=[c[0] for c in APPLIED_CASES])
def test_corrupt_applied_manifest_is_a_state_error(project, cli, data):
    (_cache(project) / "applied.json").write_text(json.dumps(data))
    before = _files(project)
    _expect_state_error(cli("-C", str(project), "plan", "--offline", "--cluster", "shop"),
                        ".dynia/cache/shop/applied.json")
    assert _files(project) == before


def test_valid_cache_still_renders_the_cached_addresses(project, cli):
    (_cache(project) / "outputs.json").write_text(json.dumps({"reserved_ip": "203.0.113.7", "nodes": GOOD_NODES}))
    r = cli("-C", str(project), "render", "--cluster", "shop")
    assert r.code == 0, r.err
    cfg = (project / "deploy-config/shop/misty-owl/infra/etc/haproxy/haproxy.cfg").read_text()
    assert "server brave-panda 10.110.0.6:8880" in cfg


def test_provision_outputs_are_checked_before_they_are_cached(project):
    from dynia.state.cache import ClusterCache
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    cache = ClusterCache.of(load_cluster(Project(project), "shop"))
    with pytest.raises(DyniaError) as exc:
        cache.write_outputs({"reserved_ip": "203.0.113.7",
                             "nodes": {"misty-owl": {"private_ip": "10.110.0.5\nserver x", "public_ip": None}}})
    assert exc.value.kind == "state" and "provision phase's outputs" in exc.value.message
    assert not (project / ".dynia/cache/shop/outputs.json").exists()
    cache.write_outputs({"reserved_ip": "203.0.113.7", "nodes": GOOD_NODES})
    assert cache.read_outputs().nodes["misty-owl"].private_ip == "10.110.0.5"


@pytest.mark.parametrize("content", [
    {"stats_user": "stats-1234", "stats_password": "x" * 20 + "\nDYNIA_STATS_USER=admin"},
    {"stats_user": "stats 1234", "stats_password": "x" * 24},
    {"stats_user": "stats-1234"},
    ["stats-1234", "x" * 24],
], ids=["newline-in-password", "space-in-user", "missing-password", "a-list"])
def test_corrupt_stats_credentials_are_refused_never_pushed(project, content):
    from dynia.state import secrets
    from dynia.state.store import Project

    proj = Project(project)
    proj.ensure_runtime()
    proj.secrets_path("shop").write_text(json.dumps(content))
    with pytest.raises(DyniaError) as exc:
        secrets.slot_values(proj, "shop", None, None)
    assert exc.value.kind == "state" and ".dynia/secrets/shop.json" in exc.value.message
    assert "delete" in exc.value.hint


def test_generated_stats_credentials_pass_their_own_check(project):
    from dynia.state import secrets
    from dynia.state.store import Project

    values = secrets.slot_values(Project(project), "shop", None, None)
    assert values["stats_credentials"].count(b"\n") == 2


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_a_runtime_file_that_is_not_a_regular_file_is_refused_without_reading_it(project, cli, kind):
    import os

    path = _cache(project) / "outputs.json"
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        os.mkfifo(path)
    _expect_state_error(cli("-C", str(project), "plan", "--offline", "--cluster", "shop"),
                        ".dynia/cache/shop/outputs.json")


@pytest.mark.parametrize("nodes,reserved", [
    ({"misty-owl": {"private_ip": "10.110.0.5"}, "brave-panda": {"private_ip": "10.110.0.5"}}, "203.0.113.7"),
    ({"misty-owl": {"private_ip": "10.110.0.5"}}, "10.110.0.5"),
    ({"misty-owl": {"private_ip": "10.110.0.255"}}, "203.0.113.7"),
    ({"misty-owl": {"private_ip": "10.110.0.0"}}, "203.0.113.7"),
], ids=["two-nodes-one-address", "node-is-the-reserved-ip", "broadcast", "network"])
def test_addresses_that_would_collide_in_the_rendered_configs_are_refused(project, cli, nodes, reserved):
    (_cache(project) / "outputs.json").write_text(json.dumps({"reserved_ip": reserved, "nodes": nodes}))
    _expect_state_error(cli("-C", str(project), "plan", "--offline", "--cluster", "shop"),
                        ".dynia/cache/shop/outputs.json")


def test_a_node_added_since_the_last_apply_gets_a_planned_address_no_node_has(project):
    from dynia.state import cache
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    # misty-owl was provisioned at the address the plan would give brave-panda (.3).
    (_cache(project) / "outputs.json").write_text(json.dumps(
        {"reserved_ip": "203.0.113.7", "nodes": {"misty-owl": {"private_ip": "10.110.0.3"}}}))
    inv = cache.inventory(load_cluster(Project(project), "shop"))
    addresses = [inv.nodes[n][0] for n in ("misty-owl", "brave-panda")]
    assert addresses[0] == "10.110.0.3" and len(set(addresses)) == 2 and inv.planned


def test_cluster_init_refuses_a_corrupt_secrets_file_instead_of_leaving_it_for_the_first_push(project, cli):
    secrets = project / ".dynia/secrets"
    secrets.mkdir(parents=True)
    (secrets / "blog.json").write_text("garbage")
    r = cli("-C", str(project), "cluster", "init", "blog", "--region", "sgp1", "--domain", "example.com")
    assert r.code == STATE and ".dynia/secrets/blog.json" in r.err


def test_a_snapshot_record_with_terminal_escapes_is_refused(project, cli):
    snap = project / ".dynia/snapshots/shop/20260101T000000.000000Z-manual"
    snap.mkdir(parents=True)
    (snap / "snapshot.json").write_text(json.dumps({"id": snap.name, "cluster": "shop", "phases": ["provision"],
                                                    "reason": "x \u001b[2J\u001b[31mRED"}))
    r = cli("-C", str(project), "state", "list", "--cluster", "shop")
    assert r.code == STATE and "\u001b" not in r.out + r.err
