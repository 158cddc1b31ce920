"""Private registries (issue 20.5): the spec's `registries:`, the token read from the operator's
environment or .dynia/secrets, the auth file every node receives as a secret slot (kept when a
node is added), the engine pointed at it, the ahead-of-time pull of an active-only service's
images on the nodes it does not run on, and the registry named when it refuses a pull."""
from __future__ import annotations

import base64
import hashlib
import json

import pytest

from dynia.state import registries
from dynia.render.bundle import build_bundles
from dynia.errors import DyniaError
from dynia.nodes.commands import NodeCommands
from dynia.nodes.push_errors import push_error
from dynia.paths import PATHS
from dynia.providers.digitalocean import PROFILE as DROPLET
from dynia.providers.local import PROFILE as LAB
from dynia.state.secrets import slot_values
from dynia.render.rendered import render_cluster
from dynia.state.store import Project
from dynia.spec.load import load_cluster

TOKEN = "ghp_SECRETREGISTRYTOKEN0123456789"
REGISTRIES = ("registries:\n"
              "  - server: ghcr.io\n    user: octocat\n    token_env: GHCR_TOKEN\n"
              "  - server: docker.io\n    user: shopteam\n    token_env: HUB_TOKEN\n")


def _with_registries(project, text=REGISTRIES, name="shop"):
    spec = project / "clusters" / f"{name}.yaml"
    spec.write_text(spec.read_text().replace("services:\n", text + "services:\n", 1))
    return load_cluster(Project(project), name)


def test_the_auth_file_holds_each_registrys_login_under_the_key_its_engine_reads(project, monkeypatch):
    monkeypatch.setenv("GHCR_TOKEN", TOKEN)
    monkeypatch.setenv("HUB_TOKEN", "dckr_pat_HUB")
    c = _with_registries(project)
    auths = json.loads(registries.auth_file(c.project, c.name, c.spec.registries))["auths"]
    assert auths == {"ghcr.io": {"auth": base64.b64encode(f"octocat:{TOKEN}".encode()).decode()},
                     # Docker reads Docker Hub's login only under this key; podman maps it to docker.io.
                     "https://index.docker.io/v1/": {"auth": base64.b64encode(b"shopteam:dckr_pat_HUB").decode()}}


def test_without_the_environment_variable_the_token_comes_from_dynia_secrets(project, monkeypatch):
    monkeypatch.delenv("GHCR_TOKEN", raising=False)
    monkeypatch.setenv("HUB_TOKEN", "hub")
    c = _with_registries(project)
    stored = c.project.secrets_path("shop", "registries.json")
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_text(json.dumps({"ghcr.io": TOKEN}))
    auths = json.loads(registries.auth_file(c.project, c.name, c.spec.registries))["auths"]
    assert base64.b64decode(auths["ghcr.io"]["auth"]) == f"octocat:{TOKEN}".encode()


def test_a_registry_without_a_token_is_a_config_error_naming_it_and_where_the_token_goes(project, monkeypatch):
    monkeypatch.delenv("GHCR_TOKEN", raising=False)
    monkeypatch.setenv("HUB_TOKEN", "hub")
    c = _with_registries(project)
    with pytest.raises(DyniaError) as err:
        slot_values(c.project, c.name, b"PEM", "token", registries=c.spec.registries)
    assert err.value.kind == "config"
    assert "registry ghcr.io" in err.value.message and "$GHCR_TOKEN" in err.value.message
    assert "export GHCR_TOKEN=" in err.value.hint and "shop.registries.json" in err.value.hint


@pytest.mark.parametrize("entry,problem", [
    ("  - {server: 'https://ghcr.io', user: a, token_env: T}\n", "no https://"),
    ("  - {server: ghcr.io/team, user: a, token_env: T}\n", "no https://"),
    ("  - {server: ghcr.io, user: 'a b', token_env: T}\n", "without spaces"),
    ("  - {server: ghcr.io, user: a, token_env: ghp_abc123}\n", "environment variable name"),
    ("  - {server: ghcr.io, user: a, token_env: T}\n  - {server: ghcr.io, user: b, token_env: U}\n", "listed twice"),
    ("  - {server: ghcr.io, user: a, token: ghp_abc123, token_env: T}\n", "token"),
])
def test_a_bad_registry_entry_is_refused_by_the_spec(project, cli, entry, problem):
    spec = project / "clusters" / "shop.yaml"
    spec.write_text(spec.read_text().replace("services:\n", "registries:\n" + entry + "services:\n", 1))
    r = cli("-C", str(project), "render", "--cluster", "shop")
    assert r.code != 0 and problem in r.err, r.err
    assert "ghp_abc123" not in r.out + r.err or problem == "environment variable name"


def test_every_node_and_a_node_added_later_get_the_auth_file_as_an_infra_secret_slot(project, monkeypatch):
    monkeypatch.setenv("GHCR_TOKEN", TOKEN)
    monkeypatch.setenv("HUB_TOKEN", "hub")
    assert all(s.secret != "registry_auth" for ss in render_cluster(load_cluster(Project(project), "shop")).slots.values()
               for s in ss)
    c = _with_registries(project)
    spec = project / "clusters" / "shop.yaml"
    spec.write_text(spec.read_text().replace("nodes: [misty-owl, brave-panda]", "nodes: [misty-owl, brave-panda, quiet-heron]"))
    c = load_cluster(Project(project), "shop")
    rendering = render_cluster(c)
    values = slot_values(c.project, c.name, b"PEM", "token", registries=c.spec.registries, origin_pull_ca=b"CA")
    for node in c.spec.nodes:
        (slot,) = [s for s in rendering.slots[node] if s.secret == "registry_auth"]
        assert (slot.layer, slot.target, slot.mode, slot.owner) == ("infra", PATHS.registry_auth, 0o600, "root:root")
        (pushed,) = [f for f in build_bundles(c.spec, rendering, node, values)["infra"].files
                     if f["target"] == PATHS.registry_auth]
        assert pushed["mode"] == "0600" and base64.b64decode(pushed["content"]) == values["registry_auth"]
        # Nothing is rendered for it: the value exists only in the push.
        assert all(TOKEN.encode() not in f.content for f in rendering.files[node])


