"""A narrowed firewall.admin_ranges names who it locks out: the addresses every push came
from (recorded on the node by the real apply script), checked against the new ranges and shown
by `plan`; the session reads them in the same round trip as the VIP holder."""
from __future__ import annotations

import json
import os
import subprocess

from dynia.nodes.payload import BOOTSTRAP
from dynia.render.lockout import excluded
from dynia.nodes import facts as F
from dynia.nodes.gather import NodeFacts

from ..node.test_apply_script_local import _file, make_bundle


def push_from(root, address: str) -> None:
    bundle = make_bundle([_file("etc/web.conf", b"v1")])
    env = {**os.environ, "DYNIA_ROOT": str(root), "SSH_CONNECTION": f"{address} 50022 10.0.0.1 22"}
    proc = subprocess.run(["sh", "-c", BOOTSTRAP], input=bundle.payload(), capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr


def recorded(root) -> dict:
    path = root / "opt/dynia/state/pushed-from.json"
    return F.PUSHED_FROM.process(path.read_text(), 0)


def test_every_push_records_the_address_it_came_from_and_the_fact_reads_it_back(tmp_path):
    (tmp_path / "healthy").touch()
    push_from(tmp_path, "198.51.100.7")
    push_from(tmp_path, "::ffff:203.0.113.9")   # a mapped IPv4 is its IPv4
    push_from(tmp_path, "2001:db8::42")
    assert set(recorded(tmp_path)) == {"198.51.100.7", "203.0.113.9", "2001:db8::42"}


def test_the_record_keeps_the_32_latest_addresses_and_survives_a_mangled_file(tmp_path):
    (tmp_path / "healthy").touch()
    state = tmp_path / "opt/dynia/state"
    state.mkdir(parents=True)
    (state / "pushed-from.json").write_text(json.dumps({f"10.9.0.{i}": f"2026-01-01T00:00:{i:02d}Z"
                                                        for i in range(40)}))
    push_from(tmp_path, "198.51.100.7")
    seen = recorded(tmp_path)
    assert len(seen) == 32 and "198.51.100.7" in seen and "10.9.0.0" not in seen
    (state / "pushed-from.json").write_text("{not json")
    push_from(tmp_path, "198.51.100.8")
    assert list(recorded(tmp_path)) == ["198.51.100.8"]


def test_narrowed_ranges_list_every_recorded_address_they_exclude_latest_first():
    pushed = {"misty-owl": {"198.51.100.7": "2026-12-01T09:00:00Z", "203.0.113.9": "2026-12-07T10:00:00Z",
                            "2001:db8::42": "2026-12-05T10:00:00Z"},
              "brave-panda": {"198.51.100.7": "2026-12-02T09:00:00Z"}, "calm-otter": None}
    assert excluded(["0.0.0.0/0", "::/0"], pushed) == []
    out = excluded(["203.0.113.0/24"], pushed)
    assert [(e.address, e.last, e.nodes) for e in out] == [
        ("2001:db8::42", "2026-12-05T10:00:00Z", ("misty-owl",)),
        ("198.51.100.7", "2026-12-02T09:00:00Z", ("brave-panda", "misty-owl"))]
    assert out[1].describe() == "198.51.100.7 (last push 2026-12-02T09:00:00Z, recorded on brave-panda, misty-owl)"


def test_the_engine_checks_the_specs_ranges_against_what_the_session_read(project):
    from dynia.engine.automation import Engine
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    spec = project / "clusters/shop.yaml"
    spec.write_text(spec.read_text() + "firewall:\n  admin_ranges: [203.0.113.0/24]\n")
    cluster = load_cluster(Project(project), "shop")
    answers = {"misty-owl": NodeFacts("misty-owl", {"pushed_from": {"198.51.100.7": "2026-12-01T09:00:00Z",
                                                                    "203.0.113.9": "2026-12-07T10:00:00Z"}}),
               "brave-panda": NodeFacts("brave-panda", error="cannot reach node brave-panda: TimeoutError")}
    assert [e.address for e in Engine(cluster, answers=answers).excluded_pushers()] == ["198.51.100.7"]


def test_the_plan_shows_each_excluded_address_as_a_lockout_notice(project):
    from dynia.state import cache
    from dynia.render.lockout import Excluded, notices
    from dynia.plan.report import markdown, offline_plan
    from dynia.render.rendered import render_cluster
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    cluster = load_cluster(Project(project), "shop")
    plan = offline_plan(render_cluster(cluster), cache.applied(cluster), cache.ClusterCache.of(cluster).read_content)
    plan["notices"] = notices([Excluded("198.51.100.7", "2026-12-02T09:00:00Z", ("misty-owl",))])
    assert ("> **locks out**: `firewall.admin_ranges does not admit 198.51.100.7 (last push 2026-12-02T09:00:00Z, "
            "recorded on misty-owl): pushes from there will be dropped by every node's firewall`") in markdown(plan)


def test_up_asks_a_node_that_did_not_answer_once_more_and_stops_before_any_phase(project, monkeypatch):
    import pytest

    from dynia.state import cache
    from dynia.render import lockout
    from dynia.engine.automation import Engine
    from dynia.errors import DyniaError
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    cluster = load_cluster(Project(project), "shop")
    cache.ClusterCache.of(cluster).write_outputs({"nodes": {
        "misty-owl": {"private_ip": "10.110.0.2", "public_ip": "198.51.100.11"},
        "brave-panda": {"private_ip": "10.110.0.3", "public_ip": "198.51.100.12"}}, "reserved_ip": "203.0.113.50"})
    asked = []
    monkeypatch.setattr(lockout, "silent", lambda host, port, timeout: asked.append(host) or True)
    ran = []
    monkeypatch.setattr(Engine, "_run", lambda self, phase, *a, **k: ran.append(phase))
    answers = {"misty-owl": NodeFacts("misty-owl", {"vrrp": {"role": "MASTER"}}),
               "brave-panda": NodeFacts("brave-panda", error="cannot reach node brave-panda: TimeoutError")}
    with pytest.raises(DyniaError) as caught:
        Engine(cluster, answers=answers).up(("infra", "apps"))
    assert caught.value.kind == "network" and caught.value.message.startswith("brave-panda (198.51.100.12:22)")
    assert asked == ["198.51.100.12"] and ran == []
