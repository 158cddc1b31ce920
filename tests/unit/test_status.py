"""dynia status, assembled from facts recorded on real lab nodes (tests/fixtures/status), the
reserved-IP holder of each provider (DigitalOcean from recorded API responses), the JSON schema
and the CLI's exit codes."""
from __future__ import annotations

import copy
import dataclasses
import json
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dynia.operations import status as S
from dynia.errors import EXIT_UNHEALTHY, DyniaError
from dynia.nodes import facts as F
from dynia.nodes.gather import NodeFacts
from dynia.providers import digitalocean, do_api, local

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SERVICES = {"web": "all", "api": "all", "admin": "active-only"}


def recorded(name: str) -> tuple[dict, dict[str, NodeFacts]]:
    """A recorded snapshot, parsed by the facts' own parsers: (snapshot, node → NodeFacts)."""
    snap = json.loads((FIXTURES / "status" / f"{name}.json").read_text())
    answers = {}
    for node, rec in snap["nodes"].items():
        wanted = F.status_facts(local.PROFILE, rec["private_ip"])
        answers[node] = NodeFacts(node, {f.name: f.process(rec["facts"][f.name]["output"],
                                                          rec["facts"][f.name]["exit_status"]) for f in wanted})
    return snap, answers


def assemble(snap, answers, **kw) -> S.ClusterStatus:
    nodes = {n: r["private_ip"] for n, r in snap["nodes"].items()}
    addrs = {n: {a} | set((answers[n].facts.get("addresses") or []) if answers[n].error is None else [])
             for n, a in nodes.items()}
    holder, error = kw.pop("holder", None), None
    if holder is None:
        # When these were recorded, the lab's provider said what the interfaces say (keepalived put
        # the VIP on the MASTER and its assignment went through): the holder is the VIP's node.
        on = local.vip_on_interfaces(snap["reserved_ip"], addrs)
        try:
            if len(on) > 1:
                local.Local().reserved_ip_holder(snap["reserved_ip"], addrs)   # a split brain: raises, asks nothing
            holder = on[0] if on else None
        except DyniaError as exc:
            error = exc.message
    args = dict(cluster="lab", nodes=nodes, services=SERVICES, desired_version=snap["desired_version"],
                reserved_ip=snap["reserved_ip"], answers=answers, holder=holder, holder_error=error)
    args.update(kw)
    return S.assemble(**args)


# --- the verdict on recorded labs ------------------------------------------------------------

def test_an_applied_lab_is_healthy_with_the_master_holding_the_vip():
    st = assemble(*recorded("lab-applied"))
    assert st.healthy, st.problems
    assert st.holder == "misty-owl" and st.masters == ["misty-owl"] and st.serving_node == "misty-owl"
    assert st.verdict == "healthy: 3 nodes at v1, misty-owl is MASTER and holds 10.213.0.100"
    misty = st.nodes[[n.node for n in st.nodes].index("misty-owl")]
    assert (misty.role, misty.priority, misty.applied_version, misty.lockdown, misty.caddy_health) == \
        ("MASTER", 150, 1, "off", 200)
    assert misty.running == {"caddy": True, "haproxy": True, "keepalived": True}
    admin = next(s for s in st.services if s.service == "admin")
    assert [n for n, cs in admin.containers.items() if cs] == ["misty-owl"]  # active-only: the holder only
    assert admin.containers["misty-owl"][0].digest.startswith("sha256:4b436e83")


def test_after_a_failover_the_new_master_is_shown_and_the_stopped_keepalived_is_the_only_problem():
    st = assemble(*recorded("lab-failover"))
    assert st.holder == "brave-panda" and st.masters == ["brave-panda"]
    roles = {n.node: n.role for n in st.nodes}
    assert roles == {"misty-owl": "STOP", "brave-panda": "MASTER", "calm-otter": "BACKUP"}
    assert st.problems == ["keepalived is not running on misty-owl"]
    assert not st.healthy and st.verdict == "unhealthy: keepalived is not running on misty-owl"


def test_a_killed_keepalived_does_not_count_as_master_even_if_its_file_says_so():
    snap, answers = recorded("lab-applied")
    answers["misty-owl"].facts["running"]["keepalived"] = False  # SIGKILL: notify never wrote STOP
    st = assemble(snap, answers)
    assert "misty-owl" not in st.masters
    assert any("misty-owl holds the reserved IP 10.213.0.100 but is STOP" in p for p in st.problems)


