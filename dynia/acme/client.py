"""One ACME order (RFC 8555), HTTP-01 and DNS-01, through the certbot project's `acme` library.

dynia orders one certificate for the whole cluster (dynia.operations.certs): the caller says how a key
authorization becomes answerable (`publish`, on every node: whichever node holds the VIP
answers the CA) and how it goes away again (`withdraw`, always); for the names in `dns01`
(no DNS record yet, dynia.acme.dns01) the same through TXT records (`publish_txt`,
`withdraw_txt`). Nothing here knows about nodes, Pulumi or the spec, so the lab's pebble
proof and the unit tests drive it directly.

Secrets: the account key and the certificate key only ever leave as return values. Every
failure is a DyniaError("cert") made from the CA's problem document (public text) or from the
exception's class name, never from a repr that could hold a key.
"""
from __future__ import annotations

import datetime
import logging
import re
from dataclasses import dataclass
from typing import Callable

from ..errors import DyniaError

# The CA's token is base64url (RFC 8555 §8.1): it becomes a file name on every node.
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,256}")
USER_AGENT = "dynia"


@dataclass(frozen=True)
class Issued:
    fullchain_pem: str
    key_pem: str
    not_after: datetime.datetime     # aware (UTC)
    domains: tuple[str, ...]

    def haproxy_pem(self) -> str:
        """The certificate, its chain, then the key: one file, as HAProxy's `crt` reads it."""
        return self.fullchain_pem.rstrip("\n") + "\n" + self.key_pem.rstrip("\n") + "\n"

    def __repr__(self) -> str:  # the key never reaches a log through a repr
        return f"Issued(domains={self.domains!r}, not_after={self.not_after.isoformat()})"


def new_key_pem() -> str:
    """A fresh EC P-256 key (PKCS#8 PEM): the account's and the certificate's."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def certificate_facts(fullchain_pem: str) -> tuple[datetime.datetime, tuple[str, ...]]:
    """(not_after, DNS names) of the leaf certificate of a PEM chain."""
    from cryptography import x509

    leaf = x509.load_pem_x509_certificate(fullchain_pem.encode())
    try:
        names = tuple(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                      .get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    return leaf.not_valid_after_utc, names


def _jwk(account_key_pem: str):
    """The account key as josepy reads it, with the signature algorithm its type needs."""
    import josepy as jose
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        key = serialization.load_pem_private_key(account_key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise DyniaError("cert", "the stored ACME account key cannot be read",
                         "the cluster's ACME state is damaged: `dynia cert provision` with a new account "
                         "(see the README, Let's Encrypt)") from None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = {256: jose.ES256, 384: jose.ES384, 521: jose.ES512}.get(key.curve.key_size)
        if alg is not None:
            return jose.JWKEC(key=key), alg
    if isinstance(key, rsa.RSAPrivateKey):
        return jose.JWKRSA(key=key), jose.RS256
    raise DyniaError("cert", "the stored ACME account key is of an unsupported type",
                     "use an EC P-256/P-384 or RSA key")


def _problem(error) -> str:
    """The CA's problem document as one line: its detail, else its title, else its type."""
    detail = getattr(error, "detail", None) or getattr(error, "title", None) or getattr(error, "typ", None)
    text = str(detail or error.__class__.__name__)
    return " ".join(text.split())[:500]


