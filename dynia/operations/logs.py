"""`dynia logs`: a service's container logs (or one of dynia's components') from every node.

Read once: one SSH round trip per node, all nodes at once, lines merged in the order of the
times the container engine (or journal, or log file) gave them. Followed: one pinned SSH
connection per node, one channel per container; every second each node is asked which
containers the service has, so a container that appears (an active-only service's new VIP
holder, a recreated container) is followed from its first line, and one that ends is a line
saying so. A node that cannot be reached is one notice; followed, it is asked again until it
answers, and its containers resume from their last line.
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

from ..errors import DyniaError
from ..nodes.containers import Container, ContainerCommands, parse_list
from ..nodes.logs import LogCommands, LogWindow, engine_time, parse_service, split_time
from ..nodes.push import Target, connect
from ..paths import LOG_COMPONENTS

DEFAULT_TAIL = 100       # lines, when neither --tail nor --since says which
POLL = 1.0               # s between a followed node's container listings
RETRY = 2.0              # s between tries to reach a followed node that did not answer
READ_TIMEOUT = 30.0      # s for one node's whole answer when read once
MAX_LINE = 16384         # characters of one line shown (a longer one is cut, and says so)


@dataclass(frozen=True)
class LogLine:
    node: str
    container: str | None   # the container's name when the node runs several of the service
    time: int | None        # ns since the epoch (None: the line carried no time)
    text: str

    def as_dict(self) -> dict:
        return {"node": self.node, "container": self.container,
                "time": engine_time(self.time) if self.time is not None else None, "line": self.text}


@dataclass(frozen=True)
class Notice:
    """Something about a node rather than a line of its log: unreachable, a container ended.
    failed: the node's lines could not be read (the command's exit status says so)."""
    node: str
    text: str
    failed: bool = True

    def as_dict(self) -> dict:
        return {"node": self.node, "notice": self.text}


Event = LogLine | Notice


@dataclass
class LogRequest:
    name: str                          # a service of the spec, or one of LOG_COMPONENTS
    window: LogWindow = field(default_factory=LogWindow)
    grep: re.Pattern | None = None
    component: bool = False

    def keeps(self, text: str) -> bool:
        return self.grep is None or self.grep.search(text) is not None


def request(spec, name: str, *, since: str | None, tail: int | None, follow: bool,
            grep: str | None) -> LogRequest:
    """Checks what the operator asked for against the spec; every problem is a typed error."""
    if name not in spec.services and name not in LOG_COMPONENTS:
        known = ", ".join([*spec.services, *LOG_COMPONENTS])
        raise DyniaError("config", f"no service or dynia component named {name!r} in cluster {spec.name}",
                         f"name one of: {known}")
    try:
        pattern = re.compile(grep) if grep is not None else None
    except re.error as exc:
        raise DyniaError("config", f"--grep {grep!r} is not a regular expression: {exc}",
                         "pass a Python regular expression, e.g. --grep 'error|warn'") from None
    if tail is None and since is None:
        tail = DEFAULT_TAIL
    try:
        window = LogWindow(since, tail, follow)
    except ValueError as exc:
        raise DyniaError("config", str(exc), "e.g. --since 10m, --since 1h30m, --tail 200") from None
    return LogRequest(name, window, pattern, component=name not in spec.services)


def nodes_of(cluster, targets: list[Target], node: str | None) -> list[Target]:
    """The targets to read, in the spec's order; --node narrows them to one."""
    order = list(cluster.spec.nodes)
    if node is not None and node not in order:
        raise DyniaError("config", f"no node {node!r} in cluster {cluster.name}", f"name one of: {', '.join(order)}")
    return sorted((t for t in targets if node in (None, t.node)), key=lambda t: order.index(t.node))


def _cut(text: str) -> str:
    return text if len(text) <= MAX_LINE else text[:MAX_LINE] + f" … ({len(text) - MAX_LINE} more characters)"


