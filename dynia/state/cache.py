"""`.dynia/cache/<cluster>/`: what the last apply left behind, read and written in one place.

`outputs.json` holds the node addresses provision returned (so status and the offline plan
need no Pulumi); `applied.json` the manifest of the last applied render (what the plan
diffs against). Both are input like the spec: a crafted address would land in haproxy.cfg
and notify.sh, so every read and every write is validated as strictly as the spec, and a
file that fails is a typed `state` error naming the file and the fix.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import state_error
from ..names import NODE_ID
from ..tls import CertInfo
from .store import read_json, write_json

# content/<sha256>: the last applied bytes of each non-secret file, so the plan shows line
# diffs. A rendered file is a config or a wrapped compose file (compose inputs are capped at
# 1 MiB); the whole store is what is applied now, stored once per distinct content.
CONTENT_DIR = "content"
CERTIFICATE_CACHE = "certificate.json"  # the state certificate's public facts (read_state_certificate)
ORIGIN_PULL_CACHE = "origin-pull.json"  # the state's origin-pull client certificate's public facts
MAX_CONTENT_BYTES = 1 << 20
MAX_CONTENT_TOTAL = 32 << 20
SHA256 = r"^[0-9a-f]{64}$"
TARGET = r"^/(?:[A-Za-z0-9._@+-]+/)*[A-Za-z0-9._@+-]+$"
# A node's pinned SSH host key as the state keeps it (OpenSSH public key, no comment): it goes
# into a known_hosts file, so nothing else (no newline, no marker, no option) is accepted.
HOST_KEY = __import__("re").compile(r"ssh-ed25519 [A-Za-z0-9+/]{68}")
# What the state records for a droplet made before dynia pinned host keys that did not answer
# when its key was to be pinned (Engine.pin_first_use): the all-zero ed25519 key, which no sshd
# presents — every connection to the node is refused — and which the next `up` with consent
# replaces with the key the node presents. Never written into known_hosts.
UNPINNED_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
KNOWN_HOSTS = "known_hosts"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeAddresses(_Strict):
    private_ip: str
    public_ip: str | None = None
    # The node's pinned SSH host key (absent in a cache written before keys were pinned) and
    # where it came from: generated with the state, recorded on first use, or the lab's.
    host_key: str | None = None
    host_key_source: str | None = Field(None, pattern=r"^(?:generated|first-use|lab)$")
    size: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")   # the state's droplet size

    @field_validator("host_key")
    @classmethod
    def _host_key(cls, v: str | None) -> str | None:
        if v is not None and not HOST_KEY.fullmatch(v):
            raise ValueError("not an OpenSSH ed25519 public key (ssh-ed25519 AAAA…)")
        return v

    @field_validator("private_ip", "public_ip")
    @classmethod
    def _ipv4(cls, v: str | None) -> str | None:
        if v is None:
            return v
        addr = ipaddress.IPv4Address(v)  # ValueError for anything else, "10.0.0.1\nserver x" included
        if addr.is_loopback or addr.is_multicast or addr.is_unspecified or addr.is_link_local or addr.is_reserved:
            raise ValueError(f"{v} is not a usable node address")
        return str(addr)


class Outputs(_Strict):
    nodes: dict[str, NodeAddresses]
    reserved_ip: str

    @field_validator("nodes")
    @classmethod
    def _node_ids(cls, v: dict[str, NodeAddresses]) -> dict[str, NodeAddresses]:
        for node in v:
            if not NODE_ID.fullmatch(node):
                raise ValueError(f"{node!r} is not a node id")
        return v

    @field_validator("reserved_ip")
    @classmethod
    def _reserved(cls, v: str) -> str | None:
        return NodeAddresses._ipv4(v)


class ManifestEntry(_Strict):
    sha256: str = Field(pattern=SHA256)
    mode: str = Field(pattern=r"^0[0-7]{3}$")
    owner: str = Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}:[a-z_][a-z0-9_-]{0,31}$")
    component: str = Field(pattern=r"^(?:haproxy|caddy|keepalived|nftables|service:[a-z][a-z0-9-]{0,30}[a-z0-9])$")
    # Absent in a record written before layers were kept; such an entry counts as infra.
    layer: str | None = Field(None, pattern=r"^(?:infra|service:[a-z][a-z0-9-]{0,30}[a-z0-9])$")


class SlotEntry(_Strict):
    """A secret slot as last applied: which secret filled it, never its value or a hash of it."""
    secret: str = Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")
    mode: str = Field(pattern=r"^0[0-7]{3}$")
    owner: str = Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}:[a-z_][a-z0-9_-]{0,31}$")
    component: str = Field(pattern=r"^(?:haproxy|caddy|keepalived|nftables|service:[a-z][a-z0-9-]{0,30}[a-z0-9])$")
    layer: str = Field(pattern=r"^(?:infra|service:[a-z][a-z0-9-]{0,30}[a-z0-9])$")


class Applied(_Strict):
    configVersion: int = Field(ge=0, strict=True)
    contentHash: str | None = Field(None, pattern=SHA256)
    nodes: dict[str, dict[str, ManifestEntry]] = {}
    # Absent in a record written before slots were kept: the plan then compares no slot.
    slots: dict[str, dict[str, SlotEntry]] | None = None

    @field_validator("nodes")
    @classmethod
    def _targets(cls, v: dict[str, dict[str, ManifestEntry]]) -> dict[str, dict[str, ManifestEntry]]:
        import re

        for node, manifest in v.items():
            if not NODE_ID.fullmatch(node):
                raise ValueError(f"{node!r} is not a node id")
            for target in manifest:
                if not re.fullmatch(TARGET, target) or "/../" in target + "/":
                    raise ValueError(f"{target!r} is not a node path")
        return v


def _pinned(v: dict[str, str]) -> dict[str, str]:
    import re

    for ref, digest in v.items():
        # What reaches a compose file's image: line: one reference, no space, no YAML syntax.
        if not re.fullmatch(r"[a-z0-9][A-Za-z0-9._:/-]{0,254}", ref):
            raise ValueError(f"{ref[:80]!r} is not an image reference")
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise ValueError(f"{digest[:80]!r} is not sha256:<64 hex digits>")
    return v


class RolledBack(_Strict):
    """A service rolled back to a release: that release's compose file and digests."""
    release: int = Field(ge=1, strict=True)
    content: str = Field(max_length=MAX_CONTENT_BYTES)
    images: dict[str, str] = {}

    _images = field_validator("images")(classmethod(lambda cls, v: _pinned(v)))


