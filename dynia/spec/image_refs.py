"""Container image references as a compose file names them, and the one rewrite dynia makes:
a tag resolved once per release becomes `repository@sha256:…` in what is pushed, so every node
runs the same bytes whatever the tag points at while the roll goes on.

The grammar is the distribution project's (reference/reference.go): `[host[:port]/]path[:tag][@digest]`,
where the first path part is a registry host only when it has a `.` or a `:` or is `localhost`;
anything else is Docker Hub (`library/` for a one-part name).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import DyniaError

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_PATH_PART = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                   r"(?::[0-9]{1,5})?|\[[0-9A-Fa-f:]+\](?::[0-9]{1,5})?")
DOCKER_HUB = "docker.io"
# Where Docker Hub's registry API answers (docker.io is only a name for it).
DOCKER_HUB_API = "registry-1.docker.io"
# podman's name for images that only exist in a node's own storage (built or imported there):
# no registry holds them, so nothing resolves them (the lab's app image is one).
LOCAL_HOST = "localhost"


@dataclass(frozen=True)
class ImageRef:
    name: str          # the repository as written, host included (what `pinned` keeps)
    host: str          # the registry's host[:port], docker.io for Docker Hub
    repository: str    # the path inside it (library/nginx)
    tag: str | None
    digest: str | None

    @property
    def local(self) -> bool:
        return self.host == LOCAL_HOST

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.host == DOCKER_HUB else self.host

    def pinned(self, digest: str) -> str:
        """The reference the nodes run: the repository as the compose file wrote it, by digest."""
        return f"{self.name}@{digest}"


def parse(ref: str) -> ImageRef:
    """A compose file's image reference, or a typed config error saying what is wrong with it."""
    text = ref.strip()
    rest, _, digest = text.partition("@")
    if digest and not DIGEST.fullmatch(digest):
        raise _bad(ref, f"its digest {digest!r} is not sha256:<64 hex digits>")
    name, tag = rest, None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        name, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise _bad(ref, f"its tag {tag!r} is not a tag")
    first, slash, remainder = name.partition("/")
    if slash and ("." in first or ":" in first or first == LOCAL_HOST):
        if not _HOST.fullmatch(first):
            raise _bad(ref, f"{first!r} is not a registry host")
        host, path = first, remainder
    else:
        host, path = DOCKER_HUB, name if slash else f"library/{name}"
    if not path or not all(_PATH_PART.fullmatch(p) for p in path.split("/")):
        raise _bad(ref, f"{path!r} is not a repository name (lower-case letters, digits, . _ -)")
    return ImageRef(name, host, path, tag, digest or None)


def _bad(ref: str, why: str) -> DyniaError:
    return DyniaError("config", f"image {ref!r} is not an image reference: {why}",
                      "write it as [registry/]repository[:tag][@sha256:digest], e.g. ghcr.io/team/api:1.4")


def resolvable(ref: str) -> bool:
    """Whether a registry must be asked for this reference's digest: a tag (or no tag: latest)
    in a registry. A reference already by digest is pinned as written; a local image has no registry."""
    parsed = parse(ref)
    return parsed.digest is None and not parsed.local


def pinned_digest(ref: str) -> str | None:
    """The digest a reference pins (`…@sha256:…`), else None."""
    _, _, digest = ref.partition("@")
    return digest if DIGEST.fullmatch(digest) else None


def rewrite(ref: str, digests: dict[str, str]) -> str:
    """The reference a node runs: pinned by its resolved digest when the release has one."""
    digest = digests.get(ref.strip())
    return parse(ref).pinned(digest) if digest else ref
