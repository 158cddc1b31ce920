"""Private registries: the login every node's container engine reads when it pulls an image.

One file per node, a secret slot (PATHS.registry_auth, 0600, filled at push, compared by hash in
drift-check): the `auths` map that Docker's config.json and podman's auth.json (containers-auth.json
(5)) share, `{server: {"auth": base64(user:token)}}`. The node's compose and pull commands point
their engine at it (DOCKER_CONFIG, REGISTRY_AUTH_FILE: dynia.nodes.commands), so it never touches
root's own ~/.docker/config.json.

The tokens come from the operator's machine at push time: the environment variable the spec
names, else .dynia/secrets/<cluster>.registries.json ({server: token}, 0600). Never from the
spec, never rendered, never printed.
"""
from __future__ import annotations

import base64
import json
import os

from ..errors import DyniaError
from .store import Project

# Docker Hub: docker reads its credentials under this key only; podman maps it to docker.io.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB = {"docker.io", "index.docker.io", "registry-1.docker.io"}
SECRETS_KIND = "registries.json"


def auth_key(server: str) -> str:
    return DOCKER_HUB_KEY if server in DOCKER_HUB else server


def _stored_tokens(project: Project, cluster: str) -> tuple[dict, str]:
    from .cache import read_json

    path = project.secrets_path(cluster, SECRETS_KIND)
    shown = os.path.relpath(path, project.root)
    data = read_json(path, shown, f"write {shown} as {{\"<server>\": \"<token>\"}} (0600), or delete it",
                     limit=64 * 1024)
    if data is not None and (not isinstance(data, dict)
                             or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items())):
        raise DyniaError("state", f"{shown} is corrupt (expected {{\"<server>\": \"<token>\"}})",
                         f"write {shown} as {{\"<server>\": \"<token>\"}} (0600), or delete it")
    return data or {}, shown


def token(project: Project, cluster: str, registry) -> str:
    """The registry's token: its environment variable, else the cluster's registries secrets file."""
    value = os.environ.get(registry.token_env)
    shown = os.path.relpath(project.secrets_path(cluster, SECRETS_KIND), project.root)
    if not value:
        stored, shown = _stored_tokens(project, cluster)
        value = stored.get(registry.server)
    if not value:
        raise DyniaError("config", f"registry {registry.server}: no token (neither ${registry.token_env} "
                                   f"nor {shown} holds one)",
                         f"export {registry.token_env}=<a read-only token for {registry.server}>, or put "
                         f'{{"{registry.server}": "<token>"}} in {shown} (0600)')
    if not value.isprintable() or any(c.isspace() for c in value):
        raise DyniaError("config", f"registry {registry.server}: the token holds spaces or control characters",
                         f"set ${registry.token_env} (or {shown}) to the token alone, without a newline")
    return value


def auth_file(project: Project, cluster: str, registries) -> bytes | None:
    """The auth file every node receives, or None when the spec names no registry."""
    if not registries:
        return None
    auths = {}
    for r in registries:
        pair = f"{r.user}:{token(project, cluster, r)}".encode()
        auths[auth_key(r.server)] = {"auth": base64.b64encode(pair).decode()}
    return (json.dumps({"auths": auths}, indent=2, sort_keys=True) + "\n").encode()