class Images(_Strict):
    """What the release in force runs, as every render on this machine (status, drift-check,
    plan, the applied record) must name it: the digests its tags resolved to ({reference:
    sha256:…}, dynia.engine.pins) and the services a rollback keeps on an older release."""
    images: dict[str, str] = {}
    rollback: dict[str, RolledBack] = {}

    _images = field_validator("images")(classmethod(lambda cls, v: _pinned(v)))


def _problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return f"{where}: {err['msg'].removeprefix('Value error, ')}"


def _validated(model: type[BaseModel], data: Any, shown: str, fix: str):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise state_error(f"{shown} is corrupt ({_problem(exc)})", fix) from None


class ClusterCache:
    """The cache directory of one cluster; `vpc` is the spec's range every private address is in."""

    OUTPUTS_FIX = "delete it; the next `dynia up` writes it again from the provision phase"
    APPLIED_FIX = "delete it; the next apply writes it again (until then plan shows every file as new)"

    def __init__(self, directory: Path, project_root: Path, vpc: str):
        self.dir = directory
        self.root = project_root
        self.vpc = ipaddress.ip_network(vpc)

    @classmethod
    def of(cls, cluster) -> "ClusterCache":
        return cls(cluster.project.cache_dir(cluster.name), cluster.project.root,
                   cluster.spec.provider.vpc_ip_range)

    def _shown(self, name: str) -> str:
        return os.path.relpath(self.dir / name, self.root)

    # --- outputs.json -----------------------------------------------------------------

    def check_outputs(self, data: Any, shown: str, fix: str) -> Outputs:
        outputs = _validated(Outputs, data, shown, fix)
        seen: dict[str, str] = {}
        for node, addrs in outputs.nodes.items():
            ip = ipaddress.IPv4Address(addrs.private_ip)
            why = None
            if ip not in self.vpc or ip in (self.vpc.network_address, self.vpc.broadcast_address):
                why = f"{ip} is not a host address of the VPC range {self.vpc}"
            elif str(ip) in seen:
                why = f"{ip} is also {seen[str(ip)]}'s address"
            elif str(ip) == outputs.reserved_ip:
                why = f"{ip} is the reserved IP"
            if why:
                raise state_error(f"{shown} is corrupt (nodes.{node}.private_ip: {why})", fix)
            seen[str(ip)] = node
        return outputs

    def read_outputs(self) -> Outputs | None:
        shown = self._shown("outputs.json")
        data = read_json(self.dir / "outputs.json", shown, self.OUTPUTS_FIX)
        return None if data is None else self.check_outputs(data, shown, self.OUTPUTS_FIX)

    def write_outputs(self, data: Any) -> Outputs:
        """Provision's outputs are input too: validated before they are kept."""
        outputs = self.check_outputs(data, "the provision phase's outputs",
                                     "check the provision stack (`pulumi stack output`); nothing was cached")
        write_json(self.dir / "outputs.json", outputs.model_dump(mode="json"))
        self._write_known_hosts(outputs)
        return outputs

    # --- known_hosts ------------------------------------------------------------------

    def known_hosts(self) -> Path:
        """The pinned host keys of the last provision, as an OpenSSH known_hosts file (what
        dynia's own SSH — status, drift, repair — verifies nodes with). It may not exist (no
        provision since keys were pinned): then no node's key is trusted."""
        return self.dir / KNOWN_HOSTS

    def _write_known_hosts(self, outputs: Outputs) -> None:
        from .store import write_atomic

        lines = [f"{addr} {a.host_key}\n" for a in outputs.nodes.values()
                 if a.host_key and a.host_key != UNPINNED_HOST_KEY
                 for addr in dict.fromkeys(x for x in (a.public_ip, a.private_ip) if x)]
        write_atomic(self.known_hosts(), "".join(lines).encode(), mode=0o644)

    # --- images.json ------------------------------------------------------------------

    IMAGES_FIX = "delete it; the next `dynia up` or `dynia releases` writes it again from the cluster's releases"

    def read_release(self) -> Images:
        shown = self._shown("images.json")
        data = read_json(self.dir / "images.json", shown, self.IMAGES_FIX)
        return Images() if data is None else _validated(Images, data, shown, self.IMAGES_FIX)

    def read_images(self) -> dict[str, str]:
        return dict(self.read_release().images)

    def read_rollback(self) -> dict[str, dict]:
        return self.read_release().model_dump(mode="json")["rollback"]

    def write_images(self, images: dict[str, str], rollback: dict[str, dict] | None = None) -> None:
        checked = _validated(Images, {"images": images, "rollback": rollback or {}}, "the release's images",
                             "this is a bug in dynia")
        write_json(self.dir / "images.json", checked.model_dump(mode="json"))

    # --- applied.json -----------------------------------------------------------------

    def read_applied(self) -> Applied | None:
        shown = self._shown("applied.json")
        data = read_json(self.dir / "applied.json", shown, self.APPLIED_FIX)
        return None if data is None else _validated(Applied, data, shown, self.APPLIED_FIX)

    def write_applied(self, applied: dict, rendering=None) -> None:
        """Keep the applied manifest and, given the rendering it came from, the content of its
        files (what the plan diffs against next time) and its secret slots (names only).

        A layer's slots and contents are taken from the rendering only where the merged
        manifest holds that layer exactly as rendered (the layers just pushed); other layers
        keep what the previous record had. Contents no manifest refers to are dropped, so the
        store never outgrows what the nodes have."""
        fix = "this is a bug in dynia; rerun with --debug"
        checked = _validated(Applied, applied, "the applied manifest", fix)
        record = checked.model_dump(mode="json")
        if rendering is not None:
            previous = self.read_applied()
            old_slots = (previous.model_dump(mode="json").get("slots") if previous else None) or {}
            slots: dict[str, dict] = {}
            for node, manifest in record["nodes"].items():
                if node not in rendering.files:
                    continue
                as_rendered = _layers_as_rendered(manifest, rendering.manifest(node))
                kept = {t: e for t, e in old_slots.get(node, {}).items() if e["layer"] not in as_rendered}
                fresh = {s.target: {"secret": s.secret, "mode": f"{s.mode:04o}", "owner": s.owner,
                                    "component": s.component, "layer": s.layer}
                         for s in rendering.slots[node] if s.layer in as_rendered}
                slots[node] = dict(sorted({**kept, **fresh}.items()))
            record = _validated(Applied, {**record, "slots": slots}, "the applied manifest", fix).model_dump(mode="json")
            wanted = {e["sha256"] for m in record["nodes"].values() for e in m.values()}
            self._store_contents(f.content for files in rendering.files.values() for f in files
                                 if f.sha256 in wanted)
        if record.get("slots") is None:
            record.pop("slots", None)  # the shape older readers and records have
        write_json(self.dir / "applied.json", record)
        self._prune_contents({e["sha256"] for m in record["nodes"].values() for e in m.values()})

    # --- content/<sha256> ---------------------------------------------------------------

    def _content_dir(self) -> Path:
        """content/, refused when it is a symlink: pruning deletes what is in it, so a link would
        let dynia delete (and write) files anywhere the link points."""
        folder = self.dir / CONTENT_DIR
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            shown = self._shown(CONTENT_DIR)
            raise state_error(f"{shown} is not a directory dynia made (a symlink or a file)",
                              f"remove {shown}; dynia recreates it at the next apply (plans then show "
                              "no previous content until then)")
        return folder

    def _store_contents(self, contents) -> None:
        from .store import write_atomic

        folder = self._content_dir()
        total = sum(p.lstat().st_size for p in folder.iterdir() if not p.is_symlink() and p.is_file()) \
            if folder.is_dir() else 0
        for data in contents:
            sha = hashlib.sha256(data).hexdigest()
            path = folder / sha
            if len(data) > MAX_CONTENT_BYTES or path.exists():
                continue
            if total + len(data) > MAX_CONTENT_TOTAL:
                break  # the plan says "no previous content recorded" for the rest
            write_atomic(path, data, mode=0o600)
            total += len(data)

    def _prune_contents(self, keep: set[str]) -> None:
        folder = self._content_dir()
        if not folder.is_dir():
            return
        for p in folder.iterdir():
            if p.name not in keep and (p.is_file() or p.is_symlink()):
                try:
                    p.unlink()
                except OSError:
                    pass  # a leftover costs disk only; it is never read for another hash

    def read_content(self, sha256: str) -> bytes | None:
        """The applied content with this hash, or None when none was recorded (an older cache,
        a file over the cap). A file whose bytes do not hash to its name is a state error."""
        import re
        import stat as st

        if not re.fullmatch(SHA256[1:-1], sha256):
            return None
        path = self.dir / CONTENT_DIR / sha256
        shown = self._shown(f"{CONTENT_DIR}/{sha256[:12]}…")
        fix = f"delete {self._shown(CONTENT_DIR)}; the next apply records the contents again"
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            return None
        except OSError:
            raise state_error(f"{shown} cannot be read (not a regular file, or permission denied)", fix) from None
        with os.fdopen(fd, "rb") as f:
            if not st.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise state_error(f"{shown} is not a regular file", fix)
            data = f.read(MAX_CONTENT_BYTES + 1)
        if len(data) > MAX_CONTENT_BYTES or hashlib.sha256(data).hexdigest() != sha256:
            raise state_error(f"{shown} is corrupt (its content does not match its name)", fix)
        return data


