"""The lab's stand-in for DigitalOcean's reserved-IP and metadata API (dynia.providers.lab_api),
with the notify.sh rendered for a lab node: its assignment run under `sh` with the real curl
against the stand-in on loopback (the node is 127.0.0.1 there). A refused node token is recorded
on the node and leaves the stand-in's holder alone; the lab's token assigns it."""
from __future__ import annotations

import json
import os
import re
import subprocess
import threading

import pytest

from dynia.paths import PATHS
from dynia.providers import lab_api, local
from dynia.render.rendered import render_cluster
from dynia.spec.load import load_cluster
from dynia.state.store import Project

NODE = "misty-owl"


@pytest.fixture
def stand_in(project, tmp_path, monkeypatch):
    cluster = load_cluster(Project(project), "lab")
    vip = "10.213.0.100"
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "lab.json").write_text(json.dumps({"vip": vip, "nodes": [{"id": NODE, "ip": "127.0.0.1"},
                                                                     {"id": "brave-panda", "ip": "127.0.0.2"}]}))
    (lab / lab_api.TOKEN_FILE).write_text(local.LAB_NODE_TOKEN + "\n")
    api = lab_api.LabApi(lab, "127.0.0.1", 0)
    threading.Thread(target=api.server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{api.server.server_port}"
    monkeypatch.setattr(local, "lab_api_url", lambda gateway: url)
    notify = next(f for f in render_cluster(cluster).files[NODE] if f.target == PATHS.notify).content.decode()
    functions = "".join(re.search(rf"^{name}\(\) \{{.*?^\}}\n", notify, re.S | re.M).group(0)
                        for name in ("record_assignment", "assign_reserved_ip"))
    state = tmp_path / "state"
    state.mkdir()
    (state / "vrrp").write_text("MASTER 2026-12-07T22:00:00Z\n")

    def assign(token: str) -> tuple[int, dict, dict | None]:
        (tmp_path / "token").write_text(token + "\n")
        script = f"set -u\ndir={state}\n" + functions.replace(PATHS.provider_token, str(tmp_path / "token")) \
            + "assign_reserved_ip\n"
        proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60, env=os.environ)
        record = json.loads((state / "reserved-ip.json").read_text())
        held = local.lab_api_get(url, f"/v2/reserved_ips/{vip}")["reserved_ip"]["droplet"]
        return proc.returncode, record, held

    yield url, assign, notify
    api.server.shutdown()
    api.server.server_close()


def test_the_rendered_lab_notify_asks_the_stand_in_not_digitalocean(stand_in):
    url, _, notify = stand_in
    assert f'"{url}/v2/reserved_ips/10.213.0.100/actions"' in notify and f"curl -fsS --max-time 5 {url}/metadata/v1/id" \
        in notify
    assert "api.digitalocean.com" not in notify and "169.254.169.254" not in notify


def test_a_refused_node_token_is_recorded_on_the_node_and_assigns_nothing(stand_in):
    _, assign, _ = stand_in
    code, record, held = assign("a-revoked-token")
    assert code == 1
    assert (record["outcome"], record["status"], record["droplet"]) == ("refused", "401", str(lab_api.FIRST_DROPLET_ID))
    assert held is None


def test_the_labs_node_token_assigns_it_to_the_asking_node(stand_in):
    _, assign, _ = stand_in
    code, record, held = assign(local.LAB_NODE_TOKEN)
    assert code == 0 and (record["outcome"], record["status"]) == ("assigned", "201")
    assert held["id"] == lab_api.FIRST_DROPLET_ID and held["name"] == NODE
    assert held["networks"]["v4"] == [{"ip_address": "127.0.0.1", "type": "private"}]
