"""Cloudflare's API outside Pulumi: the zone and its DNS records (`dynia infra verify`), and
the short-lived `_acme-challenge` TXT records of a DNS-01 validation (dynia.acme.dns01) — the
one thing dynia writes here outside Pulumi, because it lives for seconds, not in the state.

Plain urllib against API v4: verify needs a zone id and a record list, DNS-01 a create and a
delete, and the standard library answers that without a client package at CLI start. The token
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

CLOUDFLARE_TOKEN_ENV = "CLOUDFLARE_API_TOKEN"

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
                             f"export {CLOUDFLARE_TOKEN_ENV}=… (a token with Zone:Read and DNS:Edit on the zone: "
                             "`dynia up` makes its records)")
        return cls(token, opener)

    # --- one request ----------------------------------------------------------------------

    def _get(self, path: str, query: dict[str, str | int], need: str | None = None) -> dict:
        return self._call("GET", path, query, need=need)

    def _call(self, method: str, path: str, query: dict[str, str | int] | None = None,
              body: dict | None = None, need: str | None = None) -> dict:
        url = f"{self.base}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        payload = None
        if body is not None:
            payload, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        request = urllib.request.Request(url, data=payload, method=method, headers=headers)
        shown = f"{method} {path}" if method != "GET" else path
        try:
            response = self._open(request, self.timeout)
            try:
                answer = response.read(MAX_BYTES + 1)
            finally:
                close = getattr(response, "close", None)
                if close:
                    close()
            status = getattr(response, "status", 200)
        except urllib.error.HTTPError as exc:  # 4xx/5xx: the body still says why
            answer, status = exc.read(MAX_BYTES + 1) if exc.fp else b"", exc.code
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DyniaError("network", f"Cloudflare API unreachable ({reason.__class__.__name__}: {reason})",
                             "check this machine's connection to api.cloudflare.com and retry") from None
        if len(answer) > MAX_BYTES:
            raise DyniaError("dns", f"Cloudflare answered more than {MAX_BYTES // 1024 // 1024} MiB for {shown}",
                             "retry; if it persists, report it with --debug")
        try:
            data = json.loads(answer.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            data = None
        if not isinstance(data, dict):
            raise DyniaError("dns", f"Cloudflare answered {status} with no JSON for {shown}",
                             "retry; Cloudflare may be having an incident (cloudflarestatus.com)")
        if status >= 400 or data.get("success") is not True:
            errors = found if isinstance(found := data.get("errors"), list) else []
            text = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))
            need = need or ("Zone:Read and DNS:Read" if method == "GET" else "Zone:Read and DNS:Edit")
            if method == "POST" and status == 400:   # a record the new one conflicts with
                hint = ("a record at that name conflicts with it (a CNAME, or an identical TXT left by an earlier "
                        "order): delete it in Cloudflare (DNS → Records) and retry")
            elif status in (400, 401, 403):
                hint = f"{CLOUDFLARE_TOKEN_ENV} must be a valid token with {need} on the zone"
            else:
                hint = "retry; Cloudflare may be having an incident"
            raise DyniaError("dns", f"Cloudflare refused {shown} ({status}{': ' + text if text else ''})", hint)
        return data

    # --- what verify asks -------------------------------------------------------------------

    def zone_id(self, zone: str) -> str:
        return self.zone(zone)["id"]

    def zone(self, zone: str) -> dict:
        """The zone's object: its `id`, and `name_servers` (the authoritative servers DNS-01
        waits on)."""
        data = self._get("/zones", {"name": zone})
        zones = [z for z in data.get("result") or [] if isinstance(z, dict) and z.get("name") == zone]
        if not zones or not isinstance(zones[0].get("id"), str):
            raise DyniaError("dns", f"Cloudflare has no zone {zone} this token can see",
                             f"add {zone} to the Cloudflare account, or give {CLOUDFLARE_TOKEN_ENV} access to it")
        return zones[0]

    # --- DNS-01 (dynia.acme.dns01) ---------------------------------------------------------------

    def create_txt(self, zone_id: str, name: str, content: str, comment: str, ttl: int = 60) -> str:
        """A TXT record; its id (what delete_record takes). The content is quoted, as RFC 1035's
        presentation format (and Cloudflare's API, which warns about an unquoted one) has it."""
        _check_id(zone_id)
        data = self._call("POST", f"/zones/{zone_id}/dns_records", body={
            "type": "TXT", "name": name, "content": f'"{content}"', "ttl": ttl, "comment": comment})
        record = found if isinstance(found := data.get("result"), dict) else {}
        if not isinstance(record.get("id"), str) or not record["id"].isalnum():
            raise DyniaError("dns", f"Cloudflare created the TXT record {name} but returned no usable id",
                             f"delete {name} in Cloudflare (DNS → Records) once the order is done")
        return record["id"]

    def txt_record_ids(self, zone_id: str, name: str, content: str) -> list[str]:
        """Ids of the TXT records name → content (quoted or not, as the API may return either)."""
        _check_id(zone_id)
        data = self._get(f"/zones/{zone_id}/dns_records", {"type": "TXT", "name": name, "per_page": PER_PAGE})
        return [r["id"] for r in data.get("result") or [] if isinstance(r, dict) and isinstance(r.get("id"), str)
                and r["id"].isalnum() and r.get("content") in (content, f'"{content}"')]

    def delete_record(self, zone_id: str, record_id: str) -> None:
        _check_id(zone_id)
        _check_id(record_id)
        self._call("DELETE", f"/zones/{zone_id}/dns_records/{record_id}")

    def dns_records(self, zone_id: str) -> list[DnsRecord]:
        """Every record of the zone, page after page (verify filters locally: one list, not one
        request per domain)."""
        _check_id(zone_id)
        records: list[DnsRecord] = []
        for page in range(1, MAX_PAGES + 1):
            data = self._get(f"/zones/{zone_id}/dns_records", {"per_page": PER_PAGE, "page": page})
            for r in data.get("result") or []:
                if isinstance(r, dict) and all(isinstance(r.get(k), str) for k in ("name", "type", "content")):
                    records.append(DnsRecord(r["name"], r["type"], r["content"], r.get("proxied") is True,
                                             r["comment"] if isinstance(r.get("comment"), str) else ""))
            info = found if isinstance(found := data.get("result_info"), dict) else {}
            total = info.get("total_pages")
            if not isinstance(total, int) or page >= total:
                break
        return records

    def records_for(self, zone: str) -> list[DnsRecord]:
        return self.dns_records(self.zone_id(zone))

    # --- zone-level Authenticated Origin Pulls (infra verify) ------------------------------------

    def origin_pull(self, zone_id: str) -> OriginPull:
        """The zone-level AOP setting (GET …/origin_tls_client_auth/settings) and the certificates
        uploaded for it (GET …/origin_tls_client_auth), each with its status and the sha256 of its
        DER form (None when the API's PEM does not parse)."""
        _check_id(zone_id)
        need = "Zone:Read and SSL and Certificates:Read"
        settings = self._get(f"/zones/{zone_id}/origin_tls_client_auth/settings", {}, need=need)
        result = settings.get("result")
        enabled = isinstance(result, dict) and result.get("enabled") is True
        listed = self._get(f"/zones/{zone_id}/origin_tls_client_auth", {}, need=need)
        certificates = []
        for c in listed.get("result") or []:
            if isinstance(c, dict):
                certificates.append(UploadedCertificate(
                    str(c.get("id") or "?")[:40], str(c.get("status") or "unknown")[:40],
                    _pem_sha256(c.get("certificate"))))
        return OriginPull(enabled, certificates)


@dataclass(frozen=True)
class UploadedCertificate:
    id: str
    status: str            # initializing, pending_deployment, active, pending_deletion, …
    sha256: str | None     # of the DER certificate


@dataclass(frozen=True)
class OriginPull:
    enabled: bool
    certificates: list[UploadedCertificate]


def _pem_sha256(pem) -> str | None:
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        return hashlib.sha256(x509.load_pem_x509_certificate(str(pem).encode()).public_bytes(Encoding.DER)).hexdigest()
    except ValueError:
        return None


def _check_id(value: str) -> None:
    if not (isinstance(value, str) and value.isalnum()):  # it goes into the URL path
        raise DyniaError("dns", f"Cloudflare returned an unusable id {str(value)[:40]!r}",
                         "retry; if it persists, report it with --debug")
