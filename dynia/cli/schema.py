"""dynia schema: the cluster spec's JSON Schema, for editors."""
from __future__ import annotations

import typer

from .common import emit_json


def register(app: typer.Typer) -> None:
    app.command("schema")(schema_cmd)


def schema_cmd() -> None:
    """Print the cluster spec's JSON Schema (for editor validation)."""
    from ..spec.model import json_schema

    emit_json(json_schema())
