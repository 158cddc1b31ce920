"""Two lifecycle promises on real lab nodes: after a failover an apps push keeps an
active-only service on the live VIP holder only, and unbinding a route removes it everywhere."""
from __future__ import annotations

import pytest

from dynia.bundle import build_bundles
from dynia.nodes.commands import NodeCommands
from dynia.paths import PATHS
from dynia.providers.local import PROFILE
from dynia.secrets import push_secrets

from .conftest import eventually

pytestmark = pytest.mark.root
NODES = ("misty-owl", "brave-panda", "calm-otter")


def admin_runs_on(lc) -> list[str]:
    return [n for n in NODES if lc.sh(n, "busybox wget -qO- http://127.0.0.1:9003/healthz", check=False).returncode == 0]


def test_after_a_failover_an_apps_push_keeps_the_active_only_service_on_the_holder_only(applied_lab):
    lc = applied_lab
    assert eventually(lambda: admin_runs_on(lc) == ["misty-owl"]), admin_runs_on(lc)
    # A clean failover: keepalived stops on the MASTER (notify.sh runs STOP there).
    lc.sh("misty-owl", NodeCommands(PROFILE).stop("keepalived"))
    assert eventually(lambda: lc.vip_holder() == ["brave-panda"], timeout=10), lc.vip_holder()
    assert eventually(lambda: admin_runs_on(lc) == ["brave-panda"], timeout=20), admin_runs_on(lc)
    # A deploy of admin now (forced re-apply): the live holder decides where it runs, not the spec.
    c = lc.cluster()
    rendering = lc.render()
    secrets = push_secrets(lc.project, "lab", c.spec)
    bundles = {n: build_bundles(c.spec, rendering, n, secrets, force=True, holder="brave-panda") for n in NODES}
    result = lc.roll(bundles, layers=["service:admin"], order=["misty-owl", "calm-otter", "brave-panda"])
    assert result.ok, [(r.node, r.reason) for r in result.results if not r.ok]
    assert admin_runs_on(lc) == ["brave-panda"]
    assert lc.get("admin.lab.example") == (200, b"admin\n")


def test_unbinding_a_route_removes_it_on_every_node_and_the_service_keeps_running(applied_lab):
    lc = applied_lab
    route = PATHS.route_file("api")
    assert all(lc.sh(n, f"test -f {route}", check=False).returncode == 0 for n in NODES)
    lc.edit_spec("    domain: api.lab.example\n", "")
    result = lc.roll(layers=["service:api"])
    assert result.ok, [(r.node, r.reason) for r in result.results if not r.ok]
    for n in NODES:
        assert lc.sh(n, f"test -e {route}", check=False).returncode != 0, n
        assert lc.sh(n, "busybox wget -qO- http://127.0.0.1:9002/healthz", check=False).returncode == 0, n
    assert lc.get("api.lab.example")[0] == 404  # nothing routes the domain any more
    assert lc.get("lab.example") == (200, b"web\n")
    again = lc.roll(layers=["service:api"])
    assert again.ok and all(r.report.get("status") == "unchanged" for r in again.results)