def test_an_unreachable_node_is_a_row_with_its_error_and_makes_the_cluster_unhealthy():
    snap, answers = recorded("lab-applied")
    answers["calm-otter"] = NodeFacts("calm-otter", error="ConnectionRefusedError: [Errno 111] Connect call failed")
    st = assemble(snap, answers)
    row = next(n for n in st.nodes if n.node == "calm-otter")
    assert not row.reachable and "Connect call failed" in row.error
    assert st.problems[0].startswith("calm-otter is unreachable: ConnectionRefusedError")
    assert not st.healthy


@pytest.mark.parametrize("change, problem", [
    (lambda f: f.update(degraded={"reason": "health gate failed", "time": "2026-11-28T02:11:09Z",
                                  "layer": "service:api"}),
     "brave-panda is degraded since 2026-11-28T02:11:09Z: health gate failed"),
    (lambda f: f["applied"].update(configVersion=0), "brave-panda is behind: v0, desired v1"),
    (lambda f: f.update(applied=None), "brave-panda was never applied (desired v1)"),
    (lambda f: f["running"].update(haproxy=False), "haproxy is not running on brave-panda"),
    (lambda f: f.update(caddy_health={"code": None, "error": "no answer (curl exit 7)"}),
     "Caddy on brave-panda answers its health check with no answer (curl exit 7)"),
    (lambda f: f.update(containers=[c for c in f["containers"] if c["service"] != "api"]),
     "api has no running container on brave-panda"),
], ids=["degraded", "behind", "never-applied", "haproxy-down", "caddy-unhealthy", "container-missing"])
def test_each_unhealthy_condition_of_a_node_is_named_in_the_verdict(change, problem):
    snap, answers = recorded("lab-applied")
    change(answers["brave-panda"].facts)
    st = assemble(snap, answers)
    assert st.problems == [problem]
    assert st.verdict == f"unhealthy: {problem}"


def test_without_this_machines_apply_record_every_node_must_be_at_the_newest_version_a_node_reports(project):
    # A teammate's checkout: no .dynia/cache, so the render counts from v1 while the nodes run v3.
    from dynia.state import cache
    from dynia.render.rendered import render_cluster
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    c = load_cluster(Project(project), "lab")
    rendering = render_cluster(c)
    assert rendering.config_version == 1 and not cache.applied(c)
    snap, answers = recorded("lab-applied")
    for node in ("misty-owl", "calm-otter"):
        answers[node].facts["applied"]["configVersion"] = 3
    answers["brave-panda"].facts["applied"]["configVersion"] = 2
    desired = S.desired_version(c, rendering, answers)
    assert desired == 3
    assert assemble(snap, answers, desired_version=desired).problems == ["brave-panda is behind: v2, desired v3"]
    # With the record of the last apply, the render's own version is the one to be at.
    cache.ClusterCache.of(c).write_applied({"configVersion": 4, "nodes": {}})
    assert S.desired_version(c, render_cluster(c), answers) == 5


def test_a_vip_holder_that_is_not_the_vrrp_master_is_unhealthy():
    snap, answers = recorded("lab-applied")
    st = assemble(snap, answers, holder="calm-otter")
    assert st.problems == ["calm-otter holds the reserved IP 10.213.0.100 but is BACKUP, not the VRRP MASTER (misty-owl)",
                           # active-only services belong on the holder
                           "admin has no running container on calm-otter"]


def test_no_holder_and_two_masters_are_each_a_problem():
    snap, answers = recorded("lab-applied")
    answers["misty-owl"].facts["addresses"] = ["10.213.0.11"]
    answers["brave-panda"].facts["vrrp"] = {"role": "MASTER", "since": "x"}
    st = assemble(snap, answers)
    assert "no node holds the reserved IP 10.213.0.100" in st.problems
    assert "more than one VRRP MASTER: brave-panda, misty-owl" in st.problems


def test_a_split_brain_vip_is_a_holder_error():
    snap, answers = recorded("lab-applied")
    answers["calm-otter"].facts["addresses"].append("10.213.0.100")
    st = assemble(snap, answers)
    assert st.holder is None and "is on 2 nodes: calm-otter, misty-owl" in st.holder_error
    assert not st.healthy


def test_a_down_server_in_the_serving_haproxy_is_a_problem():
    snap, answers = recorded("lab-applied")
    server = answers["misty-owl"].facts["show_stat"]["backends"]["be_cluster"]["servers"]["calm-otter"]
    server.update(status="DOWN", check_desc="Layer7 wrong status")
    st = assemble(snap, answers)
    assert st.problems == ["HAProxy on misty-owl: be_cluster/calm-otter is DOWN (Layer7 wrong status)"]


