"""drift-check's reader and classification, and repair's plan: the node script run for real on a
directory laid out like a node, the parser on recorded node output (tests/facts/drift/), each
kind of drift from one change, the --json schema and exit codes, and which pushes a repair makes."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dynia.operations import drift as D
from dynia.operations import repair as R
from dynia.errors import EXIT_CODES, EXIT_DRIFT, DyniaError
from dynia.nodes import drift_facts as DF
from dynia.nodes.gather import NodeFacts
from dynia.paths import PATHS
from dynia.state.secrets import push_secrets
from dynia.render.rendered import render_cluster
from dynia.state.store import Project
from dynia.spec.load import load_cluster

from ..needs import need

FIXTURES = Path(__file__).resolve().parents[1] / "facts" / "drift"
NODE = "misty-owl"


@pytest.fixture
def lab(project):
    c = load_cluster(Project(project), "lab")
    return c, render_cluster(c)


def _record(c, rendering, node=NODE) -> dict:
    """The node's applied.json as the apply script writes it (hashes of the pushed values)."""
    values = push_secrets(c.project, c.name, c.spec)
    layers: dict = {}
    for f in rendering.files[node]:
        layers.setdefault(f.layer, {})[f.target] = {"sha256": f.sha256, "mode": f"{f.mode:04o}", "owner": f.owner,
                                                    "component": f.component}
    for s in rendering.slots[node]:
        layers.setdefault(s.layer, {})[s.target] = {"sha256": hashlib.sha256(values[s.secret]).hexdigest(),
                                                    "mode": "0600", "owner": s.owner, "component": s.component}
    return {"configVersion": rendering.config_version, "layers": layers}


def _lay_out(root: Path, c, rendering, node=NODE) -> None:
    """What a healthy node holds: every rendered file and filled slot with its mode."""
    values = push_secrets(c.project, c.name, c.spec)
    items = [(f.target, f.content, f.mode) for f in rendering.files[node]]
    items += [(s.target, values[s.secret], s.mode) for s in rendering.slots[node]]
    for target, content, mode in items:
        path = root / target.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.chmod(path, mode)


def _read(root: Path, rendering, engine=None) -> dict:
    """Run the drift fact's real command under sh against `root`."""
    fact = D.fact_for(rendering, type("P", (), {"container_engine": engine})())
    r = subprocess.run(["sh", "-c", fact.command], capture_output=True, text=True,
                       env=dict(os.environ, DYNIA_ROOT=str(root)))
    return fact.process(r.stdout, r.returncode)


def _report(c, rendering, answer: dict, record: dict | None, vrrp="BACKUP") -> D.DriftReport:
    """The report of NODE alone (the other nodes' files differ: keepalived priorities, addresses)."""
    answers = {NODE: NodeFacts(NODE, {"drift": answer, "applied": record, "vrrp": {"role": vrrp}})}
    report = D.assemble(c, rendering, answers, [NODE])
    return D.DriftReport(c.name, [n for n in report.nodes if n.node == NODE])


def _kinds(report, node=NODE) -> list[tuple[str, str]]:
    return sorted((d.kind, d.target) for n in report.nodes if n.node == node for d in n.drift)


# --- normalization ------------------------------------------------------------------------

def test_whitespace_and_line_endings_normalize_equal_but_joined_lines_do_not():
    base = b"a {\n    reverse_proxy x\n}\n"
    assert DF.normalize(base) == DF.normalize(b"a {\r\n\treverse_proxy   x  \r\n\r\n}")
    assert DF.normalize(base) != DF.normalize(b"a { reverse_proxy x\n}\n")
    assert DF.normalize(base) != DF.normalize(b"a {\n    reverse_proxy y\n}\n")


# --- the node script, for real ---------------------------------------------------------------

def test_a_node_holding_exactly_the_render_has_no_drift(tmp_path, lab):
    c, rendering = lab
    _lay_out(tmp_path, c, rendering)
    report = _report(c, rendering, _read(tmp_path, rendering), _record(c, rendering))
    assert _kinds(report) == []
    assert report.exit_code == 0 and report.drifted == []


