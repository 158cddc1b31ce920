"""The record of one-off tasks (`dynia run`) and release commands, kept with the cluster's
state: the `runs` output of the stack <cluster>-runs (stacks/runs.py), so every machine with
the spec, the credentials and the state backend lists the same records. The last KEEP are kept.

Two records written at the same moment from two machines are ordered by the backend's lock;
each update exports the records its machine read just before it, so the earlier of the two can
be dropped by the later one (a run is still what it was; only its line in the list goes)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import DyniaError
from .automation import stack_outputs
from .failures import pulumi_failed

KEEP = 200
STACK = "runs"


class RunRecord(BaseModel):
    """One run: when, who, what, where, how it ended. `command` and `who` are the operator's
    text (shown escaped); `exit` is None when the node never said (the connection was lost)."""
    model_config = ConfigDict(extra="forbid", frozen=True)
    time: str = Field(max_length=40)             # ISO 8601, UTC, when it started
    who: str = Field(max_length=256)             # $USER@host of the machine that ran it
    kind: Literal["run", "release"]
    service: str = Field(max_length=64)
    node: str = Field(max_length=64)
    command: list[str] = Field(max_length=64)
    exit: int | None
    seconds: float


def read(engine) -> list[RunRecord]:
    """The records the state holds, oldest first; none before the first (no stack yet)."""
    from pulumi.automation import StackNotFoundError  # only here: commands that never read it load no Pulumi

    try:
        outputs = stack_outputs(engine.stack(STACK))
    except StackNotFoundError:
        return []
    value = getattr(outputs.get("runs"), "value", None)
    return _checked(value if value is not None else [])


def _checked(value: Any) -> list[RunRecord]:
    shown = f"the stack {STACK}'s output `runs`"
    try:
        if not isinstance(value, list):
            raise ValueError("not a list")
        return [RunRecord.model_validate(v) for v in value]
    except (ValueError, ValidationError) as exc:
        raise DyniaError("state", f"{shown} is damaged: {str(exc).splitlines()[0][:200]}",
                         "it is only a record: remove the stack to start over "
                         "(pulumi stack rm <cluster>-runs), nothing else depends on it") from None


def keep(engine, record: RunRecord) -> None:
    """Append `record` to the state's list (the last KEEP stay): one update of the runs stack."""
    records = [r.model_dump() for r in read(engine)] + [record.model_dump()]
    engine.runs_to_keep = records[-KEEP:]
    try:
        engine.stack(STACK).up(color="never")
    except DyniaError:
        raise
    except Exception as exc:
        raise pulumi_failed(f"recording the run in the stack {engine.cluster.name}-{STACK}", exc) from None
    finally:
        engine.runs_to_keep = None
