"""App secrets (issue 27.4): a service's `secrets:` in the spec, each value from the operator's
environment, a command (no shell) or the 0600 store `dynia secret set` writes; a 0600 root slot of
the service's layer on every node, declared by the rendered compose file and given to each of its
containers at /run/secrets/NAME; a changed value changes only that service's push, and its
containers are recreated (the slot is replaced, a running container would keep the old file)."""
from __future__ import annotations

import hashlib
import io
import os
import stat
import sys

import pytest

from dynia.state import app_secrets
from dynia.render.bundle import build_bundles
from dynia.errors import DyniaError
from dynia.paths import app_secret_path
from dynia.state.secrets import slot_values
from dynia.render.rendered import render_cluster
from dynia.spec.load import load_cluster
from dynia.state.store import Project

DB = "db-pass-9f1c2e7a-NEVER-SHOWN"
KEY = "api-key-77d0b3c1-NEVER-SHOWN"
TOKEN = "tok-5e8a1d44-NEVER-SHOWN"
SECRETS = ("    secrets:\n"
           "      DB_PASSWORD:\n"
           "      API_KEY: {env: SHOP_API_KEY}\n"
           f"      TOKEN: {{command: [printf, '%s\\n', {TOKEN}]}}\n")


def _with_secrets(project, text=SECRETS):
    """The shop's api with these secrets (in place of any it had)."""
    spec = project / "clusters" / "shop.yaml"
    original = project / ".shop.yaml.orig"
    if not original.exists():
        original.write_text(spec.read_text())
    anchor = "    health_path: /healthz\n"
    spec.write_text(original.read_text().replace(anchor, anchor + text, 1))
    return load_cluster(Project(project), "shop")


def _filled(project, monkeypatch):
    monkeypatch.setenv("SHOP_API_KEY", KEY)
    c = _with_secrets(project)
    app_secrets.store(c.project, "shop", "api", "DB_PASSWORD", DB.encode())
    return c


def test_each_source_gives_its_value_and_the_store_is_0600_in_0700_directories(project, monkeypatch):
    c = _filled(project, monkeypatch)
    assert app_secrets.values(c.project, "shop", c.spec.services) == {
        "app:api/API_KEY": KEY.encode(), "app:api/DB_PASSWORD": DB.encode(), "app:api/TOKEN": TOKEN.encode()}
    path = app_secrets.store_path(c.project, "shop", "api", "DB_PASSWORD")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_stored_secret_others_may_read_is_refused_with_the_chmod_that_fixes_it(project, monkeypatch, mode):
    c = _filled(project, monkeypatch)
    path = app_secrets.store_path(c.project, "shop", "api", "DB_PASSWORD")
    os.chmod(path, mode)
    with pytest.raises(DyniaError) as err:
        slot_values(c.project, "shop", b"PEM", None, services=c.spec.services)
    assert err.value.kind == "state" and f"mode {mode:04o}" in err.value.message
    assert err.value.hint.startswith("chmod 600 .dynia/secrets/shop/api/DB_PASSWORD")
    assert DB not in str(err.value.message) + err.value.hint


def test_a_symlinked_store_file_is_not_followed(project, monkeypatch, tmp_path):
    c = _filled(project, monkeypatch)
    path = app_secrets.store_path(c.project, "shop", "api", "DB_PASSWORD")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not-a-secret")
    os.chmod(elsewhere, 0o600)
    path.unlink()
    path.symlink_to(elsewhere)
    with pytest.raises(DyniaError) as err:
        app_secrets.read_stored(c.project, "shop", "api", "DB_PASSWORD")
    assert err.value.kind == "state"


