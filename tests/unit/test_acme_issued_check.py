"""The CA's answer is checked before anything stores or pushes it (dynia.acme.client.checked_issue):
the chain parses, the leaf names every requested domain and carries the order's own public key.
Anything else is a typed `cert` error quoting no PEM."""
from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dynia.acme.client import checked_issue, new_key_pem
from dynia.errors import DyniaError

NOW = dt.datetime.now(dt.timezone.utc)


def leaf(key_pem: str, names: list[str]) -> str:
    """A CA-signed leaf for `names` with the public key of `key_pem`, then the CA: a full chain."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=365))
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca_name).public_key(key.public_key())
            .serial_number(2).not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in (cert, ca))


def test_a_matching_chain_is_kept_with_the_names_the_certificate_itself_carries():
    key = new_key_pem()
    issued = checked_issue(leaf(key, ["shop.example", "api.shop.example"]), key, ["api.shop.example", "shop.example"])
    assert issued.domains == ("api.shop.example", "shop.example")
    assert issued.not_after > NOW + dt.timedelta(days=89)


def test_a_certificate_missing_a_requested_name_is_a_cert_error_naming_it():
    key = new_key_pem()
    with pytest.raises(DyniaError) as caught:
        checked_issue(leaf(key, ["api.shop.example"]), key, ["api.shop.example", "shop.example"])
    assert caught.value.kind == "cert" and "does not cover shop.example" in caught.value.message
    assert "nothing was stored or pushed" in caught.value.hint


def test_a_certificate_for_another_key_is_a_cert_error():
    key = new_key_pem()
    with pytest.raises(DyniaError) as caught:
        checked_issue(leaf(new_key_pem(), ["shop.example"]), key, ["shop.example"])
    assert caught.value.kind == "cert" and "public key differs" in caught.value.message
    assert "PRIVATE KEY" not in str(caught.value) + caught.value.hint


@pytest.mark.parametrize("chain", ["", "not a certificate",
                                   "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
def test_an_unreadable_chain_is_a_cert_error_not_an_internal_one(chain):
    with pytest.raises(DyniaError) as caught:
        checked_issue(chain, new_key_pem(), ["shop.example"])
    assert caught.value.kind == "cert" and "shop.example" in caught.value.message