def test_each_change_on_a_node_is_reported_as_its_kind(tmp_path, lab):
    c, rendering = lab
    _lay_out(tmp_path, c, rendering)
    caddyfile = tmp_path / PATHS.caddyfile.lstrip("/")
    caddyfile.write_bytes(caddyfile.read_bytes().replace(b"\n", b"  \r\n"))          # whitespace only
    haproxy = tmp_path / PATHS.haproxy_cfg.lstrip("/")
    haproxy.write_bytes(haproxy.read_bytes() + b"\n# maxconn 1\nfrontend x\n")       # real content
    os.chmod(tmp_path / PATHS.notify.lstrip("/"), 0o755)                             # mode
    (tmp_path / PATHS.keepalived_conf.lstrip("/")).unlink()                          # missing
    os.chmod(tmp_path / PATHS.origin_pem.lstrip("/"), 0o644)                         # a slot's mode
    routes = tmp_path / PATHS.caddy_routes.lstrip("/")
    (routes / "stray.caddy").write_text("stray.lab.example { respond 200 }\n")       # leftover route
    (routes / "Not A Name.caddy").write_text("x\n")                                  # not dynia's name
    gone = tmp_path / PATHS.compose_file("shop").lstrip("/")
    gone.parent.mkdir(parents=True)
    gone.write_text("services: {}\n")                                                # removed service
    report = _report(c, rendering, _read(tmp_path, rendering), _record(c, rendering))
    node = next(n for n in report.nodes if n.node == NODE)
    by = {(d.kind, d.target): d for d in node.drift}
    assert sorted(by) == sorted([
        ("content", PATHS.caddyfile), ("content", PATHS.haproxy_cfg), ("mode", PATHS.notify),
        ("missing", PATHS.keepalived_conf), ("mode", PATHS.origin_pem),
        ("leftover", f"{PATHS.caddy_routes}/stray.caddy"), ("leftover", f"{PATHS.caddy_routes}/Not A Name.caddy"),
        ("leftover", PATHS.compose_file("shop"))])
    assert by[("content", PATHS.caddyfile)].whitespace_only is True
    assert by[("content", PATHS.haproxy_cfg)].whitespace_only is False
    assert by[("mode", PATHS.notify)].expected == "0700" and by[("mode", PATHS.notify)].actual == "0755"
    stray = by[("leftover", f"{PATHS.caddy_routes}/stray.caddy")]
    assert stray.layer == "service:stray" and stray.removal
    assert by[("leftover", f"{PATHS.caddy_routes}/Not A Name.caddy")].layer is None
    assert node.layers == ["infra", "service:shop", "service:stray"]
    assert report.exit_code == EXIT_DRIFT


def test_a_changed_secret_is_reported_without_its_hash(tmp_path, lab):
    c, rendering = lab
    _lay_out(tmp_path, c, rendering)
    (tmp_path / PATHS.haproxy_env.lstrip("/")).write_text("DYNIA_STATS_USER=someone-else\n")
    os.chmod(tmp_path / PATHS.haproxy_env.lstrip("/"), 0o600)
    report = _report(c, rendering, _read(tmp_path, rendering), _record(c, rendering))
    (d,) = [d for n in report.nodes if n.node == NODE for d in n.drift]
    assert (d.kind, d.target, d.expected, d.actual) == ("content", PATHS.haproxy_env, None, None)
    assert "someone-else" not in json.dumps(report.as_dict())


def test_the_reader_never_sends_a_secret_or_a_slots_normalized_hash(tmp_path, lab):
    c, rendering = lab
    _lay_out(tmp_path, c, rendering)
    answer = _read(tmp_path, rendering)
    command = D.fact_for(rendering, type("P", (), {"container_engine": "podman"})()).command
    values = push_secrets(c.project, c.name, c.spec)
    for value in values.values():
        assert value.decode().strip() not in command
    assert "normalized" not in answer["files"][PATHS.origin_pem]
    assert "normalized" in answer["files"][PATHS.caddyfile]


# --- recorded node output -----------------------------------------------------------------------

CASES = sorted(FIXTURES.glob("*.recorded"))


def _recorded(name: str) -> tuple[dict, dict, dict]:
    """(the recording: the node's raw answer, the fact the reader parses from it, what is
    expected of it as stated by hand in NAME.expected — never the product's own output)."""
    data = json.loads((FIXTURES / f"{name}.recorded").read_text())
    expected = FIXTURES / f"{name}.expected"
    assert expected.is_file(), f"state what {name}.recorded must parse and classify to, by hand, in {expected.name}"
    return data, DF.parse_drift(data["output"], data["exit_status"]), json.loads(expected.read_text())


def test_drift_fact_has_recorded_output():
    assert {p.stem for p in CASES} >= {"lab-node-clean", "lab-node-drifted", "no-python", "garbage"}


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_drift_fact_parses_its_recorded_output_as_stated_by_hand(case):
    data, fact, want = _recorded(case.stem)
    assert not {"fact", "kinds"} & set(data), "a recording holds the node's answer, not what dynia made of it"
    if "fact" in want:
        assert fact == want["fact"]
        return
    containers = fact["containers"]
    assert (containers["engine"], containers["error"]) == ("podman", None)
    assert sorted([c["name"], c["service"]] for c in containers["running"]) == want["running"]
    ours = set(containers["images"].values())
    assert sorted(c["name"] for c in containers["running"] if c["image"] not in ours) == want["foreign_images"]
    assert fact["routes"] == {PATHS.caddy_routes: want["routes"]}
    assert [d["name"] for d in fact["composeDirs"][PATHS.compose_dir] if d["composeFile"]] == want["composeDirs"]
    assert fact["files"] and sorted(t for t, f in fact["files"].items() if not f["exists"]) == want["missing"]


