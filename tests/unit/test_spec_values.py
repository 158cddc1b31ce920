"""Values that reach nftables, HAProxy, keepalived, a compose project or an ACME connection are
canonical or refused, at the spec (issue 22 d-g); what an operator legitimately writes still
passes, and the local provider keeps its private ACME test server."""
from __future__ import annotations

import datetime as dt
import math
import re

import pytest

from dynia.operations import certs
from dynia.render import edge
from dynia.spec import headers, reserved
from dynia.errors import DyniaError
from dynia.paths import PATHS, compose_project
from dynia.render.rendered import render_cluster as render
from dynia.spec.model import validate_spec
from dynia.state.store import Project
from dynia.spec.load import load_cluster

BASE = {"version": 1, "name": "shop", "provider": {"kind": "digitalocean", "region": "sgp1", "size": "s-1vcpu-1gb"},
        "nodes": ["misty-owl"], "domain": "example.com"}
LOCAL = {"kind": "local", "size": "s-1vcpu-1gb", "vpc_ip_range": "10.213.0.0/24"}


def _spec(**changes) -> dict:
    return {**BASE, **changes}


def _refused(spec: dict) -> DyniaError:
    with pytest.raises(DyniaError) as exc:
        validate_spec(spec, "t.yaml")
    assert exc.value.kind == "config"
    return exc.value


# --- d. admin ranges -------------------------------------------------------------------------

HOSTILE_RANGE = "2001:db8::%eth0\n}\nchain input {\n\ttype filter hook input priority -1; policy accept;\n}\n/64"


@pytest.mark.parametrize("entry", ["fe80::%eth0/64", "2001:db8::%1/128", HOSTILE_RANGE])
def test_an_admin_range_with_a_zone_id_is_refused(entry):
    err = _refused(_spec(firewall={"admin_ranges": [entry]}))
    assert "firewall.admin_ranges" in err.message and "no %zone" in err.message
    assert "\n" not in err.message   # the hostile text is quoted, never a line of its own


def test_a_zone_id_never_reaches_the_rendered_firewall(project, cli):
    spec = project / "clusters/shop.yaml"
    quoted = HOSTILE_RANGE.replace("\n", "\\n").replace("\t", "\\t")
    spec.write_text(spec.read_text() + f'firewall:\n  admin_ranges: ["{quoted}"]\n')
    result = cli("-C", str(project), "render", "--cluster", "shop")
    assert result.code == 10 and "no %zone" in result.err, result.err
    assert not (project / "deploy-config").exists()


@pytest.mark.parametrize("entry,kind", [
    ("127.0.0.0/8", "loopback"), ("127.0.0.1/32", "loopback"), ("::1/128", "loopback"),
    ("169.254.169.254/32", "link-local"), ("fe80::/10", "link-local"), ("fe80::/64", "link-local"),
    ("224.0.0.0/4", "multicast"), ("ff02::/16", "multicast"),
    ("0.0.0.0/32", "this-network"), ("::/128", "this-network"), ("::ffff:10.0.0.0/104", "IPv4-mapped")])
def test_an_admin_range_no_operator_can_connect_from_is_refused(entry, kind):
    assert f"is {kind} address space" in _refused(_spec(firewall={"admin_ranges": [entry]})).message


def test_operator_ranges_pass_normalised():
    ranges = ["0.0.0.0/0", "::/0", "10.0.0.0/8", "2001:DB8::/32", "198.51.100.7/32", "100.64.0.0/10"]
    assert validate_spec(_spec(firewall={"admin_ranges": ranges}), "t.yaml").firewall.admin_ranges == [
        "0.0.0.0/0", "::/0", "10.0.0.0/8", "2001:db8::/32", "198.51.100.7/32", "100.64.0.0/10"]


# --- e. numbers are bounded --------------------------------------------------------------------

@pytest.mark.parametrize("key,value", [
    ("interval", math.inf), ("timeout", math.inf), ("timeout", math.nan), ("interval", math.nan),
    ("timeout", 1e300), ("interval", 10 ** 400), ("timeout", "9" * 400 + "s"), ("interval", -1),
    ("interval", "50ms"), ("interval", "2m"), ("timeout", "11m"), ("timeout", "1h"), ("timeout", "500ms")])
def test_a_health_duration_that_is_infinite_huge_or_out_of_bounds_is_refused(key, value):
    health = {"interval": "2s", "timeout": "60s", key: value}
    assert "health" in _refused(_spec(health=health)).message


def test_health_durations_at_their_bounds_pass():
    spec = validate_spec(_spec(health={"interval": "100ms", "timeout": "10m"}), "t.yaml")
    assert (spec.health.interval, spec.health.timeout) == (0.1, 600.0)
    spec = validate_spec(_spec(health={"interval": "1m", "timeout": "1m"}), "t.yaml")
    assert (spec.health.interval, spec.health.timeout) == (60.0, 60.0)