def test_compose_and_pulls_read_the_auth_file_only_when_the_spec_names_a_registry():
    env = f"DOCKER_CONFIG={PATHS.registry_auth_dir} REGISTRY_AUTH_FILE={PATHS.registry_auth} "
    assert NodeCommands(DROPLET, registry_auth=True).compose("api", "up", "-d") == \
        env + f"docker compose -f {PATHS.compose_file('api')} up -d"
    assert NodeCommands(LAB, registry_auth=True).compose("api", "up", "-d") == \
        env + f"podman-compose -f {PATHS.compose_file('api')} up -d"
    assert NodeCommands(DROPLET).compose("api", "up", "-d") == f"docker compose -f {PATHS.compose_file('api')} up -d"
    assert NodeCommands(DROPLET, registry_auth=True).pull_missing("ghcr.io/team/api:2") == \
        f"docker image inspect ghcr.io/team/api:2 >/dev/null 2>&1 || {env}docker pull -q ghcr.io/team/api:2"
    assert NodeCommands(LAB).pull_missing("ghcr.io/team/api:2") == \
        "podman image exists ghcr.io/team/api:2 || podman pull -q ghcr.io/team/api:2"


def test_notify_sh_starts_services_with_the_registry_login(project, monkeypatch):
    monkeypatch.setenv("GHCR_TOKEN", TOKEN)
    monkeypatch.setenv("HUB_TOKEN", "hub")
    c = _with_registries(project)
    notify = next(f for f in render_cluster(c).files["misty-owl"] if f.target == PATHS.notify).content.decode()
    assert f"REGISTRY_AUTH_FILE={PATHS.registry_auth} docker compose" in notify


def test_an_active_only_services_images_are_pulled_ahead_on_the_nodes_it_does_not_run_on(project):
    c = load_cluster(Project(project), "shop")
    assert c.spec.services["admin"].placement == "active-only"
    rendering = render_cluster(c)
    values = slot_values(c.project, c.name, b"PEM", "token", origin_pull_ca=b"CA")
    holder = c.spec.master_node
    standby = next(n for n in c.spec.nodes if n != holder)
    on_standby = build_bundles(c.spec, rendering, standby, values, holder=holder)["service:admin"]
    on_holder = build_bundles(c.spec, rendering, holder, values, holder=holder)["service:admin"]
    commands = NodeCommands(DROPLET)
    assert on_standby.run is False and on_standby.prefetch == {
        image: commands.pull_missing(image) for image in on_standby.images} and on_standby.prefetch
    assert on_holder.run is True and on_holder.prefetch == {} and "prefetch" not in on_holder.as_json()
    # A service every node runs pulls on its start: nothing ahead of time.
    assert build_bundles(c.spec, rendering, standby, values, holder=holder)["service:web"].prefetch == {}


def test_a_pull_the_registry_refused_is_a_config_error_naming_the_registry_with_the_fix():
    reason = ("dynia apply: brave-panda service:admin: prefetch service:admin failed: image "
              "ghcr.io/team/admin:3 could not be pulled: registry ghcr.io refused the pull (credentials missing "
              "or wrong): Error: initializing source docker://ghcr.io/team/admin:3: unauthorized")
    error = push_error("brave-panda-service-admin-push", reason, 30, "shop")
    assert error.kind == "config" and "registry ghcr.io refused the pull" in error.message
    assert "ghcr.io under `registries:`" in error.hint
    assert error.resume == "dynia up --phase apps --cluster shop"


def test_no_token_nor_login_nor_hash_of_the_auth_file_appears_in_render_or_plan(project, cli, monkeypatch):
    monkeypatch.setenv("GHCR_TOKEN", TOKEN)
    monkeypatch.setenv("HUB_TOKEN", "dckr_pat_HUB")
    c = _with_registries(project)
    auth = registries.auth_file(c.project, c.name, c.spec.registries)
    forbidden = [TOKEN, "dckr_pat_HUB", base64.b64encode(f"octocat:{TOKEN}".encode()).decode(),
                 hashlib.sha256(auth).hexdigest(), hashlib.sha256(auth).hexdigest()[:8]]
    outputs = []
    for fmt in (["--json"], ["--format", "markdown"], []):
        r = cli("-C", str(project), "plan", "--offline", "--cluster", "shop", *fmt)
        assert r.code == 0, r.err
        outputs.append(r.out + r.err)
    r = cli("-C", str(project), "render", "--cluster", "shop")
    assert r.code == 0, r.err
    outputs.append(r.out + r.err)
    outputs += [p.read_text() for p in (project / "deploy-config").rglob("*") if p.is_file()]
    assert PATHS.registry_auth in outputs[0]  # the plan names the slot, never its value
    for text in outputs:
        assert not any(value in text for value in forbidden)
