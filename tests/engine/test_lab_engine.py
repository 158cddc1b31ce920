"""The real phase programs (provision → infra → apps, local provider) run on LabEngineDouble:
commands really execute, lab nodes really come up, pushes really land over SSH."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from dynia.nodes.lab import Lab
from dynia.nodes.push_errors import push_error
from dynia.stacks import apps, infra, provision

from ..lab.conftest import LabCluster, eventually, record
from ..lab.own_subnet import examples_copy
from .lab_double import LabEngineDouble, lab_inputs, run_phase

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine_project(tmp_path, lab_tools):
    root = tmp_path / "proj"
    lab_dir = tmp_path / "lab"
    with examples_copy(root, lab_dir):
        yield root, lab_dir
        if (lab_dir / "lab.json").exists():
            Lab.load(lab_dir).down()


def _provision(root, lab_dir, double):
    outputs, error = run_phase(provision, lab_inputs(root, lab_dir), "provision", double)
    assert error is None, error
    double.references["lab-provision"] = outputs
    return outputs


def _lab_cluster(root, lab_dir) -> LabCluster:
    from dynia.state.store import Project
    return LabCluster(Project(root), Lab.load(lab_dir))


def test_clean_run_serves_every_service_through_the_vip(engine_project):
    root, lab_dir = engine_project
    double = LabEngineDouble()
    started = time.monotonic()
    outputs = _provision(root, lab_dir, double)
    assert sorted(outputs["nodes"]) == ["brave-panda", "calm-otter", "misty-owl"]
    assert "BEGIN CERTIFICATE" in outputs["originPem"] and outputs["reservedIp"] == _lab_cluster(root, lab_dir).lab.vip
    for phase, module in (("infra", infra), ("apps", apps)):
        _, error = run_phase(module, lab_inputs(root, lab_dir), phase, double)
        assert error is None, error
    record("engine_double_provision_to_apps_seconds", round(time.monotonic() - started, 1))
    pushes = [name for typ, name in double.executed if typ == "command:remote:Command"]
    assert pushes[:3] == ["brave-panda-infra-push", "calm-otter-infra-push", "misty-owl-infra-push"]
    assert len(pushes) == 3 + 3 * 3
    # A booting droplet's sshd answers minutes after `active`: the pushes keep dialling that long.
    for name in pushes:
        assert double.connections[name]["dialErrorLimit"] * double.connections[name]["perDialTimeout"] >= 300
    lc = _lab_cluster(root, lab_dir)
    assert eventually(lambda: lc.vip_holder() == ["misty-owl"])
    for host, body in (("lab.example", b"web\n"), ("api.lab.example", b"api\n"), ("admin.lab.example", b"admin\n")):
        assert lc.get(host) == (200, body)
    # The nodes started like fresh droplets (package Caddy on :80, HAProxy without dynia's
    # environment); HAProxy now holds the stats credentials of /etc/default/haproxy.
    for node in ("misty-owl", "brave-panda", "calm-otter"):
        env = dict(line.split("=", 1) for line in lc.cat(node, "/etc/default/haproxy").decode().split())
        assert _stats_status(lc.lab.node(node).ip) == 401
        assert _stats_status(lc.lab.node(node).ip, env["DYNIA_STATS_USER"], env["DYNIA_STATS_PASSWORD"]) == 200


def _stats_status(ip: str, user: str | None = None, password: str | None = None) -> int:
    import base64
    import http.client

    conn = http.client.HTTPConnection(ip, 8404, timeout=5)
    try:
        auth = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()} if user else {}
        conn.request("GET", "/", headers=auth)
        return conn.getresponse().status
    finally:
        conn.close()


def test_unreachable_node_in_first_infra_sync_stops_there_and_resume_completes(engine_project):
    root, lab_dir = engine_project
    double = LabEngineDouble()
    _provision(root, lab_dir, double)
    lc = _lab_cluster(root, lab_dir)
    veth = lc.lab.node("calm-otter").veth
    import subprocess  # the second node in rolling order drops off the network
    subprocess.run(["ip", "link", "set", veth, "down"], check=True)
    _, error = run_phase(infra, lab_inputs(root, lab_dir), "infra", double)
    assert error is not None
    failure = double.failures[0]
    typed = push_error(failure.resource, failure.output, failure.exit_status, "lab")
    assert typed.kind == "network" and "node calm-otter is unreachable" in typed.message
    assert typed.resume == "dynia up --phase infra --cluster lab"
    assert lc.sh("brave-panda", "test -s /opt/dynia/state/applied.json", check=False).returncode == 0
    assert lc.sh("misty-owl", "test -e /opt/dynia/state/applied.json", check=False).returncode != 0
    assert ("command:remote:Command", "misty-owl-infra-push") not in double.executed
    subprocess.run(["ip", "link", "set", veth, "up"], check=True)
    again = LabEngineDouble(double.references)
    _, error = run_phase(infra, lab_inputs(root, lab_dir), "infra", again)
    assert error is None, error
    for node in ("brave-panda", "calm-otter", "misty-owl"):
        assert lc.sh(node, "test -s /opt/dynia/state/applied.json", check=False).returncode == 0


def test_failing_service_gate_stops_the_apps_roll_at_that_node(engine_project):
    root, lab_dir = engine_project
    double = LabEngineDouble()
    _provision(root, lab_dir, double)
    assert run_phase(infra, lab_inputs(root, lab_dir), "infra", double)[1] is None
    lc = _lab_cluster(root, lab_dir)
    # Something else already holds the api port on calm-otter: the api cannot start there.
    lc.sh("calm-otter", "mkdir -p /opt/squat && busybox httpd -p 127.0.0.1:9002 -h /opt/squat")
    assert eventually(lambda: lc.sh("calm-otter", "busybox wget -q -O /dev/null http://127.0.0.1:9002/",
                                    check=False).returncode != 0)  # it answers (404), it does not serve api
    _, error = run_phase(apps, lab_inputs(root, lab_dir), "apps", double)
    assert error is not None
    failure = double.failures[0]
    assert failure.resource == "calm-otter-service-api-push" and failure.exit_status == 30
    typed = push_error(failure.resource, failure.output, failure.exit_status, "lab")
    assert typed.kind == "health" and typed.message.startswith("node calm-otter, service:api: the health gate failed")
    pushed = [n for t, n in double.executed if t == "command:remote:Command" and "service" in n]
    assert "brave-panda-service-api-push" in pushed
    assert not any(n.startswith("misty-owl-service-api") for n in pushed)
    assert not any("service-web" in n for n in pushed)  # services roll one after another: web never started
    assert b"health gate failed" in lc.cat("calm-otter", "/opt/dynia/state/degraded")


def test_node_add_brings_up_the_node_and_every_node_learns_it(engine_project):
    from dynia.spec.editing import add_node
    from dynia.state.store import Project

    root, lab_dir = engine_project
    double = LabEngineDouble()
    _provision(root, lab_dir, double)
    for phase, module in (("infra", infra), ("apps", apps)):
        assert run_phase(module, lab_inputs(root, lab_dir), phase, double)[1] is None
    new = add_node(Project(root), "lab")
    again = LabEngineDouble()
    outputs = _provision(root, lab_dir, again)
    assert new in outputs["nodes"]
    for phase, module in (("infra", infra), ("apps", apps)):
        _, error = run_phase(module, lab_inputs(root, lab_dir), phase, again)
        assert error is None, error
    lc = _lab_cluster(root, lab_dir)
    new_ip = lc.lab.node(new).ip
    for node in ("misty-owl", "brave-panda", "calm-otter", new):
        assert f"server {new} {new_ip}:8880".encode() in lc.cat(node, "/etc/haproxy/haproxy.cfg")
    assert new_ip.encode() in lc.cat("misty-owl", "/etc/keepalived/keepalived.conf")
    assert lc.sh(new, "busybox wget -qO- http://127.0.0.1:9002/healthz").stdout == b"ok\n"
    assert eventually(lambda: lc.vip_holder() == ["misty-owl"])
    assert lc.get("api.lab.example") == (200, b"api\n")
