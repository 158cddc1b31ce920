"""Releases (issue 27.1, 27.2): image references parsed as the distribution grammar reads them;
every tag resolved once, through a real registry's API (Debian's docker-registry on 127.0.0.1,
TLS and a login), to the digest every node's compose file then names; status names a node whose
container runs another digest; the ledger numbers releases, records one only when what runs
changed, and lists them per service."""
from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from dynia.engine import pins
from dynia.operations import releases
from dynia.spec import image_refs
from dynia.state import cache
from dynia.operations import status as S
from dynia.spec.compose import compose_images
from dynia.errors import DyniaError
from dynia.nodes.gather import NodeFacts
from dynia.paths import PATHS
from dynia.render.rendered import render_cluster
from dynia.spec.load import load_cluster
from dynia.state.store import Project
from tests.registry_local import LocalRegistry, available

from .test_status import assemble, recorded

needs_registry = pytest.mark.skipif(not available(), reason="Debian's docker-registry is not installed")


# --- references ----------------------------------------------------------------------------

@pytest.mark.parametrize("ref, host, repository, tag, digest, name", [
    ("redis:7-alpine", "docker.io", "library/redis", "7-alpine", None, "redis"),
    ("nginxdemos/hello:plain-text", "docker.io", "nginxdemos/hello", "plain-text", None, "nginxdemos/hello"),
    ("ghcr.io/example/shop-api:2.0.1", "ghcr.io", "example/shop-api", "2.0.1", None, "ghcr.io/example/shop-api"),
    ("10.0.0.179:5000/team/admin:1", "10.0.0.179:5000", "team/admin", "1", None, "10.0.0.179:5000/team/admin"),
    ("localhost/dynia-lab-app", "localhost", "dynia-lab-app", None, None, "localhost/dynia-lab-app"),
    ("ghcr.io/a/b@sha256:" + "a" * 64, "ghcr.io", "a/b", None, "sha256:" + "a" * 64, "ghcr.io/a/b"),
])
def test_a_reference_splits_into_registry_repository_tag_and_digest(ref, host, repository, tag, digest, name):
    p = image_refs.parse(ref)
    assert (p.host, p.repository, p.tag, p.digest, p.name) == (host, repository, tag, digest, name)
    assert p.pinned("sha256:" + "b" * 64) == f"{name}@sha256:" + "b" * 64


@pytest.mark.parametrize("ref", ["Team/App:1", "app:bad tag", "app@sha256:short", "ghcr.io/:1"])
def test_what_is_no_image_reference_is_a_config_error_saying_how_to_write_one(ref):
    with pytest.raises(DyniaError) as e:
        image_refs.parse(ref)
    assert e.value.kind == "config" and "registry/]repository[:tag]" in e.value.hint


def test_only_a_tag_in_a_registry_is_resolved_and_a_pinned_reference_keeps_its_repository():
    assert image_refs.resolvable("redis:7") and image_refs.resolvable("ghcr.io/a/b")   # no tag: latest
    assert not image_refs.resolvable("localhost/dynia-lab-app")
    assert not image_refs.resolvable("ghcr.io/a/b@sha256:" + "c" * 64)
    digest = "sha256:" + "d" * 64
    assert image_refs.rewrite("ghcr.io/a/b:1.2", {"ghcr.io/a/b:1.2": digest}) == f"ghcr.io/a/b@{digest}"
    assert image_refs.rewrite("10.0.0.1:5000/a:1", {"10.0.0.1:5000/a:1": digest}) == f"10.0.0.1:5000/a@{digest}"
    assert image_refs.rewrite("redis:7", {}) == "redis:7"


# --- one digest per tag, from a real registry -------------------------------------------------

LOGIN = ("team-puller", "registry-token-0123456789")
REGISTRIES = ("registries:\n"
              "  - server: ghcr.io\n    user: team-puller\n    token_env: GHCR_TOKEN\n"
              "  - server: docker.io\n    user: team-puller\n    token_env: HUB_TOKEN\n")


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """The examples' images in a registry with TLS and a login, where DYNIA_REGISTRY_API_URL
    sends dynia, whose certificate SSL_CERT_FILE makes this process trust."""
    if not available():
        pytest.skip("Debian's docker-registry is not installed")
    with LocalRegistry(tmp_path / "registry", tls=True, login=LOGIN) as reg:
        monkeypatch.setenv("DYNIA_REGISTRY_API_URL", reg.url)
        monkeypatch.setenv("SSL_CERT_FILE", str(reg.ca))
        monkeypatch.setenv("GHCR_TOKEN", LOGIN[1])
        monkeypatch.setenv("HUB_TOKEN", LOGIN[1])
        yield reg


