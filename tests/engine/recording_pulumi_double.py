#!/usr/bin/env python3
"""RECORDING TEST DOUBLE of the `pulumi` executable — not Pulumi.

Installed as `pulumi` on PATH by tests/engine/test_engine_flow.py. It records every argv
(one JSON line per call in $RECORDING_PULUMI_LOG) and answers the few subcommands the
Automation API runs with minimal, well-formed output, so the tests can check what dynia's
engine asks Pulumi to do and in which order. It never runs a program or touches a cloud.

$RECORDING_PULUMI_FAIL="<stack>:<resource>:<message>" makes `up` on that stack fail with
an error diagnostic on that resource (as the command provider reports a failed push).

`up` of a push stack (infra, apps) reports the pushes as the engine does: a ResourcePreEvent,
the apply script's `dynia-step` lines as the command provider logs them (ephemeral info
diagnostics on the push, while it runs), then ResOutputsEvent — or, for the failing push,
the steps through `rollback` and the error diagnostic.

$RECORDING_PULUMI_NO_OUTPUTS=1 makes the provision stack report no outputs (never provisioned);
=no-stack makes selecting any stack without creating it fail as the CLI does for a missing one.

$RECORDING_PULUMI_PREVIEW_SECRET=<value> makes `preview` of the infra stack report an update of
misty-owl's push whose secret stdin (that value, in the engine's --show-secrets form) changes,
with its host changed and a trigger forcing a replacement (the three steps of a replace).

$RECORDING_PULUMI_STACK_PASSPHRASE="<stack>=<passphrase>,…" gives those stacks a passphrase of
their own (each stack has its own salt): every command that needs the stack's secrets manager
(stack import/output, config, up, preview, refresh, destroy) then fails as Pulumi does when
PULUMI_CONFIG_PASSPHRASE is another one.

$RECORDING_PULUMI_REFRESH_FAIL=<stack> makes `refresh` of that stack fail as a provider's read
does when its API refuses the token.

$RECORDING_PULUMI_STATE/outputs-<stack>.json, when a test writes it, adds its outputs to what
`stack output` reports for that stack (e.g. the releases ledger's `releases`).

`config set/get/rm` keep each stack's config in $RECORDING_PULUMI_STATE/config-<stack>.json;
`config get` of a key never set fails as Pulumi does ("configuration key … not found").

$RECORDING_PULUMI_PROVISION_RESOURCES=<JSON list> is what the provision stack's state holds
(`stack export`); an imported deployment replaces it. $RECORDING_PULUMI_UNDELETABLE=<id> makes
`destroy` of the provision stack fail as DigitalOcean answers the delete of a region's default
VPC — unless the state marks that resource retainOnDelete (Pulumi then only forgets it).
"""
import json
import os
import sys
import time

args = [a for a in sys.argv[1:] if a != "--non-interactive"]
state_dir = os.environ["RECORDING_PULUMI_STATE"]
with open(os.environ["RECORDING_PULUMI_LOG"], "a") as log:
    log.write(json.dumps({"argv": args, "backend": os.environ.get("PULUMI_BACKEND_URL"),
                          "passphrase_set": bool(os.environ.get("PULUMI_CONFIG_PASSPHRASE"))}) + "\n")


def opt(name):
    return args[args.index(name) + 1] if name in args else None


def events(path, items):
    with open(path, "a") as f:
        for i, ev in enumerate(items):
            f.write(json.dumps({"sequence": i, "timestamp": int(time.time()), **ev}) + "\n")


stack = opt("--stack") or ""
broken = os.environ.get("RECORDING_PULUMI_BROKEN")  # e.g. "stack export": that subcommand fails as the CLI does
if broken and " ".join(args).startswith(broken):
    print(f"error: could not {broken}: the backend did not answer", file=sys.stderr)
    sys.exit(255)


def private_net(stack):
    """The first three octets of the cluster's VPC (its spec, beside the engine's work dir
    <project>/.dynia/engine): droplets get their private addresses from it."""
    import re

    name = stack.rsplit("-", 1)[0]
    try:
        with open(os.path.join(os.getcwd(), "..", "..", "clusters", f"{name}.yaml")) as f:
            m = re.search(r"^\s*vpc_ip_range:\s*(\d+\.\d+\.\d+\.)0/", f.read(), re.M)
    except OSError:
        m = None
    return m.group(1) if m else "10.110.0."


def resources(stack):
    imported = os.path.join(state_dir, f"imported-{stack}.json")
    if os.path.exists(imported):
        with open(imported) as f:
            return json.load(f)["deployment"]["resources"]
    if stack.endswith("-provision") and os.environ.get("RECORDING_PULUMI_PROVISION_RESOURCES"):
        return json.loads(os.environ["RECORDING_PULUMI_PROVISION_RESOURCES"])
    return [{"urn": f"urn:{stack}"}]


