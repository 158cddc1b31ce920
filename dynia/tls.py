"""TLS modes: where the certificate HAProxy serves comes from, and whether Cloudflare proxies.

`origin`: a Cloudflare Origin CA certificate for *.domain and the apex, records proxied. The
lab stands in for Cloudflare with a self-signed certificate for the same names, made here and
nowhere else.
`letsencrypt`: one ACME certificate for the cluster (dynia.certs), records DNS-only: the CA
must reach the reserved IP itself for HTTP-01, and browsers must see the certificate HAProxy
serves, not Cloudflare's.
"""
from __future__ import annotations

PROXIED = {"origin": True, "letsencrypt": False}
# Where the certificate in the origin slot comes from: the provider's Origin CA resource, or
# the ACME state kept by the provision stack (dynia.certs.AcmeState).
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


# --- The lab's stand-in for Cloudflare's origin-pull CA (Authenticated Origin Pulls) ----------
# Cloudflare's edge cannot reach a lab, so the lab's HAProxy verifies client certificates against
# a CA of the lab's own, and the lab's clients (standing for Cloudflare) present a certificate it
# signed. Rendering must stay pure (same spec, same bytes, no state read), so the CA is derived
# from the cluster's name: an Ed25519 key from a hash (Ed25519 signatures are deterministic) and
# fixed validity dates. Anyone can derive its key: it proves that HAProxy lets a certificate of
# the configured CA in and keeps everyone else out, nothing about keeping the CA secret (on
# droplets the CA is Cloudflare's and its key is Cloudflare's alone).
_LAB_PULL_VALIDITY = ("2025-01-01", "2099-12-31")


def _lab_pull_key(cluster: str, role: str):
    import hashlib

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(f"dynia lab origin-pull {role} {cluster}".encode()).digest())


def _lab_pull_cert(cluster: str, role: str, is_ca: bool):
    import datetime
    import hashlib

    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(r: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dynia lab"),
                          x509.NameAttribute(NameOID.COMMON_NAME, f"origin-pull {r} ({cluster})")])

    start, end = (datetime.datetime.fromisoformat(d).replace(tzinfo=datetime.timezone.utc)
                  for d in _LAB_PULL_VALIDITY)
    serial = int.from_bytes(hashlib.sha256(f"{role} {cluster}".encode()).digest()[:16], "big") >> 1
    builder = (x509.CertificateBuilder().subject_name(name(role)).issuer_name(name("ca"))
               .public_key(_lab_pull_key(cluster, role).public_key()).serial_number(serial)
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
    if is_ca:
        builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                        critical=True)
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(_lab_pull_key(cluster, "ca"), None)


def lab_origin_pull_ca(cluster: str) -> bytes:
    """The lab's origin-pull CA certificate (PEM): HAProxy's ca-file on lab nodes."""
    from cryptography.hazmat.primitives import serialization

    return _lab_pull_cert(cluster, "ca", True).public_bytes(serialization.Encoding.PEM)


def lab_origin_pull_client(cluster: str) -> bytes:
    """Certificate + key (PEM) the lab's clients present on 443, as Cloudflare's edge does."""
    from cryptography.hazmat.primitives import serialization

    cert = _lab_pull_cert(cluster, "client", False)
    return cert.public_bytes(serialization.Encoding.PEM) + _lab_pull_key(cluster, "client").private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
