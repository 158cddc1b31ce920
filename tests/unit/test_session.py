"""The session's node operations answer with typed errors, whatever the node says."""
from __future__ import annotations

from pathlib import Path

import pytest

from dynia.errors import DyniaError
from dynia.nodes.push import Target
from dynia.providers.local import PROFILE


def test_keepalived_that_will_not_stop_on_a_leaving_node_is_a_typed_sync_error(monkeypatch):
    from dynia.engine import session
    from dynia.nodes import push

    monkeypatch.setattr(push, "run", lambda target, command: (1, "", "keepalived still running\n"))
    with pytest.raises(DyniaError) as exc:
        session.silence_leaving_node(Target("calm-otter", "10.213.0.13", Path("/nonexistent")), PROFILE)
    assert exc.value.kind == "sync" and exc.value.exit_code == 15
    assert "calm-otter" in exc.value.message and "keepalived still running" in exc.value.message


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + "m" * 43


def _outputs(nodes: dict) -> dict:
    return {"nodes": nodes, "reserved_ip": "203.0.113.50"}


class StateDouble:
    """Reads the provision stack's outputs as Engine.refresh_outputs does: into the cache."""

    def __init__(self, cluster, outputs):
        self.cluster, self.outputs, self.reads = cluster, outputs, 0

    def refresh_outputs(self) -> bool:
        from dynia.state.cache import ClusterCache

        self.reads += 1
        ClusterCache.of(self.cluster).write_outputs(self.outputs)
        return True


@pytest.mark.parametrize("cached, why", [
    (None, "no node addresses on this machine"),
    (_outputs({"misty-owl": {"private_ip": "10.110.0.11", "public_ip": "198.51.100.11", "host_key": KEY}}),
     "no address for brave-panda on this machine"),
    (_outputs({n: {"private_ip": f"10.110.0.1{i}", "public_ip": f"198.51.100.1{i}"}
               for i, n in ((1, "misty-owl"), (2, "brave-panda"))}), "no pinned host keys on this machine"),
], ids=["no-cache", "a-node-missing", "no-host-keys"])
def test_a_missing_or_older_cache_is_read_again_from_the_state_and_a_current_one_is_not(project, cached, why):
    from dynia.engine import session
    from dynia.state.cache import ClusterCache
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    c = load_cluster(Project(project), "shop")
    if cached is not None:
        ClusterCache.of(c).write_outputs(cached)
    assert session.stale_addresses(c) == why
    state = StateDouble(c, _outputs({n: {"private_ip": f"10.110.0.1{i}", "public_ip": f"198.51.100.1{i}",
                                        "host_key": KEY} for i, n in ((1, "misty-owl"), (2, "brave-panda"))}))
    assert sorted((t.node, t.host) for t in session.reach(c, state)) == [
        ("brave-panda", "198.51.100.12"), ("misty-owl", "198.51.100.11")]
    assert state.reads == 1 and session.stale_addresses(c) is None
    session.reach(c, state)
    assert state.reads == 1  # current now: the cache answers alone
