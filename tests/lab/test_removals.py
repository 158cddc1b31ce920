"""Removing a service reaches every node: after `service remove` (the spec edited) the removal
bundles the apps program pushes (dynia.bundle.removal_bundle, rolled node by node) leave
nothing behind — no container of its compose project, no compose file, no route — and Caddy
answers 404 for its domain while the other services keep answering."""
from __future__ import annotations

import json

from dynia.bundle import removal_bundle, removed_services
from dynia.paths import PATHS

from .conftest import eventually, record


def remove_api_from_the_spec(lc) -> None:
    path = lc.project.spec_path("lab")
    lines = path.read_text().splitlines(keepends=True)
    start = lines.index("  api:\n")
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("    "))
    path.write_text("".join(lines[:start] + lines[end:]))


def containers(lc, node: str, project: str) -> list[str]:
    out = lc.sh(node, f"podman ps -a --format '{{{{.Names}}}}' --filter label=io.podman.compose.project={project}")
    return out.stdout.decode().split()


def test_a_removed_service_is_stopped_and_its_files_and_route_are_gone_on_every_node(applied_lab):
    lc = applied_lab
    nodes = lc.cluster().spec.nodes
    assert lc.get("api.lab.example", "/healthz")[0] == 200
    assert any(containers(lc, n, "dynia-api") for n in nodes)
    # What the apps stack exported after the first apply: every node names service:api.
    previous = {n: {layer: {} for layer in layers} for n, layers in lc.bundles().items()}

    remove_api_from_the_spec(lc)
    spec = lc.cluster().spec
    assert removed_services(spec, previous) == ["api"]
    rendering = lc.render()
    bundles = {n: {"service:api": removal_bundle(spec, n, "api", rendering.config_version)} for n in spec.nodes}
    result = lc.roll(bundles=bundles, layers=["service:api"])
    assert result.ok, [(r.node, r.reason) for r in result.results if not r.ok]
    assert [r.report["stopped"] for r in result.results] == [["service:api"]] * len(spec.nodes)
    record("removal_seconds_per_node", [round(r.seconds, 2) for r in result.results])

    for n in spec.nodes:
        assert containers(lc, n, "dynia-api") == [], n
        gone = lc.sh(n, f"test ! -e {PATHS.compose_file('api')} && test ! -e {PATHS.route_file('api')}", check=False)
        assert gone.returncode == 0, n
        applied = json.loads(lc.cat(n, PATHS.state("applied.json")))
        assert "service:api" not in applied["layers"] and "service:web" in applied["layers"]
    assert eventually(lambda: lc.get("api.lab.example", "/healthz")[0] == 404)
    assert lc.get("lab.example", "/healthz")[0] == 200
    assert lc.get("admin.lab.example", "/healthz")[0] == 200

    # A second removal push finds nothing to do on any node.
    again = lc.roll(bundles=bundles, layers=["service:api"])
    assert again.ok and {r.report["status"] for r in again.results} == {"unchanged"}
