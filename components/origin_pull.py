"""OriginPullCertificate: the cluster's own client certificate for Authenticated Origin Pulls.

Cloudflare offers two independent configurations: global AOP (Cloudflare's shared certificate,
which every Cloudflare customer's zone can make Cloudflare present) and zone-level AOP (a
certificate the zone uploads, presented only for that zone). dynia uses the stricter one: a CA
and a client certificate of the cluster's own, kept in the provision state (the keys are
secrets there), the client certificate uploaded as the zone's AOP certificate (ZoneSettings),
and HAProxy verifying client certificates against this CA alone. (The lab's stand-in is
dynia.origin_pull.make, kept in the operator's .dynia/secrets: no resource to stand in for.)
"""
from __future__ import annotations

import pulumi

# The CA outlives the client certificate by far: HAProxy's trust (the CA on every node) never
# has to change when the client certificate is renewed and re-uploaded.
CA_VALIDITY_HOURS = 20 * 365 * 24
CLIENT_VALIDITY_HOURS = 10 * 365 * 24
# Re-issued (and re-uploaded by the next `dynia up`) within its last year.
CLIENT_EARLY_RENEWAL_HOURS = 365 * 24


class OriginPullCertificate(pulumi.ComponentResource):
    """tls.PrivateKey + tls.SelfSignedCert (the CA) and tls.PrivateKey + tls.CertRequest +
    tls.LocallySignedCert (the client certificate Cloudflare presents). `ca` and `certificate`
    are public; `private_key` (the client's) is a secret."""

    ca: pulumi.Output[str]
    certificate: pulumi.Output[str]
    private_key: pulumi.Output[str]

    def __init__(self, name: str, cluster: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dynia:index:OriginPullCertificate", name, None, opts)
        import pulumi_tls as tls

        child = pulumi.ResourceOptions(parent=self)
        ca_key = tls.PrivateKey(f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        ca = tls.SelfSignedCert(
            f"{name}-ca", private_key_pem=ca_key.private_key_pem, is_ca_certificate=True,
            subject=tls.SelfSignedCertSubjectArgs(organization="dynia", common_name=f"{cluster} origin-pull CA"),
            validity_period_hours=CA_VALIDITY_HOURS, allowed_uses=["cert_signing", "crl_signing"], opts=child)
        key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        csr = tls.CertRequest(
            f"{name}-csr", private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(organization="dynia", common_name=f"{cluster} origin pull"), opts=child)
        cert = tls.LocallySignedCert(
            f"{name}-cert", cert_request_pem=csr.cert_request_pem, ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca.cert_pem, validity_period_hours=CLIENT_VALIDITY_HOURS,
            early_renewal_hours=CLIENT_EARLY_RENEWAL_HOURS, allowed_uses=["digital_signature", "client_auth"],
            opts=child)
        self.ca = ca.cert_pem
        self.certificate = cert.cert_pem
        self.private_key = pulumi.Output.secret(key.private_key_pem)
        self.register_outputs({"ca": self.ca, "certificate": self.certificate})
