"""Tab completion of the names a command takes: clusters, services, nodes. Completion runs on
every <TAB>, so each reads only the files it needs and never fails: no answer is an empty list."""
from __future__ import annotations

from pathlib import Path

import typer


def _project(ctx: typer.Context):
    from ..state.store import Project

    directory = ctx.find_root().params.get("directory") or Path(".")
    return Project(Path(directory).resolve())


def _spec(ctx: typer.Context) -> dict:
    """The selected cluster's spec as plain YAML (not validated: completion of a spec being
    fixed still helps)."""
    from ..spec.selection import resolve
    from ..state.store import parse_yaml, read_spec_text

    proj = _project(ctx)
    name = resolve(proj, ctx.params.get("cluster"))
    raw = parse_yaml(read_spec_text(proj, name), f"clusters/{name}.yaml")
    return raw if isinstance(raw, dict) else {}


def clusters(ctx: typer.Context, incomplete: str) -> list[str]:
    try:
        return [n for n in _project(ctx).cluster_names() if n.startswith(incomplete)]
    except Exception:
        return []


def services(ctx: typer.Context, incomplete: str) -> list[str]:
    try:
        return [str(n) for n in (_spec(ctx).get("services") or {}) if str(n).startswith(incomplete)]
    except Exception:
        return []


def nodes(ctx: typer.Context, incomplete: str) -> list[str]:
    try:
        return [str(n) for n in (_spec(ctx).get("nodes") or []) if str(n).startswith(incomplete)]
    except Exception:
        return []
