"""Which phases an edit needs (from the render diff) and where a node never applied rolls."""
from __future__ import annotations

import pytest

from dynia.phases import changed_phases, with_changed
from dynia.planner import rolling_order
from dynia.render.rendered import render_cluster as render
from dynia.state.store import Project
from dynia.spec.load import load_cluster


def _applied(project) -> dict:
    r = render(load_cluster(Project(project), "shop"))
    return {"configVersion": 1, "contentHash": r.content_hash, "nodes": {n: r.manifest(n) for n in r.files}}


def _edit(project, old: str, new: str):
    spec = project / "clusters/shop.yaml"
    text = spec.read_text()
    assert old in text
    spec.write_text(text.replace(old, new, 1))
    return render(load_cluster(Project(project), "shop"))


def test_no_edit_changes_no_phase(project):
    applied = _applied(project)
    assert changed_phases(render(load_cluster(Project(project), "shop")), applied) == set()


def test_an_active_only_domain_changes_haproxy_so_its_bind_needs_infra_and_apps(project):
    applied = _applied(project)
    r = _edit(project, "domain: admin.example.com", "domain: ops.example.com")
    assert changed_phases(r, applied) == {"infra", "apps"}
    assert with_changed(("apps",), r, applied) == ("infra", "apps")


def test_a_domain_change_changes_its_haproxy_rule_and_its_route(project):
    applied = _applied(project)
    r = _edit(project, "domain: api.example.com", "domain: v2.example.com")
    assert changed_phases(r, applied) == {"infra", "apps"}
    assert with_changed(("apps",), r, applied) == ("infra", "apps")


def test_a_removed_file_counts_for_its_layer(project):
    applied = _applied(project)
    applied["nodes"]["misty-owl"]["/opt/dynia/compose/gone/docker-compose.yml"] = {
        **applied["nodes"]["misty-owl"]["/opt/dynia/compose/api/docker-compose.yml"], "layer": "service:gone"}
    r = render(load_cluster(Project(project), "shop"))
    assert changed_phases(r, applied) == {"apps"}


def test_without_an_applied_record_a_command_runs_every_push_phase(project):
    # Another machine or CI has no record to compare with: skipping infra could leave
    # haproxy.cfg behind the route; an unchanged push is a no-op, so both phases run.
    r = render(load_cluster(Project(project), "shop"))
    assert with_changed(("apps",), r, {}) == ("infra", "apps")
    assert with_changed(("infra",), r, {"configVersion": 0, "nodes": {}}) == ("infra", "apps")
    assert with_changed(("provision",), r, {}) == ("provision",)


def test_phases_come_back_in_phase_order(project):
    applied = _applied(project)
    r = _edit(project, "domain: admin.example.com", "domain: ops.example.com")
    assert with_changed(("apps", "provision"), r, applied) == ("provision", "infra", "apps")


APPLIED_TWO = {"nodes": {"a-a": {}, "b-b": {}}}


@pytest.mark.parametrize("nodes,master,holder,applied,expected", [
    # node add: the new node after every existing node, the holder included
    (["a-a", "b-b", "c-c"], "a-a", None, APPLIED_TWO, ["b-b", "a-a", "c-c"]),
    (["a-a", "b-b", "c-c"], "a-a", "b-b", APPLIED_TWO, ["a-a", "b-b", "c-c"]),
    (["a-a", "b-b", "c-c", "d-d"], "b-b", None, APPLIED_TWO, ["a-a", "b-b", "c-c", "d-d"]),
    # nothing applied yet (first apply, or no record on this machine): the plain order
    (["a-a", "b-b", "c-c"], "a-a", None, {}, ["b-b", "c-c", "a-a"]),
    (["a-a", "b-b", "c-c"], "a-a", None, None, ["b-b", "c-c", "a-a"]),
    # node remove: the record still names the removed node; the rest roll as usual
    (["a-a", "c-c"], "a-a", None, {"nodes": {"a-a": {}, "b-b": {}, "c-c": {}}}, ["c-c", "a-a"]),
])
def test_rolling_order_pushes_nodes_never_applied_after_the_vip_holder(nodes, master, holder, applied, expected):
    assert rolling_order(nodes, master, holder, applied) == expected


def test_the_cli_phase_choices_are_the_engine_phases():
    from dynia.cli.common import Phase
    from dynia.phases import PHASES

    assert tuple(p.value for p in Phase) == PHASES
