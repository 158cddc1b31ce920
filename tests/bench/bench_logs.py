"""`dynia logs` measured on real lab nodes; prints medians and ratios (issue 26).

    python tests/bench/bench_logs.py [--runs 7] [--lines 1000]

As root, with the lab tools (bash .ci/test). Brings the example lab cluster up with the
contributor lab (`python -m tests.devlab`) in a scratch copy of examples/ on a subnet of its
own, writes --lines lines into each node's `api` container log (to the container's PID 1's
standard output, as the app would), then runs the installed console script:

* `dynia logs api --tail 100` on all 3 nodes vs the same with `--node misty-owl` (1 node):
  one SSH round trip per node, in parallel; the ratio should stay ≤ 1.3;
* `dynia logs api -f --json --tail 0` following all 3 nodes while one line per node is written
  every 0.3 s: the delay from the time the container engine stamped each line (when the app
  wrote it) to the moment the follower printed it; the goal is under 1 s.

Not collected by pytest: timings belong in reports, not in assertions. The lab is always
brought down, also when a run fails.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench.bench_nodes import DYNIA, DevLab, median_wall, project_copy  # noqa: E402
from tests.lab.own_subnet import own_subnet  # noqa: E402


def _node_shell(described: dict, node: str) -> list[str]:
    """Enter a lab node as devlab describes it (its namespaces, not SSH: the writes are not timed)."""
    from dynia.nodes.lab import Lab

    lab = Lab.load(Path(described["lab_dir"]))
    return lab.enter_argv(lab.node(node))


def _write(described: dict, node: str, script: str) -> None:
    subprocess.run([*_node_shell(described, node), "sh", "-c", script], check=True, capture_output=True, timeout=60)


def _api_writer(lines: int, prefix: str) -> str:
    """A node script: `lines` lines into the api container's log, at once."""
    return ("c=$(podman ps -q --filter label=io.podman.compose.project=dynia-api) && "
            f"podman exec $c sh -c 'i=0; while [ $i -lt {lines} ]; do echo \"{prefix} line $i\"; i=$((i+1)); done "
            "> /proc/1/fd/1'")


def tail_timings(root: Path, runs: int) -> tuple[float, float]:
    base = [str(DYNIA), "-C", str(root), "logs", "api", "--tail", "100", "--cluster", "lab"]
    three, _ = median_wall(base, runs)
    one, _ = median_wall(base + ["--node", "misty-owl"], runs)
    return three, one


def follow_delays(root: Path, described: dict, rounds: int) -> list[float]:
    proc = subprocess.Popen([str(DYNIA), "-C", str(root), "logs", "api", "-f", "--json", "--tail", "0",
                             "--cluster", "lab"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[str, tuple[float, str]] = {}

    def read():
        for line in proc.stdout:
            event = json.loads(line)
            if "line" in event:
                seen[event["line"]] = (time.time(), event["time"])

    threading.Thread(target=read, daemon=True).start()
    nodes = ["misty-owl", "brave-panda", "calm-otter"]
    try:
        # Attached once a first marker shows up (the followers' channels are open).
        deadline = time.monotonic() + 60
        while "warm-up line 0" not in seen:
            if time.monotonic() > deadline:
                sys.exit("the follower printed nothing within 60 s: " + proc.stderr.read()[-500:])
            _write(described, nodes[0], _api_writer(1, "warm-up"))
            time.sleep(1.0)
        markers = []
        for i in range(rounds):
            node = nodes[i % 3]
            _write(described, node, _api_writer(1, f"delay-{i}"))
            markers.append(f"delay-{i} line 0")
            time.sleep(0.3)
        time.sleep(3)
    finally:
        proc.send_signal(2)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    from dynia.nodes.logs import split_time

    delays = []
    for m in markers:
        if m in seen:
            printed, stamped = seen[m]
            delays.append(printed - split_time(stamped + " x")[0] / 1e9)
    missing = [m for m in markers if m not in seen]
    if missing:
        print(f"  not printed within 3 s of the last write: {missing}")
    return delays


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--lines", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    runs = max(args.runs, 5)
    if os.geteuid() != 0:
        sys.exit("needs root (lab nodes): run as root with the lab tools (bash .ci/test installs them)")
    with tempfile.TemporaryDirectory(prefix="dynia-bench-logs-") as tmp:
        root = project_copy(Path(tmp) / "proj", None)
        with own_subnet(root / ".dynia" / "lab" / "lab", root) as subnet:
            print(f"lab on {subnet}: 3 nodes, {args.lines} lines in each node's api container")
            with DevLab(root) as described:
                for node in ("misty-owl", "brave-panda", "calm-otter"):
                    _write(described, node, _api_writer(args.lines, f"{node} bench"))
                three, one = tail_timings(root, runs)
                print(f"  dynia logs api --tail 100   3 nodes median {three * 1000:7.1f} ms")
                print(f"  dynia logs api --tail 100   1 node  median {one * 1000:7.1f} ms")
                print(f"  ratio 3 nodes / 1 node: {three / one:.2f} (goal ≤ 1.3)")
                delays = follow_delays(root, described, args.rounds)
                if delays:
                    print(f"  logs -f: line written → printed, {len(delays)} lines over 3 nodes: "
                          f"median {statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms "
                          "(goal < 1 s)")


if __name__ == "__main__":
    main()
