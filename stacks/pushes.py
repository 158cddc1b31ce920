"""Shared by the infra and apps phases: render with the provisioned addresses, build each
node's bundles, and chain the pushes so each waits for the previous node's gate."""
from __future__ import annotations

import pulumi

from dynia.nodes.payload import BOOTSTRAP
from dynia.components.node_config import NodeConfig, NodeConfigArgs

from .inputs import PhaseInputs

# What fills the certificate slot in a preview before provision issued one: the preview shows
# the push, nothing is ever sent with it (`up` runs provision first, which issues the real one).
PLANNED_CERTIFICATE = b"# planned: the origin certificate is issued by the provision phase\n"
PLANNED_ORIGIN_PULL_CA = b"# planned: the origin-pull CA is made by the provision phase\n"


def origin_pull_ca(cluster, pull) -> bytes | None:
    """The CA HAProxy verifies origin pulls against: provision's `originPull` output. A preview
    made before provision exported one shows the push with a placeholder (nothing is sent with
    it); an update without it stops with a typed error: pushing no CA would lock Cloudflare out."""
    from dynia.errors import DyniaError
    from dynia.nodes.push_errors import log_typed
    from dynia.tls import proxied

    if not proxied(cluster.spec.tls.mode):
        return None
    ca = pull.get("ca") if isinstance(pull, dict) else None
    if isinstance(ca, str) and "BEGIN CERTIFICATE" in ca:
        return ca.encode()
    if pulumi.runtime.is_dry_run():
        return PLANNED_ORIGIN_PULL_CA
    error = DyniaError("state", f"the provision phase of {cluster.name} exported no origin-pull CA "
                       "(Authenticated Origin Pulls): HAProxy would trust no client certificate",
                       f"run `dynia up --phase provision --cluster {cluster.name}` (it makes the cluster's "
                       "origin-pull certificate and uploads it to the zone), then this phase again")
    log_typed(error)
    raise error


def provisioned_inventory(cluster, nodes, reserved_ip):
    """The addresses to render with from provision's stack outputs (nothing before the first
    provision, no entry for a node added since): dynia.state.cache.merged_inventory, the same merge
    the CLI makes from its cache. Stack outputs are input like any file: an address lands in
    haproxy.cfg and notify.sh, so they are checked first. Returns (inventory, planned nodes)."""
    from dynia.state.cache import ClusterCache, merged_inventory

    known = {n: v for n, v in (nodes if isinstance(nodes, dict) else {}).items()
             if n in cluster.spec.nodes and isinstance(v, dict)}
    outputs = None
    if known:
        cache = ClusterCache.of(cluster)
        outputs = cache.check_outputs(
            {"nodes": {n: {k: v.get(k) for k in ("private_ip", "public_ip")} for n, v in known.items()},
             "reserved_ip": reserved_ip or merged_inventory(cluster, None)[0].reserved_ip},
            "the provision phase's outputs", "check the provision stack (`pulumi stack output`)")
    return merged_inventory(cluster, outputs)


def stamp_versions(bundles: dict, previous: dict | None, version: int) -> None:
    """Give each bundle the config version its layer was last applied with when its content
    is unchanged (the payload, hence the push, stays exactly as it was), else `version`.
    `previous` is this phase stack's last `layers` output: {node: {layer: {digest, version}}}."""
    previous = previous if isinstance(previous, dict) else {}
    for node, layers in bundles.items():
        for layer, b in layers.items():
            before = (previous.get(node) or {}).get(layer) or {}
            same = before.get("digest") == b.digest and isinstance(before.get("version"), int)
            b.config_version = before["version"] if same else version


def bundles_output(inputs: PhaseInputs, cluster, provision: pulumi.StackReference) -> pulumi.Output:
    """Output[{node: {layer: {"payload", "digest", "version"}}, "_hosts": {node: host}}], secret
    (filled slots are inside)."""
    from dynia.state import cache
    from dynia.state import secrets as local_secrets
    from dynia.render.bundle import build_bundles, removal_bundle, removed_services
    from dynia.render.rendering import render

    def build(values):
        nodes, reserved_ip, origin_pem, token, stats, pull = values
        inventory, missing = provisioned_inventory(cluster, nodes, reserved_ip)
        if missing:
            pulumi.log.warn(f"planned addresses for {', '.join(missing)}: not provisioned yet "
                            "(the provision phase assigns the real ones before any push)")
        # The digests this roll resolved (the engine's, once per command), else the release in force.
        images = inputs.images if inputs.images is not None else cache.images(cluster)
        rollback = inputs.rollback if inputs.rollback is not None else cache.rollback(cluster)
        rendering = render(cluster, inventory=inventory, applied=cache.applied(cluster), holder=inputs.holder,
                           images=images, rollback=rollback)
        pem = origin_pem.encode() if origin_pem else (PLANNED_CERTIFICATE if missing else b"")
        slots = local_secrets.slot_values(cluster.project, cluster.name, pem or None, token or None,
                                          credentials=stats or None, registries=cluster.spec.registries,
                                          origin_pull_ca=origin_pull_ca(cluster, pull),
                                          services=cluster.spec.services)
        built = {node: build_bundles(cluster.spec, rendering, node, slots, holder=inputs.holder)
                 for node in cluster.spec.nodes}
        removals = removed_services(cluster.spec, inputs.previous_layers)
        for node in cluster.spec.nodes:
            for service in removals:
                b = removal_bundle(cluster.spec, node, service, rendering.config_version)
                built[node][b.layer] = b
        stamp_versions(built, inputs.previous_layers, rendering.config_version)
        out = {node: {layer: {"payload": b.payload().decode(), "digest": b.digest, "version": b.config_version,
                              "removal": not b.files and bool(b.remove)}
                      for layer, b in layers.items()} for node, layers in built.items()}
        out["_hosts"] = {n: inventory.ssh_host(n) for n in cluster.spec.nodes}
        # The host key each push pins (provision's `nodes` output; none for a planned node).
        out["_host_keys"] = {n: ((nodes or {}).get(n) or {}).get("host_key") if isinstance(nodes, dict) else None
                             for n in cluster.spec.nodes}
        return out

    return pulumi.Output.secret(pulumi.Output.all(
        provision.get_output("nodes"), provision.get_output("reservedIp"),
        provision.get_output("originPem"), inputs.provider_token or "",
        # provision keeps them (the same on every machine); before the first provision, the engine's
        pulumi.Output.all(provision.get_output("statsCredentials"), inputs.stats_credentials or {})
        .apply(lambda v: v[0] or v[1]), provision.get_output("originPull")).apply(build))


