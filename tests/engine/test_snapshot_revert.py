"""Seed scenario 7 on real lab nodes: snapshot → a deliberately bad config → the roll fails and
the node is rolled back → revert → render and sync OK → the cluster verifies healthy.

Why two doubles. The phases run on LabEngineDouble (tests/engine/lab_double.py): the real
provision → infra → apps programs, pushes really landing on lab nodes over SSH. Snapshot and
revert cannot run there: `dynia state snapshot` is export_stack() and `revert` import_stack()
+ refresh of each phase's stack, which the Automation API performs by running the `pulumi`
CLI against a backend holding the stacks' state; LabEngineDouble is a pulumi.runtime.Mocks
inside one program run, it has no backend and no stack state to export or import. So the
closest real thing runs the real `dynia state snapshot` / `dynia state revert` commands (the
real dynia.operations.snapshots, spec restore, Automation API calls) against the recording double of the
`pulumi` executable (tests/engine/recording_pulumi_double.py), which records the exports and
imports, while every node-side effect goes through LabEngineDouble. What revert restores that
matters for the nodes is the spec: the next sync renders from it.

Runs under the lab lock: `flock /tmp/dynia-lab.lock python -m pytest tests/engine/test_snapshot_revert.py`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dynia.nodes.lab import Lab
from dynia.stacks import apps, infra, provision

from ..lab.conftest import LabCluster, eventually, record
from ..lab.own_subnet import examples_copy
from .lab_double import LabEngineDouble, lab_inputs, run_phase

REPO = Path(__file__).resolve().parents[2]
PULUMI_DOUBLE = Path(__file__).with_name("recording_pulumi_double.py")
NODES = ("misty-owl", "brave-panda", "calm-otter")

# The bad config: the api's compose file swapped for one whose app never writes /healthz, so
# the service's health gate gets 404 on every try. It passes every check render makes (same
# image, same published port): only the gate on a real node can catch it.
BROKEN_API = """\
services:
  api:
    image: localhost/dynia-lab-app
    command: ["sh", "-c", "mkdir -p /www && echo broken > /www/index.html && exec httpd -f -p 127.0.0.1:9002 -h /www"]
    ports:
      - "9002:9002"
    mem_limit: 64m
    stop_signal: SIGKILL
"""


@pytest.fixture
def scenario(tmp_path, lab_tools):
    root = tmp_path / "proj"
    from dynia.state.store import Project

    # The lab lives where the local provider looks for it, so dynia's own SSH (verify, the
    # session's live holder) finds its key and host keys.
    lab_dir = Project(root).lab_dir("lab")
    with examples_copy(root, lab_dir):
        yield from _scenario(tmp_path, root, lab_dir)


def _scenario(tmp_path, root, lab_dir):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "pulumi").write_text(f"#!/bin/sh\nexec {sys.executable} {PULUMI_DOUBLE} \"$@\"\n")
    (bindir / "pulumi").chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "RECORDING_PULUMI_LOG": str(tmp_path / "pulumi.log"),
           "RECORDING_PULUMI_STATE": str(tmp_path), "PULUMI_CONFIG_PASSPHRASE": "test-passphrase"}
    yield root, lab_dir, env, tmp_path
    if (lab_dir / "lab.json").exists():
        Lab.load(lab_dir).down()


def _dynia(env, root, *args):
    return subprocess.run([sys.executable, "-m", "dynia", "-C", str(root), *args], env=env,
                          capture_output=True, text=True, timeout=180)


def _pulumi_ops(tmp_path) -> list[tuple[str, str]]:
    log = tmp_path / "pulumi.log"
    out = []
    for line in (log.read_text().splitlines() if log.exists() else []):
        argv = json.loads(line)["argv"]
        if argv[:2] in (["stack", "export"], ["stack", "import"]) or argv[:1] == ["refresh"]:
            out.append((" ".join(argv[:2]) if argv[0] == "stack" else argv[0], argv[argv.index("--stack") + 1]))
    return out


def _cluster(root):
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    return load_cluster(Project(root), "lab")


def _cache_like_the_engine(root, provision_outputs: dict) -> None:
    """What `dynia up` leaves in .dynia/cache after a successful apply (Engine.cache_outputs and
    cache_applied; LabEngineDouble runs the programs, not the engine): the addresses, the applied
    manifest, and the public facts of the state's certificate (the proposed cache addition)."""
    from dynia.state.cache import ClusterCache
    from dynia.render.rendered import render_cluster
    from dynia.state.store import write_json
    from dynia.state.cache import CERTIFICATE_CACHE
    from dynia.tls import certificate_record

    c = _cluster(root)
    cache = ClusterCache.of(c)
    cache.write_outputs({"nodes": {n: {"private_ip": a["private_ip"], "public_ip": a["public_ip"]}
                                   for n, a in provision_outputs["nodes"].items()},
                         "reserved_ip": provision_outputs["reservedIp"]})
    r = render_cluster(c)
    cache.write_applied({"configVersion": r.config_version, "contentHash": r.content_hash,
                         "nodes": {n: r.manifest(n) for n in r.files}})
    write_json(cache.dir / CERTIFICATE_CACHE, certificate_record(provision_outputs["originPem"]))


def _degraded(root) -> dict:
    from dynia.nodes import facts as F
    from dynia.nodes.gather import gather
    from dynia.engine.session import targets

    answers = gather(targets(_cluster(root)), [F.DEGRADED])
    assert not any(a.error for a in answers.values()), {n: a.error for n, a in answers.items()}
    return {n: a.facts.get("degraded") for n, a in answers.items()}