@pytest.mark.parametrize("name", ["lab-node-clean", "lab-node-drifted"])
def test_recorded_lab_node_containers_and_leftovers_classify_as_stated(lab, name):
    """Containers and directory listings do not depend on the templates, so the recording keeps
    proving them however the rendered files change (their hashes are checked by the lab test)."""
    c, rendering = lab
    data, fact, want = _recorded(name)
    found, error = D.images(c.spec, rendering, data["node"], fact)
    found += D.leftovers(c.spec, fact)
    assert error is None
    assert sorted([d.kind, d.target] for d in found) == want["kinds"]


# --- pure classification -------------------------------------------------------------------------

def _file(rendering, target):
    return next(f for f in rendering.files[NODE] if f.target == target)


def test_lifted_immutable_bit_is_drift_only_under_lockdown(lab):
    _, rendering = lab
    f = _file(rendering, PATHS.caddyfile)
    live = {"exists": True, "type": "file", "sha256": f.sha256, "mode": "0644", "owner": "root:root",
            "immutable": False}
    assert D.classify_file(f, live, None, lockdown=False) == []
    (d,) = D.classify_file(f, live, None, lockdown=True)
    assert d.kind == "immutable"
    assert D.classify_file(f, dict(live, immutable=None), None, lockdown=True) == []  # unknown: not claimed


def test_owner_and_type_drift(lab):
    _, rendering = lab
    f = _file(rendering, PATHS.caddyfile)
    live = {"exists": True, "type": "file", "sha256": f.sha256, "mode": "0644", "owner": "caddy:caddy"}
    assert [d.kind for d in D.classify_file(f, live, None, False)] == ["owner"]
    assert [d.kind for d in D.classify_file(f, {"exists": True, "type": "symlink"}, None, False)] == ["type"]


def test_a_render_newer_than_the_applied_record_is_pending_not_drift(lab):
    _, rendering = lab
    f = _file(rendering, PATHS.caddyfile)
    old = "0" * 64
    live = {"exists": True, "type": "file", "sha256": old, "mode": "0644", "owner": "root:root"}
    record = {"layers": {"infra": {PATHS.caddyfile: {"sha256": old}}}}
    assert [d.kind for d in D.classify_file(f, live, record, False)] == ["pending"]
    edited = dict(live, sha256="1" * 64)
    assert [d.kind for d in D.classify_file(f, edited, record, False)] == ["pending", "content"]


def test_container_on_another_image_and_containers_of_removed_services(lab):
    c, rendering = lab
    answer = {"files": {}, "containers": {
        "engine": "podman", "error": None,
        "images": {"localhost/dynia-lab-app": "a" * 64},
        "running": [{"name": "dynia-api_api_1", "image": "b" * 64, "project": "dynia-api", "service": "api"},
                    {"name": "dynia-web_web_1", "image": "sha256:" + "a" * 64, "project": "dynia-web",
                     "service": "web"},
                    {"name": "dynia-old_old_1", "image": "c" * 64, "project": "dynia-old", "service": "old"},
                    {"name": "unrelated", "image": "d" * 64, "project": "someone", "service": "x"}]}}
    found, error = D.images(c.spec, rendering, NODE, answer)
    assert error is None
    assert [(d.kind, d.target, d.layer, d.removal) for d in found] == [
        ("image", "container:dynia-api_api_1", "service:api", False),
        ("leftover", "container:dynia-old_old_1", "service:old", True)]
    assert found[0].expected == "a" * 64 and found[0].actual == "b" * 64


def test_unreachable_node_is_a_row_with_its_error_and_a_network_exit(lab):
    c, rendering = lab
    answers = {n: NodeFacts(n, error="cannot reach node") for n in c.spec.nodes}
    report = D.assemble(c, rendering, answers, ["misty-owl", "brave-panda"])
    rows = {n["node"]: n for n in report.as_dict()["nodes"]}
    assert rows["misty-owl"]["error"] == "cannot reach node" and rows["misty-owl"]["reachable"] is False
    assert "not provisioned" in rows["calm-otter"]["error"]
    assert report.exit_code == EXIT_CODES["network"]


def test_json_schema(tmp_path, lab):
    """The documented shape of `drift-check --json` (README)."""
    c, rendering = lab
    _lay_out(tmp_path, c, rendering)
    os.chmod(tmp_path / PATHS.notify.lstrip("/"), 0o755)
    data = _report(c, rendering, _read(tmp_path, rendering), _record(c, rendering)).as_dict()
    assert set(data) == {"schemaVersion", "cluster", "drift", "drifted", "unreachable", "exitCode", "verdict", "nodes"}
    assert data["schemaVersion"] == 1 and data["drift"] is True and data["exitCode"] == 3
    row = data["nodes"][0]
    assert set(row) == {"node", "reachable", "error", "drifted", "drift", "warnings"}
    assert set(row["drift"][0]) == {"kind", "target", "layer", "detail", "expected", "actual", "whitespaceOnly",
                                    "removal"}
    assert all(d["kind"] in D.KINDS for n in data["nodes"] for d in n["drift"])
    json.dumps(data)


# --- repair's plan ---------------------------------------------------------------------------------

def _drifted(c, rendering, per_node: dict[str, list[D.Drift]]):
    return D.DriftReport(c.name, [D.NodeDrift(n, per_node.get(n, [])) for n in c.spec.nodes])


