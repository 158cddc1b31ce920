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

from .paths import INFRA_PORTS
from .spec import ClusterSpec, Service

# Guard assumption for a container without a memory limit (and the plan says it assumed it).
DEFAULT_SERVICE_MIB = 256

_MEM = re.compile(r"(\d+(?:\.\d+)?)\s*([bkmg]?)b?", re.I)
_FACTOR = {"": 1 / (1024 * 1024), "b": 1 / (1024 * 1024), "k": 1 / 1024, "m": 1, "g": 1024}
_SHORT_PORT = re.compile(r"(?:(?P<ip>\d+\.\d+\.\d+\.\d+|\[[0-9a-fA-F:]+\]):)?(?:(?P<host>\d+):)?"
                         r"(?P<target>\d+)(?:/(?P<proto>tcp|udp))?")


class ComposeProblem(Exception):
    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class ComposeInfo:
    path: Path
    shown: str  # the path as the spec names it
    data: dict
    memory_mib: int  # sum of the containers' limits (assumed default where unset)
    unlimited: tuple[str, ...]  # containers without a memory limit


def parse_memory(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return max(1, round(value / (1024 * 1024)))
    m = _MEM.fullmatch(str(value).strip())
    if not m:
        raise ComposeProblem(f"memory limit {value!r} is not a size",
                             "write it like 256m or 1g")
    return max(1, round(float(m.group(1)) * _FACTOR[m.group(2).lower()]))


def _port_number(value: Any, what: str) -> int:
    """One port number from a long-syntax entry: an int or a numeric string, never a range."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise ComposeProblem(f"{what} {value!r} is not a single port number",
                             "write one port like 8080 (ranges are not supported)")
    number = int(str(value).strip())
    if not 1 <= number <= 65535:
        raise ComposeProblem(f"{what} {number} is not a port (1-65535)", "use a port between 1024 and 65535")
    return number


def _published(entry: Any) -> tuple[str | None, int | None, int, str]:
    """(host ip, host port, container port, protocol) of one `ports:` entry."""
    if isinstance(entry, dict):
        if "target" not in entry:
            raise ComposeProblem(f"ports entry {dict(entry)!r} has no target",
                                 "add target: <container port> (and published: <host port>)")
        ip, proto = entry.get("host_ip"), entry.get("protocol", "tcp")
        if ip is not None and not isinstance(ip, str):
            raise ComposeProblem(f"ports entry host_ip {ip!r} is not an address",
                                 "drop host_ip; dynia binds published ports to 127.0.0.1")
        if proto not in ("tcp", "udp"):
            raise ComposeProblem(f"ports entry protocol {proto!r} is not tcp or udp", "use protocol: tcp")
        host = entry.get("published")
        return (ip, _port_number(host, "published port") if host is not None else None,
                _port_number(entry["target"], "target port"), proto)
    m = _SHORT_PORT.fullmatch(str(entry).strip()) if isinstance(entry, (str, int)) else None
    if not m:
        raise ComposeProblem(f"ports entry {entry!r} is not understood",
                             "use HOST:CONTAINER like \"8080:80\" (ranges are not supported)")
    host = m.group("host")
    return (m.group("ip"), _port_number(host, "published port") if host else None,
            _port_number(m.group("target"), "target port"), m.group("proto") or "tcp")


def load(path: Path, shown: str) -> dict:
    from ruamel.yaml import YAML, YAMLError

    from .errors import DyniaError
    from .store import MAX_FLOW_DEPTH, flow_depth, read_input

    try:
        text = read_input(path, f"compose file {shown}", (
            f"compose file {shown} does not exist",
            "create it, or point `compose:` at the right file (relative to the project directory)"))
    except DyniaError as exc:
        raise ComposeProblem(exc.message, exc.hint) from None
    try:
        if flow_depth(text) > MAX_FLOW_DEPTH:
            raise RecursionError
        data = YAML(typ="safe", pure=True).load(text)
    except RecursionError:
        raise ComposeProblem(f"compose file {shown} is nested too deeply",
                             "remove the nested brackets or lists") from None
    except YAMLError as exc:
        raise ComposeProblem(f"compose file {shown} is not valid YAML: {str(exc).splitlines()[0]}",
                             "fix the YAML syntax (docker compose config shows where)") from None
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
                raise ComposeProblem(f"compose file {shown}: {section}.{key}.file: {item['file']!r} never "
                                     "reaches the nodes",
                                     "use content: or environment: instead of file:, or bake it into the image")


def _bind_source(volume: Any) -> str | None:
    """The host path of a bind mount, or None for a named volume / tmpfs."""
    if isinstance(volume, dict):
        return volume.get("source") if volume.get("type") == "bind" else None
    source = str(volume).split(":", 1)[0]
    return source if source.startswith((".", "/", "~")) else None


def _check_container(shown: str, cname: Any, c: Any) -> list[int]:
    """Refuse what cannot work on a node; return the host ports the container publishes."""
    where = f"compose file {shown}: container {cname}"
    if not isinstance(c, dict):
        raise ComposeProblem(f"{where} is not a mapping", "each entry under services: needs image:, ports: …")
    if c.get("network_mode") == "host":
        raise ComposeProblem(f"{where} uses network_mode: host",
                             "publish the port with ports: instead, so dynia can keep it on 127.0.0.1")
    for key, hint in _LOCAL_FILE_KEYS.items():
        if key in c:
            raise ComposeProblem(f"{where}: {key}: points at files that never reach the nodes", hint)
    if isinstance(c.get("extends"), dict) and "file" in c["extends"]:
        raise ComposeProblem(f"{where}: extends.file: {c['extends']['file']!r} never reaches the nodes",
                             "copy the base service into this compose file")
    for key in ("ports", "volumes"):
        if not isinstance(c.get(key) or [], list):
            raise ComposeProblem(f"{where}: {key}: must be a list", f"write {key}: as a list of entries")
    for volume in c.get("volumes") or []:
        source = _bind_source(volume)
        if source is not None and not str(source).startswith("/"):
            raise ComposeProblem(f"{where}: volumes: bind mount {source!r} is relative to this machine",
                                 "use a named volume, or an absolute path that exists on every node")
    published = []
    for entry in c.get("ports") or []:
        try:
            ip, host, target, _proto = _published(entry)
        except ComposeProblem as exc:
            raise ComposeProblem(f"{where}: ports: {exc}", exc.hint) from None
        if host is None:
            # Docker would publish it on a random port of every address: never silently public.
            raise ComposeProblem(f"{where}: ports: container port {target} has no host port, so docker "
                                 "would publish it on a random public port",
                                 "list it under expose: if only other containers use it, "
                                 f"or give it a free host port like \"HOST:{target}\"")
        if ip and ip.strip("[]") not in ("0.0.0.0", "127.0.0.1", "::"):
            raise ComposeProblem(f"{where} binds a port to {ip}",
                                 "drop the address; dynia binds published ports to 127.0.0.1")
        if host in INFRA_PORTS or host < 1024:
            owner = INFRA_PORTS.get(host, "the node's own services")
            raise ComposeProblem(f"{where}: ports: host port {host} belongs to {owner} on every node",
                                 "publish on a free port between 1024 and 65535")
        published.append(host)
    return published


def inspect(name: str, svc: Service, root: Path) -> tuple[ComposeInfo, dict[int, str]]:
    """The checked compose file of one service and its published host ports (port -> container)."""
    path = root / svc.compose
    if not path.resolve().is_relative_to(root.resolve()):
        raise ComposeProblem(f"compose file {svc.compose} leads outside the project directory",
                             "keep compose files inside the project (no symlink out of it)")
    data = load(path, svc.compose)
    _check_top_level(svc.compose, data)
    ports: dict[int, str] = {}
    total, unlimited = 0, []
    for cname, c in data["services"].items():
        for host in _check_container(svc.compose, cname, c):
            if host in ports:
                raise ComposeProblem(f"compose file {svc.compose}: container {cname}: ports: host port "
                                     f"{host} is already published by container {ports[host]}",
                                     "publish each host port once")
            ports[host] = str(cname)
        key, limit = "deploy.resources.limits.memory", _dig(c, "deploy", "resources", "limits", "memory")
        if limit is None:
            key, limit = "mem_limit", c.get("mem_limit")
        if limit is None:
            unlimited.append(cname)
            total += DEFAULT_SERVICE_MIB
            continue
        try:
            total += parse_memory(limit)
        except ComposeProblem as exc:
            raise ComposeProblem(f"compose file {svc.compose}: container {cname}: {key}: {exc}", exc.hint) from None
    if svc.port not in ports:
        raise ComposeProblem(f"compose file {svc.compose} does not publish port {svc.port}",
                             f"add ports: [\"{svc.port}:<container port>\"] to the container that serves {name}")
    info = ComposeInfo(path=path, shown=svc.compose, data=data, memory_mib=total, unlimited=tuple(unlimited))
    return info, ports


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def check_all(spec: ClusterSpec, root: Path) -> tuple[dict[str, ComposeInfo], list[tuple[tuple, str, str]]]:
    """Inspect every service's compose file; a host port has one owner across the cluster."""
    infos, problems = {}, []
    owners = {svc.port: (name, None) for name, svc in spec.services.items()}
    for name, svc in spec.services.items():
        try:
            infos[name], ports = inspect(name, svc, root)
        except ComposeProblem as exc:
            problems.append((("services", name, "compose"), f"service {name}: {exc}", exc.hint))
            continue
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


def wrapped(name: str, info: ComposeInfo, host_network: bool = False) -> str:
    """The compose file dynia pushes: the operator's, with its ports bound to loopback.

    host_network (lab nodes, podman without a network stack): containers share the node's
    network; the app must listen on 127.0.0.1:<port> itself.
    """
    from ruamel.yaml import YAML

    data = dict(info.data)
    from .nodes.commands import compose_project

    data["name"] = compose_project(name)
    services = {}
    for cname, c in info.data["services"].items():
        c = dict(c)
        if c.get("ports"):
            c["ports"] = [_loopback(e) for e in c["ports"]]
        if host_network:
            c["network_mode"] = "host"
        services[cname] = c
    data["services"] = services
    data = {"name": data.pop("name"), **data}
    out = io.StringIO(f"# Rendered by dynia from {_one_line(info.shown)}: edit that file, not this one.\n"
                      "# Published ports are bound to 127.0.0.1; Caddy is the only way in.\n")
    out.seek(0, io.SEEK_END)
    y = YAML(typ="rt")
    y.indent(mapping=2, sequence=4, offset=2)
    y.dump(data, out)
    return out.getvalue()
