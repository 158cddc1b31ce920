"""App secrets on real nodes (issue 27.4/27.5): a service's secrets from the three sources reach
every node as 0600 root slots and each of its containers reads them at /run/secrets/NAME (a
secret dropped from the spec leaves the nodes); a
rotation recreates only that service's containers (the other services' containers keep running,
untouched); a slot edited by hand on one node is `content` drift there (no value, no hash) and
`repair` puts the pushed value back, in the file and in the container. No value is in any file a
node wrote except the slot and the apply script's backups of it."""
from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

from dynia.operations import drift, repair
from dynia.state import app_secrets
from dynia.paths import app_secret_path

from .conftest import LabCluster, eventually

SERVICE = "api"          # placement all: on every node
NODE = "brave-panda"     # a BACKUP: where the hand edit happens
WAIT = 30.0              # s: each node's facts (a loaded machine answers slower than the default)


def _values() -> dict[str, str]:
    mark = secrets.token_hex(6)
    return {"DB_PASSWORD": f"lab-db-{mark}-RECOGNISABLE", "API_KEY": f"lab-key-{mark}-RECOGNISABLE",
            "TOKEN": f"lab-tok-{mark}-RECOGNISABLE"}


def _containers(lc: LabCluster, node: str) -> dict[str, str]:
    """Every service container on the node: name -> its full id (a recreated one has a new id)."""
    out = lc.sh(node, "podman ps --no-trunc --format '{{.Names}} {{.ID}}'").stdout.decode()
    return dict(line.split() for line in out.splitlines() if line.strip())


def _inside(lc: LabCluster, node: str, name: str) -> bytes:
    """The secret as the service's container reads it."""
    (container,) = [c for c in _containers(lc, node) if c.startswith(f"dynia-{SERVICE}_")]
    return lc.sh(node, f"podman exec {container} cat /run/secrets/{name}").stdout


def _leaks(lc: LabCluster, values: dict[str, str]) -> list[str]:
    """Files a node wrote (its overlays' upper dirs, its /run) holding a value, except the slots
    and the apply script's backups of them."""
    wanted = [v.encode() for v in values.values()]
    slots = tuple(app_secret_path(SERVICE, n).lstrip("/").split("/", 1)[1] for n in values)  # below /etc
    found = []
    for node in lc.lab.nodes:
        upper = Path(lc.lab.dir) / "nodes" / node.id
        for path in upper.rglob("*"):
            if path.is_symlink() or not path.is_file() or str(path).endswith(slots):
                continue
            data = path.read_bytes()
            if any(v in data for v in wanted):
                found.append(str(path))
        pattern = " ".join(f"-e {v}" for v in values.values())
        run = lc.sh(node.id, f"grep -rlF {pattern} /run 2>/dev/null || true").stdout.decode()
        found += [f"{node.id}:{p}" for p in run.split()]
    return found


def test_app_secrets_reach_the_containers_rotate_one_service_and_a_hand_edit_is_drift_that_repair_heals(
        lab_cluster, monkeypatch):
    lc = lab_cluster
    values = _values()
    lc.edit_spec("    port: 9002\n    health_path: /healthz\n",
                 "    port: 9002\n    health_path: /healthz\n    secrets:\n      DB_PASSWORD:\n"
                 "      API_KEY: {env: LAB_API_KEY}\n"
                 f"      TOKEN: {{command: [printf, '%s\\n', {values['TOKEN']}]}}\n")
    monkeypatch.setenv("LAB_API_KEY", values["API_KEY"])
    app_secrets.store(lc.project, "lab", SERVICE, "DB_PASSWORD", values["DB_PASSWORD"].encode())
    result = lc.roll()
    assert result.ok, [(r.node, r.layer, r.reason) for r in result.results if not r.ok]
    master = lc.cluster().spec.master_node
    assert eventually(lambda: lc.vip_holder() == [master]), lc.vip_holder()
    assert lc.get("api.lab.example", "/healthz")[0] == 200

    for node in lc.lab.nodes:
        for name, value in values.items():
            slot = app_secret_path(SERVICE, name)
            assert lc.sh(node.id, f"stat -c '%a %U' {slot}").stdout.decode().split() == ["600", "root"]
            assert _inside(lc, node.id, name) == value.encode(), (node.id, name)

    # Rotation: only the api layer changes; its containers are recreated, no other one is.
    before = {n.id: _containers(lc, n.id) for n in lc.lab.nodes}
    rotated = values["DB_PASSWORD"].replace("lab-db-", "lab-db-rotated-")
    app_secrets.store(lc.project, "lab", SERVICE, "DB_PASSWORD", rotated.encode())
    values["DB_PASSWORD_ROTATED"] = rotated
    result = lc.roll()
    assert result.ok, [(r.node, r.layer, r.reason) for r in result.results if not r.ok]
    applied = sorted({(r.node, r.layer) for r in result.results if r.report.get("status") != "unchanged"})
    assert applied == sorted((n.id, f"service:{SERVICE}") for n in lc.lab.nodes), applied
    for node in lc.lab.nodes:
        after = _containers(lc, node.id)
        for name, cid in before[node.id].items():
            if name.startswith(f"dynia-{SERVICE}_"):
                assert after.get(name) != cid, (node.id, name)  # recreated
            else:
                assert after.get(name) == cid, (node.id, name)  # untouched
        assert _inside(lc, node.id, "DB_PASSWORD") == rotated.encode()

    # A hand edit of the slot on one node: drift there, without value or hash; repair heals it.
    lc.cache_as_after_up()
    clean, _ = drift.check(lc.cluster(), timeout=WAIT)
    assert clean.exit_code == 0, [(n.node, n.error, [(d.kind, d.target) for d in n.drift]) for n in clean.nodes]
    slot = app_secret_path(SERVICE, "DB_PASSWORD")
    lc.sh(NODE, f"printf 'edited-by-hand' > {slot}")
    report, _ = drift.check(lc.cluster(), timeout=WAIT)
    assert [(n.node, d.kind, d.target) for n in report.nodes for d in n.drift] == [(NODE, "content", slot)]
    text = json.dumps(report.as_dict())
    assert rotated not in text and "edited-by-hand" not in text
    assert hashlib.sha256(rotated.encode()).hexdigest() not in text
    healed = repair.repair(lc.cluster(), on_progress=lambda line: None, timeout=WAIT)
    assert [(s.node, s.layer) for s in healed.steps] == [(NODE, f"service:{SERVICE}")]
    assert healed.after is not None and healed.after.exit_code == 0
    assert lc.cat(NODE, slot) == rotated.encode()
    assert _inside(lc, NODE, "DB_PASSWORD") == rotated.encode()

    # A secret the spec drops leaves every node with the push that stops mounting it.
    lc.edit_spec(f"      TOKEN: {{command: [printf, '%s\\n', {values['TOKEN']}]}}\n", "")
    result = lc.roll()
    assert result.ok, [(r.node, r.layer, r.reason) for r in result.results if not r.ok]
    for node in lc.lab.nodes:
        assert lc.sh(node.id, f"test -e {app_secret_path(SERVICE, 'TOKEN')}", check=False).returncode == 1
        assert _inside(lc, node.id, "DB_PASSWORD") == rotated.encode()

    assert _leaks(lc, values) == []
