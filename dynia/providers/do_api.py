"""DigitalOcean's API v2 as dynia calls it itself (beside Pulumi's provider): the operator's token,
the API root, one GET with every failure typed, and the helpers the POSTs of the resize roll
share (dynia.providers.do_actions). The provider (digitalocean), its catalog check (do_catalog)
and its droplet actions (do_actions) all read through here."""
from __future__ import annotations

import os

from ..errors import DyniaError

TOKEN_ENV = "DIGITALOCEAN_TOKEN"
# The API's address: DIGITALOCEAN_API_URL overrides it, as it does for Pulumi's DigitalOcean
# provider (one endpoint for both; tests replay recorded answers through it).
API_URL_ENV = "DIGITALOCEAN_API_URL"


def _http_get(url: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """(status, body) of one GET; the only place this module touches the network (tests replace it)."""
    import urllib.error
    import urllib.request

    for attempt in (1, 2):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
                return resp.status, resp.read(1 << 20)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(1 << 16)
        except (ConnectionResetError, urllib.error.URLError) as exc:
            # A GET is safe to repeat: a connection reset (a load balancer dropping an idle
            # connection) is tried once more before it becomes the operator's `network` error.
            reset = isinstance(exc, ConnectionResetError) or isinstance(exc.reason, ConnectionResetError)
            if not reset or attempt == 2:
                raise
    raise AssertionError("unreachable")


def api_base() -> str:
    """DigitalOcean's API v2 root: DIGITALOCEAN_API_URL when set (tests: a replay of documented shapes)."""
    return (os.environ.get(API_URL_ENV) or "https://api.digitalocean.com").rstrip("/") + "/v2"


def api_token(asking: str, scope: str) -> str:
    """The operator's token, or a typed error saying what it was needed for and which scope."""
    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise DyniaError("provider", f"{TOKEN_ENV} is not set: cannot {asking}", f"export {TOKEN_ENV}=… ({scope})")
    return token


def unanswered(method: str, path: str, exc: Exception) -> DyniaError:
    """A request that got no HTTP answer: the network's error, never the token."""
    return DyniaError("network", f"DigitalOcean's API did not answer {method} {path}: {getattr(exc, 'reason', exc)}",
                      "check this machine's network and https://status.digitalocean.com")


def decoded(body: bytes) -> dict | list | None:
    """An answer's JSON ({} for an empty body), None when it is not JSON."""
    import json

    try:
        return json.loads(body.decode("utf-8")) if body else {}
    except (UnicodeDecodeError, ValueError):
        return None


def api_get(path: str, timeout: float = 10.0, asking: str = "ask DigitalOcean who holds the reserved IP") -> dict:
    """One read of DigitalOcean's API (token from DIGITALOCEAN_TOKEN), every failure typed; the
    token is sent in a header and never appears in an error."""
    token = api_token(asking, "a read-only token is enough")
    try:
        status, body = _http_get(api_base() + path, {"Authorization": f"Bearer {token}", "Accept": "application/json"},
                                 timeout)
    except (OSError, ValueError) as exc:  # URLError, timeouts and refused connections are OSErrors
        raise unanswered("GET", path, exc) from None
    data = decoded(body)
    if status == 200 and isinstance(data, dict):
        return data
    message = (data or {}).get("message") if isinstance(data, dict) else None
    detail = f"{status}" + (f" ({message})" if message else "")
    if status == 401:
        raise DyniaError("provider", f"DigitalOcean refused the token: GET {path} answered {detail}",
                         f"check {TOKEN_ENV}: it may be expired or revoked")
    if status == 404:
        raise DyniaError("provider", f"DigitalOcean does not know {path}: {detail}",
                         "the reserved IP may have been deleted; `dynia up --phase provision` recreates it")
    if status == 429:
        raise DyniaError("provider", f"DigitalOcean rate-limited GET {path}: {detail}", "wait a minute and retry")
    raise DyniaError("provider", f"DigitalOcean answered GET {path} with {detail}",
                     "retry; if it persists see https://status.digitalocean.com")
