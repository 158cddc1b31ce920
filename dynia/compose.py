"""The operator's docker-compose files: what dynia checks in them and how it wraps them.

dynia never trusts a compose file to keep a port off the public address: the rendered copy
binds every published port to 127.0.0.1, where only the node's Caddy reaches it.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .spec import ClusterSpec, Service

# Guard assumption for a container without a memory limit (and the plan says it assumed it).
DEFAULT_SERVICE_MIB = 256

_MEM = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmg]?)b?$", re.I)
_FACTOR = {"": 1 / (1024 * 1024), "b": 1 / (1024 * 1024), "k": 1 / 1024, "m": 1, "g": 1024}
_SHORT_PORT = re.compile(r"^(?:(?P<ip>\d+\.\d+\.\d+\.\d+|\[[0-9a-fA-F:]+\]):)?(?:(?P<host>\d+):)?"
                         r"(?P<target>\d+)(?:/(?P<proto>tcp|udp))?$")


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
    m = _MEM.match(str(value).strip())
    if not m:
        raise ComposeProblem(f"memory limit {value!r} is not a size",
                             "write it like 256m or 1g")
    return max(1, round(float(m.group(1)) * _FACTOR[m.group(2).lower()]))


def _published(entry: Any) -> tuple[str | None, int | None, int, str]:
    """(host ip, host port, container port, protocol) of one `ports:` entry."""
    if isinstance(entry, dict):
        host = entry.get("published")
        return (entry.get("host_ip"), int(host) if host is not None else None,
                int(entry["target"]), entry.get("protocol", "tcp"))
    m = _SHORT_PORT.match(str(entry).strip())
    if not m:
        raise ComposeProblem(f"ports entry {entry!r} is not understood",
                             "use HOST:CONTAINER like \"8080:80\" (ranges are not supported)")
    host = m.group("host")
    return (m.group("ip"), int(host) if host else None, int(m.group("target")), m.group("proto") or "tcp")


def load(path: Path, shown: str) -> dict:
    from ruamel.yaml import YAML, YAMLError

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ComposeProblem(f"compose file {shown} does not exist",
                             "create it, or point `compose:` at the right file (relative to the project directory)") from None
    except OSError as exc:
        raise ComposeProblem(f"compose file {shown} cannot be read: {exc.strerror}",
                             "check the path and its permissions") from None
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise ComposeProblem(f"compose file {shown} is not valid YAML: {str(exc).splitlines()[0]}",
                             "fix the YAML syntax (docker compose config shows where)") from None
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict) or not data["services"]:
        raise ComposeProblem(f"compose file {shown} has no `services:`",
                             "declare at least one container under services:")
    return data


def inspect(name: str, svc: Service, root: Path) -> ComposeInfo:
    path = root / svc.compose
    data = load(path, svc.compose)
    publishes = False
    total, unlimited = 0, []
    for cname, c in data["services"].items():
        if not isinstance(c, dict):
            raise ComposeProblem(f"compose file {svc.compose}: service {cname} is not a mapping",
                                 "each entry under services: needs image:, ports: …")
        if c.get("network_mode") == "host":
            raise ComposeProblem(f"compose file {svc.compose}: {cname} uses network_mode: host",
                                 "publish the port with ports: instead, so dynia can keep it on 127.0.0.1")
        for entry in c.get("ports") or []:
            ip, host, _target, proto = _published(entry)
            if ip and ip.strip("[]") not in ("0.0.0.0", "127.0.0.1", "::"):
                raise ComposeProblem(f"compose file {svc.compose}: {cname} binds a port to {ip}",
                                     "drop the address; dynia binds published ports to 127.0.0.1")
            if host == svc.port and proto == "tcp":
                publishes = True
        limit = _dig(c, "deploy", "resources", "limits", "memory")
        if limit is None:
            limit = c.get("mem_limit")
        if limit is None:
            unlimited.append(cname)
            total += DEFAULT_SERVICE_MIB
        else:
            total += parse_memory(limit)
    if not publishes:
        raise ComposeProblem(f"compose file {svc.compose} does not publish port {svc.port}",
                             f"add ports: [\"{svc.port}:<container port>\"] to the container that serves {name}")
    return ComposeInfo(path=path, shown=svc.compose, data=data, memory_mib=total, unlimited=tuple(unlimited))


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def check_all(spec: ClusterSpec, root: Path) -> tuple[dict[str, ComposeInfo], list[tuple[tuple, str, str]]]:
    infos, problems = {}, []
    for name, svc in spec.services.items():
        try:
            infos[name] = inspect(name, svc, root)
        except ComposeProblem as exc:
            problems.append((("services", name, "compose"), f"service {name}: {exc}", exc.hint))
    return infos, problems


def _loopback(entry: Any) -> Any:
    ip, host, target, proto = _published(entry)
    if host is None:
        return entry  # not published on the host at all
    if isinstance(entry, dict):
        return {**entry, "host_ip": "127.0.0.1"}
    suffix = "" if proto == "tcp" else f"/{proto}"
    return f"127.0.0.1:{host}:{target}{suffix}"


def wrapped(name: str, info: ComposeInfo, host_network: bool = False) -> str:
    """The compose file dynia pushes: the operator's, with its ports bound to loopback.

    host_network (lab nodes, podman without a network stack): containers share the node's
    network; the app must listen on 127.0.0.1:<port> itself.
    """
    from ruamel.yaml import YAML

    data = dict(info.data)
    data["name"] = f"dynia-{name}"
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
    out = io.StringIO(f"# Rendered by dynia from {info.shown}: edit that file, not this one.\n"
                      "# Published ports are bound to 127.0.0.1; Caddy is the only way in.\n")
    out.seek(0, io.SEEK_END)
    y = YAML(typ="rt")
    y.indent(mapping=2, sequence=4, offset=2)
    y.dump(data, out)
    return out.getvalue()
