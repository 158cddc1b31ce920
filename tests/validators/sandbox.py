"""Run the real validators on a rendered node, the way the node will see the files.

Each node's files are laid out under a scratch root, the secret slots filled with *test*
values (a throwaway self-signed certificate, random stats credentials), then each binary runs
in a private mount namespace with the scratch dirs bind-mounted over /etc/haproxy,
/etc/caddy and /etc/keepalived. keepalived additionally runs inside a network namespace that
has the node's private interface and address, because `keepalived -t` checks them.
"""
from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import uuid
from pathlib import Path

from dynia.paths import PATHS
from dynia.tls import origin_pull_pair
from dynia.render.rendering import Rendering


def throwaway_certificate(directory: Path) -> bytes:
    key, crt = directory / "k.pem", directory / "c.pem"
    if not crt.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                        "-out", str(crt), "-days", "2", "-subj", "/CN=*.example.com"],
                       check=True, capture_output=True)
    return crt.read_bytes() + key.read_bytes()


def lay_out(rendering: Rendering, node: str, root: Path, cert: bytes) -> None:
    fill = {
        "origin_certificate": cert,
        "stats_credentials": (f"DYNIA_STATS_USER=stats-test\n"
                              f"DYNIA_STATS_PASSWORD={secrets.token_urlsafe(12)}\n").encode(),
        "provider_token": b"test-token-not-real\n",
        # HAProxy's ca-file must hold a CA certificate: the cluster's is made with the provision state.
        "origin_pull_ca": origin_pull_pair(rendering.cluster)["ca"].encode(),
    }
    for f in rendering.files[node]:
        path = root / f.target.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f.content)
        os.chmod(path, f.mode)
    for s in rendering.slots[node]:
        path = root / s.target.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(fill[s.secret])
        os.chmod(path, s.mode)
    (root / "etc/caddy/routes").mkdir(parents=True, exist_ok=True)


def _in_mounts(root: Path, mounts: list[str], command: str, netns: str | None = None) -> subprocess.CompletedProcess:
    binds = " && ".join(f"mount --bind {shlex.quote(str(root / m.lstrip('/')))} {m}" for m in mounts)
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", f"{binds} && {command}"]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def haproxy_check(root: Path) -> subprocess.CompletedProcess:
    env = shlex.quote(str(root / PATHS.haproxy_env.lstrip("/")))
    return _in_mounts(root, ["/etc/haproxy"],
                      f"set -a && . {env} && set +a && haproxy -c -q -f {PATHS.haproxy_cfg}")


def caddy_check(root: Path) -> subprocess.CompletedProcess:
    return _in_mounts(root, ["/etc/caddy"],
                      f"caddy validate --adapter caddyfile --config {PATHS.caddyfile}")


def caddy_adapt(root: Path) -> subprocess.CompletedProcess:
    """Caddy's own JSON reading of the rendered Caddyfile and routes: which hosts go where."""
    return _in_mounts(root, ["/etc/caddy"], f"caddy adapt --adapter caddyfile --config {PATHS.caddyfile}")


def keepalived_check(root: Path, interface: str, address: str) -> subprocess.CompletedProcess:
    ns = f"dyv-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for cmd in (["link", "add", interface, "type", "veth", "peer", "name", "peer0"],
                    ["link", "set", interface, "up"], ["link", "set", "lo", "up"],
                    ["addr", "add", f"{address}/24", "dev", interface]):
            subprocess.run(["ip", "-n", ns, *cmd], check=True, capture_output=True)
        return _in_mounts(root, ["/etc/keepalived"],
                          f"keepalived -t -f {PATHS.keepalived_conf}", netns=ns)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def validate_node(rendering: Rendering, node: str, root: Path, cert: bytes, interface: str) -> dict[str, subprocess.CompletedProcess]:
    lay_out(rendering, node, root, cert)
    return {
        "haproxy": haproxy_check(root),
        "caddy": caddy_check(root),
        "keepalived": keepalived_check(root, interface, rendering.inventory.nodes[node][0]),
    }
