"""The releases ledger (dynia.releases): a stack without resources whose one output is the
list of the cluster's releases, so every machine with the state backend reads the same history.
The engine passes the whole list it records."""
from __future__ import annotations

import pulumi

from .inputs import PhaseInputs


def program(inputs: PhaseInputs) -> None:
    if inputs.releases is None:
        # A by-hand `pulumi up` of this stack would export nothing, and forget every release.
        from dynia.errors import DyniaError
        from dynia.nodes.push_errors import log_typed

        error = DyniaError("state", f"the stack {inputs.cluster}-releases is written by dynia only (it is the "
                           "cluster's release history)", f"`dynia releases --cluster {inputs.cluster}` reads it")
        log_typed(error)
        raise error
    # Secret: each release keeps its compose files' contents (what a rollback renders again),
    # encrypted in the state like every pushed file.
    pulumi.export("releases", pulumi.Output.secret(inputs.releases))
