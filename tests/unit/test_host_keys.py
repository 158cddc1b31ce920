"""Pinned SSH host keys: kept from provision's outputs in the cache, written into cloud-init,
checked on every connection — a node presenting another key is a typed `network` error."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from dynia.errors import DyniaError
from dynia.nodes.push import Target, fingerprint, run, server_host_key
from dynia.nodes.push_errors import push_error


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)], check=True)
    return path


def public(path: Path) -> str:
    return " ".join(Path(str(path) + ".pub").read_text().split()[:2])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshd(tmp_path, monkeypatch):
    """A real sshd on 127.0.0.1 with its own ed25519 host key; the client's key is a clear file."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    binary = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(binary).exists():
        pytest.fail("the loopback test needs openssh-server (sshd)")
    d = tmp_path / "sshd"
    d.mkdir()
    host = keygen(d / "host_ed25519")
    client = keygen(tmp_path / "id_ed25519")
    authorized = d / "authorized_keys"
    authorized.write_text(Path(str(client) + ".pub").read_text())
    port = _free_port()
    config = d / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {authorized}\n"
                      "StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                      f"PidFile {d / 'sshd.pid'}\nPermitRootLogin prohibit-password\n")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([binary, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                            stderr=(d / "sshd.log").open("wb"))
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, (d / "sshd.log").read_text()
                time.sleep(0.05)
        yield {"port": port, "host_key": public(host), "client": client, "dir": d}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _target(sshd, known_hosts: Path | None) -> Target:
    import getpass

    return Target("misty-owl", "127.0.0.1", sshd["client"], known_hosts, user=getpass.getuser(), port=sshd["port"])


def _known_hosts(path: Path, port: int, key: str) -> Path:
    path.write_text(f"[127.0.0.1]:{port} {key}\n")
    return path


def test_a_node_presenting_its_pinned_key_is_connected_to(sshd, tmp_path):
    known = _known_hosts(tmp_path / "known_hosts", sshd["port"], sshd["host_key"])
    status, out, _ = run(_target(sshd, known), "echo pinned-ok", timeout=20)
    assert (status, out.strip()) == (0, "pinned-ok")


def test_a_node_presenting_another_key_is_a_network_error_naming_it(sshd, tmp_path):
    other = public(keygen(tmp_path / "other"))
    known = _known_hosts(tmp_path / "known_hosts", sshd["port"], other)
    with pytest.raises(DyniaError) as err:
        run(_target(sshd, known), "echo never", timeout=20)
    assert err.value.kind == "network"
    assert "misty-owl" in err.value.message and "not the one pinned" in err.value.message
    assert "did not connect" in err.value.message and "intercepting" in err.value.hint


def test_a_node_with_no_pinned_key_is_refused_not_trusted(sshd, tmp_path):
    with pytest.raises(DyniaError) as err:
        run(_target(sshd, tmp_path / "no-such-known-hosts"), "echo never", timeout=20)
    assert err.value.kind == "network" and "no SSH host key is pinned for node misty-owl" in err.value.message
    assert "dynia up --phase provision" in err.value.hint


def test_gather_reports_the_mismatch_as_that_nodes_row(sshd, tmp_path):
    from dynia.nodes import facts as F
    from dynia.nodes.gather import gather

    known = _known_hosts(tmp_path / "known_hosts", sshd["port"], public(keygen(tmp_path / "other")))
    rows = gather([_target(sshd, known)], [F.VRRP], timeout=10)
    assert "not the one pinned" in rows["misty-owl"].error


def test_the_host_key_read_for_first_use_pinning_is_the_nodes_own(sshd):
    key = server_host_key(_target(sshd, None))
    assert key == sshd["host_key"]
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(sshd["dir"] / "host_ed25519.pub")], capture_output=True,
                         text=True).stdout
    assert fingerprint(key) == out.split()[1]


def test_a_push_refused_for_its_host_key_is_a_network_error_not_unreachable():
    error = push_error("misty-owl-infra-push", "ssh: handshake failed: ssh: host key mismatch", None, "shop")
    assert error.kind == "network" and "misty-owl" in error.message and "pinned" in error.message
    assert "unreachable" not in error.message and error.resume == "dynia up --phase infra --cluster shop"


# --- the cache: provision's host keys → known_hosts ------------------------------------------

def _cluster(project):
    from dynia.store import Project, load_cluster

    return load_cluster(Project(project), "shop")


KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGmt3qYqL4nKkQ2xXw0m3o3h6b9tqPq8S4cNn2x3mZ1a"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq7s1gR0v9m2rJc5aT8qZlP3wYk6dN4hX2bV9uE0fLc"
OUTPUTS = {"nodes": {"misty-owl": {"public_ip": "198.51.100.11", "private_ip": "10.110.0.11", "droplet_id": "1",
                                   "host_key": KEY_A, "host_key_source": "generated"},
                     "brave-panda": {"public_ip": "198.51.100.12", "private_ip": "10.110.0.12", "droplet_id": "2",
                                     "host_key": KEY_B, "host_key_source": "first-use"}},
           "reservedIp": "203.0.113.50"}


def test_the_engine_caches_each_nodes_host_key_and_a_known_hosts_file(project):
    from dynia.cache import ClusterCache
    from dynia.engine import Engine

    cluster = _cluster(project)
    Engine(cluster).cache_outputs(OUTPUTS)
    cache = ClusterCache.of(cluster)
    nodes = cache.read_outputs().nodes
    assert (nodes["misty-owl"].host_key, nodes["brave-panda"].host_key_source) == (KEY_A, "first-use")
    assert cache.known_hosts().read_text().splitlines() == [
        f"198.51.100.11 {KEY_A}", f"10.110.0.11 {KEY_A}", f"198.51.100.12 {KEY_B}", f"10.110.0.12 {KEY_B}"]


