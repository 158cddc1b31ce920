"""keepalived failover on real lab nodes: the VIP moves, notify.sh records it, status follows."""
from __future__ import annotations

import os
import pwd
import signal
import statistics
import time

from dynia.nodes.commands import NodeCommands
from dynia.paths import HAPROXY_USER, PATHS
from dynia.providers.local import PROFILE

from .conftest import eventually, record


ADVERT_INT = 1.0
BACKUP_PRIORITY = 100  # the highest backup: brave-panda
# RFC 5798 master-down interval: 3 × advert + skew, skew = (256 - priority) / 256 × advert.
GOAL = 1.1 * (3 * ADVERT_INT + (256 - BACKUP_PRIORITY) / 256 * ADVERT_INT)


def _pid(lc, node, path) -> int:
    return int(lc.cat(node, path).strip())


def _crash_keepalived(lc, node) -> float:
    """A true crash: SIGKILL the VRRP child first (else the parent tells it to leave cleanly)."""
    vrrp, parent = _pid(lc, node, "/run/keepalived-vrrp.pid"), _pid(lc, node, "/run/keepalived.pid")
    t = time.monotonic()
    os.kill(vrrp, signal.SIGKILL)
    os.kill(parent, signal.SIGKILL)
    return t


def test_master_crash_moves_the_vip_and_notify_records_the_new_state(applied_lab):
    lc = applied_lab
    vip = lc.lab.vip
    seconds = []
    for round_ in range(5):
        assert lc.vip_holder() == ["misty-owl"]
        killed_at = _crash_keepalived(lc, "misty-owl")
        # A killed keepalived cannot remove its VIP; the node is "dead" for traffic purposes.
        lc.sh("misty-owl", f"ip addr del {vip}/24 dev eth0")
        moved = eventually(lambda: lc.vip_holder() == ["brave-panda"], timeout=10, interval=0.02)
        seconds.append(time.monotonic() - killed_at)
        assert moved, f"round {round_}: VIP is on {lc.vip_holder()}"
        state = eventually(lambda: lc.cat("brave-panda", "/opt/dynia/state/vrrp").startswith(b"MASTER"), timeout=5)
        assert state, lc.cat("brave-panda", "/opt/dynia/state/vrrp")
        # notify.sh starts the active-only admin app on the new MASTER; traffic follows the VIP.
        assert eventually(lambda: lc.get("admin.lab.example")[0] == 200, timeout=15)
        assert lc.get("api.lab.example") == (200, b"api\n")
        # bring the old MASTER back: it preempts (priority 150) and takes the VIP home
        lc.sh("misty-owl", NodeCommands(PROFILE).reload("keepalived"))
        assert eventually(lambda: lc.vip_holder() == ["misty-owl"], timeout=15), lc.vip_holder()
        assert eventually(lambda: lc.cat("brave-panda", "/opt/dynia/state/vrrp").startswith(b"BACKUP"), timeout=5)
    median = statistics.median(seconds)
    record("failover_seconds_median_of_5", round(median, 2))
    record("failover_seconds_all", [round(s, 2) for s in seconds])
    assert median <= GOAL, (seconds, GOAL)


def test_clean_keepalived_stop_hands_over_fast(applied_lab):
    lc = applied_lab
    t = time.monotonic()
    os.kill(_pid(lc, "misty-owl", "/run/keepalived.pid"), signal.SIGTERM)
    assert eventually(lambda: lc.vip_holder() == ["brave-panda"], timeout=10, interval=0.02)
    record("failover_seconds_sigterm", round(time.monotonic() - t, 2))
    assert lc.cat("misty-owl", "/opt/dynia/state/vrrp").split()[0] in (b"BACKUP", b"FAULT", b"STOP")


def _haproxy_workers(lc, node) -> list[int]:
    """The node's HAProxy workers: the children of the master named by its pid file."""
    master = _pid(lc, node, PATHS.haproxy_pid)
    workers = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1]) == master:
                workers.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return workers


def test_haproxy_workers_run_as_haproxy_in_its_chroot(applied_lab):
    workers = _haproxy_workers(applied_lab, "misty-owl")
    assert workers
    for pid in workers:
        uid = os.stat(f"/proc/{pid}").st_uid
        assert uid == pwd.getpwnam(HAPROXY_USER).pw_uid != 0
        assert os.readlink(f"/proc/{pid}/root") == PATHS.haproxy_chroot


def test_a_master_whose_haproxy_stops_answering_gives_the_vip_up(applied_lab):
    """Hung workers: the master's pid lives on, only the listener tells. keepalived's track
    script asks it, so the VIP moves to the standby; it comes home once HAProxy answers again."""
    lc = applied_lab
    assert lc.vip_holder() == ["misty-owl"]
    workers = _haproxy_workers(lc, "misty-owl")
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    try:
        assert eventually(lambda: lc.vip_holder() == ["brave-panda"], timeout=15, interval=0.1), lc.vip_holder()
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
    assert eventually(lambda: lc.vip_holder() == ["misty-owl"], timeout=15), lc.vip_holder()
