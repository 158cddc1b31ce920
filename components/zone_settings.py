"""ZoneSettings: the Cloudflare zone settings the design depends on, set by the provision phase."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi

# "strict": Cloudflare connects to the origin over HTTPS and checks its certificate (the Origin
# CA one). Under "flexible" it connects to port 80, HAProxy answers 301 → https, and the
# browser loops forever; "full" would accept any certificate (a man in the middle included).
SSL_MODE = "strict"


@dataclass
class ZoneSettingsArgs:
    zone: str
    # Authenticated Origin Pulls: Cloudflare presents its origin-pull client certificate to the
    # origin, and HAProxy (origin mode) refuses a TLS client without one. Turned on for the zone
    # only in origin mode: in letsencrypt mode nothing is proxied and HAProxy asks for none.
    origin_pulls: bool = True


class ZoneSettings(pulumi.ComponentResource):
    """SSL mode strict and zone-level Authenticated Origin Pulls on.

    Both are zone-wide (every hostname of the zone, dynia's or not): dynia owns them from the
    first provision on, and a change made by hand in the dashboard is set back by the next
    `dynia up`. Deleting the resources (cluster destroy) leaves the zone as it is (Cloudflare
    has no "unset" for a zone setting; retain_on_delete says so to Pulumi)."""

    def __init__(self, name: str, args: ZoneSettingsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dynia:index:ZoneSettings", name, None, opts)
        import pulumi_cloudflare as cloudflare

        child = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        zone_id = cloudflare.get_zone_output(filter={"name": args.zone},  # type: ignore[arg-type]  # the Dict form
                                             opts=pulumi.InvokeOutputOptions(parent=self)).id
        self.ssl = cloudflare.ZoneSetting(f"{name}-ssl", zone_id=zone_id, setting_id="ssl", value=SSL_MODE,
                                          opts=child)
        self.origin_pulls = None
        if args.origin_pulls:
            self.origin_pulls = cloudflare.AuthenticatedOriginPullsSettings(
                f"{name}-origin-pulls", zone_id=zone_id, enabled=True, opts=child)
        self.register_outputs({"ssl": self.ssl.value,
                               "originPulls": self.origin_pulls.enabled if self.origin_pulls else False})
