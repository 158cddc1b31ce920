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


def keygen_type(path: Path, kind: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "test", "-f", str(path)], check=True)
    return path


def public(path: Path) -> str:
    return " ".join(Path(str(path) + ".pub").read_text().split()[:2])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshd(tmp_path, monkeypatch, request):
    """A real sshd on 127.0.0.1 with its own ed25519 host key (plus the key types an indirect
    parameter names, as a droplet made before dynia pinned keys has them); the client's key is
    a clear file."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    extra = list(getattr(request, "param", None) or [])
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
    extra_keys = "".join(f"HostKey {keygen_type(d / f'host_{t}', t)}\n" for t in extra)
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\n{extra_keys}AuthorizedKeysFile {authorized}\n"
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
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    return load_cluster(Project(project), "shop")


KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGmt3qYqL4nKkQ2xXw0m3o3h6b9tqPq8S4cNn2x3mZ1a"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq7s1gR0v9m2rJc5aT8qZlP3wYk6dN4hX2bV9uE0fLc"
OUTPUTS = {"nodes": {"misty-owl": {"public_ip": "198.51.100.11", "private_ip": "10.110.0.11", "droplet_id": "1",
                                   "host_key": KEY_A, "host_key_source": "generated"},
                     "brave-panda": {"public_ip": "198.51.100.12", "private_ip": "10.110.0.12", "droplet_id": "2",
                                     "host_key": KEY_B, "host_key_source": "first-use"}},
           "reservedIp": "203.0.113.50"}


def test_the_engine_caches_each_nodes_host_key_and_a_known_hosts_file(project):
    from dynia.state.cache import ClusterCache
    from dynia.engine.automation import Engine

    cluster = _cluster(project)
    Engine(cluster).cache_outputs(OUTPUTS)
    cache = ClusterCache.of(cluster)
    nodes = cache.read_outputs().nodes
    assert (nodes["misty-owl"].host_key, nodes["brave-panda"].host_key_source) == (KEY_A, "first-use")
    assert cache.known_hosts().read_text().splitlines() == [
        f"198.51.100.11 {KEY_A}", f"10.110.0.11 {KEY_A}", f"198.51.100.12 {KEY_B}", f"10.110.0.12 {KEY_B}"]


def test_status_targets_of_a_digitalocean_cluster_verify_with_the_cached_keys(project):
    from dynia.state.cache import ClusterCache
    from dynia.engine.automation import Engine
    from dynia.engine.session import targets

    cluster = _cluster(project)
    Engine(cluster).cache_outputs(OUTPUTS)
    assert {t.known_hosts for t in targets(cluster)} == {ClusterCache.of(cluster).known_hosts()}


@pytest.mark.parametrize("bad", ["ssh-rsa AAAAB3NzaC1yc2E", KEY_A + "\n198.51.100.99 " + KEY_B,
                                 "@cert-authority * " + KEY_A, KEY_A + " comment"])
def test_a_host_key_that_is_not_one_ed25519_key_is_refused_before_it_reaches_known_hosts(project, bad):
    from dynia.state.cache import ClusterCache

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
    from dynia.render.rendering import cloud_init

    key = keygen(tmp_path / "host")
    text = cloud_init("shop", "misty-owl", "ubuntu-24-04-x64", (key.read_text(), public(key)))
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    assert doc["ssh_keys"] == {"ed25519_private": key.read_text().strip() + "\n", "ed25519_public": public(key)}
    assert doc["ssh_deletekeys"] is True and doc["ssh_genkeytypes"] == []
    assert "haproxy" in doc["packages"]


def test_cloud_init_refuses_anything_but_an_ed25519_key_pair():
    from dynia.render.rendering import cloud_init

    with pytest.raises(DyniaError) as err:
        cloud_init("shop", "misty-owl", "ubuntu-24-04-x64", ("not a key", "ssh-ed25519 AAAA\nruncmd: [evil]"))
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
    from dynia.engine.automation import PIN_FIRST_USE_ENV, Engine
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
    from dynia.engine.automation import PIN_FIRST_USE_ENV, Engine
    from dynia.nodes import push

    monkeypatch.setenv(PIN_FIRST_USE_ENV, "1")
    asked = []
    monkeypatch.setattr(push, "server_host_key", lambda target: asked.append(target.host) or KEY_A)
    monkeypatch.setattr("dynia.engine.host_keys._other_host_key_type", lambda host: None)
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


def test_a_preview_never_connects_never_fails_and_says_which_nodes_to_pin_and_how(project, monkeypatch, capsys):
    from dynia.engine.automation import PIN_FIRST_USE_ENV, Engine
    from dynia.nodes import push

    monkeypatch.setenv(PIN_FIRST_USE_ENV, "1")  # even with consent: a plan makes no first-use connection
    monkeypatch.setattr(push, "server_host_key", lambda *a, **k: pytest.fail("a preview read a node's key"))
    pinned = {"brave-panda": {**LEGACY["brave-panda"], "host_key": KEY_B, "host_key_source": "first-use"}}
    stack = _Stack({**LEGACY, **pinned})
    Engine(_cluster(project)).pin_first_use(stack, "preview")
    err = capsys.readouterr().err
    assert "warning: misty-owl: created before dynia pinned SSH host keys, not pinned yet" in err
    assert f"{PIN_FIRST_USE_ENV}=1 dynia up --phase provision --cluster shop" in err and "brave-panda" not in err
    # the pins the state already holds are passed on (the plan shows them unchanged); no new one
    assert json.loads(stack.config["dynia:hostKeys"]) == {"brave-panda": KEY_B}


@pytest.mark.parametrize("mode", ["none", "destroy"])
def test_destroy_and_import_neither_demand_nor_read_pins(project, monkeypatch, mode):
    from dynia.engine.automation import PIN_FIRST_USE_ENV, Engine
    from dynia.nodes import push

    monkeypatch.delenv(PIN_FIRST_USE_ENV, raising=False)
    monkeypatch.setattr(push, "server_host_key", lambda *a, **k: pytest.fail("a node's key was read"))
    stack = _Stack(LEGACY)
    stack.outputs = lambda: pytest.fail("the state was read for pins")
    Engine(_cluster(project)).pin_first_use(stack, mode)
    assert stack.config == {} and stack.removed == []


def test_up_pins_the_nodes_that_answer_and_skips_one_that_is_off_with_a_warning(project, monkeypatch):
    from dynia.engine.automation import PIN_FIRST_USE_ENV, Engine
    from dynia.nodes import push

    monkeypatch.setenv(PIN_FIRST_USE_ENV, "1")
    legacy = {**LEGACY, "brave-panda": {k: v for k, v in LEGACY["brave-panda"].items()
                                        if k not in ("host_key", "host_key_source")}}

    def read(target):
        if target.node == "brave-panda":
            raise DyniaError("network", f"cannot read the SSH host key of node brave-panda at {target.host}: "
                             "TimeoutError", "bring the node up")
        return KEY_A

    monkeypatch.setattr(push, "server_host_key", read)
    monkeypatch.setattr("dynia.engine.host_keys._other_host_key_type", lambda host: None)
    lines = []
    stack = _Stack(legacy)
    Engine(_cluster(project), on_progress=lines.append).pin_first_use(stack, "up")
    # recorded as not pinned (the all-zero key no sshd presents), never as the state's generated
    # key, which it does not have and which would refuse it for good
    from dynia.state.cache import UNPINNED_HOST_KEY

    assert json.loads(stack.config["dynia:hostKeys"]) == {"misty-owl": KEY_A, "brave-panda": UNPINNED_HOST_KEY}
    warning = next(line for line in lines if line.startswith("warning: provision: brave-panda not pinned"))
    assert f"{PIN_FIRST_USE_ENV}=1 dynia up --phase provision --cluster shop" in warning
    # the next up, the node back: pinned then, the other pin kept without asking again
    monkeypatch.setattr(push, "server_host_key", lambda target: KEY_B if target.node == "brave-panda"
                        else pytest.fail("misty-owl was asked again"))
    recorded = {n: {**v, "host_key": json.loads(stack.config["dynia:hostKeys"])[n], "host_key_source": "first-use"}
                for n, v in legacy.items()}
    stack = _Stack(recorded)
    Engine(_cluster(project), on_progress=lines.append).pin_first_use(stack, "up")
    assert json.loads(stack.config["dynia:hostKeys"]) == {"misty-owl": KEY_A, "brave-panda": KEY_B}


def test_a_node_recorded_as_not_pinned_is_never_in_known_hosts_and_says_what_to_run(project):
    from dynia.state.cache import UNPINNED_HOST_KEY, ClusterCache
    from dynia.engine.automation import Engine
    from dynia.engine.session import unpinned

    cluster = _cluster(project)
    outputs = {**OUTPUTS, "nodes": {**OUTPUTS["nodes"], "brave-panda": {
        **OUTPUTS["nodes"]["brave-panda"], "host_key": UNPINNED_HOST_KEY, "host_key_source": "first-use"}}}
    Engine(cluster).cache_outputs(outputs)
    assert UNPINNED_HOST_KEY not in ClusterCache.of(cluster).known_hosts().read_text()
    assert set(unpinned(cluster)) == {"brave-panda"}


def test_each_engine_operation_pins_only_on_up(project, monkeypatch):
    """plan (preview) warns, destroy and revert's import never demand pins (a legacy node may be
    off); only `up` pins. The provision stack is a stand-in: what is checked is the mode."""
    from dynia.engine import automation as E

    class Stack:
        def outputs(self):
            return {}

        def preview(self, **kw):
            return None

        def destroy(self, **kw):
            return None

        def refresh(self, **kw):
            return None

    seen = []
    eng = E.Engine(_cluster(project))
    monkeypatch.setattr(eng, "stats_credentials", lambda: None)
    monkeypatch.setattr(eng, "acme_state", lambda: None)
    monkeypatch.setattr(eng, "stack", lambda phase: Stack())
    monkeypatch.setattr(eng, "pin_first_use", lambda stack, mode: seen.append(mode))
    eng.preview(("provision",))
    eng.destroy(("provision",))
    eng._run("provision", [], lambda s: s.refresh())  # stack_import's refresh
    eng._run("provision", [], lambda s: None, "up")
    assert seen == ["preview", "none", "none", "up"]


def test_an_upgraded_clusters_cache_without_keys_refuses_each_node_saying_exactly_what_to_run(project, monkeypatch):
    """A cache written before dynia pinned host keys (no host_key per node, no known_hosts):
    status, drift-check and verify show each node refused with the exact commands, and never
    connect to it (no key would be trusted)."""
    from dynia.state.cache import ClusterCache
    from dynia.nodes import gather as G
    from dynia.engine.session import targets, unpinned

    cluster = _cluster(project)
    ClusterCache.of(cluster).write_outputs({"nodes": {n: {k: v for k, v in a.items() if k in ("public_ip", "private_ip")}
                                                      for n, a in OUTPUTS["nodes"].items()}, "reserved_ip": "203.0.113.50"})
    why = unpinned(cluster)
    assert set(why) == {"misty-owl", "brave-panda"}
    text = why["misty-owl"]
    assert "no SSH host key for misty-owl in .dynia/cache/" in text and text.count("known_hosts") == 1
    assert "Run `dynia up --phase provision --cluster shop`" in text
    assert "`DYNIA_PIN_FIRST_USE=1 dynia up --phase provision --cluster shop`" in text

    async def never(target):
        pytest.fail(f"connected to {target.node}")

    monkeypatch.setattr(G, "connect", never)
    rows = G.gather(targets(cluster), [], refused=why)
    assert {n: r.error for n, r in rows.items()} == why
    # once a provision recorded the keys, nothing is refused
    Engine = __import__("dynia.engine.automation", fromlist=["Engine"]).Engine
    Engine(cluster).cache_outputs(OUTPUTS)
    assert unpinned(cluster) == {}


def test_a_refused_host_key_row_carries_its_hint(sshd, tmp_path):
    from dynia.nodes import facts as F
    from dynia.nodes.gather import gather

    rows = gather([_target(sshd, tmp_path / "missing_known_hosts")], [F.VRRP])
    error = rows["misty-owl"].error
    assert "no SSH host key is pinned for node misty-owl" in error and "dynia up --phase provision" in error


def test_a_node_offering_only_ed25519_needs_no_warning(sshd):
    from dynia.engine.host_keys import _other_host_key_type

    assert _other_host_key_type("127.0.0.1", sshd["port"]) is None


@pytest.mark.parametrize("sshd", [["ecdsa"]], indirect=True)
def test_a_legacy_node_also_offering_ecdsa_is_warned_about_with_the_command_that_fixes_it(sshd, project, monkeypatch):
    """Go's x/crypto/ssh (the push client) lists ECDSA before ed25519: unless the connection
    restricts the algorithms to the pinned key's type, it negotiates ECDSA and refuses the
    pinned ed25519 key. The first-use pin says so, with the fix."""
    from dynia.engine.automation import PIN_FIRST_USE_ENV, Engine
    from dynia.engine.host_keys import _other_host_key_type
    from dynia.nodes import push

    assert _other_host_key_type("127.0.0.1", sshd["port"]) == "ecdsa-sha2-nistp256"
    monkeypatch.setenv(PIN_FIRST_USE_ENV, "1")
    monkeypatch.setattr(push, "server_host_key", lambda target: KEY_A)
    monkeypatch.setattr("dynia.engine.host_keys._other_host_key_type",
                        lambda host: _other_host_key_type("127.0.0.1", sshd["port"]))
    lines = []
    Engine(_cluster(project), on_progress=lines.append).pin_first_use(_Stack(LEGACY), "up")
    warning = next(line for line in lines if "also offers a ecdsa-sha2-nistp256 host key" in line)
    assert warning.startswith("warning: provision: misty-owl") and "/etc/ssh/ssh_host_ecdsa_key*" in warning
