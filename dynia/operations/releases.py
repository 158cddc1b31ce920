"""Releases: what ran where after each command that changed it, kept in the cluster's state.

A release is recorded after every roll that pushes services (`up`, `service deploy`, `route
bind --apply`, …) once every node passed its gates, and only when what runs changed since the
last one: per service the compose file's hash, the digest each image reference was resolved to
(dynia.engine.pins), and the digest every node's containers run, read back from the nodes. Beside it:
its id (1, 2, …), the time, who (the CI's identity, else user@host), the project's git commit
and whether the tree was dirty, the spec's hash and the config version.

The ledger is the `releases` output of the cluster's `<cluster>-releases` stack (the engine's
releases/keep_releases): every machine with the state backend reads the same history. It keeps
the last KEEP releases.
"""
from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import os
import socket
import subprocess
from typing import Protocol

from .. import providers
from ..engine.pins import image_references
from ..engine.targets import targets
from ..errors import DyniaError
from ..nodes import facts as F
from ..nodes.gather import gather
from ..render.rendering import spec_hash
from ..spec.image_refs import pinned_digest, resolvable
from ..state import cache
from ..state.cache import ClusterCache

KEEP = 20
# What a CI names as who started the job, before the machine's user (GitHub Actions, GitLab CI).
CI_IDENTITY = (("GITHUB_ACTOR", "GitHub Actions"), ("GITLAB_USER_LOGIN", "GitLab CI"))


class Ledger(Protocol):
    def releases(self) -> list[dict]: ...

    def keep_releases(self, releases: list[dict]) -> None: ...


def who() -> str:
    for env, ci in CI_IDENTITY:
        if os.environ.get(env):
            return f"{os.environ[env]} ({ci})"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def git_state(root) -> dict | None:
    """{"commit", "dirty"} of the project's git checkout; None outside one (or without git)."""
    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain")
    return {"commit": commit.strip(), "dirty": bool(status and status.strip())}


def services_view(cluster, images: dict[str, str], answers: dict, rollback: dict[str, dict] | None = None
                  ) -> dict:
    """service -> {compose (its sha256), content, images: {reference: digest | None}, nodes:
    {node: {container: digest}}, rolledBackTo (a rollback in effect)}: what runs. answers:
    dynia.nodes.gather.NodeFacts by node, with the containers fact; rollback: the services a
    rollback keeps on a release's compose file and digests."""
    refs = image_references(cluster)
    out = {}
    for name in sorted(cluster.spec.services):
        nodes = {}
        for node, answer in sorted(answers.items()):
            if answer.error is not None or "containers" not in answer.facts:
                continue
            nodes[node] = {c["name"]: c.get("digest") for c in answer.facts["containers"] or []
                           if c["service"] == name}
        kept = (rollback or {}).get(name)
        if kept:
            content, pinned, back = kept["content"], dict(kept["images"]), {"rolledBackTo": kept["release"]}
        else:
            content = cluster.compose[name].path.read_bytes().decode()
            pinned, back = {r: images.get(r) or pinned_digest(r) for r in refs.get(name, [])}, {}
        out[name] = {"compose": hashlib.sha256(content.encode()).hexdigest(), "content": content,
                     "images": pinned, "nodes": nodes, **back}
    return out


