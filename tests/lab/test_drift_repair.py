"""Seed scenario 2 on real lab nodes: drift injected by hand on one node → drift-check reports
exactly that node and kind → repair heals it → drift-check clean, the node's hashes equal the
render, and the apply reports show that nothing else was reloaded or pushed. Also what leaves
every file alone: keepalived killed, a service's containers stopped (kind `stopped`).

Runs the product path (dynia.operations.drift.check, dynia.operations.repair.repair) with the cache holding the lab's
outputs and SSH identity, as `dynia up` leaves them: the same targets the CLI reaches.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path

from dynia.operations import drift, repair
from dynia.paths import PATHS

from .conftest import LabCluster, eventually, record

NODE = "brave-panda"  # a BACKUP: the holder is not needed to prove the point
RECORD = os.environ.get("DYNIA_RECORD_FACTS")  # a directory: write tests/facts/drift recordings there


def _findings(report) -> list[tuple]:
    return sorted((n.node, d.kind, d.target) for n in report.nodes for d in n.drift)


def _heal(lc: LabCluster, expected_layer: str, expected_reloads: list[str], forced: bool = False):
    lines: list[str] = []
    result = repair.repair(lc.cluster(), on_progress=lines.append)
    assert [(s.node, s.layer, s.forced) for s in result.steps] == [(NODE, expected_layer, forced)], lines
    (report,) = result.reports
    assert report["exitStatus"] == 0 and report["status"] == "applied", report
    assert report["reloaded"] == expected_reloads, report
    assert result.after is not None and result.after.exit_code == 0, _findings(result.after)
    assert any(NODE in line for line in lines)
    return result


def _live_sha(lc: LabCluster, node: str, target: str) -> str:
    return hashlib.sha256(lc.cat(node, target)).hexdigest()


def _record(lc: LabCluster, name: str) -> None:
    """Recorded output of the drift fact on NODE, for tests/facts/drift/ (DYNIA_RECORD_FACTS=dir):
    the node's raw answers only. What they must parse and classify to is stated by hand in
    NAME.expected (tests/unit/test_drift.py), never taken from dynia's own output here."""
    if not RECORD:
        return
    from dynia import providers
    from dynia.nodes import facts as F
    from dynia.nodes.push import run
    from dynia.render.rendered import render_cluster
    from dynia.engine.session import targets

    c = lc.cluster()
    fact = drift.fact_for(render_cluster(c), providers.of(c.spec).profile)
    target = next(t for t in targets(c) if t.node == NODE)
    status, out, _ = run(target, fact.command)
    running_status, running_out, _ = run(target, F.running(providers.of(c.spec).profile).command)
    applied = json.loads(lc.cat(NODE, PATHS.state("applied.json")))
    holders = lc.vip_holder()
    Path(RECORD, f"{name}.recorded").write_text(json.dumps(
        {"node": NODE, "output": out, "exit_status": status, "applied": applied,
         "running_output": running_out, "running_exit_status": running_status,
         "holder": holders[0] if len(holders) == 1 else None},
        indent=2, sort_keys=True) + "\n")


def _cli(lc: LabCluster, monkeypatch, *args: str):
    """`dynia drift-check …` through its Typer command (main.py registers the same function)."""
    import typer
    from typer.testing import CliRunner

    from dynia.cli import drift as cli_drift

    app = typer.Typer()
    cli_drift.register(app)
    monkeypatch.chdir(lc.project.root)
    return CliRunner().invoke(app, ["drift-check", "--cluster", "lab", *args])


