"""The edge policy on real lab nodes, through the VIP (issue 11): security headers on every answer
with a per-service override; a rate limit per visitor that answers 429 over it and leaves other
visitors alone, and that neither a CF-Connecting-IP from outside the edge nor a new address inside
one IPv6 /64 can dodge; Authenticated
Origin Pulls that let a client certificate of the configured CA in and refuse everyone else.

The lab machine is the lab's stand-in for Cloudflare's edge (dynia.providers.local.lab_edge):
its requests name their visitor in CF-Connecting-IP and present the lab CA's client certificate.
A node's own loopback is outside the edge (and the only place exempt from the certificate)."""
from __future__ import annotations

import http.client
import shlex
import ssl
import time

import pytest

from dynia.paths import ACME_PREFIX, PATHS
from dynia.tls import origin_pull_pair

from .conftest import _client_context, _NO_CLIENT_CERT_TLS, eventually, record


# The echo service's limit: requests per visitor, and a window (seconds) that no test's burst
# outlasts on a loaded machine, so the counts below hold whatever the machine's speed (a window
# that ran out mid-burst would hand a visitor a fresh bucket). Each test asks as visitors of its
# own: they share one lab (their buckets outlive each test).
LIMIT, WINDOW = 10, 600
ECHO = f"""  echo:
    compose: services/lab-echo.yml
    domain: echo.lab.example
    port: 9004
    health_path: /healthz
    headers:
      X-Frame-Options: DENY
      Referrer-Policy: null
      X-Lab-Note: "costs $5 #1 ${{DYNIA_STATS_PASSWORD}}"
    rate_limit: {{requests: {LIMIT}, window: {WINDOW}s}}
"""
DEFAULTS = {"Strict-Transport-Security": "max-age=63072000; includeSubDomains", "X-Frame-Options": "SAMEORIGIN",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "strict-origin-when-cross-origin"}


def _with_echo(lc):
    path = lc.project.spec_path("lab")
    text = path.read_text()
    assert text.endswith("placement: active-only\n")  # services: is the last key of lab.yaml
    path.write_text(text + ECHO)
    result = lc.roll()
    assert result.ok, [(r.node, r.layer, r.reason) for r in result.results if not r.ok]
    assert eventually(lambda: lc.vip_holder() == ["misty-owl"])


@pytest.fixture
def edge_lab(shared_labs):
    """The lab rolled out with the echo service, shared by the module's tests (they only ask)."""
    return shared_labs.take(_with_echo)


def _curl(host: str, path: str, spoofed: str, body: bool) -> str:
    out = "" if body else "-o /dev/null "
    return (f"curl -sk --max-time 5 {out}-w '%{{http_code}}\\n' -H {shlex.quote('Host: ' + host)} "
            f"-H {shlex.quote('CF-Connecting-IP: ' + spoofed)} https://127.0.0.1{path} || echo curl-failed")


def _codes_from_loopback(lc, node: str, host: str, path: str, spoofed: list[str]) -> list[str]:
    """One request per spoofed CF-Connecting-IP from the node's own loopback (outside the edge),
    in order: each answer's status. Bounded: one try each, 5 s per request."""
    script = "; ".join(_curl(host, path, ip, body=False) for ip in spoofed)
    return lc.sh(node, script, check=False).stdout.decode().split()


def _body_from_loopback(lc, node: str, host: str, path: str, spoofed: str) -> str:
    """The body of one such request, its status on the last line."""
    return lc.sh(node, _curl(host, path, spoofed, body=True), check=False).stdout.decode()


def test_security_headers_on_every_answer_with_a_per_service_override(edge_lab):
    lc = edge_lab
    for host in ("lab.example", "api.lab.example", "nothing-routed.lab.example"):
        status, headers, _ = lc.fetch(host)
        assert status == (404 if host.startswith("nothing") else 200), host
        assert {name: headers.get(name) for name in DEFAULTS} == DEFAULTS, host
    status, headers, body = lc.fetch("echo.lab.example", "/cgi-bin/headers")
    assert status == 200, body
    assert headers.get("X-Frame-Options") == "DENY"
    assert headers.get("Referrer-Policy") is None                    # null: removed
    assert headers.get("X-Content-Type-Options") == "nosniff"        # the other defaults stay
    assert headers.get("Strict-Transport-Security") == DEFAULTS["Strict-Transport-Security"]
    # Verbatim: HAProxy expanded no `${...}` from its environment (which holds the stats password).
    assert headers.get("X-Lab-Note") == "costs $5 #1 ${DYNIA_STATS_PASSWORD}"


def test_origin_pulls_let_the_clusters_own_client_certificate_in_and_refuse_everyone_else(edge_lab):
    lc = edge_lab
    assert lc.fetch("api.lab.example")[::2] == (200, b"api\n")
    # No client certificate: the handshake completes (the served certificate stays readable) and
    # the request is refused.
    status, _, _ = lc.fetch("api.lab.example", context=_NO_CLIENT_CERT_TLS)
    assert status == 403
    # A certificate of another CA (another cluster's, or Cloudflare's shared one: any CA but the
    # cluster's own), even under the same name: the handshake itself fails.
    pair = origin_pull_pair("lab")
    other = _client_context((pair["certificate"] + pair["private_key"]).encode())
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        lc.fetch("api.lab.example", context=other)
    # The node's own loopback (where the apply script's health gate asks) needs none.
    assert _codes_from_loopback(lc, "misty-owl", "api.lab.example", "/", ["203.0.113.99"]) == ["200"]


