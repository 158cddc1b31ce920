"""What `dynia logs` runs on a node, as data per profile, and how each line's time is read.

A service's logs are its containers' (the engine's `logs --timestamps`: every line starts with
the engine's RFC 3339 time, so lines from every node merge in time order). dynia's own
components log to the journal on droplets (systemd units; the apply script as `dynia`), and
to files in the lab (keepalived's console log, Caddy's start log, the apply script's file), where
nothing runs journald. tests/unit/test_log_commands.py pins every string for both profiles.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import shlex
from dataclasses import dataclass

from ..paths import APPLY_LOG_IDENTIFIER, LOG_COMPONENTS
from ..paths import PATHS as P
from ..providers.base import NodeProfile
from .containers import CONTAINER_ID, Container, ContainerCommands, parse_list

# A duration as both container engines (Go's) and journalctl read it: 90s, 10m, 1h30m.
SINCE = re.compile(r"(?=\d)(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
# Before each container's lines in a one-round-trip read (a log line never starts with it: every
# line of `logs --timestamps` starts with its time).
MARK = "::dynia-logs"
# A file read with --since alone reads at most this many of its last lines.
FILE_LINES = 20000
UNITS = {"haproxy": "haproxy.service", "caddy": "caddy.service", "keepalived": "keepalived.service"}


def since_seconds(since: str) -> int | None:
    """10m → 600; None when it is not a duration (h, m, s; at least one)."""
    m = SINCE.fullmatch(since)
    if not m:
        return None
    h, mi, s = (int(x or 0) for x in m.groups())
    return h * 3600 + mi * 60 + s


@dataclass(frozen=True)
class LogWindow:
    """Which lines: since (a duration back from now), tail (the last N), follow (then every new one)."""
    since: str | None = None
    tail: int | None = None
    follow: bool = False

    def __post_init__(self) -> None:
        if self.since is not None and since_seconds(self.since) is None:
            raise ValueError(f"since is a duration like 90s, 10m or 1h30m, not {self.since!r}")
        if self.tail is not None and self.tail < 0:
            raise ValueError("tail counts lines: 0 or more")


@dataclass(frozen=True)
class ComponentLog:
    """Where one of dynia's components logs on a node: the command that reads it, and the form
    of its lines' times (iso: RFC 3339 first word; ctime: keepalived's `Tue Dec  8 02:01:22 2026:`;
    caddy: a JSON object whose `ts` is Unix seconds). command None: this kind of node keeps no
    log of it (`absent` says why)."""
    command: str | None
    time_form: str = "iso"
    absent: str = ""


@dataclass(frozen=True)
class LogCommands:
    profile: NodeProfile

    @property
    def containers(self) -> ContainerCommands:
        return ContainerCommands(self.profile)

    def container(self, container_id: str, window: LogWindow, after: str | None = None) -> str:
        """One container's lines, each prefixed with its time; `after` (an engine time, RFC 3339)
        replaces since/tail: the lines from there on, when a followed container comes back."""
        if not CONTAINER_ID.fullmatch(container_id):
            raise ValueError("a container id is 64 hex digits")
        opts = ["--timestamps"]
        if after is not None:
            opts.append(f"--since {shlex.quote(after)}")
        else:
            opts += [f"--since {window.since}"] if window.since else []
            opts += [f"--tail {window.tail}"] if window.tail is not None else []
        opts += ["--follow"] if window.follow else []
        return f"{self.containers.engine} logs {' '.join(opts)} {container_id} 2>&1"

    def service(self, service: str, window: LogWindow) -> str:
        """Every container of the service and their lines, in one round trip (never with follow):
        the listing (containers.parse_list), then `MARK <id>` before each container's lines."""
        if window.follow:
            raise ValueError("a followed log is read per container")
        one = self.container("0" * 64, window).replace("0" * 64, '"$id"')
        return f'{self.containers.listing(service)} || exit 1; for id in $ids; do echo "{MARK} $id"; {one}; done'

    def component(self, name: str, window: LogWindow) -> ComponentLog:
        if name not in LOG_COMPONENTS:
            raise ValueError(f"dynia keeps no log named {name!r}")
        if self.profile.service_manager == "systemd":
            which = f"-t {APPLY_LOG_IDENTIFIER}" if name == "dynia" else f"-u {UNITS[name]}"
            opts = [f"--since -{window.since}"] if window.since else []
            opts += [f"-n {window.tail}"] if window.tail is not None else []
            opts += ["-f"] if window.follow else []
            return ComponentLog(f"journalctl --no-pager --no-hostname -o short-iso-precise {which} {' '.join(opts)}"
                                .rstrip())
        files = {"keepalived": (P.keepalived_log, "ctime"), "caddy": (P.caddy_start_log, "caddy"),
                 "dynia": (P.apply_log, "iso")}
        if name not in files:
            # The lab's HAProxy logs to syslog (haproxy.cfg: log /dev/log), and lab nodes run none.
            return ComponentLog(None, absent="lab nodes keep no HAProxy log (it logs to syslog, which they do not run)")
        path, form = files[name]
        lines = window.tail if window.tail is not None else FILE_LINES
        if window.follow:
            return ComponentLog(f"tail -n {lines} -F {path} 2>/dev/null", form)
        return ComponentLog(f"[ ! -e {path} ] || tail -n {lines} {path}", form)


