"""HTTP-01 key authorizations on every node, over SSH (tls.mode letsencrypt).

Every node gets every answer: the CA's request reaches whichever node holds the VIP, and
that may change between publish and validation (a failover). The holder must take them; the
others are best effort (one node down must not block every order). One SSH round trip per node, in
parallel, each with a timeout; the commands come from dynia.nodes.commands (the answers go
on stdin, the command stays constant).
"""
from __future__ import annotations

import asyncio
import re

from ..errors import DyniaError
from . import commands
from .gather import PARALLEL
from .push import Target, connect

TIMEOUT = 20.0
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_KEY_AUTHORIZATION = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


async def _run_one(target: Target, command: str, stdin: str | None, sem: asyncio.Semaphore,
                   timeout: float) -> tuple[str, str | None]:
    """(node, None) when the command exited 0, else (node, why)."""
    import asyncssh

    async with sem:
        try:
            conn = await connect(target)
        except DyniaError as exc:
            return target.node, exc.message
        try:
            r = await asyncio.wait_for(conn.run(command, input=stdin, check=False), timeout)
        except (OSError, asyncio.TimeoutError, asyncssh.Error) as exc:
            return target.node, f"{exc.__class__.__name__}: {exc}".rstrip(": ")
        finally:
            conn.close()
        if r.exit_status == 0:
            return target.node, None
        lines = str(r.stderr or "").strip().splitlines()
        return target.node, f"exit {r.exit_status}: {lines[-1] if lines else 'no message'}"


def _run_all(targets: list[Target], command: str, stdin: str | None, timeout: float) -> dict[str, str]:
    async def main():
        sem = asyncio.Semaphore(PARALLEL)
        return await asyncio.gather(*(_run_one(t, command, stdin, sem, timeout) for t in targets))

    return {node: why for node, why in asyncio.run(main()) if why is not None}


def publish(targets: list[Target], answers: dict[str, str], holder: str | None,
            timeout: float = TIMEOUT) -> dict[str, str]:
    """Write every {token: key authorization} on every node (0644 under PATHS.acme_challenge_dir).

    The VIP holder (`holder`, read live: dynia.nodes.gather.vip_holder) receives the CA's
    requests, so it must take them: unknown, not among the targets or failing, that is a `cert`
    error and nothing is ordered. The other nodes are best effort — they matter only if the VIP
    moves during validation, and one node down must not block every order: {node: why} of
    those that did not take them, for the caller to warn about."""
    for token, value in answers.items():
        if not (_TOKEN.fullmatch(token) and _KEY_AUTHORIZATION.fullmatch(value) and value.startswith(token + ".")):
            raise DyniaError("cert", "the ACME server sent a malformed challenge", "check tls.acme_directory")
    if holder is None or holder not in {t.node for t in targets}:
        raise DyniaError("cert", "the ACME challenge needs the node holding the reserved IP (the CA reaches it), "
                         "and which node holds it is unknown" + (f" ({holder} is not provisioned)" if holder else ""),
                         "check keepalived on every node with `dynia status` (exactly one MASTER); nothing was "
                         "ordered or pushed")
    stdin = "".join(f"{t} {v}\n" for t, v in answers.items())
    failed = _run_all(targets, commands.acme_publish(), stdin, timeout)
    if holder in failed:
        raise DyniaError("cert", f"the ACME challenge could not be placed on {holder}, the node holding the "
                         f"reserved IP ({failed[holder]})",
                         "the CA validates through it: check it with `dynia status`; nothing was ordered or pushed")
    return failed


def withdraw(targets: list[Target], tokens: list[str], timeout: float = TIMEOUT) -> dict[str, str]:
    """Remove the answers from every node. Best effort (the order's outcome matters more than
    a stale token file, which answers nothing once the CA is done): {node: why} of failures."""
    tokens = [t for t in tokens if _TOKEN.fullmatch(t)]
    if not tokens:
        return {}
    return _run_all(targets, commands.acme_withdraw(tokens), None, timeout)
