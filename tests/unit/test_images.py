"""Supported images only, each with the package names of its own archive: one name apt cannot
find and cloud-init installs none of the list (a node without HAProxy, Caddy and keepalived).
A Debian image's list is resolved by this machine's own apt when the machine runs that Debian
release (the build machines run Debian 12 or 13): `apt-get -s` from an empty package status,
as on a fresh droplet. Ubuntu's list is dated data (dynia/images.py): no Ubuntu archive here."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dynia import images

from ..needs import need

REPO = Path(__file__).resolve().parents[2]
DEBIAN = [i for i in images.IMAGES.values() if i.distribution == "debian"]


def os_release() -> dict[str, str]:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return {}
    return {k: v.strip('"') for k, _, v in (line.partition("=") for line in text.splitlines()) if k}


def on_debian(release: str | None = None) -> None:
    """Skip, saying why, unless this machine is Debian (that release): its apt is the archive.
    CI runs on Debian 12 and 13 (README): there, not being on Debian is a failure; a list for
    the other release is resolved by the other release's run."""
    osr = os_release()
    here = f"{osr.get('ID', '?')} {osr.get('VERSION_ID', '?')}"
    need(osr.get("ID") == "debian" and shutil.which("apt-get") is not None,
         f"this machine is {here}, not Debian with apt-get: no Debian archive to resolve against")
    if release is not None and osr.get("VERSION_ID") != release:
        pytest.skip(f"this machine is Debian {osr.get('VERSION_ID')}; the list is for Debian {release}'s "
                    f"archive and is resolved on a Debian {release} machine")
    if "Candidate: (none)" in _apt("apt-cache", "policy", "base-files").stdout:
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True, timeout=300)


def _apt(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=300)


def simulate_fresh_install(packages) -> subprocess.CompletedProcess:
    """What `apt-get install` would do on a machine with nothing installed (cloud-init's run)."""
    return _apt("apt-get", "-s", "-o", "Dir::State::status=/dev/null", "-o", "Debug::NoLocking=1",
                "install", *packages)


@pytest.mark.parametrize("image", DEBIAN, ids=[i.slug for i in DEBIAN])
def test_each_debian_images_package_list_installs_from_its_own_release(image):
    on_debian(image.release)
    r = simulate_fresh_install(image.packages)
    assert r.returncode == 0, r.stdout + r.stderr
    installed = {line.split()[1] for line in r.stdout.splitlines() if line.startswith("Inst ")}
    assert set(image.packages) <= installed, set(image.packages) - installed


def test_the_ubuntu_list_installs_nothing_on_debian_which_is_why_each_image_has_its_own():
    on_debian()
    r = simulate_fresh_install(images.packages("ubuntu-24-04-x64"))
    assert r.returncode != 0 and "Unable to locate package docker-compose-v2" in r.stderr


def test_debian_12_has_only_compose_v1_which_is_why_its_image_is_refused():
    on_debian("12")
    r = _apt("apt-cache", "policy", "docker-compose")
    candidate = next(line.split()[1] for line in r.stdout.splitlines() if "Candidate:" in line)
    assert candidate.startswith("1."), r.stdout  # Compose v1: no `docker compose` plugin
    assert "docker-compose-v2" not in _apt("apt-cache", "pkgnames", "docker-compose").stdout.split()
    assert "Compose v1" in images.REFUSED["debian-12-x64"]


@pytest.mark.parametrize("image, words", [
    ("debian-12-x64", "image 'debian-12-x64' is not supported: Debian 12's archive has only Compose v1"),
    ("centos-stream-9-x64", "image 'centos-stream-9-x64' is not supported")])
def test_any_other_image_is_a_config_error_naming_the_supported_ones(tmp_path, cli, image, words):
    proj = tmp_path / "proj"
    shutil.copytree(REPO / "examples", proj, ignore=shutil.ignore_patterns(".dynia", "deploy-config"))
    spec = proj / "clusters" / "shop.yaml"
    spec.write_text(spec.read_text().replace("image: ubuntu-24-04-x64", f"image: {image}"))
    before = spec.read_bytes()
    r = cli("-C", str(proj), "render", "--cluster", "shop")
    assert r.code == 10 and words in r.err, r.err
    assert "use one of: debian-13-x64, ubuntu-24-04-x64" in r.err
    assert spec.read_bytes() == before


def test_every_image_is_dated_data_with_its_source():
    for image in images.IMAGES.values():
        assert "checked 2026-" in image.source and image.packages
        assert {"haproxy", "caddy", "keepalived", "docker.io"} <= set(image.packages)
