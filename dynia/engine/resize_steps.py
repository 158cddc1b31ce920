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
from ..paths import PORTS
from ..render.bundle import infra_health, service_health
from ..render.rendering import drain_for, node_commands
from ..resize import GATE_POLL, GATE_SECONDS, wait_until
from ..spec.model import ClusterSpec

VIP_SECONDS = 30.0
# A VIP move cuts the connections it carries: on the holder, new connections to HAProxy's ports
# are dropped first (not refused: a client sends its SYN again ~1 s later, by then to the new
# holder) and the established ones get this long to finish.
HANDOVER_TABLE = "inet dynia_handover"
IN_FLIGHT_SECONDS = 5


def handover_on() -> str:
    """On the VIP holder, before the VIP leaves it: new connections to 80/443 from off the node
    dropped, then a bounded wait until none is established (ss)."""
    ports = f"{{ {PORTS.http}, {PORTS.https} }}"
    established = f"ss -Htn state established '( sport = :{PORTS.http} or sport = :{PORTS.https} )' | grep -q ."
    return (f"{handover_off()}; nft add table {HANDOVER_TABLE} && "
            f"nft add chain {HANDOVER_TABLE} input '{{ type filter hook input priority -10; policy accept; }}' && "
            f"nft add rule {HANDOVER_TABLE} input iifname != lo tcp dport '{ports}' ct state new drop && "
            f"end=$(($(date +%s) + {IN_FLIGHT_SECONDS})); "
            f"while {established} && [ $(date +%s) -lt $end ]; do sleep 0.1; done")


def handover_off() -> str:
    return f"nft delete table {HANDOVER_TABLE} 2>/dev/null || true"


def check_command(check: dict) -> str:
    """One health check of a bundle (the apply script's), as a shell command on the node."""
    if check["type"] == "command":
        return f"( {check['command']} ) 2>/dev/null"   # a subshell: the check's own `exit` ends only it
    scheme = check.get("scheme", "http")
    host = f"-H {shlex.quote('Host: ' + check['hostHeader'])} " if check.get("hostHeader") else ""
    url = f"{scheme}://{check['host']}:{check['port']}{check.get('path', '/')}"
    return f"curl -fsk -o /dev/null --max-time 3 {host}{shlex.quote(url)}"


