"""The cluster as it was at a git revision, for `dynia plan --offline --against REF`.

Reads the spec and the compose files it references straight from the project's repository
(`git cat-file`), never from the working tree and never from `.dynia/`: a pull request from a
fork, with no secrets and no state, still gets a node-by-node, line-by-line plan. The blobs
are written to a private scratch directory only so the one loader every command uses (spec
validation, compose checks) reads them exactly as it reads the working tree.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import DyniaError, config_error
from ..spec.load import Cluster, validate_cluster
from ..spec.model import validate_spec
from ..state.reads import MAX_INPUT_BYTES
from ..state.store import Project, parse_yaml

GIT_TIMEOUT = 60  # seconds; reading a few blobs from a local repository takes milliseconds


@dataclass
class Revision:
    ref: str
    commit: str
    cluster: Cluster | None  # None: the spec does not exist at that revision (a new cluster)


def _git(root: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    # No prompt, no pager, no config from the user's environment that could run a program
    # (core.fsmonitor, a credential helper): the read is local and plain.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "GIT_OPTIONAL_LOCKS": "0"}
    try:
        return subprocess.run(["git", "-c", "core.fsmonitor=false", "-C", str(root), *args], input=stdin,
                              capture_output=True, timeout=GIT_TIMEOUT, env=env)
    except FileNotFoundError:
        raise config_error("--against needs git, which is not installed",
                           "install git (apt-get install git), or plan without --against") from None
    except subprocess.TimeoutExpired:
        raise config_error(f"git {args[0]} did not answer within {GIT_TIMEOUT} s",
                           "check the repository (git fsck), then retry") from None


def _repository(root: Path) -> tuple[Path, str]:
    """The repository's top directory and the project's place in it ('' or 'sub/dir/')."""
    top = _git(root, "rev-parse", "--show-toplevel", "--show-prefix")
    if top.returncode != 0:
        raise config_error(f"{root} is not inside a git repository; --against reads the spec at a git revision",
                           "run dynia in the repository that holds clusters/ (or plan without --against)")
    lines = top.stdout.decode("utf-8", "replace").splitlines()
    return Path(lines[0]), (lines[1] if len(lines) > 1 else "")


def resolve(root: Path, ref: str) -> str:
    """The commit REF names; a ref that does not exist is a config error that says how to get it."""
    if not ref or ref.startswith("-") or "\0" in ref or "\n" in ref:
        raise config_error(f"{ref!r} is not a git revision", "give a branch, tag or commit, e.g. origin/main or HEAD~1")
    found = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if found.returncode != 0:
        raise config_error(f"git revision {ref} does not exist in this repository",
                           "fetch it first (git fetch origin <branch>; in CI check out with fetch-depth: 0), "
                           "or name an existing branch, tag or commit")
    return found.stdout.decode().strip()


class _Blobs:
    """`git cat-file --batch --follow-symlinks`: blobs at one commit, in-tree symlinks followed."""

    def __init__(self, root: Path, commit: str):
        self.root, self.commit = root, commit

    def read(self, path: str) -> bytes | None:
        """The file at the commit; None when it is not there. A symlink that leaves the
        repository, a directory or an oversized file is a config error."""
        proc = _git(self.root, "cat-file", "--batch", "--follow-symlinks",
                    stdin=f"{self.commit}:{path}\n".encode())
        out = proc.stdout
        head, _, rest = out.partition(b"\n")
        words = head.split()
        if proc.returncode != 0 or not words:
            raise config_error(f"git could not read {path} at {self.commit[:12]}",
                               (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["run git fsck"])[-1])
        if words[-1] == b"missing" or words[0] in (b"dangling", b"notdir"):
            return None
        if words[0] in (b"symlink", b"loop"):
            raise config_error(f"{path} at {self.commit[:12]} is a symlink that leads outside the repository "
                               "(or in a loop)", "keep the spec and compose files inside the repository")
        if len(words) != 3 or words[1] != b"blob":
            raise config_error(f"{path} at {self.commit[:12]} is not a file ({words[1].decode(errors='replace')})",
                               "point the spec at a file")
        size = int(words[2])
        if size > MAX_INPUT_BYTES:
            raise config_error(f"{path} at {self.commit[:12]} is larger than {MAX_INPUT_BYTES >> 20} MiB",
                               "this is not a dynia input file")
        return rest[:size]


def load_at(project: Project, name: str, ref: str) -> Revision:
    """The cluster `name` as committed at `ref` (validated like the working tree's)."""
    top, prefix = _repository(project.root)
    commit = resolve(project.root, ref)
    blobs = _Blobs(top, commit)
    spec_rel = posixpath.join(prefix, "clusters", f"{name}.yaml")
    text = blobs.read(spec_rel)
    if text is None:
        return Revision(ref, commit, None)
    scratch = Path(tempfile.mkdtemp(prefix="dynia-against-"))
    try:
        old = Project(scratch)
        _place(old.spec_path(name), text)
        source = f"{ref}:clusters/{name}.yaml"
        try:
            raw = parse_yaml(text.decode("utf-8"), source)
        except UnicodeDecodeError:
            raise config_error(f"{source} is not UTF-8 text", "fix the spec at that revision") from None
        spec = _at(ref, lambda: validate_spec(raw, source))
        for svc in spec.services.values():
            rel = posixpath.normpath(svc.compose)
            if rel.startswith("../") or rel == ".." or posixpath.isabs(rel):
                continue  # the loader refuses it below, with the working tree's own words
            data = blobs.read(posixpath.join(prefix, rel))
            if data is not None:
                _place(scratch / rel, data)
        return Revision(ref, commit, _at(ref, lambda: validate_cluster(old, name, raw)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _place(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _at(ref: str, load):
    """Errors in the old spec name the revision: the working tree may be fine."""
    try:
        return load()
    except DyniaError as exc:
        raise DyniaError(exc.kind, f"at {ref}: {exc.message}",
                         f"{exc.hint} (the spec at {ref} must load to compare against it)") from None
