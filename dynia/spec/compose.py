"""The operator's docker-compose files: what dynia checks in them and how it wraps them.

dynia never trusts a compose file to keep a port off the public address: the rendered copy
binds every published port to 127.0.0.1, where only the node's Caddy reaches it. A port
without a host port is refused rather than dropped: docker would publish it on a random
public port, and silently rewriting what the operator wrote would hide that they expected
it to be reachable (`expose:` says "containers only"). Anything that needs a file other than
the compose file itself (build, env_file, include, …) is refused: only this file reaches a node.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..paths import INFRA_PORTS, compose_project
from . import image_refs, isolation
from .isolation import dig, label, show, text
from .model import ClusterSpec, Service

# Guard assumption for a container without a memory limit (and the plan says it assumed it).
DEFAULT_SERVICE_MIB = 256

_MEM = re.compile(r"(\d+(?:\.\d+)?)\s*([bkmg]?)b?", re.I)
_FACTOR = {"": 1 / (1024 * 1024), "b": 1 / (1024 * 1024), "k": 1 / 1024, "m": 1, "g": 1024}
_SHORT_PORT = re.compile(r"(?:(?P<ip>\d+\.\d+\.\d+\.\d+|\[[0-9a-fA-F:]+\]):)?(?:(?P<host>\d+):)?"
                         r"(?P<target>\d+)(?:/(?P<proto>tcp|udp))?")


class ComposeProblem(Exception):
    def __init__(self, message: str, hint: str, key: str = "compose"):
        super().__init__(message)
        self.hint, self.key = hint, key  # key: the service's spec key the problem is located at


@dataclass(frozen=True)
class ComposeInfo:
    path: Path
    shown: str  # the path as the spec names it
    data: dict
    memory_mib: int  # sum of the containers' limits (assumed default where unset)
    unlimited: tuple[str, ...]  # containers without a memory limit
    kept: tuple[str, ...] = ()  # what keeps data on the node (volumes, data-root bind mounts)
    databases: tuple[str, ...] = ()  # database containers that keep data without a volume


def parse_memory(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return max(1, round(value / (1024 * 1024)))
    m = _MEM.fullmatch(text(value).strip())
    if not m:
        raise ComposeProblem(f"memory limit {show(value)} is not a size",
                             "write it like 256m or 1g")
    return max(1, round(float(m.group(1)) * _FACTOR[m.group(2).lower()]))


def _port_number(value: Any, what: str) -> int:
    """One port number from a long-syntax entry: an int or a numeric string, never a range."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise ComposeProblem(f"{what} {show(value)} is not a single port number",
                             "write one port like 8080 (ranges are not supported)")
    number = int(str(value).strip())
    if not 1 <= number <= 65535:
        raise ComposeProblem(f"{what} {number} is not a port (1-65535)", "use a port between 1024 and 65535")
    return number


def _published(entry: Any) -> tuple[str | None, int | None, int, str]:
    """(host ip, host port, container port, protocol) of one `ports:` entry."""
    if isinstance(entry, dict):
        if "target" not in entry:
            raise ComposeProblem(f"ports entry {show(entry)} has no target",
                                 "add target: <container port> (and published: <host port>)")
        ip, proto = entry.get("host_ip"), entry.get("protocol", "tcp")
        if ip is not None and not isinstance(ip, str):
            raise ComposeProblem(f"ports entry host_ip {show(ip)} is not an address",
                                 "drop host_ip; dynia binds published ports to 127.0.0.1")
        if proto not in ("tcp", "udp"):
            raise ComposeProblem(f"ports entry protocol {show(proto)} is not tcp or udp", "use protocol: tcp")
        host = entry.get("published")
        return (ip, _port_number(host, "published port") if host is not None else None,
                _port_number(entry["target"], "target port"), proto)
    m = _SHORT_PORT.fullmatch(str(entry).strip()) if isinstance(entry, (str, int)) else None
    if not m:
        raise ComposeProblem(f"ports entry {show(entry)} is not understood",
                             "use HOST:CONTAINER like \"8080:80\" (ranges are not supported)")
    host = m.group("host")
    return (m.group("ip"), _port_number(host, "published port") if host else None,
            _port_number(m.group("target"), "target port"), m.group("proto") or "tcp")


