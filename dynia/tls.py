"""TLS modes: where the certificate HAProxy serves comes from, and whether Cloudflare proxies.

`origin`: a Cloudflare Origin CA certificate for *.domain and the apex, records proxied. The
lab stands in for Cloudflare with a self-signed certificate for the same names, made here and
nowhere else.
`letsencrypt`: one ACME certificate for the cluster (dynia.operations.certs), records DNS-only: the CA
must reach the reserved IP itself for HTTP-01, and browsers must see the certificate HAProxy
serves, not Cloudflare's.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

PROXIED = {"origin": True, "letsencrypt": False}
# Where the certificate in the origin slot comes from: the provider's Origin CA resource, or
# the ACME state kept by the provision stack (dynia.operations.certs.AcmeState).
ACME_MODES = frozenset({"letsencrypt"})


def proxied(mode: str) -> bool:
    return PROXIED[mode]


def uses_acme(mode: str) -> bool:
    """True when the cluster's certificate comes from an ACME order, not the provider."""
    return mode in ACME_MODES


def hostnames(domain: str) -> list[str]:
    return [f"*.{domain}", domain]


def self_signed_pem(domain: str, days: int = 365) -> bytes:
    """Certificate + key (PEM) for *.domain and the apex, self-signed: the lab's origin certificate."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"*.{domain}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in hostnames(domain)]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


# --- Authenticated Origin Pulls: the cluster's own CA and client certificate -------------------
# On droplets they are resources of the provision state (components/origin_pull.py, pulumi-tls);
# the lab makes the same pair here, once, and keeps it in the operator's .dynia/secrets (as it
# keeps its stand-in origin certificate): its "Cloudflare" presents the client certificate,
# as Cloudflare presents the one uploaded to the zone.


def origin_pull_pair(cluster: str, days: int = 3650) -> dict[str, str]:
    """{"ca", "certificate", "private_key"} (PEM): a fresh CA and a client certificate it signed."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dynia"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = name(f"{cluster} origin-pull CA")

    def builder(subject, public_key, valid_days):
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public_key)
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=valid_days)))

    ca = (builder(ca_name, ca_key.public_key(), 2 * days)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    client = (builder(name(f"{cluster} origin pull"), key.public_key(), days)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return {"ca": ca.public_bytes(pem).decode(), "certificate": client.public_bytes(pem).decode(),
            "private_key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode()}


# --- a certificate's public facts (never its key) ------------------------------------------

@dataclass(frozen=True)
class CertInfo:
    sha256: str            # fingerprint of the DER certificate, lower-case hex
    not_after: dt.datetime  # UTC
    names: tuple[str, ...] = ()
    # issuer = subject: the lab's stand-in, or letsencrypt's placeholder (read from the served
    # certificate, not kept in the cache record)
    self_signed: bool = False

    def as_dict(self) -> dict:
        return {"sha256": self.sha256, "not_after": self.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "names": list(self.names)}


def cert_info_der(der: bytes) -> CertInfo:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        names = tuple(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                      .get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    return CertInfo(hashlib.sha256(der).hexdigest(), cert.not_valid_after_utc, names, cert.issuer == cert.subject)


def certificate_record(pem: str) -> dict:
    """The public facts of the first certificate in a PEM bundle (certificate + key, as the
    provision phase exports `originPem`): what the cache keeps so verify needs no Pulumi. Only
    the CERTIFICATE block is parsed; nothing of the key is kept or returned."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    if begin not in pem or end not in pem.split(begin, 1)[1]:
        raise ValueError("no certificate in the PEM")
    block = begin + pem.split(begin, 1)[1].split(end, 1)[0] + end + "\n"
    der = x509.load_pem_x509_certificate(block.encode()).public_bytes(Encoding.DER)
    return cert_info_der(der).as_dict()


def name_covers(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.count(".") == pattern.count(".") and host.endswith(pattern[1:])
    return pattern == host
