"""State snapshots: the spec file plus export_stack() of every phase, last 5 kept.

Taken automatically before every destructive command; `revert` restores the spec and
import_stack()s each phase. Exports keep Pulumi's own secret encryption (the passphrase);
the snapshot files are 0600 all the same.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from .errors import DyniaError
from .store import write_atomic, write_json

KEEP = 5
SNAPSHOT_ID = re.compile(r"\d{8}T\d{6}(?:\.\d{6})?Z-[a-z][a-z-]{0,40}")


def _dir(project, cluster: str) -> Path:
    return project.snapshots_dir(cluster)


def take(engine, reason: str) -> str:
    from .engine import PHASES, stack_export

    # Microseconds: two snapshots in one second (a script, a retry) must not collide.
    now = time.time()
    snap_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z-{reason}"
    proj, name = engine.cluster.project, engine.cluster.name
    target = _dir(proj, name) / snap_id
    target.mkdir(parents=True, exist_ok=False)
    target.chmod(0o700)
    write_atomic(target / "spec.yaml", engine.cluster.path.read_bytes(), mode=0o600)
    for phase in PHASES:
        write_json(target / f"{phase}.json", stack_export(engine, phase), mode=0o600)
    write_json(target / "snapshot.json", {"id": snap_id, "cluster": engine.cluster.name, "reason": reason,
                                          "phases": list(PHASES)}, mode=0o600)
    for old in list_ids(proj, name)[:-KEEP]:
        shutil.rmtree(_dir(proj, name) / old, ignore_errors=True)
    return snap_id


def list_ids(project, cluster: str) -> list[str]:
    d = _dir(project, cluster)
    return sorted(p.name for p in d.iterdir()
                  if SNAPSHOT_ID.fullmatch(p.name) and (p / "snapshot.json").is_file()) if d.is_dir() else []


def describe(project, cluster: str) -> list[dict]:
    return [_record(project, cluster, i) for i in list_ids(project, cluster)]


def _record(project, cluster: str, snap_id: str) -> dict:
    """snapshot.json, checked: it names this snapshot, this cluster and the phases."""
    from .cache import read_json

    path = _dir(project, cluster) / snap_id / "snapshot.json"
    shown = os.path.relpath(path, project.root)
    fix = f"remove the directory {os.path.dirname(shown)} (that snapshot cannot be trusted)"
    data = read_json(path, shown, fix, limit=64 * 1024)
    if not (isinstance(data, dict) and data.get("id") == snap_id and data.get("cluster") == cluster
            and isinstance(data.get("reason"), str) and re.fullmatch(r"[a-z][a-z-]{0,40}", data["reason"])
            and isinstance(data.get("phases"), list) and all(isinstance(p, str) and p.isidentifier()
                                                             for p in data["phases"])):
        raise DyniaError("state", f"{shown} is corrupt (it must name snapshot {snap_id} of cluster {cluster})", fix)
    return {k: data[k] for k in ("id", "cluster", "reason", "phases")}


def restore_spec(project, cluster: str, snap_id: str) -> None:
    """Put the snapshot's spec back (works even when the current spec no longer validates),
    but only a snapshot spec that itself validates: a revert never writes a broken spec."""
    from .spec import validate_spec
    from .store import parse_yaml

    known = ", ".join(list_ids(project, cluster)) or "none"
    if not SNAPSHOT_ID.fullmatch(snap_id) or snap_id not in list_ids(project, cluster):
        raise DyniaError("state", f"no snapshot {snap_id!r} for cluster {cluster}",
                         f"pick one of: {known} (dynia state list)")
    _record(project, cluster, snap_id)
    source = _dir(project, cluster) / snap_id / "spec.yaml"
    shown = os.path.relpath(source, project.root)
    try:
        text = source.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        raise DyniaError("state", f"{shown} cannot be read as a spec",
                         f"pick another snapshot: {known}") from None
    spec = validate_spec(parse_yaml(text, shown), shown)
    if spec.name != cluster:
        raise DyniaError("state", f"{shown} is the spec of cluster {spec.name}, not {cluster}",
                         f"pick another snapshot: {known}")
    write_atomic(project.spec_path(cluster), text)


def import_stacks(engine, snap_id: str) -> None:
    from .engine import PHASES, stack_import

    from .cache import read_json

    project, cluster = engine.cluster.project, engine.cluster.name
    source = _dir(project, cluster) / snap_id
    exports = {}
    for phase in PHASES:  # every export read and checked before the first import
        path = source / f"{phase}.json"
        shown = os.path.relpath(path, project.root)
        data = read_json(path, shown, "pick another snapshot (dynia state list)", limit=256 * 1024 * 1024)
        if not (isinstance(data, dict) and isinstance(data.get("version"), int)
                and isinstance(data.get("deployment"), dict)):
            raise DyniaError("state", f"{shown} is not a stack export", "pick another snapshot (dynia state list)")
        exports[phase] = data
    for phase in PHASES:
        stack_import(engine, phase, exports[phase])