def load(path: Path, shown: str) -> dict:
    from ..errors import DyniaError
    from ..state.reads import read_input

    try:
        text = read_input(path, f"compose file {shown}", (
            f"compose file {shown} does not exist",
            "create it, or point `compose:` at the right file (relative to the project directory)"))
    except DyniaError as exc:
        raise ComposeProblem(exc.message, exc.hint) from None
    return parse(text, shown)


def parse(text: str, shown: str) -> dict:
    """A compose file's text → its mapping, with a `services:` mapping (else a ComposeProblem)."""
    from ruamel.yaml import YAML, YAMLError

    from ..state.reads import load_bounded

    try:
        data = load_bounded(text, YAML(typ="safe", pure=True))
    except RecursionError:
        raise ComposeProblem(f"compose file {shown} is nested too deeply (or contains itself through an alias)",
                             "remove the nested brackets, lists or mappings") from None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ComposeProblem(f"compose file {where} is not valid YAML ({problem[:200]})",
                             "fix the YAML syntax at that line and column") from None
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict) or not data["services"]:
        raise ComposeProblem(f"compose file {shown} has no `services:`",
                             "declare at least one container under services:")
    return data


# Keys whose files stay on this machine: only the compose file itself reaches the nodes.
_LOCAL_FILE_KEYS = {
    "build": "build and push the image to a registry, then use image:",
    "env_file": "move the variables under environment:",
    "label_file": "move the labels under labels:",
}


def _check_top_level(shown: str, data: dict) -> None:
    if "include" in data:
        raise ComposeProblem(f"compose file {shown}: include: pulls in files that never reach the nodes",
                             "copy the included services into this compose file")
    for section in ("configs", "secrets"):
        entries = data.get(section)
        for key, item in entries.items() if isinstance(entries, dict) else ():
            if isinstance(item, dict) and "file" in item:
                raise ComposeProblem(f"compose file {shown}: {section}.{label(key)}.file: {show(item['file'])} never "
                                     "reaches the nodes",
                                     "use content: or environment: instead of file:, or bake it into the image")


def _check_secrets(svc: Service, data: dict) -> None:
    """The spec's secrets are declared by dynia in the rendered file: a top-level secret of the
    same name would be two definitions, and a container's `secrets:` must be a list dynia can add to."""
    declared = data.get("secrets")
    for name in svc.secrets:
        if isinstance(declared, dict) and name in declared:
            raise ComposeProblem(f"compose file {svc.compose}: secrets.{name} is also a secret of the spec "
                                 "(dynia declares it, from the node's secret slot)",
                                 f"remove secrets.{name} from the compose file", key="secrets")
    if not svc.secrets:
        return
    for cname, c in data["services"].items():
        if isinstance(c, dict) and not isinstance(c.get("secrets") or [], list):
            raise ComposeProblem(f"compose file {svc.compose}: container {label(cname)}: secrets: must be a list",
                                 "write secrets: as a list of names", key="secrets")


def _bind_source(volume: Any) -> str | None:
    """The host path of a bind mount, or None for a named volume / tmpfs."""
    if isinstance(volume, dict):
        return volume.get("source") if volume.get("type") == "bind" else None
    source = text(volume).split(":", 1)[0]
    return source if source.startswith((".", "/", "~")) else None


