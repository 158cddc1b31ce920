"""The host firewall: Cloudflare's range data, who may reach which port per TLS mode and
provider, and the rendered nftables file (its real loading: tests/validators, tests/lab)."""
from __future__ import annotations

import ipaddress
import json
import re
from datetime import date
from importlib import resources

import pytest

from dynia.render import firewall
from dynia import providers
from dynia.paths import PATHS
from dynia.providers.local import lab_edge
from tests.lab.lab_helpers import lab_outsider
from dynia.render.rendered import render_cluster as render
from dynia.state.store import Project
from dynia.spec.load import load_cluster


def _data() -> dict:
    return json.loads(resources.files("dynia").joinpath("data/cloudflare-ips.json").read_text())


def test_cloudflare_range_data_is_dated_sourced_and_every_entry_a_normalised_network_of_its_family():
    data = _data()
    assert set(data) == {"taken", "source", "ipv4", "ipv6"}
    taken = date.fromisoformat(data["taken"])
    assert date(2020, 1, 1) < taken <= date.today()
    assert data["source"] and all(s.startswith("https://") for s in data["source"])
    assert "https://www.cloudflare.com/ips-v4" in data["source"] and "https://www.cloudflare.com/ips-v6" in data["source"]
    for key, version in (("ipv4", 4), ("ipv6", 6)):
        assert data[key], key
        assert len(set(data[key])) == len(data[key])
        for entry in data[key]:
            net = ipaddress.ip_network(entry, strict=True)
            assert net.version == version and str(net) == entry, entry
            assert net.is_global, entry


def test_cloudflare_ranges_load_as_package_data_with_their_date():
    cf = firewall.cloudflare_ranges()
    assert cf.taken == date.fromisoformat(_data()["taken"])
    assert "173.245.48.0/20" in cf.ipv4 and "2606:4700::/32" in cf.ipv6


def test_the_data_readme_says_where_each_file_comes_from_and_how_to_refresh_it():
    text = resources.files("dynia").joinpath("data/README.md").read_text()
    files = [f.name for f in resources.files("dynia").joinpath("data").iterdir() if f.name != "README.md"
             and not f.name.startswith(("_", "."))]
    assert "cloudflare-ips.json" in files and all(name in text for name in files)
    assert "dynia edge refresh-ranges" in text and "https://www.cloudflare.com/ips-v6" in text
    assert _data()["taken"] in text


def _spec(project, name, edit=None):
    c = load_cluster(Project(project), name)
    if edit:
        path = Project(project).spec_path(name)
        path.write_text(edit(path.read_text()))
        c = load_cluster(Project(project), name)
    return c


def test_origin_mode_edge_is_cloudflares_ranges_and_peers_are_every_nodes_private_address(project):
    spec = _spec(project, "shop").spec
    s = firewall.sources(spec, providers.of(spec), ["10.110.0.3", "10.110.0.2"])
    cf = firewall.cloudflare_ranges()
    assert s.edge == (list(cf.ipv4), list(cf.ipv6))
    assert s.peers == (["10.110.0.2/32", "10.110.0.3/32"], [])
    assert s.stats == s.peers  # on a cloud only the nodes read the stats port
    assert s.admin == (["0.0.0.0/0"], ["::/0"])  # the spec's default: everyone


def test_letsencrypt_mode_opens_80_and_443_to_everyone(project):
    spec = _spec(project, "shop", lambda t: t.replace("domain: shop.example.com\n",
                                                      "domain: shop.example.com\ntls: {mode: letsencrypt, email: ops@shop.example.com}\n", 1)
                 if "tls:" not in t else re.sub(r"mode: origin", "mode: letsencrypt", t)).spec
    assert spec.tls.mode == "letsencrypt"
    s = firewall.sources(spec, providers.of(spec), ["10.110.0.2"])
    assert s.edge == (["0.0.0.0/0"], ["::/0"])


