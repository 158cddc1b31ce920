"""Data that follows the VIP (issue 23) on real lab nodes: the ledger service's block-storage
volume (the lab's single-attach "API", dynia.providers.lab_volumes) moves with the VIP before
the service starts; the old holder is fenced; a failed attach leaves the service stopped."""
from __future__ import annotations

import http.client
import ipaddress
import os
import signal
import threading
import time


from dynia.nodes.commands import NodeCommands
from dynia.providers import lab_volumes
from dynia.providers.local import LAB_VOLUME_API, PROFILE
from dynia.volumes import volume_name

from .conftest import eventually, record

HOST = "ledger.lab.example"
LEDGER = """  ledger:
    compose: services/lab-ledger.yml
    domain: ledger.lab.example
    port: 9004
    health_path: /healthz
    placement: active-only
    data: {size_gb: 1, mount: /srv/ledger}
"""
ROUNDS = 3


def _with_ledger(lc):
    path = lc.project.spec_path("lab")
    path.write_text(path.read_text() + LEDGER)
    # What the provision phase does for the spec's data (the lab's "API" creates and formats it).
    lab_volumes.create(lc.lab.dir, volume_name("lab", "ledger"), 1)
    result = lc.roll()
    assert result.ok, [(r.node, r.layer, r.reason) for r in result.results if not r.ok]
    master = lc.cluster().spec.master_node
    assert eventually(lambda: lc.vip_holder() == [master], timeout=20), lc.vip_holder()
    assert eventually(lambda: _rows(lc) is not None, timeout=20)
    return master


def _add(lc, row: int) -> bool:
    """An acknowledged write: the app answered "ok" after fsync."""
    try:
        status, body = lc.get(HOST, f"/cgi-bin/add?row={row}", timeout=2)
    except (OSError, http.client.HTTPException):   # cut mid-answer by a failover
        return False
    return status == 200 and body.strip() == b"ok"


def _rows(lc) -> set[int] | None:
    try:
        status, body = lc.get(HOST, "/cgi-bin/rows", timeout=2)
    except (OSError, http.client.HTTPException):   # cut mid-answer by a failover
        return None
    if status != 200:
        return None
    return {int(x) for x in body.split()}


def _crash_keepalived(lc, node) -> float:
    vrrp = int(lc.cat(node, "/run/keepalived-vrrp.pid").strip())
    parent = int(lc.cat(node, "/run/keepalived.pid").strip())
    t = time.monotonic()
    os.kill(vrrp, signal.SIGKILL)
    os.kill(parent, signal.SIGKILL)
    lc.sh(node, f"ip addr del {lc.lab.vip}/{ipaddress.ip_network(lc.lab.subnet).prefixlen} dev eth0", check=False)
    return t


def _diagnose(lc) -> str:
    """What each node's notify.sh and mover left (the assertion's message)."""
    script = ("tail -n 30 /var/log/keepalived.log; cat /opt/dynia/state/degraded /opt/dynia/state/vrrp "
              "/opt/dynia/state/volumes/* 2>&1; grep srv /proc/self/mountinfo; podman ps --format '{{.Names}}'")
    return "\n".join(f"--- {n.id}\n" + lc.sh(n.id, script, check=False).stdout.decode(errors="replace")
                     for n in lc.lab.nodes)


def _holder_of_volume(lc) -> str | None:
    return lab_volumes.show(lc.lab.dir, volume_name("lab", "ledger"))["node"]