def test_repair_pushes_only_drifted_nodes_and_layers_in_rolling_order(lab):
    c, rendering = lab
    report = _drifted(c, rendering, {
        "misty-owl": [D.Drift("content", PATHS.caddyfile, "infra", "x")],
        "calm-otter": [D.Drift("image", "container:x", "service:api", "x"),
                       D.Drift("leftover", "/etc/caddy/routes/stray.caddy", "service:stray", "x", removal=True),
                       D.Drift("leftover", "container:dynia-old_old_1", "service:old", "x", removal=True),
                       D.Drift("immutable", PATHS.haproxy_cfg, "infra", "x")]})
    steps = R.plan(report, ["brave-panda", "calm-otter", "misty-owl"])
    assert [(s.node, s.layer, s.forced, s.removal, s.remove_containers) for s in steps] == [
        ("calm-otter", "infra", True, False, False), ("calm-otter", "service:api", True, False, True),
        ("calm-otter", "service:old", False, True, True), ("calm-otter", "service:stray", False, True, False),
        ("misty-owl", "infra", False, False, False)]
    assert [s.node for s in R.plan(report, ["brave-panda", "calm-otter", "misty-owl"], "misty-owl")] == ["misty-owl"]


def test_repair_refuses_pending_changes_unreachable_and_unknown_nodes(lab):
    c, rendering = lab
    pending = _drifted(c, rendering, {NODE: [D.Drift("pending", PATHS.caddyfile, "infra", "x")]})
    with pytest.raises(DyniaError) as e:
        R.refuse(pending, None, c.spec.nodes)
    assert e.value.kind == "state" and "dynia up" in e.value.hint
    dark = D.DriftReport(c.name, [D.NodeDrift(NODE, error="timed out")])
    with pytest.raises(DyniaError) as e:
        R.refuse(dark, None, c.spec.nodes)
    assert e.value.kind == "network"
    R.refuse(dark, "brave-panda", c.spec.nodes)  # the others can still be repaired
    with pytest.raises(DyniaError) as e:
        R.refuse(dark, "no-such", c.spec.nodes)
    assert e.value.kind == "config"


def test_the_verdict_names_the_next_step_that_works_up_for_pending_repair_for_drift(lab):
    c, rendering = lab
    pending = D.Drift("pending", PATHS.caddyfile, "infra", "the render changed")
    edited = D.Drift("content", PATHS.haproxy_cfg, "infra", "edited by hand")
    spec_edit = _drifted(c, rendering, {NODE: [pending]})
    hand_edit = _drifted(c, rendering, {NODE: [edited]})
    both = _drifted(c, rendering, {NODE: [pending], "calm-otter": [edited]})
    # What drift-check prints is what then works: repair refuses a report with pending changes.
    with pytest.raises(DyniaError):
        R.refuse(spec_edit, None, c.spec.nodes)
    assert spec_edit.verdict().endswith(f"the spec changed since the last apply: `dynia up --cluster {c.name}` "
                                        "applies it")
    assert "repair" not in spec_edit.verdict()
    R.refuse(hand_edit, None, c.spec.nodes)
    assert hand_edit.verdict().endswith(f"`dynia repair --cluster {c.name}` re-applies them")
    verdict = both.verdict()
    assert verdict.index(f"`dynia up --cluster {c.name}` applies it first") < \
        verdict.index(f"then `dynia repair --cluster {c.name}`")


def test_repair_fills_slots_from_this_machine_only_when_they_are_what_the_node_got(lab, monkeypatch):
    c, rendering = lab
    report = _drifted(c, rendering, {NODE: [D.Drift("content", PATHS.caddyfile, "infra", "x")]})
    report.nodes[0].applied_record = _record(c, rendering)
    steps = R.plan(report, list(c.spec.nodes))
    values, source = R.slot_secrets(c, rendering, report, steps, lambda line: None)
    assert source == "local" and set(values) >= {"stats_credentials", "origin_certificate"}
    # Another machine's credentials (or none recorded): the engine's are the truth.
    report.nodes[0].applied_record["layers"]["infra"][PATHS.haproxy_env]["sha256"] = "0" * 64
    monkeypatch.setattr(R, "engine_secrets", lambda cluster: {"from": b"engine"})
    assert R.slot_secrets(c, rendering, report, steps, lambda line: None) == ({"from": b"engine"}, "engine")
    # A service layer has no slot: nothing to read.
    only_api = [R.RepairStep(NODE, "service:api", False, False)]
    values, source = R.slot_secrets(c, rendering, report, only_api, lambda line: None)
    assert source == "none" and set(values.values()) == {b""}


# --- the commands -----------------------------------------------------------------------------------

