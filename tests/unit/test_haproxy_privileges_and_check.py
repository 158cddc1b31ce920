"""HAProxy's workers drop root the way Debian's own haproxy.cfg does, and keepalived's track
script asks HAProxy's listener, not only whether its master's pid is alive (executed here)."""
from __future__ import annotations

import dataclasses
import http.server
import os
import re
import subprocess
import threading
from pathlib import Path

import pytest

from dynia.paths import PATHS, PORTS
from dynia.render.rendering import _environment, _render, default_templates_dir
from dynia.render.rendered import render_cluster as render
from dynia.state.store import Project
from dynia.spec.load import load_cluster

from ..needs import need


def _global(cfg: str) -> dict[str, str]:
    """The `global` section's user, group and chroot lines ({keyword: value})."""
    section = re.search(r"^global\n(.*?)(?:\n\S|\Z)", cfg, re.M | re.S).group(1)
    return {m.group(1): m.group(2) for m in re.finditer(r"^\s+(user|group|chroot)\s+(\S+)\s*$", section, re.M)}


def _debian_default() -> str:
    """The haproxy package's own /etc/haproxy/haproxy.cfg, as dpkg installed it."""
    path = Path("/etc/haproxy/haproxy.cfg")
    md5 = subprocess.run(["dpkg-query", "-W", "-f", "${Conffiles}", "haproxy"], capture_output=True,
                         text=True).stdout
    recorded = dict(line.split()[:2] for line in md5.splitlines() if line.strip())
    import hashlib

    # CI installs haproxy (.ci/debian-packages) and nothing edits its file: there, a failure.
    need(path.exists() and recorded.get(str(path)) == hashlib.md5(path.read_bytes()).hexdigest(),
         "this machine's /etc/haproxy/haproxy.cfg is not the haproxy package's own")
    return path.read_text()


def test_haproxy_workers_run_as_debians_user_group_and_chroot(project):
    cluster = load_cluster(Project(project), "shop")
    cfg = next(f for f in render(cluster).files["misty-owl"] if f.target == PATHS.haproxy_cfg).content.decode()
    ours = _global(cfg)
    assert ours == {"user": "haproxy", "group": "haproxy", "chroot": PATHS.haproxy_chroot}
    assert ours == _global(_debian_default())


class _Redirect(http.server.BaseHTTPRequestHandler):
    code = 301

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(self.code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def check(tmp_path):
    """The rendered track script, with its pid file and HTTP port pointed at this test's own."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    port = server.server_address[1]
    pid_file = tmp_path / "haproxy.pid"
    script = tmp_path / "check_haproxy.sh"
    script.write_bytes(_render(_environment(default_templates_dir()), "keepalived/check_haproxy.sh.j2",
                               paths=dataclasses.replace(PATHS, haproxy_pid=str(pid_file)),
                               ports=dataclasses.replace(PORTS, http=port)))

    def run() -> int:
        return subprocess.run(["sh", str(script)], capture_output=True, timeout=10).returncode

    yield run, server, pid_file
    server.server_close()


def _serving(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def test_the_track_script_passes_only_when_the_master_lives_and_the_listener_answers(check):
    run, server, pid_file = check
    pid_file.write_text(f"{os.getpid()}\n")
    # The master's pid is alive, but nothing accepts on the port (the socket is bound, never
    # served: a hung worker): the node must give the VIP up.
    assert run() != 0
    _serving(server)
    try:
        assert run() == 0
        pid_file.write_text("999999999\n")  # the listener answers, the master is gone
        assert run() != 0
        pid_file.unlink()
        assert run() != 0
        pid_file.write_text(f"{os.getpid()}\n")
        _Redirect.code = 503                 # something answers, but not HAProxy's redirect
        assert run() != 0
    finally:
        _Redirect.code = 301
        server.shutdown()