def test_the_volume_follows_the_vip_with_every_acknowledged_row(lab_cluster):
    lc = lab_cluster
    master = _with_ledger(lc)
    backup = "brave-panda"   # the highest backup priority
    acked: set[int] = set()
    counter = iter(range(1, 1_000_000))
    stop = threading.Event()

    def writer():
        deadline = time.monotonic() + 240   # bounded in time and count
        for row in counter:
            if stop.is_set() or time.monotonic() > deadline or row > 20_000:
                return
            if _add(lc, row):
                acked.add(row)
            else:
                time.sleep(0.05)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    seconds = []
    try:
        for round_ in range(ROUNDS):
            assert eventually(lambda: len(acked) > 20 * (round_ + 1), timeout=20), _diagnose(lc)
            old_device = lc.cat(master, "/opt/dynia/state/volumes/ledger.json")
            assert _holder_of_volume(lc) == master
            t0 = _crash_keepalived(lc, master)
            before = len(acked)
            # The service answers again: an acknowledged write through the VIP, on the new holder.
            assert eventually(lambda: len(acked) > before and lc.vip_holder() == [backup], timeout=30,
                              interval=0.05), (len(acked), before, lc.vip_holder())
            seconds.append(time.monotonic() - t0)
            assert _holder_of_volume(lc) == backup
            # The old holder's app still runs (its keepalived died, nothing stopped it) but is fenced:
            # its write is refused, and it cannot attach or mount the volume.
            answer = lc.sh(master, "curl -s --max-time 5 'http://127.0.0.1:9004/cgi-bin/add?row=0'",
                           check=False).stdout
            assert answer.strip() != b"ok", answer
            refused = lc.sh(master, f"{LAB_VOLUME_API} attach {volume_name('lab', 'ledger')}", check=False)
            assert refused.returncode == lab_volumes.ATTACHED_ELSEWHERE, refused
            device = old_device.split(b'"device": "')[1].split(b'"')[0].decode()
            mounted = lc.sh(master, f"mkdir -p /mnt/fence && mount -t ext4 {device} /mnt/fence", check=False)
            assert mounted.returncode != 0, "the old holder mounted the volume"
            rows = _rows(lc)
            assert rows is not None and acked <= rows, sorted(acked - (rows or set()))[:10]
            # The old MASTER comes back and preempts: the volume follows it home (a clean move).
            lc.sh(master, NodeCommands(PROFILE).reload("keepalived"))
            assert eventually(lambda: lc.vip_holder() == [master] and _holder_of_volume(lc) == master,
                              timeout=30), (lc.vip_holder(), _holder_of_volume(lc))
            back = len(acked)
            assert eventually(lambda: len(acked) > back, timeout=45), _diagnose(lc)
    finally:
        stop.set()
        thread.join(timeout=10)
    rows = _rows(lc)
    assert rows is not None
    lost = sorted(acked - rows)
    record("data_volume_failover_to_answer_seconds", [round(s, 2) for s in seconds])
    record("data_volume_acknowledged_writes", len(acked))
    record("data_volume_acknowledged_writes_lost", len(lost))
    assert lost == [], lost[:20]


def test_a_failed_attach_leaves_the_service_stopped_and_the_node_degraded(lab_cluster):
    lc = lab_cluster
    master = _with_ledger(lc)
    backup = "brave-panda"
    name = volume_name("lab", "ledger")
    img = lc.lab.dir / "volumes" / f"{name}.img"
    # The provider cannot attach it any more (its backing store is gone): the API call fails.
    img.rename(img.with_suffix(".gone"))
    try:
        _crash_keepalived(lc, master)
        assert eventually(lambda: lc.vip_holder() == [backup], timeout=15)
        degraded = lambda: lc.sh(backup, "cat /opt/dynia/state/degraded", check=False).stdout  # noqa: E731
        assert eventually(lambda: b"data volume of ledger" in degraded(), timeout=45), _diagnose(lc)
        alert = lc.cat(backup, "/opt/dynia/state/alerts/volume-ledger.json")
        assert b'"kind": "volume"' in alert and name.encode() in alert
        # notify.sh never started it without its volume.
        assert lc.sh(backup, NodeCommands(PROFILE).compose_running("ledger"), check=False).returncode != 0
        assert lc.sh(backup, "mountpoint -q /srv/ledger", check=False).returncode != 0
        assert _rows(lc) is None
    finally:
        img.with_suffix(".gone").rename(img)
