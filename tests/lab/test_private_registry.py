"""Private images (issue 20.5) on real nodes: a real registry (Debian's docker-registry, htpasswd
auth, TLS the nodes verify) in a namespace on the lab bridge. An active-only service's image there
fails the roll without a login, as a typed error naming the registry; with the spec's `registries:`
and the token in the operator's environment every node pulls it (the standbys ahead of time), the
service answers through the VIP, and each node holds the login as a 0600 secret slot whose hash
drift-check compares."""
from __future__ import annotations

import base64
import hashlib
import json
import secrets

from dynia.operations import drift as D
from dynia.nodes.push_errors import push_error
from dynia.paths import PATHS
from dynia.nodes.lab import APP_IMAGE

from .conftest import eventually
from .registry_lab import USER, RegistryLab

TOKEN_ENV = "DYNIA_LAB_REGISTRY_TOKEN"


def test_a_private_image_fails_naming_the_registry_without_a_login_and_pulls_on_every_node_with_it(
        lab_cluster, tmp_path, monkeypatch):
    lc = lab_cluster
    token = secrets.token_urlsafe(24)
    with RegistryLab(lc.lab, tmp_path / "registry", token) as registry:
        for node in lc.lab.nodes:
            registry.trust_on(node.id)
        image = f"{registry.server}/team/admin:1"
        registry.push(lc.lab.nodes[0].id, APP_IMAGE, image)
        compose = lc.project.root / "services" / "lab-admin.yml"
        compose.write_text(compose.read_text().replace(f"image: {APP_IMAGE}", f"image: {image}"))
        assert lc.cluster().spec.services["admin"].placement == "active-only"

        # No login: the first node the admin layer reaches (a standby, pulling ahead) stops the roll.
        monkeypatch.delenv(TOKEN_ENV, raising=False)
        failed = lc.roll().failure()
        assert failed is not None and failed.layer == "service:admin", failed
        error = push_error(f"{failed.node}-service-admin-push", failed.stderr, failed.exit_status, "lab")
        assert error.kind == "config", error
        assert f"image {image} could not be pulled: registry {registry.server} refused the pull" in error.message
        assert f"{registry.server} under `registries:`" in error.hint

        # The login in the spec, its token in the environment: every layer on every node.
        lc.edit_spec("services:\n", f"registries:\n  - server: \"{registry.server}\"\n    user: {USER}\n"
                                    f"    token_env: {TOKEN_ENV}\nservices:\n")
        monkeypatch.setenv(TOKEN_ENV, token)
        result = lc.roll()
        assert result.ok, [(r.node, r.layer, r.reason) for r in result.results if not r.ok]
        master = lc.cluster().spec.master_node
        assert eventually(lambda: lc.vip_holder() == [master]), lc.vip_holder()
        assert lc.get("admin.lab.example", "/healthz")[0] == 200

        want = {"auths": {registry.server: {"auth": base64.b64encode(f"{USER}:{token}".encode()).decode()}}}
        for node in lc.lab.nodes:
            # The standbys pulled it too: a failover starts admin without asking the registry.
            assert lc.sh(node.id, f"podman image exists {image}", check=False).returncode == 0, node.id
            mode = lc.sh(node.id, f"stat -c '%a %U' {PATHS.registry_auth}").stdout.decode().split()
            assert mode == ["600", "root"]
            assert json.loads(lc.cat(node.id, PATHS.registry_auth)) == want

        # drift-check compares the slot by its hash: a changed login on one node is drift there,
        # reported without its value or hash.
        lc.cache_as_after_up()
        clean, _ = D.check(lc.cluster())
        assert clean.exit_code == 0, [(n.node, d.kind, d.target) for n in clean.nodes for d in n.drift]
        other = base64.b64encode(f"{USER}:someone-else".encode()).decode()
        lc.sh(master, f"sed -i 's#{want['auths'][registry.server]['auth']}#{other}#' {PATHS.registry_auth}")
        report, _ = D.check(lc.cluster())
        drifted = [(n.node, d.kind, d.target) for n in report.nodes for d in n.drift]
        assert drifted == [(master, "content", PATHS.registry_auth)], drifted
        text = json.dumps(report.as_dict())
        assert token not in text and other not in text
        assert hashlib.sha256(lc.cat(master, PATHS.registry_auth)).hexdigest() not in text
