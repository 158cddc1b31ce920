"""pebble-challtestsrv (Debian's `pebble` package): the DNS server the tests' ACME CA (pebble)
asks, and its record API — for the unit tests on loopback (`running`) and the lab's pebble
(tests/lab/acme_lab.py, in a namespace on the lab bridge).

`ChalltestsrvZone` is the test double of the zone's DNS API (dynia.acme.dns01.TxtZone; Cloudflare's
in production): it writes TXT records through the record API, which serves them on the DNS
the CA asks, so dynia's own DNS-01 code — its propagation wait included — runs against a real
DNS server. Which names point at the cluster is read as the CA reads it: an A query for each.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

CHALLTESTSRV = "/usr/bin/pebble-challtestsrv"


def binary() -> str | None:
    return CHALLTESTSRV if Path(CHALLTESTSRV).exists() else shutil.which("pebble-challtestsrv")


def manage(mgmt: str, what: str, **body) -> None:
    """POST one call of the record API at mgmt ("host:port"): set-txt, clear-txt, add-a, clear-a."""
    request = urllib.request.Request(f"http://{mgmt}/{what}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        if response.status != 200:
            raise RuntimeError(f"challtestsrv {what}: HTTP {response.status}")


def a_records(server: str, port: int, host: str, timeout: float = 3.0) -> list[str]:
    """The A records the DNS server at server:port answers for host."""
    import dns.message
    import dns.query
    import dns.rdatatype

    answer = dns.query.udp(dns.message.make_query(host, dns.rdatatype.A), server, timeout=timeout, port=port)
    return [r.address for rrset in answer.answer if rrset.rdtype == dns.rdatatype.A for r in rrset]


class ChalltestsrvZone:
    """dynia.acme.dns01.TxtZone on challtestsrv: names pointing at `cluster_ip` (an A query),
    TXT records through the record API, challtestsrv's DNS as the zone's one name server."""

    def __init__(self, mgmt: str, dns: tuple[str, int], cluster_ip: str | None = None):
        self.mgmt, self.dns, self.cluster_ip = mgmt, dns, cluster_ip

    def pointing_at_cluster(self, names: list[str]) -> set[str]:
        if self.cluster_ip is None:
            return set()
        return {n for n in names if a_records(*self.dns, n) == [self.cluster_ip]}

    def add_txt(self, fqdn: str, value: str) -> str:
        manage(self.mgmt, "set-txt", host=fqdn.rstrip(".") + ".", value=value)
        return fqdn

    def remove_txt(self, handle: str) -> None:
        manage(self.mgmt, "clear-txt", host=handle.rstrip(".") + ".")

    def find_txt(self, fqdn: str, value: str) -> list[str]:
        from dynia.acme.dns01 import txt_values

        return [fqdn] if value in txt_values(fqdn, *self.dns) else []

    def nameservers(self) -> list[tuple[str, int]]:
        return [self.dns]


class Running:
    """One challtestsrv on loopback: `dns` (address, port), `mgmt` ("host:port")."""

    def __init__(self, dns: tuple[str, int], mgmt: str, log: Path):
        self.dns, self.mgmt, self.log = dns, mgmt, log

    def manage(self, what: str, **body) -> None:
        manage(self.mgmt, what, **body)

    def zone(self, cluster_ip: str | None = None) -> ChalltestsrvZone:
        return ChalltestsrvZone(self.mgmt, self.dns, cluster_ip)


def free_port_both() -> int:
    """A loopback port free for UDP and TCP alike (challtestsrv's DNS listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                    tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port for UDP and TCP")


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(workdir: Path, default_ipv4: str = "127.0.0.1", timeout: float = 10.0):
    """challtestsrv on loopback high ports (only DNS and the record API listen); up once both
    answer, terminated (then killed) on exit, whatever happened."""
    exe = binary()
    if exe is None:
        raise RuntimeError("pebble-challtestsrv is not installed (Debian package pebble)")
    dns_port, mgmt_port = free_port_both(), _free_tcp_port()
    log_path = Path(workdir) / "challtestsrv.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([exe, "-dns01", f"127.0.0.1:{dns_port}", "-management", f"127.0.0.1:{mgmt_port}",
                                 "-http01", "", "-https01", "", "-tlsalpn01", "",
                                 "-defaultIPv4", default_ipv4, "-defaultIPv6", ""],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        from dynia.acme.dns01 import txt_values

        end = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"pebble-challtestsrv exited {proc.returncode}: {log_path.read_text()[-800:]}")
            try:
                with socket.create_connection(("127.0.0.1", mgmt_port), timeout=0.2):
                    pass
                txt_values("ready.test", "127.0.0.1", dns_port, timeout=0.5)
                break
            except Exception:  # noqa: BLE001 — not up yet
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)
        yield Running(("127.0.0.1", dns_port), f"127.0.0.1:{mgmt_port}", log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