def _shop(project, text=REGISTRIES):
    spec = project / "clusters" / "shop.yaml"
    spec.write_text(spec.read_text().replace("services:\n", text + "services:\n", 1))
    return load_cluster(Project(project), "shop")


def _push_all(reg, cluster, content="v1") -> dict[str, str]:
    out = {}
    for refs in pins.image_references(cluster).values():
        for ref in refs:
            p = image_refs.parse(ref)
            out[ref] = reg.push(p.repository, p.tag or "latest", f"{ref} {content}")
    return out


def test_every_tag_resolves_once_to_the_registrys_digest_with_the_specs_login(project, registry):
    c = _shop(project)
    pushed = _push_all(registry, c)
    assert set(pushed) == {"ghcr.io/example/shop-api:2.0.1", "redis:7-alpine", "ghcr.io/example/shop-web:1.4.2",
                           "ghcr.io/example/shop-admin:0.9.0"}
    asked = []

    def counting(*args, **kw):
        from dynia.providers.registry_api import manifest_digest

        asked.append(kw["shown"])
        return manifest_digest(*args, **kw)

    assert pins.resolve(c, resolver=counting) == pushed
    assert sorted(asked) == sorted(pushed)   # once each, though api and web share nothing, redis once


def test_a_tag_moved_in_the_registry_resolves_to_its_new_digest(project, registry):
    c = _shop(project)
    first = _push_all(registry, c)
    moved = registry.push("example/shop-api", "2.0.1", "rebuilt")
    now = pins.resolve(c)
    assert now["ghcr.io/example/shop-api:2.0.1"] == moved != first["ghcr.io/example/shop-api:2.0.1"]
    assert now["redis:7-alpine"] == first["redis:7-alpine"]


def test_without_a_login_the_registry_refuses_and_the_error_names_it_and_the_spec_key(project, registry):
    c = load_cluster(Project(project), "shop")   # no registries: in the spec
    _push_all(registry, c)
    with pytest.raises(DyniaError) as e:
        pins.resolve(c)
    assert e.value.kind == "config" and "asks for a login" in e.value.message
    assert "`registries:`" in e.value.hint and LOGIN[1] not in e.value.message + e.value.hint


def test_a_wrong_token_is_refused_without_the_token_in_the_error(project, registry, monkeypatch):
    c = _shop(project)
    _push_all(registry, c)
    monkeypatch.setenv("GHCR_TOKEN", "not-the-token-42")
    with pytest.raises(DyniaError) as e:
        pins.resolve(c)
    assert "HTTP 401" in e.value.message and "not-the-token-42" not in e.value.message + e.value.hint


def test_an_unknown_tag_is_a_config_error_before_any_push(project, registry):
    c = _shop(project)
    with pytest.raises(DyniaError) as e:
        pins.resolve(c)
    assert e.value.kind == "config" and "has no" in e.value.message


def test_a_registry_whose_certificate_this_machine_does_not_trust_is_a_network_error(project, registry, monkeypatch):
    c = _shop(project)
    _push_all(registry, c)
    monkeypatch.delenv("SSL_CERT_FILE")
    with pytest.raises(DyniaError) as e:
        pins.resolve(c)
    assert e.value.kind == "network" and "SSL_CERT_FILE" in e.value.hint


# --- what every node runs: the rendered compose files -------------------------------------------

def test_the_rendered_compose_file_names_each_resolved_image_by_digest_on_every_node(project):
    c = load_cluster(Project(project), "shop")
    digests = {"ghcr.io/example/shop-api:2.0.1": "sha256:" + "1" * 64, "redis:7-alpine": "sha256:" + "2" * 64}
    cache.ClusterCache.of(c).write_images(digests)
    rendering = render_cluster(c)
    for node in c.spec.nodes:
        api = next(f for f in rendering.files[node] if f.target == PATHS.compose_file("api"))
        assert sorted(compose_images(api.content).values()) == [
            "ghcr.io/example/shop-api@sha256:" + "1" * 64, "redis@sha256:" + "2" * 64]
        web = next(f for f in rendering.files[node] if f.target == PATHS.compose_file("web"))
        assert list(compose_images(web.content).values()) == ["ghcr.io/example/shop-web:1.4.2"]  # not resolved
    assert S.pinned_digests(rendering) == {"api": {"sha256:" + "1" * 64, "sha256:" + "2" * 64}}


