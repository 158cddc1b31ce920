"""Node answers are input (issue 22c): every fact's output is checked against its model
(dynia.nodes.answers); what does not fit is that node's unreadable fact, named with the reason in
status, never a crash and never a healthy reading. A node claiming another node's address or
identity is a named conflict."""
from __future__ import annotations

import json

import pytest

from dynia.operations import status as S
from dynia.errors import DyniaError
from dynia.nodes import answers as A
from dynia.nodes import facts as F
from dynia.nodes.gather import NodeFacts
from dynia.providers import digitalocean, local

NODE = "misty-owl"
HEALTHY = {"vrrp": ("MASTER 2026-12-07T10:00:00Z", 0), "applied": (json.dumps({"configVersion": 1, "node": NODE}), 0),
           "degraded": ("", 1), "running": ("caddy up\nhaproxy up\nkeepalived up\n", 0),
           "caddy_health": ("200", 0), "addresses": ("2: eth0    inet 10.213.0.11/24 scope global eth0\n"
                                                     "2: eth0    inet 10.213.0.100/32 scope global eth0\n", 0),
           "containers": ("[]", 0), "priority": ("    priority 150\n", 0),
           "lockdown": ("", 1), "show_stat": ("", 1), "reserved_ip": ("", 1), "data_mounts": ("", 0),
           "volume_actions": ("", 0)}


def _answer(**changed: tuple[str, int]) -> NodeFacts:
    """One node's answer to the status script, run through the facts' own framing and parsers."""
    wanted = F.status_facts(local.PROFILE, "10.213.0.11")
    outputs = {**HEALTHY, **changed}
    script = "".join(f"{F.MARK} {f.name}\n{outputs[f.name][0]}\n{F.MARK}-rc {outputs[f.name][1]}\n" for f in wanted)
    return NodeFacts(NODE, F.parse(wanted, script))


def _status(answer: NodeFacts, services=None) -> S.ClusterStatus:
    return S.assemble(cluster="lab", nodes={NODE: "10.213.0.11"}, services=services or {}, desired_version=1,
                      reserved_ip="10.213.0.100", answers={NODE: answer}, holder=NODE)


def test_the_healthy_answer_used_below_is_healthy():
    answer = _answer()
    assert answer.unreadable == {}
    assert _status(answer).healthy


@pytest.mark.parametrize("fact, output, reason", [
    ("applied", json.dumps({"configVersion": True}), "configVersion: Input should be a valid integer"),
    ("applied", json.dumps({"configVersion": "1"}), "configVersion: Input should be a valid integer"),
    ("applied", json.dumps({"configVersion": 1, "layers": ["infra"]}), "layers: Input should be a valid dictionary"),
    ("applied", json.dumps({"configVersion": 1, "layers": {"infra": {"/etc/x": "sha"}}}),
     "layers.infra./etc/x: Input should be a valid dictionary"),
    ("applied", "[" * 100_000 + "]" * 100_000, "nested too deep"),
    ("applied", '{"configVersion": 1' + "0" * 5000 + "}", "not JSON"),
    ("degraded", json.dumps({"reason": {"text": "x"}}), "reason: Input should be a valid string"),
    ("degraded", json.dumps("gate failed"), "a JSON str"),
    ("containers", json.dumps([{"Config": "x"}]), "containers.0.Config: Input should be"),
    ("containers", json.dumps([{"Config": {"Labels": ["a=b"]}}]), "containers.0.Config.Labels: Input should be"),
    ("containers", json.dumps([{"Name": 7}]), "containers.0.Name: Input should be a valid string"),
    ("containers", json.dumps({"Id": "x"}), "a JSON dict, not a list of containers"),
    ("vrrp", "MASTER " + "9" * 600, "since: String should have at most 512 characters"),
    ("reserved_ip", json.dumps({"outcome": "refused", "status": "403", "droplet": "1\",\"x"}),
     "droplet: String should match pattern"),
    ("reserved_ip", json.dumps({"outcome": "moved", "status": "201"}), "outcome: Input should be"),
    ("addresses", "2: eth0    inet 10.213.0.1\x1b[2J/24\n", "not an IPv4 address"),
    ("show_stat", "# pxname,svname,check_desc\nbe_api,s1," + "x" * 200_000 + "\n", "not HAProxy's CSV"),
    ("data_mounts", "/srv/db /dev/sda\x1b[2J extra\n", "'/srv/db /dev/sda\\x1b[2J extra' is not a mount point"),
    ("volume_actions", 'db {"action": "attach", "outcome": "moved"}\n', "outcome: Input should be"),
], ids=["version-true", "version-string", "layers-list", "record-string", "json-bomb", "huge-number",
        "reason-object", "marker-string", "config-string", "labels-list", "name-int", "inspect-dict",
        "since-oversize", "assignment-droplet-injected", "assignment-outcome-unknown", "address-garbage",
        "csv-field-oversize", "mounts-garbage", "volume-call-outcome-unknown"])
def test_an_answer_that_does_not_fit_its_model_is_that_nodes_unreadable_fact(fact, output, reason):
    answer = _answer(**{fact: (output, 0)})
    assert fact not in answer.facts
    assert answer.unreadable[fact].startswith(reason), answer.unreadable
    st = _status(answer)
    assert not st.healthy
    assert st.nodes[0].unreadable == answer.unreadable
    assert f"{NODE}'s answer is unreadable: {fact}: {reason}" in st.verdict


