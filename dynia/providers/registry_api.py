"""A container registry's HTTP API (the OCI distribution spec), asked one thing: which manifest
a tag names now — the digest every node of a release then runs.

`HEAD /v2/<repository>/manifests/<tag>` answers with Docker-Content-Digest. Authentication is
what the registry asks for in its 401: Basic (a registry with htpasswd, the lab's) with the
spec's login, or a Bearer token fetched from the realm it names (Docker Hub, ghcr.io: with the
login when there is one, anonymous otherwise). The token goes only into an Authorization header:
no message or hint built here contains it. The registry's certificate is verified against the
system's CAs (SSL_CERT_FILE names another bundle, as for every TLS client in Python).
"""
from __future__ import annotations

import base64
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable

from ..errors import DyniaError

TIMEOUT = 10.0
MAX_BYTES = 4 * 1024 * 1024
# Every manifest kind a tag may name: an index (multi-platform) is pinned as the index, so each
# node's engine still picks its own platform from it.
ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# Every registry's API asked at this URL instead (as DIGITALOCEAN_API_URL for DigitalOcean's):
# a registry double in tests, or a pull-through mirror that serves every repository by its path.
API_URL_ENV = "DYNIA_REGISTRY_API_URL"
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')

Opener = Callable[[urllib.request.Request, float], Any]


def _open(request: urllib.request.Request, timeout: float):
    return urllib.request.urlopen(request, timeout=timeout)


def manifest_digest(host: str, repository: str, reference: str, login: tuple[str, str] | None = None,
                    *, opener: Opener = _open, shown: str | None = None) -> str:
    """The digest (sha256:…) of the manifest `reference` (a tag) names in `repository` at `host`.
    shown: the image as the operator wrote it, for messages."""
    shown = shown or f"{host}/{repository}:{reference}"
    root = (os.environ.get(API_URL_ENV) or f"https://{host}").rstrip("/")
    url = f"{root}/v2/{repository}/manifests/{urllib.parse.quote(reference, safe='')}"
    status, headers = _head(url, {}, opener, shown, host)
    if status == 401:
        authorization = _authorization(headers.get("WWW-Authenticate") or "", login, repository, opener, shown, host)
        status, headers = _head(url, {"Authorization": authorization}, opener, shown, host)
    if status in (401, 403):
        raise DyniaError("config", f"image {shown}: registry {host} refused to name its digest (HTTP {status}: "
                         "credentials missing or wrong)",
                         f"name {host} under `registries:` in the spec with a token that may pull "
                         f"{repository}, and export its token_env")
    if status == 404:
        raise DyniaError("config", f"image {shown}: registry {host} has no {repository}:{reference}",
                         "push the image, or fix the reference in the compose file")
    if status != 200:
        raise DyniaError("network", f"image {shown}: registry {host} answered HTTP {status} when asked for its digest",
                         "retry; if it persists, check the registry's status")
    digest = (headers.get("Docker-Content-Digest") or "").strip()
    if not _DIGEST.fullmatch(digest):
        raise DyniaError("network", f"image {shown}: registry {host} named no sha256 digest for it",
                         "a registry implementing the OCI distribution API answers Docker-Content-Digest; "
                         "pin the image by digest in the compose file (image: name@sha256:…) instead")
    return digest


def _head(url: str, headers: dict, opener: Opener, shown: str, host: str):
    """(status, headers): the headers as http.client keeps them (names case-insensitive)."""
    request = urllib.request.Request(url, method="HEAD", headers={"Accept": ACCEPT, **headers})
    try:
        with opener(request, TIMEOUT) as resp:
            return resp.status, resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers or {}
    except (urllib.error.URLError, OSError) as exc:
        raise _unreachable(shown, host, exc) from None


def _unreachable(shown: str, host: str, exc: Exception) -> DyniaError:
    reason = getattr(exc, "reason", exc)
    return DyniaError("network", f"image {shown}: registry {host} could not be asked for its digest "
                      f"({reason.__class__.__name__}: {reason})".replace(": )", ")"),
                      "this machine resolves every tag before a roll: it must reach the registry over HTTPS "
                      "and trust its certificate (SSL_CERT_FILE names a CA bundle)")


def _authorization(challenge: str, login: tuple[str, str] | None, repository: str, opener: Opener,
                   shown: str, host: str) -> str:
    """The Authorization header the registry's 401 challenge asks for."""
    scheme = challenge.split(" ", 1)[0].lower()
    basic = "Basic " + base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode() if login else None
    if scheme == "basic":
        if basic is None:
            raise DyniaError("config", f"image {shown}: registry {host} asks for a login",
                             f"name {host} under `registries:` in the spec (user, token_env) and export the token")
        return basic
    if scheme != "bearer":
        raise DyniaError("config", f"image {shown}: registry {host} asks for an authentication dynia does not "
                         f"speak ({challenge.split(' ', 1)[0][:20]!r})",
                         "pin the image by digest in the compose file (image: name@sha256:…)")
    params = dict(_CHALLENGE.findall(challenge))
    realm = params.get("realm", "")
    if not realm.startswith("https://"):
        raise DyniaError("network", f"image {shown}: registry {host} names no HTTPS token service",
                         "pin the image by digest in the compose file (image: name@sha256:…)")
    query = urllib.parse.urlencode({k: v for k, v in (("service", params.get("service")),
                                                      ("scope", params.get("scope") or f"repository:{repository}:pull"))
                                    if v})
    request = urllib.request.Request(f"{realm}?{query}", headers={"Authorization": basic} if basic else {})
    try:
        with opener(request, TIMEOUT) as resp:
            body = json.loads(resp.read(MAX_BYTES).decode())
    except urllib.error.HTTPError as exc:
        raise DyniaError("config", f"image {shown}: the token service of registry {host} refused (HTTP {exc.code})",
                         f"check the login for {host} under `registries:` and its token") from None
    except (urllib.error.URLError, OSError) as exc:
        raise _unreachable(shown, host, exc) from None
    except ValueError:
        body = None
    token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise DyniaError("network", f"image {shown}: the token service of registry {host} gave no token",
                         "retry; if it persists, pin the image by digest in the compose file")
    return f"Bearer {token}"
