"""Render: golden output, determinism, topology promises, secrets, guard, versions, rolling order."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dynia.planner import rolling_order
from dynia.render.rendering import write_deploy_config
from dynia.render.rendered import render_cluster as render
from dynia.state.store import Project
from dynia.spec.load import load_cluster

from ..golden_files import check_text, check_tree, tree as _tree

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CLUSTERS = ["shop", "mini"]


@pytest.mark.parametrize("name", CLUSTERS)
def test_render_matches_golden_files(project, tmp_path, name):
    out = tmp_path / name
    write_deploy_config(render(load_cluster(Project(project), name)), out)
    check_tree(GOLDEN / name, out, "render")


@pytest.mark.parametrize("image", ["ubuntu-24-04-x64", "debian-13-x64"])
def test_cloud_init_of_each_image_matches_its_golden_file_and_carries_no_managed_file(image):
    from dynia.render.rendering import cloud_init

    text = cloud_init("shop", "misty-owl", image)
    check_text(GOLDEN / "cloud-init" / f"shop-misty-owl-{image}.yaml", text, "cloud-init")
    assert text.startswith("#cloud-config\n") and "haproxy.cfg" not in text and "Caddyfile" not in text


@pytest.mark.parametrize("name", CLUSTERS)
def test_rendering_twice_is_byte_identical(project, cli, name):
    assert cli("-C", str(project), "render", "--cluster", name).code == 0
    first = _tree(project / "deploy-config" / name)
    assert cli("-C", str(project), "render", "--cluster", name).code == 0
    assert _tree(project / "deploy-config" / name) == first


def test_comment_only_spec_edit_keeps_spec_hash(project):
    spec = project / "clusters/shop.yaml"
    before = render(load_cluster(Project(project), "shop"))
    spec.write_text("# a new comment\n" + spec.read_text())
    after = render(load_cluster(Project(project), "shop"))
    assert (before.spec_hash, before.content_hash) == (after.spec_hash, after.content_hash)


def _cfg(rendering, node, target):
    return next(f.content.decode() for f in rendering.files[node] if f.target == target)


def _backend(cfg: str, name: str) -> str:
    return cfg.split(f"\nbackend {name}\n", 1)[1].split("\n\n", 1)[0]


def test_every_node_backs_every_node_on_private_addresses(project):
    r = render(load_cluster(Project(project), "shop"))
    private = {n: a[0] for n, a in r.inventory.nodes.items()}
    for node in r.files:
        cfg = _cfg(r, node, "/etc/haproxy/haproxy.cfg")
        for backend in ("be_any_node", "be_api", "be_web"):
            servers = re.findall(r"^\s+server (\S+) (\S+):8880$", _backend(cfg, backend), re.M)
            assert sorted(servers) == sorted((n, ip) for n, ip in private.items()), backend


def test_each_routed_service_has_its_own_backend_checked_through_caddy_on_its_health_path(project):
    c = load_cluster(Project(project), "shop")
    r = render(c)
    cfg = _cfg(r, "misty-owl", "/etc/haproxy/haproxy.cfg")
    routed = {n: s for n, s in c.spec.services.items() if s.domains}
    assert routed  # the example routes services: the loop below proves something
    # one rule per service, matching every host it serves (the storefront: the apex and www)
    rules = re.findall(r"^    use_backend (\S+) if \{ hdr\(host\),field\(1,:\) -i ([^}]+) \}$", cfg, re.M)
    assert rules == sorted((f"be_{n}", " ".join(s.domains)) for n, s in routed.items())
    assert ("be_web", "example.com www.example.com") in rules
    assert "\n    default_backend be_any_node\n" in cfg
    for name, svc in routed.items():
        be = _backend(cfg, f"be_{name}")
        # A node whose copy is down answers the check through Caddy with a 502: marked down.
        assert f"http-check send meth GET uri {svc.health_path} ver HTTP/1.1 hdr Host {svc.domains[0]}" in be
        assert "http-check expect status 200-399" in be
        # Issue 9's promise holds per backend: only safe methods are sent again.
        assert "retry-on all-retryable-errors" in be
        assert "http-request disable-l7-retry unless { method GET HEAD OPTIONS }" in be
    # Every server is checked, on the timing the drain's waits are derived from.
    from dynia.nodes.commands import HAPROXY_TIMING as t
    assert (f"    default-server check inter {t.inter}ms fastinter {t.fastinter}ms downinter {t.downinter}ms "
            f"fall {t.fall} rise {t.rise}\n") in cfg
    assert f"    timeout server {t.server_timeout}s\n" in cfg


def test_a_routed_service_answers_its_health_check_503_while_its_drain_marker_exists(project):
    r = render(load_cluster(Project(project), "shop"))
    route = _cfg(r, "brave-panda", "/etc/caddy/routes/api.caddy")
    assert ("\t@draining {\n\t\tpath /healthz\n\t\tfile {\n\t\t\troot /run/dynia/drain\n"
            "\t\t\ttry_files api\n\t\t}\n\t}\n\trespond @draining \"draining\" 503\n") in route
    # The 503 is decided before the request is proxied to the app.
    assert route.index("respond @draining") < route.index("reverse_proxy 127.0.0.1:8081")


def test_drain_applies_only_where_another_nodes_copy_takes_the_requests(project):
    from dynia.nodes.commands import HAPROXY_TIMING, Drain
    from dynia.render.rendering import drain_for

    shop = load_cluster(Project(project), "shop").spec
    assert drain_for(shop, "api") == Drain(port=8081, health_path="/healthz", ready_timeout=shop.health.timeout,
                                           timing=HAPROXY_TIMING, host="api.example.com")
    assert drain_for(shop, "admin") is None  # active-only: no other copy
    mini = load_cluster(Project(project), "mini").spec
    assert len(mini.nodes) == 1 and all(drain_for(mini, s) is None for s in mini.services)


def test_no_service_or_stats_port_listens_on_a_public_address(project):
    r = render(load_cluster(Project(project), "shop"))
    for node in r.files:
        private = r.inventory.nodes[node][0]
        haproxy = _cfg(r, node, "/etc/haproxy/haproxy.cfg")
        binds = re.findall(r"^\s+bind (\S+)", haproxy, re.M)
        # Only HAProxy's public entry points bind every address; stats is private.
        assert sorted(b for b in binds if not b.startswith(private)) == [":443", ":80"]
        assert f"bind {private}:8404" in haproxy
        for f in r.files[node]:
            if f.target.startswith("/etc/caddy/"):
                for bind in re.findall(r"^\s+bind (\S+)", f.content.decode(), re.M):
                    assert bind == private, f.target
            if f.target.endswith("docker-compose.yml"):
                ports = re.findall(r"^\s+- (\S+:\d+:\d+)$|host_ip: (\S+)", f.content.decode(), re.M)
                assert ports and all((p or h).startswith("127.0.0.1") for p, h in ports), f.target


def test_no_default_credentials_and_no_secret_values_in_deploy_config(project, cli):
    assert cli("-C", str(project), "cluster", "init", "blog", "--region", "ams3", "--domain", "example.com").code == 0
    secrets = json.loads((project / ".dynia/secrets/blog.json").read_text())
    assert cli("-C", str(project), "render", "--cluster", "shop").code == 0
    tree = _tree(project / "deploy-config" / "shop")
    blob = b"\n".join(tree.values())
    for value in secrets.values():
        assert value.encode() not in blob
    assert b"BEGIN PRIVATE KEY" not in blob and b"PRIVATE KEY-----" not in blob
    # No certificate is rendered: the origin certificate and the cluster's origin-pull CA come
    # from the provision state, into slots, at push time.
    assert b"BEGIN CERTIFICATE" not in blob
    haproxy = tree["misty-owl/infra/etc/haproxy/haproxy.cfg"].decode()
    assert 'stats auth "${DYNIA_STATS_USER}:${DYNIA_STATS_PASSWORD}"' in haproxy
    assert re.search(r"stats auth (admin|haproxy)", haproxy) is None
    slots = json.loads(tree["misty-owl/secret-slots.json"])
    assert {s["targetPath"]: s["mode"] for s in slots} == {
        "/etc/haproxy/certs/origin.pem": "0600", "/etc/default/haproxy": "0600", "/etc/dynia/provider-token": "0600",
        "/etc/haproxy/certs/origin-pull-ca.pem": "0644"}


def test_metadata_records_target_mode_owner_and_sha(project):
    r = render(load_cluster(Project(project), "shop"))
    import hashlib
    for f in r.files["misty-owl"]:
        m = f.metadata()
        assert m["sha256"] == hashlib.sha256(f.content).hexdigest()
        assert m["owner"] == "root:root" and m["targetPath"] == f.target
    modes = {f.target: f.metadata()["mode"] for f in r.files["misty-owl"]}
    assert modes["/etc/keepalived/notify.sh"] == "0700" and modes["/etc/haproxy/haproxy.cfg"] == "0644"


def test_keepalived_master_has_highest_priority_and_unicast_peers(project):
    r = render(load_cluster(Project(project), "shop"))
    conf = {n: _cfg(r, n, "/etc/keepalived/keepalived.conf") for n in r.files}
    prio = {n: int(re.search(r"priority (\d+)", c).group(1)) for n, c in conf.items()}
    assert max(prio, key=prio.get) == "misty-owl"
    assert "state MASTER" in conf["misty-owl"] and "state BACKUP" in conf["brave-panda"]
    assert "unicast_peer {\n        10.110.0.3\n    }" in conf["misty-owl"]
    assert "enable_script_security" in conf["misty-owl"]


def test_active_only_domain_routes_to_the_local_caddy_only(project):
    r = render(load_cluster(Project(project), "shop"))
    cfg = _cfg(r, "brave-panda", "/etc/haproxy/haproxy.cfg")
    assert "use_backend be_admin if { hdr(host),field(1,:) -i admin.example.com }" in cfg
    active = _backend(cfg, "be_admin")
    assert re.findall(r"server (\S+) (\S+):8880", active) == [("brave-panda", "10.110.0.3")]
    assert "http-check send meth GET uri /health ver HTTP/1.1 hdr Host admin.example.com" in active


def test_cached_outputs_replace_planned_addresses(project):
    cache = project / ".dynia/cache/shop"
    cache.mkdir(parents=True)
    (cache / "outputs.json").write_text(json.dumps({"reserved_ip": "203.0.113.7", "nodes": {
        "misty-owl": {"private_ip": "10.110.0.5", "public_ip": "198.51.100.5"},
        "brave-panda": {"private_ip": "10.110.0.6", "public_ip": "198.51.100.6"}}}))
    r = render(load_cluster(Project(project), "shop"))
    assert not r.inventory.planned
    conf = _cfg(r, "misty-owl", "/etc/keepalived/keepalived.conf")
    assert "203.0.113.7/32 dev lo" in conf and "unicast_src_ip 10.110.0.5" in conf


def test_config_version_stays_for_same_content_and_bumps_for_new(project):
    c = load_cluster(Project(project), "shop")
    first = render(c)
    assert first.config_version == 1
    cache = project / ".dynia/cache/shop"
    cache.mkdir(parents=True)
    (cache / "applied.json").write_text(json.dumps({"configVersion": 7, "contentHash": first.content_hash}))
    assert render(c).config_version == 7
    spec = project / "clusters/shop.yaml"
    spec.write_text(spec.read_text().replace("domain: api.example.com", "domain: v2.example.com"))
    assert render(load_cluster(Project(project), "shop")).config_version == 8


@pytest.mark.parametrize("nodes,master,holder,expected", [
    (["a-a", "b-b", "c-c"], "a-a", None, ["b-b", "c-c", "a-a"]),
    (["a-a", "b-b", "c-c"], "a-a", "c-c", ["a-a", "b-b", "c-c"]),
    (["a-a", "b-b", "c-c"], "b-b", "gone-node", ["a-a", "c-c", "b-b"]),
    (["a-a"], "a-a", None, ["a-a"]),
])
def test_rolling_order_puts_backups_first_and_the_vip_holder_last(nodes, master, holder, expected):
    assert rolling_order(nodes, master, holder) == expected


def test_guard_is_placement_aware_and_counts_failover_peak(project):
    r = render(load_cluster(Project(project), "shop"))
    rows = {row.node: row for row in r.guard.rows}
    # web 512 + api 768 + cache 256 everywhere; admin 384 only where the VIP is.
    assert rows["misty-owl"].steady_mib == 512 + 768 + 256 + 384
    assert rows["brave-panda"].steady_mib == 512 + 768 + 256
    assert rows["brave-panda"].peak_mib == rows["misty-owl"].steady_mib
    assert rows["misty-owl"].ram_mib == 4096


def test_guard_assumes_a_default_for_containers_without_limits(project):
    (project / "services/hello.yml").write_text('services:\n  hello:\n    image: x\n    ports: ["8090:80"]\n')
    r = render(load_cluster(Project(project), "mini"))
    assert r.guard.rows[0].steady_mib == 256
    assert r.guard.assumed == ["hello/hello (256 MiB assumed)"]
