"""Entry point for the Pulumi CLI (Pulumi.yaml `main: stacks/`): the stack name's suffix
(<cluster>-provision|infra|apps) selects the phase program."""
import pulumi

from dynia.stacks import apps, infra, provision
from dynia.stacks.context import PHASES, PhaseContext

phase = pulumi.get_stack().rsplit("-", 1)[-1]
if phase not in PHASES:
    raise ValueError(f"stack {pulumi.get_stack()!r} does not end in one of {PHASES}")
{"provision": provision, "infra": infra, "apps": apps}[phase].program(PhaseContext.from_config())
