"""dynia edge: the edge data dynia renders into every node's firewall (Cloudflare's ranges)."""
from __future__ import annotations

import typer

from .common import JSON_OPT, emit_json, next_step, say

app = typer.Typer(help="The edge data dynia renders into the nodes' firewall (Cloudflare's ranges).",
                  no_args_is_help=True, rich_markup_mode=None)


@app.command("refresh-ranges")
def refresh_ranges_cmd(dry_run: bool = typer.Option(False, "--dry-run", help="Show what changed; write nothing."),
                       as_json: bool = JSON_OPT) -> None:
    """Fetch Cloudflare's current edge ranges from its API (GET /ips, no token), write them
    dated today into dynia's data file (atomically) and print what changed; `dynia plan` then
    shows the firewall change on every node."""
    import datetime as dt

    from ..operations.edge_ranges import refresh

    out = refresh(dt.datetime.now(dt.timezone.utc).date(), write=not dry_run)
    if as_json:
        emit_json({**out.as_dict(), "written": not dry_run})
        return
    if not out.changed:
        say(f"Cloudflare's ranges are unchanged since {out.taken_before}"
            + ("" if dry_run else f"; {out.path} now says they were checked {out.taken}"))
        return
    for cidr in out.added:
        say(("+ ", "green"), cidr)
    for cidr in out.removed:
        say(("- ", "red"), cidr)
    say(f"{len(out.added)} range(s) added, {len(out.removed)} removed since {out.taken_before}"
        + (" (dry run: nothing written)" if dry_run else f"; written to {out.path}"))
    if not dry_run:
        next_step("dynia plan")   # the firewall file changes on every node of an origin-mode cluster