def _failure(domains: list[str], exc: Exception, directory_url: str, dns01: frozenset[str] = frozenset()) -> DyniaError:
    """Any failure of the order as a typed `cert` error naming the domain and the CA's words."""
    from acme import errors as acme_errors
    from acme import messages

    hint = ("check that every name resolves to the cluster's reserved IP and that port 80 reaches HAProxy "
            "(tls.mode letsencrypt: DNS-only records); nothing was pushed, the nodes keep their certificate")
    if isinstance(exc, acme_errors.ValidationError):
        parts, over_dns = [], []
        for authzr in exc.failed_authzrs:
            name = authzr.body.identifier.value
            errs = [c.error for c in authzr.body.challenges if c.error is not None]
            parts.append(f"{name}: {_problem(errs[0]) if errs else 'authorization ' + str(authzr.body.status)}")
            if name in dns01:
                over_dns.append(name)
        if over_dns:
            hint = (f"{', '.join(over_dns)} (no DNS record yet) was validated over DNS-01: check that the CA can "
                    f"resolve _acme-challenge.{over_dns[0]} in the zone (no CAA record refusing the CA, the zone "
                    "delegated to its DNS provider); nothing was pushed, the nodes keep their certificate")
        return DyniaError("cert", "; ".join(parts) or f"{domains[0]}: validation failed", hint)
    if isinstance(exc, acme_errors.IssuanceError):
        return DyniaError("cert", f"{', '.join(domains)}: {_problem(exc.error)}", hint)
    if isinstance(exc, messages.Error):
        # A problem about one name (rejectedIdentifier, …) carries it in a subproblem.
        subs = [s for s in (getattr(exc, "subproblems", None) or []) if getattr(s, "identifier", None)]
        if subs:
            return DyniaError("cert", "; ".join(f"{s.identifier.value}: {_problem(s)}" for s in subs), hint)
        return DyniaError("cert", f"{', '.join(domains)}: {_problem(exc)}", hint)
    if isinstance(exc, acme_errors.TimeoutError):
        return DyniaError("cert", f"{', '.join(domains)}: the ACME server did not finish the order in time",
                          "run it again; if it keeps timing out, check the ACME server's status page")
    import requests

    if isinstance(exc, requests.exceptions.SSLError):
        return DyniaError("cert", f"{', '.join(domains)}: the ACME directory {directory_url} presented a "
                          "certificate this machine does not trust",
                          "check tls.acme_directory (and this machine's CA certificates)")
    if isinstance(exc, requests.exceptions.RequestException):
        return DyniaError("cert", f"{', '.join(domains)}: the ACME directory {directory_url} did not answer "
                          f"({exc.__class__.__name__})",
                          "check this machine's network and tls.acme_directory; nothing was pushed")
    return DyniaError("cert", f"{', '.join(domains)}: the ACME order failed ({exc.__class__.__name__})", hint)


def issue(domains: list[str], *, directory_url: str, email: str | None, account_key_pem: str | None,
          publish: Callable[[dict[str, str]], None], withdraw: Callable[[list[str]], None],
          verify: bool | str = True, timeout: float = 120.0, dns01: frozenset[str] = frozenset(),
          publish_txt: Callable[[dict[str, str]], None] | None = None,
          withdraw_txt: Callable[[], None] | None = None) -> tuple[Issued, str]:
    """Order one certificate for `domains`. Returns (the certificate, the account key PEM:
    `account_key_pem`, or a new key when None — keep it: it is the account).

    Every name is validated over HTTP-01 but those in `dns01`, validated over DNS-01.
    publish({token: key_authorization}) must make every HTTP-01 challenge answerable at
    http://<domain>/.well-known/acme-challenge/<token> before it returns; withdraw(tokens)
    always runs once something may have been published. publish_txt({"_acme-challenge.<name>":
    value}) must make every TXT visible to the CA before it returns; withdraw_txt() always runs
    after it was called. verify: the directory's TLS (True, or a CA bundle path: pebble's own
    certificate in the lab)."""
    from acme import client, crypto_util

    if not domains:
        raise DyniaError("cert", "no domain to order a certificate for",
                         "bind a service to a domain first (dynia service add … --domain …)")
    domains = list(dict.fromkeys(domains))
    if dns01 and (publish_txt is None or withdraw_txt is None):
        raise ValueError("dns01 names need publish_txt and withdraw_txt")
    account_key_pem = account_key_pem or new_key_pem()
    jwk, alg = _jwk(account_key_pem)
    tokens: list[str] = []
    txt_published = False
    try:
        net = client.ClientNetwork(jwk, alg=alg, verify_ssl=verify,  # type: ignore[arg-type]  # a CA bundle path too (requests)
                                   user_agent=USER_AGENT, timeout=30)
        acme = client.ClientV2(client.ClientV2.get_directory(directory_url, net), net)
        _account(acme, net, email)
        key_pem = new_key_pem()
        order = acme.new_order(crypto_util.make_csr(key_pem.encode(), domains))
        answers, records, pending = _challenges(order, jwk, dns01)
        if records:
            assert publish_txt is not None  # records are dns01's, checked above
            txt_published = True
            publish_txt(dict(records))
        if answers:
            tokens = list(answers)
            publish(dict(answers))
        for challb, response in pending:
            acme.answer_challenge(challb, response)
        # The CA validates from now on; the TXT records' propagation wait has its own bound.
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout)
        order = acme.poll_and_finalize(order, deadline)
        issued = checked_issue(order.fullchain_pem, key_pem, domains)
    except DyniaError:
        raise
    except Exception as exc:  # noqa: BLE001 — every failure of the order is typed here
        raise _failure(domains, exc, directory_url, dns01) from None
    finally:
        if txt_published:
            assert withdraw_txt is not None  # as publish_txt
            try:
                withdraw_txt()
            except Exception as exc:  # noqa: BLE001 — a stale TXT record must not cost the certificate
                logging.getLogger(__name__).warning("ACME TXT records not withdrawn (%s)", exc.__class__.__name__)
        if tokens:
            try:
                withdraw(tokens)
            except Exception as exc:  # noqa: BLE001 — a stale answer must not cost the certificate
                # A leftover token file answers nothing once the CA is done with it.
                logging.getLogger(__name__).warning("ACME challenge answers not withdrawn (%s)",
                                                    exc.__class__.__name__)
    return issued, account_key_pem


