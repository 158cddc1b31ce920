"""Safe resizes: dynia's roll, against a DigitalOcean double that answers in the documented
shapes of the droplet actions API (POST /v2/droplets/{id}/actions → {"action": {"id",
"status": "in-progress", "type", "resource_id", …}}, GET /v2/actions/{id}, GET
/v2/droplets/{id} → {"droplet": {"status", "size_slug", …}}), reached through
DIGITALOCEAN_API_URL by the real HTTP client. One timeline holds the API's requests and the
node steps: the VIP leaves the holder before it goes down, and the next node waits for the
previous node's gate."""
from __future__ import annotations

import itertools
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dynia.errors import DyniaError
from dynia.providers.do_actions import DropletPower
from dynia.resize import Resize, notices, pending, roll, wait_until

IDS = {"brave-panda": "3164444", "misty-owl": "3164450"}


class Droplets:
    """DigitalOcean's droplet actions as documented: an action starts `in-progress` and is
    `completed` when read back; shutdown and power_off turn a droplet `off` (unless it ignores
    the ACPI shutdown), power_on `active`, resize (only while off) changes its size_slug."""

    def __init__(self, timeline: list, ignores_shutdown=(), errors=()):
        self.timeline = timeline
        self.droplets = {i: {"id": int(i), "status": "active", "size_slug": "s-1vcpu-1gb"} for i in IDS.values()}
        self.actions: dict[int, dict] = {}
        self.ids = itertools.count(36804636)
        self.ignores_shutdown, self.errors = set(ignores_shutdown), set(errors)
        double = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status, data):
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802
                parts = self.path.strip("/").split("/")
                if parts[:2] == ["v2", "actions"]:
                    return self._send(200, {"action": double.actions[int(parts[2])]})
                return self._send(200, {"droplet": double.droplets[parts[2]]})

            def do_POST(self):  # noqa: N802
                droplet_id = self.path.strip("/").split("/")[2]
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                double.timeline.append(("api", body["type"], droplet_id) + ((body["size"], body["disk"])
                                                                           if body["type"] == "resize" else ()))
                d = double.droplets[droplet_id]
                if body["type"] == "resize" and d["status"] != "off":
                    return self._send(422, {"id": "unprocessable_entity", "message": "Droplet must be powered off"})
                action_id = next(double.ids)
                errored = body["type"] in double.errors
                if not errored:
                    if body["type"] == "power_off" or (body["type"] == "shutdown"
                                                       and droplet_id not in double.ignores_shutdown):
                        d["status"] = "off"
                    elif body["type"] == "power_on":
                        d["status"] = "active"
                    elif body["type"] == "resize":
                        d["size_slug"] = body["size"]
                double.actions[action_id] = {"id": action_id, "status": "errored" if errored else "completed",
                                             "type": body["type"], "started_at": "2026-12-07T22:00:00Z",
                                             "completed_at": None, "resource_id": int(droplet_id),
                                             "resource_type": "droplet", "region_slug": "sgp1"}
                self._send(201, {"action": {**double.actions[action_id], "status": "in-progress"}})

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"


class Steps:
    """The node side, recorded on the same timeline. The gate passes only once the droplet is
    `active` again and its services answered on the third look (a booting node)."""

    def __init__(self, timeline: list, double: Droplets):
        self.timeline, self.double = timeline, double
        self.looks: dict[str, int] = {}

    def vip_away(self, node):
        self.timeline.append(("vip away", node))

    def drain(self, node):
        self.timeline.append(("drain", node))

    def restore(self, node):
        self.timeline.append(("restore", node))

    def start(self, node):
        self.timeline.append(("started", node))

    def gate(self, node):
        def answered():
            self.looks[node] = self.looks.get(node, 0) + 1
            booted = self.double.droplets[IDS[node]]["status"] == "active" and self.looks[node] >= 3
            return None if booted else "services not answering yet"
        wait_until(answered, 5, 0, f"{node} gate", "hint", sleep=lambda s: None)
        self.timeline.append(("gated", node, self.looks[node]))


@pytest.fixture
def api(monkeypatch):
    timeline: list = []
    made = []

    def make(**kw):
        double = Droplets(timeline, **kw)
        made.append(double)
        monkeypatch.setenv("DIGITALOCEAN_API_URL", double.url)
        monkeypatch.setenv("DIGITALOCEAN_TOKEN", "dop_v1_test")
        return double, timeline
    yield make
    for d in made:
        d.server.shutdown()
        d.server.server_close()


def fast_power(**kw) -> DropletPower:
    return DropletPower(sleep=lambda s: None, **kw)


