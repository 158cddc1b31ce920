"""notify.sh's assign_reserved_ip, executed: transport failures are retried like a pending
action, and a node that stopped being MASTER while it waited never takes the reserved IP.
curl and sleep are stand-ins on PATH that log what they were asked; the function is the one
rendered for a droplet node."""
from __future__ import annotations

import os
import re
import subprocess

import pytest

from dynia.nodes import facts as F
from dynia.paths import PATHS
from dynia.render.rendered import render_cluster
from dynia.state.store import Project
from dynia.spec.load import load_cluster

FAKE_CURL = """#!/bin/sh
# metadata: the droplet id; API: the next code from $ANSWERS (one per line), written as -w would
case "$*" in
  *169.254.169.254*) echo 1001; exit 0 ;;
esac
echo api >> "$CALLS"
code=$(head -n1 "$ANSWERS"); sed -i 1d "$ANSWERS"
# a test hook: what happens on the node while this call is in flight
[ -n "${DURING:-}" ] && sh -c "$DURING"
printf '%s' "$code"
[ "$code" = 000 ] && exit 7
exit 0
"""


@pytest.fixture
def assign(project, tmp_path):
    rendering = render_cluster(load_cluster(Project(project), "shop"))
    notify = next(f for f in rendering.files["misty-owl"] if f.target == PATHS.notify).content.decode()
    function = "".join(re.search(rf"^{name}\(\) \{{.*?^\}}\n", notify, re.S | re.M).group(0)
                       for name in ("record_assignment", "assign_reserved_ip"))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "curl").write_text(FAKE_CURL)
    (bindir / "sleep").write_text("#!/bin/sh\necho \"$1\" >> \"$SLEEPS\"\n")
    for tool in ("curl", "sleep"):
        (bindir / tool).chmod(0o755)
    token = tmp_path / "token"
    token.write_text("dop_v1_secret\n")
    state = tmp_path / "state"
    state.mkdir()
    script = tmp_path / "assign.sh"
    script.write_text(f"set -u\ndir={state}\n" + function.replace(PATHS.provider_token, str(token))
                      + "assign_reserved_ip\n")

    def run(answers: list[str], *, during: str = "", role: str = "MASTER"):
        (state / "vrrp").write_text(f"{role} 2026-01-01T00:00:00Z\n")
        (tmp_path / "answers").write_text("".join(a + "\n" for a in answers))
        for f in ("calls", "sleeps"):
            (tmp_path / f).write_text("")
        env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "ANSWERS": str(tmp_path / "answers"),
               "CALLS": str(tmp_path / "calls"), "SLEEPS": str(tmp_path / "sleeps"),
               "DURING": during.replace("$STATE", str(state))}
        proc = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=30)
        calls = len((tmp_path / "calls").read_text().split())
        return proc.returncode, calls, (tmp_path / "sleeps").read_text().split(), proc.stderr

    run.state = state
    return run


def recorded(assign) -> dict | None:
    """The last assignment's record, read back through the fact dynia reads it with."""
    record = assign.state / "reserved-ip.json"
    if not record.exists():
        return None
    return F.RESERVED_IP.process(record.read_text(), 0)


def test_a_transport_failure_is_retried_with_backoff_like_a_pending_action(assign):
    code, calls, sleeps, _ = assign(["000", "422", "000", "201"])
    assert (code, calls, sleeps) == (0, 4, ["1", "2", "4"])


def test_a_node_that_became_backup_while_waiting_never_takes_the_address(assign):
    code, calls, sleeps, err = assign(["422", "201"], during="echo 'BACKUP now' > $STATE/vrrp")
    assert (code, calls) == (0, 1)  # the retry never happened
    assert "no longer MASTER (BACKUP)" in err


def test_a_node_that_is_not_master_at_all_makes_no_call(assign):
    code, calls, _, _ = assign(["201"], role="BACKUP")
    assert (code, calls) == (0, 0)


def test_a_refusal_is_not_retried_and_the_token_stays_off_the_command_line(assign):
    code, calls, sleeps, err = assign(["403"])
    assert (code, calls, sleeps) == (1, 1, [])
    assert "answered 403" in err and "dop_v1_secret" not in err


def test_giving_up_says_how_often_it_tried(assign):
    code, calls, _, err = assign(["503"] * 8)
    assert (code, calls) == (1, 8) and "not assigned after 8 tries (last answer 503)" in err


def _without_time(record: dict) -> dict:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record.pop("time"))
    return record


def test_a_refused_assignment_is_recorded_with_its_status_and_the_droplet_it_asked_for(assign):
    assign(["403"])
    assert _without_time(recorded(assign)) == {"outcome": "refused", "status": "403", "droplet": "1001"}


def test_an_assignment_that_succeeded_is_recorded_and_replaces_an_earlier_refusal(assign):
    assign(["401"])
    assign(["422", "201"])
    assert _without_time(recorded(assign)) == {"outcome": "assigned", "status": "201", "droplet": "1001"}


def test_giving_up_is_recorded_with_the_last_answer(assign):
    assign(["503"] * 8)
    assert _without_time(recorded(assign)) == {"outcome": "gave-up", "status": "503", "droplet": "1001"}


def test_a_node_that_is_not_master_records_no_assignment(assign):
    assign(["201"], role="BACKUP")
    assert recorded(assign) is None
