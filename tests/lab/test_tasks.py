"""One-off tasks, release commands and maintenance mode on real lab nodes, applied as `dynia up`
applies them (tests/devlab.py: the real phase programs, only the Pulumi stacks stood in for; the
stand-in stacks' outputs are the cluster's state every machine reads, the runs stack included).

- `dynia run` runs in a new container on exactly one node (podman's own event log says which),
  streams its lines, passes its exit status on, leaves no container, and its record is read back
  by another engine from the state;
- a failing release command stops `dynia up` before any push: every node's applied record and
  managed files are byte-identical, and the error carries the command's output; a passing one runs
  once per release;
- maintenance on: every node's HAProxy (and the VIP) answers the service's domain 503 with the page
  and Retry-After, the other services 200, the servers still checked UP; off: 200 again.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import time

import pytest

from dynia.errors import DyniaError
from dynia.planner import rolling_order
from dynia.nodes.lab import Lab
from dynia.spec.load import load_cluster
from dynia.state.store import Project

from .conftest import LabCluster, _require_lab_tools, eventually, new_visitor
from .own_subnet import examples_copy

pytestmark = pytest.mark.usefixtures("lab_tools")


class Applied:
    """The lab cluster after a full `up` (devlab), and a fresh engine on its state per call."""

    def __init__(self, project: Project, devlab):
        self.project, self.devlab = project, devlab

    @property
    def cluster(self):
        return load_cluster(self.project, "lab")

    @property
    def lab(self) -> Lab:
        return self.devlab.lab()

    def engine(self):
        """An engine as a command builds one: on the cluster's state (the stand-in stacks)."""
        import tests.devlab as devlab
        from dynia.nodes.gather import vip_holder
        from dynia.engine.targets import targets

        if devlab.DevlabEngine is None:
            devlab.DevlabEngine = devlab._engine_class()
        cluster = self.cluster
        return devlab.DevlabEngine(cluster, self.devlab.lab_dir / devlab.DOUBLE_STATE,
                                   holder=vip_holder(targets(cluster)))

    def sh(self, node: str, script: str) -> str:
        return self.lab.run(node, script).stdout.decode()

    def node_state(self) -> dict[str, dict[str, str]]:
        """Per node: its applied record and the sha256 of every file that record names."""
        out = {}
        for n in self.lab.nodes:
            applied = self.sh(n.id, "cat /opt/dynia/state/applied.json")
            paths = sorted({p for layer in json.loads(applied)["layers"].values() for p in layer})
            sums = self.sh(n.id, "sha256sum " + " ".join(paths) + " 2>&1 || true")
            out[n.id] = {"applied": hashlib.sha256(applied.encode()).hexdigest(), "files": sums}
        return out

    def fetch(self, address: str, host: str) -> tuple[int, http.client.HTTPMessage, bytes]:
        """GET / of `host` from one node's HAProxy (or the VIP), as the lab's edge."""
        tls = LabCluster(self.project, self.lab).client_tls
        conn = http.client.HTTPSConnection(address, 443, timeout=5, context=tls)
        try:
            conn.request("GET", "/", headers={"Host": host, "CF-Connecting-IP": new_visitor()})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def applied(tmp_path_factory):
    from tests.devlab import DevLab

    _require_lab_tools()
    root = tmp_path_factory.mktemp("tasks") / "proj"
    project = Project(root)
    with examples_copy(root, project.lab_dir("lab")):
        devlab = DevLab(project, "lab")
        try:
            devlab.up(lambda line: None)
            yield Applied(project, devlab)
        finally:
            devlab.down()


def created_containers(a: Applied, since: float) -> dict[str, list[str]]:
    """node → names of the containers podman created there since `since` (its event log)."""
    out = {}
    for n in a.lab.nodes:
        text = a.sh(n.id, f"podman events --stream=false --since {int(since)} --filter event=create "
                          "--format '{{.Name}}'")
        out[n.id] = [line for line in text.splitlines() if line.strip()]
    return out


def test_run_executes_on_exactly_one_node_streams_passes_its_exit_and_is_recorded_in_the_state(applied):
    from dynia.operations.tasks import list_runs, run_task

    a = applied
    cluster = a.cluster
    order = rolling_order(cluster.spec.nodes, cluster.spec.master_node, a.engine().holder)
    ips = {n.id: n.ip for n in a.lab.nodes}
    lines: list[tuple[str, str]] = []
    since = time.time() - 1
    # The container shares the node's network (lab nodes run podman with host networking): the
    # address it prints names the node it ran on.
    script = "ip -4 -o addr show eth0; printf '\\033]0;x\\n' >&2; exit 7"   # an ESC from the node
    record = run_task(cluster, "api", ["sh", "-c", script],
                      lambda s, line: lines.append((s, line)), engine=a.engine())
    assert record.exit == 7 and record.node == order[0] and record.kind == "run"
    out = [line for s, line in lines if s == "stdout"]
    assert any(f" {ips[order[0]]}/" in line for line in out), out
    assert not any(f" {ips[n]}/" in line for n in ips if n != order[0] for line in out), out
    assert ("stderr", "\x1b]0;x") in lines   # handed over raw; the printers escape (tests/cli)
    # Only the service's own containers: a shared lab's other services may be recreated meanwhile.
    created = {n: [c for c in names if "api" in c] for n, names in created_containers(a, since).items()}
    assert [n for n, names in created.items() if names] == [order[0]], created
    assert len(created[order[0]]) == 1
    left = a.sh(order[0], "podman ps -a --format '{{.Names}}'").split()
    assert created[order[0]][0] not in left, left   # removed after

    # --node elsewhere, and the active-only admin on the VIP holder by default
    other = run_task(cluster, "web", ["sh", "-c", "exit 0"], lambda s, line: None, node=order[1], engine=a.engine())
    admin = run_task(cluster, "admin", ["sh", "-c", "exit 0"], lambda s, line: None, engine=a.engine())
    holder = a.engine().holder
    assert (other.node, other.exit) == (order[1], 0) and (admin.node, admin.exit) == (holder, 0)

    # Read back by another engine from the state alone (another machine: no memory of the runs).
    listed = list_runs(cluster, engine=a.engine())
    assert [(r.service, r.node, r.exit, r.command[-1]) for r in listed[-3:]] == \
        [("api", order[0], 7, script),
         ("web", order[1], 0, "exit 0"), ("admin", holder, 0, "exit 0")]
    assert all("@" in r.who and r.time.endswith("+00:00") for r in listed)


