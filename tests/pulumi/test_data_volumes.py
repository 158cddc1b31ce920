"""A data service's Block Storage volume under mocks (issue 23.2): the provision phase creates
one per data service in the cluster's region, protected and retained on delete, never replaced
by a spec change, created before the droplets (so a delete takes the droplets, and with them the
attachment, first); its record is what the next plan checks a smaller size against."""
from __future__ import annotations

import asyncio

import pulumi
import pytest

from dynia.components.data_volume import IGNORED
from dynia.errors import DyniaError
from dynia.stacks import provision
from dynia.spec.load import load_cluster
from dynia.state.store import Project
from dynia.volumes import check_recorded

from .test_droplets import PUBLIC_KEY, KeyMocks, ProtectMonitor

DATA = "    data: {size_gb: 10, mount: /srv/admin}\n"


@pytest.fixture
def shop_with_data(project):
    spec = project / "clusters/shop.yaml"
    spec.write_text(spec.read_text() + DATA)
    return project


def run(project) -> KeyMocks:
    from dynia.stacks.inputs import PhaseInputs

    mocks = KeyMocks()
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.set_mocks(mocks, project="dynia", stack="shop-provision", preview=False,
                             monitor=ProtectMonitor(mocks))
    ctx = PhaseInputs(project_root=project, cluster="shop", ssh_public_key=PUBLIC_KEY, holder=None,
                      ssh_private_key=pulumi.Output.secret("key"), provider_token=pulumi.Output.secret("t"))

    @pulumi.runtime.test
    def program():
        provision.program(ctx)

    program()
    return mocks


def test_a_data_service_gets_one_protected_retained_volume_in_the_cluster_region(shop_with_data):
    mocks = run(shop_with_data)
    found = {n: r for n, r in mocks.created.items() if r.typ == "digitalocean:index/volume:Volume"}
    assert list(found) == ["shop-admin-data-volume"]
    volume = found["shop-admin-data-volume"]
    assert volume.inputs["name"] == "dynia-shop-admin" and volume.inputs["region"] == "sgp1"
    assert volume.inputs["size"] == 10 and volume.inputs["initialFilesystemType"] == "ext4"
    assert mocks.protected["shop-admin-data-volume"] is True and volume.retain_on_delete
    # Whatever would make DigitalOcean replace it (an empty volume) is never acted on.
    assert sorted(volume.ignore_changes) == sorted(IGNORED)
    assert {"name", "region", "initialFilesystemType"} <= set(volume.ignore_changes)
    assert "size" not in volume.ignore_changes   # it grows in place
    # No attachment: the node that turns MASTER takes it (templates/node/volume.py).
    assert not [r for r in mocks.created.values() if r.typ == "digitalocean:index/volumeAttachment:VolumeAttachment"]
    # The first droplet in rolling order waits for it: destroy deletes the droplets first.
    first = mocks.created["brave-panda-droplet"]
    assert any(u.endswith("::shop-admin-data-volume") for u in first.dependencies), first.dependencies
    assert mocks.created["shop-admin-data"].outputs["record"] == {
        "id": "shop-admin-data-volume-id", "name": "dynia-shop-admin", "size_gb": 10, "filesystem": "ext4"}


def test_a_cluster_without_data_has_no_volume(project):
    mocks = run(project)
    assert not [r for r in mocks.created.values() if r.typ == "digitalocean:index/volume:Volume"]


def _spec(project, data: str = DATA):
    spec = project / "clusters/shop.yaml"
    spec.write_text(spec.read_text() + data)
    return load_cluster(Project(project), "shop").spec


RECORDED = {"admin": {"id": "506f78a4", "name": "dynia-shop-admin", "size_gb": 10, "filesystem": "ext4"}}


def test_a_volume_grows_and_never_shrinks(project):
    check_recorded(_spec(project, "    data: {size_gb: 20, mount: /srv/admin}\n"), RECORDED)   # grows: no error


@pytest.mark.parametrize("data, says, hint", [
    ("    data: {size_gb: 5, mount: /srv/admin}\n", "only grows", "size_gb to 10 or more"),
    ("    data: {size_gb: 10, filesystem: xfs, mount: /srv/admin}\n", "was made with ext4", "filesystem back to ext4"),
    ("", "dynia never deletes a data volume", "--delete-data"),
])
def test_a_smaller_size_another_filesystem_or_a_removed_volume_is_a_config_error(project, data, says, hint):
    with pytest.raises(DyniaError) as err:
        check_recorded(_spec(project, data), RECORDED)
    assert err.value.kind == "config" and says in err.value.message and hint in err.value.hint


class LabMocks(KeyMocks):
    """The lab API's create prints the volume's record (dynia.providers.lab_volumes main)."""

    def new_resource(self, args):
        rid, state = super().new_resource(args)
        if args.typ == "command:local:Command" and " create dynia-" in (args.inputs.get("create") or ""):
            name = args.inputs["create"].split(" create ")[1].split()[0]
            state["stdout"] = f'{{"name": "{name}", "size_gb": 1, "filesystem": "ext4", "node": null}}'
        return rid, state


def test_the_lab_provision_makes_its_volume_through_the_lab_api_and_keeps_it_on_delete(project, tmp_path):
    from dynia.stacks.inputs import PhaseInputs

    spec = project / "clusters/lab.yaml"
    spec.write_text(spec.read_text() + "  ledger:\n    compose: services/lab-ledger.yml\n    port: 9004\n"
                    "    placement: active-only\n    data: {size_gb: 1, mount: /srv/ledger}\n")
    # The lab's directory exists before its provision runs (`dynia.nodes.lab up` makes it): the
    # provision records each node's size there (dynia.providers.lab_droplets).
    (tmp_path / "labdir").mkdir()
    mocks = LabMocks()
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.set_mocks(mocks, project="dynia", stack="lab-provision", preview=False,
                             monitor=ProtectMonitor(mocks))
    ctx = PhaseInputs(project_root=project, cluster="lab", ssh_public_key=PUBLIC_KEY, holder=None,
                      lab_dir=str(tmp_path / "labdir"), ssh_private_key=pulumi.Output.secret("key"),
                      provider_token=pulumi.Output.secret("t"))

    @pulumi.runtime.test
    def program():
        provision.program(ctx)

    program()
    made = mocks.created["lab-ledger-data-create"]
    assert made.inputs["create"].endswith(f"-m dynia.providers.lab_volumes {tmp_path / 'labdir'} create "
                                          "dynia-lab-ledger --size-gb 1 --filesystem ext4")
    assert made.retain_on_delete and "delete" not in made.inputs
    first = next(r for r in mocks.created.values() if r.typ == "dynia:index:LocalNode")
    assert any(u.endswith("::lab-ledger-data-create") for u in first.dependencies), first.dependencies
    assert mocks.created["lab-ledger-data"].outputs["record"] == {
        "id": "dynia-lab-ledger", "name": "dynia-lab-ledger", "size_gb": 1, "filesystem": "ext4"}
