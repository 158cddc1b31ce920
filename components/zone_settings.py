"""ZoneSettings: the Cloudflare zone settings the design depends on, set by the provision phase."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

# "strict": Cloudflare connects to the origin over HTTPS and checks its certificate (the Origin
# CA one). Under "flexible" it connects to port 80, HAProxy answers 301 → https, and the
# browser loops forever; "full" would accept any certificate (a man in the middle included).
SSL_MODE = "strict"


@dataclass
class ZoneSettingsArgs:
    zone: str
    # Zone-level Authenticated Origin Pulls: the cluster's own client certificate and its key
    # (components.origin_pull.OriginPullCertificate), uploaded as the zone's certificate, which
    # Cloudflare then presents to the origin; HAProxy (origin mode) verifies it against the
    # cluster's CA alone. None (letsencrypt mode: nothing is proxied) uploads nothing.
    origin_pull: tuple[Any, Any] | None = None


class ZoneSettings(pulumi.ComponentResource):
    """SSL mode strict; the cluster's client certificate uploaded for zone-level Authenticated
    Origin Pulls (POST /zones/{id}/origin_tls_client_auth), then the zone-level setting turned on
    (PUT /zones/{id}/origin_tls_client_auth/settings, enabled: true) once it is uploaded.

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
        self.origin_pulls = self.origin_pull_certificate = None
        if args.origin_pull is not None:
            certificate, private_key = args.origin_pull
            # Not retained: a replaced certificate is uploaded first, then the old one deleted
            # (Cloudflare asks to keep only one active); destroy deletes it with the cluster.
            self.origin_pull_certificate = cloudflare.AuthenticatedOriginPullsCertificate(
                f"{name}-origin-pull-certificate", zone_id=zone_id, certificate=certificate,
                private_key=pulumi.Output.secret(private_key), opts=pulumi.ResourceOptions(parent=self))
            self.origin_pulls = cloudflare.AuthenticatedOriginPullsSettings(
                f"{name}-origin-pulls", zone_id=zone_id, enabled=True,
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                    depends_on=[self.origin_pull_certificate])))
        self.register_outputs({"ssl": self.ssl.value,
                               "originPulls": self.origin_pulls.enabled if self.origin_pulls else False})
