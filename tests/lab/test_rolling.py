"""Rolling applies on real lab nodes: order, results, rollback, validation, idempotence, lockdown."""
from __future__ import annotations

import base64
import hashlib
import json

from .conftest import eventually, record


ORDER = ["brave-panda", "calm-otter", "misty-owl"]  # backups in spec order, the VIP holder last


def _applied(lc, node) -> dict:
    return json.loads(lc.cat(node, "/opt/dynia/state/applied.json"))


def _sha(lc, node, path) -> str:
    return hashlib.sha256(lc.cat(node, path)).hexdigest()


def _haproxy_workers(lc, node) -> str:
    return lc.sh(node, 'ps -o pid= --ppid "$(cat /run/haproxy.pid)"').stdout.decode().split().__str__()


def test_rolling_apply_in_planned_order_serves_every_service_through_the_vip(lab_cluster):
    lc = lab_cluster
    rendering = lc.render()
    assert rendering.rolling_order == ORDER
    result = lc.roll()
    assert result.ok, [(r.node, r.layer, r.reason) for r in result.results]
    assert [r.node for r in result.results if r.layer == "infra"] == ORDER
    infra = [r for r in result.results if r.layer == "infra"]
    record("infra_roll_seconds_3_nodes", round(sum(r.seconds for r in infra), 2))
    record("infra_roll_health_wait_seconds", round(sum(r.report["healthWaitSeconds"] for r in infra), 2))
    record("full_roll_seconds_3_nodes_4_layers", round(sum(r.seconds for r in result.results), 2))
    for node in ORDER:
        applied = _applied(lc, node)
        merged = {t: e for layer in applied["layers"].values() for t, e in layer.items()}
        for target, want in rendering.manifest(node).items():
            assert {k: merged[target][k] for k in ("sha256", "mode", "owner")} == \
                   {k: want[k] for k in ("sha256", "mode", "owner")}, (node, target)
        assert applied["configVersion"] == rendering.config_version
        assert f"node {node} of cluster lab".encode() in lc.cat(node, "/etc/haproxy/haproxy.cfg")
    # The MASTER preempts the backup that held the VIP while the roll was on its way.
    assert eventually(lambda: lc.vip_holder() == ["misty-owl"]), lc.vip_holder()
    for host, body in (("lab.example", b"web\n"), ("api.lab.example", b"api\n"), ("admin.lab.example", b"admin\n")):
        assert lc.get(host) == (200, body), host
    # active-only: the admin app ends up on the VIP holder only. A backup that briefly held the
    # VIP while the roll had not reached the MASTER yet stops it when it steps down (notify.sh).
    def admin_runs_on() -> list[str]:
        return [n for n in ORDER
                if lc.sh(n, "busybox wget -qO- http://127.0.0.1:9003/healthz", check=False).returncode == 0]
    assert eventually(lambda: admin_runs_on() == ["misty-owl"]), admin_runs_on()


def _with_file(bundle, target: str, content: bytes):
    for f in bundle.files:
        if f["target"] == target:
            f["content"] = base64.b64encode(content).decode()
            f["sha256"] = hashlib.sha256(content).hexdigest()
            return bundle
    raise AssertionError(target)


