"""Hostile input (issue #7, section 3): what the checks refuse is refused at the root, and what
an operator legitimately writes still passes (no check may be stricter than the nodes need)."""
from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from dynia.spec import compose
from dynia.errors import DyniaError
from dynia.spec.model import ClusterSpec, validate_spec
from dynia.state.reads import MAX_FLOW_DEPTH
from dynia.state.store import Project, parse_yaml
from dynia.spec.load import load_cluster

BASE = {"version": 1, "name": "shop", "provider": {"kind": "digitalocean", "region": "sgp1", "size": "s-1vcpu-1gb"},
        "nodes": ["misty-owl"], "domain": "example.com"}


def _spec(**changes) -> dict:
    spec = {**BASE, **changes}
    if "provider" in changes:
        spec["provider"] = {**BASE["provider"], **changes["provider"]}
    return spec


@pytest.mark.parametrize("backend", ["file://~", "file:///var/lib/pulumi", "s3://bucket/dynia?region=sgp1",
                                     "azblob://state", "gs://bucket/path", "https://api.pulumi.com"])
def test_every_pulumi_backend_scheme_is_accepted(backend):
    assert validate_spec(_spec(backend=backend), "t.yaml").backend == backend


# DigitalOcean's own limits (a /16 at most, its reserved ranges): tests/unit/test_vpc_ranges.py
@pytest.mark.parametrize("vpc", ["10.110.0.0/24", "10.0.0.0/16", "172.16.0.0/16", "172.31.255.0/28",
                                 "192.168.10.0/24"])
def test_private_vpc_ranges_are_accepted(vpc):
    assert validate_spec(_spec(provider={"vpc_ip_range": vpc}), "t.yaml").provider.vpc_ip_range == vpc


@pytest.mark.parametrize("key,value", [("name", "shop\n"), ("domain", "example.com\n"),
                                       ("nodes", ["misty-owl\n"]), ("master", "misty-owl\n")])
def test_no_identifier_accepts_a_trailing_newline(key, value):
    with pytest.raises(DyniaError) as exc:
        validate_spec(_spec(**{key: value}), "t.yaml")
    assert exc.value.kind == "config"


def test_service_names_are_matched_whole():
    svc = {"compose": "services/a.yml", "port": 9000, "placement": "active-only"}
    with pytest.raises(DyniaError, match="service name 'admin\\\\n'"):
        validate_spec(_spec(services={"admin\n": svc}), "t.yaml")
    assert "admin" in ClusterSpec.model_validate(_spec(services={"admin": svc})).services


def _service(tmp_path: Path, compose_text: str, port: int = 9000, **svc):
    (tmp_path / "services").mkdir(exist_ok=True)
    (tmp_path / "services/app.yml").write_text(compose_text)
    spec = _spec(services={"app": {"compose": "services/app.yml", "port": port, **svc}})
    return validate_spec(spec, "t.yaml"), tmp_path


def test_what_works_on_a_node_passes_the_compose_checks(tmp_path):
    spec, root = _service(tmp_path, """\
services:
  app:
    image: x
    ports: ["0.0.0.0:9000:80", {target: 81, published: "9001", host_ip: "127.0.0.1", protocol: udp}]
    expose: ["5432"]
    volumes: ["data:/data", "/srv/app:/srv", {type: bind, source: /srv/app-etc, target: /etc/app}, "/cache"]
    extends: {service: base}
  base:
    image: y
configs:
  inline: {content: "a=1"}
secrets:
  token: {environment: TOKEN}
volumes:
  data: {}
""", placement="active-only")
    infos, problems = compose.check_all(spec, root)
    assert problems == []
    rendered = YAML(typ="safe").load(compose.wrapped("app", infos["app"]))
    ports = rendered["services"]["app"]["ports"]
    assert ports[0] == "127.0.0.1:9000:80" and ports[1]["host_ip"] == "127.0.0.1"


def test_compose_symlink_out_of_the_project_is_refused(tmp_path):
    outside = tmp_path / "outside.yml"
    outside.write_text('services:\n  app:\n    image: x\n    ports: ["9000:80"]\n')
    root = tmp_path / "proj"
    (root / "services").mkdir(parents=True)
    (root / "services/app.yml").symlink_to(outside)
    spec = validate_spec(_spec(services={"app": {"compose": "services/app.yml", "port": 9000}}), "t.yaml")
    _, problems = compose.check_all(spec, root)
    assert problems and "leads outside the project directory" in problems[0][1]


def test_rendered_header_cannot_leave_its_comment_line(tmp_path):
    spec, root = _service(tmp_path, 'services:\n  app:\n    image: x\n    ports: ["9000:80"]\n')
    infos, _ = compose.check_all(spec, root)
    hostile = compose.ComposeInfo(path=infos["app"].path, shown="services/app.yml\nname: evil\u2028x: 1",
                                  data=infos["app"].data, memory_mib=1, unlimited=())
    text = compose.wrapped("app", hostile)
    assert text.splitlines()[0].startswith("# Rendered by dynia from services/app.yml\\nname: evil\\u2028x: 1")
    assert YAML(typ="safe").load(text)["name"] == "dynia-app"


def test_flow_nesting_up_to_the_limit_parses_and_beyond_is_refused():
    ok = "x: " + "[" * MAX_FLOW_DEPTH + "]" * MAX_FLOW_DEPTH + "\n"
    assert parse_yaml(ok, "t.yaml")["x"] is not None
    deep = "x: " + "[" * (MAX_FLOW_DEPTH + 1) + "]" * (MAX_FLOW_DEPTH + 1) + "\n"
    with pytest.raises(DyniaError, match="nested too deeply"):
        parse_yaml(deep, "t.yaml")
    brackets_in_text = 'x: "' + "[" * 500 + '"  # ' + "{" * 500 + "\n"
    assert parse_yaml(brackets_in_text, "t.yaml")["x"] == "[" * 500


