"""Facts are a command plus a parser: each parser checked against recorded output in
tests/facts/<fact>/*.json, and the one-round-trip script run for real under sh."""
from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from dynia.nodes import facts as F

FIXTURES = Path(__file__).resolve().parents[1] / "facts"
CASES = sorted(FIXTURES.glob("*/*.json"))


def test_every_fact_has_recorded_output():
    assert {p.parent.name for p in CASES} == set(F.FACTS)


@pytest.mark.parametrize("case", CASES, ids=[f"{p.parent.name}-{p.stem}" for p in CASES])
def test_fact_parses_its_recorded_output(case):
    data = json.loads(case.read_text())
    fact = F.FACTS[case.parent.name]
    assert fact.command == data["command"]
    assert fact.process(data["output"], data["exit_status"]) == data["fact"]


def test_one_script_frames_every_fact_and_keeps_each_exit_status(tmp_path):
    (tmp_path / "vrrp").write_text("BACKUP 2026-11-28T02:10:38Z\n")
    (tmp_path / "applied.json").write_text('{"configVersion": 2}')  # no trailing newline
    wanted = [dataclasses.replace(F.VRRP, command=f"cat {tmp_path}/vrrp"),
              dataclasses.replace(F.APPLIED, command=f"cat {tmp_path}/applied.json"),
              dataclasses.replace(F.DEGRADED, command=f"cat {tmp_path}/degraded")]  # absent
    out = subprocess.run(["sh", "-c", F.script(wanted)], capture_output=True, text=True, check=True).stdout
    assert F.parse(wanted, out) == {"vrrp": {"role": "BACKUP", "since": "2026-11-28T02:10:38Z"},
                                    "applied": {"configVersion": 2}, "degraded": None}


def test_fact_commands_only_read():
    for fact in F.FACTS.values():
        assert fact.command.startswith("cat /opt/dynia/state/")
