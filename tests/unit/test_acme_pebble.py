"""dynia.acme.client.issue against a real ACME server: Debian's pebble (the Let's Encrypt
project's RFC 8555 test CA) and pebble-challtestsrv (its DNS, answering every A query with
127.0.0.1), on loopback with high ports; a tiny HTTP server on pebble's httpPort stands in
for the nodes (HAProxy → Caddy → the challenge directory)."""
from __future__ import annotations

import contextlib
import datetime
import http.server
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.request

import pytest

from dynia.acme.client import Issued, issue
from dynia.errors import DyniaError

from ..challtestsrv import running as challtestsrv_running
from ..needs import need_tools



@pytest.fixture(autouse=True)
def _pebble():
    need_tools("pebble", "pebble-challtestsrv", package="pebble")


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listener_certificate(directory):
    """pebble's own HTTPS listener: a self-signed certificate for 127.0.0.1/localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def wait_for_port(port: int, proc, seconds: float = 10.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"exited {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


class Answers(http.server.BaseHTTPRequestHandler):
    """The nodes' stand-in: /.well-known/acme-challenge/<token> from `files` (a dict)."""
    files: dict[str, str] = {}
    hosts: list[str] = []

    def do_GET(self):  # noqa: N802
        self.hosts.append(self.headers.get("Host", ""))
        prefix = "/.well-known/acme-challenge/"
        body = self.files.get(self.path[len(prefix):]) if self.path.startswith(prefix) else None
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def pebble(tmp_path_factory):
    d = tmp_path_factory.mktemp("pebble")
    cert, key = listener_certificate(d)
    acme_port, mgmt_port, http_port, tls_port = free_port(), free_port(), free_port(), free_port()
    (d / "config.json").write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{acme_port}", "managementListenAddress": f"127.0.0.1:{mgmt_port}",
        "certificate": str(cert), "privateKey": str(key), "httpPort": http_port, "tlsPort": tls_port,
        "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
    procs = []
    stack = contextlib.ExitStack()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", http_port), Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dns = stack.enter_context(challtestsrv_running(d))
        ca = subprocess.Popen(["pebble", "-config", str(d / "config.json"), "-dnsserver", "%s:%d" % dns.dns],
                              stdout=open(d / "pebble.log", "w"), stderr=subprocess.STDOUT, env=env, cwd=d)
        procs.append(ca)
        wait_for_port(acme_port, ca)
        ctx = ssl.create_default_context(cafile=str(cert))
        root = urllib.request.urlopen(f"https://127.0.0.1:{mgmt_port}/roots/0", context=ctx, timeout=5).read()
        yield {"directory": f"https://127.0.0.1:{acme_port}/dir", "verify": str(cert), "root": root, "log": d,
               "dns": dns.dns, "challtestsrv": dns}
    finally:
        server.shutdown()
        stack.close()
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def run_issue(pebble, domains, account=None, serve=True, **kw):
    published, withdrawn = [], []

    def publish(answers):
        published.append(dict(answers))
        if serve:
            Answers.files.update(answers)

    def withdraw(tokens):
        withdrawn.append(list(tokens))
        for t in tokens:
            Answers.files.pop(t, None)

    issued, account_key = issue(domains, directory_url=pebble["directory"], email="ops@example.com",
                                account_key_pem=account, publish=publish, withdraw=withdraw,
                                verify=pebble["verify"], **kw)
    return issued, account_key, published, withdrawn


def chain_verifies_against(root_pem: bytes, issued: Issued) -> bool:
    """The leaf is signed by the chain's intermediate, which is signed by pebble's root."""
    from cryptography import x509

    certs = x509.load_pem_x509_certificates(issued.fullchain_pem.encode())
    root = x509.load_pem_x509_certificate(root_pem)
    chain = certs + [root]
    for child, parent in zip(chain, chain[1:]):
        child.verify_directly_issued_by(parent)
    return True


