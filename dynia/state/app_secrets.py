"""The operator's app secrets (a service's `secrets:`): where each value comes from at push time,
and the secrets store that `dynia secret set` writes.

A value comes from this machine only: the environment variable its spec entry names, a command
it names (a password manager's CLI: run without a shell, its output captured and never shown),
or the store, .dynia/secrets/<cluster>/<service>/<NAME> (0600 in 0700 directories; a looser
mode is refused, never read). It reaches each node as a secret slot of the service's layer
(dynia.render.rendering: paths.app_secret_path, 0600 root), mounted into the containers as /run/secrets/NAME.
Only names, sources and hashes ever leave this module: no value is printed, logged, rendered,
put on a command line or in the Pulumi state unencrypted (the bundles that carry it are a
secret output).
"""
from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import DyniaError
from .store import Project, check_cluster_name, write_atomic

MAX_VALUE = 64 * 1024
COMMAND_TIMEOUT = 60.0
SLOT_PREFIX = "app:"


def slot_secret(service: str, name: str) -> str:
    """The slot name (dynia.render.rendering.SecretSlot.secret) a service's secret fills."""
    return f"{SLOT_PREFIX}{service}/{name}"


def store_dir(project: Project) -> Path:
    return project.runtime / "secrets"


def store_path(project: Project, cluster: str, service: str, name: str) -> Path:
    return store_dir(project) / check_cluster_name(cluster) / service / name


def _shown(project: Project, path: Path) -> str:
    return os.path.relpath(path, project.root)


def read_stored(project: Project, cluster: str, service: str, name: str) -> bytes | None:
    """The stored value, or None when there is none. A file others may read (or a symlink, a
    directory, anything not a regular file of this user's) is refused, never read."""
    path = store_path(project, cluster, service, name)
    shown = _shown(project, path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DyniaError("state", f"secret {service}/{name}: {shown} cannot be read ({exc.strerror or exc})",
                         f"set it again: dynia secret set {service} {name}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise DyniaError("state", f"secret {service}/{name}: {shown} is not a regular file",
                             f"remove it, then: dynia secret set {service} {name}")
        if st.st_mode & 0o077:
            raise DyniaError("state", f"secret {service}/{name}: {shown} has mode {st.st_mode & 0o777:04o}: "
                             "others may read it, so dynia does not",
                             f"chmod 600 {shown} (and rotate the secret if someone else read it)")
        data = f.read(MAX_VALUE + 1)
    return _checked(data, service, name, shown)


def _checked(value: bytes, service: str, name: str, where: str) -> bytes:
    if not value:
        raise DyniaError("config", f"secret {service}/{name}: {where} gives an empty value",
                         f"give it a value: dynia secret set {service} {name}")
    if len(value) > MAX_VALUE:
        raise DyniaError("config", f"secret {service}/{name}: {where} gives more than {MAX_VALUE // 1024} KiB",
                         "keep a secret's value under 64 KiB (a key or a token, not a data file)")
    return value


def one_line_trimmed(value: bytes) -> bytes:
    """Output ends with one newline by habit (echo, a password manager's `show`): drop it, as a
    shell's $(…) does, so `echo x | dynia secret set` and `{command: …}` give the bare value."""
    return value[:-1] if value.endswith(b"\n") else value


def store(project: Project, cluster: str, service: str, name: str, value: bytes) -> Path:
    """Write the value atomically, 0600, in 0700 directories."""
    path = store_path(project, cluster, service, name)
    _checked(value, service, name, "the input")
    project.ensure_runtime()
    for directory in (path.parent.parent, path.parent):
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
    write_atomic(path, value, mode=0o600)
    return path


def unstore(project: Project, cluster: str, service: str, name: str) -> bool:
    """Remove the stored value. Returns whether there was one."""
    path = store_path(project, cluster, service, name)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise DyniaError("state", f"cannot remove {_shown(project, path)}: {exc.strerror or exc}",
                         "check the file's directory permissions") from None
    for directory in (path.parent, path.parent.parent):
        try:
            directory.rmdir()  # only when empty
        except OSError:
            break
    return True


def resolve(project: Project, cluster: str, service: str, name: str, source) -> bytes:
    """The value of one secret from its source (dynia.spec.model.AppSecret), or a typed error that
    names the secret and its source, never a value or a command's output."""
    if source.env is not None:
        exported = os.environ.get(source.env)
        if exported is None:
            raise DyniaError("config", f"secret {service}/{name}: ${source.env} is not set",
                             f"export {source.env}=… on this machine (or in CI), then rerun")
        return _checked(exported.encode(), service, name, f"${source.env}")
    if source.command is not None:
        return _checked(one_line_trimmed(_run(source.command, service, name)), service, name,
                        f"`{source.command[0]}`")
    value = read_stored(project, cluster, service, name)
    if value is None:
        shown = _shown(project, store_path(project, cluster, service, name))
        raise DyniaError("config", f"secret {service}/{name}: not set ({shown} does not exist)",
                         f"dynia secret set {service} {name}  (the value on stdin, or typed at its prompt)")
    return value


def _run(argv: list[str], service: str, name: str) -> bytes:
    """The command's stdout. Its stderr is not shown either: a password manager may echo there."""
    what = f"secret {service}/{name}: `{argv[0]}`"
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=COMMAND_TIMEOUT,
                              check=False)
    except FileNotFoundError:
        raise DyniaError("config", f"{what} is not installed here (not on PATH)",
                         f"install it, or change services.{service}.secrets.{name}.command") from None
    except subprocess.TimeoutExpired:
        raise DyniaError("config", f"{what} did not finish within {COMMAND_TIMEOUT:.0f} s",
                         "unlock the password manager first (it may be waiting for a passphrase), then rerun") from None
    except OSError as exc:
        raise DyniaError("config", f"{what} cannot run: {exc.strerror or exc}",
                         f"check services.{service}.secrets.{name}.command") from None
    if proc.returncode != 0:
        raise DyniaError("config", f"{what} exited with status {proc.returncode} (its output is not shown)",
                         "run the command yourself to see why (unlocked? signed in?), then rerun")
    return proc.stdout


def values(project: Project, cluster: str, services: dict) -> dict[str, bytes]:
    """Every service's secrets, by slot name (slot_secret): what fills their slots at push time."""
    return {slot_secret(svc, name): resolve(project, cluster, svc, name, source)
            for svc, service in sorted(services.items()) for name, source in service.secret_sources().items()}


@dataclass(frozen=True)
class Listed:
    service: str
    name: str
    source: str            # store, env:VAR, command:ARGV0
    sha256: str | None     # of the value, None when it cannot be read (problem says why)
    problem: str | None = None

    def as_dict(self) -> dict:
        return {"service": self.service, "name": self.name, "source": self.source, "sha256": self.sha256,
                "problem": self.problem}


def listing(project: Project, cluster: str, services: dict) -> list[Listed]:
    """Names, sources and hashes of every secret the spec names (never a value)."""
    out = []
    for svc, service in sorted(services.items()):
        for name, source in service.secret_sources().items():
            try:
                digest, problem = hashlib.sha256(resolve(project, cluster, svc, name, source)).hexdigest(), None
            except DyniaError as exc:
                digest, problem = None, exc.message
            out.append(Listed(svc, name, source.source, digest, problem))
    return out
