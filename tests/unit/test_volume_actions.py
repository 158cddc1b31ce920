"""The node's volume mover on a droplet (templates/node/volume.py, issue 23.2): a data service's
Block Storage volume moves through DigitalOcean's volume actions API with the node token —
found by name in the cluster's region, attached to this droplet (forced off the old holder after
the grace), pending actions retried, every outcome recorded like the reserved-IP assignment.
The API and the metadata service are a stand-in on 127.0.0.1 answering the documented shapes
(tests/fixtures/digitalocean); the configuration is the one render writes for a droplet."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from dynia import volumes
from dynia.paths import PATHS
from dynia.providers.digitalocean import PROFILE
from dynia.spec.load import load_cluster
from dynia.state.store import Project

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "digitalocean"
SCRIPT = REPO / "templates" / "node" / "volume.py"
TOKEN = "dop_v1_node_token_for_volumes"
HERE, OLD = 424242001, 424242002
VOLUME = "dynia-shop-admin"


class StandIn:
    """DigitalOcean's volumes, volume actions and metadata endpoints: one volume, whose
    droplet_ids the attach and detach actions change once polled (as the API completes them).
    `answers`: status codes the next POSTs answer instead (422 pending, 429 …); `refuse`: a
    status every request answers (a token without the scopes)."""

    def __init__(self, holder: int | None, device_dir: Path):
        self.holder, self.device_dir = holder, device_dir
        self.requests: list[tuple[str, str, str | None, dict | None]] = []
        self.answers: list[int] = []
        self.refuse: int | None = None
        self.pending: dict | None = None
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                stand_in.requests.append(("GET", self.path, self.headers.get("Authorization"), None))
                self._answer(*stand_in.get(self.path))

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                stand_in.requests.append(("POST", self.path, self.headers.get("Authorization"), body))
                self._answer(*stand_in.post(self.path, body))

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def volume(self) -> dict:
        data = json.loads((FIXTURES / "volumes_shop_admin.json").read_text())
        data["volumes"][0]["droplet_ids"] = [self.holder] if self.holder else []
        return data

    def get(self, path: str) -> tuple[int, bytes]:
        url = urlsplit(path)
        if url.path == f"/metadata/v1/{HERE}/id":
            return 200, str(HERE).encode()
        if self.refuse:
            return self.refuse, (FIXTURES / "error_unauthorized.json").read_bytes()
        if url.path == "/v2/volumes":
            query = parse_qs(url.query)
            if query.get("name") == [VOLUME] and query.get("region") == ["sgp1"]:
                return 200, json.dumps(self.volume()).encode()
            return 200, (FIXTURES / "volumes_none.json").read_bytes()
        if self.pending and url.path.endswith(f"/actions/{self.pending['action']['id']}"):
            done = self.pending
            done["action"]["status"] = "completed"
            self.holder = self.pending_holder
            device = self.device_dir / f"scsi-0DO_Volume_{VOLUME}"
            device.touch() if self.holder == HERE else device.unlink(missing_ok=True)
            self.pending = None
            return 200, json.dumps(done).encode()
        return 404, (FIXTURES / "error_not_found.json").read_bytes()

    def post(self, path: str, body: dict) -> tuple[int, bytes]:
        if self.refuse:
            return self.refuse, (FIXTURES / "error_unauthorized.json").read_bytes()
        if self.answers:
            return self.answers.pop(0), (FIXTURES / "error_unprocessable_pending.json").read_bytes()
        volume_id = self.volume()["volumes"][0]["id"]
        assert path == f"/v2/volumes/{volume_id}/actions", path
        if body["type"] == "attach":
            if self.holder:   # one attachment at a time: the platform's fence
                return 422, (FIXTURES / "error_unprocessable_pending.json").read_bytes()
            self.pending, self.pending_holder = json.loads((FIXTURES / "volume_action_attach.json").read_text()), \
                body["droplet_id"]
        else:
            assert body["droplet_id"] == self.holder
            self.pending, self.pending_holder = json.loads((FIXTURES / "volume_action_detach.json").read_text()), None
        return 202, json.dumps(self.pending).encode()

    def posts(self) -> list[dict]:
        return [body for method, _, _, body in self.requests if method == "POST"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def node(tmp_path, project):
    """A droplet's root (DYNIA_ROOT): the rendered volumes.json pointed at the stand-in, the node
    token (0600), VRRP state MASTER; yields (root, stand_in factory)."""
    spec = project / "clusters/shop.yaml"
    spec.write_text(spec.read_text() + "    data: {size_gb: 10, mount: /srv/admin}\n")
    config = json.loads(volumes.node_config(load_cluster(Project(project), "shop").spec, PROFILE,
                                            PATHS.provider_token))
    root = tmp_path / "node"
    devices = tmp_path / "dev-by-id"
    devices.mkdir()
    (root / "etc/dynia").mkdir(parents=True)
    (root / "opt/dynia/state").mkdir(parents=True)
    (root / "opt/dynia/state/vrrp").write_text("MASTER 2026-12-08T02:00:00Z\n")
    token = root / PATHS.provider_token.lstrip("/")
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    made: list[StandIn] = []

    def start(holder: int | None, tries: int = 3, grace: float = 0.3) -> StandIn:
        api = StandIn(holder, devices)
        made.append(api)
        (root / PATHS.volumes_config.lstrip("/")).write_text(json.dumps({
            **config, "api_url": api.url, "metadata_url": f"{api.url}/metadata/v1/{HERE}",
            "device_dir": str(devices), "tries": tries, "grace_seconds": grace}))
        return api

    yield root, start
    for api in made:
        api.close()


@pytest.fixture
def mover(node, monkeypatch):
    """The script as a module, its node root the fixture's (take's mount needs root: the tests
    drive the attach and record it as take does)."""
    root, _ = node
    monkeypatch.setenv("DYNIA_ROOT", str(root))
    spec = importlib.util.spec_from_file_location("dynia_volume_mover", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.DoApi.ACTION_SECONDS = 5.0
    return module


def run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DYNIA_ROOT": str(root)})


def record(root: Path) -> dict:
    return json.loads((root / "opt/dynia/state/volume-actions/admin.json").read_text())


def test_the_rendered_droplet_config_names_the_api_region_device_and_node_token(node):
    root, _ = node
    from dynia.render.rendered import render_cluster

    files = render_cluster(load_cluster(Project(root.parent / "proj"), "shop")).files["brave-panda"]
    config = json.loads(next(f for f in files if f.target == PATHS.volumes_config).content)
    assert config["api"] == "digitalocean" and config["region"] == "sgp1"
    assert config["api_url"] == "https://api.digitalocean.com" and config["token"] == PATHS.provider_token
    assert config["metadata_url"] == "http://169.254.169.254/metadata/v1" and config["device_dir"] == "/dev/disk/by-id"
    assert config["volumes"]["admin"] == {"name": VOLUME, "filesystem": "ext4", "mount": "/srv/admin"}
    assert TOKEN not in json.dumps(config)


def test_a_master_attaches_a_free_volume_through_its_actions_api_with_the_node_token(node, mover):
    root, start = node
    api = start(holder=None)
    config = mover.load()
    do = mover.api_for(config)
    device = mover.attach_here(do, config["volumes"]["admin"], config)
    assert device.endswith(f"/scsi-0DO_Volume_{VOLUME}") and os.path.exists(device)
    assert api.holder == HERE
    assert api.posts() == [{"type": "attach", "droplet_id": HERE, "region": "sgp1"}]
    paths = [(m, p) for m, p, _, _ in api.requests if not p.startswith("/metadata")]
    assert paths[0] == ("GET", f"/v2/volumes?name={VOLUME}&region=sgp1")
    assert paths[-1] == ("GET", "/v2/volumes/506f78a4-e098-11e5-ad9f-000f53306ae1/actions/72531856")
    assert {auth for m, p, auth, _ in api.requests if p.startswith("/v2/")} == {f"Bearer {TOKEN}"}
    mover.record_action("admin", "attach", do)
    assert record(root) | {"time": "t"} == {"time": "t", "action": "attach", "outcome": "attached",
                                          "status": "202", "droplet": str(HERE)}
    # Again: already attached here, nothing posted.
    assert mover.attach_here(do, config["volumes"]["admin"], config) == device and len(api.posts()) == 1


def test_a_volume_the_old_holder_keeps_is_detached_from_it_after_the_grace_then_attached_here(node, mover):
    root, start = node
    api = start(holder=OLD)
    config = mover.load()
    do = mover.api_for(config)
    mover.attach_here(do, config["volumes"]["admin"], config)
    assert api.posts() == [{"type": "detach", "droplet_id": OLD, "region": "sgp1"},
                           {"type": "attach", "droplet_id": HERE, "region": "sgp1"}]
    assert api.holder == HERE


def test_a_pending_action_and_the_rate_limit_are_retried_with_backoff(node, mover):
    root, start = node
    api = start(holder=None, tries=4)
    api.answers = [422, 429]
    config = mover.load()
    do = mover.api_for(config)
    mover.attach_here(do, config["volumes"]["admin"], config)
    assert [b["type"] for b in api.posts()] == ["attach", "attach", "attach"] and api.holder == HERE


def test_a_refused_token_fails_the_take_recorded_degraded_and_the_service_stays_stopped(node):
    root, start = node
    api = start(holder=None)
    api.refuse = 401
    done = run(root, "take", "admin")
    assert done.returncode == 1 and "answered 401" in done.stderr and "admin stays stopped" in done.stderr
    assert TOKEN not in done.stderr + done.stdout
    assert record(root) | {"time": "t"} == {"time": "t", "action": "attach", "outcome": "refused", "status": "401",
                                          "droplet": str(HERE)}
    degraded = json.loads((root / "opt/dynia/state/degraded").read_text())
    assert "401" in degraded["reason"] and degraded["layer"] == "service:admin"
    assert json.loads((root / "opt/dynia/state/alerts/volume-admin.json").read_text())["volume"] == VOLUME
    assert api.posts() == []


def test_a_volume_missing_in_the_region_is_no_retry_but_a_failed_take(node):
    root, start = node
    api = start(holder=None)
    config_path = root / PATHS.volumes_config.lstrip("/")
    config = json.loads(config_path.read_text())
    config["region"] = "fra1"
    config_path.write_text(json.dumps(config))
    done = run(root, "take", "admin")
    assert done.returncode == 1 and f"no volume {VOLUME} in fra1" in done.stderr
    assert record(root)["outcome"] == "no-volume" and api.posts() == []


def test_release_detaches_the_volume_from_this_droplet_and_never_from_another(node):
    root, start = node
    api = start(holder=HERE)
    assert run(root, "release", "admin").returncode == 0
    assert api.posts() == [{"type": "detach", "droplet_id": HERE, "region": "sgp1"}] and api.holder is None
    assert record(root)["outcome"] == "detached"
    # The new holder forced it away already: nothing of ours to let go, nothing posted.
    api = start(holder=OLD)
    assert run(root, "release", "admin").returncode == 0
    assert api.posts() == [] and api.holder == OLD and record(root)["outcome"] == "elsewhere"


def test_a_backup_never_takes_the_volume(node, mover):
    root, start = node
    api = start(holder=None)
    (root / "opt/dynia/state/vrrp").write_text("BACKUP 2026-12-08T02:00:00Z\n")
    mover.MASTER_WAIT_SECONDS = 0.3
    config = mover.load()
    with pytest.raises(mover.Failed, match="not MASTER"):
        mover.attach_here(mover.api_for(config), config["volumes"]["admin"], config)
    assert api.requests == []
