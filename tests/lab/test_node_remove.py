"""Removing a node never moves the VIP, however slow the roll: the leaving node's keepalived is
stopped (the product's stop command, as `dynia cluster node remove` runs it) before the others
are re-pushed without it, so it never hears silence, never turns MASTER, never takes the IP."""
from __future__ import annotations

import time

import pytest

from dynia import providers
from dynia.spec.editing import check_removable
from dynia.errors import DyniaError
from dynia.nodes.commands import NodeCommands
from dynia.nodes.push import Target
from dynia.providers import get
from dynia.engine.session import silence_leaving_node

from .conftest import eventually, record, roll
from .test_node_add import SLOW_PUSH_SECONDS, Watch

KEPT, LEAVING = ["misty-owl", "brave-panda"], "calm-otter"


def test_the_live_holder_cannot_be_removed_even_when_it_is_not_the_configured_master():
    nodes = ["misty-owl", "brave-panda", "calm-otter"]
    with pytest.raises(DyniaError) as exc:
        check_removable(nodes, "misty-owl", "brave-panda", holder="brave-panda")
    assert exc.value.kind == "config" and "holds the reserved IP" in exc.value.message
    check_removable(nodes, "misty-owl", "calm-otter", holder="brave-panda")  # a plain backup goes


def test_a_leaving_node_that_cannot_be_reached_is_refused_not_skipped(tmp_path):
    import subprocess

    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    # TEST-NET-1 (RFC 5737): never routed, so the connection times out.
    target = Target("calm-otter", "192.0.2.1", key, connect_timeout=0.5)
    with pytest.raises(DyniaError) as exc:
        silence_leaving_node(target, get("local").profile)
    assert exc.value.kind == "network" and "--node-down" in exc.value.hint


def test_node_remove_with_a_slow_roll_never_moves_the_vip_and_the_leaving_node_never_becomes_master(applied_lab):
    lc = applied_lab
    assert lc.vip_holder() == ["misty-owl"]
    profile = providers.of(lc.cluster().spec).profile
    commands = NodeCommands(profile)
    logged = {n: len(lc.cat(n, "/var/log/keepalived.log")) for n in KEPT + [LEAVING]}
    started = time.monotonic()
    with Watch(lc) as watch:
        # What the CLI does after the snapshot and the confirmation: silence it, then re-push.
        silence_leaving_node(lc.targets([LEAVING])[0], profile)
        assert lc.sh(LEAVING, commands.running("keepalived"), check=False).returncode != 0
        lc.edit_spec("nodes: [misty-owl, brave-panda, calm-otter]", "nodes: [misty-owl, brave-panda]")
        rendering = lc.render()
        assert rendering.rolling_order == ["brave-panda", "misty-owl"]  # the holder last
        bundles = lc.bundles(rendering)
        for node in rendering.rolling_order:
            result = roll(lc.targets([node]), bundles, ["infra"])
            assert result.ok, [(r.node, r.reason) for r in result.results]
            time.sleep(SLOW_PUSH_SECONDS)  # past the leaving node's master-down interval each time
    record("node_remove_slow_roll_seconds", round(time.monotonic() - started, 1))
    leaving_ip = lc.lab.node(LEAVING).ip
    for n in KEPT:  # it is no peer any more: the re-push really dropped it
        assert leaving_ip not in lc.cat(n, "/etc/keepalived/keepalived.conf").decode()
    holders = set(s for s in watch.samples if s and s[0] != "error")
    assert holders == {("misty-owl",)}, holders
    assert eventually(lambda: lc.vip_holder() == ["misty-owl"], timeout=2)
    for n in KEPT + [LEAVING]:
        since = lc.cat(n, "/var/log/keepalived.log")[logged[n]:].decode(errors="replace")
        assert "Entering MASTER STATE" not in since, (n, since[-2000:])
    assert not lc.cat(LEAVING, "/opt/dynia/state/vrrp").startswith(b"MASTER")
    record("node_remove_vip_samples", len(watch.samples))
