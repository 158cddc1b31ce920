"""Where a roll is, while `dynia up` runs: one row per node and layer (waiting, pushing,
validating, reloading, gating try k of n, ok / rolled back / failed) with elapsed time.

Fed with the Pulumi engine's events (Engine.up hands each one to its watcher):
- a push's ResourcePreEvent: it started (op `same`: nothing to push, `unchanged`);
- the push's own output lines, which pulumi-command's remote Command logs as diagnostic events
  *while the command runs* (its `logging` input: each line of the command's output becomes an
  engine log message on the resource). templates/node/apply.py prints one `dynia-step …` line
  per protocol step (backup, validate, reload, gate k/n, rollback) — names and counts only;
- ResOutputsEvent: the push finished (ok); an error diagnostic or ResOpFailedEvent: it failed
  (rolled back when the script said it rolled back).
Droplets (the provision phase) get a row too: creating → ok.

On a terminal the rows are a Rich live table; otherwise (CI logs, pipes) each change is one
plain line; with `--json` nothing is shown (the caller attaches no display).
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Callable

STEP_LINE = re.compile(r"^dynia-step (?P<step>[a-z-]+)(?: (?P<k>\d+)/(?P<n>\d+))?\s*$")
# Node ids are two words (dynia.spec.model.NODE_ID), so `my-service-infra-push` is node my-service.
_PUSH = re.compile(r"^(?P<node>[a-z]+-[a-z]+)-(?P<layer>infra|service-[a-z0-9-]+)-push$")
_REASON = re.compile(r"dynia apply: \S+ \S+: (.*)$")
STEP_STATES = {"backup": "pushing", "validate": "validating", "reload": "reloading", "gate": "gating",
               "rollback": "rolling back"}
FINAL = ("ok", "unchanged", "rolled back", "failed")
STYLES = {"waiting": "dim", "unchanged": "dim", "ok": "green", "rolled back": "red", "failed": "red",
          "rolling back": "yellow", "gating": "cyan"}


@dataclass
class Row:
    phase: str
    node: str
    layer: str
    state: str = "waiting"
    detail: str = ""
    started: float | None = None
    ended: float | None = None
    rolling_back: bool = False

    def elapsed(self, now: float) -> float | None:
        if self.started is None:
            return None
        return (self.ended if self.ended is not None else now) - self.started


def _key(md) -> tuple[str, str] | None:
    """(node, layer) of a resource the display follows: a push or a droplet."""
    name = md.urn.rsplit("::", 1)[-1]
    m = _PUSH.match(name)
    if m and md.type == "command:remote:Command":
        return m.group("node"), m.group("layer").replace("service-", "service:", 1)
    if md.type.endswith("/droplet:Droplet"):
        return name.removesuffix("-droplet"), "droplet"
    return None


def _op(md) -> str:
    return getattr(md.op, "value", str(md.op))


class RollProgress:
    """The state machine: rows keyed by (phase, node, layer), changed by engine events."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.begun = clock()
        self.rows: dict[tuple[str, str, str], Row] = {}
        self.phase = ""
        self._lock = threading.Lock()  # events arrive on the Automation API's reader thread

    def expect(self, phase: str, node: str, layer: str) -> None:
        self._row(phase, node, layer)

    def _row(self, phase: str, node: str, layer: str) -> Row:
        key = (phase, node, layer)
        if key not in self.rows:
            self.rows[key] = Row(phase, node, layer)
        return self.rows[key]

    def phase_started(self, phase: str) -> None:
        self.phase = phase

    def phase_done(self, phase: str) -> list[Row]:
        """A finished phase: what never started had nothing to push."""
        with self._lock:
            changed = []
            for row in self.rows.values():
                if row.phase == phase and row.state == "waiting":
                    row.state = "unchanged"
                    changed.append(row)
            return changed

    def feed(self, phase: str, event) -> list[Row]:
        """Apply one engine event; the rows it changed."""
        with self._lock:
            return self._feed(phase, event)

    def _feed(self, phase: str, ev) -> list[Row]:
        now = self.clock()
        pre = getattr(ev, "resource_pre_event", None)
        if pre is not None:
            key = _key(pre.metadata)
            op = _op(pre.metadata)
            if key is None or op in ("delete", "delete-replaced", "discard-replaced", "read"):
                return []
            row = self._row(phase, *key)
            if op == "same":
                return self._set(row, "unchanged", now, final=True)
            row.started = now
            return self._set(row, "creating" if key[1] == "droplet" else "pushing", now)
        done = getattr(ev, "res_outputs_event", None)
        if done is not None:
            key = _key(done.metadata)
            if key is None:
                return []
            row = self._row(phase, *key)
            if row.state in FINAL:
                return []
            return self._set(row, "unchanged" if _op(done.metadata) == "same" else "ok", now, final=True)
        failed = getattr(ev, "res_op_failed_event", None)
        if failed is not None:
            key = _key(failed.metadata)
            return self._failed(self._row(phase, *key), now, "") if key else []
        diag = getattr(ev, "diagnostic_event", None)
        if diag is not None and diag.urn:
            name = diag.urn.rsplit("::", 1)[-1]
            m = _PUSH.match(name)
            if not m:
                return []
            row = self._row(phase, m.group("node"), m.group("layer").replace("service-", "service:", 1))
            if diag.severity == "error":
                lines = [ln.strip() for ln in (diag.message or "").splitlines() if ln.strip()]
                return self._failed(row, now, lines[-1] if lines else "")
            changed: list[Row] = []
            for line in (diag.message or "").splitlines():
                step = STEP_LINE.match(line.strip())
                if step is None or row.state in FINAL:
                    continue
                state = STEP_STATES.get(step.group("step"))
                if state is None:
                    continue
                if row.started is None:
                    row.started = now
                if state == "rolling back":
                    row.rolling_back = True
                detail = f"try {step.group('k')} of {step.group('n')}" if step.group("k") else ""
                changed += self._set(row, state, now, detail=detail)
            return changed
        return []

    def _failed(self, row: Row, now: float, reason: str) -> list[Row]:
        if row.state in FINAL:
            return []
        # The script's stderr ends with its one-line reason ("dynia apply: <node> <layer>: why"),
        # which ends the provider's message: the row already names the node and layer.
        m = _REASON.search(reason)
        reason = m.group(1) if m else reason
        return self._set(row, "rolled back" if row.rolling_back else "failed", now, final=True,
                         detail=reason[:100])

    @staticmethod
    def _set(row: Row, state: str, now: float, *, final: bool = False, detail: str = "") -> list[Row]:
        if (row.state, row.detail) == (state, detail) and not final:
            return []
        row.state, row.detail = state, detail
        if final:
            row.started = row.started if row.started is not None else (now if state != "unchanged" else None)
            row.ended = now if row.started is not None else None
        return [row]

    # --- showing it -----------------------------------------------------------------------

    def line(self, row: Row) -> str:
        """The plain one-line form of a row's new state (non-terminal output)."""
        now = self.clock()
        took = row.elapsed(now)
        text = f"+{now - self.begun:.1f}s {row.phase} {row.node} {row.layer}: {row.state}"
        if row.detail:
            text += f" ({row.detail})"
        if row.state in FINAL and took is not None:
            text += f" after {took:.1f}s"
        return text

    def table(self):
        from rich.table import Table
        from rich.text import Text

        from ..shown import escape

        now = self.clock()
        t = Table(title=f"dynia up: {self.phase}" if self.phase else "dynia up", title_justify="left",
                  show_edge=False)
        for col in ("phase", "node", "layer", "state", "elapsed"):
            t.add_column(col, justify="right" if col == "elapsed" else "left")
        with self._lock:
            rows = list(self.rows.values())
        for r in rows:
            took = r.elapsed(now)
            # Rich's Live draws this table past the console's escaping hook: the detail (the
            # apply script's words) is escaped here.
            state = r.state + (f" ({escape(r.detail)})" if r.detail else "")
            t.add_row(Text(r.phase), Text(r.node), Text(r.layer), Text(state, style=STYLES.get(r.state, "")),
                      Text(f"{took:.1f}s" if took is not None else ""))
        return t

    def __rich__(self):
        return self.table()


