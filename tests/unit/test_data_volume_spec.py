"""services.<name>.data (issue 23.2): a block-storage volume that follows the VIP — where the
spec allows it, and how the node side is told to move it before the service starts."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dynia.spec import compose
from dynia.render.bundle import build_bundles
from dynia.errors import DyniaError
from dynia.paths import PATHS
from dynia.render.rendered import render_cluster as render
from dynia.spec.model import validate_spec
from dynia.state.store import Project
from dynia.spec.load import load_cluster

REPO = Path(__file__).resolve().parents[2]
DATA = {"size_gb": 10, "mount": "/srv/db"}


def _spec(kind: str = "local", **svc):
    provider = ({"kind": "local", "size": "s-1vcpu-2gb", "vpc_ip_range": "10.213.0.0/24"} if kind == "local"
                else {"kind": "digitalocean", "region": "sgp1", "size": "s-1vcpu-1gb"})
    return validate_spec({"version": 1, "name": "shop", "domain": "example.com", "nodes": ["misty-owl", "brave-panda"],
                          "provider": provider,
                          "services": {"db": {"compose": "services/db.yml", "port": 9000, **svc}}}, "t.yaml")


def _error(**kw) -> DyniaError:
    with pytest.raises(DyniaError) as e:
        _spec(**kw)
    return e.value


def test_data_needs_an_active_only_service():
    for placement in ("all", "standby-only"):
        err = _error(placement=placement, data=DATA)
        assert "must run on the VIP holder only" in err.message and "placement: active-only" in err.hint
    assert _spec(placement="active-only", data=DATA).services["db"].data.mount == "/srv/db"


@pytest.mark.parametrize("mount", ["/var/lib/db", "/srv", "/srv/../etc", "srv/db", "/srv/DB", "/srv/db/"])
def test_the_mount_is_a_plain_path_under_the_data_root(mount):
    err = _error(placement="active-only", data={"size_gb": 1, "mount": mount})
    assert "under /srv" in err.message


@pytest.mark.parametrize("size", [0, 16_385])
def test_the_size_is_a_whole_number_of_gib_the_provider_offers(size):
    _error(placement="active-only", data={"size_gb": size, "mount": "/srv/db"})


def test_a_provider_without_movable_block_storage_refuses_data_naming_the_choice(monkeypatch):
    import dataclasses

    from dynia import providers

    do = providers.get("digitalocean")
    assert _spec(kind="digitalocean", placement="active-only", data=DATA).services["db"].data.size_gb == 10
    monkeypatch.setattr(do, "profile", dataclasses.replace(do.profile, volume_api=""))
    err = _error(kind="digitalocean", placement="active-only", data=DATA)
    assert "no block storage dynia can move yet" in err.message and "managed database" in err.hint


def test_a_bind_mount_on_the_volume_is_no_warning_one_beside_it_is(tmp_path):
    (tmp_path / "services").mkdir()
    (tmp_path / "services/db.yml").write_text(
        "services:\n  db:\n    image: postgres:16\n    ports: ['9000:5432']\n"
        "    volumes: ['/srv/db/pg:/var/lib/postgresql/data']\n")
    spec = _spec(placement="active-only", data=DATA)
    infos, problems = compose.check_all(spec, tmp_path)
    assert problems == [] and compose.notices(spec, infos) == []
    (tmp_path / "services/db.yml").write_text(
        "services:\n  db:\n    image: postgres:16\n    ports: ['9000:5432']\n"
        "    volumes: ['/srv/db:/var/lib/postgresql/data', '/srv/dbx:/x']\n")
    infos, _ = compose.check_all(spec, tmp_path)
    notes = compose.notices(spec, infos)
    assert len(notes) == 1 and "bind mount /srv/dbx" in notes[0]["text"]


def _lab_project(tmp_path) -> Project:
    root = tmp_path / "proj"
    shutil.copytree(REPO / "examples", root, ignore=shutil.ignore_patterns(".dynia", "deploy-config"))
    spec = root / "clusters/lab.yaml"
    spec.write_text(spec.read_text() + "  ledger:\n    compose: services/lab-ledger.yml\n    port: 9004\n"
                    "    placement: active-only\n    data: {size_gb: 1, mount: /srv/ledger}\n")
    return Project(root)


def test_the_node_is_told_its_volumes_and_notify_moves_them_around_the_service(tmp_path):
    cluster = load_cluster(_lab_project(tmp_path), "lab")
    rendering = render(cluster)
    files = {f.target: f for f in rendering.files["misty-owl"]}
    config = json.loads(files[PATHS.volumes_config].content)
    assert config["api"] == "local" and config["volumes"] == {
        "ledger": {"name": "dynia-lab-ledger", "filesystem": "ext4", "mount": "/srv/ledger"}}
    assert files[PATHS.volume_script].content.startswith(b"#!/usr/bin/env python3")
    notify = files[PATHS.notify].content.decode()
    master, backup = notify.split("MASTER)\n", 1)[1].split(";;")[:2]
    assert "take_volume ledger && compose ledger up -d --force-recreate" in master
    assert backup.index("compose ledger down") < backup.index("release_volume ledger")
    # A push starts it the same way: the volume first, the service only once it is mounted.
    secrets = {slot.secret: b"not a secret" for slot in rendering.slots["misty-owl"]}
    bundles = build_bundles(cluster.spec, rendering, "misty-owl", secrets)
    bundle = bundles["service:ledger"]
    assert bundle.reload["service:ledger"].startswith(f"python3 {PATHS.volume_script} take ledger && {{")
    assert bundle.stop["service:ledger"].endswith(f"&& python3 {PATHS.volume_script} release ledger")
    # Services without data are untouched, and a cluster without data has no mover at all.
    assert "volume" not in bundles["service:admin"].reload["service:admin"]


def test_a_cluster_without_data_renders_no_mover(tmp_path):
    root = tmp_path / "proj"
    shutil.copytree(REPO / "examples", root, ignore=shutil.ignore_patterns(".dynia", "deploy-config"))
    rendering = render(load_cluster(Project(root), "lab"))
    targets = {f.target for f in rendering.files["misty-owl"]}
    assert PATHS.volumes_config not in targets and PATHS.volume_script not in targets
    assert "volume" not in next(f for f in rendering.files["misty-owl"] if f.target == PATHS.notify).content.decode()