def _account(acme, net, email: str | None) -> None:
    """Register the account key with the CA, or use its account (a renewal: the key has one)."""
    from acme import messages

    registration = messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True)
    try:
        acme.new_account(registration)
    except _conflict() as exc:
        # The key already has an account (a renewal): use it.
        net.account = messages.RegistrationResource(uri=exc.location, body=messages.Registration())


def _challenges(order, jwk, dns01: frozenset[str]) -> tuple[dict[str, str], dict[str, str], list]:
    """(HTTP-01 answers {token: key authorization}, DNS-01 records {TXT name: value}, the
    challenges to answer) for every authorization the order still needs: DNS-01 for the names in
    `dns01`, HTTP-01 for the others."""
    from acme import challenges, messages

    answers: dict[str, str] = {}
    records: dict[str, str] = {}
    pending: list = []
    for authzr in order.authorizations:
        if authzr.body.status == messages.STATUS_VALID:
            continue  # authorized earlier for this account (the CA reuses it)
        name = authzr.body.identifier.value
        if name in dns01:
            dns = [c for c in authzr.body.challenges if isinstance(c.chall, challenges.DNS01)]
            if not dns:
                raise DyniaError("cert", f"{name}: the ACME server offers no DNS-01 challenge, and the name "
                                 "has no DNS record yet for HTTP-01",
                                 "use an ACME directory that validates over DNS-01 (Let's Encrypt does)")
            response, validation = dns[0].response_and_validation(jwk)
            records[dns[0].chall.validation_domain_name(name)] = validation
            pending.append((dns[0], response))
            continue
        http = [c for c in authzr.body.challenges if isinstance(c.chall, challenges.HTTP01)]
        if not http:
            raise DyniaError("cert", f"{authzr.body.identifier.value}: the ACME server offers no HTTP-01 "
                             "challenge", "use an ACME directory that validates over HTTP-01")
        response, validation = http[0].response_and_validation(jwk)
        token = http[0].chall.encode("token")
        if not TOKEN.fullmatch(token):
            raise DyniaError("cert", f"{authzr.body.identifier.value}: the ACME server sent a malformed "
                             "challenge token", "check tls.acme_directory")
        answers[token] = validation
        pending.append((http[0], response))
    return answers, records, pending


def checked_issue(fullchain_pem: str, key_pem: str, domains: list[str]) -> Issued:
    """The CA's answer, checked before anything stores or pushes it: a parseable chain whose
    leaf carries every requested name and the public key of the key we made (a CA bug or a
    mixed-up order must not reach HAProxy, where it would fail every handshake). `domains` of
    the result are the leaf's own names. A failure is a `cert` error — never the PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from ..tls import name_covers

    hint = "order again (`dynia cert provision`); nothing was stored or pushed, every node keeps its certificate"
    try:
        chain = x509.load_pem_x509_certificates(fullchain_pem.encode())
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
        not_after, names = certificate_facts(fullchain_pem)
    except (ValueError, TypeError, AttributeError):
        raise DyniaError("cert", f"{', '.join(domains)}: the ACME server's certificate chain cannot be read",
                         hint) from None
    if not chain:
        raise DyniaError("cert", f"{', '.join(domains)}: the ACME server sent no certificate", hint)
    uncovered = [d for d in domains if not any(name_covers(n, d) for n in names)]
    if uncovered:
        raise DyniaError("cert", f"the issued certificate does not cover {', '.join(uncovered)} "
                         f"(it names {', '.join(names) or 'nothing'})", hint)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if chain[0].public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise DyniaError("cert", f"{', '.join(domains)}: the issued certificate is not for the key this order "
                         "made (its public key differs)", hint)
    return Issued(fullchain_pem, key_pem, not_after, tuple(sorted(names)))


def _conflict():
    from acme import errors as acme_errors

    return acme_errors.ConflictError