@pytest.mark.parametrize("window,seconds", [("1h", 3600), ("60m", 3600), ("1s", 1), (3600, 3600)])
def test_a_rate_limit_window_of_up_to_an_hour_passes_in_any_unit(window, seconds):
    svc = {"compose": "services/a.yml", "port": 9000, "rate_limit": {"requests": 5, "window": window}}
    assert validate_spec(_spec(services={"app": svc}), "t.yaml").services["app"].rate_limit.window == seconds


@pytest.mark.parametrize("window", [math.inf, "2h", "3601s", "0s", "1.5s", 10 ** 400])
def test_a_rate_limit_window_beyond_an_hour_or_not_whole_seconds_is_refused(window):
    svc = {"compose": "services/a.yml", "port": 9000, "rate_limit": {"requests": 5, "window": window}}
    assert "rate_limit.window" in _refused(_spec(services={"app": svc})).message


FRAMING = ["Content-Length", "transfer-encoding", "Connection", "Keep-Alive", "Proxy-Connection", "Upgrade",
           "TE", "Trailer", "HOST", "HTTP2-Settings"]


@pytest.mark.parametrize("name", FRAMING)
@pytest.mark.parametrize("value", ["0", None], ids=["set", "removed"])
def test_framing_and_hop_by_hop_headers_are_refused_set_or_removed(name, value):
    svc = {"compose": "services/a.yml", "port": 9000, "headers": {name: value}}
    assert "frames the message" in _refused(_spec(services={"app": svc})).message


@pytest.mark.parametrize("pair", [("X-Frame-Options", "x-frame-options"), ("X-Note", "X-NOTE")])
def test_two_spellings_of_one_header_are_a_conflict_not_the_later_wins(pair):
    svc = {"compose": "services/a.yml", "port": 9000, "headers": {pair[0]: "DENY", pair[1]: None}}
    err = _refused(_spec(services={"app": svc}))
    assert f"headers {pair[0]} and {pair[1]} are one header" in err.message


def _budget_headers(total: int, count: int = 8) -> dict[str, str]:
    """`count` added headers whose cost, with dynia's defaults, is exactly `total` bytes."""
    left = total - headers.rewrite_cost()
    out = {}
    for i in range(count):
        name = f"X-Pad-{i}"
        size = left // (count - i) - len(name) - headers.HTX_BLOCK
        out[name] = "v" * size
        left -= len(name) + size + headers.HTX_BLOCK
    assert headers.rewrite_cost(out) == total
    return out


def test_headers_fit_haproxys_rewrite_space_to_the_byte():
    svc = {"compose": "services/a.yml", "port": 9000}
    at = _budget_headers(headers.REWRITE_BUDGET)
    assert validate_spec(_spec(services={"app": {**svc, "headers": at}}), "t.yaml")
    over = _budget_headers(headers.REWRITE_BUDGET + 1)
    err = _refused(_spec(services={"app": {**svc, "headers": over}}))
    assert "1025 bytes of HAProxy's 1024-byte rewrite space" in err.message
    # Many small headers hit the same bound (each costs 8 bytes beyond its text): a count bound.
    many = {f"X-{i}": "1" for i in range(100)}
    assert "rewrite space" in _refused(_spec(services={"app": {**svc, "headers": many}})).message
    # A removal is free: dropping a default makes room.
    freed = {**_budget_headers(headers.REWRITE_BUDGET), "Referrer-Policy": None}
    assert headers.rewrite_cost(freed) < headers.REWRITE_BUDGET


def test_an_override_of_a_default_in_another_spelling_still_replaces_it():
    rules = edge.header_rules({"x-frame-options": "DENY"})
    assert [r.name for r in rules].count("x-frame-options") == 1
    assert not any(r.name == "X-Frame-Options" for r in rules)


# --- f. names dynia uses itself are reserved ----------------------------------------------------

def test_the_reserved_names_are_derived_from_the_haproxy_template_paths_and_units():
    assert reserved.own_proxies() == ["fe_http", "fe_https", "be_any_node", "be_acme", "stats"]
    assert reserved.own_units() == ["dynia-firewall"]
    assert {f.__name__ for f in reserved.service_paths()} == {"compose_file", "route_file", "drain_marker", "app_secret_dir",
                                                             "drain_record"}
    assert sorted(reserved.reserved_service_names()) == ["acme", "firewall"]