def _layers_as_rendered(merged: dict[str, dict], rendered: dict[str, dict]) -> set[str]:
    """The layers whose entries in the merged manifest are exactly the rendering's."""
    def by_layer(manifest):
        out: dict[str, dict] = {}
        for t, e in manifest.items():
            out.setdefault(e.get("layer") or "infra", {})[t] = {k: v for k, v in e.items() if k != "layer"}
        return out

    have, want = by_layer(merged), by_layer(rendered)
    return {layer for layer, entries in want.items() if have.get(layer) == entries}


def applied_dict(applied: Applied | None) -> dict:
    """The plain shape the planner and the render read: {} when nothing was applied yet."""
    if applied is None:
        return {}
    out = applied.model_dump(mode="json")
    if out.get("slots") is None:
        out.pop("slots", None)
    return out


def inventory(cluster):
    """The addresses to render with, from the last provision's outputs.json (see merged)."""
    return merged_inventory(cluster, ClusterCache.of(cluster).read_outputs())[0]


def merged_inventory(cluster, outputs: Outputs | None):
    """(inventory, nodes not provisioned): provision's addresses for every node it reported,
    a planned address no other node has for each node added since, and the provider's plan
    throughout before the first provision. The CLI feeds it the cache, the phase programs
    provision's stack outputs (checked by ClusterCache.check_outputs either way)."""
    from .. import providers
    from ..inventory import Inventory

    spec = cluster.spec
    planned = providers.of(spec).planned_inventory(spec.name, spec.provider.vpc_ip_range, spec.nodes)
    if outputs is None:
        return planned, list(spec.nodes)
    nodes = {n: (a.private_ip, a.public_ip) for n, a in outputs.nodes.items() if n in spec.nodes}
    missing = [n for n in spec.nodes if n not in nodes]
    used = {private for private, _ in nodes.values()} | {outputs.reserved_ip}
    free = (str(h) for h in ipaddress.ip_network(spec.provider.vpc_ip_range).hosts() if str(h) not in used)
    for n in missing:  # nodes added to the spec since the last apply: a planned address no node has
        private, public = planned.nodes[n]
        nodes[n] = (private, public) if private not in used else (next(free), None)
        used.add(nodes[n][0])
    return Inventory(nodes, outputs.reserved_ip, planned=bool(missing)), missing


