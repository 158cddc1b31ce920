"""Releases on real nodes (issue 27.1, 27.2): the lab api's image in a real registry (Debian's
docker-registry, TLS the nodes and this machine verify, htpasswd login). Its tag is resolved once,
from this machine, before the roll; the tag is then moved in the registry between the first
node's push and the others' — every node still runs the digest resolved before the roll, status
finds no node on another digest, and the release recorded after the roll (the ledger stack's real
program, on the engine's test double) names that digest on every node. The tag, pulled by name,
really names another image by then."""
from __future__ import annotations

import json
import secrets
import threading
import time
from contextlib import contextmanager

from dynia.engine import pins
from dynia.operations import releases
from dynia.operations import status as S
from dynia.state.cache import ClusterCache
from dynia.paths import PATHS
from dynia.nodes.lab import APP_IMAGE
from dynia.engine.targets import targets
from dynia.render.rendered import render_cluster
from dynia.stacks import program_module
from tests.engine.lab_double import LabEngineDouble, lab_inputs, run_phase

from .conftest import eventually, record
from .registry_lab import USER, RegistryLab

TOKEN_ENV = "DYNIA_LAB_REGISTRY_TOKEN"


class LedgerOnTheDouble:
    """The releases ledger as the engine keeps it: the real `<cluster>-releases` program, run on
    the engine's test double; its exported `releases` is what the next read returns."""

    def __init__(self, lc):
        self.lc = lc
        self.exported: list[dict] = []

    def releases(self) -> list[dict]:
        return list(self.exported)

    def keep_releases(self, history: list[dict]) -> None:
        inputs = lab_inputs(self.lc.project.root, self.lc.lab.dir, releases=history)
        out, error = run_phase(program_module("releases"), inputs, "releases", LabEngineDouble())
        assert error is None, error
        self.exported = out["releases"]


def _api_images(lc) -> dict[str, set[tuple[str, tuple[str, ...]]]]:
    """node -> {(image id, repository digests)} of its api containers, as the node's podman says."""
    out = {}
    for node in lc.lab.nodes:
        ids = json.loads(lc.sh(node.id, "ids=$(podman ps -q --filter label=io.podman.compose.project=dynia-api) && "
                                        "podman inspect $ids").stdout)
        images = json.loads(lc.sh(node.id, "podman image inspect " + " ".join(c["Image"] for c in ids)).stdout)
        out[node.id] = {(i["Id"], tuple(sorted(i.get("RepoDigests") or []))) for i in images}
    return out


@contextmanager
def private_registry(lc, tmp_path, monkeypatch):
    """The lab registry, trusted by every node and by this machine (which resolves the tags), its
    login in the spec and its token in the environment."""
    token = secrets.token_urlsafe(24)
    with RegistryLab(lc.lab, tmp_path / "registry", token) as registry:
        for node in lc.lab.nodes:
            registry.trust_on(node.id)
        lc.edit_spec("services:\n", f"registries:\n  - server: \"{registry.server}\"\n    user: {USER}\n"
                                    f"    token_env: {TOKEN_ENV}\nservices:\n")
        monkeypatch.setenv(TOKEN_ENV, token)
        monkeypatch.setenv("SSL_CERT_FILE", str(registry.ca))
        yield registry


def other_image(lc, node: str, name: str, release: int) -> None:
    """Another image on `node` (the lab app with a label of its own: its own config, its own digest)."""
    lc.sh(node, f"podman import -q --change 'CMD [\"/bin/sh\"]' --change 'LABEL dynia.lab.release={release}' "
                f"{lc.lab.dir / 'app.tar'} {name} >/dev/null")