def build(cluster, command: str, images: dict[str, str], answers: dict, config_version: int,
          now: dt.datetime | None = None, rollback: dict[str, dict] | None = None) -> dict:
    """The release record (without its id: the ledger numbers it)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return {"time": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "who": who(), "command": command,
            "git": git_state(cluster.project.root), "spec": spec_hash(cluster), "configVersion": config_version,
            "services": services_view(cluster, images, answers, rollback),
            "unanswered": sorted(n for n, a in answers.items() if a.error is not None or "containers" not in a.facts)}


def changes_what_runs(release: dict, last: dict | None) -> bool:
    return last is None or release["services"] != last.get("services")


def append(ledger: list[dict], release: dict) -> list[dict]:
    """The ledger with `release` numbered after the last one, the last KEEP kept."""
    ids = [r["id"] for r in ledger if isinstance(r, dict) and isinstance(r.get("id"), int)]
    return (ledger + [{"id": max(ids, default=0) + 1, **release}])[-KEEP:]


def record(ledger: Ledger, cluster, command: str, images: dict[str, str], targets, config_version: int,
           rollback: dict[str, dict] | None = None) -> dict | None:
    """After a roll that pushed services: read what every node runs, and record a release when it
    differs from the last one. The recorded release, or None when nothing that runs changed."""
    answers = gather(targets, [F.containers(providers.of(cluster.spec).profile)], timeout=10.0)
    release = build(cluster, command, images, answers, config_version, rollback=rollback)
    history = ledger.releases()
    if not changes_what_runs(release, history[-1] if history else None):
        return None
    history = append(history, release)
    ledger.keep_releases(history)
    return history[-1]


def listed(history: list[dict], service: str | None = None) -> list[dict]:
    """Newest first; with a service, the releases that changed what it runs (and the first that
    ran it). Without the compose files' contents (the state keeps them for rollbacks; their
    hashes say which one ran)."""
    out, before = [], None
    for r in history:
        mine = (r.get("services") or {}).get(service) if service else None
        if service is None or (mine is not None and mine != before):
            out.append({**r, "services": {n: {k: v for k, v in svc.items() if k != "content"}
                                          for n, svc in (r.get("services") or {}).items()}})
        if service:
            before = mine
    return list(reversed(out))


def in_force(history: list[dict]) -> tuple[dict[str, str], dict[str, dict]]:
    """What the last release runs, as every render on this machine must name it: ({reference:
    digest} its tags resolved to, {service: {release, content, images}} of its rollbacks)."""
    last = history[-1] if history else {}
    services = last.get("services") or {}
    images = {ref: digest for svc in services.values() if not svc.get("rolledBackTo")
              for ref, digest in (svc.get("images") or {}).items() if digest and resolvable(ref)}
    rollback = {name: {"release": svc["rolledBackTo"], "content": svc["content"],
                       "images": {r: d for r, d in (svc.get("images") or {}).items() if d and resolvable(r)}}
                for name, svc in services.items() if svc.get("rolledBackTo")}
    return images, rollback


def history(cluster, engine=None) -> list[dict]:
    """The cluster's releases, oldest first, from its state (any machine with the backend); this
    machine's renders then pin what the last one resolved (dynia.state.cache images.json)."""
    if engine is None:
        # Here only: the engine's module is what a command that reads no state never loads.
        from ..engine.automation import Engine, backend_url, require_cli, require_passphrase

        require_cli()
        require_passphrase(backend_url(cluster))
        engine = Engine(cluster, read_only=True)
    out = engine.releases()
    if out:
        ClusterCache.of(cluster).write_images(*in_force(out))
    return out


def after_roll(engine, phases, command: str) -> dict | None:
    """The release a roll that pushed services leaves (None: it pushed none, or nothing that runs changed)."""
    if "apps" not in phases:
        return None
    cluster = engine.cluster
    return record(engine, cluster, command, engine.pinned_images(), targets(cluster),
                  int(cache.applied(cluster).get("configVersion") or 0), engine.rolled_back())


def rollback_plan(history: list[dict], release: int | None, services: list[str] | None, cluster
                  ) -> tuple[dict[str, dict], list[dict]]:
    """What `dynia rollback` does: ({service: {release, content, images}} the roll renders —
    the rollbacks already in effect for other services kept — and one row per service rolled
    back: from what to what). Every refusal is a typed config error before anything runs."""
    name = cluster.name
    if not history:
        raise DyniaError("state", f"cluster {name} has no release recorded yet",
                         f"`dynia up --cluster {name}` records one after each roll that changes what runs")
    ids = [r.get("id") for r in history]
    if release is None:
        if len(history) < 2:
            raise DyniaError("config", f"cluster {name} has one release ({ids[0]}): nothing before it to roll back to",
                             f"`dynia releases --cluster {name}` lists them")
        target = history[-2]
    else:
        found = [r for r in history if r.get("id") == release]
        if not found:
            raise DyniaError("config", f"cluster {name} has no release {release} (kept: {', '.join(map(str, ids))})",
                             f"`dynia releases --cluster {name}` lists them; the last {KEEP} are kept")
        target = found[0]
    kept = target.get("services") or {}
    wanted = list(services) if services else sorted(s for s in kept if s in cluster.spec.services)
    for s in wanted:
        if s not in cluster.spec.services:
            raise DyniaError("config", f"service {s!r} is not in the spec of {name}: a rollback rolls services "
                             "the spec runs", f"one of: {', '.join(sorted(cluster.spec.services))}")
        if s not in kept or "content" not in kept[s]:
            raise DyniaError("config", f"release {target['id']} does not hold service {s}",
                             f"`dynia releases --service {s} --cluster {name}` lists the releases that ran it")
    _, rollback = in_force(history)
    last = (history[-1].get("services") or {})
    rows = []
    for s in wanted:
        svc = kept[s]
        rollback[s] = {"release": svc.get("rolledBackTo") or target["id"], "content": svc["content"],
                       "images": {r: d for r, d in (svc.get("images") or {}).items() if d and resolvable(r)}}
        now = last.get(s) or {}
        rows.append({"service": s, "release": rollback[s]["release"],
                     "compose": {"from": now.get("compose"), "to": svc.get("compose")},
                     "images": {ref: {"from": (now.get("images") or {}).get(ref), "to": d}
                                for ref, d in sorted({**(now.get("images") or {}), **(svc.get("images") or {})}.items())
                                if ref in (svc.get("images") or {})},
                     "nodes": sorted(now.get("nodes") or cluster.spec.nodes)})
    return rollback, rows