def gate_command(spec, node: str, private_ip: str, as_master: bool, without: tuple[str, ...] = ()) -> str:
    """Every check the node's pushes gate on: infra (firewall, Caddy, HAProxy, keepalived) and
    each service that runs on it in that role, but those named in `without`; exits 0 when all
    pass, else names the first."""
    commands = NodeCommands(providers.of(spec).profile)
    checks = [c for c in infra_health(commands, private_ip) if c["name"] not in without]
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
        return node_commands(self.spec)

    def vip_away(self, node: str) -> None:
        """Stop the holder's keepalived (it leaves MASTER at once, priority 0) and wait until
        another node reports MASTER. A one-node cluster has nowhere to move it: said, not refused."""
        others = [t for n, t in self.targets.items() if n != node]
        if not others:
            self.say(f"resize {node}: the only node; the site is down until it is back")
            return
        status, _, err = run(self.targets[node], f"{handover_on()} && {{ {self.commands.stop('keepalived')}; }}",
                             timeout=60)
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
        # Its boot must not start keepalived: the node would take the VIP back (the configured
        # MASTER preempts) before its services answer. `start` brings it back.
        marks = [f"mkdir -p {DRAIN_DIR} && touch " + " ".join(P.drain_marker(s) for s in drained)] if drained else []
        status, _, err = run(self.targets[node], " && ".join([self.commands.at_boot("keepalived", False), *marks]))
        if status != 0:
            raise DyniaError("sync", f"cannot drain {node} (exit {status}): {err.strip()[-300:]}",
                             f"check {node}; nothing was powered off")
        if drained:
            self.sleep(HAPROXY_TIMING.marked_down_within / 1000)

    def restore(self, node: str) -> None:
        """A node the roll drained but never powered off: its drain marks removed, keepalived
        started again (reload-or-start)."""
        marks = " ".join(P.drain_marker(s) for s in self.drained())
        back = " && ".join([*([f"rm -f {marks}"] if marks else []), self.commands.at_boot("keepalived", True),
                            self.commands.reload("keepalived")])
        status, _, err = run(self.targets[node], f"{handover_off()}; {back}")
        if status != 0:
            raise DyniaError("sync", f"cannot put {node} back in service (exit {status}): {err.strip()[-300:]}",
                             f"run `dynia up --phase infra` once {node} answers")

    def start(self, node: str) -> None:
        """Once the node answers SSH after its power on: `compose up` of every service that runs
        on it outside the MASTER role (an active-only one starts through notify.sh when the node
        turns MASTER). Its containers stopped with the shutdown, and Docker restarts only those
        with a restart policy, which an operator's compose file need not set."""
        services = [n for n in sorted(self.spec.services)
                    if self.spec.services[n].runs_on(len(self.spec.nodes) == 1)]
        command = " && ".join(self.commands.compose_up(n) for n in services) or "true"
        outcome: dict[str, str] = {}

        def started() -> str | None:
            try:
                status, _, err = run(self.targets[node], command, timeout=300)
            except DyniaError as exc:
                return exc.message   # still booting: sshd not up yet
            if status != 0:
                outcome["failed"] = f"compose up exited {status}: {err.strip()[-300:]}"
            return None
        wait_until(started, GATE_SECONDS, GATE_POLL, f"{node} did not answer after its power on",
                   f"look at {node} in the provider's console; the nodes after it were not touched", self.sleep)
        if outcome:
            raise DyniaError("sync", f"{node}'s services did not start after the resize: {outcome['failed']}",
                             f"look at {node} (`dynia status`), then `dynia up --phase apps`; the nodes after it "
                             "were not touched")
        self._wait_gate(node, without=("keepalived",))
        self._rejoin(node)

    def _rejoin(self, node: str) -> None:
        """keepalived back at boot and started, once the node's services answer. The configured
        MASTER (the highest priority) then takes the VIP from its holder: that holder is handed
        over first, as vip_away hands over, and released once the node is MASTER."""
        others = {n: t for n, t in self.targets.items() if n != node}
        holder = holder_of(gather(list(others.values()), [F.VRRP])) if node == self.spec.master_node else None
        if holder in others:
            run(others[holder], handover_on(), timeout=60)
        try:
            status, _, err = run(self.targets[node], f"{self.commands.at_boot('keepalived', True)} && "
                                                     f"{self.commands.reload('keepalived')}")
            if status != 0:
                raise DyniaError("sync", f"keepalived on {node} did not start (exit {status}): {err.strip()[-300:]}",
                                 f"look at {node}, then `dynia up --phase infra`; the nodes after it were not touched")
            if holder in others:
                def took() -> str | None:
                    role = holder_of(gather([self.targets[node]], [F.VRRP]))
                    return None if role == node else f"{node} is not MASTER yet"
                wait_until(took, VIP_SECONDS, 0.5, f"{node} did not take the reserved IP back from {holder}",
                           f"look at keepalived on {node} and {holder} (`dynia status`)", self.sleep)
                self.say(f"resize {node}: keepalived started; it took the reserved IP back from {holder}")
        finally:
            if holder in others:
                run(others[holder], handover_off())

    def _wait_gate(self, node: str, without: tuple[str, ...] = ()) -> None:
        command = gate_command(self.spec, node, self.private_ips[node], as_master=len(self.spec.nodes) == 1,
                               without=without)

        def healthy() -> str | None:
            try:
                status, out, _ = run(self.targets[node], command, timeout=60)
            except DyniaError as exc:
                return exc.message   # still booting: sshd not up yet
            return None if status == 0 else f"{out.strip() or 'a check'} does not pass"
        wait_until(healthy, GATE_SECONDS, GATE_POLL, f"{node} did not pass its gate after the resize",
                   f"look at {node} (`dynia status`); the nodes after it were not touched", self.sleep)

    def gate(self, node: str) -> None:
        self._wait_gate(node)
