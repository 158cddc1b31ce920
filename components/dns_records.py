"""DnsRecords: the Cloudflare records of one service, created only after its gates pass."""
from __future__ import annotations

from dataclasses import dataclass, field

import pulumi



@dataclass
class DnsRecordsArgs:
    zone: str
    domains: list[str]
    address: pulumi.Input[str]           # the reserved IP
    gates: list[pulumi.Resource]         # every node's gate of the service
    proxied: bool = True                 # origin mode: Cloudflare in front
    cluster: str | None = None           # whose records (their comment); None: this stack's cluster
    # Names this component had under services since renamed (e.g. ["shop-web-dns"]): a record
    # created under one of them before records were named by domain is kept, not recreated.
    renamed_from: list[str] = field(default_factory=list)


def record_name(domain: str) -> str:
    """A record's resource name: its domain, never its service. A service renamed with the same
    domain (web → site) then keeps the same record (an update at most), where a name by
    service made Pulumi create the new record before deleting the old one, which Cloudflare
    refuses (a record of that name exists)."""
    return f"dns-{domain}"


def legacy_record_name(component: str, zone: str, domain: str) -> str:
    """The name records had before record_name: `<cluster>-<service>-dns-<label>`."""
    label = "@" if domain == zone else domain[: -len(zone) - 1]
    return f"{component}-{label.replace('@', 'apex').replace('.', '-')}"


class DnsRecords(pulumi.ComponentResource):
    """One A record per domain, pointing at the reserved IP.

    Cloudflare refuses to create a record whose name already exists, and dynia never asks it
    to overwrite: a record dynia does not own stops the deploy instead of being replaced.

    Records are named by domain (record_name). Stacks whose records still carry the name by
    service find them through `aliases` (the same parent type, so the alias is that old URN):
    Pulumi adopts them in place — no create, no delete, nothing sent to Cloudflare.
    """

    def __init__(self, name: str, args: DnsRecordsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dynia:index:DnsRecords", name, None, opts)
        import pulumi_cloudflare as cloudflare

        from dynia.providers.cloudflare_api import managed_comment

        # The stack is `<cluster>-apps` (stacks/inputs.py PhaseInputs.stack_name).
        cluster = args.cluster or pulumi.get_stack().rsplit("-", 1)[0]
        zone_id = cloudflare.get_zone_output(filter={"name": args.zone},  # type: ignore[arg-type]  # the Dict form
                                             opts=pulumi.InvokeOutputOptions(parent=self)).id
        self.records = []
        for domain in args.domains:
            # Ours to create only if no other address record has the name (checked in the
            # preview too, so `dynia plan` says it): the record's content waits for the check.
            address = pulumi.Output.all(args.address, self._no_conflict(cloudflare, zone_id, domain, cluster,
                                                                        args.address)).apply(lambda v: v[0])
            # A child's URN carries its parent's type, not its parent's name: every alias below
            # (this component's old name, or a renamed service's) resolves under this parent.
            aliases = [pulumi.Alias(name=legacy_record_name(component, args.zone, domain))
                       for component in [name, *args.renamed_from]]
            self.records.append(cloudflare.DnsRecord(
                record_name(domain), zone_id=zone_id, name=domain,
                # The comment names the cluster: a record created before it did (the legacy
                # comment) is updated in place, nothing recreated.
                type="A", content=address, proxied=args.proxied, ttl=1, comment=managed_comment(cluster),
                opts=pulumi.ResourceOptions(parent=self, depends_on=args.gates, aliases=aliases)))
        self.register_outputs({"domains": args.domains})

    def _no_conflict(self, cloudflare, zone_id, domain: str, cluster: str, address) -> pulumi.Output:
        """Output[True] once Cloudflare has no A/AAAA/CNAME for `domain` this cluster does not own
        (cloudflare_api.owns: its own comment, or the legacy one on a record pointing at its
        reserved IP — read only when such a record exists, so a first plan still checks);
        otherwise a typed `dns` error (logged with its hint, then raised: the program stops
        before this record is created, and the engine reads the kind back from the log).

        Why an invoke here and not a preflight in the engine: it runs in the same program that
        creates the record, with the provider's credentials, in every preview and update —
        `dynia plan`, `dynia up` and a by-hand `pulumi up` alike — and reads the zone as it is
        right before the create, not a minute earlier."""
        from dynia.nodes.push_errors import log_typed
        from dynia.providers.cloudflare_api import LEGACY_MANAGED, DnsRecord, conflict_error, conflicts

        found = cloudflare.get_dns_records_output(zone_id=zone_id, name={"exact": domain}, max_items=100,
                                                  opts=pulumi.InvokeOutputOptions(parent=self))

        def check(result):
            seen = [DnsRecord(str(getattr(r, "name", "") or ""), str(getattr(r, "type", "") or ""),
                              str(getattr(r, "content", "") or ""), getattr(r, "proxied", None) is True,
                              str(getattr(r, "comment", "") or ""))
                    for r in (getattr(result, "results", None) or [])]
            others = conflicts(seen, domain, cluster)
            if others and all(r.comment == LEGACY_MANAGED for r in others):
                return pulumi.Output.from_input(address).apply(lambda ip: decide(conflicts(seen, domain, cluster, ip)))
            return decide(others)

        def decide(others):
            if others:
                error = conflict_error(domain, others)
                log_typed(error, self)
                raise error
            return True

        return found.apply(check)