def test_a_command_runs_without_a_shell_and_its_failure_shows_neither_output_nor_value(project, monkeypatch, tmp_path):
    marker = tmp_path / "ran"
    c = _with_secrets(project, "    secrets:\n      X: {command: [printf, '%s', 'a; touch " + str(marker) + "']}\n")
    assert app_secrets.values(c.project, "shop", c.spec.services)["app:api/X"] == f"a; touch {marker}".encode()
    assert not marker.exists()
    c = _with_secrets(project, "    secrets:\n      X: {command: [sh, -c, 'echo " + DB + "; echo " + DB + " >&2; exit 3']}\n")
    with pytest.raises(DyniaError) as err:
        app_secrets.values(c.project, "shop", c.spec.services)
    assert err.value.kind == "config" and "exited with status 3" in err.value.message
    assert DB not in err.value.message + err.value.hint


def test_missing_values_are_config_errors_naming_the_secret_and_how_to_give_it(project, monkeypatch):
    monkeypatch.delenv("SHOP_API_KEY", raising=False)
    c = _with_secrets(project)
    with pytest.raises(DyniaError) as err:
        app_secrets.values(c.project, "shop", c.spec.services)
    assert err.value.message == "secret api/API_KEY: $SHOP_API_KEY is not set"
    monkeypatch.setenv("SHOP_API_KEY", KEY)
    with pytest.raises(DyniaError) as err:
        app_secrets.values(c.project, "shop", c.spec.services)
    assert "secret api/DB_PASSWORD: not set" in err.value.message
    assert err.value.hint.startswith("dynia secret set api DB_PASSWORD")


@pytest.mark.parametrize("text,problem", [
    ("    secrets:\n      9lives:\n", "secret name"),
    ("    secrets:\n      a/b:\n", "secret name"),
    ("    secrets:\n      X: {env: X, command: [pass]}\n", "two sources"),
    ("    secrets:\n      X: {env: 'lower case'}\n", "environment variable name"),
    ("    secrets:\n      X: {command: []}\n", "at least 1"),
    ("    secrets:\n      X: {value: plain}\n", "Extra inputs"),
    ("    secrets:\n      Key:\n      KEY:\n", "differ only in case"),
])
def test_a_bad_secrets_entry_is_refused_by_the_spec(project, cli, text, problem):
    spec = project / "clusters" / "shop.yaml"
    anchor = "    health_path: /healthz\n"
    spec.write_text(spec.read_text().replace(anchor, anchor + text, 1))
    r = cli("-C", str(project), "render", "--cluster", "shop")
    assert r.code == 10 and problem in r.err, r.err


def test_the_rendered_compose_file_mounts_each_slot_in_every_container_and_holds_no_value(project, monkeypatch):
    from ruamel.yaml import YAML

    compose = project / "services" / "api.yml"
    compose.write_text(compose.read_text() + "  sidecar:\n    image: busybox:1.36\n    secrets: [TOKEN]\n"
                       "    mem_limit: 32m\n")
    c = _filled(project, monkeypatch)
    rendering = render_cluster(c)
    for node in c.spec.nodes:
        f = next(f for f in rendering.files[node] if f.target == "/opt/dynia/compose/api/docker-compose.yml")
        data = YAML(typ="safe").load(f.content)
        assert data["secrets"] == {n: {"file": app_secret_path("api", n)} for n in ("API_KEY", "DB_PASSWORD", "TOKEN")}
        assert all(sorted(svc["secrets"]) == ["API_KEY", "DB_PASSWORD", "TOKEN"] for svc in data["services"].values())
        assert data["services"]["sidecar"]["secrets"].count("TOKEN") == 1
        slots = {s.target: s for s in rendering.slots[node] if s.layer == "service:api"}
        assert sorted(slots) == [app_secret_path("api", n) for n in ("API_KEY", "DB_PASSWORD", "TOKEN")]
        assert all(s.mode == 0o600 and s.owner == "root:root" and s.component == "service:api" for s in slots.values())
        assert not [s for s in rendering.slots[node] if s.layer == "service:web" and "app-secrets" in s.target]
        for f in rendering.files[node]:
            assert not any(v.encode() in f.content for v in (DB, KEY, TOKEN)), f.target


