"""Every rendered config of every example passes the real haproxy, caddy and keepalived."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dynia import providers
from dynia.render.rendered import render_cluster as render
from dynia.state.store import Project
from dynia.spec.load import load_cluster

from .sandbox import caddy_adapt, lay_out, throwaway_certificate, validate_node


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _needs_root_and_binaries(root_namespaces):
    missing = [b for b in ("haproxy", "caddy", "keepalived", "unshare", "ip", "openssl") if not shutil.which(b)]
    if missing:
        pytest.fail(f"validator tests need {missing}: run .ci/test (README)")


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> bytes:
    return throwaway_certificate(tmp_path_factory.mktemp("cert"))


def _cases():
    for cluster in Project(REPO / "examples").cluster_names():
        c = load_cluster(Project(REPO / "examples"), cluster)
        for node in c.spec.nodes:
            yield pytest.param(cluster, node, id=f"{cluster}-{node}")


@pytest.mark.parametrize("cluster,node", list(_cases()))
def test_rendered_node_configs_pass_real_validators(project, tmp_path, cert, cluster, node):
    c = load_cluster(Project(project), cluster)
    rendering = render(c)
    results = validate_node(rendering, node, tmp_path / "root", cert,
                            providers.of(c.spec).profile.private_interface)
    for name, proc in results.items():
        assert proc.returncode == 0, f"{name} rejected the rendered config:\n{proc.stdout}\n{proc.stderr}"


BREAKAGES = {
    # template file, text replaced, what it becomes, which validator must catch it
    "haproxy": ("haproxy/haproxy.cfg.j2", "balance roundrobin", "balance sometimes"),
    "caddy": ("caddy/Caddyfile.j2", "respond \"ok\" 200", "respnd \"ok\" 200"),
    "keepalived": ("keepalived/keepalived.conf.j2", "interface {{ profile.private_interface }}",
                   "interface {{ profile.private_interface }}-missing"),
}


@pytest.mark.parametrize("component", sorted(BREAKAGES))
def test_deliberately_broken_template_is_rejected_by_its_validator(project, tmp_path, cert, component):
    template, old, new = BREAKAGES[component]
    broken = tmp_path / "templates"
    shutil.copytree(REPO / "templates", broken)
    text = (broken / template).read_text()
    assert old in text, f"breakage anchor {old!r} no longer in {template}"
    (broken / template).write_text(text.replace(old, new))
    c = load_cluster(Project(project), "shop")
    rendering = render(c, templates_dir=str(broken))
    results = validate_node(rendering, "misty-owl", tmp_path / "root", cert, "eth1")
    assert results[component].returncode != 0, f"{component} accepted a broken config"
    others = [n for n, p in results.items() if n != component and p.returncode != 0]
    assert not others, f"breaking {component} should not break {others}"


# The edge policy's overrides (dynia.render.edge): a value HAProxy must not read as `${VAR}` or a comment,
# a removed default, an added header, a per-service limit and one turned off.
EDGE_OVERRIDES = {
    "api": ("    headers:\n      X-Frame-Options: DENY\n      Referrer-Policy: null\n"
            "      Content-Security-Policy: \"default-src 'self'; img-src * data:\"\n"
            "      X-Price: \"${DYNIA_STATS_PASSWORD} #1\"\n"
            "    rate_limit: {requests: 50, window: 1m}\n"),
    "web": "    rate_limit: null\n",
}


@pytest.mark.parametrize("mode", ["origin", "letsencrypt"])
def test_edge_policy_with_overrides_passes_real_haproxy_and_caddy_in_each_tls_mode(project, tmp_path, cert, mode):
    path = Path(project) / "clusters" / "shop.yaml"
    text = path.read_text().replace("  mode: origin\n", f"  mode: {mode}\n")
    for service, block in EDGE_OVERRIDES.items():
        anchor = f"  {service}:\n    compose: services/{service}.yml\n"
        assert anchor in text, anchor
        text = text.replace(anchor, anchor + block)
    path.write_text(text)
    c = load_cluster(Project(project), "shop")
    rendering = render(c)
    haproxy = next(f for f in rendering.files["misty-owl"] if f.target.endswith("haproxy.cfg")).content.decode()
    assert ("verify optional" in haproxy) == (mode == "origin")
    assert ("be_acme" in haproxy) == (mode == "letsencrypt")
    for node in c.spec.nodes:
        results = validate_node(rendering, node, tmp_path / node, cert,
                                providers.of(c.spec).profile.private_interface)
        for name, proc in results.items():
            assert proc.returncode == 0, f"{name} rejected the rendered config:\n{proc.stdout}\n{proc.stderr}"


def test_caddy_reads_every_domain_of_a_service_as_one_site_routed_to_its_port(project, tmp_path, cert):
    """The storefront serves the apex and www: Caddy itself (its adapter, not a regex on our text)
    matches both hosts in one route that proxies to the service's port, and nothing else to it."""
    import json

    c = load_cluster(Project(project), "shop")
    assert c.spec.services["web"].domains == ["example.com", "www.example.com"]
    lay_out(render(c), "misty-owl", tmp_path / "root", cert)
    proc = caddy_adapt(tmp_path / "root")
    assert proc.returncode == 0, proc.stderr
    servers = json.loads(proc.stdout)["apps"]["http"]["servers"].values()
    routes = [r for srv in servers for r in srv.get("routes", [])]
    to_web = [r for r in routes if '"127.0.0.1:8080"' in json.dumps(r)]
    assert [sorted(h for m in r["match"] for h in m.get("host", [])) for r in to_web] == \
        [["example.com", "www.example.com"]]