def test_a_tag_moved_between_two_nodes_pushes_leaves_every_node_on_the_digest_resolved_before_the_roll(
        lab_cluster, tmp_path, monkeypatch):
    lc = lab_cluster
    with private_registry(lc, tmp_path, monkeypatch) as registry:
        image = f"{registry.server}/team/api:1"
        first_node = lc.lab.nodes[0].id
        registry.push(first_node, APP_IMAGE, image)
        compose = lc.project.root / "services" / "lab-api.yml"
        compose.write_text(compose.read_text().replace(f"image: {APP_IMAGE}", f"image: {image}"))

        # Before the roll: one digest per tag, from this machine.
        images = pins.resolve(lc.cluster())
        assert list(images) == [image]
        resolved = images[image]
        rendering = render_cluster(lc.cluster(), images=images)
        bundles = lc.bundles(rendering)
        order = rendering.rolling_order

        result = lc.roll(bundles, order=order[:1])
        assert result.ok, [(r.node, r.layer, r.reason) for r in result.results if not r.ok]

        # The tag moves to another image (its own config, so its own digest) mid-roll.
        other_image(lc, first_node, "localhost/dynia-lab-moved", 2)
        registry.push(first_node, "localhost/dynia-lab-moved", image)
        moved = pins.resolve(lc.cluster())[image]
        assert moved != resolved

        result = lc.roll(bundles, order=order[1:])
        assert result.ok, [(r.node, r.layer, r.reason) for r in result.results if not r.ok]
        master = lc.cluster().spec.master_node
        assert eventually(lambda: lc.vip_holder() == [master]), lc.vip_holder()
        assert lc.get("api.lab.example")[0] == 200

        # Every node runs one image, the one the registry holds as the digest resolved before the
        # roll — not what the tag names now.
        running = _api_images(lc)
        assert len({image_id for images in running.values() for image_id, _ in images}) == 1, running
        assert all(f"{image.rsplit(':', 1)[0]}@{resolved}" in digests
                   for images in running.values() for _, digests in images), running
        # What `dynia up` leaves on this machine after the apps phase: the pinned digests.
        lc.cache_as_after_up()
        ClusterCache.of(lc.cluster()).write_images(images)
        st = S.read(lc.cluster())
        api = next(s for s in st.services if s.service == "api")
        assert api.off_release == {} and not [p for p in st.problems if "not the digest" in p], st.problems
        assert {c.digest for cs in api.containers.values() for c in cs} == {resolved}

        # The release recorded after the roll, in the ledger stack: that digest on every node.
        ledger = LedgerOnTheDouble(lc)
        release = releases.record(ledger, lc.cluster(), "up", images, targets(lc.cluster()), rendering.config_version)
        assert release is not None and release["id"] == 1 and ledger.releases() == [release]
        assert release["services"]["api"]["images"] == {image: resolved}
        assert {n: set(c.values()) for n, c in release["services"]["api"]["nodes"].items()} == \
            {n.id: {resolved} for n in lc.lab.nodes}
        assert release["unanswered"] == []
        # Nothing that runs changed: a second record adds no release.
        assert releases.record(ledger, lc.cluster(), "up", images, targets(lc.cluster()), rendering.config_version) \
            is None and len(ledger.releases()) == 1

        # Pulled by its name now, the tag is the moved image: pinning is what kept the nodes together.
        pulled = json.loads(lc.sh(order[-1], f"REGISTRY_AUTH_FILE={PATHS.registry_auth} podman pull -q {image} "
                                             f">/dev/null && podman image inspect {image}").stdout)
        assert f"{image.rsplit(':', 1)[0]}@{moved}" in pulled[0]["RepoDigests"]


# --- an image change, then a rollback to the previous release under load (issue 27.3) ------------

API_COMPOSE = """services:
  api:
    image: IMAGE
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/healthz && echo api-RELEASE > /www/index.html && exec httpd -f -p 127.0.0.1:9002 -h /www"]
    ports:
      - "9002:9002"
    mem_limit: 64m
    stop_signal: SIGKILL
"""
MIN_REQUESTS, MAX_SECONDS, LOAD_THREADS = 2000, 180.0, 4


def _deploy(lc, ledger, command: str, images=None, rollback=None, layers=None):
    """What `dynia up` / `dynia rollback` do, on the harness: resolve (unless given), render, roll
    node by node through the gates, keep the release in force on this machine, record the release."""
    images = pins.resolve(lc.cluster()) if images is None else images
    rendering = render_cluster(lc.cluster(), images=images, rollback=rollback or {})
    result = lc.roll(lc.bundles(rendering), layers=layers)
    assert result.ok, [(r.node, r.layer, r.reason) for r in result.results if not r.ok]
    ClusterCache.of(lc.cluster()).write_images(images, rollback)
    return releases.record(ledger, lc.cluster(), command, images, targets(lc.cluster()), rendering.config_version,
                           rollback)


