"""The engine's conversation with Pulumi, against RECORDING TEST DOUBLE of the `pulumi`
executable (tests/engine/recording_pulumi_double.py): which commands, for which stacks, in
which order; typed errors and resume; snapshots via export/import. No program runs here —
the programs themselves are covered under mocks (tests/pulumi) and on the lab (test_lab_engine)."""
from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOUBLE = Path(__file__).with_name("recording_pulumi_double.py")


@pytest.fixture
def env(recording_pulumi):
    return recording_pulumi


def dynia(env, *args, extra=None):
    e = {**env["env"], **(extra or {})}
    return subprocess.run([sys.executable, "-m", "dynia", "-C", str(env["proj"]), *args], env=e,
                          capture_output=True, text=True, timeout=120)


def calls(env) -> list[list[str]]:
    if not env["log"].exists():
        return []
    return [json.loads(line)["argv"] for line in env["log"].read_text().splitlines()]


def ops(env, verbs=("preview", "up", "destroy", "refresh")) -> list[tuple[str, str]]:
    out = []
    for argv in calls(env):
        if argv[0] in verbs:
            out.append((argv[0], argv[argv.index("--stack") + 1]))
        elif argv[:2] in (["stack", "export"], ["stack", "import"]):
            out.append((" ".join(argv[:2]), argv[argv.index("--stack") + 1]))
    return out


