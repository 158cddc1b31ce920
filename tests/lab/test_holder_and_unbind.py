"""Lifecycle promises on real lab nodes: after a failover an apps push moves an active-only
service to the live VIP holder (started there, stopped everywhere else) even when nothing but
the holder changed; unbinding a route removes it everywhere; a second domain bound to a service
is served through the VIP beside its first, and unbinding it leaves the first."""
from __future__ import annotations

import os
import signal

from dynia.render.bundle import build_bundles
from dynia.spec.editing import bind_route, unbind_route
from dynia.nodes.commands import NodeCommands
from dynia.paths import PATHS
from dynia.providers.local import PROFILE
from dynia.state.secrets import push_secrets

from .conftest import eventually

NODES = ("misty-owl", "brave-panda", "calm-otter")


def admin_runs_on(lc) -> list[str]:
    return [n for n in NODES if lc.sh(n, "busybox wget -qO- http://127.0.0.1:9003/healthz", check=False).returncode == 0]


def crash_keepalived(lc, node) -> None:
    """A true crash (as tests/lab/test_failover.py): SIGKILL the VRRP child and the parent, so
    notify.sh never runs STOP there; a killed keepalived cannot remove its VIP either. Both are
    frozen first: a parent that sees its child die in between respawns it, and the new child's
    BACKUP notify stops the active-only service (seen once in a full lab run)."""
    pids = [int(lc.cat(node, f).strip()) for f in ("/run/keepalived-vrrp.pid", "/run/keepalived.pid")]
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            os.kill(pid, sig)
    # The node is dead for traffic; the address may already be gone (a parent that saw its
    # child die first drops it).
    lc.sh(node, f"ip addr del {lc.lab.vip}/24 dev eth0", check=False)


def test_after_a_failover_an_apps_push_with_only_the_holder_changed_moves_the_active_only_service(applied_lab):
    lc = applied_lab
    assert eventually(lambda: admin_runs_on(lc) == ["misty-owl"]), admin_runs_on(lc)
    # misty-owl crashes: brave-panda takes the VIP and its notify.sh starts admin, but nothing
    # stops misty-owl's copy (no STOP notify): two writers of a single-writer service.
    crash_keepalived(lc, "misty-owl")
    assert eventually(lambda: lc.vip_holder() == ["brave-panda"], timeout=10), lc.vip_holder()
    assert eventually(lambda: admin_runs_on(lc) == ["misty-owl", "brave-panda"], timeout=20), admin_runs_on(lc)
    # And brave-panda's start failed (notify.sh only logs a failed compose): the push must start it.
    commands = NodeCommands(PROFILE)
    lc.sh("brave-panda", commands.compose_down("admin"))
    assert admin_runs_on(lc) == ["misty-owl"]

    # An apps push (not forced) whose only difference is the live holder: same compose files.
    c = lc.cluster()
    rendering = lc.render()
    secrets = push_secrets(lc.project, "lab", c.spec)
    bundles = {n: build_bundles(c.spec, rendering, n, secrets, holder="brave-panda") for n in NODES}
    services = sorted(layer for layer in bundles["misty-owl"] if layer != "infra")
    result = lc.roll(bundles, layers=services, order=["misty-owl", "calm-otter", "brave-panda"])
    assert result.ok, [(r.node, r.reason) for r in result.results if not r.ok]
    outcome = {(r.node, r.layer): r.report for r in result.results}
    assert all(r["changed"] == [] for r in outcome.values())
    moved = {k: (r["status"], r.get("stopped"), r["reloaded"]) for k, r in outcome.items() if r["status"] != "unchanged"}
    assert moved == {("misty-owl", "service:admin"): ("applied", ["service:admin"], []),
                     ("brave-panda", "service:admin"): ("applied", [], ["service:admin"])}, moved
    assert outcome[("brave-panda", "service:admin")]["healthAttempts"] >= 1  # started, then gated
    assert admin_runs_on(lc) == ["brave-panda"]
    # Traffic follows once HAProxy's checks see the started app again (`rise` checks).
    assert eventually(lambda: lc.get("admin.lab.example") == (200, b"admin\n"), timeout=20), \
        lc.get("admin.lab.example")
    again = lc.roll(bundles, layers=services, order=["misty-owl", "calm-otter", "brave-panda"])
    assert again.ok and all(r.report.get("status") == "unchanged" for r in again.results)

    # A clean failover from there: keepalived stops on brave-panda (notify.sh runs STOP, which
    # stops admin), calm-otter, the only one left, takes the VIP and starts it.
    lc.sh("brave-panda", commands.stop("keepalived"))
    assert eventually(lambda: lc.vip_holder() == ["calm-otter"], timeout=10), lc.vip_holder()
    assert eventually(lambda: admin_runs_on(lc) == ["calm-otter"], timeout=20), admin_runs_on(lc)


def _spec_put_back(lc, text: str, layers: list[str]) -> None:
    """The spec as it was, rolled out again: the module's next test gets the lab as it was."""
    lc.project.spec_path("lab").write_text(text)
    result = lc.roll(layers=layers)
    assert result.ok, [(r.node, r.reason) for r in result.results if not r.ok]


def test_unbinding_a_route_removes_it_on_every_node_and_the_service_keeps_running(shared_applied_lab):
    lc = shared_applied_lab
    spec = lc.project.spec_path("lab").read_text()
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
    _spec_put_back(lc, spec, ["service:api"])


def test_a_second_domain_is_served_through_the_vip_and_unbinding_it_keeps_the_first(shared_applied_lab):
    lc = shared_applied_lab
    spec = lc.project.spec_path("lab").read_text()
    assert lc.get("www.lab.example")[0] == 404  # no route: be_any_node, Caddy's 404
    bind_route(lc.project, "lab", "web", "www.lab.example")   # what `dynia route bind` writes
    assert lc.cluster().spec.services["web"].domains == ["lab.example", "www.lab.example"]
    # HAProxy's host rule (infra) and the Caddy route (the service's layer)
    result = lc.roll(layers=["infra", "service:web"])
    assert result.ok, [(r.node, r.reason) for r in result.results if not r.ok]
    # each node's gate asked its own Caddy as both hosts before the roll moved on
    gated = [r.report for r in result.results if r.layer == "service:web"]
    assert len(gated) == len(NODES) and all(r["status"] == "applied" for r in gated), gated
    for host in ("www.lab.example", "lab.example"):
        assert eventually(lambda: lc.get(host) == (200, b"web\n")), (host, lc.get(host))
    assert lc.get("api.lab.example") == (200, b"api\n")

    unbind_route(lc.project, "lab", "web", "www.lab.example")
    result = lc.roll(layers=["infra", "service:web"])
    assert result.ok, [(r.node, r.reason) for r in result.results if not r.ok]
    assert eventually(lambda: lc.get("www.lab.example")[0] == 404), lc.get("www.lab.example")
    assert lc.get("lab.example") == (200, b"web\n")
    _spec_put_back(lc, spec, ["infra", "service:web"])