def test_a_failing_release_command_stops_up_before_any_push_with_its_output_and_a_passing_one_runs_once(applied):
    from dynia.operations.tasks import list_runs
    from dynia.operations.up import apply_parts

    a = applied
    compose = a.project.root / "services" / "lab-api.yml"
    original = compose.read_text()
    spec_path = a.project.spec_path("lab")
    spec_text = spec_path.read_text()
    anchor = "    compose: services/lab-api.yml\n"
    assert anchor in spec_text and "    mem_limit: 64m\n" in original
    # A release: a new environment for api, and a migration that fails after printing.
    compose.write_text(original.replace("    mem_limit: 64m\n", "    mem_limit: 64m\n    environment:\n"
                                                              "      RELEASE: \"2\"\n"))
    failing = '["sh", "-c", "echo migrating $RELEASE; echo \\"boom: no table\\" >&2; exit 3"]'
    spec_path.write_text(spec_text.replace(anchor, anchor + f"    release_command: {failing}\n"))
    before = a.node_state()
    said: list[str] = []
    with pytest.raises(DyniaError) as failed:
        apply_parts(a.engine(), ("provision", "infra", "apps"), False, lambda: None, said.append)
    err = failed.value
    assert err.kind == "health" and err.exit_code == 16, err
    assert "migrating 2" in err.message and "boom: no table" in err.message and "exit 3" in err.message, err.message
    assert "no node was changed" in err.message and err.resume == "dynia up --cluster lab"
    assert any(line.endswith("boom: no table") for line in said), said
    assert a.node_state() == before   # no push ran: applied records and every managed file as they were
    last = list_runs(a.cluster, engine=a.engine())[-1]
    assert (last.kind, last.service, last.exit) == ("release", "api", 3)

    passing = '["sh", "-c", "echo migrated $RELEASE"]'
    spec_path.write_text(spec_text.replace(anchor, anchor + f"    release_command: {passing}\n"))
    count = len(list_runs(a.cluster, engine=a.engine()))
    apply_parts(a.engine(), ("provision", "infra", "apps"), False, lambda: None, said.append)
    runs = list_runs(a.cluster, engine=a.engine())
    assert [(r.kind, r.service, r.exit) for r in runs[count:]] == [("release", "api", 0)]
    assert "release api on" in said[-1] or any("migrated 2" in line for line in said)
    assert all("RELEASE" in a.sh(n.id, "cat /opt/dynia/compose/api/docker-compose.yml") for n in a.lab.nodes)
    # the same release again: nothing to run
    apply_parts(a.engine(), ("provision", "infra", "apps"), False, lambda: None, said.append)
    assert len(list_runs(a.cluster, engine=a.engine())) == count + 1


def test_maintenance_answers_503_with_retry_after_on_every_node_and_the_vip_then_serves_again(applied):
    from dynia.spec.editing import set_maintenance
    from dynia.operations.up import apply_parts

    a = applied
    api, web = "api.lab.example", "lab.example"
    addresses = [n.ip for n in a.lab.nodes] + [a.lab.vip]
    assert set_maintenance(a.project, "lab", ["api"], "Back at five <b>", on=True) == ["api"]
    apply_parts(a.engine(), ("infra",), False, lambda: None)
    for address in addresses:
        status, headers, body = a.fetch(address, api)
        assert (status, headers["Retry-After"]) == (503, "300"), (address, status, body[:200])
        assert b"Back at five &lt;b&gt;" in body and headers["Content-Type"].startswith("text/html")
        assert headers["Strict-Transport-Security"]   # dynia's headers on HAProxy's own answer too
        assert a.fetch(address, web)[0] == 200, address
    # The health checks still ask the servers: every api server stays UP on every node.
    from dynia.nodes import facts as F
    from dynia.nodes.gather import gather
    from dynia.engine.targets import targets

    def api_servers_up() -> bool:
        # (asked until every HAProxy answers: its stats socket is briefly away while a reload hands over)
        stats = gather(targets(a.cluster), [F.SHOW_STAT])
        servers = [(answer.facts.get("show_stat") or {}).get("backends", {}).get("be_api", {}).get("servers")
                   for answer in stats.values()]
        return all(s and all((v["status"] or "").startswith("UP") for v in s.values()) for s in servers)

    assert eventually(api_servers_up, timeout=10)

    set_maintenance(a.project, "lab", ["api"], None, on=False)
    apply_parts(a.engine(), ("infra",), False, lambda: None)
    for address in addresses:
        assert eventually(lambda address=address: a.fetch(address, api)[0] == 200), address
