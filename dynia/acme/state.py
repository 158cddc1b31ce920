"""tls.mode letsencrypt's state: the cluster's ACME account and certificate (AcmeState), kept as
the provision stack's secret `acme` output and read back by the engine on every run
(dynia.engine.automation.Engine.acme_state); the self-signed placeholder HAProxy binds 443 with before the
first order; which of two states is newer. What is ordered when lives in dynia.operations.certs.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ..errors import DyniaError


@dataclass(frozen=True)
class AcmeState:
    """The cluster's ACME account and certificate. `pem` is what HAProxy reads (full chain +
    key); `placeholder`: a self-signed stand-in until the first order succeeds."""
    account_key: str | None
    pem: str
    not_after: dt.datetime
    domains: tuple[str, ...] = ()
    directory: str | None = None
    placeholder: bool = False
    issued_at: dt.datetime | None = field(default=None)

    def __repr__(self) -> str:  # keys never reach a log through a repr
        return (f"AcmeState(domains={self.domains!r}, not_after={self.not_after.isoformat()}, "
                f"placeholder={self.placeholder}, account={'yes' if self.account_key else 'no'})")

    @property
    def shown_directory(self) -> str | None:
        """The directory as it may be printed: a state stored before dynia refused credentials in
        tls.acme_directory may hold one (user:password, a query); only scheme, host and path show."""
        if self.directory is None:
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(self.directory)
        host = parts.netloc.rpartition("@")[2]
        return f"{parts.scheme}://{host}{parts.path}"

    def to_dict(self) -> dict:
        return {"version": 1, "account_key": self.account_key, "pem": self.pem,
                "not_after": iso(self.not_after), "domains": list(self.domains), "directory": self.directory,
                "placeholder": self.placeholder, "issued_at": iso(self.issued_at) if self.issued_at else None}

    @classmethod
    def from_dict(cls, data, shown: str = "the provision stack's acme output") -> "AcmeState":
        """Checked like every stored secret: a damaged value is a typed error naming where it
        came from — never a message quoting it."""
        fix = ("run `dynia cert provision`: it orders a new certificate (and keeps the account key when it "
               "is readable)")
        try:
            if not isinstance(data, dict) or data.get("version") != 1:
                raise ValueError
            pem, key = data["pem"], data.get("account_key")
            if not (isinstance(pem, str) and "BEGIN CERTIFICATE" in pem and "PRIVATE KEY" in pem):
                raise ValueError
            if key is not None and not (isinstance(key, str) and "PRIVATE KEY" in key):
                raise ValueError
            domains = data.get("domains") or []
            if not (isinstance(domains, list) and all(isinstance(d, str) for d in domains)):
                raise ValueError
            directory = data.get("directory")
            if directory is not None and not isinstance(directory, str):
                raise ValueError
            issued = data.get("issued_at")
            return cls(key, pem, parse_iso(data["not_after"]), tuple(domains), directory,
                       data.get("placeholder") is True, parse_iso(issued) if issued else None)
        except (KeyError, TypeError, ValueError):
            raise DyniaError("state", f"{shown} is corrupt (expected dynia's ACME state, version 1)", fix) from None


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text) -> dt.datetime:
    if not isinstance(text, str):
        raise ValueError
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def placeholder_state(spec, account_key: str | None = None) -> AcmeState:
    """A self-signed certificate for *.domain and the apex: what HAProxy binds 443 with before
    the first order (made once, then kept in the state until an order replaces it)."""
    from ..tls import self_signed_pem
    from .client import certificate_facts

    pem = self_signed_pem(spec.domain).decode()
    not_after, _ = certificate_facts(pem)
    return AcmeState(account_key, pem, not_after, (), None, placeholder=True)


def public_facts(state: AcmeState) -> dict:
    """What may be printed or cached: names, expiry, placeholder or not — never a PEM."""
    return {"domains": list(state.domains), "not_after": iso(state.not_after), "placeholder": state.placeholder,
            "directory": state.shown_directory, "account": bool(state.account_key)}


def newer(candidate: AcmeState, than: AcmeState | None) -> bool:
    """Whether `candidate` was issued after `than` (no issued_at — the placeholder, a state from
    before it was recorded — is older than any order; a tie is not newer)."""
    if than is None:
        return True
    if candidate.issued_at is None:
        return False
    return than.issued_at is None or candidate.issued_at > than.issued_at
