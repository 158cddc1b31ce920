"""Files on the operator's disk: the project layout, round-trip spec edits, atomic writes, locks.

Every write goes through `write_atomic` (temp file in the same directory, fsync, rename,
fsync of the directory), so a crash leaves the old file or the new one, never a mix.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import config_error, state_error
from .spec import ClusterSpec, raise_first, validate_spec


@dataclass(frozen=True)
class Project:
    """The operator's working directory: clusters/, deploy-config/ and the git-ignored .dynia/."""
    root: Path

    @property
    def clusters_dir(self) -> Path:
        return self.root / "clusters"

    @property
    def runtime(self) -> Path:
        return self.root / ".dynia"

    def spec_path(self, cluster: str) -> Path:
        return self.clusters_dir / f"{cluster}.yaml"

    def deploy_dir(self, cluster: str) -> Path:
        return self.root / "deploy-config" / cluster

    def cache_dir(self, cluster: str) -> Path:
        return self.runtime / "cache" / cluster

    def snapshots_dir(self, cluster: str) -> Path:
        return self.runtime / "snapshots" / cluster

    def lab_dir(self, cluster: str) -> Path:
        """Lab nodes of a local-provider cluster (dynia.lab)."""
        return self.runtime / "lab" / cluster

    def secrets_path(self, cluster: str) -> Path:
        return self.runtime / "secrets" / f"{cluster}.json"

    @property
    def state_dir(self) -> Path:
        return self.runtime / "state"

    @property
    def logs_dir(self) -> Path:
        return self.runtime / "logs"

    def ensure_runtime(self) -> None:
        for sub in ("state", "snapshots", "cache", "logs", "locks", "secrets"):
            (self.runtime / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.runtime / "secrets", 0o700)
        ignore = self.runtime / ".gitignore"
        if not ignore.exists():
            write_atomic(ignore, b"# dynia runtime data: never commit\n*\n")

    def cluster_names(self) -> list[str]:
        if not self.clusters_dir.is_dir():
            return []
        return sorted(p.stem for p in self.clusters_dir.glob("*.yaml"))


# --- atomic writes -------------------------------------------------------------------------

def write_atomic(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    if isinstance(data, str):
        data = data.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dirfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def write_json(path: Path, data: Any, mode: int = 0o644) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode)


# --- the cluster lock ----------------------------------------------------------------------

@contextlib.contextmanager
def cluster_lock(project: Project, cluster: str) -> Iterator[None]:
    """Advisory lock per cluster; a second command fails at once instead of waiting."""
    project.ensure_runtime()
    path = project.runtime / "locks" / f"{cluster}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise state_error(f"cluster {cluster} is locked by another dynia command (pid {holder})",
                              "wait for it to finish; the lock is released when it exits") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


# --- the spec, round-trip ------------------------------------------------------------------

def _yaml():
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 100
    return y


def parse_yaml(text: str, source: str) -> Any:
    from ruamel.yaml import YAMLError

    try:
        return _yaml().load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise config_error(f"{where}: not valid YAML ({problem})",
                           "fix the YAML syntax at that line") from None


def dump_yaml(raw: Any) -> str:
    out = io.StringIO()
    _yaml().dump(raw, out)
    return out.getvalue()


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


def validate_cluster(project: Project, name: str, raw: Any) -> Cluster:
    from . import compose

    source = os.path.relpath(project.spec_path(name), project.root)
    spec = validate_spec(raw, source)
    if spec.name != name:
        raise_first(source, raw, [(("name",), f"name {spec.name!r} does not match the file name {name}.yaml",
                                   f"set name: {name} or rename the file")])
    infos, problems = compose.check_all(spec, project.root)
    raise_first(source, raw, problems)
    return Cluster(project, name, spec, raw, infos)


def read_spec_text(project: Project, name: str) -> str:
    path = project.spec_path(name)
    try:
        return path.read_text()
    except FileNotFoundError:
        known = ", ".join(project.cluster_names()) or "none yet"
        raise config_error(f"no cluster spec {os.path.relpath(path, project.root)}",
                           f"create it with `dynia cluster init {name} …` (clusters here: {known})") from None


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
        yield raw
        cluster = validate_cluster(project, name, raw)
        write_atomic(project.spec_path(name), dump_yaml(cluster.raw))