def applied(cluster) -> dict:
    """The last applied manifest ({} before the first apply)."""
    return applied_dict(ClusterCache.of(cluster).read_applied())


def read_state_certificate(cluster, name: str = CERTIFICATE_CACHE) -> tuple[CertInfo | None, str]:
    """(the state's certificate, None + why not): from the cache, never from Pulumi (`name`:
    the origin certificate's record, or the origin-pull client certificate's)."""
    import os
    import re

    from ..errors import DyniaError

    cache = ClusterCache.of(cluster)
    path = cache.dir / name
    shown = os.path.relpath(path, cache.root)
    try:
        data = read_json(path, shown, "delete it; the next `dynia up` writes it again", limit=64 * 1024)
    except DyniaError as exc:
        return None, exc.message
    if data is None:
        return None, f"{shown} does not exist (written by `dynia up` from the provision phase)"
    try:
        sha = data["sha256"]
        if not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
            raise ValueError
        when = dt.datetime.strptime(data["not_after"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        names = tuple(n for n in data.get("names", []) if isinstance(n, str))
    except (KeyError, TypeError, ValueError):
        return None, f"{shown} is corrupt (it needs sha256 and not_after); delete it, `dynia up` rewrites it"
    return CertInfo(sha, when, names), ""


def images(cluster) -> dict[str, str]:
    """The digests the release in force pinned ({} before the first release on this machine)."""
    return ClusterCache.of(cluster).read_images()


def rollback(cluster) -> dict[str, dict]:
    """service -> {release, content, images}: the rollbacks in effect ({} when none)."""
    return ClusterCache.of(cluster).read_rollback()