def test_a_compose_file_declaring_a_spec_secret_itself_is_refused(project, cli):
    compose = project / "services" / "api.yml"
    compose.write_text(compose.read_text() + "secrets:\n  DB_PASSWORD:\n    environment: DB\n")
    spec = project / "clusters" / "shop.yaml"
    anchor = "    health_path: /healthz\n"
    spec.write_text(spec.read_text().replace(anchor, anchor + SECRETS, 1))
    r = cli("-C", str(project), "render", "--cluster", "shop")
    assert r.code == 10 and "secrets.DB_PASSWORD is also a secret of the spec" in r.err, r.err


def test_a_changed_secret_changes_only_its_services_push_and_recreates_its_containers(project, monkeypatch):
    c = _filled(project, monkeypatch)
    rendering = render_cluster(c)
    node = c.spec.nodes[0]

    def bundles():
        values = slot_values(c.project, "shop", b"PEM", "do-token", origin_pull_ca=b"CA", services=c.spec.services)
        return build_bundles(c.spec, rendering, node, values)

    before = bundles()
    api = before["service:api"]
    slots = {f["target"]: f for f in api.files if "/app-secrets/" in f["target"]}
    assert slots[app_secret_path("api", "DB_PASSWORD")]["sha256"] == hashlib.sha256(DB.encode()).hexdigest()
    assert {f["mode"] for f in slots.values()} == {"0600"}
    # The reload hashes the compose file and every slot, and recreates the containers on a change.
    reload = api.reload["service:api"]
    assert "--force-recreate" in reload and app_secret_path("api", "TOKEN") in reload
    assert "--force-recreate" not in before["service:web"].reload["service:web"]
    assert DB not in api.describe().__repr__() and DB not in reload

    app_secrets.store(c.project, "shop", "api", "DB_PASSWORD", b"rotated-value")
    after = bundles()
    changed = sorted(layer for layer in before if before[layer].digest != after[layer].digest)
    assert changed == ["service:api"]


def test_secret_set_stores_stdin_names_it_in_the_spec_and_unset_removes_both(project, cli, monkeypatch):
    class Stdin(io.StringIO):
        buffer = io.BytesIO(f"{DB}\n".encode())

        def isatty(self):
            return False

    monkeypatch.setattr(sys, "stdin", Stdin())
    r = cli("-C", str(project), "secret", "set", "api", "DB_PASSWORD", "--cluster", "shop")
    assert r.code == 0, r.err
    assert DB not in r.out + r.err
    c = load_cluster(Project(project), "shop")
    assert list(c.spec.services["api"].secrets) == ["DB_PASSWORD"]
    assert app_secrets.read_stored(c.project, "shop", "api", "DB_PASSWORD") == DB.encode()  # newline dropped

    r = cli("-C", str(project), "secret", "list", "--cluster", "shop", "--json")
    assert r.code == 0 and DB not in r.out
    assert '"sha256": "' + hashlib.sha256(DB.encode()).hexdigest() in r.out and '"source": "store"' in r.out

    r = cli("-C", str(project), "secret", "unset", "api", "DB_PASSWORD", "--cluster", "shop")
    assert r.code == 0, r.err
    c = load_cluster(Project(project), "shop")
    assert c.spec.services["api"].secrets == {}
    assert "secrets:" not in (project / "clusters" / "shop.yaml").read_text()
    assert not app_secrets.store_path(c.project, "shop", "api", "DB_PASSWORD").exists()


def test_secret_set_refuses_a_secret_the_spec_reads_from_elsewhere_and_keeps_the_store_as_it_was(
        project, cli, monkeypatch):
    _with_secrets(project)

    class Stdin(io.StringIO):
        buffer = io.BytesIO(b"value")

        def isatty(self):
            return False

    monkeypatch.setattr(sys, "stdin", Stdin())
    r = cli("-C", str(project), "secret", "set", "api", "API_KEY", "--cluster", "shop")
    assert r.code == 10 and "comes from $SHOP_API_KEY" in r.err
    assert not app_secrets.store_path(Project(project), "shop", "api", "API_KEY").exists()
