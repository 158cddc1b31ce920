"""dynia cert: the origin certificate (provisioned with the provision phase)."""
from __future__ import annotations

import typer

from .common import CLUSTER_OPT, JSON_OPT, emit_json, say
from .engine_common import engine_for, print_rows

app = typer.Typer(help="The Cloudflare Origin CA certificate HAProxy serves.", no_args_is_help=True,
                  rich_markup_mode=None)


@app.command("provision")
def provision_cmd(ctx: typer.Context, dry_run: bool = typer.Option(False, "--dry-run", help="Preview only."),
                  cluster: str = CLUSTER_OPT, as_json: bool = JSON_OPT) -> None:
    """Create or renew the origin certificate (the provision phase); --dry-run previews it."""
    with engine_for(ctx, cluster) as engine:
        if dry_run:
            rows = [r for r in engine.preview(("provision",)) if r.type.startswith(("tls:", "cloudflare:"))]
            if as_json:
                emit_json([r.as_dict() for r in rows])
            else:
                print_rows(rows)
            return
        engine.up(("provision",))
    say("origin certificate provisioned; `dynia infra sync` pushes it to the nodes")
