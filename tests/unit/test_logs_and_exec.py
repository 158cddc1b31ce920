"""`dynia logs` and `dynia exec` without nodes: what is asked is checked, lines merge in time
order, the node and the container are chosen by the rules the README states."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from dynia.operations import execute as X
from dynia.operations import logs as L
from dynia.errors import DyniaError
from dynia.nodes.containers import Container
from dynia.nodes.push import Target

SPEC = SimpleNamespace(name="shop", nodes=["misty-owl", "brave-panda", "calm-otter"], master_node="misty-owl",
                       services={"web": SimpleNamespace(placement="all"),
                                 "admin": SimpleNamespace(placement="active-only"),
                                 "worker": SimpleNamespace(placement="standby-only")})
CLUSTER = SimpleNamespace(name="shop", spec=SPEC)
TARGETS = [Target(n, f"192.0.2.{i}", Path("/k")) for i, n in enumerate(SPEC.nodes, 1)]


def test_a_request_names_a_service_or_a_component_and_defaults_to_the_last_100_lines():
    req = L.request(SPEC, "web", since=None, tail=None, follow=False, grep=None)
    assert (req.window.tail, req.window.since, req.component) == (100, None, False)
    req = L.request(SPEC, "keepalived", since="10m", tail=None, follow=True, grep="MASTER|BACKUP")
    assert (req.window.tail, req.window.since, req.window.follow, req.component) == (None, "10m", True, True)
    assert req.keeps("Entering MASTER STATE") and not req.keeps("gratuitous ARP")


@pytest.mark.parametrize("name,kw,says", [
    ("nope", {}, "no service or dynia component named 'nope'"),
    ("web", {"grep": "("}, "--grep '(' is not a regular expression"),
    ("web", {"since": "yesterday"}, "since is a duration"),
])
def test_what_cannot_be_asked_is_a_config_error_with_a_hint(name, kw, says):
    with pytest.raises(DyniaError) as err:
        L.request(SPEC, name, **{"since": None, "tail": None, "follow": False, "grep": None, **kw})
    assert err.value.kind == "config" and says in err.value.message and err.value.hint


def _line(node, ns, text, container=None):
    return L.LogLine(node, container, ns, text)


def test_lines_merge_in_time_order_and_tail_keeps_the_clusters_last_ones():
    a = [_line("misty-owl", 1, "a1"), _line("misty-owl", 4, "a4"), _line("misty-owl", 6, "a6")]
    b = [_line("brave-panda", 2, "b2"), _line("brave-panda", 5, "b5")]
    c = [_line("calm-otter", 3, "c3")]
    assert [x.text for x in L.merge([a, b, c], None)] == ["a1", "b2", "c3", "a4", "b5", "a6"]
    assert [x.text for x in L.merge([a, b, c], 2)] == ["b5", "a6"]
    assert L.merge([a, b], 0) == []


def test_a_line_without_a_time_keeps_its_place_after_the_line_before_it():
    timed = L._timed("n", None, ["2026-12-08T02:00:01Z one", "Error: no such container", "2026-12-08T02:00:03Z three"])
    assert [t.text for t in timed] == ["one", "Error: no such container", "three"]
    assert timed[0].time == timed[1].time < timed[2].time
    other = L._timed("m", None, ["2026-12-08T02:00:02Z two"])
    assert [x.text for x in L.merge([timed, other], None)] == ["one", "Error: no such container", "two", "three"]


def test_a_very_long_line_is_cut_and_says_by_how_much():
    [line] = L._timed("n", None, ["2026-12-08T02:00:01Z " + "x" * (L.MAX_LINE + 5)])
    assert line.text.endswith("… (5 more characters)") and len(line.text) < L.MAX_LINE + 30


def test_json_lines_carry_the_engines_time_to_the_nanosecond():
    [line] = L._timed("n", "c", ["2026-12-08T02:00:01.123456789Z hi"])
    assert line.as_dict() == {"node": "n", "container": "c", "time": "2026-12-08T02:00:01.123456789Z", "line": "hi"}
    assert L.Notice("n", "unreachable: x").as_dict() == {"node": "n", "notice": "unreachable: x"}


def test_node_narrows_to_one_and_an_unknown_node_is_a_config_error():
    assert [t.node for t in L.nodes_of(CLUSTER, TARGETS[::-1], None)] == SPEC.nodes
    assert [t.node for t in L.nodes_of(CLUSTER, TARGETS, "calm-otter")] == ["calm-otter"]
    with pytest.raises(DyniaError) as err:
        L.nodes_of(CLUSTER, TARGETS, "lost-node")
    assert err.value.kind == "config" and "misty-owl, brave-panda, calm-otter" in err.value.hint


def _choose(service, holder_now="misty-owl", **kw):
    asked = []

    def holder():
        asked.append(True)
        return holder_now
    kw = {"node": None, "holder": False, **kw}
    return X.choose_node(CLUSTER, TARGETS, service, vip_holder=holder, **kw).node, bool(asked)


def test_exec_runs_on_the_holder_for_active_only_and_first_in_rolling_order_otherwise(monkeypatch):
    monkeypatch.setattr("dynia.state.cache.applied", lambda cluster: {})
    assert _choose("admin") == ("misty-owl", True)
    assert _choose("admin", holder_now="calm-otter") == ("calm-otter", True)
    # Rolling order: the BACKUP nodes first, the holder last: never the node serving the VIP.
    assert _choose("web")[0] == "brave-panda"
    assert _choose("web", holder_now="brave-panda")[0] == "misty-owl"
    assert _choose("worker")[0] == "brave-panda"
    assert _choose("web", holder=True, holder_now="calm-otter")[0] == "calm-otter"
    assert _choose("web", node="calm-otter") == ("calm-otter", False)


def test_exec_without_a_known_holder_or_with_an_unknown_name_is_a_typed_error(monkeypatch):
    monkeypatch.setattr("dynia.state.cache.applied", lambda cluster: {})
    for kw, kind in (({"service": "admin", "holder_now": None}, "network"),
                     ({"service": "web", "holder": True, "holder_now": None}, "network"),
                     ({"service": "nope"}, "config"), ({"service": "web", "node": "lost-node"}, "config")):
        with pytest.raises(DyniaError) as err:
            _choose(**kw)
        assert err.value.kind == kind and err.value.hint, kw


def _containers(*specs):
    return [Container(f"{i:064x}", state, name, part) for i, (state, name, part) in enumerate(specs)]


@pytest.mark.parametrize("name,listed,chosen", [
    ("web", [("running", "dynia-web_web_1", "web")], "dynia-web_web_1"),
    ("api", [("running", "dynia-api_api_1", "api"), ("running", "dynia-api_cache_1", "cache")], "dynia-api_api_1"),
    ("api/cache", [("running", "dynia-api_api_1", "api"), ("running", "dynia-api_cache_1", "cache")],
     "dynia-api_cache_1"),
    ("api", [("exited", "dynia-api_api_1", "api"), ("running", "dynia-api_cache_1", "cache")], "dynia-api_cache_1"),
])
def test_exec_picks_the_container_named_like_the_service_else_the_only_one_running(monkeypatch, name, listed,
                                                                                    chosen):
    async def listing(target, commands, service):
        return _containers(*listed)
    monkeypatch.setattr(X, "_containers", listing)
    assert X.find(TARGETS[0], None, name).container.name == chosen


@pytest.mark.parametrize("name,listed,says", [
    ("web", [("exited", "dynia-web_web_1", "web")], "no running container of web on node misty-owl"),
    ("api", [("running", "dynia-api_db_1", "db"), ("running", "dynia-api_cache_1", "cache")],
     "api runs 2 containers on misty-owl: api/db, api/cache"),
])
def test_exec_with_no_or_several_candidate_containers_says_what_to_name(monkeypatch, name, listed, says):
    async def listing(target, commands, service):
        return _containers(*listed)
    monkeypatch.setattr(X, "_containers", listing)
    with pytest.raises(DyniaError) as err:
        X.find(TARGETS[0], None, name)
    assert says in err.value.message and err.value.hint


def test_a_service_named_like_one_of_dynias_components_is_read_as_the_service():
    spec = SimpleNamespace(name="shop", services={"caddy": SimpleNamespace(placement="all")})
    assert L.request(spec, "caddy", since=None, tail=None, follow=False, grep=None).component is False
    assert L.request(spec, "haproxy", since=None, tail=None, follow=False, grep=None).component is True
