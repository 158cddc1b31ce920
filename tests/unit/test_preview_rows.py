"""The engine preview's rows: which properties change and from what to what, from the engine's
ResourcePreEvents (built here from the event JSON the Pulumi CLI writes, through the SDK's own
EngineEvent.from_json), one row per replacement, and never a secret value."""
from __future__ import annotations

import io
import json

from pulumi.automation.events import EngineEvent
from rich.console import Console

from dynia.engine.automation import describe_change, preview_rows

NODES = ["misty-owl", "brave-panda"]
SIG = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-very-secret\n"
PAYLOAD = "42\nprint('bundle with the stats password hunter2-secret')"


def urn(stack: str, type_: str, name: str) -> str:
    return f"urn:pulumi:{stack}::dynia::{type_}::{name}"


def pre(op: str, type_: str, name: str, *, old=None, new=None, diffs=(), detailed=None, keys=None,
        stack="shop-infra") -> EngineEvent:
    u = urn(stack, type_, name)
    md = {"op": op, "urn": u, "type": type_, "provider": "", "diffs": list(diffs)}
    if detailed is not None:
        md["detailedDiff"] = detailed
    if keys is not None:
        md["keys"] = keys
    for side, inputs in (("old", old), ("new", new)):
        if inputs is not None:
            md[side] = {"type": type_, "urn": u, "id": "", "parent": "", "provider": "", "inputs": inputs,
                        "outputs": inputs}
    return EngineEvent.from_json({"sequence": 1, "timestamp": 0, "resourcePreEvent": {"metadata": md}})


def push_inputs(host: str, *, secret_form) -> dict:
    return {"connection": {"host": host, "user": "root", "privateKey": secret_form(PRIVATE_KEY)},
            "create": "python3 -c …", "stdin": secret_form(PAYLOAD), "triggers": ["a9eac0c5" if host.endswith("1") else "6c0d5dcd"]}


def blinded(value):  # what the engine writes without --show-secrets
    return {**SIG, "ciphertext": "[secret]"}


def shown(value):  # what it writes with --show-secrets: the plaintext, still marked secret
    return {**SIG, "plaintext": json.dumps(value)}


def test_an_update_lists_each_changed_property_from_old_to_new():
    ev = pre("update", "digitalocean:index/droplet:Droplet", "misty-owl",
             old={"size": "s-1vcpu-1gb", "tags": ["dynia", "shop"], "name": "misty-owl"},
             new={"size": "s-2vcpu-2gb", "tags": ["dynia", "shop", "api"], "name": "misty-owl"},
             diffs=["size", "tags"],
             detailed={"size": {"diffKind": "update", "inputDiff": True}, "tags[2]": {"diffKind": "add", "inputDiff": True}},
             stack="shop-provision")
    [row] = preview_rows("provision", [ev], NODES)
    assert (row.node, row.op, row.changed) == ("misty-owl", "update", ["size", "tags"])
    assert [p.as_dict() for p in row.properties] == [
        {"path": "size", "kind": "update", "old": '"s-1vcpu-1gb"', "new": '"s-2vcpu-2gb"', "forcesReplace": False},
        {"path": "tags[2]", "kind": "add", "old": None, "new": '"api"', "forcesReplace": False}]
    assert describe_change(row.as_dict()) == ['size: "s-1vcpu-1gb" → "s-2vcpu-2gb"', 'tags[2]: + "api"']


def test_a_replacement_is_one_row_naming_the_property_that_forces_it():
    t = "digitalocean:index/droplet:Droplet"
    old = {"region": "fra1", "size": "s-1vcpu-1gb"}
    new = {"region": "ams3", "size": "s-1vcpu-1gb"}
    detailed = {"region": {"diffKind": "update-replace", "inputDiff": True}}
    events = [pre(op, t, "brave-panda", old=old, new=new, diffs=["region"], detailed=detailed, keys=["region"],
                  stack="shop-provision")
              for op in ("create-replacement", "replace", "delete-replaced")]
    [row] = preview_rows("provision", events, NODES)
    assert (row.node, row.op, row.replace_because) == ("brave-panda", "replace", ["region"])
    assert row.as_dict()["properties"] == [{"path": "region", "kind": "update", "old": '"fra1"', "new": '"ams3"',
                                            "forcesReplace": True}]
    assert describe_change(row.as_dict()) == ["replaced because region changed",
                                              'region: "fra1" → "ams3" (forces replace)']


