"""Push bundles to nodes over SSH and roll them node by node.

The apply script and its bundle go on the stdin of one constant command (bundle.BOOTSTRAP):
nothing secret is ever on a command line, in an environment or in a log line.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..bundle import BOOTSTRAP, Bundle, layer_order
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


@dataclass
class RollResult:
    results: list[ApplyResult] = field(default_factory=list)
    stopped_at: str | None = None
    untouched: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.stopped_at is None

    def failure(self) -> ApplyResult | None:
        return next((r for r in self.results if not r.ok), None)


def roll(targets: list[Target], bundles: dict[str, dict[str, Bundle]], layers: list[str] | None = None) -> RollResult:
    """Apply node after node (targets are already in rolling order); the first failure stops the roll.

    bundles: node -> layer -> Bundle. layers: which layers to push (default: all, infra first).
    """
    out = RollResult()
    for i, target in enumerate(targets):
        node_bundles = bundles[target.node]
        for layer in (layers or layer_order(node_bundles)):
            if layer not in node_bundles:
                continue
            try:
                result = push(target, node_bundles[layer])
            except DyniaError as exc:
                result = ApplyResult(target.node, layer, 255, {"reason": exc.message}, exc.message, 0.0)
            out.results.append(result)
            if not result.ok:
                out.stopped_at = target.node
                out.untouched = [t.node for t in targets[i + 1:]]
                return out
    return out
