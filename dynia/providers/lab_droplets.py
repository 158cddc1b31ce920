"""The lab's droplets: each lab node's size and power state, as DigitalOcean's API keeps a
droplet's (DIR/droplets.json). Set when the node is first provisioned (at the spec's size), then
changed only by the lab's power steps (dynia.nodes.lab_power): a resize while the node is off.
The lab's droplet ids are its API stand-in's (dynia.providers.lab_api: node i is
FIRST_DROPLET_ID + i)."""
from __future__ import annotations

import json
import os
from pathlib import Path

RECORD_FILE = "droplets.json"


def record(lab_dir: Path) -> dict[str, dict]:
    try:
        data = json.loads((Path(lab_dir) / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write(lab_dir: Path, data: dict) -> None:
    path = Path(lab_dir) / RECORD_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def update(lab_dir: Path, node: str, **fields) -> None:
    data = record(lab_dir)
    data[node] = {**data.get(node, {}), **fields}
    write(lab_dir, data)


def size_at_provision(lab_dir: str, node: str, spec_size: str, dry_run: bool) -> str:
    """The node's size as the lab records it; a node without one was just made, at the spec's
    size (recorded, except in a preview). Like a droplet: a later spec size changes nothing here."""
    entry = record(Path(lab_dir)).get(node)
    if isinstance(entry, dict) and entry.get("size"):
        return entry["size"]
    if not dry_run:
        update(Path(lab_dir), node, size=spec_size, status="active")
    return spec_size


def forget(lab_dir: Path, nodes: list[str]) -> None:
    """A node taken down: the droplet is gone, and so is its record."""
    data = record(lab_dir)
    if any(n in data for n in nodes):
        write(lab_dir, {n: v for n, v in data.items() if n not in nodes})
