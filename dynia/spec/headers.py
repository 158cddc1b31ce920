"""The response headers every node's HAProxy sets (`http-after-response`): dynia's security
headers, a service's overrides over them, and what an override may not do. Data and pure
rules only: dynia.spec.model refuses what breaks them, dynia.render.edge renders the merged set.
"""
from __future__ import annotations

# dynia's defaults, on every response of every service (and of the fallback backend).
# - HSTS for two years with includeSubDomains: browsers never try plain HTTP again for the
#   service's name and the names below it. No `preload`: submitting a domain to the browsers'
#   preload list is a separate, slow-to-undo commitment for the *whole* registrable domain (every
#   host of the zone, also those dynia does not serve, must then be HTTPS-only); an operator who
#   wants it says so with a per-service override.
# - X-Frame-Options SAMEORIGIN rather than DENY: it stops other sites framing the app
#   (clickjacking) and still lets an app frame its own pages (admin UIs, previews), which DENY breaks.
# - nosniff: browsers honour the declared Content-Type (no script from a text/plain upload).
# - strict-origin-when-cross-origin: other sites see only the origin, never paths or queries.
SECURITY_HEADERS: dict[str, str] = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}

# Headers that frame the message or describe one hop (RFC 9110 §7.6.1, §6.4, §8.6; RFC 9113
# §8.2.2): set on a response, they would contradict the body HAProxy actually sends, keep or
# drop a connection behind HAProxy's back, or (Upgrade) ask the client to switch protocol. Host
# is a request header; on a response it only confuses. Lower-case: names are case-insensitive.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive",
                             "proxy-connection", "upgrade", "te", "trailer", "host", "http2-settings"})

# HAProxy adds the headers after the response is in its buffer, from the space it keeps free for
# rewrites (tune.maxrewrite, 1,024 bytes unless set; dynia leaves it). Each header costs its
# name, its value and 8 bytes of HAProxy's own (an HTX block). Measured with HAProxy 2.6.12 on
# 100 kB answers, 40 requests each: 8 headers of 1,024 bytes in all → every answer 200; of 1,032
# → 26 of 40 answered 500 (the rewrite failed). dynia's defaults take 192 of these bytes.
REWRITE_BUDGET = 1024
HTX_BLOCK = 8


def merged(overrides: dict[str, str | None] | None = None) -> dict[str, tuple[str, str | None]]:
    """lower-case name → (name as spelled, value or None for a removal): the defaults first in
    their order, then added headers in the spec's order. An override of `x-frame-options`
    replaces X-Frame-Options (spelled as the override spells it)."""
    out: dict[str, tuple[str, str | None]] = {n.lower(): (n, v) for n, v in SECURITY_HEADERS.items()}
    for name, value in (overrides or {}).items():
        out[name.lower()] = (name, value)
    return out


def rewrite_cost(overrides: dict[str, str | None] | None = None) -> int:
    """The bytes of HAProxy's rewrite space a response of this service takes (removals are free)."""
    return sum(len(name) + len(value) + HTX_BLOCK for name, value in merged(overrides).values() if value is not None)
