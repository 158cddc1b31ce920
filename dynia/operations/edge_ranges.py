"""Cloudflare's edge ranges (dynia/data/cloudflare-ips.json): how old dynia's dated copy is, and
refreshing it from Cloudflare's API.

In origin mode a node's firewall opens 80/443 to these ranges only, so a range Cloudflare adds
and dynia lacks is a share of visitors that cannot reach the cluster. Cloudflare announces
changes ahead of time, but nobody reads that for a file in a package: `plan` and `context
doctor` warn once the copy is older than MAX_AGE_DAYS, and `dynia edge refresh-ranges` fetches
the current lists (GET /ips: public, no token), writes the file atomically and says what
changed. `dynia plan` then shows the firewall file change on every node, and `dynia up`
rolls it like any other file. Rendering itself stays pure: it reads the file, never the API.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import DyniaError
from ..render.firewall import CLOUDFLARE_IPS, _networks, cloudflare_ranges
from ..state.store import write_json

MAX_AGE_DAYS = 90
API = "https://api.cloudflare.com/client/v4"
# Where the API is (tests point it at a local double serving the documented answer).
API_URL_ENV = "CLOUDFLARE_API_URL"
TIMEOUT = 15.0


def data_path() -> Path:
    """The dated copy itself (package data; in a checkout, the repository's file)."""
    return Path(str(resources.files("dynia").joinpath(CLOUDFLARE_IPS)))


def age_warning(today: dt.date, spec=None) -> str | None:
    """The warning when dynia's copy is older than MAX_AGE_DAYS, else None; None too for a
    cluster that does not use it (letsencrypt: 80/443 are open to everyone)."""
    from ..tls import uses_acme

    if spec is not None and uses_acme(spec.tls.mode):
        return None
    taken = cloudflare_ranges().taken
    age = (today - taken).days
    if age <= MAX_AGE_DAYS:
        return None
    return (f"Cloudflare's edge ranges in this dynia were taken {taken:%Y-%m-%d} ({age} days ago, over "
            f"{MAX_AGE_DAYS}): a range Cloudflare added since cannot reach 80/443 — run `dynia edge refresh-ranges`")


def fetch(base: str | None = None, timeout: float = TIMEOUT) -> tuple[list[str], list[str]]:
    """Cloudflare's current IPv4 and IPv6 ranges from GET {base}/ips (API v4's envelope:
    success, errors, result.ipv4_cidrs / ipv6_cidrs), each checked as a network of its family."""
    base = (base or os.environ.get(API_URL_ENV) or API).rstrip("/")
    url = f"{base}/ips"
    fix = f"check this machine's access to {base}, then run it again; nothing was written"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/json"}),  # noqa: S310
                                    timeout=timeout) as response:
            data = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise DyniaError("provider", f"Cloudflare's API answered {url} with HTTP {exc.code}", fix) from None
    except (urllib.error.URLError, OSError) as exc:
        raise DyniaError("network", f"cannot reach {url}: {getattr(exc, 'reason', exc)}", fix) from None
    except ValueError:
        raise DyniaError("provider", f"Cloudflare's API answered {url} with something that is not JSON", fix) from None
    try:
        if data.get("success") is not True:
            errors = "; ".join(str(e.get("message")) for e in data.get("errors") or [] if isinstance(e, dict))
            raise DyniaError("provider", f"Cloudflare's API refused {url}: {errors or 'success is not true'}", fix)
        result = data["result"]
        v4, v6 = _networks(result["ipv4_cidrs"], 4), _networks(result["ipv6_cidrs"], 6)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise DyniaError("provider", f"Cloudflare's answer from {url} is not the documented shape ({exc})", fix) \
            from None
    if not v4 or not v6:
        raise DyniaError("provider", f"Cloudflare's answer from {url} has an empty range list", fix)
    return v4, v6


@dataclass(frozen=True)
class Refresh:
    taken_before: str
    taken: str
    added: list[str]
    removed: list[str]
    path: str

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)

    def as_dict(self) -> dict:
        return {"takenBefore": self.taken_before, "taken": self.taken, "added": self.added,
                "removed": self.removed, "changed": self.changed, "path": self.path}


def refresh(today: dt.date, path: Path | None = None, base: str | None = None, write: bool = True) -> Refresh:
    """Fetch the ranges and (unless `write` is False) write them, dated `today`, atomically:
    the file is the old one or the new one, never a mix. A failed fetch writes nothing."""
    path = path or data_path()
    v4, v6 = fetch(base)
    try:
        old = json.loads(path.read_text())
        before = set(old["ipv4"]) | set(old["ipv6"])
    except (OSError, ValueError, KeyError, TypeError):
        raise DyniaError("state", f"{path} is unreadable", "reinstall dynia, then run it again") from None
    now = set(v4) | set(v6)
    source = [f"{(base or os.environ.get(API_URL_ENV) or API).rstrip('/')}/ips"] \
        + [s for s in old.get("source", []) if not str(s).endswith("/ips")]
    out = Refresh(old.get("taken", "?"), today.isoformat(), sorted(now - before, key=_order),
                  sorted(before - now, key=_order), str(path))
    if write:
        write_json(path, {"taken": today.isoformat(), "source": source, "ipv4": v4, "ipv6": v6})
        cloudflare_ranges.cache_clear()
    return out


def _order(cidr: str):
    import ipaddress

    net = ipaddress.ip_network(cidr)
    return (net.version, net)
