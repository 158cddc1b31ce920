"""Every command of the README's command table, run through the installed console script as an
operator runs it. The engine's commands run against the recording test double of the `pulumi`
executable (tests/engine/recording_pulumi_double.py; the real CLI cannot run here); the
commands that read nodes back meet the double's addresses (TEST-NET, unreachable) and say so.

`covers` records which command each test runs; the last test parses the README's table and
fails for any command no test here runs, so a documented command cannot go untested again
(`dynia route plan` once failed both ways while every test passed).
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from .test_console_script import dynia

README = Path(__file__).resolve().parents[2] / "docs" / "commands.md"
COVERED: dict[str, list[str]] = {}


def covers(*commands: str):
    def mark(test):
        for command in commands:
            COVERED.setdefault(command, []).append(test.__name__)
        return test
    return mark


def run(env: dict, *args: str, extra: dict | None = None) -> subprocess.CompletedProcess:
    return dynia("-C", str(env["proj"]), *args, env={**env["env"], **(extra or {})})


def engine_calls(env: dict) -> list[tuple[str, str]]:
    """(verb, stack) of every preview/up/destroy/import the double was asked for."""
    if not env["log"].exists():
        return []
    out = []
    for line in env["log"].read_text().splitlines():
        argv = json.loads(line)["argv"]
        verb = " ".join(argv[:2]) if argv[:1] == ["stack"] else argv[0]
        if verb in ("preview", "up", "destroy", "stack import") and "--stack" in argv:
            out.append((verb, argv[argv.index("--stack") + 1]))
    return out


@covers("schema")
def test_schema_prints_the_specs_json_schema():
    proc = dynia("schema")
    assert proc.returncode == 0, proc.stderr
    assert {"services", "nodes", "provider"} <= set(json.loads(proc.stdout)["properties"])


@covers("cluster init", "service add", "route bind", "route unbind", "render", "service remove")
def test_the_spec_editing_commands_shape_a_new_cluster_that_renders(recording_pulumi):
    env, spec = recording_pulumi, recording_pulumi["proj"] / "clusters/blog.yaml"
    assert run(env, "cluster", "init", "blog", "--region", "ams3", "--size", "s-2vcpu-4gb",
               "--domain", "example.com").returncode == 0
    r = run(env, "service", "add", "api", "--compose", "services/api.yml", "--port", "8081",
            "--placement", "active-only", "--cluster", "blog")
    assert r.returncode == 0, r.stderr
    assert "placement: active-only" in spec.read_text()
    assert run(env, "route", "bind", "api", "api.example.com", "--cluster", "blog").returncode == 0
    assert "domain: api.example.com" in spec.read_text()
    assert run(env, "route", "unbind", "api", "--cluster", "blog").returncode == 0
    assert "api.example.com" not in spec.read_text()
    r = run(env, "render", "--cluster", "blog")
    assert r.returncode == 0, r.stderr
    assert (env["proj"] / "deploy-config/blog").is_dir()
    assert run(env, "service", "remove", "api", "--cluster", "blog").returncode == 0
    assert "api:" not in spec.read_text()
    assert engine_calls(env) == []


def test_cluster_init_keeps_the_render_output_out_of_git_once(recording_pulumi):
    env, proj = recording_pulumi, recording_pulumi["proj"]
    (proj / ".gitignore").write_text("*.log")  # the operator's own rules, no final newline
    subprocess.run(["git", "init", "-q", str(proj)], check=True)
    for name in ("blog", "wiki"):
        assert run(env, "cluster", "init", name, "--region", "ams3", "--domain", "example.com").returncode == 0
    assert (proj / ".gitignore").read_text().splitlines()[0] == "*.log"
    assert (proj / ".gitignore").read_text().count("/deploy-config/") == 1
    assert run(env, "render", "--cluster", "blog").returncode == 0
    ignored = subprocess.run(["git", "-C", str(proj), "status", "--porcelain", "--untracked-files=all"],
                             capture_output=True, text=True, check=True).stdout
    assert "deploy-config" not in ignored and "clusters/blog.yaml" in ignored


@covers("plan")
def test_plan_adds_the_engine_preview_of_every_phase(recording_pulumi):
    r = run(recording_pulumi, "plan", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    assert "rolling order: brave-panda → misty-owl" in r.stdout and "engine preview" in r.stdout
    assert engine_calls(recording_pulumi) == [("preview", f"shop-{p}") for p in ("provision", "infra", "apps")]


@covers("route plan")
def test_route_plan_previews_the_apps_phase_online_and_offline(recording_pulumi):
    r = run(recording_pulumi, "route", "plan", "--cluster", "shop", "--offline")
    assert r.returncode == 0, r.stderr
    assert "rolling order: brave-panda → misty-owl" in r.stdout and engine_calls(recording_pulumi) == []
    r = run(recording_pulumi, "route", "plan", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    assert "engine preview" in r.stdout and engine_calls(recording_pulumi) == [("preview", "shop-apps")]


@covers("up", "infra sync", "status", "drift-check", "infra verify", "repair")
def test_up_then_the_commands_that_read_the_nodes_back_name_each_unreachable_node(recording_pulumi):
    env = recording_pulumi
    r = run(env, "up", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    assert "applied: provision, infra, apps" in r.stdout
    r = run(env, "infra", "sync", "--cluster", "shop")
    assert r.returncode == 0 and "applied: infra" in r.stdout, r.stderr
    # The double's nodes live at TEST-NET addresses: each command reaches for them, in parallel.
    for argv, code in ((["status"], 4), (["drift-check"], 14), (["infra", "verify"], 4), (["repair", "--yes"], 14)):
        r = run(env, *argv, "--cluster", "shop")
        assert r.returncode == code, (argv, r.stdout, r.stderr)
        assert "198.51.100.1" in r.stdout + r.stderr and "Traceback" not in r.stderr


@covers("secret set", "secret unset", "secret list")
def test_app_secret_values_are_in_no_output_log_or_file_but_the_store(recording_pulumi, tmp_path):
    """Issue 27.5: every app secret filled with a recognisable value (one of each source), then
    every command that reads or renders the cluster, in every format: no value in any output,
    in .dynia/ (logs, cache, snapshots) except the secrets store, in deploy-config/, or in what
    the engine was given (its argv log, the stacks' config)."""
    from .test_console_script import SCRIPT

    env = recording_pulumi
    values = {"DB_PASSWORD": "leak-db-3c9e51f0-RECOGNISABLE", "API_KEY": "leak-key-8b2d07aa-RECOGNISABLE",
              "TOKEN": "leak-tok-61f4c9d2-RECOGNISABLE"}
    token_file = tmp_path / "outside" / "token"
    token_file.parent.mkdir()
    token_file.write_text(values["TOKEN"] + "\n")
    spec = env["proj"] / "clusters/shop.yaml"
    spec.write_text(spec.read_text().replace(
        "    health_path: /healthz\n", "    health_path: /healthz\n    secrets:\n      API_KEY: {env: SHOP_API_KEY}\n"
        f"      TOKEN: {{command: [cat, {token_file}]}}\n", 1))
    extra = {"SHOP_API_KEY": values["API_KEY"]}
    store = env["proj"] / ".dynia/secrets/shop"

    def dynia_in(value: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(SCRIPT), "-C", str(env["proj"]), *args], input=value, capture_output=True,
                              text=True, timeout=120, env={**env["env"], **extra})

    outputs = []
    r = dynia_in(values["DB_PASSWORD"] + "\n", "secret", "set", "api", "DB_PASSWORD", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    outputs.append(r)
    assert (store / "api/DB_PASSWORD").read_text() == values["DB_PASSWORD"]
    for argv in (["secret", "list"], ["secret", "list", "--json"], ["render"], ["render", "--json"],
                 ["plan", "--offline"], ["plan", "--offline", "--json"], ["plan", "--offline", "--format", "markdown"],
                 ["plan"], ["plan", "--json"], ["plan", "--format", "markdown"], ["up", "--json"], ["up"],
                 ["status", "--json"], ["drift-check", "--json"], ["state", "snapshot"], ["state", "list"]):
        r = run(env, *argv, "--cluster", "shop", extra=extra)
        assert "Traceback" not in r.stderr, (argv, r.stderr)
        outputs.append(r)
    listed = json.loads(outputs[2].stdout)["secrets"]
    assert [(s["name"], s["source"], s["problem"]) for s in listed] == [
        ("API_KEY", "env:SHOP_API_KEY", None), ("DB_PASSWORD", "store", None), ("TOKEN", "command:cat", None)]
    r = dynia_in("", "secret", "unset", "api", "API_KEY", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    outputs.append(r)
    assert "API_KEY" not in spec.read_text()

    for r in outputs:
        text = r.stdout + r.stderr
        assert not [v for v in values.values() if v in text], (r.args, text[-2000:])
    holding = []
    for path in env["state"].rglob("*"):
        if path.is_file() and not path.is_symlink() and store not in path.parents and path != token_file:
            data = path.read_bytes()
            holding += [str(path) for v in values.values() if v.encode() in data]
    assert holding == []
    # What was scanned holds what these commands write: the render (with the api's compose file
    # declaring the secrets), the engine's argv log, a snapshot; and the store holds the value.
    assert "DB_PASSWORD" in next((env["proj"] / "deploy-config").rglob("api/docker-compose.yml")).read_text()
    assert env["log"].stat().st_size and list((env["proj"] / ".dynia/snapshots").rglob("*.yaml"))


@covers("logs", "exec")
def test_logs_and_exec_name_each_unreachable_node_with_the_network_code(recording_pulumi):
    env = recording_pulumi
    assert run(env, "up", "--cluster", "shop").returncode == 0
    r = run(env, "logs", "api", "--tail", "5", "--cluster", "shop")
    assert r.returncode == 14 and r.stdout == "", (r.stdout, r.stderr)
    # one line per node, in the spec's order, and nothing else
    assert [line.split(" -- ")[0].strip() for line in r.stderr.splitlines()] == ["misty-owl", "brave-panda"]
    assert all("unreachable: cannot reach node" in line for line in r.stderr.splitlines())
    r = run(env, "exec", "api", "--cluster", "shop", "--", "true")
    assert r.returncode == 14 and r.stderr.startswith("error: cannot reach node"), r.stderr
    r = run(env, "logs", "nope", "--cluster", "shop")
    assert r.returncode == 10 and "no service or dynia component named 'nope'" in r.stderr
    r = run(env, "exec", "api", "--node", "misty-owl", "--holder", "--cluster", "shop", "--", "true")
    assert r.returncode == 2 and "--node and --holder" in r.stderr


@covers("cluster create", "cluster destroy")
def test_cluster_create_provisions_and_destroy_takes_y_like_repair(recording_pulumi):
    env = recording_pulumi
    r = run(env, "cluster", "create", "blog", "--region", "ams3", "--domain", "example.com")
    assert r.returncode == 0, r.stderr
    assert engine_calls(env) == [("up", "blog-provision")]
    r = run(env, "cluster", "destroy", "-y", "--cluster", "blog")
    assert r.returncode == 0, r.stderr
    assert engine_calls(env)[1:] == [("destroy", f"blog-{p}") for p in ("apps", "infra", "provision")]


@covers("cluster node add", "cluster node activate", "cluster node remove")
def test_node_add_activate_and_remove_re_push_the_cluster(recording_pulumi):
    env, spec = recording_pulumi, recording_pulumi["proj"] / "clusters/shop.yaml"
    assert run(env, "up", "--cluster", "shop").returncode == 0
    r = run(env, "cluster", "node", "add", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    node = re.search(r"added node (\S+) to", r.stdout).group(1)
    r = run(env, "cluster", "node", "activate", node, "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    assert f"master: {node}" in spec.read_text()
    r = run(env, "cluster", "node", "remove", "brave-panda", "-y", "--node-down", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    assert "brave-panda" not in spec.read_text()


@covers("service deploy")
def test_service_deploy_adds_the_service_and_runs_the_apps_phase(recording_pulumi):
    env = recording_pulumi
    r = run(env, "service", "deploy", "hello", "--compose", "services/hello.yml", "--port", "8090",
            "--placement", "standby-only", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    assert "placement: standby-only" in (env["proj"] / "clusters/shop.yaml").read_text()
    assert ("up", "shop-apps") in engine_calls(env)


@covers("releases", "rollback")
def test_releases_lists_the_state_ledger_and_rollback_with_one_release_has_nothing_to_go_back_to(recording_pulumi):
    env = recording_pulumi
    r = run(env, "releases", "--cluster", "shop")
    assert r.returncode == 0 and "no releases recorded yet" in r.stdout, r.stderr
    r = run(env, "up", "--cluster", "shop", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["release"]["id"] == 1 and ("up", "shop-releases") in engine_calls(env)
    # The double answers the ledger's output with what a test wrote for it: release 1 alone.
    (env["state"] / "outputs-shop-releases.json").write_text(json.dumps({"releases": [json.loads(r.stdout)["release"]]}))
    r = run(env, "releases", "--cluster", "shop", "--json")
    assert [x["id"] for x in json.loads(r.stdout)["releases"]] == [1]
    r = run(env, "rollback", "--yes", "--cluster", "shop")
    assert r.returncode == 10 and "one release (1): nothing before it to roll back to" in r.stderr


@covers("cert provision", "cert renew")
def test_cert_provision_previews_and_renew_needs_the_certificate_provision_made(recording_pulumi):
    env = recording_pulumi
    r = run(env, "cert", "provision", "--dry-run", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    assert engine_calls(env) == [("preview", "shop-provision")]
    # origin mode: renew reports the certificate provision cached; the double's provision has none
    r = run(env, "cert", "renew", "--cluster", "shop")
    assert r.returncode == 18 and "hint: run `dynia cert provision --cluster shop`" in r.stderr, r.stderr


@covers("state snapshot", "state list", "state revert")
def test_state_snapshot_list_and_revert(recording_pulumi):
    env = recording_pulumi
    r = run(env, "state", "snapshot", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    snap = r.stdout.split()[1]
    assert snap in run(env, "state", "list", "--cluster", "shop").stdout
    r = run(env, "state", "revert", snap, "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    assert [c for c in engine_calls(env) if c[0] == "stack import"] == [
        ("stack import", f"shop-{p}") for p in ("provision", "infra", "apps")]


@covers("context use", "context current", "context clear")
def test_context_use_current_and_clear_and_a_current_cluster_whose_spec_is_gone(recording_pulumi):
    env, proj = recording_pulumi, recording_pulumi["proj"]
    assert run(env, "context", "use", "mini").returncode == 0
    r = run(env, "context", "current")
    assert (r.returncode, r.stdout) == (0, "mini  (from .dynia/context.json)\n")
    (proj / "clusters/mini.yaml").rename(proj / "mini.yaml.old")
    r = run(env, "context", "current")
    assert r.returncode == 10 and r.stdout == ""
    assert r.stderr.splitlines()[0] == ("error: the current cluster mini (from .dynia/context.json) has no spec: "
                                        "clusters/mini.yaml does not exist")
    assert "dynia context clear" in r.stderr
    assert run(env, "context", "clear").returncode == 0
    assert run(env, "context", "current").stdout.startswith("no current cluster")


@covers("context doctor")
def test_doctor_prints_the_fix_of_every_failed_check(recording_pulumi):
    env = recording_pulumi
    r = run(env, "context", "doctor", "--cluster", "shop")
    assert r.returncode == 0 and "fix:" not in r.stdout, r.stdout
    r = run(env, "context", "doctor", "--cluster", "shop",
            extra={"PULUMI_CONFIG_PASSPHRASE": "", "DIGITALOCEAN_NODE_TOKEN": "", "DYNIA_SSH_KEY": "/nonexistent/key"})
    assert r.returncode == 10
    fixes = " ".join(r.stdout.split()).split("fix: ")[1:]  # a long fix wraps at the width
    assert len(fixes) == 3
    assert "export DIGITALOCEAN_NODE_TOKEN=" in fixes[0] and "export PULUMI_CONFIG_PASSPHRASE=" in fixes[1]
    assert "point DYNIA_SSH_KEY at it" in fixes[2]
    assert "3 of" in r.stderr and "apply each fix above" in r.stderr


def test_plan_names_every_missing_piece_of_a_new_machine_at_once(recording_pulumi):
    env = recording_pulumi
    bare = {"PATH": "/usr/bin:/bin", "PULUMI_CONFIG_PASSPHRASE": "", "DYNIA_SSH_KEY": "/nonexistent/key",
            "DIGITALOCEAN_TOKEN": "", "CLOUDFLARE_API_TOKEN": "", "DIGITALOCEAN_NODE_TOKEN": "", "SSH_AUTH_SOCK": ""}
    for argv in (["plan"], ["up"]):
        r = run(env, *argv, "--cluster", "shop", extra=bare)
        assert r.returncode == 19, r.stderr  # the first missing piece's kind: the Pulumi CLI
        error, hint = r.stderr.splitlines()  # one line each, as every error
        assert error.startswith("error: this machine is not ready to plan or apply, 6 pieces are missing: (1) ")
        for i, (missing, fix) in enumerate((("the Pulumi CLI is not installed", "install the Pulumi CLI"),
                                            ("PULUMI_CONFIG_PASSPHRASE is not set", "export PULUMI_CONFIG_PASSPHRASE="),
                                            ("/nonexistent/key", "point DYNIA_SSH_KEY at it"),
                                            ("DIGITALOCEAN_TOKEN is not set", "export DIGITALOCEAN_TOKEN="),
                                            ("CLOUDFLARE_API_TOKEN is not set", "export CLOUDFLARE_API_TOKEN="),
                                            ("DIGITALOCEAN_NODE_TOKEN is not set", "export DIGITALOCEAN_NODE_TOKEN=")), 1):
            assert missing in error.split(f"({i}) ")[1].split("; (")[0]
            assert fix in hint.split(f"({i}) ")[1].split("; (")[0]
        assert hint.endswith("; then `dynia context doctor` checks all of it again")
    assert engine_calls(env) == []


def test_a_failing_pulumi_subprocess_is_an_engine_error_with_its_output_under_debug(recording_pulumi):
    env = recording_pulumi
    broken = {"RECORDING_PULUMI_BROKEN": "stack export"}
    r = run(env, "state", "snapshot", "--cluster", "shop", extra=broken)
    assert r.returncode == 19, r.stderr
    assert r.stderr.startswith("error: exporting the stack shop-provision failed: error: could not stack export")
    assert "a bug in dynia" not in r.stderr and "Traceback" not in r.stderr
    r = run(env, "state", "snapshot", "--cluster", "shop", "--debug", extra=broken)
    assert r.returncode == 19 and "rerun" not in r.stderr
    log = Path(next(ln for ln in r.stderr.splitlines() if ln.startswith("log: "))[5:])
    assert "the backend did not answer" in log.read_text()  # the CLI's own words, not only dynia's summary


def test_debug_after_the_command_is_the_global_option(recording_pulumi):
    r = run(recording_pulumi, "plan", "--offline", "--cluster", "nope", "--debug")
    assert r.returncode == 10 and "Traceback" in r.stderr
    assert any(ln.startswith("log: ") for ln in r.stderr.splitlines())


def test_a_failed_command_leaves_no_lock_file_for_a_cluster_that_does_not_exist(recording_pulumi):
    env = recording_pulumi
    for argv in (["up"], ["plan"], ["cluster", "destroy", "--yes"], ["repair", "--yes"]):
        r = run(env, *argv, "--cluster", "nope")
        assert r.returncode == 10, r.stderr
    locks = env["proj"] / ".dynia" / "locks"
    assert not locks.exists() or sorted(p.name for p in locks.iterdir()) == []


def test_the_first_plan_of_a_cluster_says_once_that_no_previous_content_is_recorded(project):
    r = dynia("-C", str(project), "plan", "--offline", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("no previous content recorded") == 1
    md = dynia("-C", str(project), "plan", "--offline", "--cluster", "shop", "--format", "markdown").stdout
    assert md.count("no previous content recorded") == 1


def _complete(project: Path, words: str, *, cwd: Path | None = None) -> list[str]:
    env = {"_DYNIA_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
    return dynia(env=env, cwd=cwd or project).stdout.split()


def test_completion_offers_cluster_service_and_node_names_and_placements(project):
    assert _complete(project, "dynia plan --cluster ") == ["lab", "mini", "shop"]
    assert _complete(project, f"dynia -C {project} render --cluster s", cwd=project.parent) == ["shop"]
    assert _complete(project, "dynia service remove --cluster shop ") == ["web", "api", "admin"]  # the spec's order
    assert _complete(project, "dynia route bind --cluster shop a") == ["api", "admin"]
    assert _complete(project, "dynia cluster node activate --cluster shop ") == ["misty-owl", "brave-panda"]
    assert _complete(project, "dynia service add x --placement ") == ["all", "active-only", "standby-only"]


def readme_commands() -> set[str]:
    """The commands of the README's table: `dynia state snapshot` / `list` / `revert ID` is
    three; `context current \\| use NAME \\| clear` three more; `plan --offline` is `plan`."""
    text = README.read_text()
    table = text[text.index("## Commands"):text.index("### Environment")]
    found = set()
    for row in table.splitlines():
        if not row.startswith("| `dynia "):
            continue
        cell = re.split(r"(?<!\\)\|", row)[1]
        group: list[str] = []
        for code in re.findall(r"`([^`]+)`", cell):
            for part in code.split(r" \| "):
                words = part.split()
                if words[:1] == ["dynia"]:
                    words, group = words[1:], []
                path = []
                for w in words:
                    if not re.fullmatch(r"[a-z][a-z-]*", w):
                        break
                    path.append(w)
                if not path:
                    continue
                found.add(" ".join(group + path))
                if not group:
                    group = path[:-1]
    return found


@covers("edge refresh-ranges")
def test_edge_refresh_ranges_dry_run_reads_cloudflares_api_and_writes_nothing(cloudflare_api, project):
    from dynia.operations.edge_ranges import data_path

    before = data_path().read_bytes()
    r = dynia("edge", "refresh-ranges", "--dry-run", "--json", env={"CLOUDFLARE_API_URL": cloudflare_api["url"]})
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["added"] == ["198.51.100.0/24"] and doc["removed"] == ["131.0.72.0/22"] and doc["written"] is False
    assert cloudflare_api["seen"] == ["/client/v4/ips"] and data_path().read_bytes() == before


# --- dynia run and dynia maintenance (the engine's nodes sit at unreachable TEST-NET addresses) ----

def _stacks_asked(env) -> list[str]:
    return [json.loads(line)["argv"] for line in env["log"].read_text().splitlines()]


@covers("run")
def test_run_checks_its_input_then_names_the_unreachable_node_and_records_nothing(recording_pulumi):
    env = recording_pulumi
    for argv, needle in ((["run"], "no service named"),
                         (["run", "nope", "--", "x"], "no service 'nope'"),
                         (["run", "api"], "no command to run"),
                         (["run", "--json", "api", "--", "x"], "--json is for --list"),
                         (["run", "--list", "api"], "--list takes no service")):
        r = run(env, argv[0], "--cluster", "shop", *argv[1:])   # options before `--`: after it, all is CMD
        assert (r.returncode, r.stdout) == (10, ""), (argv, r.stderr)
        assert needle in r.stderr and r.stderr.count("\nhint: ") == 1, r.stderr
    assert run(env, "up", "--cluster", "shop").returncode == 0
    r = run(env, "run", "api", "--cluster", "shop", "--", "sh", "-c", "exit 3")
    assert r.returncode == 14, r.stderr   # network: the node it would run on did not answer
    assert "did not answer" in r.stderr and "198.51.100." in r.stderr and "Traceback" not in r.stderr
    assert not any("shop-runs" in a for a in _stacks_asked(env) if a[:1] == ["up"])   # nothing ran: no record


@covers("run")
def test_run_list_reads_the_runs_stack_of_the_state(recording_pulumi):
    env = recording_pulumi
    r = run(env, "run", "--list", "--cluster", "shop")
    assert r.returncode == 0 and "no run recorded for cluster shop" in r.stdout, r.stderr
    r = run(env, "run", "--list", "--json", "--cluster", "shop")
    assert r.returncode == 0 and json.loads(r.stdout) == {"runs": [], "schemaVersion": 1}, r.stderr
    asked = _stacks_asked(env)
    assert any(a[:2] == ["stack", "output"] and "shop-runs" in a for a in asked), asked
    assert engine_calls(env) == []   # read only: no update of any stack


@covers("maintenance")
def test_maintenance_on_writes_the_spec_pushes_infra_and_plan_names_it_then_off_removes_it(recording_pulumi):
    env = recording_pulumi
    spec = env["proj"] / "clusters/shop.yaml"
    r = run(env, "maintenance", "off", "--message", "x", "--cluster", "shop")
    assert r.returncode == 10 and "--message is for" in r.stderr
    r = run(env, "maintenance", "on", "api", "--message", "Back at 5", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    assert "maintenance on: api" in r.stdout and "applied: infra" in r.stdout
    assert "maintenance:\n      message: Back at 5\n" in spec.read_text()
    assert ("up", "shop-infra") in engine_calls(env)
    r = run(env, "plan", "--offline", "--cluster", "shop")
    assert r.returncode == 0 and "maintenance: service api is in maintenance" in r.stdout, r.stderr
    r = run(env, "maintenance", "off", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    assert "maintenance" not in spec.read_text()


def test_every_command_in_the_readme_table_runs_through_the_console_script_here():
    documented = readme_commands()
    assert {"route plan", "state revert", "context clear", "cluster node remove", "infra verify"} <= documented
    assert sorted(documented - set(COVERED)) == []


def test_an_internal_error_logs_its_trace_and_never_asks_for_the_debug_run_it_was(project, tmp_path):
    (tmp_path / "jinja2.py").write_text("raise RuntimeError('injected fault')\n")  # imported once rendering starts
    fault = {"PYTHONPATH": str(tmp_path)}
    log = project / ".dynia/logs/last-error.log"
    r = dynia("-C", str(project), "plan", "--offline", "--cluster", "shop", env=fault)
    assert r.returncode == 1 and r.stderr.splitlines() == [
        "error: internal error: RuntimeError: injected fault",
        f"hint: this is a bug in dynia; report it with the trace (the trace is in {log}; --debug prints it)"]
    assert "injected fault" in log.read_text() and "Traceback" in log.read_text()
    log.unlink()
    r = dynia("-C", str(project), "plan", "--offline", "--cluster", "shop", "--debug", env=fault)
    assert r.returncode == 1 and "Traceback" in r.stderr and "--debug" not in r.stderr
    assert r.stderr.splitlines()[-1] == f"hint: this is a bug in dynia; report it with the trace (the trace is in {log})"
    assert log.exists()


def _over_the_guard(project: Path) -> None:
    """80.27 % of 2048 MiB: infra 300 + admin 384 + api 704 + web 256 (no limit: assumed)."""
    spec = project / "clusters/shop.yaml"
    spec.write_text(spec.read_text().replace("size: s-2vcpu-4gb", "size: s-1vcpu-2gb"))
    api = project / "services/api.yml"
    api.write_text(api.read_text().replace("memory: 768m", "memory: 448m"))  # + its cache's 256m
    web = project / "services/web.yml"
    web.write_text(web.read_text().split("    deploy:")[0])


GUARD_ERROR = ("error: resource guard: node {node} would use 80.3% of its 2048 MiB RAM (threshold 80.0%): "
               "infra 300 + admin 384 + api 704 + web 256 = 1644 MiB; no memory limit: web/web (256 MiB assumed)")


def test_every_command_refusing_on_the_guard_says_where_the_memory_goes(project):
    _over_the_guard(project)
    for argv in (["render"], ["plan", "--offline"], ["route", "plan", "--offline"]):
        r = dynia("-C", str(project), *argv, "--cluster", "shop")
        assert r.returncode == 12, (argv, r.stderr)
        assert r.stderr.splitlines()[0] in {GUARD_ERROR.format(node=n) for n in ("misty-owl", "brave-panda")}
