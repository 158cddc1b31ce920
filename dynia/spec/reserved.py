"""Service names dynia uses itself, derived from where dynia names its own things — never a
hand-kept list that goes stale when a backend, a file or a unit is added.

A service's name becomes an HAProxy backend (paths.backend_name), files and directories on
every node (the NodePaths methods that take a `service`), and a compose project
(paths.compose_project). A name whose backend, path or project is one of dynia's own is
reserved: a service called `acme` once rendered a second `be_acme`, which HAProxy refuses.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import fields
from functools import lru_cache, partial
from importlib import resources
from typing import Callable, Iterable

from ..names import is_name
from ..paths import PATHS, backend_name, compose_project

HAPROXY_TEMPLATE = "haproxy/haproxy.cfg.j2"
# A section that names a proxy (HAProxy keeps one namespace for frontends, backends and listens).
PROXY = re.compile(r"^\s*(?:frontend|backend|listen)\s+([^\s{]+)\s*$", re.M)
UNIT_SUFFIXES = (".service", ".timer", ".socket", ".path", ".mount")
_MARK = "\0"


def own_proxies() -> list[str]:
    """The proxies haproxy.cfg names literally (not those rendered from a service)."""
    text = resources.files("dynia.templates").joinpath(HAPROXY_TEMPLATE).read_text()
    return PROXY.findall(text)


def own_paths() -> list[str]:
    """Every fixed path dynia manages or reads on a node (NodePaths' fields)."""
    return [getattr(PATHS, f.name) for f in fields(PATHS)]


def own_units() -> list[str]:
    """dynia's own systemd units, by name without their suffix (dynia-firewall)."""
    names = (p.rsplit("/", 1)[-1] for p in own_paths())
    return [n[: -len(s)] for n in names for s in UNIT_SUFFIXES if n.endswith(s)]


def service_paths() -> list[Callable[[str], str]]:
    """The NodePaths methods that give a service its own path."""
    return [m for _, m in inspect.getmembers(PATHS, inspect.ismethod)
            if "service" in inspect.signature(m).parameters]


def _owned(path_of: Callable[[str], str], service: str) -> str:
    """The part of a service's path that is the service's alone: the file, or the directory
    its name opens (/opt/dynia/compose/<name>, everything below included)."""
    prefix, rest = path_of(_MARK).split(_MARK)
    return prefix + service + rest.split("/")[0]


def _named_by(make: Callable[[str], str], own: Iterable[str]) -> dict[str, str]:
    """Service name → the one of `own` that `make(name)` is, or is a directory above."""
    prefix, suffix = make(_MARK).split(_MARK)
    head = suffix.split("/")[0]
    out = {}
    for thing in own:
        first = thing[len(prefix):].split("/")[0] if thing.startswith(prefix) else ""
        if first.endswith(head) and len(first) > len(head):
            out[first[: len(first) - len(head)]] = thing
    return out


@lru_cache(maxsize=1)
def reserved_service_names() -> dict[str, str]:
    """Every valid service name that dynia already uses, → what it would collide with."""
    found: dict[str, str] = {}
    for name, proxy in _named_by(backend_name, own_proxies()).items():
        found.setdefault(name, f"its HAProxy backend would be dynia's own {proxy}")
    for path_of in service_paths():
        for name, path in _named_by(partial(_owned, path_of), own_paths()).items():
            found.setdefault(name, f"its {path_of.__name__} would be dynia's own {path}")
    for name, unit in _named_by(compose_project, own_units()).items():
        found.setdefault(name, f"its compose project would be named like dynia's own unit {unit}")
    return {n: why for n, why in sorted(found.items()) if is_name(n)}
