"""The droplet images dynia supports, each with the packages its cloud-init installs, named as
that distribution's own archive names them (a name the archive lacks makes apt install
nothing of the list: every node would come up without HAProxy, Caddy and keepalived).

Every node runs `docker compose` (the Compose v2 CLI plugin; dynia.providers.digitalocean
PROFILE): an image whose archive has no Compose v2 is not supported.
"""
from __future__ import annotations

from dataclasses import dataclass

@dataclass(frozen=True)
class Image:
    slug: str           # DigitalOcean's image slug (provider.image)
    distribution: str   # os-release ID
    release: str        # os-release VERSION_ID
    packages: tuple[str, ...]
    source: str         # where the names were checked, and when


IMAGES: dict[str, Image] = {i.slug: i for i in (
    # Checked in Ubuntu's archive (packages.ubuntu.com, noble and noble-updates, main and
    # universe), 2026-12-07: Compose v2 is `docker-compose-v2` (the Debian name
    # `docker-compose` is Compose v1 there). Not resolvable on this build machine (Debian only).
    Image("ubuntu-24-04-x64", "ubuntu", "24.04", ("haproxy", "caddy", "keepalived", "nftables", "docker.io",
                                                  "docker-compose-v2", "python3", "curl", "e2fsprogs"),
          "Ubuntu 24.04 archive (packages.ubuntu.com/noble), checked 2026-12-07"),
    # Debian 13's archive: docker.io 26.1.5, docker-compose 2.26.1 (which installs
    # /usr/libexec/docker/cli-plugins/docker-compose, i.e. `docker compose`); there is no
    # docker-compose-v2 or docker-ce. tests/unit/test_images.py resolves the list with apt
    # on a Debian 13 machine.
    Image("debian-13-x64", "debian", "13", ("haproxy", "caddy", "keepalived", "nftables", "docker.io",
                                           "docker-compose", "python3", "curl", "e2fsprogs"),
          "Debian 13 archive (apt-cache policy, checked 2026-12-07; resolved by tests/unit/test_images.py)"),
)}

# Images an operator may well try, and why each is refused (the error says so).
REFUSED: dict[str, str] = {
    # apt-cache policy docker-compose on Debian 12: 1.29.2 (Python Compose v1, no `docker
    # compose` plugin, cannot find a project by its labels alone); bookworm-backports has none.
    "debian-12-x64": "Debian 12's archive has only Compose v1 (docker-compose 1.29.2) and dynia runs "
                     "`docker compose` (v2)",
}


def supported() -> str:
    return ", ".join(sorted(IMAGES))


def packages(slug: str) -> tuple[str, ...]:
    return IMAGES[slug].packages
