"""The check before DNS on real lab nodes: the phase programs run on LabEngineDouble (commands
really execute, pushes land over SSH), keepalived's notify.sh really assigns the reserved IP
through the lab's stand-in for DigitalOcean's API (dynia.providers.lab_api), and the check
`dynia up` makes between infra and apps (dynia.holder_gate.check_cluster) asks that stand-in."""
from __future__ import annotations

import json

import pytest

from dynia import holder_gate
from dynia.errors import DyniaError
from dynia.providers import lab_api
from dynia.stacks import apps, infra

from ..lab.conftest import eventually
from .lab_double import LabEngineDouble, lab_inputs, run_phase
from .test_lab_engine import _lab_cluster, _provision, engine_project  # noqa: F401 (a fixture)

pytestmark = pytest.mark.root


def _record(lc, node: str) -> dict | None:
    out = lc.sh(node, "cat /opt/dynia/state/reserved-ip.json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def _diagnosis(lc, lab_dir) -> str:
    """What to read when a node recorded no assignment: the stand-in's log, the node's keepalived log."""
    from dynia.paths import PATHS

    api_log = (lab_dir / lab_api.LOG_FILE).read_text(errors="replace")[-1500:] if (lab_dir / lab_api.LOG_FILE).exists() \
        else "(no log)"
    node_log = lc.sh("misty-owl", f"tail -n 30 {PATHS.keepalived_log}; cat /opt/dynia/state/vrrp", check=False)
    return f"lab API log:\n{api_log}\nmisty-owl:\n{node_log.stdout.decode(errors='replace')}"


def test_a_refused_node_token_stops_up_before_dns_and_a_good_one_passes(engine_project):  # noqa: F811
    root, lab_dir = engine_project
    double = LabEngineDouble()
    _provision(root, lab_dir, double)
    lc = _lab_cluster(root, lab_dir)
    lc.cache_as_after_up()
    # infra with a node token the lab's API refuses: keepalived comes up, misty-owl turns MASTER
    _, error = run_phase(infra, lab_inputs(root, lab_dir, provider_token="a-revoked-token"), "infra", double)
    assert error is None, error
    assert eventually(lambda: lc.vip_holder() == ["misty-owl"])          # keepalived's part works...
    refused = eventually(lambda: _record(lc, "misty-owl"))
    assert refused, _diagnosis(lc, lab_dir)
    assert refused["outcome"] == "refused" and refused["status"] == "401"  # ...the provider refused its part
    droplet = lab_api.FIRST_DROPLET_ID + [n.id for n in lc.lab.nodes].index("misty-owl")
    assert refused["droplet"] == str(droplet)
    with pytest.raises(DyniaError) as exc:
        holder_gate.check_cluster(lc.cluster())
    e = exc.value
    assert e.kind == "provider"
    assert e.message.startswith(f"the reserved IP {lc.lab.vip} is not held by the VRRP MASTER after ")
    assert f"no node of the cluster holds {lc.lab.vip} (VRRP MASTER: misty-owl)" in e.message
    assert "misty-owl's last assignment: refused (HTTP 401" in e.message
    assert e.message.endswith("no DNS record was created or changed")
    assert "`dynia up --phase infra --cluster lab`" in e.hint
    assert "a-revoked-token" not in e.message + e.hint
    assert not (lab_dir / lab_api.RECORD_FILE).exists()     # the stand-in recorded no assignment
    # the good token: the push writes it (a keepalived reload, no transition), the check asks
    # misty-owl to assign again, and the provider then names it
    again = LabEngineDouble(double.references)
    _, error = run_phase(infra, lab_inputs(root, lab_dir), "infra", again)
    assert error is None, error
    assert holder_gate.check_cluster(lc.cluster()) == "misty-owl"
    assert _record(lc, "misty-owl")["outcome"] == "assigned"
    assert json.loads((lab_dir / lab_api.RECORD_FILE).read_text()) == {"droplet_id": droplet}
    _, error = run_phase(apps, lab_inputs(root, lab_dir), "apps", again)
    assert error is None, error
    assert lc.get("lab.example") == (200, b"web\n")
