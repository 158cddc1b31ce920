"""No raw control character reaches a terminal (issue 22b): text dynia did not write (node
answers, names, refs) is shown escaped in every output kind — Rich tables and lines, errors,
the Markdown plan — and `--json` stays exact JSON."""
from __future__ import annotations

import json
import re

import pytest

from dynia.operations import drift as D
from dynia.operations import status as S
from dynia.cli import common
from dynia.errors import DyniaError
from dynia.nodes.gather import NodeFacts
from dynia.shown import UNSAFE, escape

# A terminal title change (OSC), a screen clear in C1's one-byte CSI, a bidi override.
HOSTILE = "ok\x1b]0;pwned\x07\x9b2J\u202eKO"
# On the console: Rich itself drops BEL, BS, VT, FF and CR from every Text; the rest is escaped.
ON_CONSOLE = "ok\\x1b]0;pwned\\x9b2J\\u202eKO"


def _raw_controls(text: str) -> list[str]:
    return sorted({c for c in text if UNSAFE.match(c)})


@pytest.fixture
def out(monkeypatch, capsys):
    """What the CLI's own console prints (a fresh one: its render hook is the thing tested)."""
    monkeypatch.setattr(common, "_console", None)

    def read():
        return capsys.readouterr()
    return read


def test_escape_writes_each_control_as_its_code_and_keeps_tabs_newlines_and_text():
    assert escape(HOSTILE) == "ok\\x1b]0;pwned\\x07\\x9b2J\\u202eKO"
    assert escape("a\tb\nc ü ☃") == "a\tb\nc ü ☃"


def test_status_table_shows_a_nodes_hostile_answers_escaped(out):
    from dynia.cli.status import print_status

    facts = {"vrrp": {"role": "MASTER", "since": "2026-12-07T10:00:00Z\x1b[8m"},
             "applied": {"configVersion": 1}, "degraded": {"reason": HOSTILE, "time": "t\x1b[2J"},
             "running": {"haproxy": True, "caddy": True, "keepalived": True},
             "caddy_health": {"code": 200}, "addresses": ["10.0.0.1", "10.0.0.9"],
             "containers": [{"service": "web", "name": "dynia-web\x1b[1A", "state": "running",
                             "image": "x", "digest": "sha256:\x1b]2;t\x07"}],
             "show_stat": {"backends": {"be_any\x1b[2K": {"status": "UP", "hrsp": {}, "servers": {
                 "misty-owl": {"status": "DOWN", "check_desc": HOSTILE}}}}}}
    st = S.assemble(cluster="lab", nodes={"misty-owl": "10.0.0.1"}, services={"web": "all"}, desired_version=1,
                    reserved_ip="10.0.0.9", answers={"misty-owl": NodeFacts("misty-owl", facts)},
                    holder="misty-owl")
    print_status(st)
    shown = out().out
    assert _raw_controls(shown) == []
    assert f"{ON_CONSOLE} (t\\x1b[2J)" in shown  # the degraded reason and time
    assert "be_any\\x1b[2K" in shown


def test_drift_table_escapes_node_errors_and_targets(out):
    from dynia.cli.drift import print_report

    report = D.DriftReport("lab", [D.NodeDrift("a", error=HOSTILE),
                                   D.NodeDrift("b", [D.Drift("leftover", "/etc/caddy/routes/x\x1b[2J.caddy", None,
                                                             "route file no service renders")])])
    print_report(report)
    shown = out().out
    assert _raw_controls(shown) == []
    assert "x\\x1b[2J.caddy" in shown


def test_plain_lines_escape_and_keep_their_styles(out):
    common.say("cluster ", (HOSTILE, "bold"), " done")
    shown = out().out
    assert _raw_controls(shown) == []
    assert shown == f"cluster {ON_CONSOLE} done\n"


def test_errors_print_their_message_hint_and_resume_escaped(capsys):
    from dynia.cli import main

    with pytest.raises(SystemExit) as exc:
        main._fail(DyniaError("network", f"misty-owl said {HOSTILE}", f"look at {HOSTILE}", f"dynia up {HOSTILE}"))
    assert exc.value.code == 14
    err = capsys.readouterr().err
    assert _raw_controls(err.replace("\n", "")) == []
    assert err.count("ok\\x1b]0;pwned") == 3


