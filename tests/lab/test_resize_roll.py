"""A size change on lab nodes goes through dynia's own roll, under load through the VIP.

`dynia up` is the engine's own Engine.up (the contributor lab, tests/devlab.py: only the Pulumi
stacks stood in for); lab nodes have the droplet's contract (dynia.nodes.lab_power,
dynia.providers.lab_droplets): the size the lab recorded when it made each node, and a power
off/on that stops and starts the node's daemons as a reboot does (its /run, VIP and ruleset
gone, containers not restarted). The
roll's SSH steps (dynia.engine.resize_steps) run for real: the VIP moved off the holder first, each node
drained, shut down, resized, powered on, its services started and its gate passed before the next."""
from __future__ import annotations

import json
import re
import threading
import time

from dynia.providers import lab_droplets
from dynia.nodes.lab import Lab
from dynia.state.store import Project

from .conftest import LabCluster, eventually, record
from .test_devlab import devlab, devlab_project, dynia  # noqa: F401 — the fixture is used by name

OLD, NEW = "s-1vcpu-2gb", "s-2vcpu-4gb"
ROLLING_ORDER = ["brave-panda", "calm-otter", "misty-owl"]   # backups first, the holder last
MAX_REQUESTS, MAX_SECONDS = 60000, 600.0
MIN_DURING_ROLL = 500


def _sizes(lab_dir) -> dict[str, str]:
    data = json.loads((lab_dir / lab_droplets.RECORD_FILE).read_text())
    return {n: v["size"] for n, v in data.items()}


def _boot_marks(lc: LabCluster) -> dict[str, tuple[str, bool]]:
    """Per node: its sshd's pid, and whether a file left in /run is there (a reboot clears /run)."""
    return {n.id: (lc.sh(n.id, "cat /run/sshd.pid", check=False).stdout.decode().strip(),
                   lc.sh(n.id, "test -e /run/resize-test-mark", check=False).returncode == 0) for n in lc.lab.nodes}


def test_a_size_change_rolls_one_node_at_a_time_vip_first_and_fails_no_request(devlab_project):  # noqa: F811
    root = devlab_project
    up = devlab(root, "up")
    assert up.returncode == 0, up.stderr[-3000:]
    lab_dir = Project(root).lab_dir("lab")
    lc = LabCluster(Project(root), Lab.load(lab_dir))
    assert _sizes(lab_dir) == dict.fromkeys(ROLLING_ORDER, OLD)   # made at the spec's size
    for node in ROLLING_ORDER:
        lc.sh(node, "touch /run/resize-test-mark")
    before = _boot_marks(lc)

    spec = root / "clusters" / "lab.yaml"
    spec.write_text(spec.read_text().replace(f"size: {OLD}", f"size: {NEW}", 1))
    plan = json.loads(dynia(root, "plan", "--offline", "--cluster", "lab", "--json").stdout)
    resizes = [n["text"] for n in plan["notices"] if n["kind"] == "resize"]
    assert [t.split(" by ")[0] for t in resizes] == [f"{n} {OLD} → {NEW}" for n in ("misty-owl", "brave-panda",
                                                                                       "calm-otter")]
    assert all("by dynia's roll (VIP moved away (holder only), drained, shut down, resized, powered on, services "
               "started, gated; one node at a time)" in t for t in resizes), resizes

    hosts = ["lab.example", "api.lab.example"]
    done, rolling = threading.Event(), threading.Event()
    stats = {"ok": 0, "failed": 0, "errors": [], "during_roll": 0}

    stamps: list[tuple[float, str]] = []
    load_started = time.monotonic()

    def load():
        # Bounded by count and time; a new connection per request (a new visitor each).
        started, i = load_started, 0
        while i < MAX_REQUESTS and time.monotonic() - started < MAX_SECONDS and not done.is_set():
            host = hosts[i % 2]
            try:
                status, body = lc.get(host, timeout=10)
                good = status == 200 and body in (b"web\n", b"api\n")
            except OSError as exc:
                good, status = False, repr(exc)
            stats["during_roll"] += rolling.is_set()
            if good:
                stats["ok"] += 1
            else:
                stats["failed"] += 1
                if len(stats["errors"]) < 10:
                    stats["errors"].append((round(time.monotonic() - started, 2), host, status))
            i += 1

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(0.5)
        rolling.set()
        t = time.monotonic()
        up = devlab(root, "up", stamped=lambda line: stamps.append((round(time.monotonic() - load_started, 2), line)))
        roll_seconds = time.monotonic() - t
    finally:
        done.set()
        worker.join(timeout=MAX_SECONDS + 30)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    record("resize_roll_steps", [s for s in stamps if s[1].startswith("resize ")])

    steps = [(m.group(1), m.group(2)) for m in re.finditer(r"^resize ([a-z]+-[a-z]+): (.*)$", up.stdout, re.M)]
    # one node at a time, in rolling order: every step of a node before the next node's first
    assert [n for i, (n, _) in enumerate(steps) if i == 0 or steps[i - 1][0] != n] == ROLLING_ORDER, steps
    for node in ROLLING_ORDER:
        said = [s for n, s in steps if n == node]
        holder = node == "misty-owl"   # the holder: its VIP handed over before it goes, and back after
        expected = (["the reserved IP moved to another node"] if holder else []) + [
            "drained, then shut down", f"{OLD} → {NEW}, powered on; starting its services",
            *(["keepalived started; it took the reserved IP back from brave-panda"] if holder else []),
            "services started; waiting for its gate", "gated"]
        assert said == expected, (node, said)
    assert _sizes(lab_dir) == dict.fromkeys(ROLLING_ORDER, NEW)
    after = _boot_marks(lc)
    for node in ROLLING_ORDER:   # really rebooted: a new sshd, /run cleared
        assert before[node][1] and not after[node][1] and after[node][0] != before[node][0], (before, after)
    total = stats["ok"] + stats["failed"]
    record("resize_roll_seconds", round(roll_seconds, 1))
    record("resize_roll_failed_of_total", f"{stats['failed']} of {total}")
    record("resize_roll_requests_while_rolling", stats["during_roll"])
    assert stats["during_roll"] >= MIN_DURING_ROLL, stats
    assert stats["failed"] == 0, stats["errors"]
    # the VIP is home again (misty-owl preempts), the provider says so, and nothing is pending
    assert eventually(lambda: lc.vip_holder() == ["misty-owl"], timeout=30)
    plan = json.loads(dynia(root, "plan", "--offline", "--cluster", "lab", "--json").stdout)
    assert not [n for n in plan["notices"] if n["kind"] == "resize"], plan["notices"]
    again = devlab(root, "up")
    assert again.returncode == 0 and "resize " not in again.stdout, again.stdout[-2000:]