def _check_container(shown: str, cname: Any, c: Any) -> list[tuple[int, str]]:
    """Refuse what cannot work on a node; return the (host port, protocol) it publishes."""
    where = f"compose file {shown}: container {label(cname)}"
    if not isinstance(c, dict):
        raise ComposeProblem(f"{where} is not a mapping", "each entry under services: needs image:, ports: …")
    for key, hint in _LOCAL_FILE_KEYS.items():
        if key in c:
            raise ComposeProblem(f"{where}: {key}: points at files that never reach the nodes", hint)
    if isinstance(c.get("extends"), dict) and "file" in c["extends"]:
        raise ComposeProblem(f"{where}: extends.file: {show(c['extends']['file'])} never reaches the nodes",
                             "copy the base service into this compose file")
    if "extends" not in c and (not isinstance(c.get("image"), str) or not c["image"].strip()):
        # The nodes pull images; nothing else (no build context) reaches them.
        raise ComposeProblem(f"{where} has no image: (a container needs image: or build:, and build: "
                             "never reaches the nodes)", "add image: <registry>/<name>:<tag>")
    for key in ("privileged", "network_mode", *isolation.NAMESPACE_KEYS):
        if isinstance(c.get(key), (dict, list)):
            raise ComposeProblem(f"{where}: {key}: {show(c[key])} is not a single value",
                                 f"write {key}: as one value (see the compose specification)")
    for key in ("ports", "volumes"):
        if not isinstance(c.get(key) or [], list):
            raise ComposeProblem(f"{where}: {key}: must be a list", f"write {key}: as a list of entries")
    for volume in c.get("volumes") or []:
        if not isinstance(volume, (str, dict)):
            raise ComposeProblem(f"{where}: volumes: entry {show(volume)} is not understood",
                                 "write SOURCE:TARGET[:ro] or a mapping with type:, source:, target:")
        source = _bind_source(volume)
        if source is not None and not text(source).startswith("/"):
            raise ComposeProblem(f"{where}: volumes: bind mount {show(source)} is relative to this machine",
                                 "use a named volume, or an absolute path that exists on every node")
    published = []
    for entry in c.get("ports") or []:
        try:
            ip, host, target, proto = _published(entry)
        except ComposeProblem as exc:
            raise ComposeProblem(f"{where}: ports: {exc}", exc.hint) from None
        if host is None:
            # Docker would publish it on a random port of every address: never silently public.
            raise ComposeProblem(f"{where}: ports: container port {target} has no host port, so docker "
                                 "would publish it on a random public port",
                                 "list it under expose: if only other containers use it, "
                                 f"or give it a free host port like \"HOST:{target}\"")
        if ip and ip.strip("[]") not in ("0.0.0.0", "127.0.0.1", "::"):
            raise ComposeProblem(f"{where} binds a port to {show(ip)}",
                                 "drop the address; dynia binds published ports to 127.0.0.1")
        if host in INFRA_PORTS or host < 1024:
            owner = INFRA_PORTS.get(host, "the node's own services")
            raise ComposeProblem(f"{where}: ports: host port {host} belongs to {owner} on every node",
                                 "publish on a free port between 1024 and 65535")
        published.append((host, proto))
    return published


def inspect(name: str, svc: Service, root: Path) -> tuple[ComposeInfo, dict[int, str]]:
    """The checked compose file of one service and its published host ports (port -> container)."""
    path = root / svc.compose
    if not path.resolve().is_relative_to(root.resolve()):
        raise ComposeProblem(f"compose file {svc.compose} leads outside the project directory",
                             "keep compose files inside the project (no symlink out of it)")
    data = load(path, svc.compose)
    _check_top_level(svc.compose, data)
    _check_secrets(svc, data)
    ports: dict[int, str] = {}
    tcp: set[int] = set()
    total, unlimited = 0, []
    for cname, c in data["services"].items():
        for host, proto in _check_container(svc.compose, cname, c):
            if host in ports:
                raise ComposeProblem(f"compose file {svc.compose}: container {label(cname)}: ports: host port "
                                     f"{host} is already published by container {ports[host]}",
                                     "publish each host port once")
            ports[host] = label(cname)
            if proto == "tcp":
                tcp.add(host)
        key, limit = "deploy.resources.limits.memory", dig(c, "deploy", "resources", "limits", "memory")
        if limit is None:
            key, limit = "mem_limit", c.get("mem_limit")
        if limit is None:
            unlimited.append(label(cname))
            total += DEFAULT_SERVICE_MIB
            continue
        try:
            total += parse_memory(limit)
        except ComposeProblem as exc:
            raise ComposeProblem(f"compose file {svc.compose}: container {label(cname)}: {key}: {exc}",
                                 exc.hint) from None
    _check_isolation(name, svc, data)
    if svc.port not in ports:
        raise ComposeProblem(f"compose file {svc.compose} does not publish port {svc.port}",
                             f"add ports: [\"{svc.port}:<container port>\"] to the container that serves {name}")
    if svc.port not in tcp:
        raise ComposeProblem(f"compose file {svc.compose}: container {ports[svc.port]}: ports: port {svc.port} is "
                             "published only as UDP, and Caddy proxies HTTP over TCP",
                             f"publish it as TCP: \"{svc.port}:<container port>\"")
    kept, databases = isolation.state(data, svc.data.mount if svc.data else None)
    info = ComposeInfo(path=path, shown=svc.compose, data=data, memory_mib=total, unlimited=tuple(unlimited),
                       kept=tuple(kept), databases=tuple(databases))
    return info, ports


