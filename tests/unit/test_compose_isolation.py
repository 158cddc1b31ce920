"""What a compose file may not do to its node (issue 22a): each class is refused by every route
into it, names the service, key and reason, and passes only with the spec's opt-in, which plan
shows. What Docker grants by default, and mounts under the data root, stay accepted."""
from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from dynia.spec import compose
from dynia.spec.isolation import EXCEPTIONS
from dynia.paths import PATHS, NodePaths
from dynia.spec.model import validate_spec

BASE = {"version": 1, "name": "shop", "provider": {"kind": "digitalocean", "region": "sgp1", "size": "s-1vcpu-1gb"},
        "nodes": ["misty-owl", "brave-panda"], "domain": "example.com"}


def _check(tmp_path: Path, extra: str, top: str = "", **svc):
    """compose.check_all on one active-only service whose container has `extra` lines."""
    (tmp_path / "services").mkdir(exist_ok=True)
    (tmp_path / "services/app.yml").write_text(
        f'services:\n  app:\n    image: x\n    ports: ["9000:80"]\n{extra}{top}')
    spec = validate_spec({**BASE, "services": {"app": {"compose": "services/app.yml", "port": 9000,
                                                       "placement": "active-only", **svc}}}, "t.yaml")
    return spec, *compose.check_all(spec, tmp_path)


# (class, compose lines for the container, top-level lines): every route into the class.
REFUSED = [
    ("privileged", "    privileged: true\n", ""),
    ("privileged", "    privileged: 'yes'\n", ""),
    ("host-namespaces", "    pid: host\n", ""),
    ("host-namespaces", "    ipc: host\n", ""),
    ("host-namespaces", "    uts: host\n", ""),
    ("host-namespaces", "    userns_mode: host\n", ""),
    ("host-namespaces", "    cgroup: host\n", ""),
    ("host-namespaces", "    pid: ' HOST'\n", ""),
    ("host-network", "    network_mode: host\n", ""),
    ("host-network", "    network_mode: Host\n", ""),
    ("host-network", "    network_mode: 'container:other'\n", ""),
    ("host-network", "    networks: [outside]\n", "networks:\n  outside: {external: true, name: host}\n"),
    ("host-network", "    networks: [host]\n", "networks:\n  host: {external: true}\n"),
    ("host-network", "    networks: {hostnet: {}}\n", "networks:\n  hostnet: {driver: host}\n"),
    ("host-network", "    networks: [legacy]\n", "networks:\n  legacy: {external: {name: host}}\n"),
    ("capabilities", "    cap_add: [SYS_ADMIN]\n", ""),
    ("capabilities", "    cap_add: [NET_ADMIN]\n", ""),
    ("capabilities", "    cap_add: [cap_sys_ptrace]\n", ""),
    ("capabilities", "    cap_add: [ALL]\n", ""),
    ("devices", "    devices: [/dev/kvm]\n", ""),
    ("devices", "    device_cgroup_rules: ['c 1:3 mr']\n", ""),
    ("devices", "    gpus: all\n", ""),
    ("devices", "    deploy: {resources: {reservations: {devices: [{capabilities: [gpu]}]}}}\n", ""),
    ("security-opt", "    security_opt: [seccomp:unconfined]\n", ""),
    ("security-opt", "    security_opt: [seccomp=unconfined]\n", ""),
    ("security-opt", "    security_opt: [apparmor:unconfined]\n", ""),
    ("security-opt", "    security_opt: [label:disable]\n", ""),
    ("security-opt", "    security_opt: ['label=type:spc_t']\n", ""),
    ("security-opt", "    security_opt: [systempaths=unconfined]\n", ""),
    ("security-opt", "    security_opt: ['seccomp=/srv/app/loose.json']\n", ""),
    ("security-opt", "    security_opt: ['no-new-privileges-but-not-really']\n", ""),
    *[("host-mounts", f"    volumes: ['{p}:/mnt:ro']\n", "") for p in
      ("/", "/etc", "/root", "/proc", "/sys", "/dev", "/run", "/var/run/docker.sock", "/home/ops",
       "/srv", "/srv/../etc", "//etc", "/opt/dynia/state", "/etc/dynia", "/etc/haproxy/certs")],
    ("host-mounts", "    volumes: [{type: bind, source: /etc, target: /mnt}]\n", ""),
    ("host-mounts", "    volumes: ['cfg:/mnt']\n",
     "volumes:\n  cfg: {driver: local, driver_opts: {type: none, o: bind, device: /etc}}\n"),
    ("host-mounts", "    volumes_from: ['container:other']\n", ""),
]


@pytest.mark.parametrize("cls,extra,top", REFUSED)
def test_every_route_into_an_isolation_class_is_refused_naming_service_key_and_class(tmp_path, cls, extra, top):
    _, _, problems = _check(tmp_path, extra, top)
    assert problems, f"{extra.strip()} was accepted"
    key, message, hint = problems[0]
    assert key == ("services", "app", "compose")
    assert message.startswith("service app: compose file services/app.yml: container app: ")
    assert f"isolation_exceptions: [{cls}]" in hint


@pytest.mark.parametrize("cls,extra,top", REFUSED)
def test_a_refusal_names_the_key_once_before_its_reason(tmp_path, cls, extra, top):
    _, _, problems = _check(tmp_path, extra, top)
    rest = problems[0][1].removeprefix("service app: compose file services/app.yml: container app: ")
    key, _, reason = rest.partition(": ")
    assert key.split(".")[0] in extra and not reason.startswith(f"{key}:"), rest


