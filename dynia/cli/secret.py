"""dynia secret: a service's secrets (values in .dynia/secrets, names in the spec). No value is
ever printed: `list` shows names, sources and hashes."""
from __future__ import annotations

import sys

import typer

from .common import CLUSTER_OPT, JSON_OPT, cluster_name, emit_json, next_step, project, say
from .service import SERVICE_ARG

app = typer.Typer(help="A service's secrets: set, unset, list (values never shown).", no_args_is_help=True,
                  rich_markup_mode=None)

NAME_ARG = typer.Argument(..., help="The secret's name: /run/secrets/NAME in the service's containers.")


def _value() -> bytes:
    """stdin when it is not a terminal (one trailing newline dropped), else a prompt without echo."""
    from ..state.app_secrets import MAX_VALUE, one_line_trimmed

    if not sys.stdin.isatty():
        return one_line_trimmed(sys.stdin.buffer.read(MAX_VALUE + 2))
    import getpass

    return getpass.getpass("value (not shown): ").encode()


@app.command("set")
def set_cmd(ctx: typer.Context, service: str = SERVICE_ARG, name: str = NAME_ARG,
            cluster: str = CLUSTER_OPT) -> None:
    """Store NAME's value for SERVICE (from stdin, or typed at a prompt without echo) in
    .dynia/secrets (0600), and name it in the spec; the next deploy rolls only SERVICE."""
    from ..spec.editing import set_app_secret

    name_ = cluster_name(ctx, cluster)
    step = set_app_secret(project(ctx), name_, service, name, _value())
    say(f"set secret {service}/{name} (value not shown) in .dynia/secrets; clusters/{name_}.yaml names it")
    next_step(step)


@app.command("unset")
def unset_cmd(ctx: typer.Context, service: str = SERVICE_ARG, name: str = NAME_ARG,
              cluster: str = CLUSTER_OPT) -> None:
    """Remove NAME from SERVICE: from the spec, and its stored value."""
    from ..spec.editing import unset_app_secret

    name_ = cluster_name(ctx, cluster)
    step = unset_app_secret(project(ctx), name_, service, name)
    say(f"unset secret {service}/{name}: removed from clusters/{name_}.yaml and .dynia/secrets")
    next_step(step)


@app.command("list")
def list_cmd(ctx: typer.Context, cluster: str = CLUSTER_OPT, as_json: bool = JSON_OPT) -> None:
    """Every service's secrets: name, source (store, env:VAR, command:PROGRAM) and the sha256 of
    the value this machine would push (never the value)."""
    from ..state.app_secrets import listing
    from ..spec.load import load_cluster

    name_ = cluster_name(ctx, cluster)
    rows = listing(project(ctx), name_, load_cluster(project(ctx), name_).spec.services)
    if as_json:
        emit_json({"cluster": name_, "secrets": [r.as_dict() for r in rows]})
        return
    if not rows:
        say(f"cluster {name_}: no service has secrets")
        return
    for r in rows:
        say(f"{r.service}/{r.name}  {r.source}  ",
            (f"sha256:{r.sha256[:16]}", "") if r.sha256 else (f"unavailable: {r.problem}", "red"))