def test_admin_ranges_come_from_the_spec_split_by_family(project):
    spec = _spec(project, "shop").spec
    spec = spec.model_copy(update={"firewall": spec.firewall.model_copy(
        update={"admin_ranges": ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7/32"]})})
    s = firewall.sources(spec, providers.of(spec), ["10.110.0.2"])
    assert s.admin == (["203.0.113.0/24", "198.51.100.7/32"], ["2001:db8::/32"])


def test_the_lab_stands_in_for_cloudflare_with_its_gateway_and_a_range_no_node_uses(project):
    spec = _spec(project, "lab").spec
    gateway, cloudflare = lab_edge(spec.provider.vpc_ip_range)
    assert (gateway, cloudflare) == ("10.213.0.1", "10.213.0.240/28")
    s = firewall.sources(spec, providers.of(spec), ["10.213.0.11", "10.213.0.12"])
    assert s.edge == (["10.213.0.1/32", "10.213.0.240/28"], [])
    # The machine running the lab reads every node's stats (the lab tests check credentials).
    assert s.stats == (["10.213.0.11/32", "10.213.0.12/32", "10.213.0.1/32"], [])
    assert s.peers == (["10.213.0.11/32", "10.213.0.12/32"], [])
    outsider = ipaddress.ip_address(lab_outsider(spec.provider.vpc_ip_range))
    nodes = {"10.213.0.11", "10.213.0.12", "10.213.0.13", "10.213.0.100", gateway}
    assert str(outsider) not in nodes and outsider not in ipaddress.ip_network(cloudflare)
    # The smallest lab subnet the provider accepts still keeps every address apart.
    gateway, cloudflare = lab_edge("10.9.0.0/25")
    assert cloudflare == "10.9.0.112/28" and lab_outsider("10.9.0.0/25") == "10.9.0.110"


def _firewall_file(rendering, node):
    return next(f for f in rendering.files[node] if f.target == PATHS.firewall_rules)


@pytest.mark.parametrize("name", ["shop", "mini", "lab"])
def test_every_node_gets_its_firewall_in_the_infra_layer_root_only(project, name):
    rendering = render(load_cluster(Project(project), name))
    for node in rendering.files:
        f = _firewall_file(rendering, node)
        assert (f.layer, f.component, f.mode, f.owner) == ("infra", "nftables", 0o600, "root:root")


def test_rendered_firewall_replaces_its_own_table_in_one_file_and_drops_the_rest(project):
    rendering = render(load_cluster(Project(project), "shop"))
    text = _firewall_file(rendering, "misty-owl").content.decode()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    # Make sure it exists, delete it, define it: one transaction, idempotent, only dynia's table.
    assert lines[:3] == ["table inet dynia {}", "delete table inet dynia", "table inet dynia {"]
    assert not re.search(r"^\s*(flush ruleset|table (ip|ip6|inet) (?!dynia\b))", text, re.M)
    assert "type filter hook input priority filter; policy drop;" in text
    for rule in ('iif "lo" accept', "ct state established,related accept",
                 "tcp dport 22 ip saddr @admin4 accept", "tcp dport 22 ip6 saddr @admin6 accept",
                 "tcp dport { 80, 443 } ip saddr @edge4 accept", "tcp dport { 80, 443 } ip6 saddr @edge6 accept",
                 "ip protocol vrrp ip saddr @peers4 accept", "tcp dport 8880 ip saddr @peers4 accept",
                 "tcp dport 8404 ip saddr @stats4 accept", "nd-neighbor-solicit"):
        assert rule in text, rule
    private = sorted(rendering.inventory.nodes[n][0] for n in rendering.files)
    peers = re.search(r"set peers4 \{[^}]*elements = \{ ([^}]*) \}", text).group(1)
    assert peers.split(", ") == [f"{ip}/32" for ip in private]  # its own address too
    assert "173.245.48.0/20" in re.search(r"set edge4 \{[^}]*elements = \{ ([^}]*) \}", text).group(1)


@pytest.mark.parametrize("name", ["shop", "lab"])
def test_forwarded_traffic_to_the_droplet_metadata_address_is_dropped_and_the_rest_left_to_docker(project, name):
    # The metadata service hands out the user data (the SSH host key): a container on a bridge
    # reaches it through the host's forward path. The output path stays open (the host's own).
    rendering = render(load_cluster(Project(project), name))
    text = _firewall_file(rendering, next(iter(rendering.files))).content.decode()
    forward = re.search(r"chain forward \{\n(.*?)\n\t\}", text, re.S).group(1)
    rules = [line.strip() for line in forward.splitlines() if line.strip()]
    assert rules == ["type filter hook forward priority filter; policy accept;",
                     'ip daddr 169.254.169.254 counter drop comment "metadata from a container"']
    assert "hook output" not in text


def test_systemd_nodes_get_a_unit_that_loads_only_dynias_table_at_boot_and_the_lab_none(project):
    shop = render(load_cluster(Project(project), "shop"))
    unit = next(f for f in shop.files["misty-owl"] if f.target.endswith("dynia-firewall.service"))
    assert unit.component == "nftables" and unit.mode == 0o644
    assert f"ExecStart=/usr/sbin/nft -f {PATHS.firewall_rules}" in unit.content.decode()
    assert "Before=network-pre.target" in unit.content.decode()
    # Debian's nftables.service flushes the whole ruleset: dynia's table loads after it, and again
    # whenever it is restarted or reloaded.
    lines = unit.content.decode().splitlines()
    assert "After=local-fs.target nftables.service" in lines
    assert "PartOf=nftables.service" in lines and "ReloadPropagatedFrom=nftables.service" in lines
    assert f"ExecReload=/usr/sbin/nft -f {PATHS.firewall_rules}" in lines
    assert not any(line.startswith(("Requires=", "BindsTo=")) for line in lines)
    lab = render(load_cluster(Project(project), "lab"))
    assert not any(f.target.endswith(".service") for fs in lab.files.values() for f in fs)


def test_the_infra_bundle_validates_loads_gates_and_can_unload_the_firewall(project):
    from dynia.state import secrets
    from dynia.render.bundle import build_bundles
    from dynia.nodes.commands import NodeCommands

    cluster = load_cluster(Project(project), "shop")
    slots = secrets.slot_values(cluster.project, "shop", b"PEM", "token", origin_pull_ca=b"CA")
    infra = build_bundles(cluster.spec, render(cluster), "misty-owl", slots)["infra"]
    commands = NodeCommands(providers.of(cluster.spec).profile)
    assert infra.component_order == ["nftables", "caddy", "haproxy", "keepalived"]
    assert infra.validate["nftables"] == commands.validate("nftables")
    assert infra.reload["nftables"] == commands.reload("nftables")
    # A first firewall whose gate fails is unloaded (the apply script's "stop"), not reloaded.
    assert infra.stop == {"nftables": commands.stop("nftables")}
    assert {"name": "firewall", "type": "command", "command": commands.firewall_admits_ssh()} in infra.health
    assert {f["target"]: f["component"] for f in infra.files}[PATHS.firewall_rules] == "nftables"


# --- the input chain's accepting rules, port by port (stated here by hand, not from a golden
# file: a rule added, widened or moved to another set fails these tests on its own) ---------

ALWAYS = ['iif "lo" accept', "ct state established,related accept",
          "meta l4proto icmp icmp type { echo-request, destination-unreachable, time-exceeded, parameter-problem } "
          "accept",
          "meta l4proto ipv6-icmp icmpv6 type { echo-request, destination-unreachable, packet-too-big, time-exceeded, "
          "parameter-problem } accept",
          "meta l4proto ipv6-icmp icmpv6 type { nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, "
          "nd-router-solicit } ip6 hoplimit 255 accept"]
BY_PORT = {
    22: ["tcp dport 22 ip saddr @admin4 accept", "tcp dport 22 ip6 saddr @admin6 accept"],
    80: ["tcp dport { 80, 443 } ip saddr @edge4 accept", "tcp dport { 80, 443 } ip6 saddr @edge6 accept"],
    443: ["tcp dport { 80, 443 } ip saddr @edge4 accept", "tcp dport { 80, 443 } ip6 saddr @edge6 accept"],
    8880: ["tcp dport 8880 ip saddr @peers4 accept", "tcp dport 8880 ip6 saddr @peers6 accept"],
    8404: ["tcp dport 8404 ip saddr @stats4 accept", "tcp dport 8404 ip6 saddr @stats6 accept"],
}
VRRP = ["ip protocol vrrp ip saddr @peers4 accept", "ip6 nexthdr vrrp ip6 saddr @peers6 accept"]
# Ports a node serves on loopback or the host network only (services, HAProxy's backends, the
# Docker API, databases) and a few arbitrary ones: no rule may accept them.
CLOSED = [0, 21, 23, 25, 53, 2375, 3000, 3306, 5432, 6379, 8080, 8081, 8082, 8443, 9000, 9002, 65535]


def _input_rules(project, name: str) -> list[str]:
    rendering = render(load_cluster(Project(project), name))
    text = _firewall_file(rendering, next(iter(rendering.files))).content.decode()
    chain = re.search(r"chain input \{\n(.*?)\n\t\}", text, re.S).group(1)
    return [line.strip() for line in chain.splitlines() if line.strip() and not line.strip().startswith("#")]


def _accepts_tcp(rule: str, port: int) -> bool:
    """Does this rule accept a TCP packet to `port` (from someone)? A rule naming no port accepts
    every port, unless it names another protocol."""
    if not rule.endswith("accept") or rule in ALWAYS:
        return False
    if re.search(r"\b(vrrp|udp|icmp|icmpv6|ipv6-icmp)\b", rule):
        return False
    m = re.search(r"\bdport (\{ [^}]* \}|\d+)", rule)
    return m is None or port in {int(p) for p in re.findall(r"\d+", m.group(1))}


@pytest.mark.parametrize("name", ["shop", "lab"])
@pytest.mark.parametrize("port", [*BY_PORT, *CLOSED])
def test_each_tcp_port_is_accepted_by_exactly_its_own_rules(project, name, port):
    assert [r for r in _input_rules(project, name) if _accepts_tcp(r, port)] == BY_PORT.get(port, [])


@pytest.mark.parametrize("name", ["shop", "lab"])
def test_the_input_chain_accepts_nothing_but_the_stated_rules_and_drops_the_rest(project, name):
    rules = _input_rules(project, name)
    assert rules[0] == "type filter hook input priority filter; policy drop;"
    accepting = [r for r in rules if r.endswith("accept")]
    stated = set(ALWAYS + VRRP + [r for rs in BY_PORT.values() for r in rs])
    assert sorted(accepting) == sorted(stated) and len(accepting) == len(stated)
    assert not any("accept" in r and not r.endswith("accept") for r in rules)  # no accept hidden mid-rule
    # VRRP from a non-peer is counted and dropped right after the peers' rules; the rest dropped.
    assert rules[rules.index(VRRP[1]) + 1] == 'meta l4proto vrrp counter drop comment "vrrp from a non-peer"'
    assert rules[-1] == 'counter comment "dropped"'