def test_a_burst_over_the_limit_gets_429s_while_a_visitor_under_it_and_other_visitors_get_none(edge_lab):
    lc = edge_lab
    started = time.monotonic()
    burst = [lc.fetch("echo.lab.example", "/healthz", visitor="203.0.113.10") for _ in range(LIMIT + 8)]
    statuses = [s for s, _, _ in burst]
    assert statuses == [200] * LIMIT + [429] * 8, statuses
    refused = burst[-1][1]
    assert refused.get("Retry-After") == str(WINDOW)
    assert refused.get("Strict-Transport-Security") == DEFAULTS["Strict-Transport-Security"]
    # Another visitor under the limit, and one arriving right after the burst: not one 429.
    assert [lc.fetch("echo.lab.example", "/healthz", visitor="203.0.113.20")[0]
            for _ in range(LIMIT - 2)] == [200] * (LIMIT - 2)
    assert lc.fetch("echo.lab.example", "/healthz", visitor="203.0.113.30")[0] == 200
    # The limited visitor's other services are not limited by this one (one table per service).
    assert lc.fetch("api.lab.example", visitor="203.0.113.10")[0] == 200
    # The app sees the visitor as X-Forwarded-For (HAProxy's, not appended to a client's).
    status, _, body = lc.fetch("echo.lab.example", "/cgi-bin/headers", visitor="203.0.113.40",
                               headers={"X-Forwarded-For": "192.0.2.66"})
    assert status == 200 and "for=203.0.113.40," in body.decode() and "192.0.2.66" not in body.decode(), body
    # Everything above happened inside one window, or the counts would prove nothing.
    assert time.monotonic() - started < WINDOW
    record("rate_limit_burst_test_seconds", round(time.monotonic() - started, 2))


def test_neither_a_spoofed_cf_connecting_ip_nor_a_new_address_in_the_same_ipv6_64_gets_a_fresh_bucket(edge_lab):
    lc = edge_lab
    started = time.monotonic()
    # Through the edge, an IPv6 visitor is its whole /64 (any address inside is its own to use):
    # a new address for every request is still one bucket; the next /64 is another visitor.
    rotating = [lc.fetch("echo.lab.example", "/healthz", visitor=f"2001:db8:5:6::{i:x}")[0]
                for i in range(1, LIMIT + 4)]
    assert rotating == [200] * LIMIT + [429] * 3, rotating
    assert lc.fetch("echo.lab.example", "/healthz", visitor="2001:db8:5:7::1")[0] == 200
    # Every request names another "visitor"; from outside the edge the header is dropped, so all
    # of them are the node's loopback, one bucket.
    spoofed = [f"198.51.100.{i}" for i in range(1, LIMIT + 6)]
    codes = _codes_from_loopback(lc, "misty-owl", "echo.lab.example", "/healthz", spoofed)
    assert codes == ["200"] * LIMIT + ["429"] * 5, codes
    # And the app sees the real source, not the spoofed header.
    seen = _body_from_loopback(lc, "brave-panda", "echo.lab.example", "/cgi-bin/headers", "198.51.100.200")
    assert "for=127.0.0.1," in seen and "198.51.100.200" not in seen, seen
    assert time.monotonic() - started < WINDOW


def test_letsencrypt_mode_answers_acme_challenges_on_80_from_any_node_and_believes_no_edge(lab_cluster):
    lc = lab_cluster
    lc.edit_spec("\ndomain: lab.example\n", "\ndomain: lab.example\ntls: {mode: letsencrypt}\n")
    path = lc.project.spec_path("lab")
    path.write_text(path.read_text() + ECHO)
    result = lc.roll()
    assert result.ok, [(r.node, r.layer, r.reason) for r in result.results if not r.ok]
    assert eventually(lambda: lc.vip_holder() == ["misty-owl"])
    # What dynia.nodes.challenge publishes: one file per token, the same on every node.
    token, answer = "tok-Edge_1", "tok-Edge_1.thumbprint-of-the-account-key"
    for node in ("misty-owl", "brave-panda", "calm-otter"):
        lc.sh(node, f"mkdir -p {PATHS.acme_challenge_dir} && printf %s {answer} > {PATHS.acme_challenge_dir}/{token}")

    def plain(path: str) -> tuple[int, str | None, str | None, bytes]:
        conn = http.client.HTTPConnection(lc.lab.vip, 80, timeout=5)
        try:
            conn.request("GET", path, headers={"Host": "api.lab.example"})
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type"), resp.getheader("Location"), resp.read()
        finally:
            conn.close()

    status, ctype, _, body = plain(f"{ACME_PREFIX}{token}")
    assert (status, body) == (200, answer.encode()) and ctype.startswith("text/plain"), (status, ctype, body)
    assert plain(f"{ACME_PREFIX}no-such-token")[0] == 404
    assert plain(ACME_PREFIX)[0] == 404                                   # no listing
    assert plain("/healthz")[:3:2] == (301, "https://api.lab.example/healthz")
    # Whichever node holds the VIP answers: the others' HAProxy does the same from its own Caddy.
    for node in ("brave-panda", "calm-otter"):
        out = lc.sh(node, f"curl -s --max-time 5 -H 'Host: api.lab.example' "
                          f"http://127.0.0.1{ACME_PREFIX}{token}").stdout
        assert out == answer.encode(), (node, out)
    # No Cloudflare in front: no client certificate asked, and no CF-Connecting-IP believed.
    assert lc.fetch("api.lab.example", context=_NO_CLIENT_CERT_TLS)[::2] == (200, b"api\n")
    status, _, seen = lc.fetch("echo.lab.example", "/cgi-bin/headers", visitor="203.0.113.50")
    assert status == 200 and f"for={lc.lab.gateway},".encode() in seen and b"203.0.113.50" not in seen, seen
