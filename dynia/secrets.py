"""Per-cluster generated secrets kept on the operator's machine (.dynia/secrets, 0600).

Only names and slots ever reach deploy-config/, plans or logs; the values are read at push
time. Provider tokens stay in the environment (DIGITALOCEAN_TOKEN, CLOUDFLARE_API_TOKEN).
"""
from __future__ import annotations

import os
import re
import secrets as _random

from .errors import DyniaError
from .store import Project, write_atomic, write_json

TOKEN_ENV = {"digitalocean": "DIGITALOCEAN_TOKEN", "cloudflare": "CLOUDFLARE_API_TOKEN"}


def ensure(project: Project, cluster: str) -> bool:
    """Generate the cluster's stats credentials once. Returns True if it created them."""
    path = project.secrets_path(cluster)
    if path.exists():
        return False
    project.ensure_runtime()
    write_json(path, {"stats_user": f"stats-{_random.token_hex(4)}",
                      "stats_password": _random.token_urlsafe(24)}, mode=0o600)
    return True


_CREDENTIAL = {"stats_user": re.compile(r"[A-Za-z0-9_-]{4,64}"), "stats_password": re.compile(r"[A-Za-z0-9_-]{16,128}")}


def load(project: Project, cluster: str) -> dict | None:
    """The stats credentials, or None before they exist. They become lines of an environment
    file on every node, so a value that is not a plain token is refused, never pushed."""
    from .cache import read_json

    path = project.secrets_path(cluster)
    shown = os.path.relpath(path, project.root)
    fix = f"delete {shown}: dynia generates new stats credentials and the next `dynia infra sync` pushes them"
    data = read_json(path, shown, fix, limit=64 * 1024)
    if data is None:
        return None
    if not isinstance(data, dict) or set(data) != set(_CREDENTIAL) or not all(
            isinstance(data[k], str) and rule.fullmatch(data[k]) for k, rule in _CREDENTIAL.items()):
        raise DyniaError("state", f"{shown} is corrupt (expected stats_user and stats_password tokens)", fix)
    return data


def self_signed_origin(project: Project, cluster: str, domain: str) -> bytes:
    """For the local provider: a self-signed stand-in for the Cloudflare Origin CA certificate
    (*.domain and the apex), created once and kept in .dynia/secrets (0600). PEM: cert + key."""
    path = project.runtime / "secrets" / f"{cluster}.origin.pem"
    if path.exists():
        return path.read_bytes()
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
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"*.{domain}"), x509.DNSName(domain)]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    project.ensure_runtime()
    write_atomic(path, pem, mode=0o600)
    return pem


def slot_values(project: Project, cluster: str, origin_pem: bytes | None,
                provider_token: str | None) -> dict[str, bytes]:
    """What each secret slot is filled with at push time (stats credentials generated once)."""
    ensure(project, cluster)
    creds = load(project, cluster)
    out = {"stats_credentials": (f"DYNIA_STATS_USER={creds['stats_user']}\n"
                                 f"DYNIA_STATS_PASSWORD={creds['stats_password']}\n").encode()}
    if origin_pem:
        out["origin_certificate"] = origin_pem
    if provider_token:
        out["provider_token"] = provider_token.encode() + b"\n"
    return out


def push_secrets(project: Project, cluster: str, spec) -> dict[str, bytes]:
    """Slot values for a push driven without the engine (the lab tests): the local provider's
    self-signed certificate, or the provider token from the environment."""
    if spec.provider.kind == "local":
        return slot_values(project, cluster, self_signed_origin(project, cluster, spec.domain), None)
    token = os.environ.get(TOKEN_ENV["digitalocean"])
    if not token:
        raise DyniaError("provider", f"{TOKEN_ENV['digitalocean']} is not set",
                         f"export {TOKEN_ENV['digitalocean']}=… (the notify script moves the reserved IP with it)")
    # The origin certificate comes from the provision phase's stack outputs (engine).
    return slot_values(project, cluster, None, token)