def _check_isolation(name: str, svc: Service, data: dict) -> None:
    """Refuse what defeats the node's isolation (dynia.spec.isolation) unless the spec opts in; an
    opt-in the file does not use is refused too, since plan shows it as a risk taken."""
    used = set()
    for b in isolation.breaches(data):
        where = f"compose file {svc.compose}: " + (f"container {b.container}: " if b.container else "") + b.key
        if b.exception is None:
            raise ComposeProblem(f"{where}: {b.what}",
                                 "write the value literally: compose interpolates it on the node, where "
                                 "dynia's checks cannot see the result")
        if b.exception not in svc.isolation_exceptions:
            raise ComposeProblem(f"{where}: {b.what}",
                                 f"remove it; if service {name} truly needs it, add isolation_exceptions: "
                                 f"[{b.exception}] to the service in the spec (every plan shows it)")
        used.add(b.exception)
    for unused in (e for e in svc.isolation_exceptions if e not in used):
        raise ComposeProblem(f"isolation_exceptions lists {unused}, which compose file {svc.compose} does not use",
                             "remove it: every plan shows an exception as a risk taken", key="isolation_exceptions")


def _mirrored(spec: ClusterSpec, svc: Service) -> bool:
    """Does the service run on several nodes at once?"""
    return svc.placement == "all" or (svc.placement == "standby-only" and len(spec.nodes) > 2)


def check_all(spec: ClusterSpec, root: Path) -> tuple[dict[str, ComposeInfo], list[tuple[tuple, str, str]]]:
    """Inspect every service's compose file; a host port has one owner across the cluster; a
    service that keeps data is not mirrored unless the app replicates it itself."""
    infos, problems = {}, []
    owners: dict[int, tuple[str, str | None]] = {svc.port: (name, None) for name, svc in spec.services.items()}
    for name, svc in spec.services.items():
        try:
            infos[name], ports = inspect(name, svc, root)
        except ComposeProblem as exc:
            problems.append((("services", name, exc.key), f"service {name}: {exc}", exc.hint))
            continue
        kept = infos[name].kept
        if kept and _mirrored(spec, svc) and svc.state != "replicated":
            more = f" (and {len(kept) - 1} more)" if len(kept) > 1 else ""
            problems.append((("services", name, "placement"),
                             f"service {name}: placement: {svc.placement} runs a copy on several nodes, and "
                             f"each keeps its own {kept[0]}{more}: no copy sees the others' writes",
                             "use placement: active-only (one copy, on the VIP holder), keep the data in a "
                             "managed database, or set state: replicated if the app replicates it itself"))
        for host, cname in ports.items():
            other, other_container = owners.setdefault(host, (name, cname))
            if other != name:
                taken = f"service {other}" + (f" (container {other_container})" if other_container else "")
                problems.append((("services", name, "compose"),
                                 f"service {name}: compose file {svc.compose}: container {cname}: ports: "
                                 f"host port {host} is already used by {taken}",
                                 "every service needs its own host ports on the node"))
            elif other_container is None:
                owners[host] = (name, cname)
    return infos, problems


NOTICE_ORDER = ("isolation-exception", "maintenance", "replicated-state", "warning")


def notices(spec: ClusterSpec, infos: dict[str, ComposeInfo]) -> list[dict]:
    """What plan shows before anything else, exceptions first: each isolation exception and
    replicated-state promise the spec makes, each database that keeps its data inside its
    container, and each single-copy service whose data stays behind on failover."""
    out = []
    for name, svc in sorted(spec.services.items()):
        info = infos.get(name)
        if svc.maintenance is not None:
            out.append({"service": name, "kind": "maintenance",
                        "text": f"service {name} is in maintenance: every node's HAProxy answers "
                                f"{', '.join(svc.domains)} with 503 (`dynia maintenance off {name}` ends it)"})
        for e in svc.isolation_exceptions:
            out.append({"service": name, "kind": "isolation-exception",
                        "text": f"service {name} is allowed {isolation.EXCEPTIONS[e]} (isolation_exceptions: {e})"})
        if svc.state == "replicated" and _mirrored(spec, svc):
            out.append({"service": name, "kind": "replicated-state",
                        "text": f"service {name}: state: replicated — a copy runs on several nodes, each with "
                                "its own data; dynia relies on the app to replicate it"})
        elif info and info.kept and not _mirrored(spec, svc) and len(spec.nodes) > 1:
            out.append({"service": name, "kind": "warning",
                        "text": f"service {name} keeps {info.kept[0]} on the node that runs it: after a failover "
                                "the next node starts it with its own copy (dynia does not move the data)"})
        for db in info.databases if info else ():
            out.append({"service": name, "kind": "warning",
                        "text": f"service {name}: {db}: its data lives in the container and is lost when the "
                                "container is recreated" + ("; every node keeps its own copy"
                                                            if _mirrored(spec, svc) else "")
                                + " (add a volume, or use a managed database)"})
    return sorted(out, key=lambda n: NOTICE_ORDER.index(n["kind"]))


