"""The app's own health check asks as the service's domain: an app that allows only its own
hosts (Django's ALLOWED_HOSTS, Rails' host authorization) answers 400 to 127.0.0.1, so a gate
that asked by address would fail every deploy of such an app. Both places that ask the app
directly are run for real against an HTTP server that behaves so: the apply script's health
gate (the service bundle's "app" check) and the drained restart's readiness wait (curl)."""
from __future__ import annotations

import dataclasses
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dynia.render.bundle import service_health
from dynia.nodes.commands import NodeCommands
from dynia.providers.digitalocean import PROFILE
from dynia.render.rendering import drain_for
from dynia.state.store import Project
from dynia.spec.load import load_cluster

from .test_apply_script_local import _file, apply, make_bundle

DOMAIN = "api.example.com"


class OwnHostsOnly(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200 if self.headers.get("Host") == DOMAIN else 400)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def app_port():
    server = ThreadingHTTPServer(("127.0.0.1", 0), OwnHostsOnly)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def node_root(tmp_path):
    (tmp_path / "healthy").touch()   # make_bundle's own gate check
    return tmp_path


@pytest.fixture
def shop(project):
    spec = load_cluster(Project(project), "shop").spec
    assert spec.services["api"].domains[0] == DOMAIN
    return spec


def test_the_apply_scripts_app_check_asks_as_the_services_domain_and_passes(node_root, shop, app_port):
    app = {**service_health(shop, "api", "10.0.0.1")[0], "port": app_port}
    assert app["name"] == "api app" and app["hostHeader"] == DOMAIN
    bundle = dataclasses.replace(make_bundle([_file("etc/web.conf", b"v1")]), health=[app])
    code, report, err = apply(node_root, bundle)
    assert code == 0, (report, err)
    # The same check asked by address is what an own-hosts-only app refuses.
    bare = {k: v for k, v in app.items() if k != "hostHeader"}
    code, report, _ = apply(node_root, dataclasses.replace(make_bundle([_file("etc/web.conf", b"v2")], retries=1),
                                                      health=[bare]))
    assert code == 30 and "HTTP 400" in report["reason"]


def test_a_service_without_a_domain_is_asked_by_address(shop):
    svc = shop.services["api"].model_copy(update={"domain": None})
    spec = shop.model_copy(update={"services": {**shop.services, "api": svc}})
    assert "hostHeader" not in service_health(spec, "api", "10.0.0.1")[0]


def test_the_drained_restart_waits_for_the_app_asked_as_its_domain(shop, app_port):
    drain = dataclasses.replace(drain_for(shop, "api"), port=app_port)
    assert drain.host == DOMAIN
    answers = NodeCommands(PROFILE).app_answers(drain)
    assert subprocess.run(["sh", "-c", answers]).returncode == 0
    bare = NodeCommands(PROFILE).app_answers(dataclasses.replace(drain, host=None))
    assert subprocess.run(["sh", "-c", bare]).returncode != 0