@pytest.mark.parametrize("data", [{"images": {"redis:7\nbad: x": "sha256:" + "1" * 64}},
                                  {"images": {"redis:7": "sha256:short"}}, {"images": [], "other": 1}])
def test_a_damaged_images_record_is_a_state_error_naming_the_file(project, data):
    c = load_cluster(Project(project), "shop")
    path = c.project.cache_dir(c.name) / "images.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    with pytest.raises(DyniaError) as e:
        render_cluster(c)
    assert e.value.kind == "state" and "images.json" in e.value.message


# --- status marks a node on another digest --------------------------------------------------

def test_status_names_a_node_whose_container_runs_a_digest_its_release_does_not_pin():
    snap, answers = recorded("lab-applied")
    pinned = {c["digest"] for a in answers.values() for c in a.facts["containers"] if c["service"] == "api"}
    assert len(pinned) == 1
    assert assemble(snap, answers, pinned={"api": pinned}).healthy

    odd = sorted(answers)[0]
    answers = copy.deepcopy(answers)
    other = "sha256:" + "e" * 64
    answers[odd].facts["containers"] = [{**c, "digest": other} if c["service"] == "api" else c
                                        for c in answers[odd].facts["containers"]]
    st = assemble(snap, answers, pinned={"api": pinned})
    api = next(s for s in st.services if s.service == "api")
    assert api.off_release == {odd: [other]}
    assert st.problems == [f"api on {odd} runs eeeeeeeeeeee, not the digest its release pins "
                           f"({S.short(next(iter(pinned)))})"]
    assert json.loads(json.dumps(dataclasses.asdict(st)))["services"][1]["off_release"] == {odd: [other]}


# --- the ledger -------------------------------------------------------------------------------

class ListLedger:
    def __init__(self):
        self.kept: list[dict] = []

    def releases(self):
        return list(self.kept)

    def keep_releases(self, history):
        self.kept = history


def _answers(digests: dict[str, str]) -> dict[str, NodeFacts]:
    return {n: NodeFacts(n, {"containers": [{"service": "api", "name": "dynia-api_api_1", "digest": d}]})
            for n, d in digests.items()}


def test_a_release_records_who_git_spec_compose_hash_and_what_each_node_runs(project, monkeypatch):
    import subprocess

    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    subprocess.run(["git", "-C", str(project), "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q",
                    "--allow-empty", "-m", "x"], check=True)
    c = load_cluster(Project(project), "shop")
    images = {"ghcr.io/example/shop-api:2.0.1": "sha256:" + "1" * 64}
    r = releases.build(c, "up", images, _answers({"misty-owl": "sha256:" + "1" * 64}), 7)
    assert r["who"] == "octocat (GitHub Actions)" and r["command"] == "up" and r["configVersion"] == 7
    assert r["git"]["dirty"] is True and len(r["git"]["commit"]) == 40   # clusters/ is not committed
    api = r["services"]["api"]
    assert api["images"] == {"ghcr.io/example/shop-api:2.0.1": "sha256:" + "1" * 64, "redis:7-alpine": None}
    assert api["nodes"] == {"misty-owl": {"dynia-api_api_1": "sha256:" + "1" * 64}}
    import hashlib
    assert api["compose"] == hashlib.sha256((project / "services" / "api.yml").read_bytes()).hexdigest()


def test_the_ledger_numbers_releases_records_only_changes_and_keeps_the_last_ones(project, monkeypatch):
    c = load_cluster(Project(project), "shop")
    ledger = ListLedger()
    running = {"misty-owl": "sha256:" + "1" * 64, "brave-panda": "sha256:" + "1" * 64}
    monkeypatch.setattr(releases, "gather", lambda targets, facts, timeout: _answers(running))
    first = releases.record(ledger, c, "up", {}, [], 1)
    assert first["id"] == 1
    assert releases.record(ledger, c, "up", {}, [], 1) is None     # nothing that runs changed
    running["brave-panda"] = "sha256:" + "2" * 64
    assert releases.record(ledger, c, "service deploy", {}, [], 2)["id"] == 2
    assert [r["id"] for r in releases.listed(ledger.kept)] == [2, 1]
    assert [r["id"] for r in releases.listed(ledger.kept, "web")] == [1]   # web never changed after 1
    history = ledger.kept
    for _ in range(releases.KEEP + 3):
        history = releases.append(history, {"services": {}})
    assert len(history) == releases.KEEP and history[-1]["id"] == 2 + releases.KEEP + 3
