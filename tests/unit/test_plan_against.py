"""`dynia plan --offline --against REF`: the render at a git revision (read with git, no
checkout, no .dynia/ state) against the working tree's, node by node, line by line."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dynia.paths import PORTS

from ..needs import need_tools

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}
ROUTE = "/etc/caddy/routes/api.caddy"
COMPOSE = "/opt/dynia/compose/api/docker-compose.yml"
HAPROXY = "/etc/haproxy/haproxy.cfg"



@pytest.fixture(autouse=True)
def _git():
    need_tools("git", package="git")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout


def _repo(root: Path) -> None:
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")


def _commit(root: Path, edits: dict[str, tuple[str, str]]) -> None:
    for rel, (old, new) in edits.items():
        p = root / rel
        assert old in p.read_text()
        p.write_text(p.read_text().replace(old, new))
    git(root, "commit", "-qam", "change")


def _plan(cli, project: Path, *extra: str, env: dict | None = None):
    return cli("-C", str(project), "plan", "--offline", "--cluster", "shop", "--against", "HEAD~1", *extra, env=env)


def _changes(plan: dict) -> dict[str, dict[str, dict]]:
    return {n["node"]: {c["path"]: c for c in n["changes"]} for n in plan["nodes"]}


def test_a_changed_service_port_shows_the_changed_caddy_route_and_compose_lines_on_every_node(project, cli):
    _repo(project)
    _commit(project, {"clusters/shop.yaml": ("port: 8081", "port: 8091"),
                      "services/api.yml": ('"8081:8000"', '"8091:8000"')})
    r = _plan(cli, project, "--json")
    assert r.code == 0, r.err
    plan = json.loads(r.out)
    assert plan["against"]["ref"] == "HEAD~1" and plan["against"]["newCluster"] is False
    assert plan["against"]["commit"] == git(project, "rev-parse", "HEAD~1").strip()
    assert plan["addresses"] == "planned"
    changes = _changes(plan)
    assert set(changes) == {"brave-panda", "misty-owl"}
    for node, files in changes.items():
        assert set(files) == {ROUTE, COMPOSE}, node
        assert "-\treverse_proxy 127.0.0.1:8081 {\n+\treverse_proxy 127.0.0.1:8091 {\n" in files[ROUTE]["diff"]
        assert "-      - 127.0.0.1:8081:8000\n+      - 127.0.0.1:8091:8000\n" in files[COMPOSE]["diff"]
        # HAProxy forwards to each node's Caddy, never to a service port: its config stays
        assert HAPROXY not in files


def test_a_changed_service_domain_shows_the_changed_haproxy_and_caddy_lines_per_node(project, cli):
    _repo(project)
    _commit(project, {"clusters/shop.yaml": ("domain: api.example.com", "domain: v2.example.com")})
    r = _plan(cli, project, "--json")
    assert r.code == 0, r.err
    for node, files in _changes(json.loads(r.out)).items():
        assert set(files) == {ROUTE, HAPROXY}, node
        haproxy = files[HAPROXY]["diff"]
        assert "-    use_backend be_api if { hdr(host),field(1,:) -i api.example.com }\n" in haproxy
        assert "+    use_backend be_api if { hdr(host),field(1,:) -i v2.example.com }\n" in haproxy
        assert "hdr Host v2.example.com" in haproxy
        route = files[ROUTE]["diff"]
        assert f"-http://api.example.com:{PORTS.caddy} {{\n+http://v2.example.com:{PORTS.caddy} {{\n" in route
    md = _plan(cli, project, "--format", "markdown").out
    assert md.startswith("### dynia plan: `shop` → against `HEAD~1`")
    assert "Addresses are planned on both sides (no provision state is read)." in md
    assert f"`{HAPROXY}` — on `brave-panda`, `misty-owl`" in md  # the same lines on both: shown once
    assert md.count("+    use_backend be_api if") == 1


def test_a_second_domain_bound_to_a_service_shows_its_host_rule_and_caddy_site_and_nothing_else(project, cli):
    _repo(project)
    _commit(project, {"clusters/shop.yaml": ("domain: api.example.com", "domain: [api.example.com, v2.example.com]")})
    r = _plan(cli, project, "--json")
    assert r.code == 0, r.err
    for node, files in _changes(json.loads(r.out)).items():
        assert set(files) == {ROUTE, HAPROXY}, node
        haproxy = files[HAPROXY]["diff"]
        assert "+    use_backend be_api if { hdr(host),field(1,:) -i api.example.com v2.example.com }\n" in haproxy
        assert "hdr Host" not in haproxy  # the health check still asks as the first domain
        route = files[ROUTE]["diff"]
        assert f"+http://api.example.com:{PORTS.caddy}, http://v2.example.com:{PORTS.caddy} {{\n" in route


def test_against_reads_no_dynia_state_and_leaves_the_working_tree_and_head_alone(project, cli):
    _repo(project)
    _commit(project, {"services/api.yml": ("LOG_LEVEL: info", "LOG_LEVEL: debug")})
    # corrupt runtime files: any read of them would be a state error
    cache = project / ".dynia/cache/shop"
    cache.mkdir(parents=True)
    for name in ("applied.json", "outputs.json"):
        (cache / name).write_text("{not json")
    (project / "services/api.yml").write_text((project / "services/api.yml").read_text() + "# uncommitted\n")
    head = git(project, "rev-parse", "HEAD")
    status = git(project, "status", "--porcelain", "--untracked-files=no")
    r = _plan(cli, project, "--json")
    assert r.code == 0, r.err
    diff = _changes(json.loads(r.out))["misty-owl"][COMPOSE]["diff"]
    assert "+      LOG_LEVEL: debug" in diff and "+# uncommitted" not in diff  # compose is re-dumped
    assert git(project, "rev-parse", "HEAD") == head
    assert git(project, "status", "--porcelain", "--untracked-files=no") == status
    assert (cache / "applied.json").read_text() == "{not json"


def test_a_ref_that_does_not_exist_is_a_config_error_with_a_hint(project, cli):
    _repo(project)
    r = cli("-C", str(project), "plan", "--offline", "--cluster", "shop", "--against", "origin/nope")
    assert r.code == 10
    assert "git revision origin/nope does not exist" in r.err and "fetch-depth: 0" in r.err


def test_a_spec_missing_at_the_ref_is_a_new_cluster_where_everything_is_added(project, cli):
    spec = project / "clusters/shop.yaml"
    text = spec.read_text()
    spec.unlink()
    _repo(project)
    spec.write_text(text)
    git(project, "add", "clusters/shop.yaml")
    git(project, "commit", "-qm", "add shop")
    r = _plan(cli, project, "--json")
    assert r.code == 0, r.err
    plan = json.loads(r.out)
    assert plan["against"]["newCluster"] is True
    assert all(c["op"] == "add" and c["diffNote"] == "new cluster: everything is added"
               for n in plan["nodes"] for c in n["changes"])
    assert plan["pending"] == 26
    md = _plan(cli, project, "--format", "markdown").out
    assert "**new cluster, everything is added**" in md
    assert "new cluster" in _plan(cli, project).out


def test_a_project_in_a_subdirectory_of_the_repository_reads_its_own_files(tmp_path, project, cli):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.move(str(project), repo / "infra")
    sub = repo / "infra"
    _repo(repo)
    _commit(sub, {"clusters/shop.yaml": ("port: 8081", "port: 8091"),
                  "services/api.yml": ('"8081:8000"', '"8091:8000"')})
    r = _plan(cli, sub, "--json")
    assert r.code == 0, r.err
    assert set(_changes(json.loads(r.out))["misty-owl"]) == {ROUTE, COMPOSE}


def test_a_broken_spec_at_the_ref_names_the_ref(project, cli):
    _repo(project)
    _commit(project, {"clusters/shop.yaml": ("port: 8081", "port: 8091")})  # compose still says 8081
    git(project, "revert", "--no-edit", "HEAD")  # HEAD is fine again, HEAD~1 is broken
    r = _plan(cli, project)
    assert r.code == 10 and r.err.startswith("error: at HEAD~1: ")


def test_a_node_removed_since_the_ref_shows_every_file_of_it_going(project, cli):
    _repo(project)
    _commit(project, {"clusters/shop.yaml": ("nodes: [misty-owl, brave-panda]", "nodes: [misty-owl]")})
    plan = json.loads(_plan(cli, project, "--json").out)
    gone = next(n for n in plan["nodes"] if n["node"] == "brave-panda")
    assert gone["removedNode"] is True and gone["changes"] and all(c["op"] == "remove" for c in gone["changes"])


def test_against_needs_offline_and_is_not_silently_ignored(project, cli):
    r = cli("-C", str(project), "plan", "--cluster", "shop", "--against", "HEAD")
    assert r.code == 2 and "--offline" in r.err


def test_no_secret_value_appears_in_the_against_plan_in_any_format(project, cli):
    from tests.unit.test_plan_diffs import TOKENS, _fill_secrets

    (project / ".gitignore").write_text(".dynia/\n")
    forbidden = _fill_secrets(project)
    _repo(project)
    _commit(project, {"clusters/shop.yaml": ("domain: api.example.com", "domain: v2.example.com")})
    for fmt in (["--json"], ["--format", "markdown"], []):
        r = _plan(cli, project, *fmt, env=TOKENS)
        assert r.code == 0, r.err
        assert not any(v in r.out + r.err for v in forbidden)


def test_the_pull_request_workflow_plans_every_pull_request_against_its_base_without_secrets():
    import yaml

    workflow = Path(__file__).resolve().parents[2] / "examples/ci/dynia-plan.yml"
    steps = yaml.safe_load(workflow.read_text())["jobs"]["plan"]["steps"]
    assert steps[0]["with"]["fetch-depth"] == 0  # origin/<base> and the merge base are there
    (against,) = [s for s in steps if "--against" in s.get("run", "")]
    assert "if" not in against  # every pull request, forks included
    assert not any("secrets." in v for v in against["env"].values())  # and it reads no secret
    assert 'git merge-base "origin/$BASE_REF" HEAD' in against["run"]
    assert "dynia plan --offline --against \"$base\"" in against["run"] and "--format markdown > plan.md" in against["run"]
    # no expression is pasted into a script: a branch name like main$(…) is a valid git ref
    assert not any("${{" in s.get("run", "") for s in steps)
    live = [s for s in steps if "DYNIA_SSH_KEY" in s.get("run", "")]
    assert live and all(s["if"] == "${{ env.HAS_LIVE == 'true' }}" for s in live)
    # secrets reach the live plan's step only, never the job (the install step runs the PR's code)
    job = yaml.safe_load(workflow.read_text())["jobs"]["plan"]
    assert not any("secrets." in v and "!= ''" not in v for v in job["env"].values())
    with_secrets = [s.get("name") for s in steps if any("secrets." in str(v) for v in (s.get("env") or {}).values())]
    assert with_secrets == ["live plan (Pulumi preview)"]
    assert all(s["with"].get("persist-credentials") is False for s in steps if s.get("uses", "").startswith("actions/checkout"))


def test_a_compose_file_nested_400_levels_deep_at_the_ref_is_a_config_error_not_a_crash(project, cli):
    api = project / "services/api.yml"
    good = api.read_text()
    api.write_text(good + "x-deep:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(400)) + "  " * 401 + "v\n")
    _repo(project)
    api.write_text(good)
    git(project, "commit", "-qam", "flatten")
    r = _plan(cli, project)
    assert r.code == 10, r.err
    assert "services/api.yml is nested too deeply" in r.err and "internal error" not in r.err
