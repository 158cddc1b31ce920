"""The roll's progress display (dynia.cli.progress), fed with engine events as the Pulumi CLI
writes them (built through the SDK's EngineEvent.from_json): the state machine, the plain
lines a CI log gets, and the live table a terminal gets."""
from __future__ import annotations

import io

from pulumi.automation.events import EngineEvent
from rich.console import Console

from dynia.cli.progress import Display, RollProgress

CMD = "command:remote:Command"


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def urn(stack, type_, name):
    return f"urn:pulumi:{stack}::dynia::dynia:index:NodeConfig${type_}::{name}"


def ev(kind, name, stack="shop-infra", type_=CMD, **extra):
    u = urn(stack, type_, name)
    md = {"op": extra.pop("op", "update"), "urn": u, "type": type_, "provider": ""}
    if kind == "pre":
        data = {"resourcePreEvent": {"metadata": md}}
    elif kind == "out":
        data = {"resOutputsEvent": {"metadata": md}}
    elif kind == "failed":
        data = {"resOpFailedEvent": {"metadata": md, "status": 1, "steps": 0}}
    else:  # a diagnostic: a line of the push's output, or its error
        data = {"diagnosticEvent": {"urn": u, "message": extra["message"], "color": "never",
                                    "severity": extra.get("severity", "info"), "ephemeral": True}}
    return EngineEvent.from_json({"sequence": 0, "timestamp": 0, **data})


def step(name, line):
    return ev("diag", name, message=line + "\n")


def roll(clock):
    """An infra roll: brave-panda ok after a second gate try, misty-owl's gate fails → rolled back."""
    yield ev("pre", "brave-panda-infra-push")
    for line in ("dynia-step backup", "dynia-step validate", "dynia-step reload", "dynia-step gate 1/3"):
        clock.now += 0.5
        yield step("brave-panda-infra-push", line)
    clock.now += 1.0
    yield step("brave-panda-infra-push", "dynia-step gate 2/3")
    clock.now += 0.5
    yield ev("out", "brave-panda-infra-push")
    yield ev("pre", "misty-owl-infra-push")
    for line in ("dynia-step backup", "dynia-step validate", "dynia-step reload", "dynia-step gate 1/1"):
        clock.now += 0.25
        yield step("misty-owl-infra-push", line)
    yield step("misty-owl-infra-push", "dynia-step rollback")
    clock.now += 1.0
    yield ev("diag", "misty-owl-infra-push", severity="error",
             message="Process exited with status 30: running \"python3 -c …\":\ndynia-step backup\n{\"status\": \"rolled-back\"}\n"
                     "dynia apply: misty-owl infra: health gate failed after 1 tries: haproxy (refused)")
    yield ev("failed", "misty-owl-infra-push")


def test_each_push_goes_waiting_pushing_steps_then_ok_or_rolled_back_with_its_elapsed_time():
    clock = Clock()
    p = RollProgress(clock)
    p.expect("infra", "brave-panda", "infra")
    p.expect("infra", "misty-owl", "infra")
    assert [r.state for r in p.rows.values()] == ["waiting", "waiting"]
    seen = []
    for e in roll(clock):
        seen += [(r.node, r.state, r.detail) for r in p.feed("infra", e)]
    assert seen == [("brave-panda", "pushing", ""), ("brave-panda", "validating", ""),
                    ("brave-panda", "reloading", ""), ("brave-panda", "gating", "try 1 of 3"),
                    ("brave-panda", "gating", "try 2 of 3"), ("brave-panda", "ok", ""),
                    ("misty-owl", "pushing", ""), ("misty-owl", "validating", ""),
                    ("misty-owl", "reloading", ""), ("misty-owl", "gating", "try 1 of 1"),
                    ("misty-owl", "rolling back", ""),
                    ("misty-owl", "rolled back", "health gate failed after 1 tries: haproxy (refused)")]
    brave, misty = p.rows.values()
    assert brave.elapsed(clock.now) == 3.5 and misty.elapsed(clock.now) == 2.0


