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


def node_config(spec, profile, token_path: str) -> bytes | None:
    """/etc/dynia/volumes.json: what the node's mover needs (token_path: where the node token is,
    which DigitalOcean's volume actions take); None when no service has data."""
    data = data_services(spec)
    if not data:
        return None
    api = ({"api_command": profile.volume_api_command} if profile.volume_api == "local" else
           {"api_url": profile.volume_api_url, "metadata_url": profile.metadata_url, "region": spec.provider.region,
            "device_dir": profile.volume_device_dir, "token": token_path})
    return (json.dumps({
        "api": profile.volume_api, **api,
        "grace_seconds": GRACE_SECONDS, "tries": TRIES,
        "volumes": {name: {"name": volume_name(spec.name, name), "filesystem": d.filesystem, "mount": d.mount}
                    for name, d in data.items()},
    }, indent=2, sort_keys=True) + "\n").encode()


def check_recorded(spec, recorded) -> None:
    """The spec's data against the volumes the provision state recorded (its `volumes` output):
    DigitalOcean resizes a volume only upward, its filesystem is made once, and a volume in the
    state is protected (removing `data:` would have Pulumi delete it). Each is refused before
    anything runs, as a `config` error naming the value to put back."""
    from .errors import DyniaError

    if not isinstance(recorded, dict):
        return
    data = data_services(spec)
    for service, was in sorted(recorded.items()):
        if not isinstance(was, dict):
            continue
        at = f"services.{service}.data"
        now = data.get(service)
        if now is None:
            raise DyniaError("config", f"{at} is gone, but volume {was.get('name')} holds the service's data "
                             f"({was.get('size_gb')} GiB): dynia never deletes a data volume on a spec change",
                             f"put {at} back (size_gb: {was.get('size_gb')}, filesystem: {was.get('filesystem')}); "
                             "to delete the data with the cluster: dynia cluster destroy --delete-data")
        size = was.get("size_gb")
        if isinstance(size, int) and now.size_gb < size:
            raise DyniaError("config", f"{at}.size_gb is {now.size_gb} but volume {was.get('name')} has {size} GiB: "
                             "a block-storage volume only grows", f"set {at}.size_gb to {size} or more")
        fs = was.get("filesystem")
        if fs and now.filesystem != fs:
            raise DyniaError("config", f"{at}.filesystem is {now.filesystem} but volume {was.get('name')} was made "
                             f"with {fs}: a new filesystem would be an empty volume",
                             f"set {at}.filesystem back to {fs}")


def deleting_data(given: str | None, cluster: str) -> bool:
    """`cluster destroy --delete-data CLUSTER`: the data volumes go only when the cluster's name
    is given again (a second, deliberate act); another name refuses the destroy."""
    from .errors import DyniaError

    if given is None:
        return False
    if given != cluster:
        raise DyniaError("config", f"--delete-data names {given!r}, not this cluster ({cluster}): nothing was destroyed",
                         f"to delete the data volumes with the cluster: --delete-data {cluster}")
    return True
