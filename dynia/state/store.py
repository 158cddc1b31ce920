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

from ..errors import config_error, state_error
from ..names import NAME_RULE, is_name
from .reads import load_bounded, read_input

MAX_BYTES = 4 * 1024 * 1024  # five nodes' manifests are a few KiB


def check_cluster_name(name: Any) -> str:
    """Every path built from a cluster name goes through here first: `--cluster ../../x`
    must not name a spec, a lock or a cache directory outside the project."""
    if not is_name(name):
        raise config_error(f"{name!r} is not a cluster name ({NAME_RULE})",
                           "use a name like shop or blog-eu: it names clusters/NAME.yaml")
    return name


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
        return self.clusters_dir / f"{check_cluster_name(cluster)}.yaml"

    def deploy_dir(self, cluster: str) -> Path:
        return self.root / "deploy-config" / check_cluster_name(cluster)

    def cache_dir(self, cluster: str) -> Path:
        return self.runtime / "cache" / check_cluster_name(cluster)

    def snapshots_dir(self, cluster: str) -> Path:
        return self.runtime / "snapshots" / check_cluster_name(cluster)

    def lab_dir(self, cluster: str) -> Path:
        """Lab nodes of a local-provider cluster (dynia.nodes.lab)."""
        return self.runtime / "lab" / check_cluster_name(cluster)

    def secrets_path(self, cluster: str, kind: str = "json") -> Path:
        """.dynia/secrets/<cluster>.json (stats credentials), .origin.pem (the lab's certificate)."""
        return self.runtime / "secrets" / f"{check_cluster_name(cluster)}.{kind}"

    def write_secret(self, cluster: str, kind: str, data: bytes) -> None:
        """secrets_path(cluster, kind) := data, owner-only (0600), written atomically."""
        self.ensure_runtime()
        write_atomic(self.secrets_path(cluster, kind), data, mode=0o600)

    def write_secret_json(self, cluster: str, kind: str, data: Any) -> None:
        """write_secret, as JSON (write_json)."""
        self.ensure_runtime()
        write_json(self.secrets_path(cluster, kind), data, mode=0o600)

    def read_secret_json(self, cluster: str, kind: str, fix: str, limit: int) -> Any | None:
        """secrets_path(cluster, kind) as JSON (read_json), None when it does not exist."""
        path = self.secrets_path(cluster, kind)
        return read_json(path, os.path.relpath(path, self.root), fix, limit=limit)

    def lock_path(self, cluster: str) -> Path:
        return self.runtime / "locks" / f"{check_cluster_name(cluster)}.lock"

    @property
    def state_dir(self) -> Path:
        return self.runtime / "state"

    @property
    def logs_dir(self) -> Path:
        return self.runtime / "logs"

    def ensure_runtime(self) -> None:
        try:
            for sub in ("state", "snapshots", "cache", "logs", "locks", "secrets"):
                (self.runtime / sub).mkdir(parents=True, exist_ok=True)
            os.chmod(self.runtime / "secrets", 0o700)
        except OSError as exc:
            raise _write_error(Path(exc.filename or self.runtime), exc) from None
        ignore = self.runtime / ".gitignore"
        if not ignore.exists():
            write_atomic(ignore, b"# dynia runtime data: never commit\n*\n")

    def ignore_render_output(self) -> None:
        """deploy-config/ is regenerated from the spec (render is pure): keep it out of the
        operator's repository, like .dynia/. Appended to the project's .gitignore once."""
        ignore = self.root / ".gitignore"
        try:
            text = ignore.read_text() if ignore.exists() else ""
        except (OSError, UnicodeDecodeError) as exc:
            raise state_error(f"{ignore} is not readable ({exc.__class__.__name__})",
                              "fix or remove it, then rerun; the spec was written") from None
        if any(line.strip() in RENDER_IGNORES for line in text.splitlines()):
            return
        sep = "" if not text or text.endswith("\n") else "\n"
        write_atomic(ignore, text + sep + "# dynia's render output: regenerated from clusters/ (dynia render)\n/deploy-config/\n")

    def cluster_names(self) -> list[str]:
        if not self.clusters_dir.is_dir():
            return []
        return sorted(p.stem for p in self.clusters_dir.glob("*.yaml"))


# .gitignore lines that already keep deploy-config/ out
RENDER_IGNORES = ("deploy-config", "deploy-config/", "/deploy-config", "/deploy-config/")


# --- atomic writes -------------------------------------------------------------------------

