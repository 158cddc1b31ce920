"""Cloudflare's API outside Pulumi, read-only: the zone and its DNS records (`dynia infra verify`).

Plain urllib against API v4 (two GETs and their pages): verify needs a zone id and a record
list, and the standard library answers that without a client package at CLI start. The token
comes from the environment (CLOUDFLARE_API_TOKEN, the variable `doctor` checks and Pulumi's
provider reads) and goes only into the Authorization header: no message, error or hint built
here ever contains it. Tests replay recorded responses through `opener` (no network).
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import DyniaError
from .digitalocean import CLOUDFLARE_TOKEN_ENV

API = "https://api.cloudflare.com/client/v4"
PER_PAGE = 100        # the API's largest page for dns_records
MAX_PAGES = 50        # 5,000 records: a zone past that is not one dynia manages
MAX_BYTES = 8 * 1024 * 1024
TIMEOUT = 10.0

Opener = Callable[[urllib.request.Request, float], Any]  # urlopen's shape: a response with .status, .read()


@dataclass(frozen=True)
class DnsRecord:
    name: str
    type: str
    content: str
    proxied: bool
    # Who made it (managed_comment(cluster) for dynia's own); not part of what a record *is* (equality).
    comment: str = field(default="", compare=False)


# The types that answer for a name's address: a second one of them beside dynia's A record
# and Cloudflare splits the traffic between them (it accepts a second A record silently).
ADDRESS_TYPES = ("A", "AAAA", "CNAME")


# The comment dynia put on every record before records named their cluster: the same for every
# cluster, so on its own it says "some dynia cluster", never which one.
LEGACY_MANAGED = "managed by dynia"


def managed_comment(cluster: str) -> str:
    """The comment on the records a cluster creates: whose they are, so cluster B never takes a
    record of cluster A (serving the same name) for its own."""
    return f"{LEGACY_MANAGED}: cluster {cluster}"


def owns(record: DnsRecord, cluster: str, reserved_ip: str | None = None) -> bool:
    """Whether `record` is this cluster's: its own comment; or the legacy comment on an A record
    pointing at this cluster's reserved IP (what this cluster created before records named their
    cluster — the next `up` rewrites the comment in place). A legacy record pointing elsewhere
    is another cluster's (or stale): never taken over."""
    comment = record.comment or ""
    if comment == managed_comment(cluster):
        return True
    return (comment == LEGACY_MANAGED and reserved_ip is not None and record.type.upper() == "A"
            and record.content == reserved_ip)


def conflicts(records: list[DnsRecord], name: str, cluster: str, reserved_ip: str | None = None) -> list[DnsRecord]:
    """The address records of `name` that are not this cluster's (owns)."""
    name = name.lower().rstrip(".")
    return [r for r in records if r.name.lower().rstrip(".") == name and r.type.upper() in ADDRESS_TYPES
            and not owns(r, cluster, reserved_ip)]


def conflict_error(name: str, found: list[DnsRecord]) -> DyniaError:
    shown = ", ".join(f"{r.type} → {r.content[:80]}" for r in found[:3]) + (" …" if len(found) > 3 else "")
    return DyniaError("dns", f"{name} already has a DNS record this cluster does not own ({shown}): a second "
                      "record would make Cloudflare split its traffic between them",
                      f"if another dynia cluster serves {name}, unbind it there first; otherwise delete that record "
                      f"in Cloudflare (DNS → Records → {name}) or bind the service to another name, then rerun; "
                      "dynia never overwrites a record this cluster did not create")


def _default_opener(request: urllib.request.Request, timeout: float):
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (https only, fixed host)


