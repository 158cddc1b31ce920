"""The check before DNS (dynia.engine.holder_gate): `judge` on the provider's answer and the nodes' roles,
and `require_master_holds`' loop — when it asks the MASTER to assign again, how long it waits, the
typed error it raises. The nodes' and the provider's answers are given as Readings (what `read`
returns); the clock is a counter."""
from __future__ import annotations

import pytest

from dynia.engine import holder_gate as G
from dynia.errors import DyniaError
from dynia.nodes.commands import ASSIGN_RESERVED_IP
from dynia.nodes.push import Target
from dynia.operations.status import ReservedIpAssignment
from dynia.state.store import Project
from dynia.spec.load import load_cluster

VIP = "203.0.113.50"
REFUSED = ReservedIpAssignment("2026-12-07T22:31:05Z", "refused", "403", "424242001")
ASSIGNED = ReservedIpAssignment("2026-12-07T22:31:09Z", "assigned", "201", "424242001")


def reading(holder, roles, **assignments):
    return G.Reading(holder, dict(roles), {n: assignments.get(n.replace("-", "_")) for n in roles})


@pytest.mark.parametrize("r, why", [
    (reading("misty-owl", {"misty-owl": "MASTER", "brave-panda": "BACKUP"}), None),
    (reading("misty-owl", {}), None),   # no node answered: the provider's answer alone, a node of ours
    (reading(None, {"misty-owl": "MASTER", "brave-panda": "BACKUP"}),
     f"no node of the cluster holds {VIP} (VRRP MASTER: misty-owl)"),
    (reading(None, {}), f"no node of the cluster holds {VIP}"),
    (reading("brave-panda", {"misty-owl": "MASTER", "brave-panda": "BACKUP"}),
     f"brave-panda holds {VIP}, but misty-owl is the VRRP MASTER"),
    (reading("misty-owl", {"misty-owl": "MASTER", "brave-panda": "MASTER"}),
     "more than one node is VRRP MASTER (brave-panda, misty-owl)"),
    (reading("misty-owl", {"misty-owl": "BACKUP", "brave-panda": "FAULT"}),
     f"misty-owl holds {VIP} but is BACKUP, and no node is MASTER"),
])
def test_only_the_one_vrrp_master_holding_it_passes(r, why):
    assert G.judge(r, VIP) == why


@pytest.fixture
def gate(project, monkeypatch):
    """require_master_holds on the examples' shop with scripted Readings and MASTER answers."""
    cluster = load_cluster(Project(project), "shop")
    targets = [Target(n, f"198.51.100.{11 + i}", project / "key") for i, n in enumerate(cluster.spec.nodes)]
    state = {"readings": [], "asked": [], "answer": 0, "now": 0.0, "said": []}

    def fake_read(cluster, targets, reserved_ip, known, refused=None):
        r = state["readings"][0] if len(state["readings"]) == 1 else state["readings"].pop(0)
        state["now"] += 1.0   # each reading costs a second
        return r

    def fake_run(target, command, timeout=60):
        state["asked"].append((target.node, command))
        return state["answer"], "", ""

    monkeypatch.setattr(G, "read", fake_read)
    monkeypatch.setattr("dynia.nodes.push.run", fake_run)

    def run(readings, answer=0, bound=10.0):
        state.update(readings=list(readings), answer=answer, asked=[], now=0.0, said=[])
        clock = lambda: state["now"]  # noqa: E731

        def sleep(seconds):
            state["now"] += seconds
        holder = G.require_master_holds(cluster, targets, VIP, {}, bound=bound, say=state["said"].append,
                                        clock=clock, sleep=sleep)
        return holder, state
    return run


def test_a_master_that_holds_it_passes_at_once_and_is_asked_nothing(gate):
    holder, state = gate([reading("misty-owl", {"misty-owl": "MASTER", "brave-panda": "BACKUP"})])
    assert holder == "misty-owl" and state["asked"] == [] and state["now"] == 1.0


def test_a_master_not_holding_it_is_asked_once_to_assign_then_the_provider_is_read_again(gate):
    wrong = reading(None, {"misty-owl": "MASTER", "brave-panda": "BACKUP"})
    right = reading("misty-owl", {"misty-owl": "MASTER", "brave-panda": "BACKUP"}, misty_owl=ASSIGNED)
    holder, state = gate([wrong, wrong, right])
    assert holder == "misty-owl"
    assert state["asked"] == [("misty-owl", ASSIGN_RESERVED_IP)]   # once, however long it waits


def test_a_master_whose_assignment_is_refused_fails_at_once_naming_the_node_token_and_its_scopes(gate):
    wrong = reading(None, {"misty-owl": "MASTER", "brave-panda": "BACKUP"}, misty_owl=REFUSED)
    with pytest.raises(DyniaError) as exc:
        gate([wrong], answer=1, bound=600.0)
    e = exc.value
    assert e.kind == "provider"
    assert e.message.startswith(f"the reserved IP {VIP} is not held by the VRRP MASTER after 2 s: no node of the "
                                "cluster holds")   # two readings, no wait for the bound
    assert "misty-owl's last assignment: refused (HTTP 403, droplet 424242001, 2026-12-07T22:31:05Z)" in e.message
    assert e.message.endswith("no DNS record was created or changed")
    assert "DIGITALOCEAN_NODE_TOKEN" in e.hint and "reserved_ip:update" in e.hint and "droplet:read" in e.hint
    assert "`dynia up --phase infra --cluster shop`" in e.hint


def test_without_a_master_to_ask_it_waits_for_the_bound_then_fails(gate):
    with pytest.raises(DyniaError) as exc:
        gate([reading(None, {})], bound=10.0)
    # read at 1, 4, 7, 10 s (a reading costs 1 s, then 2 s between): the bound reached at 10 s
    assert exc.value.kind == "provider" and "not held by the VRRP MASTER after 10 s" in exc.value.message


def test_an_assignment_the_provider_never_shows_fails_after_the_wait(gate):
    wrong = reading(None, {"misty-owl": "MASTER", "brave-panda": "BACKUP"})
    with pytest.raises(DyniaError) as exc:
        gate([wrong], answer=0, bound=5.0)
    # asked at 1 s: the provider gets AFTER_ASK (15 s) to show it, past the 5 s bound
    assert "not held by the VRRP MASTER after 17 s" in exc.value.message
