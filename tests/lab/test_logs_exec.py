"""`dynia logs` and `dynia exec` on real lab nodes, through the installed console script.

The cluster's cache holds the lab's addresses and the local provider's identity (as after
`dynia up`), so the commands go through session.reach, the pinned host keys and the node
profile's commands exactly as against droplets. Lines are written into a container's log the
way its own process would: to the standard output of the container's PID 1.
"""
from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from dynia.nodes.commands import NodeCommands
from dynia.paths import compose_project
from dynia.providers.local import PROFILE

from .conftest import eventually

DYNIA = Path(sys.executable).parent / "dynia"   # the installed console script


def _dynia(lc, command, *args, timeout: float = 90, input: str | None = None) -> subprocess.CompletedProcess:
    """`dynia -C PROJECT COMMAND --cluster lab ARGS…` (the cluster before any `--`)."""
    return subprocess.run([str(DYNIA), "-C", str(lc.project.root), command, "--cluster", "lab", *args],
                          capture_output=True, text=True, timeout=timeout, input=input)


def _container(lc, node: str, service: str) -> str:
    out = lc.sh(node, f"podman ps -q --filter label=io.podman.compose.project={compose_project(service)}").stdout
    ids = out.decode().split()
    assert len(ids) == 1, (node, service, ids)
    return ids[0]


def _write(lc, node: str, service: str, text: str) -> None:
    """A line in the container's log, as if its own process printed it."""
    lc.sh(node, f"podman exec {_container(lc, node, service)} sh -c 'printf \"%s\\n\" \"$0\" > /proc/1/fd/1' "
                f"'{text}'")


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_logs_merge_three_nodes_in_write_order_and_an_unreachable_node_is_one_line(applied_lab):
    lc = applied_lab
    lc.cache_as_after_up()
    nodes = [n.id for n in lc.lab.nodes]
    written = []
    for i in range(9):
        node = nodes[i % 3]
        _write(lc, node, "api", f"order-{i} on {node}")
        written.append((node, f"order-{i} on {node}"))
    r = _dynia(lc, "logs", "api", "--json", "--grep", "^order-")
    assert r.returncode == 0, r.stderr
    got = [(d["node"], d["line"]) for d in _json_lines(r.stdout)]
    assert got == written
    times = [d["time"] for d in _json_lines(r.stdout)]
    assert times == sorted(times)

    # --tail keeps the cluster's last N; text lines start with their node; --node narrows.
    r = _dynia(lc, "logs", "api", "--tail", "2")
    assert r.returncode == 0, r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines()] == [nodes[1], nodes[2]]
    assert r.stdout.splitlines()[-1].endswith("order-8 on " + nodes[2])
    r = _dynia(lc, "logs", "api", "--node", nodes[0], "--json", "--grep", "^order-")
    assert {d["node"] for d in _json_lines(r.stdout)} == {nodes[0]} and len(_json_lines(r.stdout)) == 3

    # A line from the node is text for a terminal: its control characters are shown escaped.
    _write(lc, nodes[0], "api", "evil \033]0;owned\007 title")
    r = _dynia(lc, "logs", "api", "--tail", "1")
    assert "\033" not in r.stdout and "\007" not in r.stdout and "evil \\x1b]0;owned\\x07 title" in r.stdout

    # dynia's own logs: the apply script recorded every push of the roll; keepalived its states.
    r = _dynia(lc, "logs", "dynia", "--json")
    assert r.returncode == 0, r.stderr
    pushes = _json_lines(r.stdout)
    assert {d["node"] for d in pushes} == set(nodes)
    assert any(d["line"].startswith("push infra v") and ": applied" in d["line"] for d in pushes), pushes
    r = _dynia(lc, "logs", "keepalived", "--grep", "MASTER")
    assert r.returncode == 0 and nodes[0] in r.stdout, r.stderr

    # One node without sshd: one line says so, the others' lines are all there, exit 14.
    lc.sh(nodes[2], 'kill "$(cat /run/sshd.pid)"')
    r = _dynia(lc, "logs", "api", "--json", "--grep", "^order-")
    assert r.returncode == 14, (r.stdout, r.stderr)
    events = _json_lines(r.stdout)
    notices = [e for e in events if "notice" in e]
    assert [(e["node"], e["notice"].split(":")[0]) for e in notices] == [(nodes[2], "unreachable")]
    assert [(e["node"], e["line"]) for e in events if "line" in e] == [w for w in written if w[0] != nodes[2]]


