"""What a container may not do to the node it runs on, and what it keeps there.

dynia promises three things about every service: it is reachable only through Caddy, the
node's secrets (certificates, tokens, the firewall rules) stay out of its containers, and the
host firewall stays in charge. A compose file can undo each promise with one key, so every such
key is judged here, in one table of classes; a service whose spec lists the class under
`isolation_exceptions` may use it (plan shows the exception), any other is refused.

Values that decide isolation must be literal: compose interpolates `${VAR:-default}` on the
node, after every check here, so a `$` in them is refused rather than guessed at.
"""
from __future__ import annotations

import posixpath
import re
import reprlib
from dataclasses import dataclass
from typing import Any, Iterator, Literal, get_args

from ..paths import PATHS

IsolationException = Literal["privileged", "host-namespaces", "host-network", "capabilities", "devices",
                             "security-opt", "host-mounts"]

# class -> what opting in gives the containers (plan and the README say it in these words).
EXCEPTIONS: dict[str, str] = {
    "privileged": "privileged mode: every device and capability of the node, root on the host",
    "host-namespaces": "the node's own process, IPC, UTS, user or cgroup namespace",
    "host-network": "the node's network: its ports bypass Caddy and 127.0.0.1",
    "capabilities": "kernel capabilities beyond Docker's default set",
    "devices": "the node's device files",
    "security-opt": "seccomp, AppArmor or SELinux confinement turned off or replaced",
    "host-mounts": f"node paths outside the data root {PATHS.data_root}/",
}
assert set(EXCEPTIONS) == set(get_args(IsolationException))

# Docker's default capability set: adding one back (after cap_drop: [ALL]) gives nothing new.
DEFAULT_CAPS = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                          "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID",
                          "SYS_CHROOT"})
# The one security option that only tightens: every other one loosens or replaces a profile.
NO_NEW_PRIVILEGES = re.compile(r"no-new-privileges(?:[:=](?:true|false))?")
NAMESPACE_KEYS = ("pid", "ipc", "uts", "userns_mode", "cgroup")
DEVICE_KEYS = ("devices", "device_cgroup_rules", "gpus")
# Keys whose values decide isolation (and so must be literal), per container and at the top level.
CONTAINER_KEYS = ("privileged", "network_mode", "networks", *NAMESPACE_KEYS, "cap_add", *DEVICE_KEYS,
                  "security_opt", "volumes", "volumes_from")
TOP_KEYS = ("networks", "volumes")

# Images of well-known databases: without a volume they still keep data, only less durably.
DATABASE_IMAGES = frozenset({
    "postgres", "postgresql", "postgis", "timescaledb", "mysql", "mariadb", "percona", "mongo", "mongodb",
    "redis", "valkey", "keydb", "elasticsearch", "opensearch", "cassandra", "scylla", "couchdb", "couchbase",
    "influxdb", "clickhouse", "clickhouse-server", "neo4j", "cockroach", "etcd", "rabbitmq", "minio", "nats",
})

_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxdict, _SHOW.maxlist, _SHOW.maxtuple = 2, 4, 4, 4
_SHOW.maxstring = _SHOW.maxother = 60


def show(value: Any) -> str:
    """A compose value inside an error message: bounded, however large (or alias-expanded) it is."""
    return _SHOW.repr(value)


def text(value: Any) -> str:
    """A scalar as text; anything else as its bounded repr (str() of an alias bomb is gigabytes)."""
    return value if isinstance(value, str) else show(value)


def label(name: Any) -> str:
    """A container or volume name as messages print it: as written when short and printable."""
    return name if isinstance(name, str) and len(name) <= 64 and name.isprintable() else show(name)


@dataclass(frozen=True)
class Breach:
    container: str  # "" for the file's top level
    key: str
    what: str  # why it defeats the isolation
    exception: str | None  # the class that allows it; None: nothing can (not checkable)


@dataclass(frozen=True)
class Mount:
    container: str
    source: str | None  # host path (bind) or volume name; None for an anonymous volume
    bind: bool
    read_only: bool