def _write_error(path: Path, exc: OSError) -> Exception:
    return state_error(f"cannot write {path}: {exc.strerror or exc}",
                       "make the directory writable by this user (and a directory, not a file), "
                       "or free disk space, then rerun")


def _identity(path: Path, mode: int | None) -> tuple[Path, int, tuple[int, int] | None]:
    """Where to write and with which mode and owner.

    An explicit mode (secrets: 0600) is enforced on the path itself. Otherwise an edit keeps
    the file what it was: a symlink stays a link (its target is rewritten), and the target
    keeps its mode and owner; a new file is 0644 and belongs to whoever runs dynia.
    """
    if mode is not None:
        return path, mode, None
    target = Path(os.path.realpath(path))
    try:
        st = target.stat()
    except FileNotFoundError:
        return target, 0o644, None
    return target, st.st_mode & 0o7777, (st.st_uid, st.st_gid)


def write_atomic(path: Path, data: bytes | str, mode: int | None = None) -> None:
    """Write `data` to `path` so a crash leaves the old file or the new one, never a mix.

    Any failure of the disk or its permissions is a typed `state` error naming the file.
    """
    if isinstance(data, str):
        data = data.encode()
    try:
        target, mode, owner = _identity(path, mode)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            st = os.fstat(f.fileno())
            if owner is not None and owner != (st.st_uid, st.st_gid):
                try:
                    os.fchown(f.fileno(), *owner)
                except PermissionError:
                    raise state_error(f"cannot write {path} and keep its owner (uid {owner[0]}, gid {owner[1]})",
                                      "run dynia as the user who owns the file, or chown it to yourself") from None
            os.fsync(f.fileno())
        os.replace(tmp, target)
        dirfd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, PermissionError) and target.exists() and os.access(target.parent, os.W_OK):
            # The directory is writable, yet the rename was refused: the file itself is locked.
            raise state_error(f"cannot replace {path}: {exc.strerror or exc} (the file is immutable or append-only)",
                              f"check `lsattr {target}`; `chattr -i {target}` if you locked it on purpose") from None
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from None
        raise


def write_json(path: Path, data: Any, mode: int | None = None) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode)


def read_json(path: Path, shown: str, fix: str, limit: int = MAX_BYTES) -> Any | None:
    """A runtime JSON file, or None when it does not exist; anything unreadable is a state error."""
    import stat as st

    try:
        mode = path.stat().st_mode
        if st.S_ISDIR(mode):
            raise IsADirectoryError
        if not st.S_ISREG(mode):  # /dev/zero never ends, a FIFO blocks: neither is ours
            raise state_error(f"{shown} is not a regular file", fix)
        with open(path, "rb") as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise state_error(f"{shown} is larger than {limit // 1024} KiB", fix)
        return json.loads(data.decode("utf-8"))
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise state_error(f"{shown} is a directory, not a file", fix) from None
    except PermissionError:
        raise state_error(f"{shown} cannot be read (permission denied)", "check its owner and mode") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise state_error(f"{shown} is not valid JSON", fix) from None


# --- the cluster lock ----------------------------------------------------------------------

@contextlib.contextmanager
def cluster_lock(project: Project, cluster: str) -> Iterator[None]:
    """Advisory lock per cluster; a second command fails at once instead of waiting."""
    path = project.lock_path(cluster)
    project.ensure_runtime()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise _write_error(path, exc) from None
    held = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = True
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
        # No such cluster (a mistyped --cluster, a failed init): no lock file left for it.
        if held and not project.spec_path(cluster).exists():
            with contextlib.suppress(OSError):
                path.unlink()
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
        return load_bounded(text, _yaml())
    except RecursionError:
        raise config_error(f"{source}: nested too deeply to be a dynia spec",
                           "a spec is a few levels deep; remove the nested brackets or lists") from None
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


def read_spec_text(project: Project, name: str) -> str:
    path = project.spec_path(name)
    known = ", ".join(project.cluster_names()) or "none yet"
    shown = os.path.relpath(path, project.root)
    if path.is_symlink() and not path.exists():
        raise config_error(f"{shown} is a symlink to {os.readlink(path)}, which does not exist",
                           f"restore the link's target, or remove the link ({shown}) and create the spec again")
    return read_input(path, shown, (f"no cluster spec {shown}",
                                    f"create it with `dynia cluster init {name} --region REGION --domain DOMAIN` (clusters here: {known})"))

