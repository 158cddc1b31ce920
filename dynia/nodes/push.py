"""Push a bundle to a node over SSH (the engine's pushes run the same command).

The apply script and its bundle go on the stdin of one constant command (bundle.BOOTSTRAP):
nothing secret is ever on a command line, in an environment or in a log line.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..bundle import BOOTSTRAP, Bundle
from ..errors import DyniaError


@dataclass(frozen=True)
class Target:
    node: str
    host: str
    key: Path
    known_hosts: Path | None = None
    user: str = "root"
    connect_timeout: float = 10.0


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


async def connect(target: Target):
    import asyncssh

    try:
        return await asyncio.wait_for(asyncssh.connect(
            target.host, username=target.user, client_keys=[str(target.key)],
            known_hosts=str(target.known_hosts) if target.known_hosts else None), target.connect_timeout)
    except (OSError, asyncio.TimeoutError, asyncssh.Error) as exc:
        raise DyniaError("network", f"cannot reach node {target.node} at {target.host}: "
                         f"{exc.__class__.__name__}: {exc}".rstrip(": "),
                         "check that the node is up and reachable over SSH (dynia status)") from None


async def push_async(target: Target, bundle: Bundle, timeout: float = 600) -> ApplyResult:
    started = time.monotonic()
    conn = await connect(target)
    try:
        proc = await asyncio.wait_for(conn.run(BOOTSTRAP, input=bundle.payload(), encoding=None, check=False),
                                      timeout)
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
