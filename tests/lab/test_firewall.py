"""The host firewall on real lab nodes: a namespace standing for Cloudflare reaches 443 through
the VIP; a namespace outside every allowed range reaches none of 80/443/22/8880/8404 on the VIP
or any node; VRRP adverts from a non-peer are counted and dropped and the VIP stays put.
(Failover and zero-downtime rolls with the firewall on: test_failover.py, test_zero_downtime.py,
whose lab applies the same infra layer, firewall included.)

Every client namespace is removed in the fixture's finalizer (and with the lab), also on failure."""
from __future__ import annotations

import ipaddress
import json
import re
import socket
import subprocess
import sys
import time

import pytest

from dynia import providers

from dynia.paths import PORTS
from dynia.providers.local import lab_edge
from dynia.render.rendering import vrid

from .conftest import eventually
from .lab_helpers import client_argv, lab_outsider


CONNECT_TIMEOUT = 1.5  # s: a dropped SYN is never answered; each probe gives up after this

# Runs inside a client namespace: every (host, port) probed at once, each bounded.
PROBE = r"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
targets, timeout = json.loads(sys.argv[1]), float(sys.argv[2])
def probe(t):
    s = socket.socket(socket.AF_INET)
    s.settimeout(timeout)
    try:
        s.connect((t[0], t[1]))
        return "open"
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        return "error: %s" % exc
    finally:
        s.close()
with ThreadPoolExecutor(len(targets)) as pool:
    print(json.dumps(list(pool.map(probe, targets))))
"""

HTTPS_GET = r"""
import http.client, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
ctx.load_cert_chain(sys.argv[3])  # Cloudflare's origin-pull client certificate (the lab CA's)
conn = http.client.HTTPSConnection(sys.argv[1], 443, timeout=5, context=ctx)
conn.request("GET", "/", headers={"Host": sys.argv[2]})
r = conn.getresponse()
print(r.status, r.read().decode().strip())
"""

# A VRRPv2 advertisement (RFC 3768) claiming the VIP with priority 254, sent as raw IP protocol
# 112 with TTL 255 (what keepalived accepts) to every address given, `count` times.
VRRP_SEND = r"""
import socket, struct, sys, time
vrid, vip, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
dests = sys.argv[4:]
def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF); total += total >> 16
    return ~total & 0xFFFF
