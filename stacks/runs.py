"""The runs stack (<cluster>-runs): no resource, one output, `runs` — the record of every
one-off task (`dynia run`) and release command, kept with the cluster's state so every machine
with the state backend lists the same ones (dynia.engine.records)."""
from __future__ import annotations

import pulumi

from dynia.stacks.inputs import PhaseInputs


def program(inputs: PhaseInputs) -> None:
    if inputs.by_hand or inputs.runs is None:
        # A by-hand `pulumi up` of this stack knows no record: it would export none and lose them all.
        raise RuntimeError("the runs stack is written by dynia only (`dynia run`, release commands); "
                           "read it with `dynia run --list`")
    pulumi.export("runs", inputs.runs)