def export_layers(bundles: pulumi.Output, gates: list[NodeConfig]) -> None:
    """{node: {layer: {digest, version}}} of the layers this phase pushed (`gates`: every push of
    the run, the phase's own layers only): what the next run of this phase stamps versions from,
    which services it finds removed and which nodes it has never pushed (they roll last). A
    removal's layer is left out: once pushed, the service is gone and the next run neither
    pushes nor removes it again.

    The value resolves only once every push of this run passed its gate (`gates`: all of
    them). What Pulumi records on a failed update: since CLI v3.112 (pulumi/pulumi#14621,
    fixed by #15754) the engine keeps every stack output the program did not register and
    takes those it did. The Python SDK registers all of a stack's outputs in one call once
    they resolve, and a failed push rejects its outputs: with this dependency nothing is
    registered, so `layers` (and the phase's other outputs) stay those of the last update
    that passed, and a pending removal or a new node's place at the end of the roll is
    carried to the rerun. Computed from the bundles alone, it would resolve before the first
    push and be recorded even when the roll failed half-way."""
    pushed = {(g.node, g.layer) for g in gates}

    def layers(values):
        built = values[0]
        return {n: {layer: {"digest": v["digest"], "version": v["version"]}
                    for layer, v in node_layers.items() if (n, layer) in pushed and not v.get("removal")}
                for n, node_layers in built.items() if not n.startswith("_")}

    pulumi.export("layers", pulumi.Output.all(bundles, *[g.report for g in gates]).apply(layers))


def pinned_host_key(cluster: str, bundles: dict, node: str) -> str | None:
    """The host key a push to `node` pins: provision's record of it. A push never connects
    unpinned: without one the update stops with a typed error (a preview, which connects to
    nothing, shows the push without it: e.g. a node provision has not created yet)."""
    from dynia.errors import DyniaError
    from dynia.nodes.push_errors import log_typed

    key = bundles["_host_keys"].get(node)
    if key or pulumi.runtime.is_dry_run():
        return key
    error = DyniaError("state", f"the provision phase recorded no SSH host key for node {node}: "
                       "a push never connects to a node it cannot verify",
                       f"run `dynia up --phase provision --cluster {cluster}` (it records every node's "
                       "host key), then this phase again")
    log_typed(error)
    raise error


def prepare(inputs: PhaseInputs):
    """What infra and apps both start from: the cluster, provision's outputs, the bundles, the order.
    Each phase exports its `layers` itself (export_layers) once it has chained every push."""
    from dynia.planner import rolling_order

    cluster = inputs.load()
    provision = inputs.reference("provision")
    bundles = bundles_output(inputs, cluster, provision)
    # Nodes this phase's stack has never pushed go last (after the holder): the record travels
    # with the state, so every machine rolls a node add in the same safe order.
    pushed = {"nodes": inputs.previous_layers} if isinstance(inputs.previous_layers, dict) else None
    return cluster, provision, bundles, rolling_order(cluster.spec.nodes, cluster.spec.master_node, inputs.holder,
                                                      pushed)


def chain(inputs: PhaseInputs, provision: pulumi.StackReference, bundles: pulumi.Output, layer: str,
          order: list[str], after: pulumi.Resource | None) -> list[NodeConfig]:
    """One push per node in rolling order, each depending on the previous node's gate."""
    gates: list[NodeConfig] = []
    for node in order:
        previous = gates[-1] if gates else after
        gate = NodeConfig(f"{node}-{layer.replace(':', '-')}", NodeConfigArgs(
            node=node, layer=layer,
            # The host is not a secret (the bundles are): unwrap it so the connection shows it.
            host=pulumi.Output.unsecret(bundles.apply(lambda b, node=node: b["_hosts"][node])),  # type: ignore[misc]
            host_key=pulumi.Output.unsecret(bundles.apply(lambda b, node=node: pinned_host_key(inputs.cluster, b, node))),  # type: ignore[misc]
            private_key=inputs.ssh_private_key,
            payload=bundles.apply(lambda b, node=node: b[node][layer]["payload"]),  # type: ignore[misc]
            digest=bundles.apply(lambda b, node=node: b[node][layer]["digest"]),  # type: ignore[misc]
            command=BOOTSTRAP, after=[previous] if previous else []),
            opts=pulumi.ResourceOptions(depends_on=[previous] if previous else []))
        gates.append(gate)
    return gates