def _timed(node: str, container: str | None, raw: Iterable[str], form: str = "iso",
           start: int | None = None) -> list[LogLine]:
    """Lines with their times; a line without one (an engine's own message, a continuation)
    takes the time of the line before it, so the merge keeps it in place."""
    out, last = [], start
    for line in raw:
        when, text = split_time(line, form)
        last = when if when is not None else last
        out.append(LogLine(node, container, last, _cut(text)))
    return out


def merge(per_node: list[list[LogLine]], tail: int | None) -> list[LogLine]:
    """Every node's lines in time order (a stable sort: one node's lines keep their order), the
    last `tail` of them: each container gave its last `tail`, so the cluster's last `tail` are
    among them."""
    lines = sorted((line for lines in per_node for line in lines), key=lambda line: line.time or 0)
    return lines[-tail:] if tail is not None and tail > 0 else [] if tail == 0 else lines


# --- read once -------------------------------------------------------------------------------

async def _read_node(target: Target, req: LogRequest, commands: LogCommands,
                     refused: str | None) -> tuple[list[LogLine], list[Notice]]:
    if refused is not None:
        return [], [Notice(target.node, f"not read: {refused}")]
    try:
        conn = await connect(target)
    except DyniaError as exc:
        return [], [Notice(target.node, f"unreachable: {exc.message}")]
    try:
        if req.component:
            log = commands.component(req.name, req.window)
            if log.command is None:
                return [], [Notice(target.node, log.absent, failed=False)]
            r = await asyncio.wait_for(conn.run(log.command, check=False, errors="replace"), READ_TIMEOUT)
            return _timed(target.node, None, str(r.stdout or "").splitlines(), log.time_form), []
        r = await asyncio.wait_for(conn.run(commands.service(req.name, req.window), check=False, errors="replace"),
                                   READ_TIMEOUT)
        if r.exit_status != 0:
            why = (str(r.stderr or "").strip().splitlines() or [f"exit {r.exit_status}"])[-1]
            return [], [Notice(target.node, f"its containers could not be listed: {_cut(why)}")]
        read = parse_service(str(r.stdout or ""))
        several = len(read.containers) > 1
        return [line for c in read.containers
                for line in _timed(target.node, c.name if several else None, read.lines.get(c.id, []))], []
    except (OSError, asyncio.TimeoutError, _ssh_errors()) as exc:
        return [], [Notice(target.node, f"not read: {exc.__class__.__name__}: {exc}".rstrip(": "))]
    finally:
        conn.close()


def _ssh_errors():
    import asyncssh

    return asyncssh.Error


def read(targets: list[Target], profile, req: LogRequest,
         refused: dict[str, str] | None = None) -> tuple[list[LogLine], list[Notice]]:
    """Every node's lines, merged in time order (the last --tail of them), and a notice per node
    that was not read. --grep keeps the matching lines of those."""
    commands = LogCommands(profile)

    async def main():
        return await asyncio.gather(*(_read_node(t, req, commands, (refused or {}).get(t.node)) for t in targets))

    answers = asyncio.run(main())
    lines = merge([a[0] for a in answers], req.window.tail)
    return [line for line in lines if req.keeps(line.text)], [n for a in answers for n in a[1]]


# --- follow ----------------------------------------------------------------------------------

@dataclass
class _Followed:
    """One container being followed on one node."""
    container: Container
    task: asyncio.Task | None = None
    last: int | None = None      # the time of its last line shown


