"""Per-cluster generated secrets: the stats credentials.

The engine keeps them with the cluster's state (the provision stack exports them as a secret
output, dynia.engine.automation.Engine.stats_credentials), so every machine pushes the same ones; the
operator's .dynia/secrets (0600) serves pushes made without the engine (the lab tests) and
clusters provisioned before the state kept them.

Only names and slots ever reach deploy-config/, plans or logs; the values are read at push
time. Provider tokens stay in the environment (DIGITALOCEAN_TOKEN, CLOUDFLARE_API_TOKEN).
"""
from __future__ import annotations

import os
import re
import secrets as _random

from ..errors import DyniaError
from . import app_secrets
from . import registries as registry_logins
from .store import Project, write_json


def ensure(project: Project, cluster: str) -> bool:
    """Generate the cluster's stats credentials once. Returns True if it created them."""
    path = project.secrets_path(cluster)
    if path.exists() or path.is_symlink():
        load(project, cluster)  # a corrupt file is an error now, not at the first push
        return False
    project.ensure_runtime()
    write_json(path, generate(), mode=0o600)
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
    return check(data, shown, fix)


def generate() -> dict[str, str]:
    return {"stats_user": f"stats-{_random.token_hex(4)}", "stats_password": _random.token_urlsafe(24)}


def check(data, shown: str, fix: str) -> dict:
    """Stats credentials from anywhere (a file, the provision stack's config): plain tokens only."""
    if not isinstance(data, dict) or set(data) != set(_CREDENTIAL) or not all(
            isinstance(data[k], str) and rule.fullmatch(data[k]) for k, rule in _CREDENTIAL.items()):
        raise DyniaError("state", f"{shown} is corrupt (expected stats_user and stats_password tokens)", fix)
    return {k: data[k] for k in _CREDENTIAL}


def slot_values(project: Project, cluster: str, origin_pem: bytes | None,
                provider_token: str | None, *, credentials: dict | None = None,
                registries=(), origin_pull_ca: bytes | None = None, services=None) -> dict[str, bytes]:
    """What each secret slot is filled with at push time. The engine passes the credentials
    kept in the provision stack (the same on every machine); pushes without the engine use
    the operator's .dynia/secrets (generated once). `registries`: the spec's, whose tokens
    come from this machine (dynia.state.registries); `services`: the spec's, whose app secrets come
    from this machine too (dynia.state.app_secrets)."""

    if credentials:
        creds = check(credentials, "the provision stack's stats credentials",
                      "set them again: `pulumi config rm dynia:statsUser dynia:statsPassword` on the provision "
                      "stack, then `dynia up` generates new ones")
    else:
        ensure(project, cluster)
        stored = load(project, cluster)
        assert stored is not None  # ensure made them
        creds = stored
    out = {"stats_credentials": (f"DYNIA_STATS_USER={creds['stats_user']}\n"
                                 f"DYNIA_STATS_PASSWORD={creds['stats_password']}\n").encode()}
    if origin_pem:
        out["origin_certificate"] = origin_pem
    if origin_pull_ca:
        out["origin_pull_ca"] = origin_pull_ca
    if provider_token:
        out["provider_token"] = provider_token.encode() + b"\n"
    auth = registry_logins.auth_file(project, cluster, registries)
    if auth is not None:
        out["registry_auth"] = auth
    out.update(app_secrets.values(project, cluster, services or {}))
    return out


def push_secrets(project: Project, cluster: str, spec) -> dict[str, bytes]:
    """Slot values for a push driven without the engine (the lab tests): the provider's
    certificate and origin-pull CA for such pushes (the engine's come from the provision stack)
    and node token."""
    from .. import providers

    provider = providers.of(spec)
    pull = provider.origin_pull_for_push(project, cluster) if spec.tls.mode == "origin" else None
    return slot_values(project, cluster, provider.origin_pem_for_push(project, cluster, spec.domain),
                       provider.node_token(), registries=spec.registries,
                       origin_pull_ca=pull["ca"].encode() if pull else None, services=spec.services)