def test_a_fixed_path_a_service_would_own_reserves_its_name():
    """The file rule, on paths dynia does not have today: a route file or a compose directory
    named like a service's reserves that name; a sibling of the family's directory does not."""
    route = lambda s: reserved._owned(PATHS.route_file, s)      # noqa: E731
    compose = lambda s: reserved._owned(PATHS.compose_file, s)  # noqa: E731
    assert reserved._named_by(route, ["/etc/caddy/routes/metrics.caddy", "/etc/caddy/Caddyfile"]) == {
        "metrics": "/etc/caddy/routes/metrics.caddy"}
    assert reserved._named_by(compose, ["/opt/dynia/compose/shared/env", "/opt/dynia/compose"]) == {
        "shared": "/opt/dynia/compose/shared/env"}


@pytest.mark.parametrize("name", ["acme", "firewall"])
def test_a_service_named_like_dynias_own_is_refused_with_a_rename_hint(name):
    for tls in ({"mode": "origin"}, {"mode": "letsencrypt"}):
        err = _refused(_spec(tls=tls, services={name: {"compose": "services/a.yml", "port": 9000}}))
        assert err.message.startswith(f"t.yaml: services.{name}: service name {name} is dynia's own")
        assert f"like {name}-app" in err.hint


def _candidates() -> list[str]:
    """Every word dynia names its own things with on a node: proxies, units, paths, hosts."""
    from dynia.paths import ACME_HOST, HEALTH_HOST

    words = set()
    for text in [*reserved.own_proxies(), *reserved.own_units(), *reserved.own_paths(), ACME_HOST, HEALTH_HOST]:
        words.update(w for w in re.split(r"[/_.]", text) if w)
        words.update(w.removeprefix("dynia-") for w in re.split(r"[/.]", text) if w)
    words.update(p.removeprefix("be_").removeprefix("fe_").replace("_", "-") for p in reserved.own_proxies())
    from dynia.spec.model import is_name
    return sorted(w for w in words if is_name(w))


def _collisions(rendering, spec, name: str) -> list[str]:
    out = []
    for node, files in rendering.files.items():
        cfg = next(f for f in files if f.target == PATHS.haproxy_cfg).content.decode()
        proxies = re.findall(r"^(?:frontend|backend|listen)\s+(\S+)", cfg, re.M)
        out += [f"{node}: proxy {p} twice" for p in set(proxies) if proxies.count(p) > 1]
        targets = [f.target for f in files]
        out += [f"{node}: file {t} twice" for t in set(targets) if targets.count(t) > 1]
    mine = [path_of(name) for path_of in reserved.service_paths()]
    out += [f"path {p}" for p in reserved.own_paths() for m in mine if p == m or p.startswith(m + "/")]
    out += [f"unit {u}" for u in reserved.own_units() if u == compose_project(name)]
    return out


def test_every_reserved_name_candidate_renders_a_collision_exactly_when_it_is_reserved(project, monkeypatch):
    """Each word dynia uses for its own things, as a service of a letsencrypt cluster (be_acme
    exists in that mode), rendered with the reserved check switched off: the names that collide
    with a proxy, a file or a unit of dynia's are exactly the reserved set."""
    import dynia.spec.model

    monkeypatch.setattr(dynia.spec.model, "reserved_service_names", lambda: {})
    path = project / "clusters/shop.yaml"
    base = path.read_text().replace("  mode: origin\n", "  mode: letsencrypt\n")
    (project / "services/candidate.yml").write_text('services:\n  app:\n    image: x\n    ports: ["9100:80"]\n')
    candidates = _candidates()
    assert {"acme", "firewall", "stats", "haproxy", "caddy", "keepalived", "compose", "drain", "routes",
            "any-node", "health"} <= set(candidates)
    colliding = {}
    for name in candidates:
        if name in ("web", "api", "admin"):
            continue
        path.write_text(base + f"  {name}:\n    compose: services/candidate.yml\n    domain: {name}.example.com\n"
                               "    port: 9100\n")
        c = load_cluster(Project(project), "shop")
        found = _collisions(render(c), c.spec, name)
        if found:
            colliding[name] = found
    assert sorted(colliding) == sorted(reserved.reserved_service_names()), colliding


# --- g. tls.acme_directory and tls.email ---------------------------------------------------------

def _tls(directory: str, provider: dict | None = None, **more) -> dict:
    spec = _spec(tls={"mode": "letsencrypt", "acme_directory": directory, **more})
    if provider:
        spec["provider"] = provider
    return spec


SECRET = "s3cr3t-pa55"