class _Follower:
    """`dynia logs SERVICE -f --json` running; its events read as they come."""

    def __init__(self, lc, *args):
        self.proc = subprocess.Popen([str(DYNIA), "-C", str(lc.project.root), "logs", *args, "-f", "--json",
                                      "--cluster", "lab"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: list[dict] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.append({**json.loads(line), "seen": time.time()})

    def lines(self, node: str | None = None) -> list[str]:
        return [e["line"] for e in list(self.events) if "line" in e and node in (None, e["node"])]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=15)
        finally:
            self.proc.kill()


def _written_and_followed(lc, f: _Follower, node: str, service: str, text: str, timeout: float = 30) -> bool:
    """Writes the line (again, while the node has no container of the service yet, or the
    follower has not shown it) until the follower shows it on that node."""
    def attempt():
        if lc.sh(node, f"podman ps -q --filter label=io.podman.compose.project={compose_project(service)}"
                 ).stdout.strip():
            _write(lc, node, service, text)
        return text in f.lines(node)
    return eventually(attempt, timeout=timeout, interval=1.0)


def _crash_keepalived(lc, node) -> None:
    """A true crash, as tests/lab/test_failover.py makes one: SIGKILL the VRRP child, then the parent."""
    for pidfile in ("/run/keepalived-vrrp.pid", "/run/keepalived.pid"):
        os.kill(int(lc.cat(node, pidfile).strip()), signal.SIGKILL)
    # A killed keepalived cannot remove its VIP (gone already if the dying parent got to it first).
    lc.sh(node, f"ip addr del {lc.lab.vip}/24 dev eth0", check=False)


def test_follow_keeps_following_an_active_only_service_through_a_master_crash_and_back(applied_lab):
    lc = applied_lab
    lc.cache_as_after_up()
    master = lc.cluster().spec.master_node
    f = _Follower(lc, "admin", "--tail", "0")
    try:
        # Following once a line written now shows up (the follower is attached).
        assert _written_and_followed(lc, f, master, "admin", "before the crash"), f.events
        _crash_keepalived(lc, master)
        assert eventually(lambda: len(lc.vip_holder()) == 1 and lc.vip_holder() != [master], timeout=15)
        [holder] = lc.vip_holder()
        # notify.sh starts admin on the new MASTER; the follower finds its container by itself.
        assert eventually(lambda: lc.sh(holder, "podman ps -q --filter label=io.podman.compose.project="
                                                "dynia-admin").stdout.strip(), timeout=30)
        _write(lc, holder, "admin", "on the new holder")
        assert eventually(lambda: "on the new holder" in f.lines(holder), timeout=10), f.events
        # The old MASTER comes back and preempts: the new holder's container ends, and says so.
        lc.sh(master, NodeCommands(PROFILE).reload("keepalived"))
        assert eventually(lambda: lc.vip_holder() == [master], timeout=20), lc.vip_holder()
        assert eventually(lambda: any(e.get("node") == holder and "ended" in e.get("notice", "")
                                      for e in f.events), timeout=30), f.events
        # notify.sh on the old MASTER starts admin again there: followed from its first line.
        assert _written_and_followed(lc, f, master, "admin", "home again"), f.events
    finally:
        code = f.stop()
    assert code == 130, f.proc.stderr.read()
    assert f.lines(master)[0] == "before the crash"


def test_exec_runs_in_the_chosen_nodes_container_and_its_exit_code_is_dynias(applied_lab):
    lc = applied_lab
    lc.cache_as_after_up()
    nodes = [n.id for n in lc.lab.nodes]
    # sshd runs each command through root's bash: a lab node's is a fresh Debian root's, never
    # this machine's (whose pyenv setup made every SSH command wait on a lock file).
    for node in nodes:
        assert lc.sh(node, "cmp /root/.bashrc /etc/skel/.bashrc", check=False).returncode == 0, node
    r = _dynia(lc, "exec", "api", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (r.returncode, r.stdout, r.stderr) == (7, "out\n", "err\n")
    assert _dynia(lc, "exec", "api", "--", "sh", "-c", "exit 0").returncode == 0
    r = _dynia(lc, "exec", "api", "--", "no-such-program")  # the engine's own code, as `podman exec` gives it
    assert r.returncode == 127 and "no-such-program" in r.stderr
    # stdin with -i; the node named with --node is the one it ran on (the line is in that
    # node's container log only).
    r = _dynia(lc, "exec", "api", "--node", nodes[2], "-i", "--", "sh", "-c",
               "read x; echo \"$x\" > /proc/1/fd/1; exit 3", input="marker-on-calm\n")
    assert r.returncode == 3, r.stderr
    for node in nodes:
        log = lc.sh(node, f"podman logs {_container(lc, node, 'api')}").stdout.decode()
        assert ("marker-on-calm" in log) == (node == nodes[2]), node
    # active-only: the VIP holder's container, the only one there is.
    r = _dynia(lc, "exec", "admin", "--", "sh", "-c", "cat /www/index.html")
    assert (r.returncode, r.stdout) == (0, "admin\n"), r.stderr
    r = _dynia(lc, "exec", "nope", "--", "sh")
    assert r.returncode == 10 and r.stderr.startswith("error: no service 'nope'"), r.stderr

    # Ctrl-C without a terminal reaches the command itself (podman exec passes no signal on).
    proc = subprocess.Popen([str(DYNIA), "-C", str(lc.project.root), "exec", "api", "--cluster", "lab", "--", "sh",
                             "-c", "trap 'echo caught; exit 9' INT; echo ready; while :; do sleep 0.2; done"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 9
        assert proc.stdout.read() == "caught\n"
    finally:
        proc.kill()


def _pty_run(argv: list[str], keys: list[tuple[bytes, bytes]], timeout: float = 60) -> tuple[int, bytes]:
    """Runs argv on a new pseudo-terminal; each (wait_for, then_type) pair waits for the output
    to contain wait_for, then types. Returns (exit status, everything shown)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    shown, deadline = b"", time.monotonic() + timeout
    pending = list(keys)
    try:
        while time.monotonic() < deadline:
            if pending and pending[0][0] in shown:
                os.write(fd, pending.pop(0)[1])
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                shown += data
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), shown
    finally:
        os.close(fd)


def test_exec_with_a_tty_gives_the_command_a_terminal_and_ctrl_c_goes_through_it(applied_lab):
    lc = applied_lab
    lc.cache_as_after_up()
    base = [str(DYNIA), "-C", str(lc.project.root), "exec", "--cluster", "lab", "-i", "-t", "api", "--"]
    code, shown = _pty_run(base + ["sh", "-c", "tty; read x; echo got:$x; exit 5"], [(b"/dev/pts/", b"hello\r")])
    assert code == 5, shown
    assert b"/dev/pts/" in shown and b"got:hello" in shown
    # Ctrl-C is a keystroke on a terminal: the remote terminal turns it into SIGINT.
    code, shown = _pty_run(base + ["sh", "-c", "trap 'echo caught; exit 9' INT; echo ready; "
                                                "while :; do sleep 0.2; done"], [(b"ready", b"\x03")])
    assert code == 9 and b"caught" in shown, shown
