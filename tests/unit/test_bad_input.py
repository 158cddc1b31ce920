"""Bad specs and bad commands: each gives its documented exit code and hint, and the spec on
disk is byte-identical afterwards."""
from __future__ import annotations

from pathlib import Path

import pytest

CONFIG, RENDER, ENGINE = 10, 12, 19

# (id, text replaced in clusters/shop.yaml (old, new) or None, extra files, argv, code, hint fragment)
SPEC_CASES = [
    ("unknown-top-level-key", ("lockdown: false", "lockdown: false\ncolour: red"), "valid keys here"),
    ("unknown-service-key", ("    port: 8081", "    port: 8081\n    prot: 1"), "valid keys here"),
    ("bad-zone-domain", ("domain: example.com               #", "domain: exa_mple.com  #"), "fix the value"),
    ("domain-outside-zone", ("domain: api.example.com", "domain: api.example.net"), "use a name under example.com"),
    ("duplicate-domain", ("domain: admin.example.com", "domain: api.example.com"), "give each service its own domain"),
    ("port-clash", ("port: 8082", "port: 8081"), "every service needs its own host port"),
    ("infra-port", ("port: 8082", "port: 8404"), "fix the value"),
    ("compose-missing", ("services/admin.yml", "services/nope.yml"), "create it"),
    ("compose-port-not-published", ("port: 8082", "port: 8099"), "add ports:"),
    ("newer-schema", ("version: 1", "version: 99"), "upgrade dynia"),
    ("older-schema", ("version: 1", "version: 0"), "set version: 1"),
    ("unknown-region", ("region: sgp1", "region: mars1"), "fix the value"),
    ("unknown-size", ("size: s-2vcpu-4gb", "size: s-99vcpu"), "fix the value"),
    ("too-many-nodes", ("[misty-owl, brave-panda]", "[aa-bb, cc-dd, ee-ff, gg-hh, ii-jj, kk-ll]"), "fix the value"),
    ("duplicate-node", ("[misty-owl, brave-panda]", "[misty-owl, misty-owl]"), "fix the value"),
    ("bad-node-id", ("[misty-owl, brave-panda]", "[misty-owl, node1]"), "fix the value"),
    ("master-not-a-node", ("master: misty-owl", "master: lazy-cat"), "set master to one of"),
    ("bad-placement", ("placement: active-only", "placement: sometimes"), "use one of"),
    ("standby-only-with-domain", ("placement: active-only", "placement: standby-only"), "remove the domain"),
    ("bad-duration", ("interval: 2s", "interval: fast"), "fix the value"),
    ("timeout-below-interval", ("timeout: 60s", "timeout: 1s"), "fix the value"),
    ("threshold-above-one", ("memory_threshold: 0.8", "memory_threshold: 1.5"), "fix the value"),
    ("tls-mode-unsupported", ("mode: origin", "mode: letsencrypt"), "use one of"),
    ("yaml-syntax", ("nodes: [misty-owl, brave-panda]", "nodes: [misty-owl, brave-panda"), "fix the YAML syntax"),
    ("name-mismatch", ("name: shop", "name: store"), "set name: shop"),
    ("missing-domain", ("domain: example.com               # the Cloudflare zone\n", ""), "add `domain:`"),
]

COMPOSE_CASES = [
    ("compose-bad-yaml", "services/api.yml", "services:\n  api: [\n", "fix the YAML syntax"),
    ("compose-host-network", "services/api.yml",
     "services:\n  api:\n    image: x\n    network_mode: host\n", "publish the port"),
    ("compose-public-bind", "services/api.yml",
     "services:\n  api:\n    image: x\n    ports: [\"203.0.113.5:8081:8000\"]\n", "drop the address"),
    ("compose-no-services", "services/api.yml", "version: '3'\n", "declare at least one container"),
    ("compose-bad-memory", "services/api.yml",
     "services:\n  api:\n    image: x\n    ports: [\"8081:80\"]\n    mem_limit: lots\n", "write it like 256m"),
]

COMMAND_CASES = [
    ("service-add-duplicate", ["service", "add", "api", "--compose", "services/api.yml", "--port", "8081"],
     CONFIG, "remove it first"),
    ("service-add-infra-port", ["service", "add", "new", "--compose", "services/api.yml", "--port", "80"],
     CONFIG, "fix the value"),
    ("service-add-missing-compose", ["service", "add", "new", "--compose", "services/nope.yml", "--port", "9000"],
     CONFIG, "create it"),
    ("service-remove-unknown", ["service", "remove", "nope"], CONFIG, "services here"),
    ("route-bind-outside-zone", ["route", "bind", "api", "api.other.org"], CONFIG, "use a name under example.com"),
    ("route-bind-taken", ["route", "bind", "api", "admin.example.com"], CONFIG, "give each service its own domain"),
    ("route-unbind-unknown", ["route", "unbind", "nope"], CONFIG, "services here"),
    ("init-existing", ["cluster", "init", "shop", "--region", "sgp1", "--domain", "example.com"],
     CONFIG, "pick another name"),
    ("init-too-many-nodes", ["cluster", "init", "big", "--region", "sgp1", "--domain", "example.com",
                             "--nodes", "9"], CONFIG, "between 1 and 5"),
    ("init-bad-region", ["cluster", "init", "big", "--region", "mars1", "--domain", "example.com"],
     CONFIG, "fix the value"),
    ("plan-bad-format", ["plan", "--offline", "--format", "html"], CONFIG, "--format markdown"),
    ("plan-online-without-pulumi-cli", ["plan"], ENGINE, "install the Pulumi CLI"),
    ("unknown-cluster", ["plan", "--offline", "--cluster", "nope"], CONFIG, "dynia cluster init nope"),
    ("context-use-unknown", ["context", "use", "nope"], CONFIG, "pick one of"),
]