def test_failing_service_on_second_node_is_rolled_back_and_stops_the_roll(applied_lab):
    lc = applied_lab
    compose = "/opt/dynia/compose/api/docker-compose.yml"
    before = {n: _sha(lc, n, compose) for n in ORDER}
    (lc.project.root / "services/lab-api.yml").write_text(
        (lc.project.root / "services/lab-api.yml").read_text().replace("mem_limit: 64m", "mem_limit: 96m"))
    bundles = lc.bundles()
    # On the second node the new release is broken for real: the app listens on the wrong port.
    bad = bundles["calm-otter"]["service:api"]
    good_content = base64.b64decode(next(f["content"] for f in bad.files if f["target"] == compose))
    _with_file(bad, compose, good_content.replace(b"127.0.0.1:9002", b"127.0.0.1:9999"))
    result = lc.roll(bundles, layers=["service:api"])
    assert not result.ok and result.stopped_at == "calm-otter" and result.untouched == ["misty-owl"]
    first, second = result.results
    assert (first.node, first.ok) == ("brave-panda", True)
    # api is drained for a restart (a domain, on every node): its restart waits for the app's own
    # health before the server comes back, so the broken release fails there and rolls back.
    assert second.exit_status == 30 and "api did not answer /healthz" in second.reason
    assert _sha(lc, "brave-panda", compose) != before["brave-panda"]
    assert _sha(lc, "calm-otter", compose) == before["calm-otter"]       # byte-identical to before
    assert _sha(lc, "misty-owl", compose) == before["misty-owl"]         # never touched
    assert lc.sh("calm-otter", "busybox wget -qO- http://127.0.0.1:9002/healthz").stdout == b"ok\n"
    degraded = json.loads(lc.cat("calm-otter", "/opt/dynia/state/degraded"))
    assert degraded["layer"] == "service:api" and "api did not answer /healthz" in degraded["reason"]
    assert lc.sh("misty-owl", "test -e /opt/dynia/state/degraded", check=False).returncode != 0
    assert lc.get("api.lab.example") == (200, b"api\n")


def test_config_rejected_by_haproxy_is_restored_and_nothing_reloads(shared_applied_lab):
    lc = shared_applied_lab
    node = "brave-panda"
    cfg_sha = _sha(lc, node, "/etc/haproxy/haproxy.cfg")
    workers = _haproxy_workers(lc, node)
    caddy_pid = lc.cat(node, "/run/caddy.pid")
    bundle = lc.bundles()[node]["infra"]
    cfg = base64.b64decode(next(f["content"] for f in bundle.files if f["target"] == "/etc/haproxy/haproxy.cfg"))
    _with_file(bundle, "/etc/haproxy/haproxy.cfg", cfg.replace(b"balance roundrobin", b"balance sometimes"))
    result = lc.roll({node: {"infra": bundle}}, layers=["infra"], order=[node])
    r = result.results[0]
    assert r.exit_status == 20 and r.reason.startswith("validation failed: haproxy")
    assert _sha(lc, node, "/etc/haproxy/haproxy.cfg") == cfg_sha
    assert _haproxy_workers(lc, node) == workers  # no reload happened
    assert lc.cat(node, "/run/caddy.pid") == caddy_pid
    assert lc.sh(node, "test -e /opt/dynia/state/degraded", check=False).returncode != 0


def test_applying_the_same_bundles_twice_reloads_nothing_the_second_time(shared_applied_lab):
    lc = shared_applied_lab
    workers = {n: _haproxy_workers(lc, n) for n in ORDER}
    again = lc.roll()
    assert again.ok
    assert {r.report["status"] for r in again.results} == {"unchanged"}
    assert all(r.report["reloaded"] == [] for r in again.results)
    assert {n: _haproxy_workers(lc, n) for n in ORDER} == workers


def test_lockdown_blocks_manual_edits_but_not_dynia(lab_cluster):
    lc = lab_cluster
    lc.edit_spec("master: misty-owl", "master: misty-owl\nlockdown: true")
    assert lc.roll().ok
    edit = lc.sh("brave-panda", "echo '# hand edit' >> /etc/haproxy/haproxy.cfg", check=False)
    assert edit.returncode != 0 and b"Operation not permitted" in edit.stderr
    assert b"i" in lc.sh("brave-panda", "lsattr /etc/haproxy/haproxy.cfg").stdout.split()[0]
    lc.edit_spec("domain: api.lab.example", "domain: v2.lab.example")
    result = lc.roll(layers=["service:api"])
    assert result.ok, [r.reason for r in result.results]
    assert b"http://v2.lab.example:8880" in lc.cat("brave-panda", "/etc/caddy/routes/api.caddy")
    assert b"i" in lc.sh("brave-panda", "lsattr /etc/caddy/routes/api.caddy").stdout.split()[0]
    assert lc.get("v2.lab.example") == (200, b"api\n")
