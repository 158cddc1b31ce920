"""Droplets under mocks: protected, never replaced by a spec or key change, resized one at a
time; the operator's SSH key reused by fingerprint when it is already on the account."""
from __future__ import annotations

import pulumi
import pytest

from dynia.components.network import md5_fingerprint
from dynia.stacks import provision

from .conftest import GraphMocks, RecordingMonitor

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEr6Cz2rMv1tBmWRn7yIYXKsAr7Zk5Zk3rBTlWgmfyF4 op@laptop"


class ProtectMonitor(RecordingMonitor):
    """Also records the protect flag Pulumi sends with each resource."""

    def RegisterResource(self, request):
        self.mocks.protected[request.name] = request.protect
        return super().RegisterResource(request)


class KeyMocks(GraphMocks):
    def __init__(self, keys=()):
        super().__init__()
        self.protected, self.keys, self.invokes = {}, list(keys), []

    def call(self, args):
        self.invokes.append(args.token)
        if args.token == "digitalocean:index/getSshKeys:getSshKeys":
            return {"sshKeys": self.keys, "id": "keys"}
        return super().call(args)


@pytest.fixture
def run_provision(project):
    from dynia.stacks.inputs import PhaseInputs

    def run(mocks: KeyMocks, holder: str | None = None):
        import asyncio

        asyncio.set_event_loop(asyncio.new_event_loop())
        pulumi.runtime.set_mocks(mocks, project="dynia", stack="shop-provision", preview=False,
                                 monitor=ProtectMonitor(mocks))
        ctx = PhaseInputs(project_root=project, cluster="shop", ssh_public_key=PUBLIC_KEY, holder=holder,
                          ssh_private_key=pulumi.Output.secret("key"), provider_token=pulumi.Output.secret("t"))

        @pulumi.runtime.test
        def program():
            provision.program(ctx)

        program()
        return mocks

    return run


def droplets(mocks):
    return {name: reg for name, reg in mocks.created.items() if reg.typ == "digitalocean:index/droplet:Droplet"}


def test_every_droplet_is_protected_and_ignores_the_fields_that_would_replace_it(run_provision):
    mocks = run_provision(KeyMocks())
    found = droplets(mocks)
    assert set(found) == {"misty-owl-droplet", "brave-panda-droplet"}
    for name, reg in found.items():
        assert mocks.protected[name] is True, name
        # size too: Pulumi's resize is a hard power-off; dynia's roll (dynia.resize) resizes
        assert sorted(reg.ignore_changes) == ["image", "size", "sshKeys", "userData", "vpcUuid"], name


def test_droplets_depend_on_each_other_in_rolling_order(run_provision):
    mocks = run_provision(KeyMocks())
    backup, master = droplets(mocks)["brave-panda-droplet"], droplets(mocks)["misty-owl-droplet"]
    assert any(u.endswith("::brave-panda-droplet") for u in master.dependencies)
    assert not any(u.endswith("-droplet") for u in backup.dependencies)
    # after a failover the holder resizes last
    mocks = run_provision(KeyMocks(), holder="brave-panda")
    assert any(u.endswith("::misty-owl-droplet") for u in droplets(mocks)["brave-panda-droplet"].dependencies)


def test_a_key_already_on_the_account_is_reused_by_fingerprint_not_created(run_provision):
    fp = md5_fingerprint(PUBLIC_KEY)
    mocks = run_provision(KeyMocks([{"id": 7, "name": "laptop", "fingerprint": fp, "publicKey": PUBLIC_KEY}]))
    assert not [r for r in mocks.created.values() if r.typ == "digitalocean:index/sshKey:SshKey"]
    for reg in droplets(mocks).values():
        assert reg.inputs["sshKeys"] == [fp]


def test_a_new_key_or_the_clusters_own_is_managed_as_a_resource(run_provision):
    mocks = run_provision(KeyMocks())
    assert [r.name for r in mocks.created.values() if r.typ == "digitalocean:index/sshKey:SshKey"] == ["shop-ssh"]
    own = {"id": 8, "name": "dynia-shop", "fingerprint": md5_fingerprint(PUBLIC_KEY), "publicKey": PUBLIC_KEY}
    mocks = run_provision(KeyMocks([own]))
    assert [r.name for r in mocks.created.values() if r.typ == "digitalocean:index/sshKey:SshKey"] == ["shop-ssh"]


def test_fingerprint_is_the_md5_of_the_key_blob_as_ssh_keygen_prints_it(tmp_path):
    import subprocess

    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    out = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f", f"{key}.pub"], capture_output=True, text=True).stdout
    assert out.split()[1] == "MD5:" + md5_fingerprint((tmp_path / "k.pub").read_text())
