"""Entry point for the Pulumi CLI (Pulumi.yaml `main: stacks/`): the stack name's suffix
(<cluster>-provision|infra|apps) selects the phase program."""
import pulumi

from dynia.stacks import program_module
from dynia.stacks.inputs import PhaseInputs

program_module(pulumi.get_stack().rsplit("-", 1)[-1]).program(PhaseInputs.from_config())
