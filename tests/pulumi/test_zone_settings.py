"""The provision phase sets the Cloudflare zone settings origin mode depends on."""
from __future__ import annotations

import pulumi
import pytest

from dynia.stacks import provision

from .conftest import GraphMocks, RecordingMonitor

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEr6Cz2rMv1tBmWRn7yIYXKsAr7Zk5Zk3rBTlWgmfyF4 op@laptop"


class ZoneMocks(GraphMocks):
    def __init__(self):
        super().__init__()
        self.zone_lookups = []

    def call(self, args):
        if args.token == "cloudflare:index/getZone:getZone":
            self.zone_lookups.append(args.args.get("filter", {}).get("name"))
        return super().call(args)


@pytest.fixture
def provisioned(project):
    from dynia.stacks.inputs import PhaseInputs

    import asyncio

    asyncio.set_event_loop(asyncio.new_event_loop())
    mocks = ZoneMocks()
    pulumi.runtime.set_mocks(mocks, project="dynia", stack="shop-provision", preview=False,
                             monitor=RecordingMonitor(mocks))
    ctx = PhaseInputs(project_root=project, cluster="shop", ssh_public_key=PUBLIC_KEY,
                      ssh_private_key=pulumi.Output.secret("key"), provider_token=pulumi.Output.secret("t"))

    @pulumi.runtime.test
    def program():
        provision.program(ctx)

    program()
    return mocks


def _of_type(mocks, typ):
    return {n: r for n, r in mocks.created.items() if r.typ == typ}


def test_provision_sets_the_zones_ssl_mode_to_strict(provisioned):
    settings = _of_type(provisioned, "cloudflare:index/zoneSetting:ZoneSetting")
    assert list(settings) == ["shop-zone-ssl"]
    ssl = settings["shop-zone-ssl"]
    assert ssl.inputs["settingId"] == "ssl" and ssl.inputs["value"] == "strict"
    assert ssl.inputs["zoneId"] == "zone-123" and "example.com" in provisioned.zone_lookups


def test_provision_turns_on_authenticated_origin_pulls_for_the_zone_in_origin_mode(provisioned):
    pulls = _of_type(provisioned, "cloudflare:index/authenticatedOriginPullsSettings:AuthenticatedOriginPullsSettings")
    assert list(pulls) == ["shop-zone-origin-pulls"]
    assert pulls["shop-zone-origin-pulls"].inputs == {"zoneId": "zone-123", "enabled": True}


def test_zone_settings_are_children_of_one_component_and_outlive_a_destroy(provisioned):
    component = _of_type(provisioned, "dynia:index:ZoneSettings")["shop-zone"]
    for name in ("shop-zone-ssl", "shop-zone-origin-pulls"):
        reg = provisioned.created[name]
        assert reg.parent == component.urn, name
        # Cloudflare has no "unset": destroying a cluster leaves the zone as it is.
        assert reg.retain_on_delete, name
    assert component.outputs  # register_outputs was called
