"""A real ACME server inside the lab: pebble (RFC 8555 test CA) and pebble-challtestsrv (its DNS).

Both run in a lab client namespace (dynia.nodes.lab.Lab.add_client), with an address on the lab bridge (by default
the subnet's .200: nodes are .11+, the VIP .100, the gateway .1, and the lab firewall's
"Cloudflare" stand-in is the subnet's last /28 with its "outsider" just below it
(dynia.providers.local.lab_edge): pebble connects from an address no rule singles out, as
Let's Encrypt's validators do), so pebble reaches the
cluster exactly as Let's Encrypt reaches a droplet: it resolves every name through
challtestsrv and validates HTTP-01 on port 80 of its address — VIP → HAProxy → the holder's
Caddy — or DNS-01 by asking challtestsrv for the name's `_acme-challenge` TXT. Nothing of
pebble's listens on the machine itself, and nothing the nodes do can reach pebble but
through the bridge.

challtestsrv answers no name by default: the names given to the harness get an A record to
the VIP (as the records the apps phase made), and any other name has none — as a name bound
just now has none until its certificate exists. `dns01()` is the stand-in for the zone's DNS
API (Cloudflare's, dynia.acme.dns01.CloudflareZone): it writes TXT records through
challtestsrv's management API and names the DNS server pebble asks, so the product's own
DNS-01 code (dynia.acme.dns01.Dns01, its propagation wait included) runs against a real DNS
server and a real CA (tests/challtestsrv.py).

pebble's own listener certificate is a self-signed one generated per run (`ca_bundle`):
dynia's ACME client trusts it through REQUESTS_CA_BUNDLE or an explicit `verify`, never by
turning verification off. `root_pem` is pebble's issuing root (management /roots/0, new on
every start), against which the certificates the cluster serves are verified.

Every wait is bounded; `stop()` kills every process in the namespace and removes it (and
its veth), also after a failed `start()`; it is safe to call twice.
"""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from ..challtestsrv import ChalltestsrvZone, a_records, manage
from .lab_helpers import client_argv

PEBBLE = "/usr/bin/pebble"
CHALLTESTSRV = "/usr/bin/pebble-challtestsrv"
ACME_PORT = 14000          # pebble's ACME API (https)
PEBBLE_MGMT_PORT = 15000   # pebble's management API (https): /roots/0
DNS_PORT = 8053            # challtestsrv's DNS (udp+tcp)
DNS_MGMT_PORT = 8055       # challtestsrv's management API (http): add-a, clear-a
# .200 of the lab subnet: no node (.11+), VIP (.100), gateway (.1), nor the firewall's
# "Cloudflare" (last /28) or "outsider" (two below it) client addresses.
HOST_INDEX = 199


class AcmeLabError(RuntimeError):
    pass


def _sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AcmeLabError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-400:]}")
    return proc


def address(subnet: str, host_index: int = HOST_INDEX) -> str:
    """pebble's address on the lab bridge (known before the lab is up: the spec names it)."""
    return str(list(ipaddress.ip_network(subnet).hosts())[host_index])


def directory_url(subnet: str, host_index: int = HOST_INDEX) -> str:
    """pebble's ACME directory (what the cluster spec's tls.acme_directory says)."""
    return f"https://{address(subnet, host_index)}:{ACME_PORT}/dir"


CLIENT = "acme"  # the lab client namespace pebble and challtestsrv run in


def missing_tools() -> list[str]:
    return [p for p in (PEBBLE, CHALLTESTSRV, "/usr/bin/openssl") if not os.access(p, os.X_OK)]