def test_the_roll_moves_the_vip_away_first_and_each_node_waits_for_the_previous_gate(api):
    double, timeline = api()
    power = fast_power()
    order = ["brave-panda", "misty-owl"]          # rolling order: the backup, then the holder
    resizes = pending(order, IDS, "s-2vcpu-2gb", power)
    assert resizes == [Resize("brave-panda", IDS["brave-panda"], "s-1vcpu-1gb", "s-2vcpu-2gb"),
                       Resize("misty-owl", IDS["misty-owl"], "s-1vcpu-1gb", "s-2vcpu-2gb")]
    assert roll(resizes, "misty-owl", power, Steps(timeline, double)) == order
    b, m = IDS["brave-panda"], IDS["misty-owl"]
    assert timeline == [
        ("drain", "brave-panda"), ("api", "shutdown", b), ("api", "resize", b, "s-2vcpu-2gb", True),
        ("api", "power_on", b), ("started", "brave-panda"), ("gated", "brave-panda", 3),
        ("vip away", "misty-owl"), ("drain", "misty-owl"), ("api", "shutdown", m),
        ("api", "resize", m, "s-2vcpu-2gb", True), ("api", "power_on", m), ("started", "misty-owl"),
        ("gated", "misty-owl", 3)]
    assert {d["size_slug"] for d in double.droplets.values()} == {"s-2vcpu-2gb"}
    # done: nothing is pending any more, and a second roll touches nothing
    assert pending(order, IDS, "s-2vcpu-2gb", power) == []


def test_a_droplet_that_ignores_the_graceful_shutdown_is_powered_off_after_the_bound(api):
    double, timeline = api(ignores_shutdown=[IDS["brave-panda"]])
    power = fast_power(shutdown_seconds=0.2)
    roll(pending(["brave-panda"], IDS, "s-2vcpu-2gb", power), None, power, Steps(timeline, double))
    b = IDS["brave-panda"]
    assert [e for e in timeline if e[0] == "api"][:3] == [
        ("api", "shutdown", b), ("api", "power_off", b), ("api", "resize", b, "s-2vcpu-2gb", True)]


def test_an_errored_action_stops_the_roll_before_the_next_node_with_a_provider_error(api):
    double, timeline = api(errors=["resize"])
    power = fast_power()
    with pytest.raises(DyniaError) as caught:
        roll(pending(["brave-panda", "misty-owl"], IDS, "s-2vcpu-2gb", power), "misty-owl", power,
             Steps(timeline, double))
    assert caught.value.kind == "provider"
    assert caught.value.message.startswith("resize of brave-panda (s-1vcpu-1gb → s-2vcpu-2gb) stopped: ")
    assert caught.value.message.endswith("not resized yet: misty-owl")
    assert not [e for e in timeline if IDS["misty-owl"] in e or "misty-owl" in e]


def test_a_gate_that_never_passes_stops_the_roll_with_a_health_error(api):
    double, timeline = api()
    power = fast_power()

    class NeverUp(Steps):
        def gate(self, node):
            wait_until(lambda: "caddy does not pass", 0.05, 0, f"{node} did not pass its gate", "look at it",
                       sleep=lambda s: None)
    with pytest.raises(DyniaError) as caught:
        roll(pending(["brave-panda", "misty-owl"], IDS, "s-2vcpu-2gb", power), "misty-owl", power,
             NeverUp(timeline, double))
    assert caught.value.kind == "health" and "caddy does not pass" in caught.value.message
    assert ("vip away", "misty-owl") not in timeline
    assert ("restore", "brave-panda") not in timeline   # it was powered off: the gate is what failed


def test_a_holder_whose_shutdown_errored_is_put_back_in_service_before_the_error(api):
    double, timeline = api(errors=["shutdown"])
    power = fast_power()
    with pytest.raises(DyniaError) as caught:
        roll(pending(["misty-owl"], IDS, "s-2vcpu-2gb", power), "misty-owl", power, Steps(timeline, double))
    assert caught.value.kind == "provider"
    assert timeline == [("vip away", "misty-owl"), ("drain", "misty-owl"), ("api", "shutdown", IDS["misty-owl"]),
                        ("restore", "misty-owl")]


def test_plan_names_each_node_the_roll_will_resize(project):
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    spec = load_cluster(Project(project), "shop").spec
    assert notices(spec, {"misty-owl": spec.provider.size, "brave-panda": spec.provider.size}) == []
    (note,) = notices(spec, {"misty-owl": spec.provider.size, "brave-panda": "s-8vcpu-16gb"})
    assert note["kind"] == "resize" and note["text"].startswith(
        f"brave-panda s-8vcpu-16gb → {spec.provider.size} by dynia's roll (VIP moved away (holder only), drained, "
        "shut down, resized, powered on, services started, gated; one node at a time)")


def test_the_gate_command_runs_every_check_and_names_the_first_that_fails(project):
    from dynia.engine.resize_steps import gate_command
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    spec = load_cluster(Project(project), "shop").spec
    command = gate_command(spec, "brave-panda", "127.0.0.1", as_master=False)
    assert "-H 'Host: api.example.com' http://127.0.0.1:8081/healthz" in command
    proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout.strip() == "firewall"   # no dynia table on this machine