body = struct.pack("!BBBBBBH4s8s", 0x21, vrid, 254, 1, 0, 1, 0, socket.inet_aton(vip), b"\0" * 8)
packet = body[:6] + struct.pack("!H", checksum(body)) + body[8:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
for _ in range(count):
    for d in dests:
        s.sendto(packet, (d, 0))
    time.sleep(0.1)
print("sent", count * len(dests))
"""


def _firewalled(lc):
    """The lab rolled out with SSH admitted from this machine only (the bridge's gateway, where
    dynia and the tests connect from), plus two client namespaces: "cloudflare" inside the lab's
    stand-in for Cloudflare's ranges, "outsider" outside every allowed range (removed with the lab)."""
    lab = lc.lab
    gateway, cloudflare = lab_edge(lab.subnet)
    path = lc.project.spec_path("lab")
    path.write_text(path.read_text() + f"firewall:\n  admin_ranges: [{gateway}/32]\n")
    result = lc.roll()
    assert result.ok, [(r.node, r.layer, r.reason) for r in result.results if not r.ok]
    master = lc.cluster().spec.master_node
    assert eventually(lambda: lc.vip_holder() == [master]), lc.vip_holder()
    lab.add_client("cloudflare", cloudflare.split("/")[0][:-1] + "1")
    lab.add_client("outsider", lab_outsider(lab.subnet))


@pytest.fixture
def firewalled_lab(shared_labs):
    """One firewalled lab for the module's tests: they probe and count, and leave it as it was."""
    return shared_labs.take(_firewalled)


def _in(lc, client: str, script: str, *args: str, timeout: float = 30) -> str:
    proc = subprocess.run([*client_argv(lc.lab, client), sys.executable, "-c", script, *args],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _probe(lc, client: str, targets: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
    answers = json.loads(_in(lc, client, PROBE, json.dumps(targets), str(CONNECT_TIMEOUT)))
    return dict(zip(targets, answers))


def _vrrp_refused(lc, node: str) -> int:
    rules = lc.sh(node, "nft list chain inet dynia input").stdout.decode()
    m = re.search(r"meta l4proto vrrp counter packets (\d+) bytes \d+ drop", rules)
    assert m, rules
    return int(m.group(1))


def test_the_cloudflare_namespace_gets_https_through_the_vip_and_nothing_else(firewalled_lab, tmp_path):
    lc = firewalled_lab
    assert ipaddress.ip_address(lc.lab.clients[0].ip) in ipaddress.ip_network(lab_edge(lc.lab.subnet)[1])
    pem = tmp_path / "pull-client.pem"
    pem.write_bytes(providers.of(lc.cluster().spec).origin_pull_client(lc.project, "lab"))
    assert _in(lc, "cloudflare", HTTPS_GET, lc.lab.vip, "api.lab.example", str(pem)) == "200 api"
    assert _in(lc, "cloudflare", HTTPS_GET, lc.lab.vip, "lab.example", str(pem)) == "200 web"
    # Cloudflare is neither an admin range nor a node: SSH, Caddy and the stats port stay shut.
    node = lc.lab.node("brave-panda").ip
    answers = _probe(lc, "cloudflare", [(node, 22), (node, PORTS.caddy), (node, PORTS.stats), (node, PORTS.https)])
    assert answers == {(node, 22): "timeout", (node, PORTS.caddy): "timeout", (node, PORTS.stats): "timeout",
                       (node, PORTS.https): "open"}, answers


def test_an_outsider_reaches_no_port_on_the_vip_or_any_node(firewalled_lab):
    lc = firewalled_lab
    ports = [PORTS.http, PORTS.https, 22, PORTS.caddy, PORTS.stats]
    hosts = [lc.lab.vip] + [n.ip for n in lc.lab.nodes]
    started = time.monotonic()
    answers = _probe(lc, "outsider", [(h, p) for h in hosts for p in ports])
    assert set(answers.values()) == {"timeout"}, {k: v for k, v in answers.items() if v != "timeout"}
    assert time.monotonic() - started < 10 * CONNECT_TIMEOUT
    # The same ports answer where they are allowed, so the outsider is refused by the firewall,
    # not by a port nobody listens on: this machine (an admin range, the lab's edge and its stats
    # reader) reaches 80/443/22/8404, a peer node reaches Caddy.
    target = lc.lab.node("brave-panda").ip
    for p in (PORTS.http, PORTS.https, 22, PORTS.stats):
        socket.create_connection((target, p), timeout=3).close()
    lc.sh("misty-owl", f"curl -s -o /dev/null --max-time 3 http://{target}:{PORTS.caddy}/")


def test_vrrp_adverts_from_a_non_peer_are_dropped_and_the_vip_stays(firewalled_lab):
    lc = firewalled_lab
    master = lc.cluster().spec.master_node
    before = {n.id: _vrrp_refused(lc, n.id) for n in lc.lab.nodes}
    count = 30  # 3 s of adverts at priority 254, above the MASTER's 150
    sent = _in(lc, "outsider", VRRP_SEND, str(vrid("lab")), lc.lab.vip, str(count), *[n.ip for n in lc.lab.nodes])
    assert sent == f"sent {count * len(lc.lab.nodes)}"
    after = {n.id: _vrrp_refused(lc, n.id) for n in lc.lab.nodes}
    for node in before:
        assert after[node] - before[node] >= count, (node, before, after)
    # Well past keepalived's master-down interval (3 × advert_int + skew): nobody stepped down.
    time.sleep(1.5)
    assert lc.vip_holder() == [master]
    assert lc.cat(master, "/opt/dynia/state/vrrp").startswith(b"MASTER")