def test_rollback_to_the_previous_release_restores_its_digest_on_every_node_and_fails_no_request(
        lab_cluster, tmp_path, monkeypatch):
    lc = lab_cluster
    compose = lc.project.root / "services" / "lab-api.yml"
    with private_registry(lc, tmp_path, monkeypatch) as registry:
        first_node = lc.lab.nodes[0].id
        one, two = f"{registry.server}/team/api:1", f"{registry.server}/team/api:2"
        registry.push(first_node, APP_IMAGE, one)
        other_image(lc, first_node, "localhost/dynia-lab-two", 2)
        registry.push(first_node, "localhost/dynia-lab-two", two)
        lc.cache_as_after_up()
        ledger = LedgerOnTheDouble(lc)

        compose.write_text(API_COMPOSE.replace("IMAGE", one).replace("RELEASE", "1"))
        first = _deploy(lc, ledger, "up")
        master = lc.cluster().spec.master_node
        assert eventually(lambda: lc.vip_holder() == [master]), lc.vip_holder()
        assert lc.get("api.lab.example") == (200, b"api-1\n")
        d1 = first["services"]["api"]["images"][one]

        # The image change: another image and another compose file.
        compose.write_text(API_COMPOSE.replace("IMAGE", two).replace("RELEASE", "2"))
        second = _deploy(lc, ledger, "service deploy", layers=["service:api"])
        d2 = second["services"]["api"]["images"][two]
        assert second["id"] == 2 and d2 != d1 and lc.get("api.lab.example") == (200, b"api-2\n")
        assert {d for c in second["services"]["api"]["nodes"].values() for d in c.values()} == {d2}

        # The rollback to the previous release (no id: the one before the last), under load.
        history = ledger.releases()
        rollback, rows = releases.rollback_plan(history, None, ["api"], lc.cluster())
        assert [(r["service"], r["release"], r["images"]) for r in rows] == \
            [("api", 1, {one: {"from": None, "to": d1}})]
        assert rollback["api"]["content"] == first["services"]["api"]["content"]

        done, rolled = threading.Event(), threading.Event()
        lock = threading.Lock()
        stats = {"ok": 0, "failed": 0, "during": 0, "errors": []}

        def load():
            started, i = time.monotonic(), 0
            while time.monotonic() - started < MAX_SECONDS:
                with lock:
                    enough = stats["ok"] + stats["failed"] >= MIN_REQUESTS
                if done.is_set() and enough:
                    break
                host = ("api.lab.example", "lab.example")[i % 2]
                try:
                    status, body = lc.get(host, timeout=5)
                    good = status == 200 and body in ((b"api-1\n", b"api-2\n") if host.startswith("api") else (b"web\n",))
                except OSError as exc:
                    good, status, body = False, repr(exc), b""
                with lock:
                    stats["ok" if good else "failed"] += 1
                    stats["during"] += not rolled.is_set()
                    if not good and len(stats["errors"]) < 10:
                        stats["errors"].append((host, status, body[:40]))
                i += 1

        workers = [threading.Thread(target=load) for _ in range(LOAD_THREADS)]
        for w in workers:
            w.start()
        try:
            time.sleep(0.5)
            started = time.monotonic()
            third = _deploy(lc, ledger, "rollback", images=releases.in_force(history)[0], rollback=rollback,
                            layers=["service:api"])
            rolled.set()
            seconds = time.monotonic() - started
        finally:
            rolled.set()
            done.set()
            for w in workers:
                w.join(timeout=MAX_SECONDS + 10)
        total = stats["ok"] + stats["failed"]
        record("rollback_failed_of_total", f"{stats['failed']} of {total}")
        record("rollback_requests_while_rolling", stats["during"])
        record("rollback_roll_seconds", round(seconds, 1))
        assert total >= MIN_REQUESTS and stats["failed"] == 0, stats

        # Release 1's digest and compose file on every node, recorded as a rollback to it.
        assert third["id"] == 3 and third["command"] == "rollback"
        api = third["services"]["api"]
        assert api["rolledBackTo"] == 1 and api["compose"] == first["services"]["api"]["compose"]
        assert {n: set(c.values()) for n, c in api["nodes"].items()} == {n.id: {d1} for n in lc.lab.nodes}
        assert lc.get("api.lab.example") == (200, b"api-1\n")
        running = _api_images(lc)
        assert all(f"{registry.server}/team/api@{d1}" in digests for images in running.values()
                   for _, digests in images), running
        # Release 2's image stays on every node (dynia prunes none): rolling forward needs no registry.
        for node in lc.lab.nodes:
            assert lc.sh(node.id, f"podman image exists {registry.server}/team/api@{d2}", check=False).returncode == 0

        # The rollback in effect is what status and drift-check compare with: nothing is off.
        st = S.read(lc.cluster())
        assert not [p for p in st.problems if "not the digest" in p], st.problems
        from dynia.operations import drift as D

        report, _ = D.check(lc.cluster())
        assert not [(n.node, d.kind, d.target) for n in report.nodes for d in n.drift
                    if "compose" in d.target or d.kind == "image"], report.as_dict()
