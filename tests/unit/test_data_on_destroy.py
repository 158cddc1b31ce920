"""`cluster destroy` keeps the data volumes (issue 23.3) unless `--delete-data` names the cluster:
the rule, and the lab's volumes kept on destroy like DigitalOcean's (the DigitalOcean side runs
through the engine in tests/engine/test_engine_flow.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dynia.errors import DyniaError
from dynia.providers import lab_volumes, local
from dynia.spec.load import load_cluster
from dynia.state.store import Project
from dynia.volumes import deleting_data

REPO = Path(__file__).resolve().parents[2]


def test_data_is_deleted_only_when_the_cluster_name_is_given_again():
    assert deleting_data(None, "shop") is False
    assert deleting_data("shop", "shop") is True
    with pytest.raises(DyniaError) as err:
        deleting_data("prod", "shop")
    assert err.value.kind == "config" and "nothing was destroyed" in err.value.message
    assert err.value.hint.endswith("--delete-data shop")


@pytest.fixture
def destroyed_lab(tmp_path):
    """A lab cluster whose nodes are gone and whose volume Lab.down kept (a record, an image)."""
    root = tmp_path / "proj"
    shutil.copytree(REPO / "examples", root, ignore=shutil.ignore_patterns(".dynia", "deploy-config"))
    project = Project(root)
    lab = local.Local().lab_dir(project, "lab")
    lab_volumes.create(lab, "dynia-lab-ledger", 1)
    engine = type("E", (), {"cluster": load_cluster(project, "lab")})()
    return engine, lab


def test_the_lab_keeps_its_volumes_on_destroy_and_says_so(destroyed_lab):
    engine, lab = destroyed_lab
    [line] = local.Local().after_destroy(engine, delete_data=False)
    assert line.startswith("kept lab volume dynia-lab-ledger (") and "--delete-data lab" in line
    assert (lab / "volumes/dynia-lab-ledger.img").exists() and (lab / "volumes/dynia-lab-ledger.json").exists()


def test_the_lab_deletes_its_volumes_with_delete_data(destroyed_lab):
    engine, lab = destroyed_lab
    assert local.Local().after_destroy(engine, delete_data=True) == ["deleted lab volume dynia-lab-ledger and its data"]
    assert not lab.exists()
    assert local.Local().after_destroy(engine, delete_data=True) == []   # nothing left: nothing said