def _loopback(entry: Any) -> Any:
    ip, host, target, proto = _published(entry)
    if host is None:
        return entry  # not published on the host at all
    if isinstance(entry, dict):
        return {**entry, "host_ip": "127.0.0.1"}
    suffix = "" if proto == "tcp" else f"/{proto}"
    return f"127.0.0.1:{host}:{target}{suffix}"


def _one_line(text: str) -> str:
    """Text safe inside a YAML comment line: control and line-breaking characters escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def as_released(info: ComposeInfo, content: str, release: int) -> ComposeInfo:
    """The service's compose file as a release recorded it (a rollback renders that one)."""
    import dataclasses

    shown = f"{info.shown} as in release {release}"
    return dataclasses.replace(info, shown=shown, data=parse(content, shown))


def wrapped(name: str, info: ComposeInfo, host_network: bool = False, images: dict[str, str] | None = None,
            secrets: dict[str, str] | None = None) -> str:
    """The compose file dynia pushes: the operator's, with its ports bound to loopback, and each
    image the release resolved (images: {reference: sha256 digest}, dynia.pins) pinned by digest.

    host_network (lab nodes, podman without a network stack): containers share the node's
    network; the app must listen on 127.0.0.1:<port> itself.
    secrets: the spec's secrets of this service (name -> its slot on the node): declared with
    the slot as their file, given to every container (read-only at /run/secrets/<name>).
    """
    from ruamel.yaml import YAML

    data = dict(info.data)
    data["name"] = compose_project(name)
    services = {}
    for cname, c in info.data["services"].items():
        c = dict(c)
        if c.get("ports"):
            c["ports"] = [_loopback(e) for e in c["ports"]]
        if host_network:
            c["network_mode"] = "host"
        if images and isinstance(c.get("image"), str):
            c["image"] = image_refs.rewrite(c["image"], images)
        if secrets:
            given = {e if isinstance(e, str) else e.get("source") for e in c.get("secrets") or []
                     if isinstance(e, (str, dict))}
            c["secrets"] = list(c.get("secrets") or []) + [s for s in secrets if s not in given]
        services[cname] = c
    data["services"] = services
    if secrets:
        data["secrets"] = {**(info.data.get("secrets") or {}), **{s: {"file": path} for s, path in secrets.items()}}
    data = {"name": data.pop("name"), **data}
    out = io.StringIO(f"# Rendered by dynia from {_one_line(info.shown)}: edit that file, not this one.\n"
                      "# Published ports are bound to 127.0.0.1; Caddy is the only way in.\n")
    out.seek(0, io.SEEK_END)
    y = YAML(typ="rt")
    y.indent(mapping=2, sequence=4, offset=2)
    y.dump(data, out)
    return out.getvalue()


def compose_images(content: bytes) -> dict[str, str]:
    """compose service -> image reference, from a rendered compose file (dynia renders it)."""
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(content.decode())
    services = (data or {}).get("services") or {}
    return {name: str(c["image"]) for name, c in services.items() if isinstance(c, dict) and c.get("image")}


def app_container(content: bytes, port: int) -> str | None:
    """The compose service of a rendered compose file that is the app (`dynia run` and a
    release command start a new container of it): the one publishing the spec's port over TCP,
    else the only one; None when neither tells."""
    from ruamel.yaml import YAML

    services = (YAML(typ="safe").load(content.decode()) or {}).get("services") or {}
    for name, c in services.items():
        for entry in (c or {}).get("ports") or ():
            try:
                _, host, _, proto = _published(entry)
            except ComposeProblem:
                continue
            if host == port and proto == "tcp":
                return str(name)
    return str(next(iter(services))) if len(services) == 1 else None