def test_replacement_reason_falls_back_to_the_engine_keys_without_a_detailed_diff():
    t = "command:remote:Command"
    events = [pre(op, t, "misty-owl-infra-push", diffs=["triggers"], keys=["triggers"])
              for op in ("create-replacement", "replace", "delete-replaced")]
    [row] = preview_rows("infra", events, NODES)
    assert row.op == "replace" and row.replace_because == ["triggers"]


def test_secret_inputs_are_shown_as_secret_and_their_values_never_appear():
    t = "command:remote:Command"
    for form in (blinded, shown, lambda v: "[secret]"):
        ev = pre("update", t, "misty-owl-infra-push",
                 old=push_inputs("10.0.0.1", secret_form=form), new=push_inputs("10.0.0.2", secret_form=form),
                 diffs=["connection", "stdin", "triggers"],
                 detailed={"connection.host": {"diffKind": "update", "inputDiff": True},
                           "connection.privateKey": {"diffKind": "update", "inputDiff": True},
                           "connection": {"diffKind": "update", "inputDiff": True},
                           "stdin": {"diffKind": "update", "inputDiff": True},
                           "triggers[0]": {"diffKind": "update-replace", "inputDiff": True}})
        [row] = preview_rows("infra", [ev], NODES)
        by_path = {p.path: p for p in row.properties}
        assert (by_path["stdin"].old, by_path["stdin"].new) == ("[secret]", "[secret]")
        assert by_path["connection.privateKey"].new == "[secret]" and by_path["connection"].new == "[secret]"
        assert by_path["connection.host"].new == '"10.0.0.2"'
        assert row.replace_because == ["triggers[0]"]
        table = io.StringIO()
        from dynia.cli import engine_common

        console = Console(file=table, width=200, force_terminal=False)
        engine_common.console = lambda: console  # the table as the operator's console prints it
        try:
            engine_common.print_rows([row])
        finally:
            del engine_common.console
        for text in (json.dumps(row.as_dict()), "\n".join(row.describe()), table.getvalue()):
            assert "very-secret" not in text and "hunter2" not in text and "OPENSSH" not in text
        assert "stdin: [secret] → [secret]" in table.getvalue()


def test_creates_deletes_and_unchanged_resources():
    t = "cloudflare:index/dnsRecord:DnsRecord"
    events = [pre("create", t, "shop-api-a", new={"content": "203.0.113.50"}, stack="shop-apps"),
              pre("same", t, "shop-www-a", old={"content": "x"}, new={"content": "x"}, stack="shop-apps"),
              pre("delete", t, "shop-old-a", old={"content": "203.0.113.9"}, stack="shop-apps")]
    rows = preview_rows("apps", events, NODES)
    assert [(r.resource, r.node, r.op, r.properties) for r in rows] == [("shop-api-a", "cluster", "create", []),
                                                                        ("shop-old-a", "cluster", "delete", [])]


def test_long_values_are_cut_and_unknown_values_named():
    ev = pre("update", "command:remote:Command", "misty-owl-apps-push",
             old={"create": "x" * 200, "host": "10.0.0.1"},
             new={"create": "y" * 200, "host": "04da6b54-80e4-46f7-96ec-b56ff0331ba9"},
             detailed={"create": {"diffKind": "update", "inputDiff": True}, "host": {"diffKind": "update", "inputDiff": True}},
             stack="shop-apps")
    [row] = preview_rows("apps", [ev], NODES)
    by_path = {p.path: p for p in row.properties}
    assert len(by_path["create"].new) == 60 and by_path["create"].new.endswith("…")
    assert by_path["host"].new == "[unknown]"
