"""Which lab holds which subnet on this machine: every lab claims its subnet before it creates
anything, under one host-wide lock, so two labs (a devlab and the test suite, two suites in two
checkouts, `dynia up` on a local cluster) never share a subnet, a bridge address or a route —
the machine's route to a shared subnet would send one lab's connections to the other's nodes.

A claim is a file in REGISTRY (/run: gone with the machine's other lab state at reboot) naming
the subnet, the lab directory and the claiming process. It is live while that process runs or
the lab's bridge exists; a dead one is taken over. Beyond the claims, a subnet that overlaps an
address or route this machine already has (a lab from before claims existed, a VPN, docker) is
never handed out nor accepted.
"""
from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

REGISTRY = Path("/run/dynia-lab/subnets")
# Where free subnets are looked for: private (RFC 1918) /24s. The lab's own spec ranges
# (examples/clusters/lab.yaml: 10.213.0.0/24) sit at the start; allocate() skips what a caller avoids.
POOL = ipaddress.ip_network("10.213.0.0/16")
PREFIXLEN = 24


class SubnetTaken(RuntimeError):
    pass


def names_prefix(subnet: str) -> str:
    """The prefix of the lab's interface and namespace names ("dy" + the network address in hex):
    unique on the machine because the subnet is, and short enough for Linux's 15-character
    interface names ({prefix}br, {prefix}v3, {prefix}c12)."""
    return "dy" + format(int(ipaddress.ip_network(subnet).network_address), "08x")


@contextmanager
def _locked(registry: Path):
    registry.mkdir(parents=True, exist_ok=True)
    with open(registry / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _claim_file(registry: Path, subnet: str) -> Path:
    net = ipaddress.ip_network(subnet)
    return registry / f"{net.network_address}_{net.prefixlen}.json"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def _live_claims(registry: Path) -> list[dict]:
    claims = []
    for path in registry.glob("*.json"):
        try:
            claim = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if _pid_alive(claim.get("pid", 0)) or _link_exists(names_prefix(claim["subnet"]) + "br"):
            claims.append(claim)
        else:
            path.unlink(missing_ok=True)
    return claims


def host_networks(exclude_device: str | None = None) -> list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    """The machine's IPv4 addresses (as their networks) and routes: (device, network)."""
    found = []
    for argv in (["ip", "-4", "-o", "addr", "show"], ["ip", "-4", "route", "show", "table", "all"]):
        out = subprocess.run(argv, capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if argv[3] == "addr":
                dev, word = parts[1], parts[3] if len(parts) > 3 and parts[2] == "inet" else None
            else:
                dev = parts[parts.index("dev") + 1] if "dev" in parts else ""
                word = parts[1] if parts and parts[0] in ("local", "broadcast") else (parts[0] if parts else None)
            if word in (None, "default") or dev == exclude_device:
                continue
            try:
                net = ipaddress.ip_network(word, strict=False)
            except ValueError:
                continue
            if not net.is_loopback:
                found.append((dev, net))
    return found


def _holder(subnet: str, lab_dir: Path, claims: list[dict], host: list) -> str | None:
    """Who holds an address of `subnet` other than the lab at lab_dir, or None."""
    net = ipaddress.ip_network(subnet)
    for claim in claims:
        if claim["dir"] != str(lab_dir) and ipaddress.ip_network(claim["subnet"]).overlaps(net):
            return f"the lab at {claim['dir']} ({claim['subnet']}, process {claim['pid']})"
    for dev, other in host:
        if other.overlaps(net):
            return f"this machine's {dev} ({other})"
    return None


def claim(subnet: str, lab_dir: Path, registry: Path = REGISTRY) -> None:
    """Claim `subnet` for the lab at lab_dir (again: nothing changes); SubnetTaken names who holds it."""
    lab_dir = Path(lab_dir).resolve()
    with _locked(registry):
        path = _claim_file(registry, subnet)
        mine = path.exists() and json.loads(path.read_text()).get("dir") == str(lab_dir)
        holder = _holder(subnet, lab_dir, _live_claims(registry),
                         host_networks(exclude_device=names_prefix(subnet) + "br"))
        if holder is not None:
            raise SubnetTaken(f"{subnet} is in use by {holder}")
        if not mine:
            _write(path, {"subnet": str(ipaddress.ip_network(subnet)), "dir": str(lab_dir), "pid": os.getpid()})


def allocate(lab_dir: Path, avoid: tuple[str, ...] = (), registry: Path = REGISTRY) -> str:
    """Claim the first /24 of POOL that no lab, address or route of this machine uses, nor overlaps
    `avoid` (ranges that specs name for labs started without allocation, e.g. a devlab's)."""
    lab_dir = Path(lab_dir).resolve()
    avoided = [ipaddress.ip_network(a) for a in avoid]
    with _locked(registry):
        claims, host = _live_claims(registry), host_networks()
        for net in POOL.subnets(new_prefix=PREFIXLEN):
            if any(net.overlaps(a) for a in avoided) or _holder(str(net), lab_dir, claims, host):
                continue
            _write(_claim_file(registry, str(net)), {"subnet": str(net), "dir": str(lab_dir), "pid": os.getpid()})
            return str(net)
    raise SubnetTaken(f"every /{PREFIXLEN} of {POOL} is in use by a lab or this machine's networks")


def held_elsewhere(subnet: str, lab_dir: Path, registry: Path = REGISTRY) -> bool:
    """Whether a live claim of another lab directory holds `subnet`."""
    if not registry.is_dir():
        return False
    lab_dir = Path(lab_dir).resolve()
    with _locked(registry):
        return any(c["dir"] != str(lab_dir) and c["subnet"] == str(ipaddress.ip_network(subnet))
                   for c in _live_claims(registry))


def release(subnet: str, lab_dir: Path, registry: Path = REGISTRY) -> None:
    """Drop the lab's claim (only its own: a claim another lab took over stays)."""
    with _locked(registry):
        path = _claim_file(registry, subnet)
        try:
            if json.loads(path.read_text()).get("dir") == str(Path(lab_dir).resolve()):
                path.unlink()
        except (OSError, ValueError):
            pass


def _write(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
