"""dynia context: which cluster commands act on, and whether this machine can operate it."""
from __future__ import annotations

import typer

from .common import (
    CLUSTER_OPT,
    JSON_OPT,
    cluster_name,
    emit_json,
    next_step,
    project,
    say,
)

app = typer.Typer(help="Select the current cluster and check this machine (doctor).", no_args_is_help=True, rich_markup_mode=None)


@app.command("current")
def current_cmd(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Print the cluster commands act on, and why."""
    from ..errors import DyniaError
    from ..spec.selection import existing

    name: str | None
    source: str | None
    try:
        name, source = existing(project(ctx), None)
    except DyniaError as exc:
        if exc.message != "no cluster selected":  # a bad name or a corrupt context.json is the answer
            raise
        name = source = None
    if as_json:
        emit_json({"currentCluster": name, "source": source})
    elif name:
        say(name, (f"  (from {source})", "dim"))
    else:
        say("no current cluster")
        next_step("dynia context use NAME")


@app.command("use")
def use_cmd(ctx: typer.Context, name: str = typer.Argument(..., help="Cluster name (clusters/NAME.yaml).")) -> None:
    """Make NAME the current cluster."""
    from ..spec.selection import use

    use(project(ctx), name)
    say(f"current cluster: {name}")


@app.command("clear")
def clear_cmd(ctx: typer.Context) -> None:
    """Forget the current cluster."""
    from ..spec.selection import clear

    clear(project(ctx))
    say("current cluster cleared")


@app.command("doctor")
def doctor_cmd(ctx: typer.Context, cluster: str = CLUSTER_OPT, as_json: bool = JSON_OPT) -> None:
    """Checklist: spec valid, tokens present, Pulumi CLI and version, SSH key readable."""
    from ..errors import config_error
    from ..operations.doctor import run_checks

    proj = project(ctx)
    try:
        name = cluster_name(ctx, cluster)
    except Exception:  # doctor still reports on the machine without a cluster
        name = None
    checks = run_checks(proj, name)
    failed = [c for c in checks if not c.ok]
    if as_json:
        emit_json({"cluster": name, "ok": not failed, "checks": [c.as_dict() for c in checks]})
    else:
        for c in checks:
            say(("!", "yellow") if c.warning else ("✓", "green") if c.ok else ("✗", "red"), f" {c.name}: {c.detail}")
            if not c.ok or c.warning:
                say(("    fix: ", "dim"), c.fix)
    if failed:
        hint = failed[0].fix if len(failed) == 1 else "apply each fix above, then run `dynia context doctor` again"
        raise config_error(f"doctor: {len(failed)} of {len(checks)} checks failed ({', '.join(c.name for c in failed)})",
                           hint)
