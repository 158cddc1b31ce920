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

from ..errors import DyniaError
from ..state.store import write_atomic, write_json

KEEP = 5
SNAPSHOT_ID = re.compile(r"\d{8}T\d{6}(?:\.\d{6})?Z-[a-z][a-z-]{0,40}")


def _dir(project, cluster: str) -> Path:
    return project.snapshots_dir(cluster)


def take(engine, reason: str) -> str:
    from ..engine.automation import PHASES, stack_export

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
    from ..state.cache import read_json

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


def revert(project, cluster: str, snap_id: str, on_progress=None) -> None:
    """Put the cluster back as snapshot `snap_id` has it: every phase's stack imported (and
    refreshed), then the spec. Everything is checked before anything is written — the snapshot
    (its record, a spec that loads, an export of every phase) and what the engine needs from
    this machine for that spec (dynia.engine.automation.preflight) — and the spec is written last, once
    every stack holds the snapshot's state: a revert that fails, even midway through the
    imports, leaves the spec byte-identical and says which stacks it reached and how to finish."""
    from ..engine.automation import PHASES, Engine, stack_import, stack_refresh
    from ..engine.session import check_machine
    from ..state.store import cluster_lock

    with cluster_lock(project, cluster):
        text, snapshot = _snapshot_cluster(project, cluster, snap_id)
        exports = _exports(project, cluster, snap_id)
        check_machine(snapshot)
        engine = Engine(snapshot, on_progress=on_progress)
        for i, phase in enumerate(PHASES):
            step = "import"
            try:
                stack_import(engine, phase, exports[phase])
                step = "refresh"
                stack_refresh(engine, phase)
            except DyniaError as exc:
                raise _stopped(exc, snap_id, cluster, PHASES[:i], phase, step, PHASES[i + 1:]) from None
        write_atomic(project.spec_path(cluster), text)


def _stopped(exc: DyniaError, snap_id: str, cluster: str, done, phase: str, step: str, left) -> DyniaError:
    """A revert stopped at `phase` (its import or its refresh failed): what each stack now
    holds, the spec untouched, and the command that finishes the revert."""
    held = [f"{p} holds the snapshot's state" for p in done]
    held.append(f"{phase} holds the snapshot's state, not refreshed yet" if step == "refresh"
                else f"{phase} is as it was (its import failed)")
    held += [f"{p} is as it was" for p in left]
    resume = f"dynia state revert {snap_id} --cluster {cluster}"
    return DyniaError(exc.kind, f"revert to {snap_id} stopped at the {step} of phase {phase}: {exc.message} — "
                      f"{'; '.join(held)}; the spec was not changed",
                      f"{exc.hint}; then finish the revert: {resume} (it imports every phase again, then writes "
                      "the spec)", resume)


def _snapshot_cluster(project, cluster: str, snap_id: str):
    """The snapshot's spec text and the cluster it loads as (it must validate, name this
    cluster and find its compose files): a revert never writes a spec that does not load.
    Works even when the current spec no longer validates."""
    from ..spec.load import validate_cluster
    from ..state.store import parse_yaml

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
    return text, validate_cluster(project, cluster, parse_yaml(text, shown), source=shown)


def _exports(project, cluster: str, snap_id: str) -> dict:
    """Every phase's export, read and checked before the first import."""
    from ..engine.automation import PHASES
    from ..state.cache import read_json

    exports = {}
    for phase in PHASES:
        path = _dir(project, cluster) / snap_id / f"{phase}.json"
        shown = os.path.relpath(path, project.root)
        data = read_json(path, shown, "pick another snapshot (dynia state list)", limit=256 * 1024 * 1024)
        if not (isinstance(data, dict) and isinstance(data.get("version"), int)
                and isinstance(data.get("deployment"), dict)):
            raise DyniaError("state", f"{shown} is not a stack export", "pick another snapshot (dynia state list)")
        exports[phase] = data
    return exports
