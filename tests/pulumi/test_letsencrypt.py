"""tls.mode letsencrypt in the provision program: no Cloudflare Origin CA certificate; the origin
slot (`originPem`) is filled from the ACME state the engine passes in, and that state is kept as
the stack's secret `acme` output (never lost between runs, never in plain text)."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from dynia.acme.client import new_key_pem
from dynia.operations.certs import AcmeState
from dynia.errors import DyniaError
from dynia.stacks import provision
from dynia.tls import self_signed_pem

from .conftest import GraphMocks, is_secret, plain_strings
from .test_droplets import PUBLIC_KEY


@pytest.fixture
def letsencrypt(project):
    path = project / "clusters/shop.yaml"
    text = path.read_text()
    assert "  mode: origin\n" in text
    path.write_text(text.replace("  mode: origin\n", "  mode: letsencrypt\n  acme_directory: staging\n"))
    return project


def issued_state() -> AcmeState:
    pem = self_signed_pem("example.com").decode()  # stands in for the CA's chain + key
    return AcmeState(new_key_pem(), pem, dt.datetime(2027, 3, 1, tzinfo=dt.timezone.utc),
                     ("api.example.com", "example.com"), "https://acme-staging-v02.api.letsencrypt.org/directory")


def origin_ca_resources(mocks) -> list[str]:
    return [r.typ for r in mocks.created.values()
            if "originCaCertificate" in r.typ or "certRequest" in r.typ or "origin" in r.name]


def test_letsencrypt_provision_fills_the_origin_slot_from_the_acme_state_and_creates_no_origin_ca(
        run_phase, letsencrypt):
    state = issued_state()
    mocks = GraphMocks()
    assert run_phase(provision, "shop", "provision", mocks, in_stack=True, acme=state.to_dict()) is None
    assert origin_ca_resources(mocks) == []
    outputs = mocks.created["dynia-shop-provision"].outputs
    assert is_secret(outputs["originPem"]) and outputs["originPem"]["value"] == state.pem
    assert is_secret(outputs["acme"]) and AcmeState.from_dict(outputs["acme"]["value"]) == state
    # The account key and the certificate key appear nowhere outside a secret.
    plain = "\n".join(s for r in mocks.created.values() for s in plain_strings(r.outputs))
    assert "PRIVATE KEY" not in plain


def test_letsencrypt_provision_without_a_state_keeps_a_self_signed_placeholder(run_phase, letsencrypt):
    mocks = GraphMocks()
    assert run_phase(provision, "shop", "provision", mocks, in_stack=True) is None
    outputs = mocks.created["dynia-shop-provision"].outputs
    kept = AcmeState.from_dict(outputs["acme"]["value"])
    assert kept.placeholder and kept.account_key is None and is_secret(outputs["acme"])
    assert outputs["originPem"]["value"] == kept.pem and "BEGIN CERTIFICATE" in kept.pem
    assert origin_ca_resources(mocks) == []


def test_a_by_hand_letsencrypt_update_without_the_acme_state_is_refused(run_phase, letsencrypt):
    creds = {"stats_user": "stats-0a1b2c3d", "stats_password": "kept-with-the-state-0123456789"}
    mocks = GraphMocks()
    error = run_phase(provision, "shop", "provision", mocks, in_stack=True,
                      by_hand={"sshPublicKey": (PUBLIC_KEY, False), "statsCredentials": (json.dumps(creds), True)})
    assert isinstance(error, DyniaError) and error.kind == "state"
    assert "acme output" in error.message and "dynia:acme" in error.hint
    assert mocks.created["dynia-shop-provision"].outputs == {}


def test_a_by_hand_letsencrypt_update_keeps_the_acme_state_given_in_the_stack_config(run_phase, letsencrypt):
    creds = {"stats_user": "stats-0a1b2c3d", "stats_password": "kept-with-the-state-0123456789"}
    state = issued_state()
    mocks = GraphMocks()
    assert run_phase(provision, "shop", "provision", mocks, in_stack=True,
                     by_hand={"sshPublicKey": (PUBLIC_KEY, False), "statsCredentials": (json.dumps(creds), True),
                              "acme": (json.dumps(state.to_dict()), True)}) is None
    outputs = mocks.created["dynia-shop-provision"].outputs
    assert AcmeState.from_dict(outputs["acme"]["value"]) == state and outputs["originPem"]["value"] == state.pem


def test_origin_mode_still_creates_the_origin_ca_certificate_and_no_acme_output(run_phase):
    mocks = GraphMocks()
    assert run_phase(provision, "shop", "provision", mocks, in_stack=True) is None
    assert "cloudflare:index/originCaCertificate:OriginCaCertificate" in origin_ca_resources(mocks)
    assert "acme" not in mocks.created["dynia-shop-provision"].outputs
