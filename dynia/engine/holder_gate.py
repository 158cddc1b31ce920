"""Before DNS points at the reserved IP: the provider must say the VRRP MASTER holds it.

keepalived's notify script assigns the reserved IP in the background with the node token; a
refused call (a wrong, expired or under-scoped token) used to be logged where nobody looks while
`dynia up` went on to point DNS at an address no droplet held. After the infra phase, and before
the apps phase creates or changes any DNS record, `require_master_holds` asks the provider who
holds the address (the operator's token, read live) and compares it with the nodes' VRRP roles.
When they differ it asks the MASTER to assign once more (keepalived runs notify.sh on a
transition only: a token fixed by a push waits for no failover), then reads again until the
bound, and fails with a typed `provider` error naming the node token and its scopes.

`judge` is pure (facts + the provider's answer → held by the MASTER or why not), tested on its
own; `read` does the I/O (one SSH round trip per node, in parallel, and one provider call).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from .. import providers
from ..errors import DyniaError
from ..nodes import facts as F
from ..nodes import vip
from ..nodes.commands import ASSIGN_RESERVED_IP
from ..nodes.reserved_ip import ReservedIpAssignment, assignment_of, claimed_addresses

GATHER_TIMEOUT = 5.0   # seconds per node: one small script
POLL_INTERVAL = 2.0    # between the provider's answers (an assign action completes in seconds)
AFTER_ASK = 15.0       # at least this long for the provider to show an assignment the MASTER made


@dataclass(frozen=True)
class Reading:
    holder: str | None                       # the provider's answer (None: no node of the cluster)
    roles: dict[str, str | None] = field(default_factory=dict)   # answering node → its VRRP role
    assignments: dict[str, ReservedIpAssignment | None] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)    # node → why it did not answer

    @property
    def masters(self) -> list[str]:
        return vip.masters(self.roles)


def judge(reading: Reading, reserved_ip: str) -> str | None:
    """None when the VRRP MASTER holds the reserved IP as the provider sees it, else why not.
    Nodes that did not answer contradict nothing: when none answered, a node of the cluster
    holding the address is taken as held (the push that just ran reached them all)."""
    masters = reading.masters
    if vip.split(reading.roles):
        return f"more than one node is VRRP MASTER ({', '.join(masters)})"
    if reading.holder is None:
        return f"no node of the cluster holds {reserved_ip}" + (f" (VRRP MASTER: {masters[0]})" if masters else "")
    if masters and reading.holder != masters[0]:
        return f"{reading.holder} holds {reserved_ip}, but {masters[0]} is the VRRP MASTER"
    role = reading.roles.get(reading.holder)
    if not masters and reading.holder in reading.roles:
        return f"{reading.holder} holds {reserved_ip} but is {role or 'in no recorded role'}, and no node is MASTER"
    return None


def read(cluster, targets, reserved_ip: str, known: dict[str, set[str]], refused: dict[str, str] | None = None
         ) -> Reading:
    """The nodes' roles and last assignments (one round trip each) and the provider's holder."""
    from ..nodes import gather as G

    provider = providers.of(cluster.spec)
    wanted = [F.VRRP, F.RESERVED_IP, F.vip_device_addresses(provider.profile)]
    answers = G.gather(targets, wanted, GATHER_TIMEOUT, refused=refused)
    addresses, conflicts = claimed_addresses(known, answers)
    if conflicts:
        raise DyniaError("provider", f"conflict: {'; '.join(conflicts)}; no DNS record was created or changed",
                         "compare each node's addresses (`dynia status`) with the provider's; the apps phase did "
                         "not run")
    try:
        holder = provider.reserved_ip_holder(reserved_ip, addresses)
    except DyniaError as exc:
        # The operator's token or the network, not the nodes': its own hint says what to fix.
        raise DyniaError(exc.kind, f"{exc.message}; no DNS record was created or changed", exc.hint) from None
    answered = {n: a for n, a in answers.items() if a.error is None}
    return Reading(holder,
                   {n: (a.facts.get("vrrp") or {}).get("role") for n, a in answered.items()},
                   {n: assignment_of(a.facts.get("reserved_ip")) for n, a in answered.items()},
                   {n: a.error for n, a in answers.items() if a.error is not None})


def failure(cluster, provider, reserved_ip: str, why: str, reading: Reading, waited: float) -> DyniaError:
    """The typed error: what the provider says, the MASTER's own record, which token and scopes."""
    name = cluster.name
    records = [f"{n}'s last assignment: {a.describe()}" for n, a in sorted(reading.assignments.items())
               if a is not None and (n in reading.masters or a.failed)]
    message = (f"the reserved IP {reserved_ip} is not held by the VRRP MASTER after {waited:.0f} s: {why}"
               + (f"; {'; '.join(records)}" if records else "")
               + "; no DNS record was created or changed")
    resume = f"then `dynia up --phase infra --cluster {name}` writes it to every node and has the MASTER assign again"
    if provider.node_token_name:
        hint = (f"the node token {provider.node_token_name} must be accepted by the provider's API: "
                f"{provider.node_token_hint}; {resume}")
    else:
        hint = (f"check the MASTER's keepalived log and that it reaches its peers; {resume}")
    return DyniaError("provider", message, hint)


def require_master_holds(cluster, targets, reserved_ip: str, known: dict[str, set[str]], *, bound: float,
                         refused: dict[str, str] | None = None, say=lambda line: None,
                         clock=time.monotonic, sleep=time.sleep) -> str | None:
    """Wait (up to `bound` seconds) until the provider says the VRRP MASTER holds the reserved IP;
    the holder, or a typed `provider` error. Asks the MASTER to assign once when it does not."""
    from ..nodes.push import run

    provider = providers.of(cluster.spec)
    started = clock()
    deadline = started + bound
    asked = False
    while True:
        reading = read(cluster, targets, reserved_ip, known, refused)
        why = judge(reading, reserved_ip)
        if why is None:
            return reading.holder
        masters = reading.masters
        if not asked and len(masters) == 1 and provider.profile.assigns_reserved_ip:
            asked = True
            master = next(t for t in targets if t.node == masters[0])
            say(f"reserved IP: {why}; asking {master.node} to assign it")
            try:
                # notify.sh's own retries (a pending action answers 422) last up to ~2 minutes
                code, _, _ = run(master, ASSIGN_RESERVED_IP, timeout=max(deadline - clock(), 0) + 150)
            except DyniaError as exc:
                code = None
                say(f"reserved IP: {master.node} did not answer: {exc.message}")
            if code not in (0, None):
                # notify.sh recorded why (refused, gave up, no token): read it back and stop here
                reading = read(cluster, targets, reserved_ip, known, refused)
                why = judge(reading, reserved_ip)
                if why is None:
                    return reading.holder
                raise failure(cluster, provider, reserved_ip, why, reading, clock() - started)
            deadline = max(deadline, clock() + AFTER_ASK)
            continue
        if clock() >= deadline:
            raise failure(cluster, provider, reserved_ip, why, reading, clock() - started)
        sleep(POLL_INTERVAL)