def _snapshot(project: Path) -> dict[str, bytes]:
    return {str(p.relative_to(project)): p.read_bytes()
            for p in sorted(project.rglob("*")) if p.is_file() and ".dynia" not in p.parts}


def _expect(result, code: int, hint: str) -> None:
    assert result.code == code, (result.code, result.err)
    lines = result.err.strip().splitlines()
    assert lines[0].startswith("error: "), result.err
    assert lines[1].startswith("hint: ") and hint in lines[1], result.err


def test_there_are_at_least_25_bad_inputs():
    assert len(SPEC_CASES) + len(COMPOSE_CASES) + len(COMMAND_CASES) >= 25


@pytest.mark.parametrize("edit,hint", [c[1:] for c in SPEC_CASES], ids=[c[0] for c in SPEC_CASES])
def test_bad_spec_gives_config_error_with_hint_and_line(project, cli, edit, hint):
    old, new = edit
    spec = project / "clusters/shop.yaml"
    text = spec.read_text()
    assert old in text
    spec.write_text(text.replace(old, new, 1))
    before = _snapshot(project)
    result = cli("-C", str(project), "plan", "--offline", "--cluster", "shop")
    _expect(result, CONFIG, hint)
    assert "clusters/shop.yaml" in result.err.splitlines()[0]
    assert _snapshot(project) == before


@pytest.mark.parametrize("path,content,hint", [c[1:] for c in COMPOSE_CASES], ids=[c[0] for c in COMPOSE_CASES])
def test_bad_compose_file_names_the_service_key(project, cli, path, content, hint):
    (project / path).write_text(content)
    before = _snapshot(project)
    result = cli("-C", str(project), "render", "--cluster", "shop")
    _expect(result, CONFIG, hint)
    assert "services.api.compose" in result.err
    assert _snapshot(project) == before
    assert not (project / "deploy-config").exists()


@pytest.mark.parametrize("argv,code,hint", [c[1:] for c in COMMAND_CASES], ids=[c[0] for c in COMMAND_CASES])
def test_bad_command_leaves_every_file_as_it_was(project, cli, argv, code, hint):
    before = _snapshot(project)
    result = cli("-C", str(project), *argv, *([] if "--cluster" in argv or argv[0] in ("cluster", "context")
                                              else ["--cluster", "shop"]))
    _expect(result, code, hint)
    assert _snapshot(project) == before


def test_resource_guard_in_fail_mode_is_a_render_error(project, cli):
    spec = project / "clusters/shop.yaml"
    spec.write_text(spec.read_text().replace("size: s-2vcpu-4gb", "size: s-1vcpu-1gb"))
    before = _snapshot(project)
    result = cli("-C", str(project), "render", "--cluster", "shop")
    _expect(result, RENDER, "pick a larger provider.size")
    assert _snapshot(project) == before


def test_resource_guard_in_warn_mode_renders_and_warns(project, cli):
    spec = project / "clusters/shop.yaml"
    spec.write_text(spec.read_text().replace("size: s-2vcpu-4gb", "size: s-1vcpu-1gb")
                    .replace("on_exceed: fail", "on_exceed: warn"))
    result = cli("-C", str(project), "render", "--cluster", "shop")
    assert result.code == 0, result.err
    assert "warning: resource guard: node misty-owl would use" in result.err


def test_debug_prints_the_trace_and_the_log_path(project, cli):
    result = cli("-C", str(project), "--debug", "plan", "--offline", "--cluster", "nope")
    assert result.code == CONFIG
    assert "Traceback" in result.err
    log = [l for l in result.err.splitlines() if l.startswith("log: ")]
    assert log and Path(log[0][5:]).read_text().startswith("Traceback")


def test_error_line_names_the_yaml_line(project, cli):
    spec = project / "clusters/shop.yaml"
    lines = spec.read_text().splitlines()
    number = next(i for i, l in enumerate(lines, 1) if "port: 8082" in l)
    spec.write_text(spec.read_text().replace("port: 8082", "port: 80"))
    result = cli("-C", str(project), "plan", "--offline", "--cluster", "shop")
    assert f"clusters/shop.yaml:{number}: services.admin.port" in result.err