@pytest.mark.parametrize("directory", [
    f"https://ops:{SECRET}@acme.example.com/dir", f"https://{SECRET}@acme.example.com/dir",
    f"https://acme.example.com/dir?token={SECRET}", "https://acme.example.com/dir#x", "http://acme.example.com/dir",
    "https://2130706433/dir", "https://0x7f000001/dir", "https://0177.0.0.1/dir", "https://127.1/dir",
    "https://0x7f.0x1/dir", "https://[fe80::1%25eth0]/dir", "https://[1:2]/dir", "https://acme.example.com:0/dir",
    "https://acme.example.com:99999/dir", "https://evil.example\\@127.0.0.1/", "https://acme.example.com/a b",
    "https://acme.example.com/dir\n", "https://acme_x.example.com/dir", "ftp://acme.example.com/"])
@pytest.mark.parametrize("provider", [None, LOCAL], ids=["digitalocean", "local"])
def test_an_acme_directory_that_is_not_a_plain_canonical_https_url_is_refused_everywhere(directory, provider):
    err = _refused(_tls(directory, provider))
    assert "tls.acme_directory" in err.message
    assert SECRET not in err.message + err.hint


@pytest.mark.parametrize("directory", [
    "https://127.0.0.1:14000/dir", "https://10.213.0.5:14000/dir", "https://192.168.1.2/dir",
    "https://169.254.169.254/metadata/v1", "https://100.64.0.1/dir", "https://0.0.0.0/dir", "https://[::1]/dir",
    "https://[::ffff:127.0.0.1]/dir", "https://[64:ff9b::a9fe:a9fe]/dir", "https://[fd00:ec2::254]/dir",
    "https://[fe80::1]/dir", "https://localhost:14000/dir", "https://acme.localhost/dir", "https://pebble:14000/dir",
    "https://metadata.google.internal/dir", "https://ca.home.arpa/dir", "https://printer.local/dir"])
def test_an_acme_directory_on_a_private_address_is_refused_outside_the_local_provider(directory):
    err = _refused(_tls(directory))
    assert err.message.startswith("t.yaml: tls.acme_directory: ") and "use a public ACME directory" in err.hint
    assert validate_spec(_tls(directory, LOCAL), "t.yaml").tls.directory_url == directory


@pytest.mark.parametrize("directory", [
    "production", "staging", "https://acme.example.com/directory", "https://ACME.Example.COM:8443/v2/DV90",
    "https://acme.zerossl.com/v2/DV90", "https://8.8.8.8/dir", "https://[2606:4700::1111]/dir",
    "https://ca.example.com/acme/acme/directory"])
def test_a_public_acme_directory_passes(directory):
    assert validate_spec(_tls(directory), "t.yaml").tls.acme_directory == directory


@pytest.mark.parametrize("key,value", [("acme_directory", "staging"), ("acme_directory", "production"),
                                       ("email", "ops@example.com")])
def test_acme_settings_in_origin_mode_are_an_error_not_ignored(key, value):
    err = _refused(_spec(tls={"mode": "origin", key: value}))
    assert err.message.startswith(f"t.yaml: tls.{key}: set, but tls.mode origin orders no ACME certificate")
    assert "tls.mode: letsencrypt" in err.hint
    assert validate_spec(_spec(tls={"mode": "origin"}), "t.yaml").tls.mode == "origin"


@pytest.mark.parametrize("email", ["Ops@Example.COM", "OPS@EXAMPLE.COM", "ops@example.com"])
def test_an_upper_case_email_is_accepted(email):
    assert validate_spec(_tls("staging", email=email), "t.yaml").tls.email == email


def test_a_credential_in_the_directory_is_never_echoed_by_the_cli(project, cli):
    spec = project / "clusters/shop.yaml"
    spec.write_text(spec.read_text().replace(
        "  mode: origin\n", f"  mode: letsencrypt\n  acme_directory: https://ops:{SECRET}@acme.example.com/dir\n"))
    for argv in (["plan", "--offline"], ["cert", "provision", "--dry-run"], ["render"]):
        result = cli("-C", str(project), *argv, "--cluster", "shop")
        assert result.code == 10, (argv, result.err)
        assert "carries no user:password" in result.err
        assert SECRET not in result.out + result.err, argv


def test_a_stored_state_from_before_the_rule_never_shows_its_credential(project):
    """A certificate ordered by an older dynia from a directory with a credential: the renewal
    reason and the printed facts name the directory without it."""
    spec = project / "clusters/shop.yaml"
    spec.write_text(spec.read_text().replace("  mode: origin\n", "  mode: letsencrypt\n  acme_directory: staging\n"))
    c = load_cluster(Project(project), "shop")
    now = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    old = certs.AcmeState(None, "pem", now + dt.timedelta(days=80), tuple(certs.covered_domains(c.spec)),
                          f"https://ops:{SECRET}@acme.example.com/dir?token={SECRET}")
    reason = certs.renewal_reason(old, c.spec, now)
    assert reason.startswith("issued by https://acme.example.com/dir, tls.acme_directory is now")
    assert certs.public_facts(old)["directory"] == "https://acme.example.com/dir"

