"""Services that keep data are never silently mirrored (issue 23.1): a service whose containers
keep state may run on several nodes at once only when the spec says the app replicates it."""
from __future__ import annotations

from pathlib import Path

import pytest

from dynia.spec import compose
from dynia.spec.model import validate_spec
from dynia.state.store import Project
from dynia.spec.load import load_cluster

NODES2, NODES3 = ["misty-owl", "brave-panda"], ["misty-owl", "brave-panda", "calm-otter"]


def _check(tmp_path: Path, extra: str, top: str = "", nodes=NODES2, image: str = "ghcr.io/example/app:1", **svc):
    (tmp_path / "services").mkdir(exist_ok=True)
    (tmp_path / "services/app.yml").write_text(
        f'services:\n  app:\n    image: {image}\n    ports: ["9000:80"]\n{extra}{top}')
    spec = validate_spec({"version": 1, "name": "shop", "domain": "example.com", "nodes": nodes,
                          "provider": {"kind": "digitalocean", "region": "sgp1", "size": "s-1vcpu-1gb"},
                          "services": {"app": {"compose": "services/app.yml", "port": 9000, **svc}}}, "t.yaml")
    return spec, *compose.check_all(spec, tmp_path)


STATEFUL = [
    ("    volumes: ['pgdata:/var/lib/postgresql/data']\n", "volumes:\n  pgdata: {}\n", "volume pgdata"),
    ("    volumes: [{type: volume, source: pgdata, target: /data}]\n", "volumes:\n  pgdata: {}\n", "volume pgdata"),
    ("    volumes: ['/data']\n", "", "an anonymous volume"),
    ("    volumes: ['/srv/app:/data']\n", "", "bind mount /srv/app"),
    ("    volumes: [{type: bind, source: /srv/app, target: /data}]\n", "", "bind mount /srv/app"),
    ("    volumes: ['cfg:/data']\n",
     "volumes:\n  cfg: {driver_opts: {type: none, o: bind, device: /srv/app}}\n", "bind mount /srv/app"),
]


@pytest.mark.parametrize("extra,top,what", STATEFUL)
def test_a_stateful_service_on_all_nodes_is_refused_naming_the_volume_and_the_choices(tmp_path, extra, top, what):
    _, _, problems = _check(tmp_path, extra, top)
    assert problems, "a mirrored stateful service was accepted"
    key, message, hint = problems[0]
    assert key == ("services", "app", "placement")
    assert message.startswith("service app: placement: all") and f"{what} (container app)" in message
    assert "placement: active-only" in hint and "managed database" in hint and "state: replicated" in hint


@pytest.mark.parametrize("extra,top,what", STATEFUL)
def test_active_only_or_state_replicated_accepts_it_and_replicated_is_shown(tmp_path, extra, top, what):
    assert _check(tmp_path, extra, top, placement="active-only")[2] == []
    spec, infos, problems = _check(tmp_path, extra, top, state="replicated")
    assert problems == []
    notes = compose.notices(spec, infos)
    assert [n["kind"] for n in notes] == ["replicated-state"] and "state: replicated" in notes[0]["text"]


def test_standby_only_is_mirrored_once_there_are_two_standbys(tmp_path):
    extra, top = "    volumes: ['data:/data']\n", "volumes:\n  data: {}\n"
    assert _check(tmp_path, extra, top, nodes=NODES2, placement="standby-only")[2] == []
    problems = _check(tmp_path, extra, top, nodes=NODES3, placement="standby-only")[2]
    assert problems and problems[0][1].startswith("service app: placement: standby-only")


@pytest.mark.parametrize("extra", [
    "    volumes: ['/srv/app/conf:/etc/app:ro']\n",
    "    volumes: [{type: bind, source: /srv/app, target: /data, read_only: true}]\n",
    "    volumes: [{type: tmpfs, target: /tmp}]\n",
    "    tmpfs: [/run]\n",
])
def test_read_only_mounts_and_tmpfs_keep_no_state(tmp_path, extra):
    spec, infos, problems = _check(tmp_path, extra)
    assert problems == [] and infos["app"].kept == ()