def test_caddy_writes_every_routed_hosts_requests_to_the_documented_access_log_with_rotation(project, tmp_path, cert):
    """Caddy's own reading of the routes (its adapter): every host of every routed service logs its
    requests, and each of those logs is the file the README names, rolled by size, count and age."""
    import json

    from dynia.paths import CADDY_ACCESS_LOG_ROLL, PATHS, PORTS

    c = load_cluster(Project(project), "shop")
    lay_out(render(c), "misty-owl", tmp_path / "root", cert)
    proc = caddy_adapt(tmp_path / "root")
    assert proc.returncode == 0, proc.stderr
    adapted = json.loads(proc.stdout)
    named = {host: log for srv in adapted["apps"]["http"]["servers"].values()
             for host, log in srv.get("logs", {}).get("logger_names", {}).items()}
    hosts = {f"{d}:{PORTS.caddy}" for svc in c.spec.services.values() for d in svc.domains}
    assert hosts and hosts <= set(named), (hosts, named)
    logs = adapted["logging"]["logs"]
    roll = CADDY_ACCESS_LOG_ROLL
    for host in hosts:
        assert logs[named[host]]["writer"] == {
            "output": "file", "filename": PATHS.caddy_access_log, "roll_size_mb": roll["roll_size_mib"],
            "roll_keep": roll["roll_keep"], "roll_keep_days": roll["roll_keep_for_hours"] // 24}, host


# A maintenance sentence at the spec's bound, made of what could end HAProxy's quoting, expand a
# variable, open a comment or a tag, and characters outside ASCII (each becomes a longer reference).
MAINTENANCE_MESSAGE = ("Back soon ' \" ${DYNIA_STATS_PASSWORD} #x % \\ <script>alert(1)</script> & "
                       "déjà vu 🙂" + "🙂" * 120)[:200]


def test_a_service_in_maintenance_passes_real_haproxy_and_only_its_backend_answers_503(project, tmp_path, cert):
    path = Path(project) / "clusters" / "shop.yaml"
    anchor = "  api:\n    compose: services/api.yml\n"
    text = path.read_text()
    assert anchor in text
    block = ("    maintenance:\n      message: " + __import__("json").dumps(MAINTENANCE_MESSAGE, ensure_ascii=False) +
             "\n      retry_after: 10m\n")
    path.write_text(text.replace(anchor, anchor + block))
    c = load_cluster(Project(project), "shop")
    assert len(c.spec.services["api"].maintenance.message) == 200
    rendering = render(c)
    haproxy = next(f for f in rendering.files["misty-owl"] if f.target.endswith("haproxy.cfg")).content.decode()
    returns = [line for line in haproxy.splitlines() if "http-request return status 503" in line]
    assert len(returns) == 1 and returns[0].endswith("hdr Retry-After 600"), returns
    backend_of_return = haproxy[:haproxy.index(returns[0])].rsplit("\nbackend ", 1)[1].split()[0]
    assert backend_of_return == "be_api"
    page = returns[0].split(" string ", 1)[1]
    assert "&#128578;" in page and "&lt;script&gt;" in page and "&#36;{DYNIA_STATS_PASSWORD}" in page
    assert "${" not in page and "\\" not in page and page.count("'") == 2
    for node in c.spec.nodes:
        results = validate_node(rendering, node, tmp_path / node, cert,
                                providers.of(c.spec).profile.private_interface)
        assert results["haproxy"].returncode == 0, \
            f"haproxy rejected the maintenance page:\n{results['haproxy'].stdout}\n{results['haproxy'].stderr}"
