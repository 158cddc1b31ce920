"""Phase 1: the provider's nodes, the reserved IP (unassigned), the origin certificate. No SSH yet."""
from __future__ import annotations

import dataclasses

import pulumi

from dynia import providers
from dynia.state.cache import HOST_KEY
from dynia.errors import DyniaError
from dynia.planner import rolling_order
from dynia.providers.base import ProvisionPlan
from dynia.render.rendering import cloud_init

from .inputs import PhaseInputs, by_hand_acme_hint, by_hand_credentials_hint


def program(inputs: PhaseInputs) -> None:
    spec = inputs.load().spec
    acme = keep_acme(inputs, spec)  # before any export or resource: a refused by-hand update registers nothing
    keep_stats_credentials(inputs)
    provider = providers.of(spec)
    volumes = provider.data_volumes(inputs, spec)
    plan = dataclasses.replace(provision_plan(inputs, provider, spec), after=tuple(volumes.values()))
    nodes, reserved_ip = provider.provision(inputs, spec, plan)
    pulumi.export("nodes", {n: o.apply(node_output) for n, o in nodes.items()})
    if volumes:
        # What each data volume is as created (its size only ever grows): the next plan checks the spec against it.
        pulumi.export("volumes", {s: v.record for s, v in volumes.items()})
    pulumi.export("reservedIp", reserved_ip)
    # Recorded so a later run can refuse a region change (it would replace every droplet).
    pulumi.export("region", spec.provider.region)
    pulumi.export("originPem", certificate(inputs, provider, spec, acme))
    # Public: the CA every node's HAProxy trusts for origin pulls, and the client certificate
    # the zone presents (infra verify compares Cloudflare's upload with it). Its key stays a
    # secret of the provider's resources.
    pull = provider.origin_pull(inputs, spec)
    if pull is not None:
        pulumi.export("originPull", pull)


def provision_plan(inputs: PhaseInputs, provider, spec) -> ProvisionPlan:
    """What the provider creates the nodes with: the rolling order (a resize reaches one droplet
    at a time), each node's cloud-init, the host keys pinned on first use."""
    image = spec.provider.image
    return ProvisionPlan(
        order=rolling_order(spec.nodes, spec.master_node, inputs.holder),
        user_data=lambda node, private, public: cloud_init(spec.name, node, image,
                                                           (private, public) if private and public else None),
        first_use_host_keys=first_use_host_keys() if provider.first_use_host_keys else {})


def first_use_host_keys() -> dict[str, str]:
    """{node: "ssh-ed25519 AAAA…"}: the host keys pinned on first use for droplets created
    before dynia pinned host keys (the provision stack's config `dynia:hostKeys`, which the
    engine sets from the state's earlier outputs, or from the node once, on first use)."""
    value = pulumi.Config("dynia").get_object("hostKeys") or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) and HOST_KEY.fullmatch(v) for v in value.values()):
        raise DyniaError("state", "the provision stack's config dynia:hostKeys is not {node: \"ssh-ed25519 …\"}",
                         "remove it (pulumi config rm dynia:hostKeys) and rerun `dynia up --phase provision`")
    return value


def node_output(v) -> dict:
    """One node's entry of the `nodes` output from the provider's (public_ip, private_ip, id,
    host_key, host_key_source): the host key is public (what every connection pins), never
    the private half."""
    out = {"public_ip": v[0], "private_ip": v[1], "droplet_id": str(v[2])}
    if len(v) > 3 and v[3]:
        out["host_key"], out["host_key_source"] = v[3], v[4]
    if len(v) > 5 and v[5]:
        out["size"] = v[5]   # as the state records it: what `plan` compares with the spec's
    return out


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


def certificate(inputs: PhaseInputs, provider, spec, acme):
    """Output[str], secret: what fills the origin certificate's slot (HAProxy's PEM), which infra
    pushes node by node through the apply protocol. origin mode: the provider's Origin CA
    certificate. letsencrypt: the ACME state's certificate (dynia.operations.certs), ordered outside Pulumi
    by `dynia cert provision|renew` and `dynia up`; no Origin CA certificate is created."""
    from dynia.tls import uses_acme

    if not uses_acme(spec.tls.mode):
        return provider.origin_pem(inputs.project, spec)
    return pulumi.Output.secret(pulumi.Output.from_input(acme).apply(lambda v: v["pem"]))


def keep_acme(inputs: PhaseInputs, spec):
    """The ACME state (account key, certificate), kept as the secret `acme` output like the
    stats credentials: an update that did not export it would lose the account and the
    certificate. The engine passes it on every run (Engine.acme_state); with none yet in
    letsencrypt mode it passes the self-signed placeholder HAProxy binds 443 with until the
    first order. A by-hand update of a letsencrypt cluster without `dynia:acme` is refused
    (a preview warns); programs run without the engine (lab tests) make a placeholder here."""
    from dynia.operations.certs import placeholder_state
    from dynia.nodes.push_errors import log_typed
    from dynia.tls import uses_acme

    if inputs.acme is not None:
        pulumi.export("acme", pulumi.Output.secret(inputs.acme))
        return inputs.acme
    if not uses_acme(spec.tls.mode):
        return None
    if inputs.by_hand:
        message = (f"the ACME state of {inputs.cluster} is not given: this update would drop the provision "
                   "stack's acme output (the account key and the certificate every node serves)")
        if pulumi.runtime.is_dry_run():
            pulumi.log.warn(f"{message}; `pulumi up` refuses it. To keep it: {by_hand_acme_hint(inputs.cluster)}")
        else:
            error = DyniaError("state", message, by_hand_acme_hint(inputs.cluster))
            log_typed(error)
            raise error
    state = placeholder_state(spec).to_dict()
    pulumi.export("acme", pulumi.Output.secret(state))
    return state
