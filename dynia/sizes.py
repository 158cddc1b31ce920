"""Facts about DigitalOcean that the spec validates against and the resource guard needs.

RAM in MiB of the common droplet sizes (DigitalOcean size slugs, 2024–2026 catalogue).
"""
from __future__ import annotations

SIZE_RAM_MIB: dict[str, int] = {
    "s-1vcpu-512mb-10gb": 512,
    "s-1vcpu-1gb": 1024,
    "s-1vcpu-1gb-amd": 1024,
    "s-1vcpu-1gb-intel": 1024,
    "s-1vcpu-2gb": 2048,
    "s-1vcpu-2gb-amd": 2048,
    "s-1vcpu-2gb-intel": 2048,
    "s-2vcpu-2gb": 2048,
    "s-2vcpu-2gb-amd": 2048,
    "s-2vcpu-2gb-intel": 2048,
    "s-2vcpu-4gb": 4096,
    "s-2vcpu-4gb-amd": 4096,
    "s-2vcpu-4gb-intel": 4096,
    "s-4vcpu-8gb": 8192,
    "s-4vcpu-8gb-amd": 8192,
    "s-4vcpu-8gb-intel": 8192,
    "s-8vcpu-16gb": 16384,
    "s-8vcpu-16gb-amd": 16384,
    "s-8vcpu-16gb-intel": 16384,
    "c-2": 4096,
    "c-4": 8192,
    "c-8": 16384,
    "g-2vcpu-8gb": 8192,
    "g-4vcpu-16gb": 16384,
    "m-2vcpu-16gb": 16384,
    "m-4vcpu-32gb": 32768,
}

REGIONS: tuple[str, ...] = (
    "ams3", "atl1", "blr1", "fra1", "lon1", "nyc1", "nyc2", "nyc3",
    "sfo2", "sfo3", "sgp1", "syd1", "tor1",
)

# What every node spends before any service: OS, dockerd, HAProxy, Caddy, keepalived.
INFRA_BUDGET_MIB = 300