# --- per-service backends (one backend per service, named by dynia.render.rendering.backend_name) -----

@pytest.mark.parametrize("backend, service", [
    ("be_api", "api"), ("be_my-app", "my-app"), ("be_any_node", None), ("stats", None), ("be-api", None),
    ("api", None)])
def test_backend_names_map_to_the_services_render_names_them_for(backend, service):
    assert S.backend_service(backend, ["api", "my-app", "web"]) == service


def _per_service_backends(answers):
    """Rename the recorded be_cluster into one backend per service, as the split HAProxy has."""
    for nf in answers.values():
        if nf.error:
            continue
        backends = nf.facts["show_stat"]["backends"]
        cluster = backends.pop("be_cluster")
        for i, svc in enumerate(("web", "api")):
            be = copy.deepcopy(cluster)
            be["hrsp"] = {k: (v if svc == "api" else 0) for k, v in cluster["hrsp"].items()}
            backends[f"be_{svc}"] = be
        backends["be_admin"] = backends.pop("be_active")


def test_http_counts_per_service_are_summed_over_every_haproxy():
    snap, answers = recorded("lab-applied")
    _per_service_backends(answers)
    st = assemble(snap, answers)
    api = next(s for s in st.services if s.service == "api")
    # misty-owl's HAProxy served 21 × 2xx and 1 × 4xx through the VIP; the other two 1 × 2xx each
    # (their apply's own health gate through HAProxy).
    assert api.backend == "be_api" and api.http["2xx"] == 23 and api.http["4xx"] == 1
    assert api.servers == {"misty-owl": "UP", "brave-panda": "UP", "calm-otter": "UP"}
    assert next(s for s in st.services if s.service == "admin").backend == "be_admin"
    assert st.http_window_seconds is None  # one-shot: since each HAProxy started


def test_watch_counts_are_the_difference_since_the_previous_sample():
    snap, answers = recorded("lab-applied")
    _per_service_backends(answers)
    first = assemble(snap, answers)
    answers["misty-owl"].facts["show_stat"]["backends"]["be_api"]["hrsp"]["2xx"] += 5
    second = assemble(snap, answers, previous=first, window=2.0)
    api = next(s for s in second.services if s.service == "api")
    assert api.http["2xx"] == 5 and api.http["4xx"] == 0 and second.http_window_seconds == 2.0


def test_services_without_their_own_backend_show_no_counts():
    st = assemble(*recorded("lab-applied"))
    assert {s.service: s.backend for s in st.services} == {"web": None, "api": None, "admin": None}
    assert all(s.http is None for s in st.services)


# --- the JSON schema -------------------------------------------------------------------------

