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
# The command provider's Go SSH client (FixedHostKey) says "ssh: host key mismatch".
_HOST_KEY = re.compile(r"host key mismatch|host key is not trusted|hostkeynotverifiable", re.I)
_UNREACHABLE = re.compile(r"dial|connect|unreachable|timed out|no route|refused|handshake", re.I)
# templates/node/apply.py's pull_failure, when the registry asked for credentials or refused them.
_REGISTRY_REFUSED = re.compile(r"registry (?P<server>\S+) refused the pull")
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
        refused = _REGISTRY_REFUSED.search(reason)
        if refused:
            server = refused.group("server")
            return DyniaError("config", f"node {node}, {layer}: {what}: {reason}",
                              f"list {server} under `registries:` in the spec (server, user, token_env) with a "
                              "token that may read the image, or check the one there; earlier nodes keep the "
                              "new config, later nodes were not touched", resume)
        return DyniaError(kind, f"node {node}, {layer}: {what}: {reason}",
                          "fix the cause on that node or in the spec; earlier nodes keep the new config, "
                          "later nodes were not touched", resume)
    if _HOST_KEY.search(message):
        error = host_key_error(node, None, reason)
        return DyniaError(error.kind, error.message, error.hint, resume)
    if exit_status is None or _UNREACHABLE.search(message):
        return DyniaError("network", f"node {node} is unreachable over SSH ({reason})",
                          "bring the node back (or check its firewall), then resume; later nodes were not touched",
                          resume)
    return DyniaError("sync", f"node {node}, {layer}: push failed (exit {exit_status}): {reason}",
                      "--debug prints the node's full output and logs it", resume)


def host_key_error(node: str, host: str | None, detail: str, pinned: bool = True) -> DyniaError:
    """A node that presented an SSH host key other than the one pinned for it (or none is
    pinned): never connected to anyway, because whoever answers would get the push's secrets."""
    where = f" at {host}" if host else ""
    if not pinned:
        return DyniaError("network", f"no SSH host key is pinned for node {node}{where}: dynia did not connect",
                          "run `dynia up --phase provision`: it records every node's host key from the state "
                          "(nodes made before keys were pinned: it says how to pin them once)")
    return DyniaError("network", f"node {node}{where} presented an SSH host key that is not the one pinned for it "
                      f"({detail.strip()[:200]}); dynia did not connect",
                      "if the node was rebuilt or its address now belongs to another machine, check it on the "
                      "provider's console and run `dynia up --phase provision` (it records the keys of the nodes "
                      "in the state); otherwise someone may be intercepting the connection: do not continue")


# How a Pulumi program run by the engine hands a typed error back: the Automation API keeps
# only the program's log (diagnostics), never the exception object.
_TYPED = re.compile(r"^dynia (?P<kind>[a-z]+) error: (?P<message>.*?)\n  hint: (?P<hint>.*)$", re.S)


def log_typed(error: DyniaError, resource=None) -> None:
    """Log a DyniaError as an error diagnostic the engine reads back (typed_diagnostic)."""
    import pulumi

    pulumi.log.error(f"dynia {error.kind} error: {error.message}\n  hint: {error.hint}", resource=resource)


def typed_diagnostic(message: str, resume: str | None = None) -> DyniaError | None:
    """The DyniaError a program logged with log_typed, or None for any other diagnostic."""
    from ..errors import EXIT_CODES

    m = _TYPED.match((message or "").strip())
    if not m or m.group("kind") not in EXIT_CODES:
        return None
    return DyniaError(m.group("kind"), m.group("message").strip(), m.group("hint").strip(), resume)
