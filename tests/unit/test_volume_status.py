"""Where each data volume is (issue 23.2): the provider says where it is attached, the nodes'
mount tables where it is mounted. status shows both per volume and calls a volume on a node that
does not hold the reserved IP a problem; infra verify fails it; drift-check reports a volume
mounted where it should not be. DigitalOcean's answers are recorded shapes
(tests/fixtures/digitalocean); the lab's come from its block-storage "API"."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynia.operations import drift as D
from dynia.operations import status as S
from dynia.operations import verify as V
from dynia.errors import DyniaError
from dynia.providers import digitalocean, do_api, lab_volumes, local
from dynia.spec.load import load_cluster
from dynia.state.store import Project
from dynia.operations.volume_status import views

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DATA = {"admin": ("dynia-shop-admin", "/srv/admin")}
MOUNTED = {"data_mounts": {"/srv/admin": "/dev/sda"}}
NOTHING = {"data_mounts": {}}
NODES = {"misty-owl": {"10.110.0.2", "203.0.113.10"}, "brave-panda": {"10.110.0.3", "203.0.113.11"}}


def test_a_volume_attached_and_mounted_on_the_holder_only_is_no_problem():
    [v] = views(DATA, "misty-owl", {"misty-owl": MOUNTED, "brave-panda": NOTHING}, {"admin": ("misty-owl", None)})
    assert (v.attached, v.mounted, v.problems) == ("misty-owl", ["misty-owl"], [])


@pytest.mark.parametrize("attached, facts, says", [
    (("brave-panda", None), {"misty-owl": NOTHING, "brave-panda": MOUNTED},
     "is attached to brave-panda, which does not hold the reserved IP (misty-owl does)"),
    (("misty-owl", None), {"misty-owl": MOUNTED, "brave-panda": MOUNTED},
     "is mounted on brave-panda, which does not hold the reserved IP"),
    ((None, None), {"misty-owl": NOTHING, "brave-panda": NOTHING}, "is attached to no node: admin cannot run"),
    ((None, "DigitalOcean has no volume dynia-shop-admin in sgp1"), {"misty-owl": MOUNTED},
     "where it is attached is unknown (DigitalOcean has no volume"),
    (("misty-owl", None), {"misty-owl": NOTHING, "brave-panda": NOTHING}, "attached to misty-owl but not mounted"),
])
def test_a_volume_anywhere_but_attached_and_mounted_on_the_holder_is_a_problem(attached, facts, says):
    [v] = views(DATA, "misty-owl", facts, {"admin": attached})
    assert any(says in p for p in v.problems), v.problems


def test_the_last_provider_call_shown_is_the_holders():
    call = {"action": "attach", "outcome": "attached", "status": "202", "droplet": "424242001"}
    old = {"action": "detach", "outcome": "detached", "status": "202", "droplet": "424242002"}
    [v] = views(DATA, "misty-owl", {"misty-owl": {**MOUNTED, "volume_actions": {"admin": call}},
                                    "brave-panda": {**NOTHING, "volume_actions": {"admin": old}}},
                {"admin": ("misty-owl", None)})
    assert v.last_action == call


def test_status_counts_volume_problems_in_its_verdict_and_json():
    from .test_status import assemble, recorded

    snap, answers = recorded("lab-applied")
    assert assemble(snap, answers).healthy   # the recorded lab, as it is
    holder = assemble(snap, answers).holder
    other = next(n for n in snap["nodes"] if n != holder)
    [v] = views(DATA, holder, {holder: NOTHING, other: MOUNTED}, {"admin": (other, None)})
    st = assemble(snap, answers, volumes=[v])
    assert not st.healthy and f"is attached to {other}, which does not hold the reserved IP" in st.verdict
    doc = st.as_dict()["volumes"][0]
    assert doc["attached"] == "brave-panda" and doc["mounted"] == ["brave-panda"] and doc["attachedError"] is None


def test_status_prints_where_each_volume_is_attached_and_mounted(capsys):
    from dynia.cli.status import print_status

    [v] = views(DATA, "misty-owl", {"misty-owl": MOUNTED, "brave-panda": NOTHING}, {"admin": ("misty-owl", None)})
    print_status(S.assemble(cluster="shop", nodes={}, services={}, desired_version=1, reserved_ip="203.0.113.50",
                            answers={}, holder="misty-owl", volumes=[v]))
    row = next(line for line in capsys.readouterr().out.splitlines() if "dynia-shop-admin" in line)
    assert "admin" in row and "/srv/admin" in row and row.count("misty-owl") == 2


def _verify(attached, facts, holder="misty-owl"):
    e = V.Expected(cluster="shop", nodes=["misty-owl", "brave-panda"], reserved_ip="203.0.113.50", domains=[],
                   proxied=True, applied_version=None, certificate=None, data=DATA)
    o = V.Observed(facts=facts, unreachable={}, holder=holder, attached={"admin": attached})
    return [c for c in V.assemble(e, o) if c.check == "data_volume"]


def test_infra_verify_fails_a_volume_attached_to_a_node_that_does_not_hold_the_vip():
    [row] = _verify(("brave-panda", None), {"misty-owl": NOTHING, "brave-panda": MOUNTED})
    assert row.status == "failed" and row.target == "dynia-shop-admin"
    assert "attached to brave-panda, which does not hold the reserved IP" in row.detail
    assert not V.healthy([row])
    [row] = _verify(("misty-owl", None), {"misty-owl": MOUNTED, "brave-panda": NOTHING})
    assert row.status == "ok" and "attached to misty-owl, the reserved IP's holder" in row.detail


def _lab():
    root = Path(__file__).resolve().parents[2] / "examples"
    return load_cluster(Project(root), "lab")


def test_drift_check_reports_a_volume_mounted_on_a_node_that_does_not_hold_the_vip(tmp_path):
    import shutil

    proj = tmp_path / "proj"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples", proj,
                    ignore=shutil.ignore_patterns(".dynia", "deploy-config"))
    spec = proj / "clusters/lab.yaml"
    spec.write_text(spec.read_text() + "  ledger:\n    compose: services/lab-ledger.yml\n    port: 9004\n"
                    "    placement: active-only\n    data: {size_gb: 1, mount: /srv/ledger}\n")
    c = load_cluster(Project(proj), "lab")
    mounts = {"/srv/ledger": "/dev/loop3"}
    [found] = D.misplaced_volumes(c.spec, "brave-panda", mounts, holder="misty-owl")
    assert found.kind == "volume" and found.target == "volume:dynia-lab-ledger" and found.layer is None
    assert "mounted at /srv/ledger here, but misty-owl holds the VIP" in found.detail
    assert D.misplaced_volumes(c.spec, "misty-owl", mounts, holder="misty-owl") == []
    assert D.misplaced_volumes(c.spec, "brave-panda", mounts, holder=None) == []   # unknown holder: no verdict


def test_digitalocean_says_which_node_a_volume_is_attached_to_by_its_droplets_addresses(monkeypatch):
    answers = {"/v2/volumes": "volumes_shop_admin", "/v2/droplets/424242001": "droplet_424242001"}
    calls = []

    def fake(url, headers, timeout):
        calls.append(url)
        path = url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
        return 200, (FIXTURES / "digitalocean" / f"{answers['/' + path]}.json").read_bytes()

    monkeypatch.setattr(do_api, "_http_get", fake)
    monkeypatch.setenv(digitalocean.TOKEN_ENV, "dop_v1_secret")
    cluster = type("C", (), {"spec": load_cluster(Project(Path(__file__).resolve().parents[2] / "examples"),
                                                  "shop").spec})()
    assert digitalocean.DigitalOcean().volume_holder(cluster, "admin", NODES) == "misty-owl"
    assert calls == ["https://api.digitalocean.com/v2/volumes?name=dynia-shop-admin&region=sgp1",
                     "https://api.digitalocean.com/v2/droplets/424242001"]
    # A droplet none of the nodes' addresses match is named, never taken for "nowhere".
    assert digitalocean.DigitalOcean().volume_holder(cluster, "admin", {"brave-panda": {"10.110.0.3"}}) \
        == "droplet 424242001"
    answers["/v2/volumes"] = "volumes_none"
    with pytest.raises(DyniaError, match="has no volume dynia-shop-admin in sgp1"):
        digitalocean.DigitalOcean().volume_holder(cluster, "admin", NODES)


def test_the_labs_api_says_where_its_volume_is(tmp_path, monkeypatch):
    lab = tmp_path / "lab"
    c = _lab()
    monkeypatch.setattr(local.Local, "lab_dir", lambda self, project, cluster: lab)
    with pytest.raises(DyniaError, match="cannot say where volume dynia-lab-ledger is"):
        local.Local().volume_holder(c, "ledger", {})
    lab_volumes.create(lab, "dynia-lab-ledger", 1)
    assert local.Local().volume_holder(c, "ledger", {}) is None
    record = json.loads((lab / "volumes/dynia-lab-ledger.json").read_text())
    (lab / "volumes/dynia-lab-ledger.json").write_text(json.dumps({**record, "node": "misty-owl"}))
    assert local.Local().volume_holder(c, "ledger", {}) == "misty-owl"
