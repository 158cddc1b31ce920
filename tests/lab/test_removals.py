"""Removing a service reaches every node: after `service remove` (the spec edited) the real apps
program (dynia.stacks.apps on LabEngineDouble, which runs its pushes over SSH) finds the service
in its stack's last `layers` output, builds the removal bundles itself (dynia.render.bundle.removal_bundle
through dynia.stacks.pushes) and rolls them node by node. Afterwards nothing is left behind — no
container of its compose project, no compose file, no route — and Caddy answers 404 for its domain
while the other services keep answering. Built by the program, not by the test: with the wiring
reverted the removal pushes are never made and this test fails."""
from __future__ import annotations

import json

import pytest

from dynia.paths import PATHS
from dynia.stacks import apps, infra, provision

from ..engine.lab_double import LabEngineDouble, lab_inputs, run_phase
from .conftest import eventually, record
from .own_subnet import examples_copy


def remove_api_from_the_spec(lc) -> None:
    path = lc.project.spec_path("lab")
    lines = path.read_text().splitlines(keepends=True)
    start = lines.index("  api:\n")
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("    "))
    path.write_text("".join(lines[:start] + lines[end:]))


def containers(lc, node: str, project: str) -> list[str]:
    out = lc.sh(node, f"podman ps -a --format '{{{{.Names}}}}' --filter label=io.podman.compose.project={project}")
    return out.stdout.decode().split()


@pytest.fixture
def engine_lab(tmp_path, lab_tools):
    """provision → infra → apps of the lab cluster (on a subnet of its own) through the real
    programs; yields the LabCluster, the double (its StackReferences) and the apps stack's
    exported outputs."""
    from dynia.nodes.lab import Lab
    from dynia.state.store import Project

    from .conftest import LabCluster

    root, lab_dir = tmp_path / "proj", tmp_path / "lab"
    with examples_copy(root, lab_dir):
        try:
            double = LabEngineDouble()
            outputs, error = run_phase(provision, lab_inputs(root, lab_dir), "provision", double)
            assert error is None, error
            double.references["lab-provision"] = outputs
            assert run_phase(infra, lab_inputs(root, lab_dir), "infra", double)[1] is None
            applied, error = run_phase(apps, lab_inputs(root, lab_dir), "apps", double)
            assert error is None, error
            yield LabCluster(Project(root), Lab.load(lab_dir)), double, applied, (root, lab_dir)
        finally:
            if (lab_dir / "lab.json").exists():
                Lab.load(lab_dir).down()


def test_a_removed_service_is_stopped_and_its_files_and_route_are_gone_on_every_node(engine_lab):
    lc, double, applied, (root, lab_dir) = engine_lab
    nodes = lc.cluster().spec.nodes
    assert eventually(lambda: lc.get("api.lab.example", "/healthz")[0] == 200)
    assert any(containers(lc, n, "dynia-api") for n in nodes)
    # What the apps stack exported after the first apply: every node names service:api.
    assert all("service:api" in applied["layers"][n] for n in nodes)

    remove_api_from_the_spec(lc)
    # As `dynia up` does: infra first (HAProxy drops the service's backend), then apps.
    assert run_phase(infra, lab_inputs(root, lab_dir), "infra", LabEngineDouble(double.references))[1] is None
    again = LabEngineDouble(double.references)
    outputs, error = run_phase(apps, lab_inputs(root, lab_dir, previous_layers=applied["layers"]), "apps", again)
    assert error is None, error
    removals = [name for typ, name in again.executed if typ == "command:remote:Command" and "service-api" in name]
    assert len(removals) == len(nodes), again.executed
    record("removal_pushes", removals)

    for n in nodes:
        assert containers(lc, n, "dynia-api") == [], n
        gone = lc.sh(n, f"test ! -e {PATHS.compose_file('api')} && test ! -e {PATHS.route_file('api')}", check=False)
        assert gone.returncode == 0, n
        state = json.loads(lc.cat(n, PATHS.state("applied.json")))
        assert "service:api" not in state["layers"] and "service:web" in state["layers"]
    assert eventually(lambda: lc.get("api.lab.example", "/healthz")[0] == 404)
    assert lc.get("lab.example", "/healthz")[0] == 200
    assert lc.get("admin.lab.example", "/healthz")[0] == 200
    # The run's `layers` no longer name the service: the next run neither pushes nor removes it.
    assert all("service:api" not in layers for layers in outputs["layers"].values())
    third = LabEngineDouble(double.references)
    assert run_phase(apps, lab_inputs(root, lab_dir, previous_layers=outputs["layers"]), "apps", third)[1] is None
    assert not [name for typ, name in third.executed if "service-api" in name]