def _conforms(value, hint, where="status"):
    """value (from as_dict / JSON) matches the dataclass type hint, field for field."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        assert isinstance(value, dict), where
        hints = {S.camel(k): h for k, h in typing.get_type_hints(hint).items()}
        assert set(value) == set(hints), (where, set(value) ^ set(hints))
        for k, h in hints.items():
            _conforms(value[k], h, f"{where}.{k}")
    elif origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        errors = []
        for a in args:
            try:
                return _conforms(value, a, where)
            except AssertionError as exc:
                errors.append(exc)
        raise AssertionError(where, value, errors)
    elif origin is list:
        assert isinstance(value, list), where
        for i, v in enumerate(value):
            _conforms(v, args[0], f"{where}[{i}]")
    elif origin is dict:
        assert isinstance(value, dict), where
        for k, v in value.items():
            _conforms(k, args[0], where)
            _conforms(v, args[1], f"{where}.{k}")
    elif hint is type(None):
        assert value is None, where
    elif hint is float:
        assert isinstance(value, (int, float)) and not isinstance(value, bool), where
    else:
        assert isinstance(value, hint) and not (hint is int and isinstance(value, bool)), (where, value, hint)


@pytest.mark.parametrize("snapshot", ["lab-applied", "lab-failover"])
def test_json_output_matches_the_documented_dataclasses(snapshot):
    snap, answers = recorded(snapshot)
    answers["calm-otter"] = NodeFacts("calm-otter", error="TimeoutError")
    _per_service_backends(answers)
    data = json.loads(json.dumps(assemble(snap, answers).as_dict()))
    _conforms(data, S.ClusterStatus)
    assert data["schemaVersion"] == 2 and "reservedIp" in data and "appliedVersion" in data["nodes"][0]


def test_every_field_is_documented_in_the_module_docstring():
    for cls in (S.ClusterStatus, S.NodeStatus, S.ServiceStatus, S.BackendView):
        for f in dataclasses.fields(cls):
            assert f.name in S.__doc__, (cls.__name__, f.name)


# --- reserved-IP holder per provider ---------------------------------------------------------

NODES = {"misty-owl": {"10.110.0.2", "203.0.113.10"}, "brave-panda": {"10.110.0.3", "203.0.113.11"}}


def _do_answers(monkeypatch, name: str, status: int = 200):
    body = (FIXTURES / "digitalocean" / f"{name}.json").read_bytes()
    calls = []

    def fake(url, headers, timeout):
        calls.append((url, headers))
        return status, body

    monkeypatch.setattr(do_api, "_http_get", fake)
    monkeypatch.setenv(digitalocean.TOKEN_ENV, "dop_v1_secret")
    return calls


def test_digitalocean_holder_is_the_node_whose_addresses_the_api_names(monkeypatch):
    calls = _do_answers(monkeypatch, "reserved_ip_assigned")
    assert digitalocean.DigitalOcean().reserved_ip_holder("198.51.100.7", NODES) == "brave-panda"
    assert calls == [("https://api.digitalocean.com/v2/reserved_ips/198.51.100.7",
                      {"Authorization": "Bearer dop_v1_secret", "Accept": "application/json"})]


def test_digitalocean_unassigned_reserved_ip_has_no_holder(monkeypatch):
    _do_answers(monkeypatch, "reserved_ip_unassigned")
    assert digitalocean.DigitalOcean().reserved_ip_holder("198.51.100.7", NODES) is None


@pytest.mark.parametrize("name, status, words", [
    ("error_unauthorized", 401, "refused the token"), ("error_not_found", 404, "does not know"),
    ("error_unauthorized", 500, "answered GET /reserved_ips/198.51.100.7 with 500")])
def test_digitalocean_api_errors_are_typed_and_never_show_the_token(monkeypatch, name, status, words):
    _do_answers(monkeypatch, name, status)
    with pytest.raises(DyniaError) as exc:
        digitalocean.DigitalOcean().reserved_ip_holder("198.51.100.7", NODES)
    assert exc.value.kind == "provider" and words in exc.value.message
    assert "dop_v1_secret" not in exc.value.message + exc.value.hint


def test_digitalocean_without_a_token_or_network_is_a_typed_error(monkeypatch):
    monkeypatch.delenv(digitalocean.TOKEN_ENV, raising=False)
    with pytest.raises(DyniaError, match="DIGITALOCEAN_TOKEN is not set"):
        digitalocean.DigitalOcean().reserved_ip_holder("198.51.100.7", NODES)

    def unreachable(url, headers, timeout):
        raise OSError("Name or service not known")

    monkeypatch.setenv(digitalocean.TOKEN_ENV, "t")
    monkeypatch.setattr(do_api, "_http_get", unreachable)
    with pytest.raises(DyniaError) as exc:
        digitalocean.DigitalOcean().reserved_ip_holder("198.51.100.7", NODES)
    assert exc.value.kind == "network"


def test_the_labs_holder_is_what_its_api_stand_in_says_after_an_assignment_with_the_node_token(tmp_path, monkeypatch):
    import json
    import threading
    import urllib.error
    import urllib.request

    from dynia.providers import lab_api

    (tmp_path / "lab.json").write_text(json.dumps({"vip": "10.213.0.100", "nodes": [
        {"id": "a", "ip": "10.213.0.11"}, {"id": "b", "ip": "10.213.0.12"}]}))
    (tmp_path / lab_api.TOKEN_FILE).write_text(local.LAB_NODE_TOKEN + "\n")
    api = lab_api.LabApi(tmp_path, "127.0.0.1", 0)
    threading.Thread(target=api.server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{api.server.server_port}"
    monkeypatch.setattr(local, "lab_api_url", lambda gateway: url)
    nodes = {"a": {"10.213.0.11"}, "b": {"10.213.0.12", "10.213.0.100"}}   # keepalived put the VIP on b

    def assign(token: str, droplet: int) -> int:
        req = urllib.request.Request(f"{url}/v2/reserved_ips/10.213.0.100/actions", method="POST",
                                     data=json.dumps({"type": "assign", "droplet_id": droplet}).encode(),
                                     headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
    try:
        lab = local.Local()
        assert lab.reserved_ip_holder("10.213.0.100", nodes) is None          # never assigned: the API says so
        assert assign("a-refused-token", lab_api.FIRST_DROPLET_ID + 1) == 401
        assert lab.reserved_ip_holder("10.213.0.100", nodes) is None          # the interface is not the answer
        assert assign(local.LAB_NODE_TOKEN, lab_api.FIRST_DROPLET_ID + 1) == 201
        assert lab.reserved_ip_holder("10.213.0.100", nodes) == "b"
        nodes["a"].add("10.213.0.100")
        with pytest.raises(DyniaError, match="is on 2 nodes: a, b"):      # a split brain, whatever the record
            lab.reserved_ip_holder("10.213.0.100", nodes)
    finally:
        api.server.shutdown()
        api.server.server_close()


# --- the command -------------------------------------------------------------------------------

def _app():
    from dynia.cli import status as cli

    app = typer.Typer()
    cli.register(app)
    app.command("noop")(lambda: None)  # a second command keeps `status` a subcommand
    return app


def _fake_read(monkeypatch, st):
    monkeypatch.setattr(S, "read", lambda cluster, *a, **kw: st)
    monkeypatch.setattr("dynia.spec.load.load_cluster", lambda project, name: type("C", (), {"name": name})())
    monkeypatch.setattr("dynia.cli.common.cluster_name", lambda ctx, explicit: "lab")
    monkeypatch.setattr("dynia.cli.status.cluster_name", lambda ctx, explicit: "lab")


def test_status_exits_0_when_healthy_and_4_when_not(monkeypatch):
    healthy = assemble(*recorded("lab-applied"))
    _fake_read(monkeypatch, healthy)
    r = CliRunner().invoke(_app(), ["status"])
    assert r.exit_code == 0, r.output
    assert "healthy: 3 nodes at v1, misty-owl is MASTER" in r.output and "brave-panda" in r.output
    unhealthy = assemble(*recorded("lab-failover"))
    _fake_read(monkeypatch, unhealthy)
    r = CliRunner().invoke(_app(), ["status"])
    assert r.exit_code == EXIT_UNHEALTHY == 4
    assert "unhealthy: keepalived is not running on misty-owl" in r.output


def test_status_json_is_the_documented_document(monkeypatch):
    st = assemble(*recorded("lab-failover"))
    _fake_read(monkeypatch, st)
    r = CliRunner().invoke(_app(), ["status", "--json"])
    assert r.exit_code == 4
    data = json.loads(r.output)
    _conforms(data, S.ClusterStatus)
    assert data["holder"] == "brave-panda"


def test_watch_interval_is_bounded():
    r = CliRunner().invoke(_app(), ["status", "--watch", "--interval", "0.1"])
    # click words the bound its own way by version: "greater than or equal to 1", "1.0<=x<=60.0"
    assert r.exit_code == 2 and re.search(r"greater than or equal to 1\b|\b1(\.0)?<=x", r.output), r.output


def test_watch_refreshes_until_interrupted(monkeypatch):
    samples = []
    st = assemble(*recorded("lab-applied"))

    def fake_read(cluster, previous=None, window=None):
        samples.append((previous is not None, window))
        if len(samples) == 3:
            raise KeyboardInterrupt
        return st

    monkeypatch.setattr(S, "read", fake_read)
    monkeypatch.setattr(S.time, "sleep", lambda s: None)
    with pytest.raises(KeyboardInterrupt):
        S.watch(object(), 1.0, lambda s: None)
    assert [p for p, _ in samples] == [False, True, True]


def test_ctrl_c_during_watch_exits_130_through_the_product_entry_point(tmp_path):
    """The real console entry: a KeyboardInterrupt inside the command ends as exit 130."""
    code = ("import sys, dynia.operations.status as S\n"
            "def boom(*a, **k): raise KeyboardInterrupt\n"
            "S.read = boom\n"
            "import dynia.spec.load as st; st.load_cluster = lambda p, n: None\n"
            "import dynia.cli.status as cs; cs.cluster_name = lambda ctx, e: 'lab'\n"
            "import typer; app = typer.Typer(); cs.register(app); app.command('noop')(lambda: None)\n"
            "import dynia.cli.main as m; m.app = app\n"
            "sys.argv = ['dynia', 'status', '--watch']\n"
            "from dynia.__main__ import main; main()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 130, r.stderr


def test_status_imports_no_pulumi():
    code = ("import sys, dynia.operations.status, dynia.cli.status;"
            "print(','.join(m for m in sys.modules if m.split('.')[0].startswith('pulumi')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_holder_of_adds_live_addresses_and_reports_provider_errors_as_text(monkeypatch):
    monkeypatch.setattr(local, "lab_api_url", lambda gateway: "http://127.0.0.1:9")   # nothing listens there
    answers = {"a": NodeFacts("a", {"addresses": ["10.213.0.11", "10.213.0.100"]}),
               "b": NodeFacts("b", error="TimeoutError")}
    known = {"a": {"10.213.0.11"}, "b": {"10.213.0.12"}}
    holder, error = S.holder_of(local.Local(), "10.213.0.100", known, answers)
    assert holder is None and "the lab's API stand-in at http://127.0.0.1:9 did not answer" in error
    answers["b"] = NodeFacts("b", {"addresses": ["10.213.0.12", "10.213.0.100"]})
    holder, error = S.holder_of(local.Local(), "10.213.0.100", known, answers)
    assert holder is None and "on 2 nodes: a, b" in error


def test_a_server_without_a_status_in_show_stat_is_no_crash():
    snap, answers = recorded("lab-applied")
    backends = answers["misty-owl"].facts["show_stat"]["backends"]
    server = next(iter(next(iter(backends.values()))["servers"].values()))
    server.update(status=None)
    assemble(snap, answers)  # no IndexError: a server of unknown status is simply not judged DOWN


def test_an_answer_the_parsers_cannot_read_is_that_nodes_error(monkeypatch):
    from dynia.nodes import facts as F
    from dynia.nodes import gather as G
    from dynia.nodes.push import Target

    class Conn:
        async def run(self, script, check=False):
            return type("R", (), {"stdout": "::dynia-fact vrrp\nMASTER\n::dynia-fact-rc 0\n"})()

        def close(self):
            pass

    async def connect(target):
        return Conn()

    def broken(output, status):
        raise AttributeError("'str' object has no attribute 'get'")

    monkeypatch.setattr(G, "connect", connect)
    answers = G.gather([Target("misty-owl", "10.213.0.11", Path("/nonexistent"), None)],
                       [F.Fact("vrrp", "cat /x", broken)])
    assert answers["misty-owl"].error is None
    assert answers["misty-owl"].unreadable == {"vrrp": "its parser failed (AttributeError)"}


def test_each_service_row_names_every_domain_routed_to_it(monkeypatch):
    domains = {"web": ["lab.example", "www.lab.example"], "api": ["api.lab.example"]}
    st = assemble(*recorded("lab-applied"), domains=domains)
    assert {s.service: s.domains for s in st.services} == {**domains, "admin": []}
    _fake_read(monkeypatch, st)
    r = CliRunner().invoke(_app(), ["status", "--json"])
    assert {s["service"]: s["domains"] for s in json.loads(r.output)["services"]}["web"] == domains["web"]
    r = CliRunner().invoke(_app(), ["status"], terminal_width=200)
    web = r.output.split("│ web ", 1)[1].splitlines()
    assert "│ lab.example " in web[0] and "│ www.lab.example " in web[1], r.output  # a line per domain


REFUSED_ASSIGNMENT = {"time": "2026-12-07T22:31:05Z", "outcome": "refused", "status": "403", "droplet": "3164444"}


def test_a_master_whose_last_reserved_ip_assignment_was_refused_is_a_problem_and_every_node_shows_its_record():
    snap, answers = recorded("lab-applied")
    answers["misty-owl"].facts["reserved_ip"] = dict(REFUSED_ASSIGNMENT)
    answers["brave-panda"].facts["reserved_ip"] = dict(REFUSED_ASSIGNMENT)   # from its own turn as MASTER
    st = assemble(snap, answers)
    assert st.problems == ["misty-owl is MASTER and its last reserved-IP assignment was refused (HTTP 403, "
                           "droplet 3164444, 2026-12-07T22:31:05Z)"]   # a BACKUP's old record is shown, not a problem
    rows = {n["node"]: n for n in st.as_dict()["nodes"]}
    assert rows["brave-panda"]["reservedIpAssignment"] == REFUSED_ASSIGNMENT
    assert rows["calm-otter"]["reservedIpAssignment"] is None
