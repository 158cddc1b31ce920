"""App secrets in the Pulumi state (issue 27.4/27.5): the apps phase runs inside its own stack (as
`pulumi up` does) with every app secret filled with a recognisable value. What the engine keeps in
clear text — every resource input outside a secret and the stack's exports, read as text — holds
none of them; the values travel only inside the push payloads, which are secrets (encrypted with
the passphrase in the state), and only in the payload of the service that uses them."""
from __future__ import annotations

import base64
import json

from dynia.state import app_secrets
from dynia.stacks import apps
from dynia.state.store import Project

from .conftest import GraphMocks, is_secret, plain_strings

PUSH = "command:remote:Command"
VALUES = {"DB_PASSWORD": "state-db-0d4c1b9e-RECOGNISABLE", "API_KEY": "state-key-7a3f22c8-RECOGNISABLE"}


def test_app_secrets_reach_the_state_only_inside_their_services_secret_payloads(run_phase, project, monkeypatch):
    spec = project / "clusters" / "shop.yaml"
    spec.write_text(spec.read_text().replace(
        "    health_path: /healthz\n",
        "    health_path: /healthz\n    secrets:\n      DB_PASSWORD:\n      API_KEY: {env: SHOP_API_KEY}\n", 1))
    monkeypatch.setenv("SHOP_API_KEY", VALUES["API_KEY"])
    app_secrets.store(Project(project), "shop", "api", "DB_PASSWORD", VALUES["DB_PASSWORD"].encode())
    mocks = GraphMocks()
    assert run_phase(apps, "shop", "apps", mocks, in_stack=True) is None

    # A slot's content travels base64-encoded inside a bundle: that form is looked for too.
    forms = [*VALUES.values(), *(base64.b64encode(v.encode()).decode() for v in VALUES.values())]
    clear = [s for reg in mocks.created.values() for s in plain_strings(reg.inputs)]
    clear += [json.dumps(reg.outputs) for reg in mocks.created.values()]  # the exports, as text
    assert not [s[:80] for s in clear if any(v in s for v in forms)]
    assert mocks.created["dynia-shop-apps"].outputs  # the stack's exports were registered

    pushes = [reg for reg in mocks.created.values() if reg.typ == PUSH]
    carrying = set()
    for push in pushes:
        assert is_secret(push.inputs["stdin"])
        stdin = push.inputs["stdin"]["value"]
        script_len, rest = stdin.encode().split(b"\n", 1)
        bundle = json.loads(rest[int(script_len):])
        assert not any(v in stdin for v in VALUES.values())  # base64 inside the bundle, never raw
        slots = {f["target"]: f for f in bundle["files"] if "/app-secrets/" in f["target"]}
        if slots:
            carrying.add((bundle["node"], bundle["layer"]))
            assert {f["mode"] for f in slots.values()} == {"0600"}
    assert carrying == {(n, "service:api") for n in ("misty-owl", "brave-panda")}
