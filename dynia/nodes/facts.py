"""Facts: what dynia reads back from a node, each a command plus a parser (pyinfra's model).

A fact's command is constant, secret-free and read-only; its `process` turns the recorded
output of that command into data, and is tested on recorded output in tests/facts/<fact>/.
Status, drift-check and the rolling order are assembled from facts, never from ad-hoc SSH.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from ..paths import PATHS

VRRP_ROLES = ("MASTER", "BACKUP", "FAULT", "STOP")


@dataclass(frozen=True)
class Fact:
    name: str
    command: str
    parser: Callable[[str, int], Any]

    def process(self, output: str, exit_status: int) -> Any:
        return self.parser(output, exit_status)


def vrrp_role(output: str, exit_status: int) -> dict | None:
    """notify.sh's record of the node's VRRP state: {"role", "since"}, None when never written."""
    words = output.split()
    if exit_status != 0 or not words or words[0] not in VRRP_ROLES:
        return None
    return {"role": words[0], "since": words[1] if len(words) > 1 else None}


def json_state(output: str, exit_status: int) -> dict | None:
    """A JSON state file of the apply script: dict, None if absent; unreadable content is
    reported, never trusted: {"unreadable": reason}."""
    if exit_status != 0:
        return None
    try:
        data = json.loads(output)
    except ValueError:
        return {"unreadable": "not JSON"}
    return data if isinstance(data, dict) else {"unreadable": f"a JSON {type(data).__name__}"}


VRRP = Fact("vrrp", f"cat {PATHS.state('vrrp')}", vrrp_role)
APPLIED = Fact("applied", f"cat {PATHS.state('applied.json')}", json_state)
DEGRADED = Fact("degraded", f"cat {PATHS.state('degraded')}", json_state)
FACTS = {f.name: f for f in (VRRP, APPLIED, DEGRADED)}

# Markers between facts in one round trip; a fact's output cannot contain a line that starts
# with this (the files read are dynia's own and hold no such line).
MARK = "::dynia-fact"


def script(facts: list[Fact]) -> str:
    """One shell script that runs every fact and frames each output with its exit status."""
    parts = []
    for f in facts:
        # The extra echo ends a last line that has no newline; parse() removes it again.
        parts.append(f"echo '{MARK} {f.name}'; {f.command} 2>/dev/null; rc=$?; echo; echo \"{MARK}-rc $rc\"")
    return "; ".join(parts)


def parse(facts: list[Fact], output: str) -> dict[str, Any]:
    """Split the script's output back into facts and process each."""
    by_name = {f.name: f for f in facts}
    results: dict[str, Any] = {}
    name, lines = None, []
    for line in output.split("\n"):
        if line.startswith(MARK + "-rc ") and name is not None:
            body = "\n".join(lines[:-1] if lines and lines[-1] == "" else lines)
            rc = line.split()[-1]
            results[name] = by_name[name].process(body, int(rc) if rc.isdigit() else 1)
            name, lines = None, []
        elif line.startswith(MARK + " "):
            name, lines = line.split(" ", 1)[1], []
            if name not in by_name:
                name = None
        elif name is not None:
            lines.append(line)
    return results
