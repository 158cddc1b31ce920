"""Push a bundle to a node over SSH (the engine's pushes run the same command).

The apply script and its bundle go on the stdin of one constant command (payload.BOOTSTRAP):
nothing secret is ever on a command line, in an environment or in a log line.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

from .payload import BOOTSTRAP, Bundle
from ..errors import DyniaError
from .push_errors import host_key_error


@dataclass(frozen=True)
class Target:
    node: str
    host: str
    key: Path
    known_hosts: Path | None = None
    user: str = "root"
    connect_timeout: float = 10.0
    port: int = 22


@dataclass
class ApplyResult:
    node: str
    layer: str
    exit_status: int
    report: dict
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def reason(self) -> str:
        if self.report.get("reason"):
            return self.report["reason"]
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""


def client_auth(key: Path) -> dict:
    """asyncssh's key options: the key file when it is readable and clear (no agent, as before);
    the operator's ssh-agent when the file is passphrase-protected or missing."""
    from ..providers.base import private_key_encrypted, ssh_agent_socket

    try:
        clear = not private_key_encrypted(key.read_text())
    except (OSError, UnicodeDecodeError):
        clear = False
    agent = ssh_agent_socket()
    if clear or not agent:
        return {"client_keys": [str(key)], "agent_path": None}
    # ignore_encrypted: asyncssh skips the protected file instead of failing; the agent signs.
    return {"client_keys": [str(key)] if key.exists() else [], "ignore_encrypted": True, "agent_path": agent}


async def connect(target: Target, **options):
    """The pinned SSH connection to the target; `options`: more of asyncssh's (keepalives)."""
    import asyncssh

    from ..providers.base import ssh_agent_socket

    if not target.key.exists() and not ssh_agent_socket():
        # Not the node's fault: say so, instead of "cannot reach node".
        raise DyniaError("config", f"SSH key {target.key} does not exist",
                         "create it or point dynia at yours (context doctor shows which key is used), "
                         "or load your key into an ssh-agent (SSH_AUTH_SOCK)")
    try:
        auth = client_auth(target.key)
        return await asyncio.wait_for(asyncssh.connect(
            target.host, port=target.port, username=target.user, **auth,
            known_hosts=known_hosts_option(target), **options), target.connect_timeout)
    except asyncssh.HostKeyNotVerifiable as exc:
        raise host_key_error(target.node, target.host, str(exc), pinned=_pinned(target)) from None
    except asyncssh.KeyImportError as exc:
        raise DyniaError("config", f"SSH key {target.key} cannot be used: {exc}",
                         f"a passphrase-protected key needs an ssh-agent: eval \"$(ssh-agent)\" && ssh-add {target.key}"
                         ) from None
    except (OSError, asyncio.TimeoutError, asyncssh.Error) as exc:
        raise DyniaError("network", f"cannot reach node {target.node} at {target.host}: "
                         f"{exc.__class__.__name__}: {exc}".rstrip(": "),
                         "check that the node is up and reachable over SSH (dynia status)") from None


def known_hosts_option(target: Target):
    """asyncssh's known_hosts for the target: its pinned keys. A known_hosts path that does not
    exist (no provision has recorded keys yet) trusts no key, never every key; None is kept only
    for a target made without one (a caller that pins nothing by design must say so)."""
    import asyncssh

    if target.known_hosts is None:
        return None
    if not Path(target.known_hosts).exists():
        return asyncssh.import_known_hosts("")
    return str(target.known_hosts)


def _pinned(target: Target) -> bool:
    """Whether the target's known_hosts has any line for its host (port 22 or [host]:port)."""
    try:
        lines = Path(target.known_hosts).read_text().splitlines() if target.known_hosts else []
    except OSError:
        return False
    names = {target.host, f"[{target.host}]:{target.port}"}
    return any(names & set(line.split()[0].split(",")) for line in lines if line.strip())


def fingerprint(public_key: str) -> str:
    """SHA256:… of an OpenSSH public key, as `ssh-keygen -l` prints it."""
    import base64
    import hashlib

    blob = base64.b64decode(public_key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def server_host_key(target: Target, timeout: float = 10.0) -> str:
    """The ed25519 host key the node presents ("ssh-ed25519 AAAA…"), read without logging in:
    only for pinning a node on first use (Engine.pin_first_use), never to trust a connection."""
    import asyncssh

    async def main():
        return await asyncio.wait_for(asyncssh.get_server_host_key(
            target.host, target.port, server_host_key_algs=["ssh-ed25519"]), timeout)

    try:
        key = asyncio.run(main())
    except (OSError, asyncio.TimeoutError, asyncssh.Error) as exc:
        raise DyniaError("network", f"cannot read the SSH host key of node {target.node} at {target.host}: "
                         f"{exc.__class__.__name__}: {exc}".rstrip(": "),
                         "bring the node up (its sshd must answer), then rerun") from None
    if key is None:
        raise DyniaError("network", f"node {target.node} at {target.host} presented no ed25519 host key",
                         "check its sshd (HostKey /etc/ssh/ssh_host_ed25519_key), then rerun")
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


async def push_async(target: Target, bundle: Bundle, timeout: float = 600) -> ApplyResult:
    import asyncssh

    started = time.monotonic()
    conn = await connect(target)
    try:
        proc = await asyncio.wait_for(conn.run(BOOTSTRAP, input=bundle.payload(), encoding=None, check=False),
                                      timeout)
    except (asyncio.TimeoutError, asyncssh.Error, OSError) as exc:
        raise _lost(target, f"the push of {bundle.layer}", timeout, exc) from None
    finally:
        conn.close()
    out = (proc.stdout or b"").decode(errors="replace")
    err = (proc.stderr or b"").decode(errors="replace")
    try:
        report = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    except ValueError:
        report = {"reason": out.strip()[-300:]}
    status = proc.exit_status if proc.exit_status is not None else 255
    return ApplyResult(target.node, bundle.layer, status, report, err, time.monotonic() - started)


def push(target: Target, bundle: Bundle, timeout: float = 600) -> ApplyResult:
    return asyncio.run(push_async(target, bundle, timeout))


def _lost(target: Target, what: str, timeout: float, exc: Exception) -> DyniaError:
    """A connection that broke, or a command that outlived its timeout, mid-way: typed."""
    why = (f"did not finish in {timeout:.0f} s" if isinstance(exc, asyncio.TimeoutError)
           else f"lost the connection ({exc.__class__.__name__}: {exc})".rstrip(": )") + ")")
    return DyniaError("network", f"node {target.node}: {what} {why}", "check the node (dynia status) and retry")


async def run_async(target: Target, command: str, timeout: float = 60) -> tuple[int, str, str]:
    """One node command (from dynia.nodes.commands, never secret): (exit status, stdout, stderr)."""
    import asyncssh

    conn = await connect(target)
    try:
        proc = await asyncio.wait_for(conn.run(command, check=False), timeout)
    except (asyncio.TimeoutError, asyncssh.Error, OSError) as exc:
        raise _lost(target, f"`{command}`", timeout, exc) from None
    finally:
        conn.close()
    status = proc.exit_status if proc.exit_status is not None else 255
    return status, str(proc.stdout or ""), str(proc.stderr or "")


def run(target: Target, command: str, timeout: float = 60) -> tuple[int, str, str]:
    return asyncio.run(run_async(target, command, timeout))
