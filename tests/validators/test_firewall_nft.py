"""Every rendered firewall passes the real `nft -c -f`, loads, reloads as a no-op and leaves
every other table alone, each in a fresh network namespace (`unshare -n`: nft needs
CAP_NET_ADMIN, and this machine's own ruleset is never touched)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dynia.paths import PATHS
from dynia.session import render_cluster as render
from dynia.store import Project, load_cluster

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _needs_root_and_nft():
    missing = [b for b in ("nft", "unshare") if not shutil.which(b)]
    if os.geteuid() != 0 or missing:
        pytest.fail(f"firewall validator tests need root and {missing or 'nft'}: run .ci/test (README)")


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
