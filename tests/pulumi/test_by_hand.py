"""A phase run by hand (`pulumi up --stack <cluster>-provision`, Pulumi.yaml's `main`) builds
its inputs from the stack's config (PhaseInputs.from_config). The provision stack keeps the
generated stats credentials as its output: a by-hand update keeps them when the config gives
them, and refuses — before registering anything — when it does not, instead of dropping the
output (the next dynia run would then generate new ones and change every node's HAProxy)."""
from __future__ import annotations

import json

import pytest

from dynia.errors import DyniaError
from dynia.stacks import provision

from .conftest import GraphMocks, is_secret
from .test_droplets import PUBLIC_KEY

CREDS = {"stats_user": "stats-0a1b2c3d", "stats_password": "kept-with-the-state-0123456789"}


def by_hand(**config) -> dict:
    return {"sshPublicKey": (PUBLIC_KEY, False), **config}


def test_a_by_hand_update_keeps_the_stats_credentials_given_in_the_stack_config(run_phase):
    mocks = GraphMocks()
    config = by_hand(statsCredentials=(json.dumps(CREDS), True))
    assert run_phase(provision, "shop", "provision", mocks, in_stack=True, by_hand=config) is None
    kept = mocks.created["dynia-shop-provision"].outputs["statsCredentials"]
    assert is_secret(kept) and kept["value"] == CREDS


def test_a_by_hand_update_without_them_refuses_before_registering_anything(run_phase):
    mocks = GraphMocks()
    error = run_phase(provision, "shop", "provision", mocks, in_stack=True, by_hand=by_hand())
    assert isinstance(error, DyniaError) and error.kind == "state"
    assert "would drop the provision stack's statsCredentials output" in error.message
    assert "dynia up --phase provision --cluster shop" in error.hint
    assert "pulumi config set --stack shop-provision --secret dynia:statsCredentials" in error.hint
    assert [r.typ for r in mocks.created.values()] == ["pulumi:pulumi:Stack"]
    assert mocks.created["dynia-shop-provision"].outputs == {}  # Pulumi keeps the last outputs


def test_a_by_hand_preview_without_them_plans_and_warns(run_phase):
    mocks = GraphMocks()
    assert run_phase(provision, "shop", "provision", mocks, by_hand=by_hand(), preview=True) is None
    assert any(r.typ == "digitalocean:index/droplet:Droplet" for r in mocks.created.values())


@pytest.mark.parametrize("value", ['{"stats_user": "x"}', '{"stats_user": "a b c d", "stats_password": "p"}'])
def test_corrupt_credentials_in_the_stack_config_are_refused(run_phase, value):
    mocks = GraphMocks()
    error = run_phase(provision, "shop", "provision", mocks, in_stack=True,
                      by_hand=by_hand(statsCredentials=(value, True)))
    assert isinstance(error, DyniaError) and error.kind == "state"
    assert "dynia:statsCredentials" in error.message
