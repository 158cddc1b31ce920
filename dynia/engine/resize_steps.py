"""The node side of a resize roll (dynia.resize.NodeSteps), over the pinned SSH sessions:
move the VIP away, drain, and the node's gate once it is back."""
from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from typing import Callable

from .. import providers
from ..errors import DyniaError
from ..nodes import facts as F
from ..nodes.commands import DRAIN_DIR, HAPROXY_TIMING, NodeCommands
from ..nodes.gather import gather, holder_of
from ..nodes.push import Target, run
from ..paths import PATHS as P
from ..render.bundle import infra_health, service_health
from ..render.rendering import drain_for
from ..resize import GATE_POLL, GATE_SECONDS, wait_until
from ..spec.model import ClusterSpec

VIP_SECONDS = 30.0


def check_command(check: dict) -> str:
    """One health check of a bundle (the apply script's), as a shell command on the node."""
    if check["type"] == "command":
        return f"( {check['command']} ) 2>/dev/null"   # a subshell: the check's own `exit` ends only it
    scheme = check.get("scheme", "http")
    host = f"-H {shlex.quote('Host: ' + check['hostHeader'])} " if check.get("hostHeader") else ""
    url = f"{scheme}://{check['host']}:{check['port']}{check.get('path', '/')}"
    return f"curl -fsk -o /dev/null --max-time 3 {host}{shlex.quote(url)}"


def gate_command(spec, node: str, private_ip: str, as_master: bool) -> str:
    """Every check the node's pushes gate on: infra (firewall, Caddy, HAProxy, keepalived) and
    each service that runs on it in that role; exits 0 when all pass, else names the first."""
    commands = NodeCommands(providers.of(spec).profile)
    checks = infra_health(commands, private_ip)
    for name in sorted(spec.services):
        if spec.services[name].runs_on(as_master):
            checks += service_health(spec, name, private_ip)
    return " && ".join(f"{{ {check_command(c)} || {{ echo {shlex.quote(c['name'])}; exit 1; }}; }}"
                       for c in checks)


@dataclass
class SshNodeSteps:
    spec: ClusterSpec
    targets: dict[str, Target]
    private_ips: dict[str, str]
    say: Callable[[str], None] = field(default=lambda line: None)
    sleep: Callable[[float], None] = time.sleep

    @property
    def commands(self) -> NodeCommands:
        return NodeCommands(providers.of(self.spec).profile)

    def vip_away(self, node: str) -> None:
        """Stop the holder's keepalived (it leaves MASTER at once, priority 0) and wait until
        another node reports MASTER. A one-node cluster has nowhere to move it: said, not refused."""
        others = [t for n, t in self.targets.items() if n != node]
        if not others:
            self.say(f"resize {node}: the only node; the site is down until it is back")
            return
        status, _, err = run(self.targets[node], self.commands.stop("keepalived"))
        if status != 0:
            raise DyniaError("sync", f"keepalived on {node} did not stop (exit {status}): {err.strip()[-300:]}",
                             f"check keepalived on {node}; nothing was powered off")

        def moved() -> str | None:
            holder = holder_of(gather(others, [F.VRRP]))
            return None if holder else "no other node reports MASTER"
        wait_until(moved, VIP_SECONDS, 1.0, f"the reserved IP did not leave {node}",
                   f"start keepalived on {node} again (or `dynia up --phase infra`); nothing was powered off",
                   self.sleep)

    def drained(self) -> list[str]:
        """The services a drain marks: routed, on every node (dynia.render.rendering.drain_for)."""
        return [s for s in sorted(self.spec.services) if drain_for(self.spec, s) is not None]

    def drain(self, node: str) -> None:
        """Every routed service's drain marker on the node; every HAProxy's check then marks this
        node's servers down within the check timing. The markers live in /run: the shutdown
        clears them."""
        drained = self.drained()
        if not drained:
            return
        status, _, err = run(self.targets[node], f"mkdir -p {DRAIN_DIR} && touch " +
                             " ".join(P.drain_marker(s) for s in drained))
        if status != 0:
            raise DyniaError("sync", f"cannot drain {node} (exit {status}): {err.strip()[-300:]}",
                             f"check {node}; nothing was powered off")
        self.sleep(HAPROXY_TIMING.marked_down_within / 1000)

    def restore(self, node: str) -> None:
        """A node the roll drained but never powered off: its drain marks removed, keepalived
        started again (reload-or-start)."""
        marks = " ".join(P.drain_marker(s) for s in self.drained())
        status, _, err = run(self.targets[node], f"rm -f {marks} && {self.commands.reload('keepalived')}"
                             if marks else self.commands.reload("keepalived"))
        if status != 0:
            raise DyniaError("sync", f"cannot put {node} back in service (exit {status}): {err.strip()[-300:]}",
                             f"run `dynia up --phase infra` once {node} answers")

    def gate(self, node: str) -> None:
        command = gate_command(self.spec, node, self.private_ips[node], as_master=len(self.spec.nodes) == 1)

        def healthy() -> str | None:
            try:
                status, out, _ = run(self.targets[node], command, timeout=60)
            except DyniaError as exc:
                return exc.message   # still booting: sshd not up yet
            return None if status == 0 else f"{out.strip() or 'a check'} does not pass"
        wait_until(healthy, GATE_SECONDS, GATE_POLL, f"{node} did not pass its gate after the resize",
                   f"look at {node} (`dynia status`); the nodes after it were not touched", self.sleep)
