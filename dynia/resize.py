"""Safe resizes: dynia's own roll, never the provider's hard power-off.

A size change on DigitalOcean powers a droplet off; Pulumi's resize path did that to each
droplet and moved on as soon as the VM was `active`, before its services answered. The
provision stack ignores `size` on existing droplets (components.cluster_node.IGNORED); after
the provision phase, `up` rolls each droplet whose live size is not the spec's, one node at a
time in rolling order (backups first, the VIP holder last):

  VIP moved away (the holder only: its keepalived stopped, another node MASTER) → drained
  (every routed service's drain marker: every HAProxy marks this node's servers down) →
  graceful shutdown (power_off only if it is not off in time) → resize → power on → its
  services started (a container engine restarts no container without a restart policy) →
  the node's gate (its infra and service health checks pass) → the next node.

The provision state then records the new sizes (a refresh)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol

from .errors import DyniaError

STEPS = ("VIP moved away (holder only), drained, shut down, resized, powered on, services started, gated; "
         "one node at a time")
GATE_SECONDS = 900.0   # a resized droplet's boot, cloud's own checks and the node's services
GATE_POLL = 3.0


@dataclass(frozen=True)
class Resize:
    node: str
    droplet_id: str
    old: str
    new: str


class Power(Protocol):
    def size_of(self, droplet_id: str) -> str | None: ...
    def shut_down(self, droplet_id: str) -> str: ...
    def resize(self, droplet_id: str, size: str) -> None: ...
    def power_on(self, droplet_id: str) -> None: ...


class NodeSteps(Protocol):
    def vip_away(self, node: str) -> None: ...
    def drain(self, node: str) -> None: ...
    def start(self, node: str) -> None: ...     # once it answers after power on: its services
    def gate(self, node: str) -> None: ...
    def restore(self, node: str) -> None: ...   # undo vip_away and drain (a node never powered off)


def planned(spec, recorded: dict[str, str | None]) -> list[tuple[str, str, str]]:
    """(node, recorded size, spec size) for every node whose recorded size (provision's output,
    cached) is not the spec's: what `plan` says dynia's roll will resize."""
    out = []
    for n in spec.nodes:
        old = recorded.get(n)
        if old and old != spec.provider.size:
            out.append((n, old, spec.provider.size))
    return out


def notices(spec, recorded: dict[str, str | None]) -> list[dict]:
    """The plan's notices (dynia.plan.report NOTICE_LABELS "resize"), one per node to resize."""
    return [{"kind": "resize", "text": f"{node} {old} → {new} by dynia's roll ({STEPS}), after the provision phase"}
            for node, old, new in planned(spec, recorded)]


def pending(order: list[str], droplet_ids: dict[str, str], size: str, power: Power) -> list[Resize]:
    """The nodes, in rolling order, whose live size (the provider's answer) is not `size`."""
    out = []
    for node in order:
        if node not in droplet_ids:
            continue   # created by this run at the spec's size
        live = power.size_of(droplet_ids[node])
        if live and live != size:
            out.append(Resize(node, droplet_ids[node], live, size))
    return out


def roll(resizes: list[Resize], holder: str | None, power: Power, steps: NodeSteps,
         say: Callable[[str], None] = lambda line: None) -> list[str]:
    """Resize each node in turn; a failure stops the roll (later nodes untouched). Returns the
    nodes resized."""
    done: list[str] = []
    for r in resizes:
        off = False
        try:
            if r.node == holder:
                steps.vip_away(r.node)
                say(f"resize {r.node}: the reserved IP moved to another node")
            steps.drain(r.node)
            how = power.shut_down(r.droplet_id)
            off = True
            say(f"resize {r.node}: drained, then " + ("shut down" if how == "shutdown" else
                                                     "powered off (the graceful shutdown did not finish in time)"))
            power.resize(r.droplet_id, r.new)
            power.power_on(r.droplet_id)
            say(f"resize {r.node}: {r.old} → {r.new}, powered on; starting its services")
            steps.start(r.node)
            say(f"resize {r.node}: services started; waiting for its gate")
            steps.gate(r.node)
        except DyniaError as exc:
            if not off:   # still running: back in service (keepalived started, drain marks removed)
                try:
                    steps.restore(r.node)
                except DyniaError as again:
                    exc.hint = f"{exc.hint}; {r.node} is still drained ({again.message}): `dynia up --phase infra`"
            left = [x.node for x in resizes[len(done) + 1:]]
            exc.message = f"resize of {r.node} ({r.old} → {r.new}) stopped: {exc.message}" + (
                f"; not resized yet: {', '.join(left)}" if left else "")
            exc.resume = exc.resume or "dynia up --phase provision"
            raise
        done.append(r.node)
        say(f"resize {r.node}: gated")
    return done


def wait_until(check: Callable[[], str | None], seconds: float, poll: float, what: str, hint: str,
               sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll check() (None: passed; else why not) until it passes; a `health` error after `seconds`."""
    end = time.monotonic() + seconds
    why = check()
    while why is not None:
        if time.monotonic() >= end:
            raise DyniaError("health", f"{what} within {seconds:.0f} s: {why}", hint)
        sleep(poll)
        why = check()