@pytest.mark.parametrize("cls,extra,top", REFUSED)
def test_the_class_opt_in_accepts_exactly_that_route(tmp_path, cls, extra, top):
    spec, infos, problems = _check(tmp_path, extra, top, isolation_exceptions=[cls])
    assert problems == []
    notice = compose.notices(spec, infos)[0]
    assert notice["kind"] == "isolation-exception" and EXCEPTIONS[cls] in notice["text"]


@pytest.mark.parametrize("other", sorted(set(EXCEPTIONS) - {"privileged"}))
def test_an_opt_in_for_another_class_does_not_cover_privileged(tmp_path, other):
    _, _, problems = _check(tmp_path, "    privileged: true\n", "", isolation_exceptions=[other])
    assert problems and "isolation_exceptions: [privileged]" in problems[0][2]


def test_an_opt_in_the_compose_file_does_not_use_is_refused(tmp_path):
    _, _, problems = _check(tmp_path, "", "", isolation_exceptions=["privileged"])
    assert problems[0][0] == ("services", "app", "isolation_exceptions")
    assert "does not use" in problems[0][1]


ACCEPTED = [
    "    privileged: false\n",
    "    pid: 'service:app'\n",
    "    network_mode: bridge\n",
    "    networks: [back]\n",
    "    cap_drop: [ALL]\n    cap_add: [NET_BIND_SERVICE, CHOWN, CAP_SETUID]\n",
    "    security_opt: ['no-new-privileges:true', no-new-privileges, 'no-new-privileges=false']\n",
    "    volumes: ['/srv/app:/data', '/srv/app/conf/x.conf:/etc/x.conf:ro', 'named:/n']\n",
    "    volumes: [{type: bind, source: /srv/app, target: /data}, {type: tmpfs, target: /tmp}]\n",
    "    environment: {PRICE: '$$5', HOME_DIR: '${HOME}'}\n",
]


@pytest.mark.parametrize("extra", ACCEPTED)
def test_what_docker_grants_by_default_and_the_data_root_stay_accepted(tmp_path, extra):
    top = "networks:\n  back: {}\nvolumes:\n  named: {}\n"
    _, _, problems = _check(tmp_path, extra, top)
    assert problems == []


@pytest.mark.parametrize("extra,top", [
    ("    volumes: ['${DATA:-/etc}:/data']\n", ""),
    ("    network_mode: '${MODE}'\n", ""),
    ("    privileged: '${PRIV:-true}'\n", ""),
    ("    cap_add: ['$CAP']\n", ""),
    ("    volumes: ['cfg:/x']\n", "volumes:\n  cfg: {driver_opts: {o: bind, device: '${D}'}}\n"),
])
def test_isolation_values_compose_would_interpolate_are_refused_even_with_every_opt_in(tmp_path, extra, top):
    _, _, problems = _check(tmp_path, extra, top, isolation_exceptions=[])
    assert problems and "write the value literally" in problems[0][2]
    assert "interpolated on the node" in problems[0][1]


def test_the_service_port_published_only_as_udp_is_refused_and_tcp_beside_it_passes(tmp_path):
    (tmp_path / "services").mkdir()
    spec = validate_spec({**BASE, "services": {"app": {"compose": "services/app.yml", "port": 9000}}}, "t.yaml")
    for ports, ok in (('["9000:80/udp"]', False), ('[{target: 80, published: 9000, protocol: udp}]', False),
                      ('["9000:80", "9001:53/udp"]', True)):
        (tmp_path / "services/app.yml").write_text(f"services:\n  app:\n    image: x\n    ports: {ports}\n")
        _, problems = compose.check_all(spec, tmp_path)
        assert (problems == []) is ok, ports
        if not ok:
            assert "only as UDP" in problems[0][1] and "publish it as TCP" in problems[0][2]


def test_no_node_path_of_dynia_lies_under_the_data_root():
    from dynia.spec.isolation import in_data_root

    paths = {k: v for k, v in vars(NodePaths()).items() if k != "data_root"}
    assert [k for k, v in paths.items() if in_data_root(v)] == []
    assert in_data_root(PATHS.data_root + "/app") and not in_data_root(PATHS.data_root)


def test_plan_shows_the_exception_before_the_files(project, cli):
    (project / "services/web.yml").write_text((project / "services/web.yml").read_text().replace(
        "    restart: unless-stopped\n", "    restart: unless-stopped\n    cap_add: [NET_ADMIN]\n", 1))
    spec = project / "clusters/shop.yaml"
    spec.write_text(spec.read_text().replace("    compose: services/web.yml\n",
                                             "    compose: services/web.yml\n    isolation_exceptions: [capabilities]\n"))
    result = cli("-C", str(project), "plan", "--offline", "--cluster", "shop")
    assert result.code == 0, result.err
    before_files = " ".join(result.out.split("rolling order:", 1)[0].split())
    assert "isolation exception: service web is allowed kernel capabilities" in before_files
    md = cli("-C", str(project), "plan", "--offline", "--cluster", "shop", "--format", "markdown").out
    assert "> **isolation exception**: `service web is allowed kernel capabilities" in md
    js = cli("-C", str(project), "plan", "--offline", "--cluster", "shop", "--json").out
    assert '"kind": "isolation-exception"' in js


def test_the_rendered_file_keeps_an_opted_in_key(tmp_path):
    spec, infos, problems = _check(tmp_path, "    cap_add: [NET_ADMIN]\n", "", isolation_exceptions=["capabilities"])
    assert problems == []
    rendered = YAML(typ="safe").load(compose.wrapped("app", infos["app"]))
    assert rendered["services"]["app"]["cap_add"] == ["NET_ADMIN"]