def test_drift_check_command_prints_json_and_exits_with_the_drift_code(project, lab, monkeypatch):
    from dynia.cli import drift as cli_drift

    c, rendering = lab
    report = _drifted(c, rendering, {NODE: [D.Drift("mode", PATHS.notify, "infra", "mode 0755", "0700", "0755")]})
    monkeypatch.setattr(D, "check", lambda cluster, timeout=10.0, holder=None: (report, rendering))
    app = typer.Typer()
    cli_drift.register(app)
    app.command("noop")(lambda: None)  # a group, so the command name is an argument
    monkeypatch.chdir(project)
    r = CliRunner().invoke(app, ["drift-check", "--cluster", "lab", "--json"])
    assert r.exit_code == EXIT_DRIFT, r.output
    data = json.loads(r.stdout)
    assert data["drifted"] == [NODE] and data["nodes"][0]["drift"][0]["kind"] == "mode"
    r = CliRunner().invoke(app, ["drift-check", "--cluster", "lab"])
    assert r.exit_code == EXIT_DRIFT and "mode 0755" in r.stdout and NODE in r.stdout


def test_drift_check_and_repair_import_no_pulumi():
    code = ("import sys, dynia.cli.drift, dynia.operations.drift, dynia.operations.repair, dynia.nodes.drift_facts; "
            "assert not [m for m in sys.modules if m.split('.')[0] == 'pulumi'], 'pulumi imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_node_that_fails_its_gate_stops_the_repair_with_a_health_error(lab, monkeypatch):
    """The apply script rolls the node back (exit 30, tests/node); repair turns that into a typed
    `health` error naming the node and pushes nothing after it."""
    from dynia.nodes import push as P

    c, rendering = lab
    report = _drifted(c, rendering, {
        "brave-panda": [D.Drift("mode", PATHS.notify, "infra", "x")],
        "calm-otter": [D.Drift("mode", PATHS.notify, "infra", "x")]})
    for n in report.nodes:
        n.applied_record = _record(c, rendering, n.node)
    monkeypatch.setattr(D, "check", lambda cluster, timeout=10.0, holder=None: (report, rendering))
    monkeypatch.setattr("dynia.engine.session.targets", lambda cluster: [P.Target(n, "192.0.2.1", Path("/k"))
                                                                  for n in c.spec.nodes])
    pushed = []

    def fake_push(target, bundle, timeout=600):
        pushed.append((target.node, bundle.layer, bundle.force))
        return P.ApplyResult(target.node, bundle.layer, 30, {"status": "rolled-back",
                             "reason": "health gate failed after 6 tries: caddy (HTTP 502)"}, "", 1.0)

    monkeypatch.setattr(P, "push", fake_push)
    with pytest.raises(DyniaError) as e:
        R.repair(c)
    assert pushed == [("brave-panda", "infra", False)]
    assert e.value.kind == "health" and "brave-panda" in e.value.message and "HTTP 502" in e.value.message
    assert e.value.resume == "dynia repair --node brave-panda"


def test_repair_without_drift_pushes_nothing(lab, monkeypatch):
    c, rendering = lab
    report = _drifted(c, rendering, {})
    monkeypatch.setattr(D, "check", lambda cluster, timeout=10.0, holder=None: (report, rendering))
    lines = []
    result = R.repair(c, on_progress=lines.append)
    assert result.steps == [] and result.after is report and lines == ["nothing to repair"]


def test_repair_command_asks_first_and_takes_the_cluster_lock(project, lab, monkeypatch):
    from dynia.cli import drift as cli_drift
    from dynia.state.store import cluster_lock

    c, rendering = lab
    drifted = _drifted(c, rendering, {NODE: [D.Drift("mode", PATHS.notify, "infra", "x")]})
    clean = _drifted(c, rendering, {})
    monkeypatch.setattr(D, "check", lambda cluster, timeout=10.0, holder=None: (drifted, rendering))
    held = []

    def fake_repair(cluster, node=None, on_progress=None, timeout=10.0):
        with pytest.raises(DyniaError):  # the command holds the lock while it repairs
            with cluster_lock(cluster.project, cluster.name):
                pass
        held.append(node)
        return R.RepairResult(drifted, after=clean)

    monkeypatch.setattr(R, "repair", fake_repair)
    monkeypatch.chdir(project)
    app = typer.Typer()
    cli_drift.register(app)
    r = CliRunner().invoke(app, ["repair", "--cluster", "lab"])  # no terminal, no --yes: refused
    assert isinstance(r.exception, DyniaError) and "--yes" in r.exception.hint and held == []
    r = CliRunner().invoke(app, ["repair", "--cluster", "lab", "--yes", "--json", "--node", NODE])
    assert r.exit_code == 0, r.output
    assert held == [NODE] and json.loads(r.stdout)["after"]["drift"] is False


def test_drift_fact_command_is_pinned():
    """The fact's command: the constant reader, then what to look at (paths and image names)."""
    import shlex

    cmd = DF.command([PATHS.caddyfile], [PATHS.origin_pem], engine="docker", images=["nginx:1.27"])
    argv = shlex.split(cmd)
    assert argv[:2] == ["python3", "-c"] and argv[2] == DF.node_script() and len(argv) == 4
    assert json.loads(argv[3]) == {
        "files": ["/etc/caddy/Caddyfile"], "slots": ["/etc/haproxy/certs/origin.pem"],
        "composeDirs": ["/opt/dynia/compose"], "composeFileName": "docker-compose.yml",
        "routeDirs": ["/etc/caddy/routes"], "engine": "docker", "images": ["nginx:1.27"],
        "projectLabel": "com.docker.compose.project", "serviceLabel": "com.docker.compose.service"}
    script = DF.node_script()
    # What the reader asks the container engine (read-only): running compose containers, their
    # inspect record, and what each image reference resolves to.
    for args in ('["ps", "-q", "--no-trunc", "--filter", "label=" + want["projectLabel"]]',
                 '["container", "inspect"] + ids', '["image", "inspect", ref]'):
        assert args in script
    assert "open(path, \"rb\")" in script and "\"wb\"" not in script and "os.unlink" not in script


def test_a_container_engine_that_fails_is_a_warning_not_a_clean_bill(lab):
    c, rendering = lab
    answer = {"files": {}, "containers": {"engine": "docker", "error": "Cannot connect to the Docker daemon",
                                          "running": [], "images": {}}}
    report = D.assemble(c, rendering, {NODE: NodeFacts(NODE, {"drift": answer})}, [NODE])
    row = report.nodes[0]
    assert row.warnings == ["running images (docker: Cannot connect to the Docker daemon)"]
    assert "not checked" in report.verdict()


def test_the_reader_sees_the_immutable_attribute(tmp_path, lab, as_root):
    """chattr +i read back through FS_IOC_GETFLAGS (ext4 and overlayfs answer it)."""
    c, rendering = lab
    _lay_out(tmp_path, c, rendering)
    path = tmp_path / PATHS.caddyfile.lstrip("/")
    need(subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0,
         "chattr +i is not supported on this filesystem (e2fsprogs; ext4 or overlayfs)")
    try:
        answer = _read(tmp_path, rendering)
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    assert answer["files"][PATHS.caddyfile]["immutable"] is True
    assert answer["files"][PATHS.haproxy_cfg]["immutable"] is False


# --- stopped by hand: infra components and service containers -------------------------------------

def _clean_answer(tmp_path, c, rendering, *, stopped_services=(), images=None) -> dict:
    """NODE's drift fact as a healthy node answers it, with the containers of every service
    running except `stopped_services` (the container listing is constructed: the node script's
    engine part needs a container engine)."""
    _lay_out(tmp_path, c, rendering)
    answer = _read(tmp_path, rendering)
    from dynia.nodes.commands import compose_project

    running = [{"name": f"{compose_project(s)}_{cs}_1", "image": "a" * 64, "project": compose_project(s),
                "service": cs}
               for s, refs in D.desired_images(rendering, NODE).items() if s not in stopped_services for cs in refs]
    refs = {ref for svc in D.desired_images(rendering, NODE).values() for ref in svc.values()}
    answer["containers"] = {"engine": "podman", "error": None, "running": running,
                            "images": images or {ref: "a" * 64 for ref in refs}}
    return answer


@pytest.mark.parametrize("name", ["lab-node-stopped-keepalived", "lab-node-stopped-api"])
def test_recorded_lab_node_with_something_stopped_classifies_as_stated(lab, name):
    """Recorded on a BACKUP lab node (misty-owl holding the VIP): keepalived killed, or the api's
    containers stopped. admin (active-only) runs on neither recording's node, and is not drift."""
    c, rendering = lab
    data, fact, want = _recorded(name)
    node, holder = data["node"], data["holder"]
    assert holder != node and c.spec.services["admin"].placement == "active-only"
    assert not any(x.get("project") == "dynia-admin" for x in fact["containers"]["running"])
    running = _running_fact(data["running_output"], data["running_exit_status"])
    found = D.stopped_components(running) + D.stopped_services(c.spec, rendering, node, fact, holder)
    assert sorted([d.kind, d.target] for d in found) == want["kinds"]
    assert {d.kind for d in found} == {"stopped"}


def _running_fact(output: str, exit_status: int = 0) -> dict:
    """The `running` fact's parser (dynia.nodes.facts.running) on the node's output."""
    from dynia.nodes import facts as F
    from dynia.providers.local import PROFILE

    return F.running(PROFILE).process(output, exit_status)


def _assembled(c, rendering, answer, record, *, running=None, holder_role="MASTER"):
    """NODE's row, with the other nodes answering nothing but their VRRP role: NODE holds the
    VIP when holder_role is MASTER, else brave-panda does (None: nobody claims it)."""
    other = "brave-panda"
    answers = {NODE: NodeFacts(NODE, {"drift": answer, "applied": record, "vrrp": {"role": holder_role},
                                      "running": running})}
    if holder_role != "MASTER":
        answers[other] = NodeFacts(other, {"vrrp": {"role": "MASTER"} if holder_role == "BACKUP" else None})
    report = D.assemble(c, rendering, answers, [NODE, other])
    return D.DriftReport(c.name, [n for n in report.nodes if n.node == NODE])


def test_a_killed_keepalived_is_stopped_drift_that_repair_fixes_with_a_forced_infra_push(tmp_path, lab):
    c, rendering = lab
    answer = _clean_answer(tmp_path, c, rendering)
    running = _running_fact("caddy up\nhaproxy up\nkeepalived down\n")
    report = _assembled(c, rendering, answer, _record(c, rendering), running=running, holder_role="BACKUP")
    assert _kinds(report) == [("stopped", "component:keepalived")]
    (d,) = report.nodes[0].drift
    assert d.layer == "infra" and (d.expected, d.actual) == ("running", "stopped")
    assert report.exit_code == EXIT_DRIFT and report.drifted == [NODE]
    data = report.as_dict()
    assert data["nodes"][0]["drift"][0]["kind"] == "stopped" and "stopped" in D.KINDS
    steps = R.plan(report, c.spec.nodes)
    assert [(s.node, s.layer, s.forced, s.removal, s.remove_containers) for s in steps] == [
        (NODE, "infra", True, False, False)]


def test_components_that_run_or_did_not_answer_are_not_stopped(tmp_path, lab):
    c, rendering = lab
    answer = _clean_answer(tmp_path, c, rendering)
    record = _record(c, rendering)
    for running in (_running_fact("caddy up\nhaproxy up\nkeepalived up\n"), None, _running_fact("caddy up\n")):
        assert _kinds(_assembled(c, rendering, answer, record, running=running)) == []


def test_a_service_stopped_where_its_placement_says_it_runs_is_stopped_drift(tmp_path, lab):
    c, rendering = lab
    # NODE holds the VIP: api runs on every node, admin (active-only) runs here; both stopped.
    answer = _clean_answer(tmp_path, c, rendering, stopped_services=("api", "admin"))
    report = _assembled(c, rendering, answer, _record(c, rendering), holder_role="MASTER")
    assert _kinds(report) == [("stopped", "service:admin"), ("stopped", "service:api")]
    by = {d.target: d for d in report.nodes[0].drift}
    assert by["service:api"].layer == "service:api" and by["service:api"].actual == "api"
    assert "placement all" in by["service:api"].detail and "placement active-only" in by["service:admin"].detail
    assert report.exit_code == EXIT_DRIFT
    steps = R.plan(report, c.spec.nodes)
    assert [(s.layer, s.forced, s.removal, s.remove_containers) for s in steps] == [
        ("service:admin", True, False, False), ("service:api", True, False, False)]


def test_an_active_only_service_stopped_on_a_node_without_the_vip_is_not_drift(tmp_path, lab):
    c, rendering = lab
    answer = _clean_answer(tmp_path, c, rendering, stopped_services=("admin",))
    record = _record(c, rendering)
    # brave-panda is the one MASTER: admin belongs there, not on NODE.
    assert _kinds(_assembled(c, rendering, answer, record, holder_role="BACKUP")) == []
    # Nobody (or several nodes) claims the VIP: where admin belongs is unknown, so it is not judged;
    # a service placed on every node still is.
    assert _kinds(_assembled(c, rendering, answer, record, holder_role=None)) == []
    answer = _clean_answer(tmp_path, c, rendering, stopped_services=("admin", "web"))
    assert _kinds(_assembled(c, rendering, answer, record, holder_role=None)) == [("stopped", "service:web")]


def test_services_are_not_judged_stopped_when_the_container_engine_failed(lab):
    c, rendering = lab
    answer = {"files": {}, "containers": {"engine": "docker", "error": "Cannot connect to the Docker daemon",
                                          "running": [], "images": {}}}
    assert D.stopped_services(c.spec, rendering, NODE, answer, NODE) == []
    assert D.stopped_services(c.spec, rendering, NODE, {"files": {}, "containers": None}, NODE) == []


def test_drift_check_reads_running_components_and_data_mounts_in_its_one_round_trip(lab, monkeypatch):
    c, _ = lab
    seen = []

    def fake_gather(nodes, facts, timeout, refused=None):
        seen.append([f.name for f in facts])
        return {}

    monkeypatch.setattr("dynia.engine.session.reach", lambda cluster: [type("T", (), {"node": NODE})()])
    monkeypatch.setattr("dynia.nodes.gather.gather", fake_gather)
    D.check(c)
    assert seen == [["drift", "applied", "vrrp", "running", "data_mounts"]]


@pytest.mark.parametrize("answer, where", [
    ({"files": {"/etc/caddy/Caddyfile": "x"}}, "files./etc/caddy/Caddyfile"),
    ({"files": {}, "composeDirs": []}, "composeDirs"),
    ({"files": {}, "containers": "podman"}, "containers"),
    ({"files": {}, "containers": {"running": ["x"]}}, "containers.running.0"),
    ({"files": {"/etc/x": {"exists": True, "mode": 420}}}, "files./etc/x.mode"),
    ({"files": {"/etc/x": {"exists": "yes"}}}, "files./etc/x.exists"),
    ({"files": {}, "composeDirs": {"/opt/dynia/compose": {"api": True}}}, "composeDirs./opt/dynia/compose"),
    ({"files": {}, "composeDirs": {"/opt/dynia/compose": ["api"]}}, "composeDirs./opt/dynia/compose.0"),
    ({"files": {}, "routes": {"/etc/caddy/routes": [7]}}, "routes./etc/caddy/routes.0"),
    ({"files": {}, "containers": {"images": ["a"]}}, "containers.images"),
    ({"files": {}, "containers": {"running": [{"name": {"a": 1}}]}}, "containers.running.0.name"),
    ({"files": {"/etc/x": {"exists": True, "owner": "r" * 600}}}, "files./etc/x.owner"),
])
def test_a_malformed_drift_answer_is_that_nodes_error_never_a_crash(answer, where):
    error = DF.parse_drift(json.dumps(answer), 0)["error"]
    assert error.startswith(f"the drift reader's answer is malformed ({where}: "), error


def test_drift_check_before_the_first_provision_is_a_state_error_not_unreachable_nodes(lab, monkeypatch):
    c, _ = lab

    class NeverProvisioned:  # the engine reading a provision stack that holds no nodes
        def __init__(self, cluster, read_only=False):
            assert read_only, "a read command creates no stack"

        def refresh_outputs(self):
            return False

    monkeypatch.setattr("dynia.engine.automation.Engine", NeverProvisioned)
    with pytest.raises(DyniaError) as exc:
        D.check(c)
    assert exc.value.kind == "state" and "never provisioned" in exc.value.message and "dynia up" in exc.value.hint


def test_the_drift_reader_reports_a_managed_path_under_a_file_as_missing_not_a_dead_node(tmp_path, lab):
    c, r = lab
    fact = D.fact_for(r, __import__("dynia.providers", fromlist=["of"]).of(c.spec).profile)
    # /opt/dynia/compose/web is a file where a directory should be: the reader keeps going
    (tmp_path / "opt/dynia/compose").mkdir(parents=True)
    (tmp_path / "opt/dynia/compose/web").write_text("not a directory\n")
    proc = subprocess.run(["sh", "-c", fact.command], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DYNIA_ROOT": str(tmp_path)})
    data = fact.process(proc.stdout, proc.returncode)
    assert "error" not in data, (proc.returncode, proc.stderr[-500:])
    assert data["files"][PATHS.compose_file("web")] == {"exists": False}


def test_an_image_missing_on_the_node_is_named_whole_and_ids_are_shortened_only_when_hex(lab):
    c, rendering = lab
    answer = {"files": {}, "containers": {
        "engine": "podman", "error": None, "images": {},
        "running": [{"name": "dynia-api_api_1", "image": "b" * 64, "project": "dynia-api", "service": "api"}]}}
    found, _ = D.images(c.spec, rendering, NODE, answer)
    ref = D.desired_images(rendering, NODE)["api"]["api"]
    assert found[0].detail == f"runs {'b' * 12}, {ref} is not on the node"
    assert D.short_id("registry.example/team/api-image-with-a-long-name") == "registry.example/team/api-image-with-a-long-name"


# --- node answers are input (issue 22c) -------------------------------------------------------------

def test_a_routes_directory_over_the_listing_cap_is_listed_to_the_cap_and_the_rest_counted(tmp_path, lab):
    """The reader itself stops at LISTING_MAX names and says how many there were."""
    c, rendering = lab
    _lay_out(tmp_path, c, rendering)
    routes = tmp_path / PATHS.caddy_routes.lstrip("/")
    for i in range(DF.A.LISTING_MAX + 5):
        (routes / f"zz{i:05d}.caddy").touch()
    answer = _read(tmp_path, rendering)
    assert len(answer["routes"][PATHS.caddy_routes]) == DF.A.LISTING_MAX
    rendered_routes = len([f for f in rendering.files[NODE] if f.target.startswith(PATHS.caddy_routes + "/")])
    assert answer["listingOmitted"] == {PATHS.caddy_routes: 5 + rendered_routes}
    report = _report(c, rendering, answer, _record(c, rendering))
    summary = [d for d in report.nodes[0].drift if d.target == f"{PATHS.caddy_routes}/…"]
    assert len(summary) == 1 and summary[0].detail.startswith(f"{5 + rendered_routes} more entries, not listed")


def test_a_node_claiming_300000_route_files_is_summarised(lab, capsys, monkeypatch):
    """A hostile answer past the cap: parsed to LISTING_MAX leftovers plus one summary row."""
    from dynia.cli import common
    from dynia.cli.drift import print_report

    c, rendering = lab
    names = [f"f{i:06d}.caddy" for i in range(300_000)]
    output = json.dumps({"files": {}, "routes": {PATHS.caddy_routes: names}})
    answer = DF.parse_drift(output, 0)
    assert len(answer["routes"][PATHS.caddy_routes]) == DF.A.LISTING_MAX
    assert answer["listingOmitted"] == {PATHS.caddy_routes: 300_000 - DF.A.LISTING_MAX}
    report = _report(c, rendering, answer, None)
    leftovers = [d for d in report.nodes[0].drift if d.kind == "leftover"]
    assert len(leftovers) == DF.A.LISTING_MAX + 1
    monkeypatch.setattr(common, "_console", None)
    print_report(report)
    assert f"{300_000 - DF.A.LISTING_MAX} more entries, not listed" in capsys.readouterr().out
