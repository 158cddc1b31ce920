"""`dynia exec`: a command in a service's container on one node, over the node's pinned SSH.

Which node: --node, or --holder (the VIP holder, read live), else where the service is sure to
run: the holder for an active-only service, the first node in rolling order otherwise (a BACKUP
node: a mistake there never touches the node serving the VIP). Which container: the compose
service named like the dynia service (or `SERVICE/PART`), else the only one running.

The command's exit status is dynia's. With -t the remote side gets a terminal and the local one
goes raw, so every keystroke (Ctrl-C included) reaches the command as typed; without one,
Ctrl-C is sent to the command's processes as SIGINT (ContainerCommands.signal), a second
Ctrl-C closes the session. Output without -t is escaped (dynia.shown) when it goes to a
terminal, and passed through untouched to a pipe or file.
"""
from __future__ import annotations

import asyncio
import codecs
import os
import secrets
import shutil
import signal
import sys
import termios
import threading
import tty
from dataclasses import dataclass

from ..errors import DyniaError
from ..nodes.containers import Container, ContainerCommands, parse_list
from ..nodes.push import Target, connect
from ..planner import rolling_order
from ..shown import escape
from ..state import cache

LIST_TIMEOUT = 30.0
EXIT_LOST = 255  # the connection ended before the command did (as ssh exits)


@dataclass(frozen=True)
class Place:
    target: Target
    container: Container


def split_name(name: str) -> tuple[str, str | None]:
    """`api` → (api, None); `api/cache` → (api, cache): a service's compose part by name."""
    service, _, part = name.partition("/")
    return service, part or None


def choose_node(cluster, targets: list[Target], service: str, *, node: str | None, holder: bool,
                vip_holder) -> Target:
    """The node to run on. vip_holder: () → the node holding the VIP (read live), asked only
    when the choice needs it."""
    spec = cluster.spec
    if service not in spec.services:
        raise DyniaError("config", f"no service {service!r} in cluster {cluster.name}",
                         f"name one of: {', '.join(spec.services) or '(none yet: dynia service add)'}")
    by_node = {t.node: t for t in targets}
    if node is not None:
        if node not in spec.nodes:
            raise DyniaError("config", f"no node {node!r} in cluster {cluster.name}",
                             f"name one of: {', '.join(spec.nodes)}")
        chosen = node
    elif holder or spec.services[service].placement == "active-only":
        live = vip_holder()
        if live is None:
            raise DyniaError("network", "no node answers as the one VRRP MASTER, so the VIP holder is unknown",
                             "check the cluster (dynia status), or name the node with --node")
        chosen = live
    else:
        live = vip_holder() if len(spec.nodes) > 1 else None
        chosen = rolling_order(list(spec.nodes), spec.master_node, live, cache.applied(cluster))[0]
    if chosen not in by_node:
        raise DyniaError("state", f"no address for node {chosen} on this machine",
                         "run `dynia up` (provision) so this machine knows the node's address")
    return by_node[chosen]


async def _containers(target: Target, commands: ContainerCommands, service: str) -> list[Container]:
    import asyncssh

    conn = await connect(target)
    try:
        r = await asyncio.wait_for(conn.run(commands.listing(service), check=False, errors="replace"), LIST_TIMEOUT)
    except (OSError, asyncio.TimeoutError, asyncssh.Error) as exc:
        raise DyniaError("network", f"node {target.node}: listing {service}'s containers failed "
                         f"({exc.__class__.__name__})", "check the node (dynia status) and retry") from None
    finally:
        conn.close()
    if r.exit_status != 0:
        why = (str(r.stderr or "").strip().splitlines() or [f"exit {r.exit_status}"])[-1]
        raise DyniaError("sync", f"node {target.node}: the container engine did not list {service}'s containers: "
                         f"{why[:300]}", f"check the engine on {target.node} (dynia status)")
    return parse_list(str(r.stdout or ""))


def find(target: Target, profile, name: str) -> Place:
    """The running container to run in, on the chosen node."""
    service, part = split_name(name)
    found = [c for c in asyncio.run(_containers(target, ContainerCommands(profile), service)) if c.running]
    if part is not None:
        found = [c for c in found if c.part == part]
    elif len(found) > 1:
        found = [c for c in found if c.part == service] or found
    if len(found) == 1:
        return Place(target, found[0])
    if not found:
        what = f"{service}/{part}" if part else service
        raise DyniaError("sync", f"no running container of {what} on node {target.node}",
                         "see where it runs with `dynia status`, then pick the node with --node")
    parts = ", ".join(f"{service}/{c.part or c.name}" for c in found)
    raise DyniaError("config", f"{service} runs {len(found)} containers on {target.node}: {parts}",
                     f"name one, e.g. `dynia exec {service}/{found[0].part or found[0].name} -- …`")


