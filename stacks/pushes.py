"""Shared by the infra and apps phases: render with the provisioned addresses, build each
node's bundles, and chain the pushes so each waits for the previous node's gate."""
from __future__ import annotations

import pulumi

from dynia.bundle import BOOTSTRAP
from dynia.components.node_config import NodeConfig, NodeConfigArgs

from .inputs import PhaseInputs


def bundles_output(inputs: PhaseInputs, cluster, provision: pulumi.StackReference) -> pulumi.Output:
    """Output[{node: {layer: {"payload", "digest"}}}], secret (filled slots are inside)."""
    from dynia import cache
    from dynia import secrets as local_secrets
    from dynia.bundle import build_bundles
    from dynia.cache import ClusterCache
    from dynia.render import Inventory, render

    def build(values):
        nodes, reserved_ip, origin_pem, token = values
        # Stack outputs are input like any file: an address lands in haproxy.cfg and notify.sh.
        outputs = ClusterCache.of(cluster).check_outputs(
            {"nodes": {n: {k: v.get(k) for k in ("private_ip", "public_ip")} for n, v in nodes.items()},
             "reserved_ip": reserved_ip},
            "the provision phase's outputs", "check the provision stack (`pulumi stack output`)")
        inventory = Inventory({n: (a.private_ip, a.public_ip) for n, a in outputs.nodes.items()},
                              outputs.reserved_ip, planned=False)
        rendering = render(cluster, inventory=inventory, applied=cache.applied(cluster), holder=inputs.holder)
        slots = local_secrets.slot_values(cluster.project, cluster.name, origin_pem.encode(), token or None)
        out = {}
        for node in cluster.spec.nodes:
            out[node] = {layer: {"payload": b.payload().decode(), "digest": b.digest}
                         for layer, b in build_bundles(cluster.spec, rendering, node, slots).items()}
        return out

    return pulumi.Output.secret(pulumi.Output.all(
        provision.get_output("nodes"), provision.get_output("reservedIp"),
        provision.require_output("originPem"), inputs.provider_token or "").apply(build))


def prepare(inputs: PhaseInputs):
    """What infra and apps both start from: the cluster, provision's outputs, the bundles, the order."""
    from dynia.planner import rolling_order

    cluster = inputs.load()
    provision = inputs.reference("provision")
    bundles = bundles_output(inputs, cluster, provision)
    return cluster, provision, bundles, rolling_order(cluster.spec.nodes, cluster.spec.master_node, inputs.holder)


def chain(inputs: PhaseInputs, provision: pulumi.StackReference, bundles: pulumi.Output, layer: str,
          order: list[str], after: pulumi.Resource | None) -> list[NodeConfig]:
    """One push per node in rolling order, each depending on the previous node's gate."""
    gates: list[NodeConfig] = []
    nodes = provision.get_output("nodes")
    for node in order:
        previous = gates[-1] if gates else after
        gate = NodeConfig(f"{node}-{layer.replace(':', '-')}", NodeConfigArgs(
            node=node, layer=layer, host=nodes.apply(lambda n, node=node: n[node]["public_ip"]),
            private_key=inputs.ssh_private_key,
            payload=bundles.apply(lambda b, node=node: b[node][layer]["payload"]),
            digest=bundles.apply(lambda b, node=node: b[node][layer]["digest"]),
            command=BOOTSTRAP, after=[previous] if previous else []),
            opts=pulumi.ResourceOptions(depends_on=[previous] if previous else []))
        gates.append(gate)
    return gates