def test_markdown_plan_escapes_paths_and_diffs():
    from dynia.plan.report import markdown

    change = {"path": "/srv/x\x1b[2J", "op": "change", "oldSha256": "a" * 64, "newSha256": "b" * 64,
              "component": "caddy", "detail": None, "secret": False,
              "diff": f"--- a\n+++ b\n-old\n+{HOSTILE}\n", "diffNote": None}
    plan = {"cluster": "lab", "configVersion": 2, "appliedVersion": 1, "addresses": "provisioned",
            "rollingOrder": ["misty-owl"], "pending": 1,
            "nodes": [{"node": "misty-owl", "privateIp": "10.0.0.1", "changes": [change], "unchanged": 0,
                       "reload": ["caddy"], "secretSlots": []}],
            "guard": {"nodes": [], "onExceed": "warn", "assumedDefaults": []}}
    text = markdown(plan)
    assert _raw_controls(text.replace("\n", "")) == []
    assert "/srv/x\\x1b[2J" in text and f"+{escape(HOSTILE)}" in text


def test_json_keeps_node_text_exact_and_free_of_raw_controls(capsys):
    report = D.DriftReport("lab", [D.NodeDrift("a", error=HOSTILE)])
    common.emit_json(report.as_dict())
    printed = capsys.readouterr().out
    assert _raw_controls(printed.replace("\n", "")) == []
    assert json.loads(printed)["nodes"][0]["error"] == HOSTILE


def test_the_live_progress_table_escapes_what_a_push_reported():
    """Rich's Live draws past the console's hook: the row detail (engine and node words) is escaped."""
    import io

    from pulumi.automation.events import EngineEvent
    from rich.console import Console

    from dynia.cli.progress import RollProgress

    urn = "urn:pulumi:shop-infra::dynia::dynia:index:NodeConfig$command:remote:Command::brave-panda-infra-push"
    md = {"op": "update", "urn": urn, "type": "command:remote:Command", "provider": ""}
    p = RollProgress(lambda: 0.0)
    p.feed("infra", EngineEvent.from_json({"sequence": 0, "timestamp": 0, "resourcePreEvent": {"metadata": md}}))
    p.feed("infra", EngineEvent.from_json({"sequence": 1, "timestamp": 0, "diagnosticEvent": {
        "urn": urn, "message": f"failed: {HOSTILE}", "color": "never", "severity": "error", "ephemeral": True}}))
    out = io.StringIO()
    Console(file=out, width=200, force_terminal=False).print(p.table())
    assert _raw_controls(out.getvalue()) == [] and escape(HOSTILE) in out.getvalue()


# --- one JSON key casing (issue 21.10) ---------------------------------------------------------

FIELD = re.compile(r"[a-z][A-Za-z0-9]*")


def _keys(value, path=""):
    """Every key of a JSON document with where it is; dict values under `data` keys are skipped:
    their keys are names (nodes, paths, components), not fields."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield path, k
            if not (k in DATA_KEYED and isinstance(v, dict)):
                yield from _keys(v, f"{path}.{k}")
    elif isinstance(value, list):
        for v in value:
            yield from _keys(v, path + "[]")


# Fields whose value is a map keyed by data: node, service, component, path, HTTP class.
DATA_KEYED = {"running", "servers", "http", "containers", "nodes"}


def test_status_plan_drift_and_render_json_share_camel_case_and_a_schema_version(cli, project, monkeypatch):
    from tests.unit.test_status import assemble, recorded

    docs = {"status": assemble(*recorded("lab-applied")).as_dict(),
            "drift-check": D.DriftReport("lab", [D.NodeDrift("a", [D.Drift("mode", "/etc/x", "infra", "mode")])]).as_dict()}
    for args in (("render", "--json"), ("plan", "--offline", "--json")):
        r = cli("-C", str(project), *args, "--cluster", "lab")
        assert r.code in (0, 3), r.err
        docs[args[0]] = json.loads(r.out)
    for name, doc in docs.items():
        assert isinstance(doc.get("schemaVersion"), int), name
        bad = [(where, k) for where, k in _keys(doc) if not FIELD.fullmatch(k)]
        assert bad == [], (name, bad[:5])
