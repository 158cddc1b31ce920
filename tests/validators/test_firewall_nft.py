"""Every rendered firewall passes the real `nft -c -f`, loads, reloads as a no-op and leaves
every other table alone, each in a fresh network namespace (`unshare -n`: nft needs
CAP_NET_ADMIN, and this machine's own ruleset is never touched)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dynia.paths import PATHS
from dynia.render.rendered import render_cluster as render
from dynia.state.store import Project
from dynia.spec.load import load_cluster

from ..needs import need_tools


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _needs_root_and_nft(root_namespaces):
    missing = [b for b in ("nft", "unshare") if not shutil.which(b)]
    if missing:
        pytest.fail(f"firewall validator tests need {missing}: run .ci/test (README)")


def _in_fresh_netns(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "-n", "sh", "-ec", script], capture_output=True, text=True, timeout=60)


def _cases():
    for cluster in Project(REPO / "examples").cluster_names():
        for node in load_cluster(Project(REPO / "examples"), cluster).spec.nodes:
            yield pytest.param(cluster, node, id=f"{cluster}-{node}")


def _rules(project, cluster, node, tmp_path) -> Path:
    rendering = render(load_cluster(Project(project), cluster))
    f = next(f for f in rendering.files[node] if f.target == PATHS.firewall_rules)
    path = tmp_path / "firewall.nft"
    path.write_bytes(f.content)
    return path


@pytest.mark.parametrize("cluster,node", list(_cases()))
def test_rendered_firewall_passes_nft_check_and_loads_twice_without_touching_other_tables(project, tmp_path,
                                                                                         cluster, node):
    rules = _rules(project, cluster, node, tmp_path)
    proc = _in_fresh_netns(
        # Another program's table (Docker's, podman's) exists before and must survive both loads.
        "nft add table ip filter; nft add chain ip filter DOCKER; "
        f"nft -c -f {rules}; nft -f {rules}; first=$(nft list table inet dynia); "
        f"nft -f {rules}; second=$(nft list table inet dynia); "
        '[ "$first" = "$second" ] || { echo "second load changed the table" >&2; exit 1; }; '
        "nft list chain ip filter DOCKER >/dev/null; nft list tables")
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.splitlines()) == ["table inet dynia", "table ip filter"], proc.stdout


def test_a_broken_firewall_is_rejected_by_nft_check(project, tmp_path):
    rules = _rules(project, "shop", "misty-owl", tmp_path)
    rules.write_text(rules.read_text().replace("tcp dport 22 ip saddr @admin4 accept",
                                               "tcp dport 22 ip saddr @nosuchset accept"))
    proc = _in_fresh_netns(f"nft -c -f {rules}")
    assert proc.returncode != 0 and "nosuchset" in proc.stderr


def test_the_loaded_firewall_drops_a_forwarded_packet_to_the_metadata_address_and_forwards_others(project,
                                                                                                  tmp_path):
    """Real packets from a "container" (a second namespace behind a veth, as on Docker's bridge)
    through the node's forward path: to 169.254.169.254 they hit dynia's drop, to a neighbouring
    address they pass dynia's chain. A probe chain hooked after dynia's counts what got through."""
    rules = _rules(project, "shop", "misty-owl", tmp_path)
    send = ("python3 -c \"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
            ".sendto(b'x', ('$1', 80))\"")
    proc = _in_fresh_netns(
        f"nft -f {rules}; sysctl -qw net.ipv4.ip_forward=1; ip link set lo up; "
        "nft add table inet probe; "
        "nft add chain inet probe passed '{ type filter hook forward priority 10; }'; "
        "nft add rule inet probe passed ip daddr 169.254.169.0/24 counter; "
        # The way out: another veth, routed to the metadata's /24 (forwarding needs a route).
        "ip link add v2 type veth peer name v3; ip link set v2 up; ip link set v3 up; "
        "ip route add 169.254.169.0/24 dev v2; "
        "ip link add v0 type veth peer name v1; ip addr add 10.99.0.1/24 dev v0; ip link set v0 up; "
        "unshare -n sleep 30 & c=$!; "
        # unshare execs sleep once the namespace exists: wait until the pid's differs from ours.
        'for i in $(seq 100); do [ "$(readlink /proc/$c/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break; '
        "sleep 0.01; done; "
        "ip link set v1 netns $c; in_c() { nsenter --net=/proc/$c/ns/net -- \"$@\"; }; "
        "in_c ip addr add 10.99.0.2/24 dev v1; in_c ip link set v1 up; in_c ip route add default via 10.99.0.1; "
        f"send() {{ in_c {send}; }}; "
        "send 169.254.169.254; send 169.254.169.254; send 169.254.169.253; sleep 0.2; "
        "nft list chain inet dynia forward; nft list chain inet probe passed; kill $c")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"ip daddr 169\.254\.169\.254 counter packets 2 bytes \d+ drop", proc.stdout), proc.stdout
    # Only the other address's packet got past dynia's chain.
    assert re.search(r"ip daddr 169\.254\.169\.0/24 counter packets 1 bytes", proc.stdout), proc.stdout


def test_the_rendered_firewall_unit_passes_systemd_analyze_verify_without_a_warning(project, tmp_path):
    need_tools("systemd-analyze", package="systemd")
    rendering = render(load_cluster(Project(project), "shop"))
    unit = next(f for f in rendering.files["misty-owl"] if f.target.endswith("dynia-firewall.service"))
    path = tmp_path / "dynia-firewall.service"
    path.write_bytes(unit.content)
    proc = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    # The same check does see a mistake in a unit: a misspelt key is a warning.
    path.write_text(unit.content.decode().replace("PartOf=", "PartsOf="))
    proc = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert "Unknown key 'PartsOf'" in proc.stderr
