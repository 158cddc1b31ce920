"""The certificate slot alone, node by node: how `dynia cert renew` rolls a certificate while
other changes to the cluster are pending.

An unattended renewal must neither wait for someone to run `dynia up` (every dynia upgrade
changes a push, and Let's Encrypt no longer warns by e-mail before expiry) nor apply a change
nobody reviewed. So it pushes one partial infra bundle per node (dynia.render.bundle.certificate_bundle:
the certificate file only, HAProxy validated and reloaded, the infra gate, a failed gate
rolled back by the apply script), in rolling order, over dynia's own SSH sessions. The
certificate is already durable in the provision stack's config (Engine.keep_acme); the next
`dynia up` stores it as the `acme` output and its infra pushes then find the file unchanged.
"""
from __future__ import annotations

from typing import Callable

from ..engine.session import targets
from ..errors import DyniaError
from ..nodes.gather import vip_holder
from ..nodes.push import push
from ..nodes.push_errors import APPLY_EXIT
from ..planner import rolling_order
from ..render.bundle import certificate_bundle
from ..render.rendered import render_cluster


def roll_slot(cluster, pem: str, only: set[str] | None = None,
              on_progress: Callable[[str], None] = lambda line: None) -> tuple[str, ...]:
    """Push the certificate `pem` to every provisioned node (or those in `only`), BACKUP nodes
    first and the VIP holder last; stops at the first node that fails. Returns the nodes pushed."""
    spec = cluster.spec
    hosts = {t.node: t for t in targets(cluster)}
    if not hosts:
        raise DyniaError("state", f"cluster {cluster.name} has no node addresses yet (never provisioned)",
                         "run `dynia up` first")
    holder = vip_holder(list(hosts.values()))
    rendering = render_cluster(cluster, holder=holder)
    order = rolling_order(spec.nodes, spec.master_node, holder, {"nodes": {n: {} for n in spec.nodes}})
    resume = f"dynia cert renew --cluster {cluster.name}"
    pushed: list[str] = []
    for node in order:
        if node not in hosts or (only is not None and node not in only):
            continue
        on_progress(f"{node}: certificate")
        try:
            applied = push(hosts[node], certificate_bundle(spec, rendering, node, pem.encode()))
        except DyniaError as exc:
            raise DyniaError(exc.kind, f"certificate roll stopped at {node}: {exc.message}", exc.hint,
                             resume=resume) from None
        if not applied.ok:
            kind, what = APPLY_EXIT.get(applied.exit_status, ("sync", f"the apply failed (exit {applied.exit_status})"))
            done = f"{', '.join(pushed)} serve{'s' if len(pushed) == 1 else ''} the new certificate" if pushed \
                else "no node was changed"
            raise DyniaError(kind, f"certificate roll stopped at {node}: {what}: {applied.reason}",
                             f"fix the cause on {node}, then rerun; {done}, later nodes were not touched "
                             "(the certificate is kept with the cluster's state: nothing is ordered again)",
                             resume=resume)
        on_progress(f"{node}: certificate {applied.report.get('status', 'done')}")
        pushed.append(node)
    return tuple(pushed)
