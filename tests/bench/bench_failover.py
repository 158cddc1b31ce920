"""How fast a keepalived crash on the VRRP MASTER moves the VIP, on real lab nodes; prints each
round, the median and the goal.

    python tests/bench/bench_failover.py [--runs 5]

As root, with the lab tools (bash .ci/test installs them). Brings up the example lab cluster
(three nodes on a subnet of their own, as the suite's labs do), rolls every layer out, then
crashes the MASTER's keepalived --runs times (tests/lab/failover_round.py: the same round
tests/lab/test_failover.py asserts), timing the kill → the VIP answering on the backup. The
goal is 1.1 × the RFC 5798 master-down interval (3 × advert + skew, skew = (256 - priority) /
256 × advert) of the highest backup. Not collected by pytest: timings belong in reports, not
in assertions (a loaded machine slows the lab, not dynia). The lab is always brought down.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

ADVERT_INT = 1.0
BACKUP_PRIORITY = 100  # the highest backup of examples/clusters/lab.yaml: brave-panda
GOAL = 1.1 * (3 * ADVERT_INT + (256 - BACKUP_PRIORITY) / 256 * ADVERT_INT)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    runs = max(args.runs, 3)
    if os.geteuid() != 0:
        sys.exit("lab nodes need root: run as root")
    from tests.lab.conftest import _lab, roll_out
    from tests.lab.failover_round import failover_round

    print(f"this machine: {os.cpu_count()} CPUs for every lab node")
    with tempfile.TemporaryDirectory(prefix="dynia-bench-failover-") as tmp, _lab(Path(tmp)) as lc:
        roll_out(lc)
        seconds = []
        for i in range(runs):
            seconds.append(failover_round(lc))
            print(f"  round {i + 1}: VIP on the backup {seconds[-1]:.2f} s after the crash")
    median = statistics.median(seconds)
    print(f"failover after a keepalived crash: median of {runs} {median:.2f} s, "
          f"goal ≤ {GOAL:.2f} s (1.1 × the master-down interval): {'met' if median <= GOAL else 'NOT met'}")


if __name__ == "__main__":
    main()