def test_issues_a_certificate_for_every_domain_validated_over_http01(pebble):
    domains = ["api.shop.test", "shop.test"]
    issued, account_key, published, withdrawn = run_issue(pebble, domains)
    assert issued.domains == tuple(domains)
    from dynia.acme.client import certificate_facts

    not_after, names = certificate_facts(issued.fullchain_pem)
    assert sorted(names) == sorted(domains) and not_after == issued.not_after
    assert issued.not_after > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)
    assert chain_verifies_against(pebble["root"], issued)
    # Every challenge was published once, then withdrawn: nothing stays on the nodes.
    assert len(published) == 1 and len(published[0]) == 2
    assert withdrawn == [list(published[0])] and not Answers.files
    assert "BEGIN PRIVATE KEY" in account_key
    pem = issued.haproxy_pem()
    assert pem.index("BEGIN CERTIFICATE") < pem.index("BEGIN PRIVATE KEY") and pem.endswith("\n")
    assert "PRIVATE KEY" not in repr(issued)


def test_a_renewal_reuses_the_stored_account(pebble, monkeypatch):
    """Reuse as pebble sees it: the second order's newAccount is answered with the first
    order's account (RFC 8555 §7.3.1: 200 + its Location), no new account is created."""
    from acme import client, errors as acme_errors

    created, existing = [], []
    real = client.ClientV2.new_account

    def watched(self, registration):
        try:
            regr = real(self, registration)
        except acme_errors.ConflictError as exc:
            existing.append(exc.location)
            raise
        created.append(regr.uri)
        return regr

    monkeypatch.setattr(client.ClientV2, "new_account", watched)
    first, account_key, _, _ = run_issue(pebble, ["www.shop.test"])
    assert len(created) == 1 and existing == []
    again, same_key, _, _ = run_issue(pebble, ["www.shop.test", "new.shop.test"], account=account_key)
    assert len(created) == 1 and existing == created          # pebble: the same account, none new
    assert again.domains == ("new.shop.test", "www.shop.test") and again.key_pem != first.key_pem
    _, other_key, _, _ = run_issue(pebble, ["www.shop.test"])  # without the stored key: a new account
    assert len(created) == 2 and created[1] != created[0] and other_key != account_key


def test_an_unanswered_challenge_is_a_cert_error_naming_the_domain_with_no_secret(pebble):
    with pytest.raises(DyniaError) as caught:
        _issued, _key, published, withdrawn = run_issue(pebble, ["down.shop.test"], serve=False)
    err = caught.value
    assert err.kind == "cert" and err.exit_code == 18
    assert err.message.startswith("down.shop.test: ") and len(err.message) > len("down.shop.test: ")
    assert "PRIVATE KEY" not in err.message + err.hint and err.hint
    assert not Answers.files


def test_challenges_are_withdrawn_even_when_validation_fails(pebble):
    withdrawn = []
    with pytest.raises(DyniaError):
        issue(["gone.shop.test"], directory_url=pebble["directory"], email=None, account_key_pem=None,
              publish=lambda answers: None, withdraw=withdrawn.append, verify=pebble["verify"])
    assert len(withdrawn) == 1 and len(withdrawn[0]) == 1


def test_a_directory_with_an_untrusted_certificate_is_a_cert_error(pebble):
    with pytest.raises(DyniaError) as caught:
        issue(["api.shop.test"], directory_url=pebble["directory"], email=None, account_key_pem=None,
              publish=lambda a: None, withdraw=lambda t: None, verify=True)
    assert caught.value.kind == "cert" and "does not trust" in caught.value.message


def test_a_name_the_ca_refuses_is_a_cert_error_with_its_problem_detail(pebble):
    with pytest.raises(DyniaError) as caught:
        run_issue(pebble, ["bad_name..shop.test"])
    assert caught.value.kind == "cert" and "bad_name..shop.test" in caught.value.message