class _NodeFollower:
    def __init__(self, target: Target, req: LogRequest, commands: LogCommands, emit: Callable[[Event], None]):
        self.target, self.req, self.commands, self.emit = target, req, commands, emit
        self.followed: dict[str, _Followed] = {}
        self.first = True

    def notice(self, text: str) -> None:
        self.emit(Notice(self.target.node, text))

    async def run(self) -> None:
        down: str | None = None
        while True:
            try:
                # keepalive: a node that dies without closing (a crash, a cut cable) is seen in ~3 s.
                conn = await connect(self.target, keepalive_interval=1, keepalive_count_max=3)
            except DyniaError as exc:
                if down != exc.message:
                    self.notice(f"unreachable: {exc.message}; asking again every {RETRY:g} s")
                    down = exc.message
                await asyncio.sleep(RETRY)
                continue
            if down is not None:
                self.notice("reachable again")
                down = None
            try:
                await (self._component(conn) if self.req.component else self._containers(conn))
            except (OSError, asyncio.TimeoutError, _ssh_errors()) as exc:
                down = f"connection lost ({exc.__class__.__name__})"
                self.notice(f"{down}; asking again every {RETRY:g} s")
            finally:
                for f in self.followed.values():
                    if f.task is not None:
                        f.task.cancel()
                conn.close()
            await asyncio.sleep(RETRY)

    async def _component(self, conn) -> None:
        window = self.req.window if self.first else replace(self.req.window, since=None, tail=0)
        log = self.commands.component(self.req.name, window)
        if log.command is None:
            self.emit(Notice(self.target.node, log.absent, failed=False))
            await asyncio.Event().wait()  # nothing to follow here; the other nodes go on
        self.first = False
        proc = await conn.create_process(log.command, errors="replace")
        async for line in proc.stdout:
            for shown in _timed(self.target.node, None, [line.rstrip("\n")], log.time_form):
                if self.req.keeps(shown.text):
                    self.emit(shown)
        await proc.wait()
        raise ConnectionResetError("the log reader ended")

    async def _containers(self, conn) -> None:
        lister = ContainerCommands(self.commands.profile).listing(self.req.name)
        failing: str | None = None
        while True:
            r = await asyncio.wait_for(conn.run(lister, check=False, errors="replace"), READ_TIMEOUT)
            if r.exit_status == 0:
                self._start(conn, parse_list(str(r.stdout or "")))
                failing = None
            else:
                why = (str(r.stderr or "").strip().splitlines() or [f"exit {r.exit_status}"])[-1]
                if why != failing:  # said once, until it changes or the engine answers again
                    self.notice(f"its containers could not be listed: {_cut(why)}")
                failing = why
            self.first = False
            await asyncio.sleep(POLL)

    def _start(self, conn, containers: list[Container]) -> None:
        several = len(containers) > 1
        for c in containers:
            f = self.followed.get(c.id)
            busy = f is not None and f.task is not None and not f.task.done()
            if busy or (f is not None and not c.running):
                continue  # followed already, or ended and still stopped
            if f is None:
                f = self.followed[c.id] = _Followed(c)
                # At the start, the window the operator asked for; a container that appears later
                # is new: all of it. One seen before (restarted, or back after an outage): from its
                # last line on.
                window, after = (self.req.window, None) if self.first else (LogWindow(follow=True), None)
            else:
                window, after = LogWindow(follow=True), engine_time(f.last) if f.last is not None else None
            f.task = asyncio.create_task(self._follow(conn, f, window, after, c.name if several else None))

    async def _follow(self, conn, f: _Followed, window: LogWindow, after: str | None, shown_as: str | None) -> None:
        resumed = f.last if after is not None else None
        proc = await conn.create_process(self.commands.container(f.container.id, window, after), errors="replace")
        async for line in proc.stdout:
            for shown in _timed(self.target.node, shown_as, [line.rstrip("\n")], start=f.last):
                if resumed is not None and shown.time is not None and shown.time <= resumed:
                    continue  # shown before it went away (--since includes its own instant)
                f.last = shown.time if shown.time is not None else f.last
                if self.req.keeps(shown.text):
                    self.emit(shown)
        await proc.wait()
        if proc.exit_status is not None:  # the container's log ended, not the connection
            self.emit(Notice(self.target.node, f"{self.req.name}: container {f.container.name} ended", failed=False))


def follow(targets: list[Target], profile, req: LogRequest, emit: Callable[[Event], None],
           refused: dict[str, str] | None = None) -> None:
    """Follow every node until interrupted (Ctrl-C propagates as KeyboardInterrupt)."""
    commands = LogCommands(profile)

    async def main():
        for node, why in (refused or {}).items():
            emit(Notice(node, f"not followed: {why}"))
        await asyncio.gather(*(_NodeFollower(t, req, commands, emit).run()
                               for t in targets if t.node not in (refused or {})))

    asyncio.run(main())
