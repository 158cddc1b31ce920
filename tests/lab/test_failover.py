"""keepalived failover on real lab nodes: the VIP moves, notify.sh records it, status follows."""
from __future__ import annotations

import os
import pwd
import signal
import time

from dynia.nodes.commands import NodeCommands
from dynia.paths import HAPROXY_USER, PATHS
from dynia.providers.local import PROFILE

from .conftest import eventually, record
from .failover_round import pid_of, failover_round


# The time a failover takes (median of rounds, against 1.1 × the RFC 5798 master-down interval)
# is tests/bench/bench_failover.py's figure: here, that the VIP moves, and moves back, at all.
# Every test leaves the lab as it found it (the VIP home on misty-owl), so they share one.


def test_master_crash_moves_the_vip_and_notify_records_the_new_state(shared_applied_lab):
    for round_ in range(2):  # and again: the MASTER that came back fails over as well the second time
        record(f"failover_seconds_round_{round_}", round(failover_round(shared_applied_lab), 2))


def test_clean_keepalived_stop_hands_over_fast(shared_applied_lab):
    lc = shared_applied_lab
    t = time.monotonic()
    os.kill(pid_of(lc, "misty-owl", "/run/keepalived.pid"), signal.SIGTERM)
    assert eventually(lambda: lc.vip_holder() == ["brave-panda"], timeout=10, interval=0.02)
    record("failover_seconds_sigterm", round(time.monotonic() - t, 2))
    assert lc.cat("misty-owl", "/opt/dynia/state/vrrp").split()[0] in (b"BACKUP", b"FAULT", b"STOP")
    # Back as it was: once the stopping keepalived is gone (a reload would only signal it), started
    # again, it preempts.
    commands = NodeCommands(PROFILE)
    assert eventually(lambda: lc.sh("misty-owl", commands.running("keepalived"), check=False).returncode != 0)
    lc.sh("misty-owl", commands.reload("keepalived"))
    assert eventually(lambda: lc.vip_holder() == ["misty-owl"], timeout=15), lc.vip_holder()


def _haproxy_workers(lc, node) -> list[int]:
    """The node's HAProxy workers: the children of the master named by its pid file."""
    master = pid_of(lc, node, PATHS.haproxy_pid)
    workers = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1]) == master:
                workers.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return workers


def test_haproxy_workers_run_as_haproxy_in_its_chroot(shared_applied_lab):
    workers = _haproxy_workers(shared_applied_lab, "misty-owl")
    assert workers
    for pid in workers:
        uid = os.stat(f"/proc/{pid}").st_uid
        assert uid == pwd.getpwnam(HAPROXY_USER).pw_uid != 0
        assert os.readlink(f"/proc/{pid}/root") == PATHS.haproxy_chroot


def test_a_master_whose_haproxy_stops_answering_gives_the_vip_up(shared_applied_lab):
    """Hung workers: the master's pid lives on, only the listener tells. keepalived's track
    script asks it, so the VIP moves to the standby; it comes home once HAProxy answers again."""
    lc = shared_applied_lab
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