@dataclass
class ServiceRead:
    """LogCommands.service's output, read back: the containers and each one's lines."""
    containers: list[Container]
    lines: dict[str, list[str]]


def parse_service(output: str) -> ServiceRead:
    head, *parts = output.split(f"{MARK} ")
    containers = parse_list(head)
    known = {c.id for c in containers}
    lines: dict[str, list[str]] = {}
    for part in parts:
        cid, _, body = part.partition("\n")
        if cid.strip() in known:
            lines[cid.strip()] = body.splitlines()
    return ServiceRead(containers, lines)


# --- a line's time ----------------------------------------------------------------------------

ISO = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:[.,](\d{1,9}))?(Z|[+-]\d\d:?\d\d)\s?")
CTIME = re.compile(r"[A-Z][a-z]{2} ([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}): ?")


def _ns(seconds: float | int, fraction: str = "") -> int:
    return int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9])


def split_time(line: str, form: str = "iso") -> tuple[int | None, str]:
    """(the line's time in ns since the epoch, its text without the time); (None, line) when it
    carries no time in that form."""
    if form == "iso":
        m = ISO.match(line)
        if not m:
            return None, line
        zone = m.group(3).replace("Z", "+00:00")
        if ":" not in zone:
            zone = zone[:3] + ":" + zone[3:]
        try:
            when = dt.datetime.fromisoformat(m.group(1) + zone)
        except ValueError:
            return None, line
        return _ns(when.timestamp(), m.group(2) or ""), line[m.end():]
    if form == "ctime":
        m = CTIME.match(line)
        if not m:
            return None, line
        try:
            # keepalived writes the node's local time; lab nodes share this machine's zone.
            when = dt.datetime.strptime(m.group(1).replace("  ", " "), "%b %d %H:%M:%S %Y").astimezone()
        except ValueError:
            return None, line
        return _ns(when.timestamp()), line[m.end():]
    if form == "caddy":
        try:
            ts = json.loads(line).get("ts")
        except (ValueError, AttributeError):
            return None, line
        if isinstance(ts, (int, float)) and not isinstance(ts, bool) and 0 <= ts < 1e11:
            whole, _, frac = f"{ts:.9f}".partition(".")
            return _ns(int(whole), frac), line
        return None, line
    raise ValueError(f"unknown time form {form!r}")


def engine_time(ns: int) -> str:
    """ns since the epoch → RFC 3339 with nanoseconds, as both engines' --since read it."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{rest:09d}Z"