NODES = ("brave-panda", "misty-owl")  # the shop example's rolling order: the backup first
PUSH_LAYERS = {"infra": ("infra",), "apps": ("service-admin", "service-api", "service-web")}


def push_events(stack, failing=None):
    """What `up` of a push stack reports, push by push, until the failing one (if any)."""
    phase = stack.rsplit("-", 1)[-1]
    out = []
    for layer in PUSH_LAYERS.get(phase, ()):
        for node in NODES:
            name = f"{node}-{layer}-push"
            urn = f"urn:pulumi:{stack}::dynia::dynia:index:NodeConfig$command:remote:Command::{name}"
            md = {"op": "update", "urn": urn, "type": "command:remote:Command", "provider": ""}
            steps = ["backup", "validate", "reload", "gate 1/3"] + (["rollback"] if name == failing else [])
            out.append({"resourcePreEvent": {"metadata": md}})
            out += [{"diagnosticEvent": {"urn": urn, "message": f"dynia-step {s}\n", "color": "never",
                                         "severity": "info", "ephemeral": True}} for s in steps]
            if name == failing:
                return out
            out.append({"resOutputsEvent": {"metadata": md}})
    return out

def wrong_passphrase() -> bool:
    own = dict(item.split("=", 1) for item in os.environ.get("RECORDING_PULUMI_STACK_PASSPHRASE", "").split(",") if item)
    return stack in own and own[stack] != os.environ.get("PULUMI_CONFIG_PASSPHRASE")


SECRETS_VERBS = (["stack", "import"], ["stack", "output"], ["config"], ["up"], ["preview"], ["refresh"], ["destroy"])
if any(args[:len(v)] == v for v in SECRETS_VERBS) and wrong_passphrase():
    print("error: incorrect passphrase, please set PULUMI_CONFIG_PASSPHRASE to the correct passphrase or set "
          "PULUMI_CONFIG_PASSPHRASE_FILE to a file containing the passphrase", file=sys.stderr)
    sys.exit(255)
config_file = os.path.join(state_dir, f"config-{stack}.json")
config = json.load(open(config_file)) if os.path.exists(config_file) else {}

summary = {"summaryEvent": {"maybeCorrupt": False, "durationSeconds": 0, "resourceChanges": {"same": 1},
                            "PolicyPacks": {}}}
if args[:2] == ["stack", "select"] and "--create" not in args and os.environ.get("RECORDING_PULUMI_NO_OUTPUTS") == "no-stack":
    print(f"error: no stack named '{stack}' found", file=sys.stderr)
    sys.exit(255)
elif args[:1] == ["version"]:
    print(os.environ.get("RECORDING_PULUMI_VERSION", "v3.200.0"))
elif args[:2] == ["config", "set"]:
    config[args[2]] = {"value": args[-1], "secret": "--secret" in args}
    with open(config_file, "w") as f:
        json.dump(config, f)
elif args[:2] == ["config", "rm"]:
    config.pop(args[2], None)
    with open(config_file, "w") as f:
        json.dump(config, f)
elif args[:2] == ["config", "get"]:
    if args[2] not in config:
        print(f"error: configuration key '{args[2]}' not found for stack '{stack}'", file=sys.stderr)
        sys.exit(255)
    print(json.dumps(config[args[2]]))
elif args[:2] == ["stack", "output"]:
    outputs = {}
    # $RECORDING_PULUMI_NO_OUTPUTS: a provision stack that never had an update (no nodes yet)
    if stack.endswith("-provision") and not os.environ.get("RECORDING_PULUMI_NO_OUTPUTS"):
        # each node with the SSH host key provision made for it (pinned by every connection)
        key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + "{}" * 43
        net = private_net(stack)
        outputs = {"nodes": {"misty-owl": {"public_ip": "198.51.100.11", "private_ip": net + "11", "droplet_id": "1",
                                           "host_key": key.replace("{}", "m"), "host_key_source": "generated"},
                             "brave-panda": {"public_ip": "198.51.100.12", "private_ip": net + "12", "droplet_id": "2",
                                             "host_key": key.replace("{}", "b"), "host_key_source": "generated"}},
                   "reservedIp": "203.0.113.50"}
        if os.environ.get("RECORDING_PULUMI_REGION"):  # the region an earlier provision recorded
            outputs["region"] = os.environ["RECORDING_PULUMI_REGION"]
    kept = os.path.join(state_dir, f"outputs-{stack}.json")   # a test's outputs for this stack
    if os.path.exists(kept):
        with open(kept) as f:
            outputs.update(json.load(f))
    print(json.dumps(outputs))