class AcmeLab:
    """pebble + pebble-challtestsrv on the lab bridge. Use as a context manager, or start()/stop()."""

    def __init__(self, lab, workdir: Path, host_index: int = HOST_INDEX, names: tuple[str, ...] = ()):
        # A lab client namespace (Lab.add_client: refuses an address a node, the VIP, the gateway
        # or another client has; lab.down() removes it too, should this harness be killed).
        self.lab = lab
        self.workdir = Path(workdir)
        self.vip = lab.vip
        self.ip = address(lab.subnet, host_index)
        self.procs: dict[str, subprocess.Popen] = {}
        self.root_pem = ""
        self.names = tuple(names)

    @classmethod
    def for_lab(cls, lab, workdir: Path, names: tuple[str, ...] = ()) -> "AcmeLab":
        """Beside a dynia.nodes.lab.Lab (bring the lab up first); `names` resolve to its VIP."""
        return cls(lab, workdir, names=names)

    @property
    def netns(self) -> str:
        return f"{self.lab.prefix}-client-{CLIENT}"

    # --- addresses ------------------------------------------------------------------------

    @property
    def directory_url(self) -> str:
        return f"https://{self.ip}:{ACME_PORT}/dir"

    @property
    def root_path(self) -> Path:
        return self.workdir / "pebble-root.pem"

    @property
    def ca_bundle(self) -> Path:
        """pebble's listener certificate (self-signed, this run's): what an ACME client trusts."""
        return self.workdir / "listener.pem"

    @property
    def dns_server(self) -> str:
        return f"{self.ip}:{DNS_PORT}"

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> "AcmeLab":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 20.0) -> "AcmeLab":
        missing = missing_tools()
        if missing:
            raise AcmeLabError(f"missing on this machine: {', '.join(missing)} (apt-get install pebble openssl)")
        try:
            self._network()
            self._listener_cert()
            self._start_challtestsrv()
            self._start_pebble()
            deadline = time.monotonic() + timeout
            self._wait_port("pebble", ACME_PORT, deadline)
            self._wait_port("pebble", PEBBLE_MGMT_PORT, deadline)
            self._wait_port("pebble-challtestsrv", DNS_MGMT_PORT, deadline)
            self.root_pem = self._get(f"https://{self.ip}:{PEBBLE_MGMT_PORT}/roots/0").decode()
            if "BEGIN CERTIFICATE" not in self.root_pem:
                raise AcmeLabError(f"pebble's /roots/0 answered no certificate: {self.root_pem[:200]!r}")
            self.root_path.write_text(self.root_pem)
            for name in self.names:
                self.add_a(name, [self.vip])
        except BaseException:
            self.stop()
            raise
        return self

    def _network(self) -> None:
        # One left by a run of this same lab that was killed before its teardown (the lab lock
        # rules out a live one): removed first, processes and all.
        self.lab.remove_client(CLIENT)
        self.lab.add_client(CLIENT, self.ip)

    def _listener_cert(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        _sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-days", "2", "-subj", "/CN=dynia lab pebble", "-addext", f"subjectAltName=IP:{self.ip}",
            "-keyout", str(self.workdir / "listener-key.pem"), "-out", str(self.ca_bundle))

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.workdir / f"{name}.log", "ab")
        try:
            self.procs[name] = subprocess.Popen(
                [*client_argv(self.lab, CLIENT), *argv], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True)
        finally:
            log.close()

    def _start_challtestsrv(self) -> None:
        # No default A answer (the harness's names get theirs in start()); no AAAA, so pebble
        # never tries IPv6; only DNS and the management API listen (the HTTP-01/TLS-ALPN
        # responders would squat ports).
        self._spawn("pebble-challtestsrv", [
            CHALLTESTSRV, "-defaultIPv4", "", "-defaultIPv6", "",
            "-dns01", f"{self.ip}:{DNS_PORT}", "-http01", "", "-https01", "", "-tlsalpn01", "",
            "-management", f"{self.ip}:{DNS_MGMT_PORT}"])

    def _start_pebble(self) -> None:
        config = {"pebble": {
            "listenAddress": f"{self.ip}:{ACME_PORT}",
            "managementListenAddress": f"{self.ip}:{PEBBLE_MGMT_PORT}",
            "certificate": str(self.ca_bundle), "privateKey": str(self.workdir / "listener-key.pem"),
            # Validate where Let's Encrypt does: port 80 of the name's address (the VIP).
            "httpPort": 80, "tlsPort": 443,
            "ocspResponderURL": "", "externalAccountBindingRequired": False}}
        path = self.workdir / "pebble-config.json"
        path.write_text(json.dumps(config, indent=2))
        # NOSLEEP: validate at once (pebble otherwise waits up to 15 s per challenge);
        # NONCEREJECT=0: no random badNonce (the client's retry is not what is under test);
        # AUTHZREUSE=0: every order validates again (a renewal after failover must be answered
        # by the new VIP holder, not skipped because an earlier authorization is still valid).
        self._spawn("pebble", [PEBBLE, "-config", str(path), "-dnsserver", self.dns_server],
                    env={"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"})

    def _wait_port(self, name: str, port: int, deadline: float) -> None:
        while True:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise AcmeLabError(f"{name} exited ({proc.returncode}): {self.log(name)[-800:]}")
            try:
                socket.create_connection((self.ip, port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AcmeLabError(f"{name} does not listen on {self.ip}:{port}: {self.log(name)[-800:]}")
                time.sleep(0.05)

    def stop(self) -> None:
        for name, proc in list(self.procs.items()):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        self.procs.clear()
        self.lab.remove_client(CLIENT)  # kills what is left in the namespace, then removes it

    @property
    def gone(self) -> bool:
        """Nothing of this harness is left: no namespace (and with it no veth), no process."""
        return (not Path(f"/run/netns/{self.netns}").exists() and not self.procs
                and all(c.name != CLIENT for c in self.lab.clients))

    # --- talking to pebble and challtestsrv --------------------------------------------------

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_bundle))

    def _get(self, url: str, timeout: float = 5.0) -> bytes:
        with urllib.request.urlopen(url, timeout=timeout, context=self._context()) as resp:
            return resp.read()

    def directory(self) -> dict:
        return json.loads(self._get(self.directory_url))

    @property
    def mgmt(self) -> str:
        return f"{self.ip}:{DNS_MGMT_PORT}"

    def add_a(self, host: str, addresses: list[str]) -> None:
        """Give one name A records (challtestsrv's mock DNS)."""
        manage(self.mgmt, "add-a", host=host, addresses=addresses)

    def clear_a(self, host: str) -> None:
        manage(self.mgmt, "clear-a", host=host)

    def dns01(self, timeout: float = 20.0):
        """DNS-01 as the product runs it (dynia.acme.dns01.Dns01), on challtestsrv's records."""
        from dynia.acme.dns01 import Dns01

        return Dns01(ChalltestsrvZone(self.mgmt, (self.ip, DNS_PORT), self.vip), timeout=timeout, interval=0.2)

    def txt(self, fqdn: str) -> set[str]:
        """The TXT strings challtestsrv answers for fqdn."""
        from dynia.acme.dns01 import txt_values

        return txt_values(fqdn, self.ip, DNS_PORT)

    def resolve(self, host: str, timeout: float = 3.0) -> list[str]:
        """The A records challtestsrv answers for host."""
        return a_records(self.ip, DNS_PORT, host, timeout)