def test_spec_of_exactly_the_size_cap_is_read(project):
    from dynia.state.reads import MAX_INPUT_BYTES

    spec = project / "clusters/shop.yaml"
    text = spec.read_text()
    spec.write_text(text + "#" * (MAX_INPUT_BYTES - len(text.encode()) - 1) + "\n")
    assert spec.stat().st_size == MAX_INPUT_BYTES
    assert load_cluster(Project(project), "shop").spec.name == "shop"



# --- issue 22h / 21.8: limits and messages wherever a compose file is read ------------------

BOMB = "".join(f"x-{n}: &{n} [" + ", ".join([f"*{p}"] * 9 if p else ['"lol"'] * 9) + "]\n"
               for p, n in zip(["", "a", "b", "c", "d", "e", "f"], "abcdefg"))  # 9**7 strings once expanded


# Where a compose file's alias bomb can sit (tests/bench/bench_inputs.py times each refusal).
BOMB_PLACES = [
    '    ports: ["9000:80", *g]\n',
    '    ports: ["9000:80", {target: *g, published: 9001}]\n',
    '    ports: ["9000:80", {target: 81, published: 9001, host_ip: *g}]\n',
    '    ports: ["9000:80", {target: 81, published: 9001, protocol: *g}]\n',
    '    ports: ["9000:80"]\n    mem_limit: *g\n',
    '    ports: ["9000:80"]\n    volumes: [*g]\n',
    '    ports: ["9000:80"]\n    cap_add: *g\n',
    '    ports: ["9000:80"]\n    security_opt: [*g]\n',
    '    ports: ["9000:80"]\n    network_mode: *g\n',
    '    ports: ["9000:80"]\n    privileged: *g\n',
    '    ports: ["9000:80"]\n    extends: {file: *g, service: x}\n',
]


@pytest.mark.parametrize("extra", BOMB_PLACES)
def test_an_alias_bomb_never_reaches_an_error_message_expanded(tmp_path, extra):
    # How long the refusal takes is tests/bench/bench_inputs.py's figure.
    spec, root = _service(tmp_path, BOMB + "services:\n  app:\n    image: x\n" + extra)
    _, problems = compose.check_all(spec, root)
    assert problems, "the bomb was accepted"
    assert len(problems[0][1]) < 1000 and len(problems[0][2]) < 300


def _nested(depth: int) -> str:
    """A compose file `depth` mappings deep: the file, services:, the container, labels: and
    depth - 4 mappings below it."""
    body = "".join("  " * (3 + i) + f"k{i}:\n" for i in range(depth - 3)) + "  " * depth + "v\n"
    return 'services:\n  app:\n    image: x\n    ports: ["9000:80"]\n    labels:\n' + body


def test_block_nesting_up_to_the_depth_limit_renders_and_beyond_is_refused(tmp_path):
    from dynia.state.reads import MAX_DEPTH, too_deep

    assert not too_deep(YAML(typ="safe").load(_nested(MAX_DEPTH)))
    assert too_deep(YAML(typ="safe").load(_nested(MAX_DEPTH + 1)))
    spec, root = _service(tmp_path, _nested(MAX_DEPTH))
    infos, problems = compose.check_all(spec, root)
    assert problems == []
    assert compose.wrapped("app", infos["app"]).startswith("# Rendered by dynia")
    for depth in (MAX_DEPTH + 1, 400, 1000):
        spec, root = _service(tmp_path, _nested(depth))
        _, problems = compose.check_all(spec, root)
        assert problems and "nested too deeply" in problems[0][1], depth


def test_a_compose_file_that_contains_itself_is_refused(tmp_path):
    spec, root = _service(tmp_path, 'services:\n  app:\n    image: x\n    ports: ["9000:80"]\n    x-self: &s [*s]\n')
    _, problems = compose.check_all(spec, root)
    assert problems and "contains itself" in problems[0][1]


def test_a_spec_nested_400_block_levels_deep_is_refused_as_such():
    text = "x:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(400)) + "  " * 401 + "v\n"
    with pytest.raises(DyniaError, match="nested too deeply"):
        parse_yaml(text, "t.yaml")


@pytest.mark.parametrize("text,line,column", [
    ("services:\n  app: [\n", 3, 1),
    ("services:\n  app:\n    image: x\n   ports: 1\n", 4, 4),
    ("services:\n  app:\n    image: *nothing\n", 3, 12),
])
def test_a_compose_yaml_error_names_line_and_column_and_assumes_no_docker(tmp_path, text, line, column):
    spec, root = _service(tmp_path, text)
    _, problems = compose.check_all(spec, root)
    assert f"compose file services/app.yml:{line}:{column} is not valid YAML (" in problems[0][1]
    assert problems[0][2] == "fix the YAML syntax at that line and column"


@pytest.mark.parametrize("container", ["    ports: [\"9000:80\"]\n", "    image: ''\n    ports: [\"9000:80\"]\n",
                                       "    image: [x]\n    ports: [\"9000:80\"]\n"])
def test_a_container_without_an_image_is_refused(tmp_path, container):
    spec, root = _service(tmp_path, "services:\n  app:\n" + container)
    _, problems = compose.check_all(spec, root)
    assert problems and "container app has no image:" in problems[0][1]
    assert "add image:" in problems[0][2]
