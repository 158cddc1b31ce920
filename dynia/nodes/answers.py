"""What a node answers is input: every fact's data is checked against a model here (types,
nesting, lengths, counts) before status, drift-check or verify look at it.

A node can send anything (a mangled file, a bad disk, someone else's root): `read(Model, data)`
returns the data as the model has it or raises `Unreadable` with the first reason, and the fact
becomes that node's "unreadable" entry (dynia.nodes.facts.parse), never an AttributeError three
calls later nor a `true` read as a config version. Lists that can grow on a node (directory
listings) are cut to LISTING_MAX entries before they are checked; the rest is counted.
"""
from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

# What one fact's output may weigh (the drift reader's answer is the largest: hashes of every
# managed file, a few hundred kB).
MAX_ANSWER = 8 << 20
LISTING_MAX = 1000      # names kept from a directory listing; the rest is counted
MAX_FILES = 20_000      # managed files, file records, containers: far above any cluster dynia renders
MAX_ITEMS = 1_000       # backends, servers, layers, addresses, images

Ident = Annotated[str, StringConstraints(max_length=255)]        # a file, container, backend name
Short = Annotated[str, StringConstraints(max_length=512)]       # a mode, owner, time, image reference
Path = Annotated[str, StringConstraints(max_length=4096)]
Text = Annotated[str, StringConstraints(max_length=2048)]       # a reason, a check description
Version = Annotated[int, Field(ge=0, le=2**53)]


class Unreadable(ValueError):
    """A node's answer that does not fit its model; str() is the reason, one line."""


class Model(BaseModel):
    # strict: a number is not a string, `true` is not a version; unknown keys are left out.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


M = TypeVar("M", bound=Model)


def read(model: type[M], data: Any) -> dict:
    """The data as `model` has it (only the keys the node sent), or Unreadable."""
    try:
        return model.model_validate(data).model_dump(exclude_unset=True)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "the answer"
        raise Unreadable(f"{where}: {err['msg'][:200]}") from None


def loads(output: str) -> Any:
    """JSON from a node, bounded: its size, and its nesting (json.loads recurses per level and
    stops at the interpreter's limit: RecursionError is a bad answer here, not a crash)."""
    if len(output) > MAX_ANSWER:
        raise Unreadable(f"larger than {MAX_ANSWER} bytes")
    try:
        return json.loads(output)
    except RecursionError:
        raise Unreadable("nested too deep") from None
    except ValueError:
        raise Unreadable("not JSON") from None


def digits(text: str, most: int = 9) -> int | None:
    """An unsigned decimal in ASCII digits, else None (`²`.isdigit() is True, int('²') raises)."""
    return int(text) if re.fullmatch(rf"[0-9]{{1,{most}}}", text) else None


# --- the facts' shapes ------------------------------------------------------------------------

class Vrrp(Model):
    role: Literal["MASTER", "BACKUP", "FAULT", "STOP"]
    since: Short | None = None


class FileRecord(Model):
    sha256: Short | None = None
    mode: Short | None = None
    owner: Short | None = None
    component: Short | None = None


class Applied(Model):
    """applied.json, as the apply script writes it (templates/node/apply.py record_applied)."""
    configVersion: Version | None = None
    node: Ident | None = None
    layers: Annotated[dict[Ident, Annotated[dict[Path, FileRecord], Field(max_length=MAX_FILES)]],
                      Field(max_length=MAX_ITEMS)] = {}
    run: Annotated[dict[Ident, bool | None], Field(max_length=MAX_ITEMS)] = {}


class ReservedIpAssignment(Model):
    """notify.sh's record of its last reserved-IP assignment (templates/keepalived/notify.sh.j2)."""
    time: Short | None = None
    outcome: Literal["assigned", "refused", "gave-up", "no-token"]
    status: Annotated[str, StringConstraints(pattern=r"^[0-9]{3}$")] | None = None
    droplet: Annotated[str, StringConstraints(max_length=32, pattern=r"^[0-9]*$")] | None = None


class VolumeAction(Model):
    """The node mover's record of its last provider call for a data volume (templates/node/volume.py)."""
    time: Short | None = None
    action: Literal["attach", "detach"]
    outcome: Literal["attached", "detached", "elsewhere", "retry", "refused", "gave-up", "no-token", "no-volume",
                     "none"]
    status: Annotated[str, StringConstraints(max_length=3, pattern=r"^[0-9]*$")] | None = None
    droplet: Annotated[str, StringConstraints(max_length=32, pattern=r"^[0-9]*$")] | None = None


class Degraded(Model):
    configVersion: Version | None = None
    reason: Text | None = None
    time: Short | None = None
    layer: Short | None = None


class Server(Model):
    status: Short | None = None
    check_status: Short | None = None
    check_desc: Text | None = None
    last_chk: Text | None = None


class Backend(Model):
    status: Short | None = None
    hrsp: dict[Literal["1xx", "2xx", "3xx", "4xx", "5xx", "other"], Annotated[int, Field(ge=0)]] = {}
    servers: Annotated[dict[Ident, Server], Field(max_length=MAX_ITEMS)] = {}


class ShowStat(Model):
    backends: Annotated[dict[Ident, Backend], Field(max_length=MAX_ITEMS)]


class ContainerState(Model):
    Status: Short | None = None


class ContainerConfig(Model):
    Labels: dict[Short, Text] | None = None
    Image: Short | None = None


class Inspected(Model):
    """One `docker inspect` / `podman inspect` record, the fields dynia reads."""
    Name: Ident | None = None
    Config: ContainerConfig | None = None
    Labels: dict[Short, Text] | None = None
    Image: Short | None = None
    ImageName: Short | None = None
    ImageDigest: Short | None = None
    State: ContainerState | Short | None = None


class InspectedImage(Model):
    """One `docker image inspect` / `podman image inspect` record: its id and repository digests."""
    Id: Short | None = None
    RepoDigests: Annotated[list[Short], Field(max_length=MAX_FILES)] | None = None


class Inspection(Model):
    containers: Annotated[list[Inspected], Field(max_length=MAX_FILES)]
    images: Annotated[list[InspectedImage], Field(max_length=MAX_FILES)] = []


# The drift reader's answer (dynia.nodes.drift_facts).

class Look(Model):
    exists: bool
    type: Literal["file", "symlink", "other"] | None = None
    mode: Short | None = None
    owner: Short | None = None
    sha256: Short | None = None
    normalized: Short | None = None
    immutable: bool | None = None
    error: Text | None = None


class DirEntry(Model):
    name: Ident
    composeFile: bool = False


class Running(Model):
    name: Ident | None = None
    image: Short | None = None
    project: Short | None = None
    service: Short | None = None


class Containers(Model):
    engine: Short | None = None
    running: Annotated[list[Running], Field(max_length=MAX_FILES)] = []
    images: Annotated[dict[Short, Short | None], Field(max_length=MAX_ITEMS)] = {}
    error: Text | None = None


class DriftAnswer(Model):
    files: Annotated[dict[Path, Look], Field(max_length=MAX_FILES)]
    composeDirs: Annotated[dict[Path, Annotated[list[DirEntry], Field(max_length=LISTING_MAX)]],
                           Field(max_length=16)] = {}
    routes: Annotated[dict[Path, Annotated[list[Ident], Field(max_length=LISTING_MAX)]], Field(max_length=16)] = {}
    containers: Containers | None = None
    listingTotals: Annotated[dict[Path, Annotated[int, Field(ge=0)]], Field(max_length=16)] = {}
