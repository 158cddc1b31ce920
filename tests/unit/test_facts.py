"""Facts are a command plus a parser: each parser checked against recorded output in
tests/facts/<fact>/*.json, and the one-round-trip script run for real under sh."""
from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from dynia.nodes import answers as A
from dynia.nodes import facts as F
from dynia.providers import digitalocean, local

FIXTURES = Path(__file__).resolve().parents[1] / "facts"
CASES = sorted(FIXTURES.glob("*/*.json"))


PROFILES = {p.name: p for p in (local.PROFILE, digitalocean.PROFILE)}


def _fact(name: str, data: dict) -> F.Fact:
    """A constant fact, or one built for the profile and address its output was recorded on."""
    if name in F.FACTS:
        return F.FACTS[name]
    return F.BUILDERS[name](PROFILES[data["profile"]], data["private_ip"])


def test_every_fact_has_recorded_output():
    assert {p.parent.name for p in CASES} == set(F.FACTS) | set(F.BUILDERS)


@pytest.mark.parametrize("case", CASES, ids=[f"{p.parent.name}-{p.stem}" for p in CASES])
def test_fact_parses_its_recorded_output(case):
    data = json.loads(case.read_text())
    fact = _fact(case.parent.name, data)
    assert fact.command == data["command"]
    assert _processed(fact, data["output"], data["exit_status"]) == data["fact"]


def _processed(fact: F.Fact, output: str, exit_status: int):
    """The parser's data, or {"unreadable": reason} for an output that does not fit its model."""
    try:
        return fact.process(output, exit_status)
    except A.Unreadable as exc:
        return {"unreadable": str(exc)}


def test_status_reads_every_fact_in_one_script_per_node():
    names = [f.name for f in F.status_facts(local.PROFILE, "10.213.0.11")]
    # pushed_from is read by the engine's session (plan's lock-out check), not by status
    assert sorted(names) == sorted((set(F.FACTS) | set(F.BUILDERS)) - {"pushed_from"})


def test_profile_built_facts_take_the_profiles_commands():
    from dynia.nodes.commands import NodeCommands

    for profile in PROFILES.values():
        running = F.running(profile).command
        for component in ("caddy", "haproxy", "keepalived"):
            assert f"if {NodeCommands(profile).running(component)}; then echo {component} up;" in running
    assert F.containers(local.PROFILE).command.startswith("ids=$(podman ps -aq --filter label=io.podman.compose.project)")
    assert F.containers(digitalocean.PROFILE).command.startswith("ids=$(docker ps -aq --filter label=com.docker.compose.project)")
    assert F.vip_device_addresses(digitalocean.PROFILE).command == "ip -4 -o addr show dev lo"
    assert "http://10.110.0.2:8880/dynia-health" in F.caddy_health(digitalocean.PROFILE, "10.110.0.2").command


def test_show_stat_asks_the_admin_socket_with_python_alone(tmp_path):
    """No socat on nodes: the fact's python3 one-liner talks to a real unix socket."""
    import socket
    import threading

    path = str(tmp_path / "admin.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    asked = []

    def answer():
        conn, _ = srv.accept()
        asked.append(conn.recv(100))
        conn.sendall(b"# pxname,svname,status,hrsp_2xx\nbe_api,BACKEND,UP,7\n\n")
        conn.close()

    t = threading.Thread(target=answer)
    t.start()
    fact = dataclasses.replace(F.SHOW_STAT, command=F.SHOW_STAT.command.replace("/run/haproxy/admin.sock", path))
    out = subprocess.run(["sh", "-c", F.script([fact])], capture_output=True, text=True, check=True).stdout
    t.join(5)
    srv.close()
    assert asked == [b"show stat\n"]
    assert F.parse([fact], out)["show_stat"]["backends"]["be_api"]["hrsp"]["2xx"] == 7


def test_a_compound_facts_errors_stay_out_of_the_output():
    noisy = F.Fact("noisy", "echo one; ls /nonexistent-dynia; echo two", lambda out, rc: (out, rc))
    out = subprocess.run(["sh", "-c", F.script([noisy])], capture_output=True, text=True, check=True)
    assert F.parse([noisy], out.stdout) == {"noisy": ("one\ntwo", 0)}
    assert out.stderr == ""


def test_one_script_frames_every_fact_and_keeps_each_exit_status(tmp_path):
    (tmp_path / "vrrp").write_text("BACKUP 2026-11-28T02:10:38Z\n")
    (tmp_path / "applied.json").write_text('{"configVersion": 2}')  # no trailing newline
    wanted = [dataclasses.replace(F.VRRP, command=f"cat {tmp_path}/vrrp"),
              dataclasses.replace(F.APPLIED, command=f"cat {tmp_path}/applied.json"),
              dataclasses.replace(F.DEGRADED, command=f"cat {tmp_path}/degraded")]  # absent
    out = subprocess.run(["sh", "-c", F.script(wanted)], capture_output=True, text=True, check=True).stdout
    assert F.parse(wanted, out) == {"vrrp": {"role": "BACKUP", "since": "2026-11-28T02:10:38Z"},
                                    "applied": {"configVersion": 2}, "degraded": None}


def test_fact_commands_only_read():
    # awk prints the mount table's lines under /srv; the loop cats the mover's records
    reads = ("cat /opt/dynia/state/", "grep ", "lsattr -d ", "python3 -c ", "awk '$5 ~ \"^/srv/\" ",
             "for f in /opt/dynia/state/volume-actions/*.json; ")
    for fact in F.FACTS.values():
        assert fact.command.startswith(reads), fact.command
        assert ">" not in fact.command.replace("< \"$f\"", ""), fact.command   # writes nothing
    assert "show stat" in F.SHOW_STAT.command and "set " not in F.SHOW_STAT.command.split("show stat")[1]
