"""Turning a failed push into the operator's answer: a typed error naming the node, the
reason, and the command that resumes the roll. Used by the engine and its test double."""
from __future__ import annotations

import re

from ..errors import DyniaError
from ..phases import phase_of

# Exit codes of templates/node/apply.py
APPLY_EXIT = {10: ("sync", "the bundle was refused"), 20: ("sync", "the node's validator rejected the config"),
              30: ("health", "the health gate failed; the node was rolled back"),
              40: ("sync", "the apply failed; the node's files were restored")}
_UNREACHABLE = re.compile(r"dial|connect|unreachable|timed out|no route|refused|handshake", re.I)
_PUSH = re.compile(r"^(?P<node>[a-z]+-[a-z]+)-(?P<layer>infra|service-[a-z0-9-]+)-push$")


def push_error(resource: str, message: str, exit_status: int | None, cluster: str) -> DyniaError:
    """The typed error for the push resource `<node>-<layer>-push` that failed."""
    m = _PUSH.match(resource)
    node, layer = (m.group("node"), m.group("layer")) if m else (resource, "infra")
    layer = layer.replace("service-", "service:", 1)
    resume = f"dynia up --phase {phase_of(layer)} --cluster {cluster}"
    reason = message.strip().splitlines()[-1] if message.strip() else "no output"
    if exit_status in APPLY_EXIT:
        kind, what = APPLY_EXIT[exit_status]
        return DyniaError(kind, f"node {node}, {layer}: {what}: {reason}",
                          "fix the cause on that node or in the spec; earlier nodes keep the new config, "
                          "later nodes were not touched", resume)
    if exit_status is None or _UNREACHABLE.search(message):
        return DyniaError("network", f"node {node} is unreachable over SSH ({reason})",
                          "bring the node back (or check its firewall), then resume; later nodes were not touched",
                          resume)
    return DyniaError("sync", f"node {node}, {layer}: push failed (exit {exit_status}): {reason}",
                      "rerun with --debug for the node's full output", resume)