def test_drift_on_one_node_is_reported_exactly_and_repair_heals_only_it(shared_applied_lab, monkeypatch):
    lc = shared_applied_lab
    lc.cache_as_after_up()
    c = lc.cluster()
    started = time.monotonic()
    before, rendering = drift.check(c)
    record("drift_check_3_nodes_seconds", round(time.monotonic() - started, 3))
    assert before.exit_code == 0, json.dumps(before.as_dict(), indent=1)[:6000]
    _record(lc, "lab-node-clean")
    caddyfile = PATHS.caddyfile

    # 1. Whitespace only: trailing blanks and CRLF line endings in the Caddyfile.
    lc.sh(NODE, f"sed -i 's/$/  \\r/' {caddyfile}")
    report, _ = drift.check(c)
    assert _findings(report) == [(NODE, "content", caddyfile)]
    (d,) = report.nodes[[n.node for n in report.nodes].index(NODE)].drift
    assert d.whitespace_only is True and d.layer == "infra"
    r = _cli(lc, monkeypatch, "--json")
    assert r.exit_code == 3, r.output
    data = json.loads(r.stdout)
    assert data["drifted"] == [NODE] and data["nodes"][[n["node"] for n in data["nodes"]].index(NODE)]["drift"][0][
        "whitespaceOnly"] is True
    _heal(lc, "infra", ["caddy"])
    want = next(f.sha256 for f in rendering.files[NODE] if f.target == caddyfile)
    assert _live_sha(lc, NODE, caddyfile) == want

    # 2. Real content: a directive added by hand.
    lc.sh(NODE, f"printf '\\n:9999 {{\\n\\trespond \"hand-made\" 200\\n}}\\n' >> {caddyfile}")
    report, _ = drift.check(c)
    assert _findings(report) == [(NODE, "content", caddyfile)]
    assert report.nodes[[n.node for n in report.nodes].index(NODE)].drift[0].whitespace_only is False
    _heal(lc, "infra", ["caddy"])
    assert _live_sha(lc, NODE, caddyfile) == want

    # 3. A mode: notify.sh made world-readable.
    lc.sh(NODE, f"chmod 0755 {PATHS.notify}")
    report, _ = drift.check(c)
    assert _findings(report) == [(NODE, "mode", PATHS.notify)]
    _heal(lc, "infra", ["keepalived"])
    assert lc.sh(NODE, f"stat -c %a {PATHS.notify}").stdout.decode().strip() == "700"

    # 4. A stray route: Caddy would serve it; repair removes it (a removal push: Caddy reloads).
    stray = f"{PATHS.caddy_routes}/stray.caddy"
    lc.sh(NODE, f"printf 'http://stray.lab.example {{\\n\\trespond \"stray\" 200\\n}}\\n' > {stray}")
    report, _ = drift.check(c)
    assert _findings(report) == [(NODE, "leftover", stray)]
    result = _heal(lc, "service:stray", ["caddy"])
    assert result.steps[0].removal and result.reports[0]["removed"] == [stray]
    assert lc.sh(NODE, f"test -e {stray}", check=False).returncode != 0

    # 5. A service container started by hand from another image.
    name = lc.sh(NODE, "podman ps --format '{{.Names}}' --filter label=com.docker.compose.project=dynia-api"
                 ).stdout.decode().split()[0]
    lc.sh(NODE, f"podman commit -q {name} localhost/dynia-lab-other >/dev/null && podman rm -f {name} >/dev/null && "
                f"podman run -d -q --name {name} --network host --label io.podman.compose.project=dynia-api "
                "--label com.docker.compose.project=dynia-api --label com.docker.compose.service=api "
                "localhost/dynia-lab-other sh -c 'mkdir -p /www && echo ok > /www/healthz && "
                "exec httpd -f -p 127.0.0.1:9002 -h /www' >/dev/null")
    report, _ = drift.check(c)
    assert _findings(report) == [(NODE, "image", f"container:{name}")]
    _record(lc, "lab-node-drifted")
    _heal(lc, "service:api", ["service:api", "caddy"], forced=True)
    running = lc.sh(NODE, f"podman inspect --format '{{{{.ImageName}}}}' {name}").stdout.decode().strip()
    assert running == "localhost/dynia-lab-app:latest"

    # Every file of every node equals the render; the other nodes were never pushed.
    for node in c.spec.nodes:
        for f in rendering.files[node]:
            assert _live_sha(lc, node, f.target) == f.sha256, (node, f.target)
    r = _cli(lc, monkeypatch)
    assert r.exit_code == 0, r.output
    assert "no drift" in r.stdout


def _running(lc: LabCluster, node: str, component: str) -> bool:
    from dynia.nodes.commands import NodeCommands
    from dynia.providers.local import PROFILE

    return lc.sh(node, NodeCommands(PROFILE).running(component), check=False).returncode == 0


def _crash_keepalived(lc: LabCluster, node: str) -> None:
    """A true crash: SIGKILL the VRRP child first (else the parent tells it to leave cleanly)."""
    for pidfile in (PATHS.keepalived_vrrp_pid, PATHS.keepalived_pid):
        os.kill(int(lc.cat(node, pidfile).strip()), signal.SIGKILL)
    eventually(lambda: not _running(lc, node, "keepalived"))


def _api_containers(lc: LabCluster, node: str) -> list[str]:
    return lc.sh(node, "podman ps -q --filter label=com.docker.compose.project=dynia-api").stdout.decode().split()


def test_keepalived_and_containers_stopped_by_hand_are_reported_stopped_and_repair_starts_them(
        shared_applied_lab, monkeypatch):
    lc = shared_applied_lab
    lc.cache_as_after_up()
    c = lc.cluster()
    before, _ = drift.check(c)
    assert before.exit_code == 0, json.dumps(before.as_dict(), indent=1)[:6000]
    holders = lc.vip_holder()
    assert holders == [c.spec.master_node] and NODE not in holders

    # 1. keepalived killed on a BACKUP: no file changed, yet the node cannot take over the VIP.
    _crash_keepalived(lc, NODE)
    report, _ = drift.check(c)
    assert _findings(report) == [(NODE, "stopped", "component:keepalived")]
    _record(lc, "lab-node-stopped-keepalived")
    r = _cli(lc, monkeypatch, "--json")
    assert r.exit_code == 3, r.output
    data = json.loads(r.stdout)
    row = data["nodes"][[n["node"] for n in data["nodes"]].index(NODE)]
    assert data["drifted"] == [NODE] and [(d["kind"], d["layer"]) for d in row["drift"]] == [("stopped", "infra")]
    # The forced infra push reload-or-starts every infra component (a reload for the running ones).
    _heal(lc, "infra", ["nftables", "caddy", "haproxy", "keepalived"], forced=True)
    assert _running(lc, NODE, "keepalived")
    assert lc.vip_holder() == holders, "the VIP moved"

    # 2. The api's containers stopped with the container engine on one node (api runs on every node).
    assert _api_containers(lc, NODE)
    lc.sh(NODE, "podman stop -t 2 $(podman ps -q --filter label=com.docker.compose.project=dynia-api) >/dev/null")
    assert _api_containers(lc, NODE) == []
    report, _ = drift.check(c)
    assert _findings(report) == [(NODE, "stopped", "service:api")]
    _record(lc, "lab-node-stopped-api")
    _heal(lc, "service:api", ["service:api", "caddy"], forced=True)
    assert _api_containers(lc, NODE)
    assert lc.vip_holder() == holders, "the VIP moved"
    r = _cli(lc, monkeypatch)
    assert r.exit_code == 0, r.output
    assert "no drift" in r.stdout
