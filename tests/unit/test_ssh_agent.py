"""Keys in an ssh-agent (passphrase-protected keys): the engine's preflight accepts them without a
readable private key, and dynia's own SSH (asyncssh) logs in through the agent — proved against a
real sshd on 127.0.0.1 that the test starts and stops, with a real ssh-agent holding the key."""
from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from dynia.errors import DyniaError
from dynia.providers import get
from dynia.providers.base import private_key_encrypted

PASSPHRASE = "correct horse battery staple"


def keygen(path: Path, passphrase: str = "") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "dynia-test", "-f", str(path)],
                   check=True, timeout=30)
    return path


@pytest.fixture
def agent(tmp_path, monkeypatch):
    """A real ssh-agent (killed at the end) holding a passphrase-protected key, added through
    SSH_ASKPASS as an operator's `ssh-add` would: (key path, socket)."""
    if not (shutil.which("ssh-agent") and shutil.which("ssh-add")):
        pytest.fail("the ssh-agent tests need openssh-client (ssh-agent, ssh-add)")
    key = keygen(tmp_path / "id_ed25519", PASSPHRASE)
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline and proc.poll() is None, "ssh-agent did not start"
            time.sleep(0.05)
        askpass = tmp_path / "askpass"
        askpass.write_text(f"#!/bin/sh\necho '{PASSPHRASE}'\n")
        askpass.chmod(0o700)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock), "SSH_ASKPASS": str(askpass),
               "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}
        subprocess.run(["ssh-add", str(key)], env=env, check=True, timeout=30, stdin=subprocess.DEVNULL,
                       capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        monkeypatch.setenv("DYNIA_SSH_KEY", str(key))
        yield key, sock
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def test_private_key_encrypted_tells_passphrase_protected_keys_from_clear_ones(tmp_path):
    assert private_key_encrypted(keygen(tmp_path / "locked", PASSPHRASE).read_text())
    assert not private_key_encrypted(keygen(tmp_path / "clear").read_text())
    assert private_key_encrypted("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n")
    assert not private_key_encrypted("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n")


def test_a_passphrase_protected_key_in_the_agent_gives_the_engine_no_private_key_and_the_pub_file(agent):
    key, _ = agent
    private, public = get("digitalocean").ssh_key_pair(None, "shop")
    assert private == ""  # the engine's pushes then use the agent (components/node_config.py)
    assert public == Path(str(key) + ".pub").read_text().strip()


def test_without_a_key_file_the_public_key_comes_from_the_agent(agent):
    key, _ = agent
    pub = Path(str(key) + ".pub").read_text().split()[:2]
    key.unlink()
    Path(str(key) + ".pub").unlink()
    private, public = get("digitalocean").ssh_key_pair(None, "shop")
    assert private == "" and public.split()[:2] == pub


def test_a_passphrase_protected_key_without_an_agent_is_a_typed_error_naming_ssh_add(tmp_path, monkeypatch):
    key = keygen(tmp_path / "id_ed25519", PASSPHRASE)
    monkeypatch.setenv("DYNIA_SSH_KEY", str(key))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(DyniaError) as exc:
        get("digitalocean").ssh_key_pair(None, "shop")
    assert exc.value.kind == "config" and "passphrase-protected" in exc.value.message
    assert "ssh-add" in exc.value.hint and PASSPHRASE not in exc.value.message


def test_an_empty_agent_with_a_protected_key_is_a_typed_error(agent, monkeypatch):
    key, sock = agent
    subprocess.run(["ssh-add", "-D"], env={**os.environ, "SSH_AUTH_SOCK": str(sock)}, check=True,
                   capture_output=True, timeout=10)
    with pytest.raises(DyniaError) as exc:
        get("digitalocean").ssh_key_pair(None, "shop")
    assert "holds no key" in exc.value.message and f"ssh-add {key}" in exc.value.hint


def test_the_engine_preflight_accepts_an_agent_only_setup(agent, monkeypatch):
    from dynia.engine import automation as engine

    monkeypatch.setattr(engine, "require_cli", lambda: None)  # the Pulumi CLI is not what is tested here
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test")
    for _, env in get("digitalocean").operator_env:
        monkeypatch.setenv(env, "test-token")
    monkeypatch.setenv(get("digitalocean").node_token_env, "test-node-token")
    engine.preflight(get("digitalocean"), None, None, "shop")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def loopback_sshd(tmp_path, agent):
    """sshd on 127.0.0.1 (a free high port) accepting the agent's key for this user; stopped after."""
    key, _ = agent
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists():
        pytest.fail("the loopback test needs openssh-server (sshd)")
    d = tmp_path / "sshd"
    d.mkdir()
    host_key = keygen(d / "host_ed25519")
    authorized = d / "authorized_keys"
    authorized.write_text(Path(str(key) + ".pub").read_text())
    authorized.chmod(0o600)
    port = _free_port()
    config = d / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
                      f"AuthorizedKeysFile {authorized}\nStrictModes no\nPasswordAuthentication no\n"
                      "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nUsePAM no\n"
                      f"PidFile {d / 'sshd.pid'}\nPermitRootLogin prohibit-password\n")
    known_hosts = d / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} " + " ".join(Path(str(host_key) + ".pub").read_text().split()[:2]) + "\n")
    if os.geteuid() == 0:  # sshd run by root checks its privilege-separation directory
        Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
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
        yield port, known_hosts
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_dynia_logs_in_through_the_agent_with_a_passphrase_protected_key(agent, loopback_sshd):
    from dynia.nodes.push import Target, client_auth, run

    key, sock = agent
    port, known_hosts = loopback_sshd
    assert client_auth(key)["agent_path"] == str(sock)
    status, out, err = run(Target("misty-owl", "127.0.0.1", key, known_hosts, user=getpass.getuser(), port=port),
                           "echo dynia-agent-ok", timeout=20)
    assert (status, out.strip()) == (0, "dynia-agent-ok"), err


def test_a_clear_key_file_is_used_directly_and_the_agent_is_left_alone(tmp_path, monkeypatch):
    from dynia.nodes.push import client_auth

    key = keygen(tmp_path / "clear")
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path))  # exists: would be used if asked
    assert client_auth(key) == {"client_keys": [str(key)], "agent_path": None}
