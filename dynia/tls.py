"""TLS modes: where the certificate HAProxy serves comes from, and whether Cloudflare proxies.

`origin` (the only mode so far): a Cloudflare Origin CA certificate for *.domain and the
apex, records proxied. The lab stands in for Cloudflare with a self-signed certificate for
the same names, made here and nowhere else.
"""
from __future__ import annotations

PROXIED = {"origin": True}


def proxied(mode: str) -> bool:
    return PROXIED[mode]


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