class CloudflareApi:
    def __init__(self, token: str, opener: Opener | None = None, base: str = API, timeout: float = TIMEOUT):
        self._token = token
        self._open = opener or _default_opener
        self.base = base
        self.timeout = timeout

    @classmethod
    def from_env(cls, opener: Opener | None = None) -> "CloudflareApi":
        token = os.environ.get(CLOUDFLARE_TOKEN_ENV)
        if not token:
            raise DyniaError("dns", f"{CLOUDFLARE_TOKEN_ENV} is not set",
                             f"export {CLOUDFLARE_TOKEN_ENV}=… (a token that can read the zone's DNS)")
        return cls(token, opener)

    # --- one GET ------------------------------------------------------------------------

    def _get(self, path: str, query: dict[str, str | int]) -> dict:
        url = f"{self.base}{path}?{urllib.parse.urlencode(query)}"
        request = urllib.request.Request(url, method="GET", headers={
            "Authorization": f"Bearer {self._token}", "Accept": "application/json"})
        shown = path.split("?")[0]
        try:
            response = self._open(request, self.timeout)
            try:
                body = response.read(MAX_BYTES + 1)
            finally:
                close = getattr(response, "close", None)
                if close:
                    close()
            status = getattr(response, "status", 200)
        except urllib.error.HTTPError as exc:  # 4xx/5xx: the body still says why
            body, status = exc.read(MAX_BYTES + 1) if exc.fp else b"", exc.code
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DyniaError("network", f"Cloudflare API unreachable ({reason.__class__.__name__}: {reason})",
                             "check this machine's connection to api.cloudflare.com and retry") from None
        if len(body) > MAX_BYTES:
            raise DyniaError("dns", f"Cloudflare answered more than {MAX_BYTES // 1024 // 1024} MiB for {shown}",
                             "retry; if it persists, report it with --debug")
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            data = None
        if not isinstance(data, dict):
            raise DyniaError("dns", f"Cloudflare answered {status} with no JSON for {shown}",
                             "retry; Cloudflare may be having an incident (cloudflarestatus.com)")
        if status >= 400 or data.get("success") is not True:
            errors = data.get("errors") if isinstance(data.get("errors"), list) else []
            text = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))
            hint = (f"{CLOUDFLARE_TOKEN_ENV} must be a valid token with Zone:Read and DNS:Read on the zone"
                    if status in (400, 401, 403) else "retry; Cloudflare may be having an incident")
            raise DyniaError("dns", f"Cloudflare refused {shown} ({status}{': ' + text if text else ''})", hint)
        return data

    # --- what verify asks -------------------------------------------------------------------

    def zone_id(self, zone: str) -> str:
        data = self._get("/zones", {"name": zone})
        zones = [z for z in data.get("result") or [] if isinstance(z, dict) and z.get("name") == zone]
        if not zones or not isinstance(zones[0].get("id"), str):
            raise DyniaError("dns", f"Cloudflare has no zone {zone} this token can see",
                             f"add {zone} to the Cloudflare account, or give {CLOUDFLARE_TOKEN_ENV} access to it")
        return zones[0]["id"]

    def dns_records(self, zone_id: str) -> list[DnsRecord]:
        """Every record of the zone, page after page (verify filters locally: one list, not one
        request per domain)."""
        if not zone_id.isalnum():  # it goes into the URL path
            raise DyniaError("dns", f"Cloudflare returned an unusable zone id {zone_id[:40]!r}",
                             "retry; if it persists, report it with --debug")
        records: list[DnsRecord] = []
        for page in range(1, MAX_PAGES + 1):
            data = self._get(f"/zones/{zone_id}/dns_records", {"per_page": PER_PAGE, "page": page})
            for r in data.get("result") or []:
                if isinstance(r, dict) and all(isinstance(r.get(k), str) for k in ("name", "type", "content")):
                    records.append(DnsRecord(r["name"], r["type"], r["content"], r.get("proxied") is True,
                                             r["comment"] if isinstance(r.get("comment"), str) else ""))
            info = data.get("result_info") if isinstance(data.get("result_info"), dict) else {}
            total = info.get("total_pages")
            if not isinstance(total, int) or page >= total:
                break
        return records

    def records_for(self, zone: str) -> list[DnsRecord]:
        return self.dns_records(self.zone_id(zone))
