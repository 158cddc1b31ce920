"""The edge policy (dynia.render.edge) as rendered into HAProxy and Caddy: security headers per service,
rate limits, whose CF-Connecting-IP is believed, Authenticated Origin Pulls, the ACME route."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from dynia.render import edge
from dynia import providers
from dynia.errors import DyniaError
from dynia.render.firewall import cloudflare_ranges
from dynia.paths import ACME_HOST, ACME_PREFIX, PATHS
from dynia.render.rendered import render_cluster as render
from dynia.state.store import Project
from dynia.spec.load import load_cluster
from dynia.tls import origin_pull_pair


def _edit(project: Path, cluster: str, old: str, new: str) -> None:
    path = project / "clusters" / f"{cluster}.yaml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def _file(rendering, node: str, target: str) -> str:
    return next(f for f in rendering.files[node] if f.target == target).content.decode()


def _section(cfg: str, header: str) -> str:
    """One `frontend`/`backend` section of a rendered haproxy.cfg, up to the next blank line."""
    m = re.search(rf"^{re.escape(header)}\n(.*?)(?:\n\n|\Z)", cfg, re.M | re.S)
    assert m, header
    return m.group(1)


def _after_response(section: str) -> list[str]:
    return re.findall(r"^\s+http-after-response (.+)$", section, re.M)


DEFAULTS = ['set-header Strict-Transport-Security "max-age=63072000; includeSubDomains"',
            'set-header X-Frame-Options "SAMEORIGIN"', 'set-header X-Content-Type-Options "nosniff"',
            'set-header Referrer-Policy "strict-origin-when-cross-origin"']


def test_every_service_and_the_fallback_get_the_default_security_headers(project):
    r = render(load_cluster(Project(project), "shop"))
    cfg = _file(r, "misty-owl", PATHS.haproxy_cfg)
    for backend in ("be_any_node", "be_web", "be_api", "be_admin"):
        assert _after_response(_section(cfg, f"backend {backend}")) == DEFAULTS, backend


def test_a_service_override_replaces_adds_and_null_removes_a_header_for_that_service_only(project):
    _edit(project, "shop", "  api:\n    compose: services/api.yml\n",
          "  api:\n    compose: services/api.yml\n    headers:\n      x-frame-options: DENY\n"
          "      Referrer-Policy: null\n      Permissions-Policy: \"camera=(), geolocation=()\"\n")
    cfg = _file(render(load_cluster(Project(project), "shop")), "misty-owl", PATHS.haproxy_cfg)
    assert _after_response(_section(cfg, "backend be_api")) == [
        'set-header Strict-Transport-Security "max-age=63072000; includeSubDomains"',
        'set-header x-frame-options "DENY"',                 # names are case-insensitive: replaced
        'set-header X-Content-Type-Options "nosniff"',
        "del-header Referrer-Policy",                         # null: the app's own is removed too
        'set-header Permissions-Policy "camera=(), geolocation=()"']
    assert _after_response(_section(cfg, "backend be_web")) == DEFAULTS


def test_a_dollar_in_a_header_value_is_escaped_so_haproxy_never_expands_its_environment():
    # HAProxy expands ${VAR} inside double quotes; its environment holds the stats password.
    [rule] = [r for r in edge.header_rules({"X-Note": "${DYNIA_STATS_PASSWORD} costs $5 #1 'x'"})
              if r.name == "X-Note"]
    assert rule.line() == "set-header X-Note \"\\${DYNIA_STATS_PASSWORD} costs \\$5 #1 'x'\""


@pytest.mark.parametrize("value", ['a"b', "a\\b", "100%", "a\nb"])
def test_a_header_value_haproxy_would_misread_is_a_render_error(value):
    with pytest.raises(DyniaError) as err:
        edge.haproxy_quote(value)
    assert err.value.kind == "render"


def test_each_service_backend_limits_requests_per_client_and_answers_429_with_retry_after(project):
    _edit(project, "shop", "  api:\n    compose: services/api.yml\n",
          "  api:\n    compose: services/api.yml\n    rate_limit: {requests: 50, window: 1m}\n")
    _edit(project, "shop", "  web:\n    compose: services/web.yml\n",
          "  web:\n    compose: services/web.yml\n    rate_limit: null\n")
    cfg = _file(render(load_cluster(Project(project), "shop")), "misty-owl", PATHS.haproxy_cfg)
    api, admin, web = (_section(cfg, f"backend be_{s}") for s in ("api", "admin", "web"))
    assert "stick-table type ipv6 size 50000 expire 60s store http_req_rate(60s)" in api
    # An IPv6 client is one /64 (it may use any address inside), an IPv4 client one address.
    assert "    http-request track-sc0 var(txn.client),ipmask(32,64)" in api.splitlines()
    assert "http-request deny deny_status 429 hdr Retry-After 60 if { sc_http_req_rate(0) gt 50 }" in api
    # The default: 200 requests per 10 s.
    assert "stick-table type ipv6 size 50000 expire 10s store http_req_rate(10s)" in admin
    assert "http-request deny deny_status 429 hdr Retry-After 10 if { sc_http_req_rate(0) gt 200 }" in admin
    assert "stick-table" not in web and "track-sc0" not in web and "deny_status" not in web
    # The limit is checked before any request is sent to a server (http-request, not tcp-content).
    assert api.index("track-sc0") < api.index("server ")


def test_origin_mode_believes_cf_connecting_ip_only_from_cloudflares_ranges(project):
    cfg = _file(render(load_cluster(Project(project), "shop")), "misty-owl", PATHS.haproxy_cfg)
    fe = _section(cfg, "frontend fe_https")
    acl = [r for line in re.findall(r"^\s+acl from_edge src (.+)$", fe, re.M) for r in line.split()]
    cf = cloudflare_ranges()
    assert acl == [*cf.ipv4, *cf.ipv6] and len(acl) >= 20
    rules = re.findall(r"^\s+(http-request (?:del-header CF-Connecting-IP(?!v6)|set-var\(txn\.client\)|"
                       r"set-header X-Forwarded-For).*)$", fe, re.M)
    assert rules == ["http-request del-header CF-Connecting-IP unless from_edge",
                     "http-request set-var(txn.client) req.hdr_ip(CF-Connecting-IP,-1) if from_edge",
                     "http-request set-var(txn.client) src unless { var(txn.client) -m found }",
                     "http-request set-header X-Forwarded-For %[var(txn.client)]"]
    # The client is settled before any backend is chosen (and so before any rate limit counts).
    assert fe.index("set-header X-Forwarded-For") < fe.index("use_backend")
    # X-Forwarded-For is HAProxy's own: forwardfor only adds one where none was set.
    assert "option forwardfor if-none" in cfg and not re.search(r"option forwardfor$", cfg, re.M)


@pytest.mark.parametrize("mode", ["origin", "letsencrypt"])
def test_client_address_headers_a_client_could_invent_are_deleted_before_any_rule_reads_them(project, mode):
    _edit(project, "shop", "  mode: origin\n", f"  mode: {mode}\n")
    fe = _section(_file(render(load_cluster(Project(project), "shop")), "misty-owl", PATHS.haproxy_cfg),
                  "frontend fe_https")
    deleted = re.findall(r"^\s+http-request del-header (\S+)$", fe, re.M)
    for name in ("Forwarded", "X-Real-IP", "True-Client-IP", "X-Client-IP", "Client-IP",
                 "X-Cluster-Client-IP", "X-Forwarded-Host"):
        assert name in deleted, name
    assert fe.index("del-header Forwarded") < fe.index("set-var(txn.client)") < fe.index("use_backend")
    # HAProxy's own answer: X-Forwarded-For, set (never appended to a client's).
    assert "http-request set-header X-Forwarded-For %[var(txn.client)]" in fe


def test_letsencrypt_mode_believes_no_cf_connecting_ip_and_asks_for_no_client_certificate(project):
    _edit(project, "shop", "  mode: origin\n", "  mode: letsencrypt\n")
    r = render(load_cluster(Project(project), "shop"))
    cfg = _file(r, "misty-owl", PATHS.haproxy_cfg)
    fe = _section(cfg, "frontend fe_https")
    assert "from_edge" not in fe and "req.hdr_ip(CF-Connecting-IP" not in fe
    assert "http-request del-header CF-Connecting-IP\n" in fe
    assert "http-request set-var(txn.client) src unless { var(txn.client) -m found }" in fe
    assert "ca-file" not in fe and "verify" not in fe and "ssl_c_used" not in fe
    assert PATHS.origin_pull_ca not in {f.target for f in r.files["misty-owl"]}
    assert PATHS.origin_pull_ca not in {s.target for s in r.slots["misty-owl"]}


def test_the_lab_trusts_its_own_stand_in_for_cloudflares_edge(project):
    spec = load_cluster(Project(project), "lab").spec
    local = providers.of(spec)
    assert edge.trusted_edge(spec, local) == list(local.firewall_sources(spec).edge)
    cfg = _file(render(load_cluster(Project(project), "lab")), "misty-owl", PATHS.haproxy_cfg)
    assert re.findall(r"acl from_edge src (.+)", cfg) == [" ".join(local.firewall_sources(spec).edge)]


def test_origin_mode_requires_the_origin_pull_certificate_except_from_loopback(project):
    r = render(load_cluster(Project(project), "shop"))
    fe = _section(_file(r, "misty-owl", PATHS.haproxy_cfg), "frontend fe_https")
    assert (f"bind :443 ssl crt {PATHS.origin_pem} ca-file {PATHS.origin_pull_ca} verify optional "
            "alpn h2,http/1.1") in fe
    deny = "http-request deny deny_status 403 unless { ssl_c_used } { ssl_c_verify 0 } || { src 127.0.0.1 ::1 }"
    assert deny in fe
    # Refused before anything else is looked at.
    assert fe.index(deny) < fe.index("X-Forwarded-Proto") < fe.index("use_backend")
    # The CA is the cluster's own, from the provision state: a slot filled at push time, never
    # a rendered file (no shared CA of Cloudflare's is trusted).
    assert PATHS.origin_pull_ca not in {f.target for f in r.files["misty-owl"]}
    slot = next(s for s in r.slots["misty-owl"] if s.target == PATHS.origin_pull_ca)
    assert (slot.layer, slot.secret, slot.mode, slot.component) == ("infra", "origin_pull_ca", 0o644, "haproxy")


def test_the_labs_origin_pull_pair_is_made_once_kept_0600_and_its_ca_fills_the_slot(project, tmp_path):
    from dynia.state.secrets import push_secrets

    cluster = load_cluster(Project(project), "lab")
    local = providers.of(cluster.spec)
    pair = local.origin_pull_for_push(cluster.project, "lab")
    kept = cluster.project.secrets_path("lab", "origin-pull")
    assert kept.stat().st_mode & 0o777 == 0o600
    assert local.origin_pull_for_push(cluster.project, "lab") == pair  # kept, not made again
    assert push_secrets(cluster.project, "lab", cluster.spec)["origin_pull_ca"] == pair["ca"].encode()
    (tmp_path / "ca.pem").write_text(pair["ca"])
    (tmp_path / "client.pem").write_bytes(local.origin_pull_client(cluster.project, "lab"))
    (tmp_path / "other.pem").write_text(origin_pull_pair("lab")["certificate"])  # same name, another CA
    ok = subprocess.run(["openssl", "verify", "-purpose", "sslclient", "-CAfile", tmp_path / "ca.pem",
                         tmp_path / "client.pem"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    other = subprocess.run(["openssl", "verify", "-CAfile", tmp_path / "ca.pem", tmp_path / "other.pem"],
                           capture_output=True, text=True)
    assert other.returncode != 0


def test_letsencrypt_mode_routes_acme_challenges_on_port_80_to_this_nodes_caddy_before_the_redirect(project):
    _edit(project, "shop", "  mode: origin\n", "  mode: letsencrypt\n")
    r = render(load_cluster(Project(project), "shop"))
    for node in ("misty-owl", "brave-panda"):
        cfg = _file(r, node, PATHS.haproxy_cfg)
        fe = _section(cfg, "frontend fe_http")
        assert fe.splitlines()[-4:] == [
            f"    acl acme_challenge path_beg {ACME_PREFIX}",
            f"    http-request set-header Host {ACME_HOST} if acme_challenge",
            "    use_backend be_acme if acme_challenge",
            "    http-request redirect scheme https code 301 unless acme_challenge"]
        me = next(n for n in r.inventory.nodes if n == node)
        private = r.inventory.nodes[me][0]
        assert _section(cfg, "backend be_acme").strip() == f"server {node} {private}:8880"
        caddy = _file(r, node, PATHS.caddyfile)
        site = caddy[caddy.index(f"http://{ACME_HOST}:8880 {{"):]
        site = site[:site.index("\n}\n")]
        assert f"bind {private}" in site
        assert f"handle {ACME_PREFIX}* {{" in site and f"root * {PATHS.acme_challenge_dir}" in site
        assert f"uri strip_prefix {ACME_PREFIX.rstrip('/')}" in site and "file_server\n" in site
        assert "browse" not in site and 'respond "not found" 404' in site


def test_origin_mode_has_no_acme_route(project):
    r = render(load_cluster(Project(project), "shop"))
    cfg = _file(r, "misty-owl", PATHS.haproxy_cfg)
    assert "acme" not in cfg and ACME_HOST not in _file(r, "misty-owl", PATHS.caddyfile)
    assert _section(cfg, "frontend fe_http").splitlines()[-1] == "    http-request redirect scheme https code 301"