@pytest.mark.parametrize("image", ["postgres:16", "docker.io/library/mysql:8", "bitnami/postgresql@sha256:ab",
                                   "redis:7-alpine", "mongo", "ghcr.io/x/mariadb:11"])
def test_a_database_image_without_a_volume_is_a_warning_not_an_error(tmp_path, image):
    spec, infos, problems = _check(tmp_path, "", image=image)
    assert problems == []
    notes = compose.notices(spec, infos)
    assert [n["kind"] for n in notes] == ["warning"]
    assert f"container app runs {image} without a volume" in notes[0]["text"]
    assert "every node keeps its own copy" in notes[0]["text"]
    spec, infos, _ = _check(tmp_path, "    volumes: ['/srv/db:/var/lib/db']\n", image=image, placement="active-only",
                            nodes=["misty-owl"])
    assert compose.notices(spec, infos) == []


def test_an_application_image_without_a_volume_is_no_warning(tmp_path):
    spec, infos, problems = _check(tmp_path, "", image="ghcr.io/example/postgres-exporter-ui:1")
    assert problems == [] and compose.notices(spec, infos) == []


@pytest.mark.parametrize("name", ["shop", "mini", "lab"])
def test_the_bundled_examples_load(project, name):
    assert load_cluster(Project(project), name).spec.name == name


def test_service_add_of_a_stateful_compose_file_on_all_nodes_leaves_the_spec_as_it_was(project, cli):
    (project / "services/db.yml").write_text('services:\n  db:\n    image: postgres:16\n    ports: ["8095:5432"]\n'
                                             "    volumes: ['pgdata:/var/lib/postgresql/data']\nvolumes:\n"
                                             "  pgdata: {}\n")
    spec = project / "clusters/shop.yaml"
    before = spec.read_bytes()
    r = cli("-C", str(project), "service", "add", "db", "--compose", "services/db.yml", "--port", "8095",
            "--cluster", "shop")
    assert r.code == 10 and "volume pgdata (container db)" in r.err and "state: replicated" in r.err
    assert spec.read_bytes() == before
    r = cli("-C", str(project), "service", "add", "db", "--compose", "services/db.yml", "--port", "8095",
            "--placement", "active-only", "--cluster", "shop")
    assert r.code == 0, r.err


def test_a_single_copy_that_keeps_data_warns_that_the_data_stays_behind_on_failover(tmp_path):
    extra, top = "    volumes: ['data:/data']\n", "volumes:\n  data: {}\n"
    spec, infos, problems = _check(tmp_path, extra, top, placement="active-only")
    assert problems == []
    (note,) = compose.notices(spec, infos)
    assert note["kind"] == "warning" and "keeps volume data (container app) on the node that runs it" in note["text"]
    assert "after a failover" in note["text"]
    spec, infos, _ = _check(tmp_path, extra, top, placement="active-only", nodes=["misty-owl"])
    assert compose.notices(spec, infos) == []  # one node: no failover to lose it on


def test_plan_lists_isolation_exceptions_before_warnings_whatever_the_service_names(tmp_path):
    (tmp_path / "services").mkdir()
    (tmp_path / "services/a.yml").write_text('services:\n  cache:\n    image: redis:7\n    ports: ["9000:6379"]\n')
    (tmp_path / "services/b.yml").write_text('services:\n  b:\n    image: x\n    ports: ["9001:80"]\n'
                                             "    privileged: true\n")
    spec = validate_spec({"version": 1, "name": "shop", "domain": "example.com", "nodes": NODES2,
                          "provider": {"kind": "digitalocean", "region": "sgp1", "size": "s-1vcpu-1gb"},
                          "services": {"aa": {"compose": "services/a.yml", "port": 9000},
                                       "bb": {"compose": "services/b.yml", "port": 9001,
                                             "isolation_exceptions": ["privileged"]}}}, "t.yaml")
    infos, problems = compose.check_all(spec, tmp_path)
    assert problems == []
    assert [(n["service"], n["kind"]) for n in compose.notices(spec, infos)] == [
        ("bb", "isolation-exception"), ("aa", "warning")]