def test_up_runs_the_three_phases_in_order_on_the_local_backend_and_caches_outputs(env):
    r = dynia(env, "up", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    assert ops(env) == [("up", "shop-provision"), ("up", "shop-infra"), ("up", "shop-apps"), ("up", "shop-releases")]
    ups = [a for a in calls(env) if a[0] == "up"]
    assert all("--event-log" in a and "--exec-kind" in a for a in ups)
    first = json.loads(env["log"].read_text().splitlines()[1])
    assert first["backend"] == f"file://{env['proj'] / '.dynia' / 'state'}" and first["passphrase_set"]
    cached = json.loads((env["proj"] / ".dynia/cache/shop/outputs.json").read_text())
    assert cached["nodes"]["misty-owl"]["public_ip"] == "198.51.100.11" and cached["reserved_ip"] == "203.0.113.50"
    applied = json.loads((env["proj"] / ".dynia/cache/shop/applied.json").read_text())
    assert applied["contentHash"] and set(applied["nodes"]) == {"misty-owl", "brave-panda"}


def test_failed_push_stops_the_phase_with_a_typed_error_and_resume_skips_finished_phases(env):
    fail = {"RECORDING_PULUMI_FAIL": "shop-infra:brave-panda-infra-push:"
                                     "Process exited with status 30: dynia apply: brave-panda infra: health gate failed"}
    r = dynia(env, "up", "--cluster", "shop", extra=fail)
    assert r.returncode == 16, r.stderr
    assert "error: node brave-panda, infra: the health gate failed" in r.stderr
    assert "resume: dynia up --phase infra --cluster shop" in r.stderr
    assert ops(env) == [("up", "shop-provision"), ("up", "shop-infra")]  # apps never ran
    env["log"].unlink()
    r = dynia(env, "up", "--phase", "infra", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    assert ops(env) == [("up", "shop-infra"), ("up", "shop-apps"), ("up", "shop-releases")]


def test_unreachable_node_is_a_network_error_naming_it(env):
    fail = {"RECORDING_PULUMI_FAIL": "shop-infra:misty-owl-infra-push:"
                                     "ssh: dial tcp 198.51.100.11:22: connect: no route to host"}
    r = dynia(env, "infra", "sync", "--cluster", "shop", extra=fail)
    assert r.returncode == 14, r.stderr
    assert "node misty-owl is unreachable over SSH" in r.stderr
    assert ops(env) == [("up", "shop-infra")]


def test_online_plan_previews_every_phase_and_merges_the_file_diff(env):
    r = dynia(env, "plan", "--cluster", "shop", "--json")
    assert r.returncode == 0, r.stderr
    assert ops(env) == [("preview", "shop-provision"), ("preview", "shop-infra"), ("preview", "shop-apps")]
    plan = json.loads(r.stdout)
    assert plan["nodes"] and {row["phase"] for row in plan["resources"]} == {"provision", "infra", "apps"}
    assert all(row["op"] == "create" and row["changed"] == ["stdin"] for row in plan["resources"])


def test_missing_or_old_cli_and_missing_passphrase_are_engine_errors(env):
    r = dynia(env, "up", "--cluster", "shop", extra={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 19 and "the Pulumi CLI is not installed" in r.stderr
    assert "hint: install the Pulumi CLI" in r.stderr
    r = dynia(env, "plan", "--cluster", "shop", extra={"RECORDING_PULUMI_VERSION": "v3.50.0"})
    assert r.returncode == 19 and "the Pulumi CLI is not usable" in r.stderr and "pulumi self-update" in r.stderr
    e = {k: v for k, v in env["env"].items() if k != "PULUMI_CONFIG_PASSPHRASE"}
    proc = subprocess.run([sys.executable, "-m", "dynia", "-C", str(env["proj"]), "up", "--cluster", "shop"], env=e,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 19 and "PULUMI_CONFIG_PASSPHRASE is not set" in proc.stderr
    assert not ops(env)


def test_snapshot_exports_every_phase_and_revert_imports_them_and_restores_the_spec(env):
    r = dynia(env, "state", "snapshot", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    snap = r.stdout.split()[-1]
    assert ops(env) == [("stack export", f"shop-{p}") for p in ("provision", "infra", "apps")]
    snap_dir = env["proj"] / ".dynia/snapshots/shop" / snap
    assert oct(snap_dir.stat().st_mode & 0o777) == "0o700"
    spec = env["proj"] / "clusters/shop.yaml"
    original = spec.read_text()
    spec.write_text(original.replace("port: 8082", "port: 8083"))
    listed = json.loads(dynia(env, "state", "list", "--cluster", "shop", "--json").stdout)
    assert [s["id"] for s in listed] == [snap]
    broken = spec.read_text()
    r = dynia(env, "state", "revert", snap, "--cluster", "shop", extra={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 19 and spec.read_text() == broken  # no CLI: nothing restored, nothing lost
    env["log"].unlink()
    r = dynia(env, "state", "revert", snap, "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    # each import is refreshed at once: droplets deleted since the snapshot must not be believed in
    assert ops(env) == [op for p in ("provision", "infra", "apps")
                        for op in (("stack import", f"shop-{p}"), ("refresh", f"shop-{p}"))]
    assert spec.read_text() == original
    imported = json.loads((env["state"] / "imported-shop-infra.json").read_text())
    assert imported["deployment"]["resources"] == [{"urn": "urn:shop-infra"}]


def test_destroy_takes_a_snapshot_first_then_destroys_apps_infra_provision(env):
    r = dynia(env, "cluster", "destroy", "--cluster", "shop")
    assert r.returncode == 10 and "--yes" in r.stderr and not ops(env)  # no tty, no --yes: nothing happens
    r = dynia(env, "cluster", "destroy", "--cluster", "shop", "--yes")
    assert r.returncode == 0, r.stderr
    assert ops(env) == [("stack export", "shop-provision"), ("stack export", "shop-infra"),
                        ("stack export", "shop-apps"), ("destroy", "shop-apps"), ("destroy", "shop-infra"),
                        ("destroy", "shop-provision")]


def test_snapshots_keep_the_last_five(env):
    for _ in range(7):
        assert dynia(env, "state", "snapshot", "--cluster", "shop").returncode == 0
    assert len(json.loads(dynia(env, "state", "list", "--cluster", "shop", "--json").stdout)) == 5


@pytest.mark.parametrize("argv,expected", [
    (["cluster", "create", "blog", "--region", "ams3", "--domain", "example.com"], [("up", "blog-provision")]),
    (["infra", "sync", "--cluster", "shop"], [("up", "shop-infra")]),
    # No applied record here (a fresh checkout): nothing to compare, so both push phases run.
    (["service", "deploy", "api", "--cluster", "shop"], [("up", "shop-infra"), ("up", "shop-apps"), ("up", "shop-releases")]),
    (["route", "bind", "api", "v2.example.com", "--apply", "--cluster", "shop"],
     [("up", "shop-infra"), ("up", "shop-apps"), ("up", "shop-releases")]),
    (["route", "unbind", "api", "--apply", "--cluster", "shop"], [("up", "shop-infra"), ("up", "shop-apps"), ("up", "shop-releases")]),
    (["cluster", "node", "activate", "brave-panda", "--cluster", "shop"], [("up", "shop-infra"), ("up", "shop-apps"), ("up", "shop-releases")]),
    (["cluster", "node", "add", "--cluster", "shop"],
     [("up", "shop-provision"), ("up", "shop-infra"), ("up", "shop-apps"), ("up", "shop-releases")]),
    (["cluster", "node", "remove", "brave-panda", "--yes", "--cluster", "shop"],
     [("stack export", "shop-provision"), ("stack export", "shop-infra"), ("stack export", "shop-apps"),
      ("up", "shop-infra"), ("up", "shop-apps"), ("up", "shop-releases"), ("up", "shop-provision")]),
    (["cert", "provision", "--dry-run", "--cluster", "shop"], [("preview", "shop-provision")]),
], ids=["cluster-create", "infra-sync", "service-deploy", "route-bind-apply", "route-unbind-apply",
        "node-activate", "node-add", "node-remove", "cert-dry-run"])
def test_each_command_runs_exactly_its_phases(env, argv, expected):
    r = dynia(env, *argv)
    assert r.returncode == 0, r.stderr
    assert ops(env) == expected


def test_node_commands_edit_the_spec_first(env):
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster
    assert dynia(env, "cluster", "node", "add", "--cluster", "shop").returncode == 0
    nodes = load_cluster(Project(env["proj"]), "shop").spec.nodes
    assert len(nodes) == 3 and nodes[:2] == ["misty-owl", "brave-panda"]
    assert dynia(env, "cluster", "node", "activate", nodes[2], "--cluster", "shop").returncode == 0
    assert load_cluster(Project(env["proj"]), "shop").spec.master == nodes[2]
    r = dynia(env, "cluster", "node", "remove", nodes[2], "--yes", "--cluster", "shop")
    assert r.returncode == 10 and "activate another node first" in r.stderr
    assert not (env["proj"] / ".dynia/snapshots/shop").exists()  # refused before any snapshot


EDIT_THEN_APPLY = [
    ["cluster", "node", "add", "--cluster", "shop"],
    ["cluster", "node", "activate", "brave-panda", "--cluster", "shop"],
    ["service", "deploy", "extra", "--compose", "services/api.yml", "--port", "8081", "--cluster", "shop"],
    ["route", "bind", "api", "v2.example.com", "--apply", "--cluster", "shop"],
    ["route", "unbind", "api", "--apply", "--cluster", "shop"],
    ["cluster", "create", "blog", "--region", "ams3", "--domain", "example.com"],
]
MISSING = [
    ("no-pulumi-cli", {"PATH": "/usr/bin:/bin"}, 19, "install the Pulumi CLI"),
    ("no-passphrase", {"PULUMI_CONFIG_PASSPHRASE": ""}, 19, "export PULUMI_CONFIG_PASSPHRASE"),
    ("no-ssh-key", {"DYNIA_SSH_KEY": "/nonexistent/id_ed25519"}, 10, "ssh-keygen"),
    ("no-do-token", {"DIGITALOCEAN_TOKEN": ""}, 13, "export DIGITALOCEAN_TOKEN"),
    ("no-node-token", {"DIGITALOCEAN_NODE_TOKEN": ""}, 10, "export DIGITALOCEAN_NODE_TOKEN"),
    ("node-token-is-the-operators", {"DIGITALOCEAN_NODE_TOKEN": "test-do-token"}, 10, "never reuse DIGITALOCEAN_TOKEN"),
]


def _project_files(proj: Path) -> dict[str, bytes]:
    return {str(p.relative_to(proj)): p.read_bytes() for p in sorted(proj.rglob("*"))
            if p.is_file() and ".dynia" not in p.parts}


@pytest.mark.parametrize("missing,extra,code,hint", MISSING, ids=[m[0] for m in MISSING])
@pytest.mark.parametrize("argv", EDIT_THEN_APPLY, ids=lambda a: "-".join(a[:3]))
def test_commands_that_edit_then_apply_check_the_engine_before_the_first_write(env, argv, missing, extra, code, hint):
    before = _project_files(env["proj"])
    r = dynia(env, *argv, extra=extra)
    assert r.returncode == code, r.stderr
    assert hint in r.stderr.splitlines()[1] and "Traceback" not in r.stderr
    assert _project_files(env["proj"]) == before
    assert not ops(env)


def test_node_add_run_three_times_without_the_pulumi_cli_leaves_the_cluster_at_two_nodes(env):
    spec = env["proj"] / "clusters/shop.yaml"
    before = spec.read_bytes()
    for _ in range(3):
        assert dynia(env, "cluster", "node", "add", "--cluster", "shop", extra={"PATH": "/usr/bin:/bin"}).returncode == 19
    assert spec.read_bytes() == before


def test_revert_refuses_an_unknown_or_escaping_id_and_a_snapshot_whose_spec_is_broken(env):
    spec = env["proj"] / "clusters/shop.yaml"
    before = spec.read_bytes()
    for bad in ("../../../../etc", "20260101T000000Z-manual", "x" * 300):
        r = dynia(env, "state", "revert", bad, "--cluster", "shop")
        assert r.returncode == 11 and "dynia state list" in r.stderr and "Traceback" not in r.stderr
    snap = dynia(env, "state", "snapshot", "--cluster", "shop").stdout.split()[-1]
    snap_spec = env["proj"] / ".dynia/snapshots/shop" / snap / "spec.yaml"
    snap_spec.write_text(snap_spec.read_text().replace("port: 8082", "port: 80"))
    env["log"].unlink()
    r = dynia(env, "state", "revert", snap, "--cluster", "shop")
    assert r.returncode == 10 and "services.admin.port" in r.stderr
    assert spec.read_bytes() == before and not ops(env)  # nothing restored, nothing imported


AFTER_UP = [
    (["route", "bind", "api", "v2.example.com", "--apply", "--cluster", "shop"],
     [("up", "shop-infra"), ("up", "shop-apps"), ("up", "shop-releases")]),
    (["route", "bind", "admin", "ops.example.com", "--apply", "--cluster", "shop"],
     [("up", "shop-infra"), ("up", "shop-apps"), ("up", "shop-releases")]),
    (["route", "unbind", "admin", "--apply", "--cluster", "shop"], [("up", "shop-infra"), ("up", "shop-apps"), ("up", "shop-releases")]),
    (["service", "deploy", "api", "--cluster", "shop"], [("up", "shop-apps"), ("up", "shop-releases")]),
    (["service", "deploy", "jobs", "--compose", "services/jobs.yml", "--port", "8090", "--domain",
      "jobs.example.com", "--placement", "active-only", "--cluster", "shop"], [("up", "shop-infra"), ("up", "shop-apps"), ("up", "shop-releases")]),
]


@pytest.mark.parametrize("argv,expected", AFTER_UP, ids=["bind-all-service", "bind-active-only-service",
                                                         "unbind-active-only-service", "deploy-unchanged-routes",
                                                         "deploy-new-active-only-service"])
def test_an_apply_after_up_runs_every_phase_whose_files_the_edit_changes(env, argv, expected):
    # A domain is a HAProxy host rule (use_backend be_<service>): its change must reach
    # haproxy.cfg through the infra phase, before the apps phase pushes the Caddy route.
    # admin's image stays (every tag resolves before the roll: the example registry holds it)
    jobs = (env["proj"] / "services/admin.yml").read_text().replace("admin:", "jobs:").replace("8082", "8090") \
        .replace("shop-jobs:", "shop-admin:")
    (env["proj"] / "services/jobs.yml").write_text(jobs.replace("memory: 384m", "memory: 128m"))
    assert dynia(env, "up", "--cluster", "shop").returncode == 0
    env["log"].unlink()
    r = dynia(env, *argv)
    assert r.returncode == 0, r.stderr
    assert ops(env) == expected
    applied = json.loads((env["proj"] / ".dynia/cache/shop/applied.json").read_text())
    assert applied["contentHash"] is not None or expected == [("up", "shop-apps"), ("up", "shop-releases")]


def test_destroy_and_node_remove_lift_the_droplets_protection_right_before_deleting(env):
    def sequence():
        out = []
        for argv in calls(env):
            if argv[:2] == ["state", "unprotect"]:
                out.append(("unprotect", " ".join(a for a in argv[2:] if a not in ("--yes", "--stack"))))
            elif argv[0] in ("up", "destroy"):
                out.append((argv[0], argv[argv.index("--stack") + 1]))
        return out

    r = dynia(env, "cluster", "node", "remove", "brave-panda", "--yes", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    urn = "urn:pulumi:shop-provision::dynia::dynia:index:ClusterNode$digitalocean:index/droplet:Droplet::brave-panda-droplet"
    assert sequence() == [("unprotect", f"{urn} shop-provision"), ("up", "shop-infra"), ("up", "shop-apps"), ("up", "shop-releases"),
                          ("up", "shop-provision")]
    env["log"].unlink()
    r = dynia(env, "cluster", "destroy", "--yes", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    assert sequence() == [("unprotect", "--all shop-provision"), ("destroy", "shop-apps"), ("destroy", "shop-infra"),
                          ("destroy", "shop-provision")]


def test_infra_sync_then_apps_leave_a_complete_applied_record_so_the_next_plan_keeps_the_version(env):
    r = dynia(env, "infra", "sync", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    applied = json.loads((env["proj"] / ".dynia/cache/shop/applied.json").read_text())
    assert applied["contentHash"] is None  # the services are not there yet
    r = dynia(env, "up", "--phase", "apps", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    applied = json.loads((env["proj"] / ".dynia/cache/shop/applied.json").read_text())
    assert applied["contentHash"]  # infra then apps: every node has the whole render
    plan = json.loads(dynia(env, "plan", "--offline", "--cluster", "shop", "--json").stdout)
    assert plan["pending"] == 0 and plan["configVersion"] == plan["appliedVersion"] == applied["configVersion"]


def test_the_engine_never_writes_stats_credentials_on_this_machine_once_provision_keeps_them(env):
    r = dynia(env, "up", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    # the provision stack is asked for its outputs (where the credentials live) before any phase
    outputs = [a for a in calls(env) if a[:2] == ["stack", "output"]]
    assert any(a[a.index("--stack") + 1] == "shop-provision" and "--show-secrets" in a for a in outputs)


def test_a_region_change_is_refused_before_anything_runs(env):
    before = _project_files(env["proj"])
    for argv in (["up"], ["plan"]):
        r = dynia(env, *argv, "--cluster", "shop", extra={"RECORDING_PULUMI_REGION": "ams3"})
        assert r.returncode == 10, r.stderr
        assert "provider.region is sgp1 but the cluster's nodes run in ams3" in r.stderr
        assert "set provider.region back to ams3" in r.stderr.splitlines()[1]
    assert not [op for op in ops(env) if op[0] in ("up", "preview")]
    assert _project_files(env["proj"]) == before
    r = dynia(env, "up", "--cluster", "shop", extra={"RECORDING_PULUMI_REGION": "sgp1"})
    assert r.returncode == 0, r.stderr


def test_a_vpc_range_another_vpc_of_the_account_overlaps_is_refused_before_anything_runs(env):
    # the account's second page holds a VPC an older dynia made with the old shared default
    env["account"].answers["/v2/vpcs"] = ["vpcs_page1", "vpcs_page2"]
    before = _project_files(env["proj"])
    for argv in (["up"], ["plan"], ["up", "--phase", "provision"]):
        r = dynia(env, *argv, "--cluster", "shop")
        assert r.returncode == 10, r.stderr
        assert "overlaps the account's VPC 'team-old-cluster' (10.110.0.0/24 in ams3)" in r.stderr
        assert "set provider.vpc_ip_range: 10.161.211.0/24 in clusters/shop.yaml" in r.stderr.splitlines()[1]
    assert not [op for op in ops(env) if op[0] in ("up", "preview")]
    assert _project_files(env["proj"]) == before
    assert {auth for _, auth in env["account"].requests} == {"Bearer test-do-token"}
    # a phase that creates nothing does not ask (for the VPCs: the reserved IP's holder it asks after infra)
    vpcs = lambda: [p for p, _ in env["account"].requests if p.startswith("/v2/vpcs")]  # noqa: E731
    asked = len(vpcs())
    assert dynia(env, "up", "--phase", "infra", "--cluster", "shop").returncode == 0
    assert len(vpcs()) == asked


def test_a_size_digitalocean_does_not_offer_in_the_region_is_refused_before_anything_runs(env):
    spec = env["proj"] / "clusters/shop.yaml"
    spec.write_text(spec.read_text().replace("size: s-2vcpu-4gb", "size: gd-2vcpu-8gb"))
    before = _project_files(env["proj"])
    for argv in (["up"], ["plan"]):
        r = dynia(env, *argv, "--cluster", "shop")
        assert r.returncode == 10, r.stderr
        assert "provider.size gd-2vcpu-8gb is not offered in sgp1 (only in fra1, nyc1, nyc3)" in r.stderr
    assert not [op for op in ops(env) if op[0] in ("up", "preview")]
    assert _project_files(env["proj"]) == before


def test_cluster_create_writes_the_names_range_or_the_next_one_the_account_leaves_free(env):
    # the account already has a VPC on blog's own /24 (vpcs_account.json: "dynia-blog")
    r = dynia(env, "cluster", "create", "blog", "--region", "sgp1", "--domain", "example.com")
    assert r.returncode == 0, r.stderr
    spec = (env["proj"] / "clusters/blog.yaml").read_text()
    assert "vpc_ip_range: 10.190.150.0/24" in spec  # 10.190.149.0/24 is taken
    assert ("up", "blog-provision") in ops(env)


VPC_ID = "9d2c7a1e-4b3f-4e8a-b1c2-d3e4f5a6b7c8"  # tests/fixtures/digitalocean/vpcs_shop_default.json
PROVISIONED = [
    {"urn": "urn:pulumi:shop-provision::dynia::pulumi:pulumi:Stack::dynia-shop-provision"},
    {"urn": "urn:pulumi:shop-provision::dynia::dynia:index:Network$digitalocean:index/vpc:Vpc::shop-vpc",
     "type": "digitalocean:index/vpc:Vpc", "id": VPC_ID},
    {"urn": "urn:pulumi:shop-provision::dynia::dynia:index:ClusterNode$digitalocean:index/droplet:Droplet::"
            "misty-owl-droplet", "type": "digitalocean:index/droplet:Droplet", "id": "1001", "protect": True}]


def test_destroy_keeps_a_vpc_digitalocean_made_the_regions_default_says_so_and_succeeds(env):
    env["account"].answers["/v2/vpcs"] = ["vpcs_shop_default"]
    # the double refuses to delete that VPC, as DigitalOcean does, unless the state retains it
    extra = {"RECORDING_PULUMI_PROVISION_RESOURCES": json.dumps(PROVISIONED), "RECORDING_PULUMI_UNDELETABLE": VPC_ID}
    r = dynia(env, "cluster", "destroy", "--cluster", "shop", "--yes", extra=extra)
    assert r.returncode == 0, r.stderr
    assert ("kept VPC dynia-shop (10.110.0.0/24): DigitalOcean made it the default network of sgp1, which cannot "
            "be deleted") in " ".join(r.stdout.split())
    imported = json.loads((env["state"] / "imported-shop-provision.json").read_text())["deployment"]["resources"]
    assert [x.get("id") for x in imported if x.get("retainOnDelete")] == [VPC_ID]
    assert len(imported) == len(PROVISIONED)  # nothing else of the state changed
    sequence = ops(env)
    assert sequence.index(("stack import", "shop-provision")) < sequence.index(("destroy", "shop-provision"))
    assert sequence[-3:] == [("destroy", "shop-apps"), ("destroy", "shop-infra"), ("destroy", "shop-provision")]


def test_destroy_of_a_cluster_whose_vpc_is_not_a_default_changes_no_state(env):
    env["account"].answers["/v2/vpcs"] = ["vpcs_account"]
    extra = {"RECORDING_PULUMI_PROVISION_RESOURCES": json.dumps(PROVISIONED)}
    r = dynia(env, "cluster", "destroy", "--cluster", "shop", "--yes", extra=extra)
    assert r.returncode == 0, r.stderr
    assert "kept VPC" not in r.stdout and ("stack import", "shop-provision") not in ops(env)


# --- the roll's progress while `up` runs (dynia.cli.progress, fed by the double's events) ----

_TIMES = re.compile(r"\+\d+\.\ds|after \d+\.\ds")


def test_up_without_a_terminal_prints_one_line_per_push_state_change(env):
    fail = {"RECORDING_PULUMI_FAIL": "shop-infra:misty-owl-infra-push:"
                                     "Process exited with status 30: dynia apply: misty-owl infra: health gate failed"}
    r = dynia(env, "up", "--cluster", "shop", extra=fail)
    assert r.returncode == 16, r.stderr
    lines = [_TIMES.sub(lambda m: "after T" if m.group().startswith("after") else "+T", ln)
             for ln in r.stdout.splitlines()]
    assert lines == [
        "phase provision: starting",
        "phase infra: starting",
        "+T infra brave-panda infra: pushing",
        "+T infra brave-panda infra: validating",
        "+T infra brave-panda infra: reloading",
        "+T infra brave-panda infra: gating (try 1 of 3)",
        "+T infra brave-panda infra: ok after T",
        "+T infra misty-owl infra: pushing",
        "+T infra misty-owl infra: validating",
        "+T infra misty-owl infra: reloading",
        "+T infra misty-owl infra: gating (try 1 of 3)",
        "+T infra misty-owl infra: rolling back",
        "+T infra misty-owl infra: rolled back (health gate failed) after T",
    ]
    assert "error: node misty-owl, infra: the health gate failed" in r.stderr


def test_up_json_prints_nothing_but_the_json(env):
    r = dynia(env, "up", "--cluster", "shop", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["phases"] == ["provision", "infra", "apps"]


def test_up_on_a_terminal_shows_the_live_table_of_every_node_and_layer(env):
    """What a person sees: `dynia up` under a pseudo-terminal draws the live table (no plain
    event lines), ending with every push ok."""
    import pty
    import select

    master, slave = pty.openpty()
    e = {**env["env"], "TERM": "xterm", "COLUMNS": "120", "LINES": "40"}
    proc = subprocess.Popen([sys.executable, "-m", "dynia", "-C", str(env["proj"]), "up", "--cluster", "shop"],
                            env=e, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", b"".join(chunks).decode(errors="replace"))
    final = screen.split("dynia up: apps")[-1]
    for node in ("brave-panda", "misty-owl"):
        assert re.search(rf"infra[\s│]+{node}[\s│]+infra[\s│]+ok[\s│]+\d+\.\ds", final), final
        for layer in ("service:admin", "service:api", "service:web"):
            assert re.search(rf"apps[\s│]+{node}[\s│]+{re.escape(layer)}[\s│]+ok[\s│]+\d+\.\ds", final), final
    assert "+0." not in screen and "applied: provision, infra, apps" in screen


def test_online_plan_shows_a_replace_once_with_its_reason_and_never_a_secret_value(env):
    secret = "stats-password-hunter2"
    extra = {"RECORDING_PULUMI_PREVIEW_SECRET": secret}
    r = dynia(env, "plan", "--cluster", "shop", "--json", extra=extra)
    assert r.returncode == 0, r.stderr
    [row] = [x for x in json.loads(r.stdout)["resources"] if x["resource"] == "misty-owl-infra-push"]
    assert (row["op"], row["replaceBecause"]) == ("replace", ["triggers[0]"])
    assert {p["path"]: (p["old"], p["new"]) for p in row["properties"]} == {
        "connection.host": ('"10.110.0.9"', '"10.110.0.11"'), "stdin": ("[secret]", "[secret]"),
        "triggers[0]": ('"a9eac0c5"', '"6c0d5dcd"')}
    table = dynia(env, "plan", "--cluster", "shop", extra=extra)
    assert table.returncode == 0, table.stderr
    assert "replaced because triggers[0] changed" in table.stdout and "stdin: [secret] → [secret]" in table.stdout
    for out in (r, table):
        assert secret not in out.stdout + out.stderr


@pytest.fixture
def upgraded(env):
    """A cluster whose droplet misty-owl was created before dynia pinned host keys: the provision
    stack's `nodes` output has no host key for it (the recording double, with that one answer
    rewritten)."""
    wrapper = env["bin"] / "legacy_outputs.py"
    wrapper.write_text(
        "import json, subprocess, sys\n"
        f"r = subprocess.run([sys.executable, {str(DOUBLE)!r}, *sys.argv[1:]], capture_output=True, text=True)\n"
        "out = r.stdout\n"
        "words = [a for a in sys.argv[1:] if not a.startswith('--non-interactive')]\n"
        "if words[:2] == ['stack', 'output'] and any(a.endswith('-provision') for a in words):\n"
        "    data = json.loads(out)\n"
        "    for k in ('host_key', 'host_key_source'):\n"
        "        data['nodes']['misty-owl'].pop(k)\n"
        "    out = json.dumps(data) + '\\n'\n"
        "sys.stdout.write(out); sys.stderr.write(r.stderr); sys.exit(r.returncode)\n")
    (env["bin"] / "pulumi").write_text(f"#!/bin/sh\nexec {sys.executable} {wrapper} \"$@\"\n")
    return env


def _host_keys_config(env) -> list[list[str]]:
    return [argv for argv in calls(env) if argv[:1] == ["config"] and any("hostKeys" in a for a in argv)]


def test_plan_of_an_upgraded_cluster_succeeds_and_says_which_node_to_pin_and_how(upgraded):
    # consent given: still, a plan makes no first-use connection and records no pin
    r = dynia(upgraded, "plan", "--cluster", "shop", "--json", extra={"DYNIA_PIN_FIRST_USE": "1"})
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout)  # the warning stays off stdout
    assert "warning: misty-owl: created before dynia pinned SSH host keys, not pinned yet" in r.stderr
    assert "DYNIA_PIN_FIRST_USE=1 dynia up --phase provision --cluster shop" in r.stderr
    assert "cannot read the SSH host key" not in r.stderr and not _host_keys_config(upgraded)


def test_destroy_of_an_upgraded_cluster_demands_no_pin(upgraded):
    r = dynia(upgraded, "cluster", "destroy", "--cluster", "shop", "--yes")
    assert r.returncode == 0, r.stderr
    assert ("destroy", "shop-provision") in ops(upgraded) and not _host_keys_config(upgraded)


def test_up_of_an_upgraded_cluster_without_consent_is_refused_with_the_command_to_run(upgraded):
    r = dynia(upgraded, "up", "--cluster", "shop")
    assert r.returncode != 0
    assert "misty-owl: created before dynia pinned SSH host keys" in r.stderr
    assert "DYNIA_PIN_FIRST_USE=1 dynia up --phase provision --cluster shop" in r.stderr
    assert ("up", "shop-provision") not in ops(upgraded)


def test_read_commands_on_a_fresh_checkout_reach_the_nodes_from_the_provision_stacks_outputs(env):
    # A teammate's checkout (or a CI job): the spec, the credentials, the state backend; no .dynia/cache.
    cache = env["proj"] / ".dynia/cache/shop"
    assert not cache.exists()
    r = dynia(env, "drift-check", "--cluster", "shop", "--json", "--timeout", "1")
    assert "never provisioned" not in r.stderr and "dynia up" not in r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert r.returncode == 14 and report["unreachable"] == ["misty-owl", "brave-panda"]
    assert all("not provisioned" not in n["error"] for n in report["nodes"])
    # The addresses and the pinned host keys are the provision stack's, kept for the next command.
    outputs = json.loads((cache / "outputs.json").read_text())
    assert {n: a["public_ip"] for n, a in outputs["nodes"].items()} == {
        "misty-owl": "198.51.100.11", "brave-panda": "198.51.100.12"}
    known = (cache / "known_hosts").read_text()
    assert "198.51.100.11 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAImmm" in known
    # Read only: the stack is selected, never created.
    assert ["stack", "output"] in [a[:2] for a in calls(env)]
    assert not [a for a in calls(env) if "init" in a or "--create" in a]
    # Now current, the cache answers alone: no Pulumi for the next read.
    env["log"].unlink()
    r = dynia(env, "status", "--cluster", "shop", "--json")
    assert r.returncode == 4 and [n["address"] for n in json.loads(r.stdout)["nodes"]] == [
        "198.51.100.11", "198.51.100.12"]
    assert calls(env) == []


def test_a_read_command_without_the_cache_or_the_pulumi_cli_names_what_is_missing_not_up(env):
    r = dynia(env, "drift-check", "--cluster", "shop", "--timeout", "1", extra={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 19, r.stderr
    assert "no node addresses on this machine, and its state could not be read" in r.stderr
    assert "install the Pulumi CLI" in r.stderr and "dynia up" not in r.stderr
    # The CLI is what reads the state here: the message says so, not "needed to plan and apply".
    assert "the Pulumi CLI is not installed (needed to plan, apply and read the cluster's state)" in r.stderr


@pytest.mark.parametrize("state", ["1", "no-stack"], ids=["no-outputs", "no-stack"])
def test_a_cluster_whose_provision_stack_holds_no_nodes_was_never_provisioned(env, state):
    r = dynia(env, "status", "--cluster", "shop", extra={"RECORDING_PULUMI_NO_OUTPUTS": state})
    assert r.returncode == 11, r.stderr
    assert "was never provisioned (its state holds no nodes)" in r.stderr
    assert "hint: run `dynia up --cluster shop`" in r.stderr


def test_a_wrong_passphrase_is_an_engine_error_never_read_as_no_certificate_order(env):
    # The provision stack's state was made with another passphrase: reading its `acme` output
    # and its dynia:acme config fails. Read as "nothing saved", the engine would make a
    # placeholder and the next run would place a second order with the CA.
    spec = env["proj"] / "clusters/shop.yaml"
    spec.write_text(spec.read_text().replace("  mode: origin\n", "  mode: letsencrypt\n  acme_directory: staging\n"))
    other = {"RECORDING_PULUMI_STACK_PASSPHRASE": "shop-provision=the-state-s-own"}
    r = dynia(env, "cert", "provision", "--dry-run", "--json", "--cluster", "shop", extra=other)
    assert r.returncode == 19, (r.returncode, r.stdout, r.stderr)
    assert "reading the state of stack shop-provision failed: error: incorrect passphrase" in r.stderr
    assert "PULUMI_CONFIG_PASSPHRASE must be the passphrase the state was made with" in r.stderr
    assert r.stdout == "" and "Traceback" not in r.stderr


REVERT_FAILS = [
    ("corrupt-export", {}, 11, "shop/{snap}/infra.json"),
    ("not-an-export", {}, 11, "shop/{snap}/apps.json is not a stack export"),
    ("compose-file-gone", {}, 10, "services/api.yml"),   # the snapshot's spec would not load
    ("no-pulumi-cli", {"PATH": "/usr/bin:/bin"}, 19, "install the Pulumi CLI"),
    ("no-passphrase", {"PULUMI_CONFIG_PASSPHRASE": ""}, 19, "export PULUMI_CONFIG_PASSPHRASE"),
    ("no-ssh-key", {"DYNIA_SSH_KEY": "/nonexistent/id_ed25519"}, 10, "ssh-keygen"),
    ("no-do-token", {"DIGITALOCEAN_TOKEN": ""}, 13, "export DIGITALOCEAN_TOKEN"),
]


def _snapshot_then_edit(env) -> tuple[str, Path, bytes]:
    """A snapshot, then a spec edit after it: (its id, the spec file, the edited spec's bytes)."""
    r = dynia(env, "state", "snapshot", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    spec = env["proj"] / "clusters/shop.yaml"
    spec.write_text(spec.read_text().replace("port: 8082", "port: 8083"))
    env["log"].unlink()
    return r.stdout.split()[-1], spec, spec.read_bytes()


@pytest.mark.parametrize("fails,extra,code,said", REVERT_FAILS, ids=[f[0] for f in REVERT_FAILS])
def test_a_revert_that_fails_before_importing_leaves_the_spec_byte_identical(env, fails, extra, code, said):
    snap, spec, before = _snapshot_then_edit(env)
    if fails == "corrupt-export":
        (env["proj"] / ".dynia/snapshots/shop" / snap / "infra.json").write_text('{"version": 3, "deployment": [')
    if fails == "not-an-export":   # JSON, but no deployment: found before the first import
        (env["proj"] / ".dynia/snapshots/shop" / snap / "apps.json").write_text('{"version": 3, "deployment": []}')
    if fails == "compose-file-gone":
        (env["proj"] / "services/api.yml").unlink()
    r = dynia(env, "state", "revert", snap, "--cluster", "shop", extra=extra)
    assert r.returncode == code, r.stderr
    assert said.format(snap=snap) in r.stderr and "Traceback" not in r.stderr
    assert spec.read_bytes() == before
    assert not ops(env)  # nothing imported


@pytest.mark.parametrize("step", ["import", "refresh"])
def test_a_revert_stopped_midway_leaves_the_spec_byte_identical_and_says_where_the_stacks_are(env, step):
    snap, spec, before = _snapshot_then_edit(env)
    # The infra stack's state was made with its own passphrase (import fails), or its refresh
    # is refused by the provider's API (imported, not refreshed).
    fail = ({"RECORDING_PULUMI_STACK_PASSPHRASE": "shop-infra=its-own"} if step == "import"
            else {"RECORDING_PULUMI_REFRESH_FAIL": "shop-infra"})
    r = dynia(env, "state", "revert", snap, "--cluster", "shop", extra=fail)
    assert r.returncode == 19, r.stderr
    assert spec.read_bytes() == before
    infra = ("infra holds the snapshot's state, not refreshed yet" if step == "refresh"
             else "infra is as it was (its import failed)")
    first = r.stderr.splitlines()[0]
    assert first.startswith(f"error: revert to {snap} stopped at the {step} of phase infra: ")
    assert first.endswith(f" — provision holds the snapshot's state; {infra}; apps is as it was; the spec was not "
                          "changed"), first
    assert f"resume: dynia state revert {snap} --cluster shop" in r.stderr
    assert ("incorrect passphrase" if step == "import" else "Unable to authenticate you") in first
    done = [("stack import", "shop-provision"), ("refresh", "shop-provision")]
    assert ops(env) == done + ([("stack import", "shop-infra"), ("refresh", "shop-infra")] if step == "refresh" else [])
    # The resume command, once the cause is fixed, finishes it: every phase, then the spec.
    env["log"].unlink()
    r = dynia(env, "state", "revert", snap, "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    assert ops(env) == [op for p in ("provision", "infra", "apps")
                        for op in (("stack import", f"shop-{p}"), ("refresh", f"shop-{p}"))]
    assert spec.read_bytes() == (env["proj"] / ".dynia/snapshots/shop" / snap / "spec.yaml").read_bytes() != before


def test_revert_works_when_the_current_spec_no_longer_loads(env):
    snap, spec, _ = _snapshot_then_edit(env)
    spec.write_text("name: [shop\n")   # not even YAML: the revert never reads it
    r = dynia(env, "state", "revert", snap, "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    assert spec.read_bytes() == (env["proj"] / ".dynia/snapshots/shop" / snap / "spec.yaml").read_bytes()


# --- data volumes on destroy (issue 23.3) ------------------------------------------------------

VOLUME_ID = "506f78a4-e098-11e5-ad9f-000f53306ae1"   # tests/fixtures/digitalocean/volumes_shop_admin.json
WITH_VOLUME = PROVISIONED + [
    {"urn": "urn:pulumi:shop-provision::dynia::dynia:index:DataVolume$digitalocean:index/volume:Volume::"
            "shop-admin-data-volume", "type": "digitalocean:index/volume:Volume", "id": VOLUME_ID, "protect": True,
     "retainOnDelete": True, "outputs": {"name": "dynia-shop-admin", "size": 10, "region": "sgp1"}}]


def _with_data(env):
    spec = env["proj"] / "clusters/shop.yaml"
    spec.write_text(spec.read_text() + "    data: {size_gb: 10, mount: /srv/admin}\n")


def test_destroy_keeps_the_data_volumes_and_says_what_it_kept(env):
    env["account"].answers["/v2/vpcs"] = ["vpcs_account"]
    _with_data(env)
    extra = {"RECORDING_PULUMI_PROVISION_RESOURCES": json.dumps(WITH_VOLUME)}
    r = dynia(env, "cluster", "destroy", "--cluster", "shop", "--yes", extra=extra)
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stdout.split())
    assert f"kept volume dynia-shop-admin (10 GiB in sgp1, id {VOLUME_ID}): its data outlives the cluster" in said
    # The program retains it already: the state is left as it is, destroy only forgets the volume.
    assert ("stack import", "shop-provision") not in ops(env)
    assert ops(env)[-1] == ("destroy", "shop-provision")


def test_destroy_with_delete_data_and_the_cluster_name_deletes_the_volumes(env):
    env["account"].answers["/v2/vpcs"] = ["vpcs_account"]
    extra = {"RECORDING_PULUMI_PROVISION_RESOURCES": json.dumps(WITH_VOLUME)}
    r = dynia(env, "cluster", "destroy", "--cluster", "shop", "--yes", "--delete-data", "shop", extra=extra)
    assert r.returncode == 0, r.stderr
    assert "deleted volume dynia-shop-admin (10 GiB) and its data" in " ".join(r.stdout.split())
    imported = json.loads((env["state"] / "imported-shop-provision.json").read_text())["deployment"]["resources"]
    assert [x.get("id") for x in imported if x.get("type") == "digitalocean:index/volume:Volume"
            and x.get("retainOnDelete") is False] == [VOLUME_ID]
    sequence = ops(env)
    assert sequence.index(("stack import", "shop-provision")) < sequence.index(("destroy", "shop-provision"))


def test_delete_data_naming_another_cluster_destroys_nothing(env):
    extra = {"RECORDING_PULUMI_PROVISION_RESOURCES": json.dumps(WITH_VOLUME)}
    r = dynia(env, "cluster", "destroy", "--cluster", "shop", "--yes", "--delete-data", "shopp", extra=extra)
    assert r.returncode == 10, (r.returncode, r.stderr)
    assert "--delete-data names 'shopp', not this cluster (shop): nothing was destroyed" in r.stderr
    assert "--delete-data shop" in r.stderr
    assert not [o for o in ops(env) if o[0] in ("destroy", "stack import")]


def test_up_resolves_every_tag_once_renders_them_by_digest_and_records_a_release(env, example_registry):
    # issue 27.1/27.2: the tags resolved from this machine (a real registry, DYNIA_REGISTRY_API_URL),
    # the release recorded in the ledger stack after the apps phase, this machine's renders pinned.
    r = dynia(env, "up", "--cluster", "shop", "--json")
    assert r.returncode == 0, r.stderr
    release = json.loads(r.stdout)["release"]
    assert release["id"] == 1 and release["command"] == "up" and release["configVersion"] >= 1
    shop = {"ghcr.io/example/shop-api:2.0.1", "redis:7-alpine", "ghcr.io/example/shop-web:1.4.2",
            "ghcr.io/example/shop-admin:0.9.0"}
    pinned = {ref: d for svc in release["services"].values() for ref, d in svc["images"].items()}
    assert pinned == {ref: example_registry["digests"][ref] for ref in shop}
    assert sorted(release["unanswered"]) == ["brave-panda", "misty-owl"]   # TEST-NET nodes never answer
    images = json.loads((env["proj"] / ".dynia/cache/shop/images.json").read_text())["images"]
    assert images == pinned
    r = dynia(env, "render", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    compose = next((env["proj"] / "deploy-config" / "shop").rglob("api/docker-compose.yml*")).read_text()
    assert f"ghcr.io/example/shop-api@{pinned['ghcr.io/example/shop-api:2.0.1']}" in compose
