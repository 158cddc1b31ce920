"""Properties of render over generated clusters (hypothesis): whatever the spec, the promises hold."""
from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynia.names import node_ids
from dynia.render.rendered import render_cluster as render
from dynia.state.store import Project
from dynia.spec.load import load_cluster

services = st.lists(
    st.tuples(st.sampled_from(["all", "all", "active-only", "standby-only"]), st.booleans()),
    min_size=0, max_size=6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(node_count=st.integers(1, 5), svc=services, master_index=st.integers(0, 4))
def test_any_valid_spec_renders_deterministically_with_every_promise_kept(tmp_path_factory, node_count, svc, master_index):
    root = tmp_path_factory.mktemp("prop")
    (root / "clusters").mkdir()
    (root / "services").mkdir()
    nodes = node_ids("prop", node_count)
    lines = ["version: 1", "name: prop", "provider: {region: ams3, size: m-4vcpu-32gb}",
             f"nodes: [{', '.join(nodes)}]", f"master: {nodes[master_index % node_count]}",
             "domain: example.com", "services:"]
    for i, (placement, with_domain) in enumerate(svc):
        port = 9000 + i
        (root / "services" / f"s{i}.yml").write_text(
            f'services:\n  app:\n    image: x\n    ports: ["{port}:80"]\n    mem_limit: 32m\n')
        lines += [f"  s{i}:", f"    compose: services/s{i}.yml", f"    port: {port}", f"    placement: {placement}"]
        if with_domain and placement != "standby-only":
            lines.append(f"    domain: {'[example.com, www.example.com]' if i == 0 else f's{i}.example.com'}")
    if not svc:
        lines[-1] = "services: {}"
    (root / "clusters" / "prop.yaml").write_text("\n".join(lines) + "\n")
    cluster = load_cluster(Project(root), "prop")
    first, second = render(cluster), render(cluster)
    assert first.content_hash == second.content_hash
    assert first.rolling_order[-1] == cluster.spec.master_node and sorted(first.rolling_order) == sorted(nodes)
    private = {n: a[0] for n, a in first.inventory.nodes.items()}
    for node, files in first.files.items():
        by_target = {f.target: f.content.decode() for f in files}
        haproxy = by_target["/etc/haproxy/haproxy.cfg"]
        backends = dict(re.findall(r"^backend (\S+)\n(.*?)(?:\n\n|\Z)", haproxy, re.M | re.S))
        assert sorted(re.findall(r"server (\S+) (\S+):8880", backends.pop("be_any_node"))) == sorted(private.items())
        # One backend per routed service: every node's Caddy, or only this node's for active-only.
        routed = {f"be_{n}": s for n, s in cluster.spec.services.items() if s.domains}
        assert sorted(backends) == sorted(routed)
        for name, svc in routed.items():
            want = [(node, private[node])] if svc.placement == "active-only" else list(private.items())
            assert sorted(re.findall(r"server (\S+) (\S+):8880", backends[name])) == sorted(want), name
            assert f"uri {svc.health_path} ver HTTP/1.1 hdr Host {svc.domains[0]}" in backends[name]
            # one host rule for every domain it serves
            assert f"use_backend {name} if {{ hdr(host),field(1,:) -i {' '.join(svc.domains)} }}" in haproxy
        peers = re.findall(r"^        (\d+\.\d+\.\d+\.\d+)$", by_target["/etc/keepalived/keepalived.conf"], re.M)
        assert sorted(peers) == sorted(ip for n, ip in private.items() if n != node)
        for target, text in by_target.items():
            if target.endswith("docker-compose.yml"):
                assert all(p.startswith("127.0.0.1:") for p in re.findall(r"^\s+- (\S+)$", text, re.M))
        assert not any("PASSWORD=" in t for t in by_target.values())