def test_the_cli_s_default_verify_trusts_the_ca_bundle_named_by_requests_ca_bundle(pebble, monkeypatch):
    """`dynia cert …` passes verify=True: a private ACME directory's CA (the lab's pebble) is
    trusted through REQUESTS_CA_BUNDLE, as with any requests-based client."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pebble["verify"])
    issued, _key, _p, _w = run_issue({**pebble, "verify": True}, ["env.shop.test"])
    assert issued.domains == ("env.shop.test",)


# --- DNS-01: the names with no DNS record yet (dynia.acme.dns01) --------------------------------------

def challtestsrv(pebble, what: str, **body) -> None:
    """challtestsrv's record API: set-txt / clear-txt on the DNS server pebble asks."""
    pebble["challtestsrv"].manage(what, **body)


def test_a_name_without_a_record_is_validated_over_dns01_beside_an_http01_name_in_the_same_order(pebble):
    from dynia.acme.dns01 import txt_values, wait_visible

    fresh, existing = "fresh.shop.test", "old.shop.test"
    txt_published, txt_withdrawn = [], []

    def publish_txt(records):
        txt_published.append(dict(records))
        for fqdn, value in records.items():
            challtestsrv(pebble, "set-txt", host=fqdn.rstrip(".") + ".", value=value)
        wait_visible(records, [pebble["dns"]], timeout=10, interval=0.1)   # the real propagation wait

    def withdraw_txt():
        txt_withdrawn.append(True)
        for records in txt_published:
            for fqdn in records:
                challtestsrv(pebble, "clear-txt", host=fqdn.rstrip(".") + ".")

    asked_before = len(Answers.hosts)
    issued, _key, published, withdrawn = run_issue(pebble, [fresh, existing], dns01=frozenset({fresh}),
                                                   publish_txt=publish_txt, withdraw_txt=withdraw_txt)
    from dynia.acme.client import certificate_facts

    assert sorted(issued.domains) == sorted([fresh, existing])
    assert sorted(certificate_facts(issued.fullchain_pem)[1]) == sorted([fresh, existing])
    assert chain_verifies_against(pebble["root"], issued)
    # The fresh name over DNS-01: one TXT at _acme-challenge.<name>, never an HTTP request for it.
    assert len(txt_published) == 1 and list(txt_published[0]) == [f"_acme-challenge.{fresh}"]
    assert len(published) == 1 and len(published[0]) == 1 and withdrawn == [list(published[0])]
    hosts = [h.split(":")[0] for h in Answers.hosts[asked_before:]]
    assert existing in hosts and fresh not in hosts
    # Withdrawn once, and the TXT is gone from the DNS server the CA asked.
    assert txt_withdrawn == [True]
    assert txt_values(f"_acme-challenge.{fresh}", *pebble["dns"], timeout=2) == set()
    assert not Answers.files


def test_a_dns01_name_whose_txt_is_never_published_is_a_cert_error_naming_it_and_still_withdrawn(pebble):
    txt_published, txt_withdrawn = [], []
    name = "unpublished.shop.test"
    with pytest.raises(DyniaError) as caught:
        run_issue(pebble, [name], dns01=frozenset({name}), publish_txt=txt_published.append,
                  withdraw_txt=lambda: txt_withdrawn.append(True))
    err = caught.value
    assert err.kind == "cert" and err.exit_code == 18
    assert err.message.startswith(f"{name}: ") and len(err.message) > len(f"{name}: ")
    assert "DNS-01" in err.hint and f"_acme-challenge.{name}" in err.hint
    assert "PRIVATE KEY" not in err.message + err.hint
    assert txt_published == [{f"_acme-challenge.{name}": txt_published[0][f"_acme-challenge.{name}"]}]
    assert txt_withdrawn == [True]
    assert not Answers.files


def test_a_slow_txt_propagation_does_not_eat_the_orders_deadline(pebble):
    """The order's timeout starts when the challenges are answered: a DNS provider that takes
    as long as the whole timeout to publish still leaves the CA its full time to validate."""
    name = "slow.shop.test"

    def publish_txt(records):
        for fqdn, value in records.items():
            challtestsrv(pebble, "set-txt", host=fqdn + ".", value=value)
        time.sleep(4)

    issued, *_ = run_issue(pebble, [name], dns01=frozenset({name}), publish_txt=publish_txt,
                           withdraw_txt=lambda: None, timeout=4)
    assert issued.domains == (name,)