class Display:
    """The engine's watcher (Engine.up calls phase_started / event / phase_done): a live table
    on a terminal, plain lines otherwise. Use as a context manager around the engine's run."""

    def __init__(self, console, progress: RollProgress | None = None, live: bool | None = None):
        self.console = console
        self.progress = progress or RollProgress()
        self.live_mode = console.is_terminal if live is None else live
        self._live = None

    def __enter__(self):
        if self.live_mode:
            from rich.live import Live

            self._live = Live(self.progress, console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc):
        if self._live is not None:
            self._live.refresh()
            self._live.__exit__(*exc)
            self._live = None
        return False

    def _say(self, rows) -> None:
        if self.live_mode:
            return  # the live table redraws itself
        from rich.text import Text

        for row in rows:
            self.console.print(Text(self.progress.line(row)))

    def phase_started(self, phase: str) -> None:
        self.progress.phase_started(phase)
        if not self.live_mode:
            from rich.text import Text

            self.console.print(Text(f"phase {phase}: starting"))

    def event(self, phase: str, ev) -> None:
        self._say(self.progress.feed(phase, ev))

    def phase_done(self, phase: str) -> None:
        self._say(self.progress.phase_done(phase))


def expected_rows(cluster, holder, phases) -> list[tuple[str, str, str]]:
    """(phase, node, layer) of every push these phases may run, in rolling order: the rows start
    as `waiting` (a push Pulumi finds unchanged ends `unchanged`). From the pure render."""
    from ..errors import DyniaError
    from ..phases import phase_of
    from ..render.rendered import render_cluster

    try:
        rendering = render_cluster(cluster, holder=holder)
    except DyniaError:
        return []  # the engine run reports it; rows then appear as pushes start
    out = []
    for phase in phases:
        for node in rendering.rolling_order:
            layers = []
            for f in rendering.files.get(node, []):
                if phase_of(f.layer) == phase and f.layer not in layers:
                    layers.append(f.layer)
            out += [(phase, node, layer) for layer in sorted(layers, key=lambda name: (name != "infra", name))]
    return out
