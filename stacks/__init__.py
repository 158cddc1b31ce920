"""One Pulumi program per phase (installed as dynia.stacks). Imported lazily by the engine."""
from __future__ import annotations

import importlib


def program_module(phase: str):
    """dynia.stacks.<phase>: its `program(inputs)` is the phase's Pulumi program (or the
    releases ledger's: no phase, no resource, one output)."""
    from dynia.phases import PHASES

    if phase not in (*PHASES, "releases", "runs"):  # runs: the record of one-off tasks (stacks/runs.py)
        raise ValueError(f"{phase!r} is not one of {PHASES}, releases or runs")
    return importlib.import_module(f"dynia.stacks.{phase}")