def test_status_targets_of_a_digitalocean_cluster_verify_with_the_cached_keys(project):
    from dynia.cache import ClusterCache
    from dynia.engine import Engine
    from dynia.session import targets

    cluster = _cluster(project)
    Engine(cluster).cache_outputs(OUTPUTS)
    assert {t.known_hosts for t in targets(cluster)} == {ClusterCache.of(cluster).known_hosts()}


@pytest.mark.parametrize("bad", ["ssh-rsa AAAAB3NzaC1yc2E", KEY_A + "\n198.51.100.99 " + KEY_B,
                                 "@cert-authority * " + KEY_A, KEY_A + " comment"])
def test_a_host_key_that_is_not_one_ed25519_key_is_refused_before_it_reaches_known_hosts(project, bad):
    from dynia.cache import ClusterCache

    cluster = _cluster(project)
    data = json.loads(json.dumps(OUTPUTS))
    data["nodes"]["misty-owl"]["host_key"] = bad
    data = {"nodes": {n: {k: v[k] for k in ("public_ip", "private_ip", "host_key")} for n, v in data["nodes"].items()},
            "reserved_ip": "203.0.113.50"}
    with pytest.raises(DyniaError) as err:
        ClusterCache.of(cluster).write_outputs(data)
    assert err.value.kind == "state" and "host_key" in err.value.message
    assert not ClusterCache.of(cluster).known_hosts().exists()


# --- cloud-init installs the key -----------------------------------------------------------

def test_cloud_init_installs_the_given_host_key_and_only_it(tmp_path):
    from dynia.render import cloud_init

    key = keygen(tmp_path / "host")
    text = cloud_init("shop", "misty-owl", (key.read_text(), public(key)))
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    assert doc["ssh_keys"] == {"ed25519_private": key.read_text().strip() + "\n", "ed25519_public": public(key)}
    assert doc["ssh_deletekeys"] is True and doc["ssh_genkeytypes"] == []
    assert "haproxy" in doc["packages"]


def test_cloud_init_refuses_anything_but_an_ed25519_key_pair():
    from dynia.render import cloud_init

    with pytest.raises(DyniaError) as err:
        cloud_init("shop", "misty-owl", ("not a key", "ssh-ed25519 AAAA\nruncmd: [evil]"))
    assert err.value.kind == "render"


# --- droplets made before keys were pinned ---------------------------------------------------

class _Stack:
    """What pin_first_use reads of the provision stack (its outputs) and writes (its config)."""

    def __init__(self, nodes):
        self.nodes, self.config, self.removed = nodes, {}, []

    def outputs(self):
        from types import SimpleNamespace

        return {"nodes": SimpleNamespace(value=self.nodes, secret=False)}

    def set_config(self, key, value):
        self.config[key] = value.value

    def remove_config(self, key):
        self.removed.append(key)


LEGACY = {"misty-owl": {"public_ip": "198.51.100.11", "private_ip": "10.110.0.11", "droplet_id": "1"},
          "brave-panda": {"public_ip": "198.51.100.12", "private_ip": "10.110.0.12", "droplet_id": "2",
                          "host_key": KEY_B, "host_key_source": "generated"}}


def test_a_droplet_made_before_keys_were_pinned_is_never_trusted_silently(project, monkeypatch):
    from dynia.engine import PIN_FIRST_USE_ENV, Engine
    from dynia.nodes import push

    monkeypatch.delenv(PIN_FIRST_USE_ENV, raising=False)
    monkeypatch.setattr(push, "server_host_key", lambda *a, **k: pytest.fail("no key is read without consent"))
    stack = _Stack(LEGACY)
    with pytest.raises(DyniaError) as err:
        Engine(_cluster(project)).pin_first_use(stack)
    assert err.value.kind == "state" and "misty-owl" in err.value.message and "brave-panda" not in err.value.message
    assert f"{PIN_FIRST_USE_ENV}=1 dynia up --phase provision --cluster shop" in err.value.hint
    assert stack.config == {}


def test_with_consent_the_key_it_presents_is_pinned_once_and_said_with_its_fingerprint(project, monkeypatch):
    from dynia.engine import PIN_FIRST_USE_ENV, Engine
    from dynia.nodes import push

    monkeypatch.setenv(PIN_FIRST_USE_ENV, "1")
    asked = []
    monkeypatch.setattr(push, "server_host_key", lambda target: asked.append(target.host) or KEY_A)
    lines = []
    stack = _Stack(LEGACY)
    Engine(_cluster(project), on_progress=lines.append).pin_first_use(stack)
    assert asked == ["198.51.100.11"]
    assert json.loads(stack.config["dynia:hostKeys"]) == {"misty-owl": KEY_A}
    assert any("misty-owl" in line and fingerprint(KEY_A) in line and "first use" in line for line in lines)
    # the next run takes the pin from the state's output, without asking the node again
    monkeypatch.delenv(PIN_FIRST_USE_ENV)
    recorded = {**LEGACY, "misty-owl": {**LEGACY["misty-owl"], "host_key": KEY_A, "host_key_source": "first-use"}}
    stack = _Stack(recorded)
    Engine(_cluster(project)).pin_first_use(stack)
    assert asked == ["198.51.100.11"] and json.loads(stack.config["dynia:hostKeys"]) == {"misty-owl": KEY_A}
