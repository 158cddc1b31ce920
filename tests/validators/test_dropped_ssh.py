"""A node whose firewall drops this machine's SSH answers nothing: `up` must stop within a
bound, before any push, with the way back, instead of each push dialling for minutes. Run for
real in a fresh network namespace (`unshare -n`) where an nftables rule drops port 22, as a
node's `inet dynia` table does for an address outside firewall.admin_ranges."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.root

PROBE = r"""
import json, sys, time
from pathlib import Path
from dynia.errors import DyniaError
from dynia.render.lockout import require_answers
from dynia.nodes.push import Target
t = Target("misty-owl", "127.0.0.1", Path("/nonexistent"), port=int(sys.argv[1]))
started = time.monotonic()
try:
    require_answers([t, Target("brave-panda", "127.0.0.1", Path("/nonexistent"), port=9)], {"misty-owl", "brave-panda"})
    out = {"error": None}
except DyniaError as exc:
    out = {"kind": exc.kind, "message": exc.message, "hint": exc.hint}
out["seconds"] = time.monotonic() - started
print(json.dumps(out))
"""


def _in_netns(rules: str) -> dict:
    if not shutil.which("nft") or not shutil.which("unshare"):
        pytest.fail("needs root, nft and unshare: run .ci/test (README)")
    script = ("ip link set lo up; " + rules +
              f"{sys.executable} -c '{PROBE}' 22")
    proc = subprocess.run(["unshare", "-n", "sh", "-ec", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_node_whose_firewall_drops_ssh_fails_within_the_bound_naming_it_with_the_way_back():
    from dynia.render.lockout import PROBE_SECONDS

    out = _in_netns("nft add table inet dynia; "
                    "nft add chain inet dynia input '{ type filter hook input priority 0; policy accept; }'; "
                    "nft add rule inet dynia input tcp dport 22 drop; ")
    assert out["kind"] == "network"
    # Only the silent node: the other one refuses (a closed port answers), which is not a lock-out.
    assert out["message"].startswith("misty-owl (127.0.0.1:22): no answer to SSH within 10 s")
    assert "brave-panda" not in out["message"]
    assert "nft delete table inet dynia" in out["hint"] and "firewall.admin_ranges" in out["hint"]
    assert PROBE_SECONDS - 0.5 <= out["seconds"] <= PROBE_SECONDS + 3


def test_a_node_that_answers_or_refuses_is_not_held_up():
    out = _in_netns("")   # nothing listens on 22: refused at once
    assert out["error"] is None and out["seconds"] < 2
