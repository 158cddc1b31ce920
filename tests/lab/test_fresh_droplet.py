"""The first push to a node that starts like a fresh droplet (dynia.nodes.lab): cloud-init
still installing, then the packages' HAProxy and Caddy running on their default configs (Caddy's
`:80 { file_server }` holding :80). The first apply must win, and what it promises must hold:
stats credentials read by HAProxy, the scheme and client address the apps see, retries only for
requests that are safe to repeat."""
from __future__ import annotations

import base64
import hashlib
import http.client
import time

from dynia.state import secrets
from dynia.state.store import write_json

from .conftest import INSTALLING_WINDOW, eventually, record


NODES = ["misty-owl", "brave-panda", "calm-otter"]


def _listeners(lc, node: str) -> dict[int, str]:
    """{port: process name} of the node's TCP listeners."""
    out = lc.sh(node, "ss -ltnpH").stdout.decode()
    ports = {}
    for line in out.splitlines():
        fields = line.split()
        port = int(fields[3].rsplit(":", 1)[1])
        ports[port] = fields[5].split('"')[1] if '"' in fields[5] else fields[5]
    return ports


def _stats_status(lc, node: str, user: str | None = None, password: str | None = None) -> int:
    conn = http.client.HTTPConnection(lc.lab.node(node).ip, 8404, timeout=5)
    try:
        headers = {}
        if user is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        conn.request("GET", "/", headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_lab_node_starts_like_a_fresh_droplet_and_the_first_push_waits_for_cloud_init_then_wins(installing_lab):
    lc = installing_lab
    started = time.monotonic()
    # Still installing: the stand-in says so and the packages' commands are not there yet.
    for node in NODES:
        assert lc.sh(node, "cloud-init status").stdout == b"status: running\n", node
        assert lc.sh(node, "haproxy -v", check=False).returncode == 127, node
    result = lc.roll(layers=["infra"])
    assert result.ok, [(r.node, r.layer, r.reason) for r in result.results if not r.ok]
    first = result.results[0]
    record("fresh_droplet_first_push_cloud_init_wait_seconds", first.report["cloudInitWaitSeconds"])
    assert first.report["cloudInitWaitSeconds"] > 0.5  # it met cloud-init running, and waited
    assert time.monotonic() - started < INSTALLING_WINDOW + 30
    rendering = lc.render()
    for node in NODES:
        assert lc.sh(node, "cloud-init status").stdout == b"status: done\n"
        # The package Caddyfile is gone, dynia's is served; HAProxy holds :80 and :443, Caddy
        # only its private port.
        want = next(f.content for f in rendering.files[node] if f.target == "/etc/caddy/Caddyfile")
        assert hashlib.sha256(lc.cat(node, "/etc/caddy/Caddyfile")).digest() == hashlib.sha256(want).digest()
        listeners = _listeners(lc, node)
        assert listeners[80] == "haproxy" and listeners[443] == "haproxy", listeners
        assert listeners[8880] == "caddy", listeners
    # HAProxy answers :80 (its redirect), not the package's file server.
    conn = http.client.HTTPConnection(lc.lab.node("misty-owl").ip, 80, timeout=5)
    conn.request("GET", "/", headers={"Host": "lab.example"})
    resp = conn.getresponse()
    assert resp.status == 301 and resp.getheader("Location") == "https://lab.example/"
    conn.close()


def test_stats_credentials_from_the_environment_file_work_and_a_change_takes_effect_on_the_next_push(lab_cluster):
    lc = lab_cluster
    result = lc.roll(layers=["infra"])
    assert result.ok, [(r.node, r.layer, r.reason) for r in result.results if not r.ok]
    creds = secrets.load(lc.project, "lab")
    user, password = creds["stats_user"], creds["stats_password"]
    for node in NODES:
        assert _stats_status(lc, node) == 401
        assert _stats_status(lc, node, user, "wrong-password-0000") == 401
        assert _stats_status(lc, node, user, password) == 200
    # New credentials: the environment file changes, and HAProxy (which a reload would leave on
    # its old environment) must answer to the new ones after the next push.
    new = {"stats_user": "stats-rotated", "stats_password": "rotated-password-0123456789"}
    write_json(lc.project.secrets_path("lab"), new, mode=0o600)
    again = lc.roll(layers=["infra"])
    assert again.ok, [(r.node, r.layer, r.reason) for r in again.results if not r.ok]
    assert all(r.report["changed"] == ["/etc/default/haproxy"] for r in again.results)
    for node in NODES:
        assert _stats_status(lc, node, new["stats_user"], new["stats_password"]) == 200, node
        assert _stats_status(lc, node, user, password) == 401, node
    # Unchanged credentials on a forced re-apply: a seamless reload, not a restart.
    master = lc.cat("misty-owl", "/run/haproxy.pid")
    forced = lc.roll(lc.bundles(force=True), layers=["infra"])
    assert forced.ok
    assert lc.cat("misty-owl", "/run/haproxy.pid") == master


ECHO_SERVICE = """  echo:
    compose: services/lab-echo.yml
    domain: echo.lab.example
    port: 9004
    health_path: /healthz
"""


def _with_echo(lc):
    path = lc.project.spec_path("lab")
    text = path.read_text()
    assert text.endswith("placement: active-only\n")  # services: is the last key of lab.yaml
    path.write_text(text + ECHO_SERVICE)


def _request(lc, method: str, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection(lc.lab.vip, 443, timeout=10, context=lc.client_tls)
    try:
        conn.request(method, path, body=b"x=1" if method == "POST" else None,
                     headers={"Host": "echo.lab.example", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_app_sees_https_and_the_client_address_and_only_safe_requests_are_retried(lab_cluster):
    lc = lab_cluster
    _with_echo(lc)
    result = lc.roll()
    assert result.ok, [(r.node, r.layer, r.reason) for r in result.results if not r.ok]
    assert eventually(lambda: lc.vip_holder() == ["misty-owl"])
    # The test machine is the client: its address on the lab bridge.
    status, body = _request(lc, "GET", "/cgi-bin/headers")
    assert status == 200, body
    seen = dict(line.split("=", 1) for line in body.decode().splitlines())
    assert seen["proto"] == "https"
    assert seen["for"].split(",")[0].strip() == lc.lab.gateway, seen
    assert seen["host"] == "echo.lab.example"

    def calls() -> list[str]:
        out = []
        for node in NODES:
            out += lc.sh(node, "busybox wget -qO- http://127.0.0.1:9004/cgi-bin/calls").stdout.decode().split()
        return out

    assert calls() == []
    # A POST that reached an app and failed is never sent again (it may have done its work).
    assert _request(lc, "POST", "/cgi-bin/fail")[0] == 500
    assert calls() == ["POST"]
    # A GET is safe to repeat: HAProxy retries it on another node.
    assert _request(lc, "GET", "/cgi-bin/fail")[0] == 500
    got = calls()
    record("failing_get_tries", got.count("GET"))
    assert got.count("POST") == 1 and got.count("GET") > 1, got
