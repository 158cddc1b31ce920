"""The real binaries behind issue 22's refusals: what the spec refuses would break them, what it
accepts they take. A service called acme renders a second be_acme that `haproxy -c` rejects;
HAProxy answers 500 once the headers dynia sets outgrow its rewrite space, and serves every
answer at the spec's bound; accepted admin ranges load in nft."""
from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from dynia.render import edge
from dynia.spec import headers
from dynia.paths import PATHS
from dynia.render.rendered import render_cluster as render
from dynia.state.store import Project
from dynia.spec.load import load_cluster

from ..unit.test_spec_values import _budget_headers
from .sandbox import _in_mounts, lay_out, throwaway_certificate

BODY = 100_000   # an answer larger than HAProxy's 16 kB buffer: the rewrite reserve is all that is left
TRIES = 40


@pytest.fixture(scope="module", autouse=True)
def _needs_root_and_binaries(root_namespaces):
    missing = [b for b in ("haproxy", "caddy", "keepalived", "nft", "unshare", "ip", "openssl") if not shutil.which(b)]
    if missing:
        pytest.fail(f"validator tests need {missing}: run .ci/test (README)")


def test_a_service_named_acme_renders_a_config_real_haproxy_rejects(project, tmp_path, monkeypatch):
    import dynia.spec.model

    path = project / "clusters/shop.yaml"
    path.write_text(path.read_text().replace("  mode: origin\n", "  mode: letsencrypt\n")
                    .replace("  admin:\n", "  acme:\n"))
    with pytest.raises(Exception, match="service name acme is dynia's own"):
        load_cluster(Project(project), "shop")
    monkeypatch.setattr(dynia.spec.model, "reserved_service_names", lambda: {})   # as before the rule
    c = load_cluster(Project(project), "shop")
    lay_out(render(c), "misty-owl", tmp_path, throwaway_certificate(tmp_path))
    env = tmp_path / PATHS.haproxy_env.lstrip("/")
    check = _in_mounts(tmp_path, ["/etc/haproxy"], f"set -a && . {env} && set +a && haproxy -c -f {PATHS.haproxy_cfg}")
    assert check.returncode != 0
    assert "be_acme" in check.stdout + check.stderr and "same name" in check.stdout + check.stderr, check


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _App(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Length", str(BODY))
        self.end_headers()
        try:
            self.wfile.write(b"x" * BODY)
        except OSError:   # HAProxy gave up on the answer (its 500): the app's write is cut
            pass

    def log_message(self, *args):
        pass


def _statuses(tmp_path: Path, overrides: dict[str, str | None]) -> list[int]:
    """TRIES answers of BODY bytes through a real HAProxy whose backend carries the
    http-after-response rules dynia renders for `overrides` (edge.header_rules)."""
    import http.client

    app_port, front = _free_port(), _free_port()
    app = http.server.ThreadingHTTPServer(("127.0.0.1", app_port), _App)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    rules = "\n".join(f"    http-after-response {r.line()}" for r in edge.header_rules(overrides))
    cfg = tmp_path / "h.cfg"
    cfg.write_text(f"global\n    master-worker\ndefaults\n    mode http\n    timeout connect 5s\n"
                   f"    timeout client 30s\n    timeout server 30s\nfrontend f\n    bind 127.0.0.1:{front}\n"
                   f"    default_backend b\nbackend b\n{rules}\n    server s 127.0.0.1:{app_port}\n")
    assert subprocess.run(["haproxy", "-c", "-q", "-f", str(cfg)], capture_output=True).returncode == 0
    proxy = subprocess.Popen(["haproxy", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", front), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        out = []
        for _ in range(TRIES):
            conn = http.client.HTTPConnection("127.0.0.1", front, timeout=10)
            conn.request("GET", "/")
            answer = conn.getresponse()
            answer.read()
            out.append(answer.status)
            conn.close()
        return out
    finally:
        proxy.terminate()
        proxy.wait()
        app.shutdown()


def test_headers_at_the_spec_bound_serve_every_large_answer_and_beyond_it_haproxy_answers_500(tmp_path):
    from dynia.spec.model import validate_spec

    at = _budget_headers(headers.REWRITE_BUDGET)
    spec = {"version": 1, "name": "shop", "nodes": ["misty-owl"], "domain": "example.com",
            "provider": {"kind": "digitalocean", "region": "sgp1", "size": "s-1vcpu-1gb"},
            "services": {"app": {"compose": "services/a.yml", "port": 9000, "headers": at}}}
    assert validate_spec(spec, "t.yaml")    # the largest set the spec accepts
    assert _statuses(tmp_path, at) == [200] * TRIES
    beyond = _budget_headers(2 * headers.REWRITE_BUDGET)
    assert 500 in _statuses(tmp_path, beyond)


def test_accepted_admin_ranges_load_in_nft(project, tmp_path):
    path = project / "clusters/shop.yaml"
    path.write_text(path.read_text() + 'firewall:\n  admin_ranges: ["2001:DB8::/32", 10.0.0.0/8, 198.51.100.7/32, '
                                       '"::/0"]\n')
    rendering = render(load_cluster(Project(project), "shop"))
    rules = tmp_path / "firewall.nft"
    rules.write_bytes(next(f.content for f in rendering.files["misty-owl"] if f.target == PATHS.firewall_rules))
    assert "2001:db8::/32" in rules.read_text()
    proc = subprocess.run(["unshare", "-n", "sh", "-ec", f"nft -c -f {rules}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
