"""The apply protocol with the real firewall: the apply script and the real `nft` run inside a
network namespace of the test's own (the machine's ruleset is never touched), against a
DYNIA_ROOT directory, with the node commands dynia really sends (only the file path points
into the test root). Also: backups of secret files keep the secret's mode."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from dynia.nodes.payload import BOOTSTRAP, Bundle
from dynia.nodes.commands import NodeCommands
from dynia.paths import PATHS
from dynia.providers.local import PROFILE
from dynia.render.rendered import render_cluster as render
from dynia.state.store import Project
from dynia.spec.load import load_cluster

from .test_apply_script_local import _file, make_bundle

COMMANDS = NodeCommands(PROFILE)
ROOTED = '"$DYNIA_ROOT/etc/dynia/firewall.nft"'
ME = "198.51.100.7"  # the address "this push" connects from (SSH_CONNECTION)


def _rooted(command: str) -> str:
    return command.replace(PATHS.firewall_rules, ROOTED)


@pytest.fixture
def netns(root_namespaces):
    """A network namespace of the test's own, anonymous (never in `ip netns list`, nothing to
    share with a lab): it lives as long as the process holding it, killed in the finalizer."""
    if not shutil.which("nft"):
        pytest.fail("firewall apply tests need nft: run .ci/test (README)")
    holder = subprocess.Popen(["unshare", "-n", "sleep", "300"])
    try:
        # unshare execs sleep in the new namespace once it exists: wait until the pid's differs.
        own = os.stat("/proc/self/ns/net").st_ino
        for _ in range(100):
            if os.stat(f"/proc/{holder.pid}/ns/net").st_ino != own:
                break
            time.sleep(0.01)
        yield ["nsenter", f"--net=/proc/{holder.pid}/ns/net", "--"]
    finally:
        holder.kill()
        holder.wait()


def _rules(project: Path, admin: list[str]) -> bytes:
    path = Project(project).spec_path("lab")
    spec = path.read_text().split("firewall:\n", 1)[0]  # the example's, without an earlier edit
    path.write_text(spec + f"firewall:\n  admin_ranges: {json.dumps(admin)}\n")
    rendering = render(load_cluster(Project(project), "lab"))
    return next(f.content for f in rendering.files["misty-owl"] if f.target == PATHS.firewall_rules)


def _bundle(content: bytes, healthy: str = "true", version: int = 1) -> Bundle:
    import grp
    import pwd
    owner = f"{pwd.getpwuid(os.geteuid()).pw_name}:{grp.getgrgid(os.getegid()).gr_name}"
    return Bundle(node="misty-owl", layer="infra", config_version=version,
                  files=[_file(PATHS.firewall_rules, content, mode="0600", owner=owner, component="nftables")],
                  validate={"nftables": _rooted(COMMANDS.validate("nftables"))},
                  reload={"nftables": _rooted(COMMANDS.reload("nftables"))},
                  stop={"nftables": COMMANDS.stop("nftables")},
                  health=[{"name": "firewall", "type": "command", "command": COMMANDS.firewall_admits_ssh()},
                          {"name": "the rest", "type": "command", "command": healthy}],
                  policy={"retries": 2, "interval": 0.01, "backoff": 1.0, "timeout": 5.0},
                  lockdown=False, component_order=["nftables"])


def _apply(netns: list[str], root: Path, bundle: Bundle, ssh_connection: str | None = f"{ME} 50000 10.213.0.11 22"):
    env = {k: v for k, v in os.environ.items() if k != "SSH_CONNECTION"}
    env["DYNIA_ROOT"] = str(root)
    if ssh_connection is not None:
        env["SSH_CONNECTION"] = ssh_connection
    proc = subprocess.run([*netns, "sh", "-c", BOOTSTRAP], input=bundle.payload(),
                          capture_output=True, timeout=60, env=env)
    report = json.loads(proc.stdout.decode().strip().splitlines()[-1]) if proc.stdout.strip() else {}
    return proc.returncode, report, proc.stderr.decode()


def _table(netns: list[str]) -> str | None:
    proc = subprocess.run([*netns, "nft", "list", "table", "inet", "dynia"],
                          capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "node"
    r.mkdir()
    return r


def test_a_firewall_that_admits_the_push_loads_and_a_second_load_changes_nothing(netns, root, project):
    code, report, err = _apply(netns, root, _bundle(_rules(project, ["198.51.100.0/24"])))
    assert code == 0, err
    assert report["status"] == "applied" and report["reloaded"] == ["nftables"]
    first = _table(netns)
    assert "198.51.100.0/24" in first and "policy drop" in first
    code, report, err = _apply(netns, root, _bundle(_rules(project, ["198.51.100.0/24"]), version=2))
    assert code == 0 and report["status"] == "unchanged", err
    assert _table(netns) == first


def test_a_firewall_that_would_lock_dynia_out_is_refused_before_it_is_loaded(netns, root, project):
    assert _apply(netns, root, _bundle(_rules(project, ["198.51.100.0/24"])))[0] == 0
    loaded = _table(netns)
    code, report, err = _apply(netns, root, _bundle(_rules(project, ["203.0.113.0/24"]), version=2))
    assert code == 20 and report["status"] == "invalid", err
    assert f"this push connects from {ME}, which firewall.admin_ranges does not admit" in report["reason"]
    assert _table(netns) == loaded  # never loaded
    assert b"198.51.100.0/24" in (root / "etc/dynia/firewall.nft").read_bytes()  # the file restored


def test_a_failed_gate_reloads_the_previous_firewall(netns, root, project):
    assert _apply(netns, root, _bundle(_rules(project, ["198.51.100.0/24"])))[0] == 0
    code, report, err = _apply(netns, root, _bundle(_rules(project, ["198.51.100.0/25"]), healthy="false",
                                                    version=2))
    assert code == 30 and report["status"] == "rolled-back", err
    assert "198.51.100.0/24" in _table(netns)  # the previous table, loaded again
    assert "198.51.100.0/25" not in _table(netns)
    assert b"198.51.100.0/24" in (root / "etc/dynia/firewall.nft").read_bytes()


def test_a_first_firewall_whose_gate_fails_is_unloaded_and_its_file_removed(netns, root, project):
    code, report, err = _apply(netns, root, _bundle(_rules(project, ["198.51.100.0/24"]), healthy="false"))
    assert code == 30 and report["status"] == "rolled-back", err
    assert _table(netns) is None
    assert not (root / "etc/dynia/firewall.nft").exists()


def test_the_gate_fails_when_the_loaded_table_no_longer_admits_the_push(netns, root, project):
    """The gate reads the live table: a firewall that does not admit this push's address (here
    one loaded by a validator that did not ask) is rolled back while the connection stands."""
    bundle = _bundle(_rules(project, ["203.0.113.0/24"]))
    bundle.validate = {"nftables": _rooted("nft -c -f " + PATHS.firewall_rules)}
    code, report, err = _apply(netns, root, bundle)
    assert code == 30, err
    assert f"this push connects from {ME}" in report["reason"]
    assert _table(netns) is None


@pytest.mark.parametrize("ssh_connection", [None, ""], ids=["unset", "empty"])
def test_without_the_push_address_only_a_firewall_admitting_everyone_loads(netns, root, project, ssh_connection):
    """sudo's env_reset or `su -` leave no SSH_CONNECTION: the guard cannot tell which admin range
    dynia needs, so it refuses any firewall that does not admit everyone (fails closed)."""
    code, report, err = _apply(netns, root, _bundle(_rules(project, ["198.51.100.0/24", "::/0"])),
                               ssh_connection=ssh_connection)
    assert code == 20 and report["status"] == "invalid", err
    assert "the address this push connects from is unknown" in report["reason"]
    assert "firewall.admin_ranges does not admit everyone" in report["reason"]
    assert _table(netns) is None
    code, report, err = _apply(netns, root, _bundle(_rules(project, ["0.0.0.0/0", "::/0"]), version=2),
                               ssh_connection=ssh_connection)
    assert code == 0 and report["status"] == "applied", err
    assert _table(netns) is not None


def test_the_backup_of_a_secret_keeps_the_secrets_mode(tmp_path):
    root = tmp_path / "node"
    root.mkdir()
    (root / "healthy").touch()
    from .test_apply_script_local import apply
    assert apply(root, make_bundle([_file("/etc/secret.pem", b"old key\n", mode="0600")]))[0] == 0
    assert apply(root, make_bundle([_file("/etc/secret.pem", b"new key\n", mode="0600")], version=2))[0] == 0
    copies = list((root / "opt/dynia/backups").rglob("secret.pem"))
    assert len(copies) == 1 and copies[0].read_bytes() == b"old key\n"
    assert copies[0].stat().st_mode & 0o777 == 0o600
    # ... and an ordinary file's copy keeps its own mode.
    assert apply(root, make_bundle([_file("/etc/web.conf", b"v1\n", mode="0640")], version=3))[0] == 0
    assert apply(root, make_bundle([_file("/etc/web.conf", b"v2\n", mode="0640")], version=4))[0] == 0
    web = list((root / "opt/dynia/backups").rglob("web.conf"))
    assert [c.stat().st_mode & 0o777 for c in web] == [0o640]