def _off(value: Any) -> bool:
    return value is None or value is False or text(value).strip().lower() in ("false", "no", "0", "off", "")


def _strings(value: Any, seen: set[int]) -> Iterator[str]:
    """Every string in a value, each shared (aliased) node visited once: an alias bomb is linear."""
    if isinstance(value, (dict, list)):
        if id(value) in seen:
            return
        seen.add(id(value))
        for item in (value.items() if isinstance(value, dict) else value):
            yield from _strings(item, seen)
    elif isinstance(value, tuple):
        for item in value:
            yield from _strings(item, seen)
    elif isinstance(value, str):
        yield value


def interpolated(value: Any) -> str | None:
    """The first string in value that compose would interpolate (`$` not written as `$$`)."""
    for s in _strings(value, set()):
        if "$" in s.replace("$$", ""):
            return s
    return None


def _names(value: Any) -> list[str]:
    """The entries of a list-or-mapping key (networks:, volumes_from:), as strings."""
    if isinstance(value, dict):
        return [text(k) for k in value]
    if isinstance(value, list):
        return [text(v) for v in value]
    return [] if value is None else [text(value)]


def host_networks(data: dict) -> set[str]:
    """Keys of top-level networks that are the node's own network, by whatever route."""
    out = {"host"}
    for key, net in (data.get("networks") or {}).items() if isinstance(data.get("networks"), dict) else ():
        net = net if isinstance(net, dict) else {}
        external = net.get("external")
        name = net.get("name") or (external.get("name") if isinstance(external, dict) else None)
        if name is None and not _off(external):
            name = key  # an external network is looked up by its key
        if text(net.get("driver", "")).strip().lower() == "host" or text(name).strip().lower() == "host":
            out.add(text(key))
    return out


def mounts(cname: str, c: dict, data: dict) -> list[Mount]:
    """The container's volumes; a named volume whose driver binds a node path counts as that bind."""
    top = found if isinstance(found := data.get("volumes"), dict) else {}
    out = []
    for v in c.get("volumes") or []:
        if isinstance(v, dict):
            kind, source = v.get("type", "volume"), v.get("source")
            read_only = not _off(v.get("read_only"))
            if kind == "tmpfs":
                continue
            bind = kind == "bind"
        else:
            parts = text(v).split(":")
            if len(parts) == 1:
                out.append(Mount(cname, None, False, False))  # anonymous volume
                continue
            source, options = parts[0], parts[2].split(",") if len(parts) > 2 else []
            read_only = "ro" in options
            bind = source.startswith(("/", ".", "~"))
        source = None if source is None else text(source)
        if not bind and source is not None:
            opts = (top.get(source) or {}).get("driver_opts") if isinstance(top.get(source), dict) else None
            if isinstance(opts, dict) and opts.get("device") is not None and (
                    "bind" in text(opts.get("o", "")).split(",") or text(opts.get("type", "")) == "none"):
                source, bind = text(opts["device"]), True
        out.append(Mount(cname, source, bind, read_only))
    return out


def in_data_root(path: str) -> bool:
    root = PATHS.data_root.rstrip("/")
    normal = posixpath.normpath(path)
    return normal.startswith(root + "/") and not normal.startswith("//")


def breaches(data: dict) -> list[Breach]:
    """Everything in the compose file that defeats the isolation, in file order."""
    out: list[Breach] = []
    for key in TOP_KEYS:
        found = interpolated(data.get(key))
        if found is not None:
            out.append(Breach("", key, f"{show(found)} is interpolated on the node, after dynia's "
                              "checks", None))
    hosts = host_networks(data)
    for cname, c in data["services"].items():
        out += _container(label(cname), c, data, hosts)
    return out


