"""After a successful `up` that changes a service other than the last one pushed, the read
commands agree: `plan` shows nothing pending, `drift-check` no drift, `status` and `infra
verify` every node at the version the apply recorded. The pushes run as `dynia up` runs them
(the real phase programs through the engine, on the contributor lab's stand-in for Pulumi,
which re-runs every push: an unchanged layer arrives with the version it was last applied
with, the way `up` stamps it)."""
from __future__ import annotations

import json

from dynia.nodes.lab import Lab
from dynia.state.store import Project

from .conftest import LabCluster, eventually
from .test_devlab import devlab, devlab_project, dynia  # noqa: F401 — the fixture is used by name



def _read(root, *args) -> tuple[int, dict]:
    r = dynia(root, *args, "--cluster", "lab", "--json")
    assert r.stdout, r.stderr[-2000:]
    return r.returncode, json.loads(r.stdout)


def test_status_verify_drift_and_plan_agree_after_changing_a_service_not_pushed_last(devlab_project):  # noqa: F811
    root = devlab_project
    up = devlab(root, "up")
    assert up.returncode == 0, up.stderr[-2000:]
    # Layers roll admin → api → web on every node: api is not the last one pushed.
    compose = root / "services" / "lab-api.yml"
    text = compose.read_text()
    assert "echo api > /www/index.html" in text
    compose.write_text(text.replace("echo api > /www/index.html", "echo api-v2 > /www/index.html"))
    pending = json.loads(dynia(root, "plan", "--offline", "--cluster", "lab", "--json").stdout)
    assert pending["pending"] > 0
    up = devlab(root, "up")
    assert up.returncode == 0, up.stderr[-2000:]
    lc = LabCluster(Project(root), Lab.load(Project(root).lab_dir("lab")))
    assert lc.get("api.lab.example") == (200, b"api-v2\n")

    plan = json.loads(dynia(root, "plan", "--offline", "--cluster", "lab", "--json").stdout)
    assert plan["pending"] == 0
    version = plan["configVersion"]
    # The apply's own gate can leave a check in flight: healthy within seconds.
    assert eventually(lambda: _read(root, "status")[0] == 0, timeout=30), _read(root, "status")[1]["problems"]
    code, status = _read(root, "status")
    assert {n["node"]: n["appliedVersion"] for n in status["nodes"]} == dict.fromkeys(
        ("misty-owl", "brave-panda", "calm-otter"), version)
    assert status["desiredVersion"] == version
    # Generous timeouts: the answers, not the machine's load, are what is checked.
    code, checks = _read(root, "infra", "verify", "--timeout", "60")
    row = next(c for c in checks["checks"] if c["check"] == "config_version")
    assert (row["status"], row["detail"]) == ("ok", f"every node at v{version}"), row
    code, drift = _read(root, "drift-check", "--timeout", "60")
    assert (code, drift["drift"]) == (0, False), drift["verdict"]
