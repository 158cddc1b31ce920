"""Which cluster a command acts on: --cluster, then DYNIA_CLUSTER, then .dynia/context.json."""
from __future__ import annotations

import json
import os

from .errors import config_error
from .store import Project, write_json


def _path(project: Project):
    return project.runtime / "context.json"


def current(project: Project) -> str | None:
    try:
        return json.loads(_path(project).read_text()).get("currentCluster")
    except (FileNotFoundError, ValueError):
        return None


def use(project: Project, name: str) -> None:
    if name not in project.cluster_names():
        known = ", ".join(project.cluster_names()) or "none yet"
        raise config_error(f"no cluster spec clusters/{name}.yaml",
                           f"pick one of: {known} (or create it with `dynia cluster init {name}`)")
    project.ensure_runtime()
    write_json(_path(project), {"currentCluster": name})


def clear(project: Project) -> None:
    if _path(project).exists():
        _path(project).unlink()


def resolve(project: Project, explicit: str | None) -> str:
    name = explicit or os.environ.get("DYNIA_CLUSTER") or current(project)
    if name:
        return name
    names = project.cluster_names()
    if len(names) == 1:
        return names[0]
    raise config_error("no cluster selected",
                       "pass --cluster NAME, set DYNIA_CLUSTER, or run `dynia context use NAME`"
                       + (f" (clusters here: {', '.join(names)})" if names else ""))
