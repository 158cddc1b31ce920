"""Which cluster a command acts on: --cluster, then DYNIA_CLUSTER, then the current cluster
(`dynia context use`, kept in .dynia/context.json), then the only spec in clusters/."""
from __future__ import annotations

import json
import os

from ..errors import config_error, state_error
from ..names import NAME_RULE, is_name
from ..state.store import Project, check_cluster_name, write_json

# context.json holds one short name; anything much larger is not ours.
MAX_CONTEXT_BYTES = 4096


def _path(project: Project):
    return project.runtime / "context.json"


def current(project: Project) -> str | None:
    """The cluster `dynia context use` selected, or None.

    A context.json of the wrong shape is an error, not "no cluster": ignoring it would let a
    command silently act on another cluster than the one the operator selected.
    """
    path = _path(project)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONTEXT_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _corrupt(project, f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_CONTEXT_BYTES:
        raise _corrupt(project, "is too large")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _corrupt(project, "is not JSON") from None
    if not isinstance(doc, dict) or set(doc) - {"currentCluster"}:
        raise _corrupt(project, 'is not {"currentCluster": NAME}')
    name = doc.get("currentCluster")
    if name is not None and not is_name(name):
        raise _corrupt(project, f"names {name!r}, which is not a cluster name ({NAME_RULE})")
    return name


def _corrupt(project: Project, why: str):
    shown = os.path.relpath(_path(project), project.root)
    return state_error(f"{shown} {why}",
                       f"run `dynia context clear` (or `dynia context use NAME`) to rewrite {shown}")


def use(project: Project, name: str) -> None:
    check_cluster_name(name)
    if name not in project.cluster_names():
        known = ", ".join(project.cluster_names()) or "none yet"
        raise config_error(f"no cluster spec clusters/{name}.yaml",
                           f"pick one of: {known} (or create it with `dynia cluster init {name} --region REGION --domain DOMAIN`)")
    project.ensure_runtime()
    write_json(_path(project), {"currentCluster": name})


def clear(project: Project) -> None:
    shown = os.path.relpath(_path(project), project.root)
    try:
        _path(project).unlink(missing_ok=True)
    except OSError as exc:
        raise state_error(f"cannot remove {shown}: {exc.strerror or exc}",
                          f"remove {shown} by hand, then select a cluster with `dynia context use NAME`") from None


def resolve(project: Project, explicit: str | None) -> str:
    """The cluster a command acts on, checked as a name before any path is built from it."""
    return resolve_with_source(project, explicit)[0]


def resolve_with_source(project: Project, explicit: str | None) -> tuple[str, str]:
    """(cluster, where the choice came from): what `dynia context current` explains."""
    for name, source in ((explicit, "--cluster"), (os.environ.get("DYNIA_CLUSTER"), "DYNIA_CLUSTER")):
        if name:
            if not is_name(name):
                raise config_error(f"{source} {name!r} is not a cluster name ({NAME_RULE})",
                                   "pass the NAME of a clusters/NAME.yaml"
                                   + _known(project))
            return name, source
    name = current(project)
    if name:
        return name, os.path.relpath(_path(project), project.root)
    names = project.cluster_names()
    if len(names) == 1:
        return check_cluster_name(names[0]), "the only spec in clusters/"
    raise config_error("no cluster selected",
                       "pass --cluster NAME, set DYNIA_CLUSTER, or run `dynia context use NAME`"
                       + (f" (clusters here: {', '.join(names)})" if names else ""))


def existing(project: Project, explicit: str | None) -> tuple[str, str]:
    """resolve_with_source, and the spec must exist: a context naming a deleted or renamed
    cluster is an error to fix, not an answer (`dynia context current`)."""
    name, source = resolve_with_source(project, explicit)
    if not project.spec_path(name).exists():
        fix = {"--cluster": "pass the NAME of a clusters/NAME.yaml",
               "DYNIA_CLUSTER": "set DYNIA_CLUSTER to an existing cluster, or unset it"}.get(
            source, "run `dynia context use NAME` for an existing cluster, or `dynia context clear`")
        raise config_error(f"the current cluster {name} (from {source}) has no spec: clusters/{name}.yaml does not exist",
                           fix + _known(project))
    return name, source


def _known(project: Project) -> str:
    names = [n for n in project.cluster_names() if is_name(n)]
    return f" (clusters here: {', '.join(names)})" if names else ""
