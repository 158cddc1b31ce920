"""The token written to nodes is a separate, scoped one: never the operator's, never a fallback."""
from __future__ import annotations

import pytest

from dynia import providers
from dynia.operations.doctor import token_checks
from dynia.errors import DyniaError
from dynia.providers.digitalocean import NODE_TOKEN_ENV, NODE_TOKEN_SCOPES, TOKEN_ENV

OPERATOR = "dop_v1_OPERATORTOKEN0123456789"
NODE = "dop_v1_NODETOKEN0123456789abcd"


def test_the_node_token_comes_from_its_own_variable(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, OPERATOR)
    monkeypatch.setenv(NODE_TOKEN_ENV, NODE)
    assert providers.get("digitalocean").node_token() == NODE


def test_a_missing_node_token_is_a_config_error_and_never_falls_back_to_the_operators(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, OPERATOR)
    monkeypatch.delenv(NODE_TOKEN_ENV, raising=False)
    with pytest.raises(DyniaError) as err:
        providers.get("digitalocean").node_token()
    assert err.value.kind == "config" and NODE_TOKEN_ENV in err.value.message
    assert "reserved_ip:update" in err.value.hint and OPERATOR not in str(err.value) + err.value.hint


def test_the_operators_token_as_node_token_is_refused(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, OPERATOR)
    monkeypatch.setenv(NODE_TOKEN_ENV, OPERATOR)
    with pytest.raises(DyniaError) as err:
        providers.get("digitalocean").node_token()
    assert err.value.kind == "config" and "same token" in err.value.message
    assert OPERATOR not in err.value.message + err.value.hint


def test_the_hint_names_the_narrowest_scopes_digitalocean_offers_for_reserved_ip_assignment():
    assert NODE_TOKEN_SCOPES[0] == "reserved_ip:update"
    # block_storage_action:create is DigitalOcean's name for attach and detach (a data volume
    # moves with the VIP); no scope creates or deletes a resource.
    creating = [s for s in NODE_TOKEN_SCOPES if s.endswith((":create", ":delete")) and s != "block_storage_action:create"]
    assert creating == [] and not any(s.startswith(("droplet:update", "block_storage:")) and not s.endswith(":read")
                                      for s in NODE_TOKEN_SCOPES)


def test_the_lab_needs_no_node_token_from_the_environment(monkeypatch):
    from dynia.providers.local import LAB_NODE_TOKEN

    monkeypatch.delenv(NODE_TOKEN_ENV, raising=False)
    # its nodes assign the reserved IP through the lab's API stand-in, which accepts the lab's own
    assert providers.get("local").node_token() == LAB_NODE_TOKEN


def _checks(env):
    return {c.name: c for c in token_checks(providers.get("digitalocean"), env)}


def test_doctor_says_which_token_is_which_and_never_shows_a_value():
    checks = _checks({TOKEN_ENV: OPERATOR, "CLOUDFLARE_API_TOKEN": "cf", NODE_TOKEN_ENV: NODE})
    assert checks["node token"].ok and checks["digitalocean token"].ok
    assert "operator's token" in checks["digitalocean token"].detail
    assert "every node" in checks["node token"].detail
    shown = " ".join(c.detail + c.fix for c in checks.values())
    assert OPERATOR not in shown and NODE not in shown and NODE[-4:] not in shown


def test_doctor_fails_when_the_node_token_is_the_operators_token():
    checks = _checks({TOKEN_ENV: OPERATOR, "CLOUDFLARE_API_TOKEN": "cf", NODE_TOKEN_ENV: OPERATOR})
    assert not checks["node token"].ok and "same token as DIGITALOCEAN_TOKEN" in checks["node token"].detail
    assert OPERATOR not in checks["node token"].detail


def test_doctor_fails_when_the_node_token_is_missing():
    checks = _checks({TOKEN_ENV: OPERATOR, "CLOUDFLARE_API_TOKEN": "cf"})
    assert not checks["node token"].ok and "reserved_ip:update" in checks["node token"].fix


def test_a_lab_cluster_has_no_node_token_check():
    assert "node token" not in {c.name for c in token_checks(providers.get("local"), {})}
