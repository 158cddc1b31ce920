"""Loading a cluster, one path: the spec's bytes (dynia.state.store) → the spec validated
(model) → its compose files validated (compose). Every command that reads a cluster starts
here; an edit goes through edit_cluster (lock, edit, validate, atomic write)."""
from __future__ import annotations

import contextlib
import copy
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import DyniaError
from ..state.store import (
    Project,
    cluster_lock,
    dump_yaml,
    parse_yaml,
    read_spec_text,
    write_atomic,
)
from . import compose
from .model import ClusterSpec, raise_first, validate_spec


@dataclass
class Cluster:
    project: Project
    name: str
    spec: ClusterSpec
    raw: Any
    compose: dict  # service name -> compose.ComposeInfo

    @property
    def path(self) -> Path:
        return self.project.spec_path(self.name)

    @property
    def source(self) -> str:
        return os.path.relpath(self.path, self.project.root)


def validate_cluster(project: Project, name: str, raw: Any, source: str | None = None) -> Cluster:
    """`raw` as cluster `name`; `source`: the file it was read from, for the errors (the
    cluster's spec file unless said otherwise, e.g. a snapshot's copy)."""
    source = source or os.path.relpath(project.spec_path(name), project.root)
    spec = validate_spec(raw, source)
    if spec.name != name:
        raise_first(source, raw, [(("name",), f"name {spec.name!r} does not match the file name {name}.yaml",
                                   f"set name: {name} or rename the file")])
    infos, problems = compose.check_all(spec, project.root)
    raise_first(source, raw, problems)
    return Cluster(project, name, spec, raw, infos)


def load_cluster(project: Project, name: str) -> Cluster:
    source = os.path.relpath(project.spec_path(name), project.root)
    return validate_cluster(project, name, parse_yaml(read_spec_text(project, name), source))


@contextlib.contextmanager
def edit_cluster(project: Project, name: str) -> Iterator[Any]:
    """Lock, load the round-trip YAML, let the caller mutate it, validate, write atomically.

    If the caller or validation raises, the file on disk is untouched.
    """
    with cluster_lock(project, name):
        source = os.path.relpath(project.spec_path(name), project.root)
        raw = parse_yaml(read_spec_text(project, name), source)
        # Edits start from a spec of the right shape (a list of nodes, a mapping of services),
        # so no edit trips over a hand-made mistake; compose files are checked after the edit.
        validate_spec(raw, source)
        before = copy.deepcopy(raw)
        yield raw
        try:
            cluster = validate_cluster(project, name, raw)
        except DyniaError as exc:
            raise _edit_error(exc, source, project, name, before) from None
        write_atomic(project.spec_path(name), dump_yaml(cluster.raw))


def _edit_error(exc: DyniaError, source: str, project: Project, name: str, before: Any) -> DyniaError:
    """A value the command was given is wrong: the file's line numbers would point at lines that
    do not hold it (it was never written), so name the key and say the file is unchanged. A
    problem the file already had before the edit keeps its location."""
    if exc.kind != "config" or not exc.message.startswith(source + ":"):
        return exc
    try:
        validate_cluster(project, name, before)
    except DyniaError as earlier:
        if earlier.message == exc.message:
            return exc
    problem = re.sub(r"^:\d+: ", "", exc.message[len(source):]).lstrip(": ")
    generic = exc.hint.startswith("fix the value;")
    return DyniaError("config", f"{problem} ({source} is unchanged)",
                      "fix the value given on the command line; `dynia schema` lists every key and type"
                      if generic else exc.hint)