def test_a_push_pulumi_finds_unchanged_and_a_layer_that_never_ran_end_unchanged():
    clock = Clock()
    p = RollProgress(clock)
    p.expect("apps", "misty-owl", "service:api")
    p.expect("apps", "misty-owl", "service:web")
    changed = p.feed("apps", ev("pre", "misty-owl-service-api-push", stack="shop-apps", op="same"))
    assert [(r.layer, r.state) for r in changed] == [("service:api", "unchanged")]
    assert p.feed("apps", ev("out", "misty-owl-service-api-push", stack="shop-apps", op="same")) == []
    assert [(r.layer, r.state) for r in p.phase_done("apps")] == [("service:web", "unchanged")]


def test_droplets_get_a_row_and_other_resources_none():
    clock = Clock()
    p = RollProgress(clock)
    t = "digitalocean:index/droplet:Droplet"
    p.feed("provision", ev("pre", "misty-owl-droplet", stack="shop-provision", type_=t, op="create"))
    clock.now += 42
    p.feed("provision", ev("out", "misty-owl-droplet", stack="shop-provision", type_=t, op="create"))
    p.feed("provision", ev("pre", "shop-vpc", stack="shop-provision", type_="digitalocean:index/vpc:Vpc"))
    [(key, row)] = p.rows.items()
    assert key == ("provision", "misty-owl", "droplet") and row.state == "ok" and row.elapsed(clock.now) == 42


def test_a_failure_without_step_lines_is_failed_with_its_reason():
    clock = Clock()
    p = RollProgress(clock)
    p.feed("infra", ev("pre", "brave-panda-infra-push"))
    [row] = p.feed("infra", ev("diag", "brave-panda-infra-push", severity="error",
                               message="ssh: dial tcp 198.51.100.12:22: connect: no route to host"))
    assert (row.state, row.detail) == ("failed", "ssh: dial tcp 198.51.100.12:22: connect: no route to host")


def test_without_a_terminal_each_change_is_one_plain_line():
    clock = Clock()
    out = io.StringIO()
    display = Display(Console(file=out, width=200, force_terminal=False), RollProgress(clock))
    display.progress.expect("infra", "brave-panda", "infra")
    display.progress.expect("infra", "misty-owl", "infra")
    with display:
        display.phase_started("infra")
        for e in roll(clock):
            display.event("infra", e)
        display.phase_done("infra")
    assert out.getvalue().splitlines() == [
        "phase infra: starting",
        "+0.0s infra brave-panda infra: pushing",
        "+1.0s infra brave-panda infra: validating",
        "+1.5s infra brave-panda infra: reloading",
        "+2.0s infra brave-panda infra: gating (try 1 of 3)",
        "+3.0s infra brave-panda infra: gating (try 2 of 3)",
        "+3.5s infra brave-panda infra: ok after 3.5s",
        "+3.5s infra misty-owl infra: pushing",
        "+4.0s infra misty-owl infra: validating",
        "+4.2s infra misty-owl infra: reloading",
        "+4.5s infra misty-owl infra: gating (try 1 of 1)",
        "+4.5s infra misty-owl infra: rolling back",
        "+5.5s infra misty-owl infra: rolled back (health gate failed after 1 tries: haproxy "
        "(refused)) after 2.0s",
    ]


def test_on_a_terminal_the_live_table_shows_one_row_per_node_and_layer():
    clock = Clock()
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True, color_system=None)
    display = Display(console, RollProgress(clock))
    display.progress.expect("infra", "brave-panda", "infra")
    display.progress.expect("infra", "misty-owl", "infra")
    with display:
        display.phase_started("infra")
        for e in roll(clock):
            display.event("infra", e)
    final = out.getvalue().split("dynia up: infra")[-1]
    lines = [ln.rstrip() for ln in final.splitlines() if "infra" in ln]
    assert any("brave-panda" in ln and " ok" in ln and "3.5s" in ln for ln in lines), final
    assert any("misty-owl" in ln and "rolled back" in ln and "2.0s" in ln for ln in lines), final
    assert "pushing" not in final.split("misty-owl")[0]  # no plain event lines on a terminal


def test_a_node_whose_second_word_is_service_keeps_its_own_row():
    from types import SimpleNamespace

    from dynia.cli.progress import _key

    def md(name):
        return SimpleNamespace(urn=f"urn:pulumi:s::dynia::dynia:index:NodeConfig$command:remote:Command::{name}",
                               type="command:remote:Command")

    assert _key(md("my-service-infra-push")) == ("my-service", "infra")
    assert _key(md("my-service-service-api-push")) == ("my-service", "service:api")
