"""One command on one node with its output streamed line by line as it comes (`dynia run`, a
release command): over the same pinned SSH session as every push, no TTY. Lines are handed to
the caller raw; whoever prints them escapes them (dynia.shown)."""
from __future__ import annotations

import asyncio
import signal
from typing import Callable

from .push import Target, _lost, connect

# A line longer than this is handed over in pieces: a command that never prints a newline must
# not grow dynia's memory without bound.
MAX_LINE = 64 * 1024


async def _pump(reader, name: str, on_line: Callable[[str, str], None]) -> None:
    pending = b""
    while True:
        chunk = await reader.read(MAX_LINE)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        while len(pending) > MAX_LINE:
            lines.append(pending[:MAX_LINE])
            pending = pending[MAX_LINE:]
        for line in lines:
            on_line(name, line.decode(errors="replace"))
    if pending:
        on_line(name, pending.decode(errors="replace"))


async def stream_async(target: Target, command: str, on_line: Callable[[str, str], None], *,
                       stdin: bytes | None = None, timeout: float = 3600) -> int:
    """Run `command` (from dynia.nodes.commands), feed it `stdin` (or nothing), call
    on_line("stdout"|"stderr", line) for each line; its exit status (128 + N when a signal N
    ended it, as a shell reports it; 255 when the node gave none)."""
    import asyncssh

    conn = await connect(target)
    try:
        proc = await conn.create_process(command, encoding=None)
        if stdin:
            proc.stdin.write(stdin)
        proc.stdin.write_eof()
        await asyncio.wait_for(asyncio.gather(_pump(proc.stdout, "stdout", on_line),
                                              _pump(proc.stderr, "stderr", on_line), proc.wait()), timeout)
    except (asyncio.TimeoutError, asyncssh.Error, OSError) as exc:
        raise _lost(target, "the command", timeout, exc) from None
    finally:
        conn.close()
    if proc.exit_status is not None and proc.exit_status >= 0:
        return proc.exit_status
    signum = getattr(signal, f"SIG{proc.exit_signal[0]}", None) if proc.exit_signal else None
    return 128 + int(signum) if signum is not None else 255


def stream(target: Target, command: str, on_line: Callable[[str, str], None], *, stdin: bytes | None = None,
           timeout: float = 3600) -> int:
    return asyncio.run(stream_async(target, command, on_line, stdin=stdin, timeout=timeout))
