"""Adding a node never moves the VIP, however slow the roll: on real lab nodes, the new node's
keepalived starts only after every existing node (the holder included) advertises to it."""
from __future__ import annotations

import threading
import time

import pytest

from dynia.planner import rolling_order
from dynia.nodes.lab import Lab
from dynia.state.store import Project
from dynia.spec.load import load_cluster

from .conftest import LabCluster, eventually, record, roll
from .own_subnet import examples_copy


OLD, NEW = ["misty-owl", "brave-panda"], "calm-otter"
# RFC 5798 master-down interval of the lowest-priority backup (advert 1 s): 3 × 1 + skew < 4 s.
# Each push waits longer than that before the next one starts, as a droplet's roll does.
SLOW_PUSH_SECONDS = 4.5


def vip_holders(lc: LabCluster) -> list[str]:
    """The nodes carrying the VIP on eth0, among the lab nodes that exist (the third comes later)."""
    return [n.id for n in lc.lab.nodes if lc.lab._netns_inode(n) is not None
            and f" {lc.lab.vip}/" in lc.lab.run(n.id, "ip -br addr show eth0").stdout.decode()]


class Watch:
    """Samples, every 0.2 s until stopped, which nodes carry the VIP."""

    def __init__(self, lc: LabCluster):
        self.lc, self.samples, self._stop = lc, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append(tuple(vip_holders(self.lc)))
            except Exception as exc:  # a node being created has no eth0 yet
                self.samples.append(("error", type(exc).__name__))
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def slow_roll(lc: LabCluster, order: list[str]):
    """The lab roll (infra layer), with a pause after every push: a roll as slow as a droplet's."""
    bundles = lc.bundles()
    results = []
    for node in order:
        result = roll(lc.targets([node]), bundles, ["infra"])
        results.append(result)
        assert result.ok, [(r.node, r.reason) for r in result.results]
        time.sleep(SLOW_PUSH_SECONDS)
    return results


@pytest.fixture
def two_node_lab(tmp_path, lab_tools):
    """The lab cluster with two nodes applied; the lab knows a third, not yet created."""
    root = tmp_path / "proj"
    with examples_copy(root, tmp_path / "lab"):
        yield from _two_node_lab(tmp_path, root)


def _two_node_lab(tmp_path, root):
    project = Project(root)
    spec = project.spec_path("lab")
    text = spec.read_text()
    assert "nodes: [misty-owl, brave-panda, calm-otter]" in text
    spec.write_text(text.replace("nodes: [misty-owl, brave-panda, calm-otter]", "nodes: [misty-owl, brave-panda]"))
    c = load_cluster(project, "lab")
    # Addresses derive from the position in the list: the third node keeps its place.
    lab = Lab.plan(tmp_path / "lab", c.spec.provider.vpc_ip_range, OLD + [NEW])
    try:
        lab.up(with_apps=False, only=OLD)
        lc = LabCluster(project, lab)
        assert eventually(lambda: all(_ssh_open(lab, n) for n in OLD), timeout=10)
        result = lc.roll(layers=["infra"])
        assert result.ok, [(r.node, r.reason) for r in result.results if not r.ok]
        assert eventually(lambda: vip_holders(lc) == ["misty-owl"], timeout=15), vip_holders(lc)
        assert eventually(lambda: lc.cat("brave-panda", "/opt/dynia/state/vrrp").startswith(b"BACKUP"), timeout=10)
        yield lc
    finally:
        lab.down()


def _ssh_open(lab: Lab, node: str) -> bool:
    import socket

    try:
        socket.create_connection((lab.node(node).ip, 22), timeout=1).close()
        return True
    except OSError:
        return False


def test_node_add_with_a_slow_roll_never_moves_the_vip_and_the_new_node_never_becomes_master(two_node_lab):
    lc = two_node_lab
    before = lc.render()
    applied = {"nodes": {n: before.manifest(n) for n in OLD}}  # what the two-node apply recorded
    lc.edit_spec("nodes: [misty-owl, brave-panda]", f"nodes: [misty-owl, brave-panda, {NEW}]")
    lc.lab.up(with_apps=False, only=[NEW])
    assert eventually(lambda: _ssh_open(lc.lab, NEW), timeout=10)
    spec = lc.cluster().spec
    order = rolling_order(spec.nodes, spec.master_node, "misty-owl", applied)
    assert order == ["brave-panda", "misty-owl", NEW]  # the new node after the holder
    # What each existing node's keepalived has logged so far: the add must add no transition.
    logged = {n: len(lc.cat(n, "/var/log/keepalived.log")) for n in OLD}
    started = time.monotonic()
    with Watch(lc) as watch:
        slow_roll(lc, order)
        time.sleep(2)  # past one more master-down interval after the new node started keepalived
    record("node_add_slow_roll_seconds", round(time.monotonic() - started, 1))
    holders = set(s for s in watch.samples if s and s[0] != "error")
    assert holders == {("misty-owl",)}, holders
    log = lc.cat(NEW, "/var/log/keepalived.log").decode(errors="replace")
    assert "Entering BACKUP STATE" in log and "Entering MASTER STATE" not in log, log[-2000:]
    assert lc.cat(NEW, "/opt/dynia/state/vrrp").startswith(b"BACKUP")
    for n in OLD:
        since = lc.cat(n, "/var/log/keepalived.log")[logged[n]:].decode(errors="replace")
        assert "Entering MASTER STATE" not in since and "Entering BACKUP STATE" not in since, (n, since)
    record("node_add_vip_samples", len(watch.samples))