def run(place: Place, profile, argv: list[str], *, interactive: bool, tty: bool) -> int:
    """Runs the command; returns its exit status (EXIT_LOST when the connection ended first)."""
    return asyncio.run(_session(place, ContainerCommands(profile), argv, interactive, tty))


class _Output:
    """Copies the remote stream to a local one: raw bytes, or escaped text on a terminal."""

    def __init__(self, stream, escaped: bool):
        self.out = stream.buffer if hasattr(stream, "buffer") else stream
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace") if escaped else None

    def write(self, data: bytes, final: bool = False) -> None:
        if self.decoder is not None:
            self.stream.write(escape(self.decoder.decode(data, final)))
            self.stream.flush()
        elif data:
            self.out.write(data)
            self.out.flush()


async def _pump(reader, out: _Output) -> None:
    while True:
        data = await reader.read(65536)
        if not data:
            break
        out.write(data)
    out.write(b"", final=True)


def _stdin_feeder(loop, proc) -> None:
    """Local stdin → the command's, from a thread (a file, a pipe and a terminal alike; a daemon
    thread, so a read still waiting when the command ends does not hold dynia open)."""
    def feed():
        while True:
            try:
                data = os.read(sys.stdin.fileno(), 65536)
            except OSError:
                data = b""
            if not data:
                loop.call_soon_threadsafe(proc.stdin.write_eof)
                return
            loop.call_soon_threadsafe(proc.stdin.write, data)

    threading.Thread(target=feed, daemon=True).start()


async def _session(place: Place, commands: ContainerCommands, argv: list[str], interactive: bool,
                   terminal: bool) -> int:
    import asyncssh

    token = secrets.token_hex(16)
    command = commands.exec(place.container.id, argv, interactive=interactive, tty=terminal, token=token)
    conn = await connect(place.target)
    loop = asyncio.get_running_loop()
    raw = terminal and interactive and sys.stdin.isatty()
    restore = _raw_terminal() if raw else None
    interrupts = 0

    def interrupted() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            loop.create_task(conn.run(commands.signal(token, "INT"), check=False))
        else:
            conn.close()

    try:
        opts = {}
        if terminal:
            size = shutil.get_terminal_size()
            opts = {"term_type": os.environ.get("TERM") or "xterm", "term_size": (size.columns, size.lines)}
        proc = await conn.create_process(command, encoding=None, **opts)
        escaped = not terminal
        pumps = [asyncio.create_task(_pump(proc.stdout, _Output(sys.stdout, escaped and sys.stdout.isatty()))),
                 asyncio.create_task(_pump(proc.stderr, _Output(sys.stderr, escaped and sys.stderr.isatty())))]
        if interactive:
            _stdin_feeder(loop, proc)
        else:
            proc.stdin.write_eof()
        if not raw:
            loop.add_signal_handler(signal.SIGINT, interrupted)
        if terminal:
            loop.add_signal_handler(signal.SIGWINCH, lambda: proc.change_terminal_size(
                *shutil.get_terminal_size()))
        try:
            await proc.wait()
            await asyncio.gather(*pumps, return_exceptions=True)
        except (OSError, asyncssh.Error):
            return EXIT_LOST
        if interrupts > 1:
            return 128 + signal.SIGINT  # closed by a second Ctrl-C, as a shell reports it
        if proc.exit_status is not None and proc.exit_status >= 0:
            return proc.exit_status
        sig = getattr(signal, f"SIG{proc.exit_signal[0]}", None) if proc.exit_signal else None
        return 128 + int(sig) if sig is not None else EXIT_LOST
    finally:
        for s in (signal.SIGINT, signal.SIGWINCH):
            loop.remove_signal_handler(s)
        if restore is not None:
            restore()
        conn.close()


def _raw_terminal():
    """Puts the local terminal in raw mode; returns what restores it."""
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    return lambda: termios.tcsetattr(fd, termios.TCSADRAIN, saved)
