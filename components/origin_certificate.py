"""OriginCertificate: the TLS certificate HAProxy serves, for *.domain and the apex."""
from __future__ import annotations

import pulumi

# Cloudflare Origin CA validities are fixed choices (days); the longest one.
VALIDITY_DAYS = 5475


class OriginCertificate(pulumi.ComponentResource):
    """tls.PrivateKey + tls.CertRequest + cloudflare.OriginCaCertificate (origin mode), or a
    self-signed certificate for the local provider. `pem` (certificate + key) is a secret."""

    pem: pulumi.Output[str]

    def __init__(self, name: str, domain: str, local: bool = False, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dynia:index:OriginCertificate", name, None, opts)
        import pulumi_tls as tls

        child = pulumi.ResourceOptions(parent=self)
        key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        hostnames = [f"*.{domain}", domain]
        if local:
            cert = tls.SelfSignedCert(
                f"{name}-selfsigned", private_key_pem=key.private_key_pem, dns_names=hostnames,
                subject=tls.SelfSignedCertSubjectArgs(common_name=f"*.{domain}"),
                validity_period_hours=24 * 365, allowed_uses=["digital_signature", "server_auth"], opts=child)
            certificate = cert.cert_pem
        else:
            import pulumi_cloudflare as cloudflare

            csr = tls.CertRequest(f"{name}-csr", private_key_pem=key.private_key_pem, dns_names=hostnames,
                                  subject=tls.CertRequestSubjectArgs(common_name=f"*.{domain}"), opts=child)
            cert = cloudflare.OriginCaCertificate(
                f"{name}-origin-ca", csr=csr.cert_request_pem, hostnames=hostnames, request_type="origin-ecc",
                requested_validity=VALIDITY_DAYS, opts=child)
            certificate = cert.certificate
        self.pem = pulumi.Output.secret(pulumi.Output.concat(certificate, "\n", key.private_key_pem))
        self.register_outputs({"pem": self.pem})
