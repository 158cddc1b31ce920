"""The provision phase sets the Cloudflare zone settings origin mode depends on."""
from __future__ import annotations

import pulumi
import pytest

from dynia.stacks import provision

from .conftest import GraphMocks, RecordingMonitor, is_secret

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEr6Cz2rMv1tBmWRn7yIYXKsAr7Zk5Zk3rBTlWgmfyF4 op@laptop"


class ZoneMocks(GraphMocks):
    def __init__(self):
        super().__init__()
        self.zone_lookups = []

    def new_resource(self, args):
        # Each key and certificate its own value, so the test tells the CA's from the client's.
        rid, state = super().new_resource(args)
        if args.typ.startswith("tls:"):
            state.update(privateKeyPem=f"KEY of {args.name}", certPem=f"CERT of {args.name}")
        return rid, state

    def call(self, args):
        if args.token == "cloudflare:index/getZone:getZone":
            self.zone_lookups.append(args.args.get("filter", {}).get("name"))
        return super().call(args)


def _provision(project) -> ZoneMocks:
    """The provision program of the shop example under the mocks; its exports on `exported`."""
    from dynia.stacks.inputs import PhaseInputs

    import asyncio

    asyncio.set_event_loop(asyncio.new_event_loop())
    mocks = ZoneMocks()
    pulumi.runtime.settings.set_root_resource(None)  # an earlier run's exports stay on its root otherwise
    pulumi.runtime.set_mocks(mocks, project="dynia", stack="shop-provision", preview=False,
                             monitor=RecordingMonitor(mocks))
    ctx = PhaseInputs(project_root=project, cluster="shop", ssh_public_key=PUBLIC_KEY,
                      ssh_private_key=pulumi.Output.secret("key"), provider_token=pulumi.Output.secret("t"))
    exported = {}

    @pulumi.runtime.test
    def program():
        provision.program(ctx)
        root = pulumi.runtime.settings.get_root_resource()
        return pulumi.Output.from_input(dict(root.outputs)).apply(exported.update)

    program()
    mocks.exported = exported
    return mocks


@pytest.fixture
def provisioned(project):
    return _provision(project)


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


def test_provision_uploads_the_clusters_own_client_certificate_before_turning_zone_level_pulls_on(provisioned):
    """Zone-level AOP with a certificate of the cluster's (never Cloudflare's shared one, which
    any Cloudflare customer's zone can make Cloudflare present): the client certificate signed
    by the cluster's CA and its key, the key a secret; the setting waits for the upload."""
    upload = provisioned.created["shop-zone-origin-pull-certificate"]
    assert upload.typ == "cloudflare:index/authenticatedOriginPullsCertificate:AuthenticatedOriginPullsCertificate"
    assert upload.inputs["zoneId"] == "zone-123"
    assert upload.inputs["certificate"] == "CERT of shop-origin-pull-cert"
    assert is_secret(upload.inputs["privateKey"])
    assert upload.inputs["privateKey"]["value"] == "KEY of shop-origin-pull-key"
    client = provisioned.created["shop-origin-pull-cert"]
    assert client.typ == "tls:index/locallySignedCert:LocallySignedCert"
    assert client.inputs["caCertPem"] == "CERT of shop-origin-pull-ca"
    assert client.inputs["allowedUses"] == ["digital_signature", "client_auth"]
    ca = provisioned.created["shop-origin-pull-ca"]
    assert ca.typ == "tls:index/selfSignedCert:SelfSignedCert" and ca.inputs["isCaCertificate"] is True
    assert upload.urn in provisioned.created["shop-zone-origin-pulls"].dependencies


def test_provision_exports_the_ca_and_client_certificate_public_and_never_a_key(provisioned):
    pull = provisioned.exported["originPull"]
    assert pull == {"ca": "CERT of shop-origin-pull-ca", "certificate": "CERT of shop-origin-pull-cert"}
    assert "KEY" not in repr(provisioned.exported.get("originPull"))


def test_letsencrypt_mode_uploads_no_origin_pull_certificate(project):
    path = project / "clusters" / "shop.yaml"
    path.write_text(path.read_text().replace("  mode: origin\n", "  mode: letsencrypt\n", 1))
    mocks = _provision(project)
    assert not [n for n, r in mocks.created.items() if "origin-pull" in n or "OriginPull" in r.typ]
    assert "originPull" not in mocks.exported