elif args[:2] == ["stack", "history"]:
    print(json.dumps([{"version": 1, "kind": "update", "startTime": "2026-01-01T00:00:00.000Z",
                       "endTime": "2026-01-01T00:00:01.000Z", "message": "", "environment": {}, "config": {},
                       "result": "succeeded", "resourceChanges": {}}]))
elif args[:2] == ["stack", "export"]:
    print(json.dumps({"version": 3, "deployment": {"manifest": {"time": "t"}, "resources": resources(stack)}}))
elif args[:2] == ["stack", "import"]:
    with open(opt("--file")) as f, open(os.path.join(state_dir, f"imported-{stack}.json"), "w") as out:
        out.write(f.read())
elif args[:1] == ["refresh"] and stack == os.environ.get("RECORDING_PULUMI_REFRESH_FAIL"):
    print(f"error: refreshing urn:pulumi:{stack}::dynia::digitalocean:index/droplet:Droplet::misty-owl: 1 error "
          "occurred:\n\t* GET https://api.digitalocean.com/v2/droplets/1: 401 (request \"x\") Unable to "
          "authenticate you", file=sys.stderr)
    sys.exit(255)
elif args[:1] in (["preview"], ["up"], ["destroy"]):
    log_file = opt("--event-log")
    fail = os.environ.get("RECORDING_PULUMI_FAIL", "")
    undeletable = os.environ.get("RECORDING_PULUMI_UNDELETABLE")
    if args[0] == "destroy" and stack.endswith("-provision") and undeletable and any(
            r.get("id") == undeletable and not r.get("retainOnDelete") for r in resources(stack)):
        print(f"error: deleting urn:pulumi:{stack}::dynia::digitalocean:index/vpc:Vpc: Error deleting VPC: DELETE "
              f"https://api.digitalocean.com/v2/vpcs/{undeletable}: 403 (request \"x\") Can not delete default VPC",
              file=sys.stderr)
        sys.exit(255)
    if args[0] == "up" and fail.startswith(stack + ":"):
        _, resource, message = fail.split(":", 2)
        urn = f"urn:pulumi:{stack}::dynia::dynia:index:NodeConfig$command:remote:Command::{resource}"
        if log_file:
            events(log_file, push_events(stack, resource) + [
                {"diagnosticEvent": {"urn": urn, "message": message, "color": "never", "severity": "error"}},
                {"cancelEvent": {}}])
        print(f"error: update failed: {message}", file=sys.stderr)
        sys.exit(255)
    if log_file:
        pre = {"resourcePreEvent": {"metadata": {"op": "create", "urn": f"urn:pulumi:{stack}::dynia::x::misty-owl-{stack}",
                                                 "type": "command:remote:Command", "provider": "", "diffs": ["stdin"]}}}
        items = push_events(stack) if args[0] == "up" else [pre]
        secret = os.environ.get("RECORDING_PULUMI_PREVIEW_SECRET")
        if args[0] == "preview" and secret and stack.endswith("-infra"):
            sig = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
            urn = f"urn:pulumi:{stack}::dynia::dynia:index:NodeConfig$command:remote:Command::misty-owl-infra-push"

            def state(host, value, trigger):
                inputs = {"connection": {"host": host, "user": "root"}, "stdin": {**sig, "plaintext": json.dumps(value)},
                          "triggers": [trigger]}
                return {"type": "command:remote:Command", "urn": urn, "id": "x", "parent": "", "provider": "",
                        "inputs": inputs, "outputs": inputs}

            md = {"urn": urn, "type": "command:remote:Command", "provider": "", "diffs": ["connection", "stdin", "triggers"],
                  "keys": ["triggers"], "old": state("10.110.0.9", secret + "-old", "a9eac0c5"),
                  "new": state("10.110.0.11", secret, "6c0d5dcd"),
                  "detailedDiff": {"connection.host": {"diffKind": "update", "inputDiff": True},
                                   "stdin": {"diffKind": "update", "inputDiff": True},
                                   "triggers[0]": {"diffKind": "update-replace", "inputDiff": True}}}
            items += [{"resourcePreEvent": {"metadata": {**md, "op": op}}}
                      for op in ("create-replacement", "replace", "delete-replaced")]
        events(log_file, items + [summary, {"cancelEvent": {}}])
    print(f"{args[0]} of {stack}: done")
# every other subcommand (stack select/init, config, whoami, plugin …) succeeds silently
