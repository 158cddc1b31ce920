"""One keepalived crash on the VRRP MASTER and the way back, on an applied lab: what
tests/lab/test_failover.py asserts and tests/bench/bench_failover.py times."""
from __future__ import annotations

import os
import signal
import time

from dynia.nodes.commands import NodeCommands
from dynia.providers.local import PROFILE

from .conftest import LabCluster, eventually

MASTER, BACKUP = "misty-owl", "brave-panda"  # examples/clusters/lab.yaml: priorities 150 and 100


def pid_of(lc: LabCluster, node: str, path: str) -> int:
    return int(lc.cat(node, path).strip())


def crash_keepalived(lc: LabCluster, node: str) -> float:
    """A true crash: SIGKILL the VRRP child first (else the parent tells it to leave cleanly).
    Returns when (time.monotonic()) it was killed."""
    vrrp, parent = pid_of(lc, node, "/run/keepalived-vrrp.pid"), pid_of(lc, node, "/run/keepalived.pid")
    t = time.monotonic()
    os.kill(vrrp, signal.SIGKILL)
    os.kill(parent, signal.SIGKILL)
    return t


def failover_round(lc: LabCluster) -> float:
    """Crash the MASTER's keepalived: the VIP moves to the highest backup, notify.sh records it
    and starts the active-only admin app there, traffic follows; then keepalived starts again on
    the old MASTER, which preempts and takes the VIP home. Returns the seconds from the kill to
    the VIP answering on the backup."""
    vip = lc.lab.vip
    assert lc.vip_holder() == [MASTER]
    killed_at = crash_keepalived(lc, MASTER)
    # A killed keepalived cannot remove its VIP; the node is "dead" for traffic purposes.
    lc.sh(MASTER, f"ip addr del {vip}/24 dev eth0")
    moved = eventually(lambda: lc.vip_holder() == [BACKUP], timeout=10, interval=0.02)
    seconds = time.monotonic() - killed_at
    assert moved, f"the VIP is on {lc.vip_holder()}"
    state = eventually(lambda: lc.cat(BACKUP, "/opt/dynia/state/vrrp").startswith(b"MASTER"), timeout=5)
    assert state, lc.cat(BACKUP, "/opt/dynia/state/vrrp")
    # notify.sh starts the active-only admin app on the new MASTER; traffic follows the VIP.
    assert eventually(lambda: lc.get("admin.lab.example")[0] == 200, timeout=15)
    assert lc.get("api.lab.example") == (200, b"api\n")
    # bring the old MASTER back: it preempts (priority 150) and takes the VIP home
    lc.sh(MASTER, NodeCommands(PROFILE).reload("keepalived"))
    assert eventually(lambda: lc.vip_holder() == [MASTER], timeout=15), lc.vip_holder()
    assert eventually(lambda: lc.cat(BACKUP, "/opt/dynia/state/vrrp").startswith(b"BACKUP"), timeout=5)
    return seconds
