"""`dynia status` on real lab nodes (seed scenario 5): healthy after an apply, the new MASTER after
keepalived stops on the old one while traffic through the VIP stays OK, and a node whose sshd is
gone is a row with its error (exit 4), never a crash.

The product path runs unchanged: the cluster's cache holds the lab's addresses (what provision
writes to outputs.json) and the lab provider's SSH identity sits where the local provider reads
it, so `dynia status` (a subprocess, the real entry point) and `dynia.operations.status.read` go through
session.targets, the provider's profile and holder, and one parallel SSH round trip per node."""
from __future__ import annotations

import json
import subprocess
import sys
import time

from dynia.operations import status as S
from dynia.errors import EXIT_UNHEALTHY
from dynia.nodes.commands import NodeCommands
from dynia.providers.local import PROFILE

from .conftest import eventually, record



def _cli(lc, *args) -> tuple[int, dict]:
    """The product command, as an operator runs it: `dynia -C <project> status --json …`."""
    r = subprocess.run([sys.executable, "-m", "dynia", "-C", str(lc.project.root), "status", "--json",
                        "--cluster", "lab", *args], capture_output=True, text=True, timeout=60)
    assert r.stdout, r.stderr
    return r.returncode, json.loads(r.stdout)


def _roles(data) -> dict[str, str | None]:
    return {n["node"]: n["role"] for n in data["nodes"]}


def test_status_is_healthy_then_shows_the_new_master_after_keepalived_stops(shared_applied_lab):
    lc = shared_applied_lab
    lc.cache_as_after_up()
    # The apply's own health gate can leave a check or two in flight: healthy within seconds.
    assert eventually(lambda: S.read(lc.cluster()).healthy, timeout=15), S.read(lc.cluster()).problems
    t = time.monotonic()
    code, data = _cli(lc)
    record("status_seconds_3_nodes_cli", round(time.monotonic() - t, 2))
    assert code == 0, data["problems"]
    assert [n["node"] for n in data["nodes"]] == ["misty-owl", "brave-panda", "calm-otter"]
    assert all(n["reachable"] and n["appliedVersion"] == data["desiredVersion"] for n in data["nodes"])
    assert data["holder"] == "misty-owl" and data["masters"] == ["misty-owl"]
    assert data["verdict"].startswith("healthy: 3 nodes at v")
    assert {s["service"] for s in data["services"]} == {"web", "api", "admin"}

    # Seed scenario 5: keepalived stops on the MASTER; the VIP moves, status follows it.
    lc.sh("misty-owl", NodeCommands(PROFILE).stop("keepalived"))
    assert eventually(lambda: lc.vip_holder() == ["brave-panda"], timeout=10, interval=0.05), lc.vip_holder()
    moved = eventually(lambda: (lambda st: st.holder == "brave-panda" and st.masters == ["brave-panda"]
                                and st)(S.read(lc.cluster())), timeout=10)
    assert moved, S.read(lc.cluster()).as_dict()
    # notify.sh moves the active-only app to the new MASTER; then the one thing wrong is the stop.
    assert eventually(lambda: S.read(lc.cluster()).problems == ["keepalived is not running on misty-owl"],
                      timeout=20), S.read(lc.cluster()).problems
    code, data = _cli(lc)
    assert code == EXIT_UNHEALTHY
    assert _roles(data) == {"misty-owl": "STOP", "brave-panda": "MASTER", "calm-otter": "BACKUP"}
    assert data["holder"] == "brave-panda"
    assert next(n for n in data["nodes"] if n["node"] == "brave-panda")["holdsReservedIp"] is True
    admin = next(s for s in data["services"] if s["service"] == "admin")
    assert [n for n, cs in admin["containers"].items() if cs] == ["brave-panda"]
    # Traffic through the VIP stays OK.
    assert lc.get("api.lab.example") == (200, b"api\n")
    assert eventually(lambda: lc.get("admin.lab.example")[0] == 200, timeout=15)

    # keepalived back on misty-owl: it preempts (highest priority) and status is healthy again.
    lc.sh("misty-owl", NodeCommands(PROFILE).reload("keepalived"))
    back = eventually(lambda: (lambda st: st.healthy and st.holder == "misty-owl" and st)(S.read(lc.cluster())),
                      timeout=30)
    assert back, S.read(lc.cluster()).as_dict()
    assert back.masters == ["misty-owl"]


def test_a_node_without_sshd_is_a_row_with_its_error_and_exit_4(shared_applied_lab):
    lc = shared_applied_lab
    lc.cache_as_after_up()
    lc.sh("calm-otter", 'kill "$(cat /run/sshd.pid)"')
    t = time.monotonic()
    code, data = _cli(lc)
    seconds = time.monotonic() - t
    record("status_seconds_with_one_node_unreachable", round(seconds, 2))
    assert code == EXIT_UNHEALTHY
    row = next(n for n in data["nodes"] if n["node"] == "calm-otter")
    assert row["reachable"] is False and row["error"], row
    assert data["problems"][0].startswith("calm-otter is unreachable: ")
    # The other two answered in full, and the cluster is otherwise served as usual.
    others = [n for n in data["nodes"] if n["node"] != "calm-otter"]
    assert all(n["reachable"] and n["caddyHealth"] == 200 for n in others)
    assert data["holder"] == "misty-owl" and data["masters"] == ["misty-owl"]
    assert seconds < S.GATHER_TIMEOUT + 5  # one node's timeout, not a hang
