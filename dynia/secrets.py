"""Per-cluster generated secrets kept on the operator's machine (.dynia/secrets, 0600).

Only names and slots ever reach deploy-config/, plans or logs; the values are read at push
time. Provider tokens stay in the environment (DIGITALOCEAN_TOKEN, CLOUDFLARE_API_TOKEN).
"""
from __future__ import annotations

import json
import secrets as _random

from .store import Project, write_json

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


def load(project: Project, cluster: str) -> dict | None:
    try:
        return json.loads(project.secrets_path(cluster).read_text())
    except (FileNotFoundError, ValueError):
        return None


def values(project: Project, cluster: str) -> list[str]:
    """Every secret value known for the cluster: what output must never contain."""
    data = load(project, cluster) or {}
    return [v for v in data.values() if isinstance(v, str) and len(v) >= 8]