def test_an_unreadable_applied_record_is_not_called_never_applied():
    st = _status(_answer(applied=(json.dumps({"configVersion": True}), 0)))
    assert st.problems == [f"{NODE}'s answer is unreadable: applied: configVersion: Input should be a valid integer"]


def test_an_answer_over_the_size_limit_is_unreadable_before_it_is_parsed(monkeypatch):
    monkeypatch.setattr(A, "MAX_ANSWER", 1000)
    answer = _answer(applied=(json.dumps({"configVersion": 1, "pad": "x" * 2000}), 0))
    assert answer.unreadable == {"applied": "larger than 1000 bytes"}


@pytest.mark.parametrize("fact, output, expected", [
    ("priority", "    priority ²⁵⁰\n", None),
    ("caddy_health", "²⁰⁰", {"code": None, "error": "no answer (curl exit 0)"}),
])
def test_superscript_digits_are_not_numbers_and_raise_nothing(fact, output, expected):
    answer = _answer(**{fact: (output, 0)})
    assert answer.unreadable == {} and answer.facts[fact] == expected


def test_superscript_digits_in_counters_and_exit_status_raise_nothing():
    show = "# pxname,svname,status,hrsp_2xx\nbe_api,BACKEND,UP,²\n"
    assert F.show_stat(show, 0)["backends"]["be_api"]["hrsp"]["2xx"] == 0
    script = f"{F.MARK} vrrp\nMASTER\n{F.MARK}-rc ³\n"
    assert F.parse([F.VRRP], script) == {"vrrp": None}  # a non-number status reads as a failure


def test_a_node_whose_applied_record_names_another_node_is_a_conflict():
    st = _status(_answer(applied=(json.dumps({"configVersion": 1, "node": "brave-panda"}), 0)))
    assert st.problems == [f"{NODE} answers as brave-panda (its applied.json names that node): "
                           "a node claims another's identity"]


def test_a_node_claiming_another_nodes_address_is_a_conflict_not_no_holder():
    known = {"misty-owl": {"10.213.0.11"}, "brave-panda": {"10.213.0.12"}}
    answers = {"misty-owl": NodeFacts("misty-owl", {"addresses": ["10.213.0.11"]}),
               "brave-panda": NodeFacts("brave-panda", {"addresses": ["10.213.0.12", "10.213.0.11"]})}
    holder, error = S.holder_of(local.Local(), "10.213.0.100", known, answers)
    assert holder is None
    assert error == "conflict: brave-panda claims misty-owl's address 10.213.0.11 on its VIP device"


def test_digitalocean_two_nodes_matching_the_holding_droplet_is_a_conflict(monkeypatch):
    droplet = {"reserved_ip": {"droplet": {"networks": {"v4": [{"ip_address": "203.0.113.10"}]}}}}
    monkeypatch.setattr(digitalocean, "api_get", lambda path: droplet)
    with pytest.raises(DyniaError) as exc:
        digitalocean.DigitalOcean().reserved_ip_holder(
            "198.51.100.7", {"misty-owl": {"203.0.113.10"}, "brave-panda": {"203.0.113.10"}})
    assert exc.value.kind == "provider" and exc.value.message.startswith("conflict:")
    assert "brave-panda and misty-owl both claim" in exc.value.message


def test_drift_check_names_an_unreadable_fact_instead_of_a_clean_bill(project):
    from dynia.operations import drift as D
    from dynia.render.rendered import render_cluster
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    c = load_cluster(Project(project), "lab")
    rendering = render_cluster(c)
    broken = NodeFacts(NODE, {"drift": A.Unreadable("its parser failed (KeyError)"),
                              "applied": A.Unreadable("configVersion: Input should be a valid integer"),
                              "vrrp": None, "running": None})
    report = D.assemble(c, rendering, {NODE: broken}, [NODE])
    row = next(n for n in report.nodes if n.node == NODE)
    assert row.error == "the drift reader's answer is unreadable (its parser failed (KeyError))"
    readable_drift = NodeFacts(NODE, {"drift": {"files": {}, "composeDirs": {}, "routes": {}, "containers": None},
                                      "applied": A.Unreadable("configVersion: Input should be a valid integer")})
    row = next(n for n in D.assemble(c, rendering, {NODE: readable_drift}, [NODE]).nodes if n.node == NODE)
    assert row.warnings == ["applied (its answer is unreadable: configVersion: Input should be a valid integer)"]


def test_drift_check_never_compares_against_another_nodes_applied_record(project):
    from dynia.operations import drift as D
    from dynia.render.rendered import render_cluster
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    c = load_cluster(Project(project), "lab")
    rendering = render_cluster(c)
    answer = NodeFacts(NODE, {"drift": {"files": {}, "composeDirs": {}, "routes": {}, "containers": None},
                              "applied": {"configVersion": 1, "node": "brave-panda", "layers": {}}})
    row = next(n for n in D.assemble(c, rendering, {NODE: answer}, [NODE]).nodes if n.node == NODE)
    assert row.applied_record is None
    assert row.warnings == ["applied record (it names brave-panda: a node claims another's identity)"]
