"""Shared fixtures: a scratch copy of examples/ and an in-process CLI runner."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
DOUBLE = REPO / "tests" / "engine" / "recording_pulumi_double.py"


# Fixtures that need root (namespaces, mounts, the real daemons). A test that uses one, directly or
# through another fixture, is marked `root` here, never by hand: `pytest -m "not root"` is then
# exactly the tests that run as anyone.
ROOT_FIXTURES = {"as_root", "root_namespaces", "lab_tools"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if ROOT_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.root)
    # Modules with a root test (labs, namespaces, real daemons: the long ones) run first, the
    # rest in their order after them: on .ci/test's workers (--dist loadscope hands out whole
    # modules in this order) the many short modules fill the gaps at the end instead of one
    # worker starting a lab module when the others are done. Stable: a module stays together.
    rooted = {item.module for item in items if item.get_closest_marker("root")}
    items.sort(key=lambda item: item.module not in rooted)


@pytest.fixture(scope="session")
def as_root():
    """Root (chown to other users, chattr +i, the lab's own checks): a failure, not a skip, without it."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root (`bash .ci/test` runs as root; `pytest -m 'not root'` leaves it out)")


@pytest.fixture(scope="session")
def root_namespaces(as_root):
    """Root, for network and mount namespaces of the test's own."""


@pytest.fixture(scope="session")
def lab_tools(root_namespaces):
    """Root and every program lab nodes need (dynia.nodes.lab.missing_tools)."""
    from dynia.nodes.lab import missing_tools

    missing = missing_tools()
    if missing:
        pytest.fail(f"lab tests need {missing}: run `bash .ci/test` (README)")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh copy of examples/ (clusters + compose files), without runtime data."""
    dest = tmp_path / "proj"
    shutil.copytree(EXAMPLES, dest, ignore=shutil.ignore_patterns(".dynia", "deploy-config"))
    return dest


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `dynia ARGS…` in-process through the real entry point (exit code, stdout, stderr)."""
    from dynia.cli import main

    def invoke(*args: str, env: dict | None = None) -> Result:
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        monkeypatch.setattr(sys, "argv", ["dynia", *args])
        capsys.readouterr()
        code = 0
        try:
            main.run()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def digitalocean_account():
    """DigitalOcean's API, replayed (tests/do_replay.py): an account whose VPCs leave the
    examples' shop its range, the catalog (sizes, regions) that offers the examples' sizes, and
    whose reserved IP misty-owl (the VRRP MASTER) holds."""
    from tests.do_replay import CATALOG, Replay

    replay = Replay({"/v2/vpcs": ["vpcs_account"], **CATALOG,
                     "/v2/reserved_ips/203.0.113.50": ["reserved_ip_shop_master"]})
    yield replay
    replay.close()


def example_images() -> list[str]:
    """Every image reference examples/services names that a registry holds (local ones left out)."""
    import re

    from dynia.spec.image_refs import resolvable

    refs = {m.group(1).strip() for f in (EXAMPLES / "services").glob("*.yml")
            for m in re.finditer(r"^\s*image:\s*(\S+)", f.read_text(), re.M)}
    return sorted(r for r in refs if resolvable(r))


@pytest.fixture(scope="session")
def example_registry(tmp_path_factory):
    """A real registry (tests/registry_local.py) holding every image the examples name, at the
    place DYNIA_REGISTRY_API_URL gives dynia: {"url", "registry", "digests": {reference: digest}}."""
    from dynia.spec.image_refs import parse
    from tests.registry_local import LocalRegistry

    with LocalRegistry(tmp_path_factory.mktemp("example-registry")) as registry:
        digests = {}
        for ref in example_images():
            p = parse(ref)
            digests[ref] = registry.push(p.repository, p.tag or "latest", f"{ref} as pushed first")
        yield {"url": registry.url, "registry": registry, "digests": digests}


@pytest.fixture
def recording_pulumi(tmp_path, digitalocean_account, example_registry):
    """A project (a copy of examples/) whose `pulumi` is the recording test double
    (tests/engine/recording_pulumi_double.py), with everything an engine command needs from the
    operator's machine: env["env"] is the environment to run dynia with."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "pulumi").write_text(f"#!/bin/sh\nexec {sys.executable} {DOUBLE} \"$@\"\n")
    (bindir / "pulumi").chmod(0o755)
    proj = tmp_path / "proj"
    shutil.copytree(EXAMPLES, proj, ignore=shutil.ignore_patterns(".dynia", "deploy-config"))
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    # What a DigitalOcean cluster needs from the operator's machine (checked before any write).
    operator = {"DYNIA_SSH_KEY": str(key), "DIGITALOCEAN_TOKEN": "test-do-token", "CLOUDFLARE_API_TOKEN": "test-cf-token",
                "DIGITALOCEAN_NODE_TOKEN": "test-do-node-token", "DIGITALOCEAN_API_URL": digitalocean_account.url,
                # every tag resolves before a roll (dynia.pins): the examples' images, in a real registry
                "DYNIA_REGISTRY_API_URL": example_registry["url"]}
    return {"proj": proj, "log": tmp_path / "pulumi.log", "state": tmp_path, "bin": bindir,
            "account": digitalocean_account,
            "env": {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "RECORDING_PULUMI_LOG": str(tmp_path / "pulumi.log"),
                    "RECORDING_PULUMI_STATE": str(tmp_path), "PULUMI_CONFIG_PASSPHRASE": "test-passphrase", **operator}}


@pytest.fixture
def cloudflare_api():
    """Cloudflare's API v4 at CLOUDFLARE_API_URL's place: GET /ips in its documented shape
    (tests/fixtures/cloudflare/ips.json); answers: path → (status, body), every path recorded."""
    from tests.do_replay import LocalApi

    fixtures = Path(__file__).resolve().parent / "fixtures" / "cloudflare"
    answers = {"/client/v4/ips": (200, (fixtures / "ips.json").read_bytes())}
    seen: list[str] = []
    api = LocalApi(lambda path: seen.append(path) or answers.get(path, (404, (fixtures / "error_403.json").read_bytes())))
    yield {"url": f"{api.url}/client/v4", "answers": answers, "seen": seen}
    api.close()
