"""Offline plan: per-node diff against the last applied manifest, reloads, JSON and Markdown."""
from __future__ import annotations

import json
import subprocess
import sys

from dynia.render.rendered import render_cluster as render
from dynia.state.store import Project
from dynia.spec.load import load_cluster


def _applied_from_current_render(project) -> dict:
    r = render(load_cluster(Project(project), "shop"))
    return {"configVersion": 3, "contentHash": r.content_hash,
            "nodes": {n: r.manifest(n) for n in r.files}}


def _write_applied(project, applied):
    cache = project / ".dynia/cache/shop"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "applied.json").write_text(json.dumps(applied))


def test_first_plan_adds_every_file_on_every_node(project, cli):
    r = cli("-C", str(project), "plan", "--offline", "--cluster", "shop", "--json")
    plan = json.loads(r.out)
    assert plan["appliedVersion"] is None and plan["configVersion"] == 1
    assert plan["rollingOrder"] == ["brave-panda", "misty-owl"]
    assert all(c["op"] == "add" for n in plan["nodes"] for c in n["changes"])
    assert plan["pending"] == 26  # rendered files; slots (certificate, origin-pull CA, credentials) are filled at push


def test_plan_after_apply_with_no_change_is_empty_and_reloads_nothing(project, cli):
    _write_applied(project, _applied_from_current_render(project))
    r = cli("-C", str(project), "plan", "--offline", "--cluster", "shop", "--json", "--detailed-exitcode")
    assert r.code == 0
    plan = json.loads(r.out)
    assert plan["pending"] == 0 and plan["configVersion"] == 3
    assert all(n["reload"] == [] for n in plan["nodes"])


def test_plan_names_changed_added_removed_files_and_only_affected_reloads(project, cli):
    applied = _applied_from_current_render(project)
    _write_applied(project, applied)
    spec = project / "clusters/shop.yaml"
    # api moves to a new domain: its route and HAProxy's host rule for it change on every node
    spec.write_text(spec.read_text().replace("domain: api.example.com", "domain: v2.example.com"))
    # one node had a stale file dynia no longer renders, and a mode drifted in the manifest
    applied["nodes"]["brave-panda"]["/etc/caddy/routes/old.caddy"] = {
        "sha256": "0" * 64, "mode": "0644", "owner": "root:root", "component": "caddy"}
    applied["nodes"]["misty-owl"]["/etc/keepalived/notify.sh"]["mode"] = "0755"
    _write_applied(project, applied)
    r = cli("-C", str(project), "plan", "--offline", "--cluster", "shop", "--json", "--detailed-exitcode")
    assert r.code == 3
    plan = json.loads(r.out)
    assert plan["configVersion"] == 4
    nodes = {n["node"]: n for n in plan["nodes"]}
    ops = {n: {(c["path"], c["op"], c["detail"]) for c in nodes[n]["changes"]} for n in nodes}
    haproxy = ("/etc/haproxy/haproxy.cfg", "change", "content")
    assert ops["brave-panda"] == {("/etc/caddy/routes/api.caddy", "change", "content"),
                                  ("/etc/caddy/routes/old.caddy", "remove", ""), haproxy}
    assert ops["misty-owl"] == {("/etc/caddy/routes/api.caddy", "change", "content"),
                                ("/etc/keepalived/notify.sh", "change", "mode"), haproxy}
    assert nodes["brave-panda"]["reload"] == ["caddy", "haproxy"]
    assert nodes["misty-owl"]["reload"] == ["caddy", "haproxy", "keepalived"]


def test_markdown_plan_is_a_pr_comment_with_tables(project, cli):
    r = cli("-C", str(project), "plan", "--offline", "--cluster", "shop", "--format", "markdown")
    assert r.code == 0
    assert r.out.startswith("### dynia plan: `shop` → config v1")
    assert "| add | `/etc/haproxy/haproxy.cfg` |" in r.out
    assert "#### Resource guard" in r.out and "| misty-owl | MASTER | 4096 |" in r.out


def test_table_plan_shows_rolling_order_and_guard(project, cli):
    r = cli("-C", str(project), "plan", "--offline", "--cluster", "shop")
    assert r.code == 0
    assert "rolling order: brave-panda → misty-owl" in r.out
    assert "resource guard" in r.out and "26 file change(s) across 2 node(s)" in r.out


def test_schema_command_prints_json_schema_with_every_top_level_key(cli):
    r = cli("schema")
    schema = json.loads(r.out)
    assert set(schema["properties"]) >= {"version", "name", "provider", "nodes", "domain", "tls", "health",
                                         "guard", "lockdown", "services"}
    assert schema["additionalProperties"] is False


def test_help_offline_plan_and_the_read_commands_import_no_pulumi_module(project):
    probe = ("import sys\nfrom dynia.cli import main\nsys.argv = ['dynia'] + sys.argv[1:]\n"
             "try:\n    main.run()\nexcept SystemExit:\n    pass\n"
             "print('PULUMI=' + ','.join(sorted(m for m in sys.modules if m.split('.')[0].startswith('pulumi'))),"
             " file=sys.stderr)\n")
    # The cache of a provision run on this machine (addresses and pinned host keys): the read
    # commands reach the nodes with it alone (here no node answers: what matters is that they
    # ran without Pulumi). Only a missing or older cache makes them read the state (the engine).
    from dynia.state.cache import ClusterCache
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + "m" * 43
    ClusterCache.of(load_cluster(Project(project), "shop")).write_outputs(
        {"nodes": {n: {"private_ip": f"10.110.0.{i}", "public_ip": f"192.0.2.{i}", "host_key": key}
                   for i, n in ((11, "misty-owl"), (12, "brave-panda"))}, "reserved_ip": "192.0.2.50"})
    for argv in (["--help"], ["-C", str(project), "plan", "--offline", "--cluster", "shop"],
                 ["-C", str(project), "status", "--cluster", "shop"],
                 ["-C", str(project), "drift-check", "--cluster", "shop", "--timeout", "0.5"],
                 ["-C", str(project), "infra", "verify", "--cluster", "shop", "--timeout", "0.5"]):
        proc = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=60)
        line = [ln for ln in proc.stderr.splitlines() if ln.startswith("PULUMI=")]
        assert line == ["PULUMI="], (argv, proc.stderr[-2000:])
        assert proc.stdout.strip() or "error: " in proc.stderr, argv


def test_components_stacks_templates_install_inside_the_dynia_namespace(tmp_path):
    probe = ("import importlib.util as u, dynia.components, dynia.stacks, dynia.templates\n"
             "print(u.find_spec('components') is None and u.find_spec('stacks') is None)\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.stdout.strip() == "True", proc.stderr
