"""Phase 1: the provider's nodes, the reserved IP (unassigned), the origin certificate. No SSH yet."""
from __future__ import annotations

import pulumi

from dynia import providers
from dynia.errors import DyniaError

from .inputs import PhaseInputs, by_hand_credentials_hint


def program(inputs: PhaseInputs) -> None:
    spec = inputs.load().spec
    keep_stats_credentials(inputs)
    provider = providers.of(spec)
    nodes, reserved_ip = provider.provision(inputs, spec)
    pulumi.export("nodes", {n: o.apply(lambda v: {"public_ip": v[0], "private_ip": v[1], "droplet_id": str(v[2])})
                            for n, o in nodes.items()})
    pulumi.export("reservedIp", reserved_ip)
    # Recorded so a later run can refuse a region change (it would replace every droplet).
    pulumi.export("region", spec.provider.region)
    pulumi.export("originPem", provider.origin_pem(inputs.project, spec))


def keep_stats_credentials(inputs: PhaseInputs) -> None:
    """Generated once and kept here, with the state: every machine pushes the same credentials.

    An update that did not export them would delete the output, and the next `dynia` run would
    generate new ones (every node's HAProxy stats login changes, every infra push differs). The
    engine always passes them; a by-hand `pulumi up` passes them only from the stack's config
    (PhaseInputs.from_config), so without it the update is refused before any resource is
    registered. A preview changes nothing: it only warns. (Runs that are neither — lab tests
    calling the program directly — keep theirs in the operator's .dynia/secrets.)"""
    if inputs.stats_credentials is not None:
        pulumi.export("statsCredentials", pulumi.Output.secret(inputs.stats_credentials))
        return
    if not inputs.by_hand:
        return
    message = (f"the stats credentials of {inputs.cluster} are not given: this update would drop the "
               "provision stack's statsCredentials output and the next run would generate new ones")
    if pulumi.runtime.is_dry_run():
        pulumi.log.warn(f"{message}; `pulumi up` refuses it. To keep them: {by_hand_credentials_hint(inputs.cluster)}")
        return
    error = DyniaError("state", message, by_hand_credentials_hint(inputs.cluster))
    # The Pulumi CLI prints an exception's message under a traceback, never dynia's hint: say both.
    pulumi.log.error(f"{error.message}\n  hint: {error.hint}")
    raise error
