"""State snapshots: the spec file plus export_stack() of every phase, last 5 kept.

Taken automatically before every destructive command; `revert` restores the spec and
import_stack()s each phase. Exports keep Pulumi's own secret encryption (the passphrase);
the snapshot files are 0600 all the same.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from .errors import DyniaError
from .store import write_atomic, write_json

KEEP = 5


def _dir(project, cluster: str) -> Path:
    return project.snapshots_dir(cluster)


def take(engine, reason: str) -> str:
    from .engine import PHASES, stack_export

    snap_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{reason}"
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
    return sorted(p.name for p in d.iterdir() if (p / "snapshot.json").exists()) if d.is_dir() else []


def describe(project, cluster: str) -> list[dict]:
    return [json.loads((_dir(project, cluster) / i / "snapshot.json").read_text()) for i in list_ids(project, cluster)]


def restore_spec(project, cluster: str, snap_id: str) -> None:
    """Put the snapshot's spec back (works even when the current spec no longer validates)."""
    source = _dir(project, cluster) / snap_id
    if not (source / "snapshot.json").exists():
        known = ", ".join(list_ids(project, cluster)) or "none"
        raise DyniaError("state", f"no snapshot {snap_id!r} for cluster {cluster}",
                         f"pick one of: {known} (dynia state list)")
    write_atomic(project.spec_path(cluster), (source / "spec.yaml").read_bytes())


def import_stacks(engine, snap_id: str) -> None:
    from .engine import PHASES, stack_import

    source = _dir(engine.cluster.project, engine.cluster.name) / snap_id
    for phase in PHASES:
        stack_import(engine, phase, json.loads((source / f"{phase}.json").read_text()))