def _verify(root) -> dict:
    from dynia.operations import verify

    checks = verify.verify(_cluster(root))
    return verify.as_json("lab", checks)


def _failed(doc: dict) -> list[dict]:
    return [c for c in doc["checks"] if c["status"] == "failed"]


def test_snapshot_bad_config_rolled_back_revert_then_sync_and_the_cluster_verifies_healthy(scenario):
    import time

    root, lab_dir, env, tmp_path = scenario
    double = LabEngineDouble()
    outputs, error = run_phase(provision, lab_inputs(root, lab_dir), "provision", double)
    assert error is None, error
    double.references["lab-provision"] = outputs
    for phase, module in (("infra", infra), ("apps", apps)):
        assert run_phase(module, lab_inputs(root, lab_dir), phase, double)[1] is None
    _cache_like_the_engine(root, outputs)
    from dynia.state.store import Project

    lc = LabCluster(Project(root), Lab.load(lab_dir))
    assert eventually(lambda: lc.vip_holder() == ["misty-owl"])
    assert eventually(lambda: _verify(root)["ok"], timeout=20), _failed(_verify(root))

    # 1. snapshot: the real command (spec copy + an export of every phase's stack).
    r = _dynia(env, root, "state", "snapshot", "--cluster", "lab")
    assert r.returncode == 0, r.stderr
    snap = r.stdout.split()[-1]
    assert _pulumi_ops(tmp_path) == [("stack export", f"lab-{p}") for p in ("provision", "infra", "apps")]
    spec_path = root / "clusters/lab.yaml"
    good_spec = spec_path.read_bytes()
    good_compose = lc.cat("brave-panda", "/opt/dynia/compose/api/docker-compose.yml")

    # 2. the bad config, applied: the roll stops at the first node, which is rolled back.
    (root / "services/lab-api-broken.yml").write_text(BROKEN_API)
    lc.edit_spec("compose: services/lab-api.yml", "compose: services/lab-api-broken.yml")
    assert _dynia(env, root, "render", "--cluster", "lab").returncode == 0  # nothing render can see
    bad = LabEngineDouble(double.references)
    _, error = run_phase(apps, lab_inputs(root, lab_dir), "apps", bad)
    assert error is not None
    failure = bad.failures[0]
    assert (failure.resource, failure.exit_status) == ("brave-panda-service-api-push", 30)
    pushed = [n for t, n in bad.executed if t == "command:remote:Command"]
    assert not any(n.startswith(("calm-otter-service-api", "misty-owl-service-api")) for n in pushed)
    assert lc.cat("brave-panda", "/opt/dynia/compose/api/docker-compose.yml") == good_compose  # restored
    # api is drained for the restart: its own health wait fails before the gate would
    assert b"api did not answer /healthz" in lc.cat("brave-panda", "/opt/dynia/state/degraded")
    assert lc.get("api.lab.example") == (200, b"api\n")  # the rollback kept the service serving
    marked = _degraded(root)
    assert "api did not answer /healthz" in marked["brave-panda"]["reason"] and marked["calm-otter"] is None

    # 3. revert: the real command restores the spec and imports every phase's export.
    (tmp_path / "pulumi.log").unlink()
    started = time.monotonic()
    r = _dynia(env, root, "state", "revert", snap, "--cluster", "lab")
    assert r.returncode == 0, r.stderr
    assert spec_path.read_bytes() == good_spec
    assert _pulumi_ops(tmp_path) == [op for p in ("provision", "infra", "apps")
                                     for op in (("stack import", f"lab-{p}"), ("refresh", f"lab-{p}"))]

    # 4. render and sync from the reverted spec: every push passes, the marker is gone.
    r = _dynia(env, root, "render", "--cluster", "lab")
    assert r.returncode == 0, r.stderr
    synced = LabEngineDouble(double.references)
    for phase, module in (("infra", infra), ("apps", apps)):
        _, error = run_phase(module, lab_inputs(root, lab_dir), phase, synced)
        assert error is None, error
    record("snapshot_revert_to_synced_seconds", round(time.monotonic() - started, 1))
    for host, body in (("lab.example", b"web\n"), ("api.lab.example", b"api\n"), ("admin.lab.example", b"admin\n")):
        assert lc.get(host) == (200, body)

    # 5. healthy: `dynia infra verify` (the command, no Pulumi) on the real nodes, and no node
    # left marked degraded.
    started = time.monotonic()
    r = _dynia(env, root, "infra", "verify", "--cluster", "lab", "--json")
    record("infra_verify_3_lab_nodes_seconds", round(time.monotonic() - started, 2))
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["ok"], (r.returncode, _failed(doc), r.stderr)
    by = {(c["check"], c["target"]): c for c in doc["checks"]}
    assert by[("reserved_ip_holder", lc.lab.vip)]["detail"] == "held by misty-owl, the VRRP MASTER"
    assert all(by[("certificate", n)]["status"] == "ok" for n in NODES)
    assert all(by[("haproxy_backends", n)]["status"] == "ok" for n in NODES)
    assert {c["status"] for c in doc["checks"] if c["check"] == "dns_record"} == {"skipped"}
    # The sync's api push on brave-panda is "unchanged" (the rollback left exactly the reverted
    # files); it still gates the layer the marker names and clears the marker.
    assert _degraded(root) == {n: None for n in NODES}
