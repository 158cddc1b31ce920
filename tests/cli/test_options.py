"""The command line as data: every option and argument explains itself, choices match the spec."""
from __future__ import annotations

import typing

import typer

from dynia.cli.common import Placement
from dynia.cli.main import app
from dynia.spec.model import Service


def _params(command, path=("dynia",)):
    for param in command.params:
        yield " ".join(path), param
    for name, sub in getattr(command, "commands", {}).items():
        yield from _params(sub, (*path, name))


def test_every_option_and_argument_of_every_command_has_help_text():
    missing = [f"{path} {param.opts[0] if param.opts else param.name}"
               for path, param in _params(typer.main.get_command(app))
               if not (getattr(param, "help", None) or "").strip()]
    assert missing == []


def test_placement_choices_are_the_specs():
    assert [p.value for p in Placement] == list(typing.get_args(Service.model_fields["placement"].annotation))
