"""Facts from every node at once: one SSH round trip per node, capped parallelism, a timeout
per node. An unreachable node is an answer (its error), never an exception."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ..errors import DyniaError
from . import answers as A
from . import facts as F
from . import vip
from .push import Target, connect

PARALLEL = 8


@dataclass
class NodeFacts:
    node: str
    facts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # why this node did not answer
    # fact → why its output was not read (dynia.nodes.answers.Unreadable); such a fact is not in
    # `facts`: what reads them sees no answer, and the node's row says why.
    unreadable: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in list(self.facts.items()):
            if isinstance(value, A.Unreadable):
                self.unreadable[name] = str(value)
                del self.facts[name]


async def _gather_one(target: Target, wanted: list[F.Fact], sem: asyncio.Semaphore, timeout: float,
                      refused: str | None = None) -> NodeFacts:
    import asyncssh

    if refused is not None:
        return NodeFacts(target.node, error=refused)
    async with sem:
        try:
            conn = await connect(replace(target, connect_timeout=timeout))
        except DyniaError as exc:
            # A refused host key is not "down": the row says what to do about it.
            pinned_problem = exc.kind == "network" and "host key" in exc.message
            return NodeFacts(target.node, error=f"{exc.message}; {exc.hint}" if pinned_problem else exc.message)
        try:
            async with asyncio.timeout(timeout):
                r = await conn.run(F.script(wanted), check=False)
            try:
                return NodeFacts(target.node, F.parse(wanted, r.stdout or ""))
            except Exception as exc:  # noqa: BLE001 — a garbage answer is this node's row, never a crash
                return NodeFacts(target.node, error=f"its answer could not be read ({exc.__class__.__name__})")
        except (OSError, asyncio.TimeoutError, asyncssh.Error) as exc:
            return NodeFacts(target.node, error=f"{exc.__class__.__name__}: {exc}".rstrip(": "))
        finally:
            conn.close()


def gather(targets: list[Target], wanted: list[F.Fact] | Callable[[Target], list[F.Fact]],
           timeout: float = 5.0, refused: dict[str, str] | None = None) -> dict[str, NodeFacts]:
    """wanted: the facts for every node, or a function target → that node's facts (a fact may
    depend on the node, e.g. Caddy's health on its own private address). refused: node → why
    it is not connected to (dynia.engine.session.unpinned: no host key to verify it with), its row."""
    per_node = wanted if callable(wanted) else (lambda target: wanted)
    refused = refused or {}

    async def main():
        sem = asyncio.Semaphore(PARALLEL)
        return await asyncio.gather(*(_gather_one(t, per_node(t), sem, timeout, refused.get(t.node))
                                      for t in targets))

    return {nf.node: nf for nf in asyncio.run(main())}


def vip_holder(targets: list[Target]) -> str | None:
    """The node whose keepalived last reported MASTER (notify.sh), read live; None if unknown
    (no answer, or more than one MASTER: then the configured MASTER is assumed to hold it)."""
    return holder_of(gather(targets, [F.VRRP]))


def holder_of(answers: dict[str, NodeFacts]) -> str | None:
    """vip_holder, from answers that include the vrrp fact."""
    return vip.sole_master({n: (a.facts.get("vrrp") or {}).get("role") for n, a in answers.items()})
