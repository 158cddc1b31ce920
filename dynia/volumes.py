"""Data that follows the VIP (issue 23): each `services.<name>.data` is one block-storage
volume, attached to one node at a time, moved by notify.sh (templates/node/volume.py) before
the service starts. Pure: names and the node's volume configuration, from the spec."""
from __future__ import annotations

import json

GRACE_SECONDS = 2.0   # how long a new holder waits for the old holder's own release before it forces
TRIES = 8             # provider calls, backing off like the reserved-IP assignment (1 s doubling to 30 s)


def volume_name(cluster: str, service: str) -> str:
    """The provider's name for the service's volume: stable, so a spec change never replaces it
    (DigitalOcean: lowercase letters, digits and dashes, at most 64)."""
    return f"dynia-{cluster}-{service}"[:64]


def data_services(spec) -> dict:
    return {name: svc.data for name, svc in sorted(spec.services.items()) if svc.data is not None}


def node_config(spec, profile) -> bytes | None:
    """/etc/dynia/volumes.json: what the node's mover needs; None when no service has data."""
    data = data_services(spec)
    if not data:
        return None
    return (json.dumps({
        "api": profile.volume_api, "api_command": profile.volume_api_command,
        "grace_seconds": GRACE_SECONDS, "tries": TRIES,
        "volumes": {name: {"name": volume_name(spec.name, name), "filesystem": d.filesystem, "mount": d.mount}
                    for name, d in data.items()},
    }, indent=2, sort_keys=True) + "\n").encode()
