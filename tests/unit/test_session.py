"""The session's node operations answer with typed errors, whatever the node says."""
from __future__ import annotations

from pathlib import Path

import pytest

from dynia.errors import DyniaError
from dynia.nodes.push import Target
from dynia.providers.local import PROFILE


def test_keepalived_that_will_not_stop_on_a_leaving_node_is_a_typed_sync_error(monkeypatch):
    from dynia import session
    from dynia.nodes import push

    monkeypatch.setattr(push, "run", lambda target, command: (1, "", "keepalived still running\n"))
    with pytest.raises(DyniaError) as exc:
        session.silence_leaving_node(Target("calm-otter", "10.213.0.13", Path("/nonexistent")), PROFILE)
    assert exc.value.kind == "sync" and exc.value.exit_code == 15
    assert "calm-otter" in exc.value.message and "keepalived still running" in exc.value.message