def _container(cname: str, c: dict, data: dict, hosts: set[str]) -> Iterator[Breach]:
    for key in CONTAINER_KEYS:
        found = interpolated(c.get(key))
        if found is not None:
            yield Breach(cname, key, f"{show(found)} is interpolated on the node, after dynia's checks", None)
            return
    if not _off(c.get("privileged")):
        yield Breach(cname, "privileged", "gives the container every device and capability of the node "
                     "(root on the host)", "privileged")
    for key in NAMESPACE_KEYS:
        if text(c.get(key, "")).strip().lower() == "host":
            yield Breach(cname, key, "host shares the node's own namespace with the container",
                         "host-namespaces")
    mode = text(c.get("network_mode", "")).strip().lower()
    if mode == "host":
        yield Breach(cname, "network_mode", "host puts the container on the node's network, "
                     "where its ports bypass Caddy and 127.0.0.1", "host-network")
    elif mode.startswith("container:"):
        yield Breach(cname, "network_mode", f"{show(c['network_mode'])} joins a container outside this compose "
                     "file, whose network dynia cannot check", "host-network")
    for net in _names(c.get("networks")):
        if net in hosts:
            yield Breach(cname, "networks", f"network {label(net)} is the node's own network (host), where "
                         "the container's ports bypass Caddy and 127.0.0.1", "host-network")
    caps = c.get("cap_add")
    for cap in caps if isinstance(caps, list) else ([] if caps is None else [caps]):
        name = text(cap).strip().upper().removeprefix("CAP_")
        if name not in DEFAULT_CAPS:
            yield Breach(cname, "cap_add", f"{show(cap)} is outside Docker's default capabilities "
                         f"({', '.join(sorted(DEFAULT_CAPS))})", "capabilities")
    for key in DEVICE_KEYS:
        if c.get(key):
            yield Breach(cname, key, "gives the container the node's device files", "devices")
    if dig(c, "deploy", "resources", "reservations", "devices"):
        yield Breach(cname, "deploy.resources.reservations.devices", "gives the container the node's devices",
                     "devices")
    opts = c.get("security_opt")
    for opt in opts if isinstance(opts, list) else ([] if opts is None else [opts]):
        if not NO_NEW_PRIVILEGES.fullmatch(text(opt).strip()):
            yield Breach(cname, "security_opt", f"{show(opt)} turns off or replaces the seccomp, AppArmor or "
                         "SELinux confinement (only no-new-privileges is accepted)", "security-opt")
    for m in mounts(cname, c, data):
        if m.bind and m.source is not None and m.source.startswith("/") and not in_data_root(m.source):
            yield Breach(cname, "volumes", f"bind mount {show(m.source)} is a node path outside the data root "
                         f"{PATHS.data_root}/ (the node's system and dynia's own files live there)", "host-mounts")
    for source in _names(c.get("volumes_from")):
        if source.startswith("container:"):
            yield Breach(cname, "volumes_from", f"{show(source)} mounts the volumes of a container outside this "
                         "compose file", "host-mounts")


def state(data: dict, on_volume: str | None = None) -> tuple[list[str], list[str]]:
    """(what keeps data: one description per writable volume or data-root bind mount,
    database containers without one: one description each). A bind mount at or under
    `on_volume` (the service's `data.mount`) is on the volume that follows the VIP, not the node's."""
    kept, databases = [], []
    for cname, c in data["services"].items():
        name = label(cname)
        writable = [m for m in mounts(name, c, data) if not m.read_only]
        for m in writable:
            if m.source is None:
                kept.append(f"an anonymous volume (container {name})")
            elif not m.bind:
                kept.append(f"volume {label(m.source)} (container {name})")
            elif in_data_root(m.source) and not (
                    on_volume and (m.source == on_volume or m.source.startswith(on_volume + "/"))):
                kept.append(f"bind mount {label(m.source)} (container {name})")
        image = c.get("image")
        if not writable and isinstance(image, str) and image_name(image) in DATABASE_IMAGES:
            databases.append(f"container {name} runs {label(image)} without a volume")
    return kept, databases


def dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def image_name(image: str) -> str:
    """postgres for docker.io/library/postgres:16-alpine, postgresql for bitnami/postgresql@sha256:…"""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[0].lower()