def test_plan_offline_shows_the_resize_from_the_size_the_state_recorded(project, cli):
    from dynia.state import cache
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    cluster = load_cluster(Project(project), "shop")
    cache.ClusterCache.of(cluster).write_outputs({"nodes": {
        "misty-owl": {"private_ip": "10.110.0.2", "public_ip": "198.51.100.11", "size": cluster.spec.provider.size},
        "brave-panda": {"private_ip": "10.110.0.3", "public_ip": "198.51.100.12", "size": "s-8vcpu-16gb"}},
        "reserved_ip": "203.0.113.50"})
    r = cli("-C", str(project), "plan", "--offline", "--cluster", "shop", "--json")
    assert r.code == 0, r.err
    assert [n["text"].split(" by ")[0] for n in json.loads(r.out)["notices"] if n["kind"] == "resize"] == [
        f"brave-panda s-8vcpu-16gb → {cluster.spec.provider.size}"]


@pytest.mark.parametrize("holder", ["misty-owl", None], ids=["holder-read-live", "holder-unknown"])
def test_the_engines_roll_resizes_only_what_differs_live_then_refreshes_the_state_and_the_cache(
        project, api, monkeypatch, holder):
    from dynia.engine import automation as E
    from dynia.engine import resize_steps
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    double, timeline = api()
    cluster = load_cluster(Project(project), "shop")
    spec_size = cluster.spec.provider.size
    for d in double.droplets.values():
        d["size_slug"] = "s-8vcpu-16gb" if d["id"] == int(IDS["brave-panda"]) else spec_size

    class Recorded(Steps):
        def __init__(self, spec, targets, private_ips, say):
            super().__init__(timeline, double)
    monkeypatch.setattr(resize_steps, "SshNodeSteps", Recorded)
    monkeypatch.setattr("dynia.providers.do_actions.DropletPower", lambda: fast_power())
    monkeypatch.setattr(E, "stack_refresh", lambda engine, phase: timeline.append(("refresh", phase)))
    provision = {"nodes": {n: {"private_ip": f"10.110.0.{i + 2}", "public_ip": f"198.51.100.{i + 11}",
                               "droplet_id": IDS[n], "size": "s-1vcpu-1gb"}
                           for i, n in enumerate(("misty-owl", "brave-panda"))}, "reservedIp": "203.0.113.50"}
    E.Engine(cluster, holder=holder).resize_roll(provision)
    b = IDS["brave-panda"]
    assert timeline == [("drain", "brave-panda"), ("api", "shutdown", b), ("api", "resize", b, spec_size, True),
                        ("api", "power_on", b), ("started", "brave-panda"), ("gated", "brave-panda", 3),
                        ("refresh", "provision")]
    from dynia.state import cache
    cached = cache.ClusterCache.of(cluster).read_outputs()
    assert cached.nodes["brave-panda"].size == spec_size


def test_the_engine_moves_the_vip_from_the_configured_master_when_no_node_said_who_holds_it(project, api, monkeypatch):
    from dynia.engine import automation as E
    from dynia.engine import resize_steps
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    double, timeline = api()
    cluster = load_cluster(Project(project), "shop")

    class Recorded(Steps):
        def __init__(self, spec, targets, private_ips, say):
            super().__init__(timeline, double)
    monkeypatch.setattr(resize_steps, "SshNodeSteps", Recorded)
    monkeypatch.setattr("dynia.providers.do_actions.DropletPower", lambda: fast_power())
    monkeypatch.setattr(E, "stack_refresh", lambda engine, phase: None)
    provision = {"nodes": {n: {"private_ip": f"10.110.0.{i + 2}", "public_ip": f"198.51.100.{i + 11}",
                               "droplet_id": IDS[n], "size": "s-1vcpu-1gb"}
                           for i, n in enumerate(("misty-owl", "brave-panda"))}, "reservedIp": "203.0.113.50"}
    assert cluster.spec.master_node == "misty-owl"
    E.Engine(cluster, holder=None).resize_roll(provision)
    assert [e[:2] for e in timeline if e[0] in ("vip away", "gated")] == [("gated", "brave-panda"),
                                                                           ("vip away", "misty-owl"),
                                                                           ("gated", "misty-owl")]


def test_the_handover_drops_new_connections_from_off_the_node_and_is_valid_shell():
    from dynia.engine.resize_steps import handover_off, handover_on

    on = handover_on()
    assert "iifname != lo tcp dport '{ 80, 443 }' ct state new drop" in on
    assert "ss -Htn state established '( sport = :80 or sport = :443 )'" in on
    for command in (on, handover_off()):
        assert subprocess.run(["sh", "-n", "-c", command]).returncode == 0


def test_the_gate_before_keepalived_rejoins_leaves_out_only_keepalived(project):
    from dynia.engine.resize_steps import gate_command
    from dynia.spec.load import load_cluster
    from dynia.state.store import Project

    spec = load_cluster(Project(project), "shop").spec
    full = gate_command(spec, "brave-panda", "127.0.0.1", as_master=False)
    before = gate_command(spec, "brave-panda", "127.0.0.1", as_master=False, without=("keepalived",))
    assert "echo keepalived" in full and "echo keepalived" not in before
    assert before.count("|| { echo ") == full.count("|| { echo ") - 1
