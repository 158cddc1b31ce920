"""OriginCertificate: the Cloudflare Origin CA certificate HAProxy serves, for *.domain and the apex."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi

# Cloudflare Origin CA validities are fixed choices (days); the longest one.
VALIDITY_DAYS = 5475


@dataclass
class OriginCertificateArgs:
    domain: str


class OriginCertificate(pulumi.ComponentResource):
    """tls.PrivateKey + tls.CertRequest + cloudflare.OriginCaCertificate. `pem` (certificate +
    key) is a secret. (The lab's stand-in is dynia.tls.self_signed_pem, not a resource.)"""

    pem: pulumi.Output[str]

    def __init__(self, name: str, args: OriginCertificateArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dynia:index:OriginCertificate", name, None, opts)
        import pulumi_cloudflare as cloudflare
        import pulumi_tls as tls

        from dynia.tls import hostnames

        child = pulumi.ResourceOptions(parent=self)
        names = hostnames(args.domain)
        key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        csr = tls.CertRequest(f"{name}-csr", private_key_pem=key.private_key_pem, dns_names=names,
                              subject=tls.CertRequestSubjectArgs(common_name=names[0]), opts=child)
        cert = cloudflare.OriginCaCertificate(
            f"{name}-origin-ca", csr=csr.cert_request_pem, hostnames=names, request_type="origin-ecc",
            requested_validity=VALIDITY_DAYS, opts=child)
        self.pem = pulumi.Output.secret(pulumi.Output.concat(cert.certificate, "\n", key.private_key_pem))
        self.register_outputs({"pem": self.pem})
