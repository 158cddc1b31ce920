"""The contributor lab (`python -m tests.devlab`), driven as a contributor runs it: up → the
product's own commands against it → down, and nothing of the lab left on the machine."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dynia.providers import lab_subnets
from dynia.nodes.lab import Lab
from dynia.providers.local import addresses
from dynia.state.store import Project
from dynia.spec.load import load_cluster

from .conftest import LabCluster
from .own_subnet import examples_copy

REPO = Path(__file__).resolve().parents[2]
DYNIA = str(Path(sys.executable).parent / "dynia")  # the installed console script
NODES = ["misty-owl", "brave-panda", "calm-otter"]  # examples/clusters/lab.yaml


def devlab(root: Path, *args: str, stamped=None) -> subprocess.CompletedProcess:
    """stamped: called with each line of its output as it comes (a test timing its steps)."""
    argv = [sys.executable, "-m", "tests.devlab", "-C", str(root), *args]
    if stamped is None:
        return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    import tempfile

    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True)
        out = []
        for line in proc.stdout:
            stamped(line.rstrip("\n"))
            out.append(line)
        proc.wait(timeout=600)
        err.seek(0)
        return subprocess.CompletedProcess(argv, proc.returncode, "".join(out), err.read())


def dynia(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DYNIA, "-C", str(root), *args], capture_output=True, text=True, timeout=120)


def has_command(name: str) -> bool:
    return subprocess.run([DYNIA, name, "--help"], capture_output=True).returncode == 0


@pytest.fixture
def devlab_project(tmp_path, lab_tools):
    """A copy of examples/ (never the repo's own), brought down whatever the test did."""
    root = tmp_path / "proj"
    lab_dir = Project(root).lab_dir("lab")
    with examples_copy(root, lab_dir):
        yield root
        if lab_dir.exists():
            devlab(root, "down")
            if (lab_dir / "lab.json").exists():
                Lab.load(lab_dir).down()


def _machine() -> dict:
    """What a lab could leave on this machine, outside its own directory."""
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {"netns": {line.split()[0] for line in netns.splitlines() if line.strip()},
            "shm": set(os.listdir("/dev/shm")),
            "links": {line.split(":")[1].strip().split("@")[0] for line in
                      subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout.splitlines()}}


def _namespaces(lab: Lab) -> set[int]:
    """The inodes of the nodes' network and mount namespaces (while they exist)."""
    inodes = {os.stat(f"/run/netns/{n.netns}").st_ino for n in lab.nodes}
    return inodes | {os.stat(n.mnt(lab.dir)).st_ino for n in lab.nodes}


def _processes_in(inodes: set[int]) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            for kind in ("net", "mnt"):
                try:
                    if os.stat(f"/proc/{entry}/ns/{kind}").st_ino in inodes:
                        pids.append(int(entry))
                except OSError:
                    continue
    return pids


def _assert_nothing_left(root: Path, before: dict, inodes: set[int], lab: Lab) -> None:
    lab_dir = Project(root).lab_dir("lab")
    after = _machine()
    # Other labs (xdist workers, a devlab) come and go meanwhile, each under its own subnet's
    # names: theirs are not this lab's leftovers. Ours died with the lab's claim on its subnet.
    others = tuple(lab_subnets.names_prefix(c["subnet"]) for c in lab_subnets._live_claims(lab_subnets.REGISTRY))
    assert lab.nodes[0].netns.split("-")[0] not in others   # its bridge and claim are gone
    assert {n for n in after["netns"] - before["netns"] if not n.startswith(others)} == set()
    assert after["shm"] - before["shm"] == set()  # podman's lock table stayed inside the nodes
    assert {n for n in after["links"] - before["links"] if not n.startswith(others)} == set()
    with open("/proc/self/mountinfo") as f:
        assert [line for line in f if str(root) in line] == []
    assert _processes_in(inodes) == []
    assert not lab_dir.exists()
    # The cache described nodes that are gone: the next up starts from a first apply.
    assert not (Project(root).cache_dir("lab") / "outputs.json").exists()
    assert not (Project(root).cache_dir("lab") / "applied.json").exists()
    assert not (Project(root).cache_dir("lab") / "known_hosts").exists()  # the pins of nodes that are gone


def test_devlab_up_leaves_an_applied_cluster_the_product_operates_and_down_leaves_nothing(devlab_project):
    root = devlab_project
    before = _machine()
    up = devlab(root, "--json", "up")
    assert up.returncode == 0, up.stderr[-2000:]
    described = json.loads(up.stdout)
    ips, vip = addresses(load_cluster(Project(root), "lab").spec.provider.vpc_ip_range, NODES)
    assert described["running"] and described["vip"] == vip
    assert described["vip_holder"] == ["misty-owl"]
    assert {n: v["ip"] for n, v in described["nodes"].items()} == ips
    client_pem = Path(described["lab_dir"]) / "origin-pull-client.pem"
    assert described["services"]["api"]["curl"] == \
        f"curl -k --cert {client_pem} --resolve api.lab.example:443:{vip} https://api.lab.example/"
    # What the printed curl presents is the lab's origin-pull client certificate, readable by root only.
    assert client_pem.stat().st_mode & 0o777 == 0o600 and b"BEGIN CERTIFICATE" in client_pem.read_bytes()
    lab_dir = Project(root).lab_dir("lab")
    lab = Lab.load(lab_dir)
    lc = LabCluster(Project(root), lab)
    for host, body in (("lab.example", b"web\n"), ("api.lab.example", b"api\n"), ("admin.lab.example", b"admin\n")):
        assert lc.get(host) == (200, body)

    # The product, from the project directory, as against droplets: the cache up left behind
    # is the engine's own, so the offline plan has nothing to do.
    plan = dynia(root, "plan", "--offline", "--cluster", "lab", "--json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["pending"] == 0
    applied = json.loads((Project(root).cache_dir("lab") / "applied.json").read_text())
    if has_command("status"):  # the operating commands, as they land (issue 10)
        status = dynia(root, "status", "--cluster", "lab", "--json")
        assert status.returncode == 0, status.stdout[-2000:] + status.stderr[-2000:]
    if has_command("drift-check"):
        drift = dynia(root, "drift-check", "--cluster", "lab", "--json")
        assert drift.returncode == 0, drift.stdout[-2000:] + drift.stderr[-2000:]
    if has_command("repair"):
        # Pulumi cannot run here: repair must find the pushed secrets on this machine, as devlab
        # left them, and never need the engine.
        lc.sh("brave-panda", "echo '# edited by hand' >> /etc/caddy/Caddyfile")
        repaired = dynia(root, "repair", "--cluster", "lab", "--yes", "--json")
        assert repaired.returncode == 0, repaired.stdout[-2000:] + repaired.stderr[-2000:]
        assert json.loads(repaired.stdout)["secretsFrom"] == "local"
        applied = json.loads((Project(root).cache_dir("lab") / "applied.json").read_text())

    # up again re-applies: every push answers unchanged, the version stays, still nothing to plan.
    again = devlab(root, "up")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "brave-panda-infra-push done" in again.stdout and "misty-owl-service-web-push done" in again.stdout
    assert json.loads((Project(root).cache_dir("lab") / "applied.json").read_text()) == applied
    assert json.loads(dynia(root, "plan", "--offline", "--cluster", "lab", "--json").stdout)["pending"] == 0
    assert lc.get("api.lab.example") == (200, b"api\n")

    inodes = _namespaces(lab)
    down = devlab(root, "down")
    assert down.returncode == 0, down.stderr
    _assert_nothing_left(root, before, inodes, lab)
    # and down is safe to run twice
    assert devlab(root, "down").returncode == 0


def test_down_after_a_half_failed_up_leaves_nothing(devlab_project):
    root = devlab_project
    spec = root / "clusters" / "lab.yaml"
    text = spec.read_text()
    marker = "    port: 9002\n    health_path: /healthz\n"
    assert marker in text
    # The api's gate asks for a path the app does not serve: the apps roll stops at its first node,
    # after infra and the admin service are running everywhere (containers included).
    spec.write_text(text.replace(marker, "    port: 9002\n    health_path: /missing\n"))
    before = _machine()
    up = devlab(root, "up")
    assert up.returncode == 16, up.stdout[-1000:] + up.stderr[-2000:]  # `health`, as `dynia up` exits
    assert "error: node brave-panda, service:api: the health gate failed" in up.stderr
    assert "tests.devlab" in up.stderr  # how to resume or clean up
    lab = Lab.load(Project(root).lab_dir("lab"))
    assert LabCluster(Project(root), lab).sh("misty-owl", "podman ps --format '{{.Names}}'").stdout.strip()
    inodes = _namespaces(lab)
    down = devlab(root, "down")
    assert down.returncode == 0, down.stderr
    _assert_nothing_left(root, before, inodes, lab)
