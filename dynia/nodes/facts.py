"""Facts: what dynia reads back from a node, each a command plus a parser (pyinfra's model).

A fact's command is constant, secret-free and read-only; its `process` turns the recorded
output of that command into data, and is tested on recorded output in tests/facts/<fact>/.
The output is the node's, so untrusted: each parser checks it against its model (dynia.nodes
.answers) and raises answers.Unreadable when it does not fit; `parse` keeps that exception as
the fact's value, and dynia.nodes.gather.NodeFacts lists it as that node's unreadable fact.
Status, drift-check and the rolling order are assembled from facts, never from ad-hoc SSH.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from ..paths import PATHS
from ..providers.base import NodeProfile
from . import answers as A

VRRP_ROLES = ("MASTER", "BACKUP", "FAULT", "STOP")


@dataclass(frozen=True)
class Fact:
    name: str
    command: str
    parser: Callable[[str, int], Any]

    def process(self, output: str, exit_status: int) -> Any:
        return self.parser(output, exit_status)


def vrrp_role(output: str, exit_status: int) -> dict | None:
    """notify.sh's record of the node's VRRP state: {"role", "since"}, None when never written."""
    words = output.split()
    if exit_status != 0 or not words or words[0] not in VRRP_ROLES:
        return None
    return A.read(A.Vrrp, {"role": words[0], "since": words[1] if len(words) > 1 else None})


def json_state(model: type[A.Model]) -> Callable[[str, int], dict | None]:
    """A parser of a JSON state file of the apply script: its data as `model` has it, None
    when the file is absent; anything else is unreadable, never trusted."""
    def parser(output: str, exit_status: int) -> dict | None:
        if exit_status != 0:
            return None
        data = A.loads(output)
        if not isinstance(data, dict):
            raise A.Unreadable(f"a JSON {type(data).__name__}")
        return A.read(model, data)
    return parser


def pushed_from(output: str, exit_status: int) -> dict[str, str] | None:
    """The apply script's record of the addresses pushes came from: {address: last time},
    None when never written. A key that is not an IP address makes the answer unreadable."""
    import ipaddress

    if exit_status != 0:
        return None
    data = A.loads(output)
    if not isinstance(data, dict) or len(data) > A.MAX_ITEMS:
        raise A.Unreadable("not an object of at most %d addresses" % A.MAX_ITEMS)
    for address, when in data.items():
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise A.Unreadable(f"{address[:64]!r} is not an IP address") from None
        if not isinstance(when, str) or len(when) > 64:
            raise A.Unreadable(f"the time of {address} is not a short string")
    return dict(data)


VRRP = Fact("vrrp", f"cat {PATHS.state('vrrp')}", vrrp_role)
PUSHED_FROM = Fact("pushed_from", f"cat {PATHS.state('pushed-from.json')}", pushed_from)
APPLIED = Fact("applied", f"cat {PATHS.state('applied.json')}", json_state(A.Applied))
DEGRADED = Fact("degraded", f"cat {PATHS.state('degraded')}", json_state(A.Degraded))
# notify.sh's last reserved-IP assignment (None: it never made one: the lab, or never MASTER).
RESERVED_IP = Fact("reserved_ip", f"cat {PATHS.state('reserved-ip.json')}", json_state(A.ReservedIpAssignment))


def data_mounts(output: str, exit_status: int) -> dict[str, str]:
    """What is mounted under the data root /srv: {mount point: source device} (a data volume is
    mounted only on the node that holds it: status, verify and drift-check compare)."""
    if exit_status != 0:
        raise A.Unreadable(f"the mount table was not read (exit {exit_status})")
    mounts: dict[str, str] = {}
    for line in output.splitlines():
        parts = line.split(" ")
        if len(parts) != 2 or not parts[0].startswith("/srv/") or len(line) > 4096:
            raise A.Unreadable(f"{line[:80]!r} is not a mount point under /srv and its source")
        mounts[parts[0]] = parts[1]
        if len(mounts) > A.MAX_ITEMS:
            raise A.Unreadable(f"more than {A.MAX_ITEMS} mounts under /srv")
    return mounts


def volume_actions(output: str, exit_status: int) -> dict[str, dict]:
    """The mover's last provider call per data service: {service: VolumeAction}; {} when it never made one."""
    out: dict[str, dict] = {}
    for line in output.splitlines():
        service, _, record = line.partition(" ")
        if not service or len(out) >= A.MAX_ITEMS:
            raise A.Unreadable(f"{line[:80]!r} is not 'service {{record}}'")
        data = A.loads(record)
        if not isinstance(data, dict):
            raise A.Unreadable(f"the record of {service[:64]} is not an object")
        out[service[:255]] = A.read(A.VolumeAction, data)
    return out


# /proc/self/mountinfo: field 5 is the mount point; the source follows the fstype, after "-".
DATA_MOUNTS = Fact("data_mounts", "awk '$5 ~ \"^/srv/\" {for (i = 7; $i != \"-\"; i++); print $5, $(i + 2)}' "
                                  "/proc/self/mountinfo", data_mounts)
VOLUME_ACTIONS = Fact("volume_actions", f"for f in {PATHS.state('volume-actions')}/*.json; do [ -e \"$f\" ] || "
                                        "continue; n=${f##*/}; printf '%s ' \"${n%.json}\"; tr -d '\\n' < \"$f\"; "
                                        "echo; done", volume_actions)
FACTS = {f.name: f for f in (VRRP, APPLIED, DEGRADED, PUSHED_FROM, RESERVED_IP, DATA_MOUNTS, VOLUME_ACTIONS)}

# Markers between facts in one round trip; a fact's output cannot contain a line that starts
# with this (the files read are dynia's own and hold no such line).
MARK = "::dynia-fact"


def script(facts: list[Fact]) -> str:
    """One shell script that runs every fact and frames each output with its exit status."""
    parts = []
    for f in facts:
        # The extra echo ends a last line that has no newline; parse() removes it again.
        # Braces: a compound command's every part is quiet, and rc is the whole command's status.
        parts.append(f"echo '{MARK} {f.name}'; {{ {f.command}; }} 2>/dev/null; rc=$?; echo; echo \"{MARK}-rc $rc\"")
    return "; ".join(parts)


def parse(facts: list[Fact], output: str) -> dict[str, Any]:
    """Split the script's output back into facts and process each; a fact whose output does not
    fit its model (or breaks its parser) is an Unreadable with the reason, never an exception."""
    by_name = {f.name: f for f in facts}
    results: dict[str, Any] = {}
    name: str | None = None
    lines: list[str] = []
    for line in output.split("\n"):
        if line.startswith(MARK + "-rc ") and name is not None:
            body = "\n".join(lines[:-1] if lines and lines[-1] == "" else lines)
            rc = A.digits(line.split()[-1], 3)
            results[name] = _process(by_name[name], body, 1 if rc is None else rc)
            name, lines = None, []
        elif line.startswith(MARK + " "):
            name, lines = line.split(" ", 1)[1], []
            if name not in by_name:
                name = None
        elif name is not None:
            lines.append(line)
    return results


def _process(fact: Fact, output: str, exit_status: int) -> Any:
    """The fact's data, or the answers.Unreadable that says why there is none."""
    if len(output) > A.MAX_ANSWER:
        return A.Unreadable(f"larger than {A.MAX_ANSWER} bytes")
    try:
        return fact.process(output, exit_status)
    except A.Unreadable as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 — a parser the answer broke: still that node's row
        return A.Unreadable(f"its parser failed ({exc.__class__.__name__})")


# --- status facts ---------------------------------------------------------------------------
#
# Some facts depend on the node: how a component is checked comes from the provider's node
# profile (systemd on droplets, pid files in the lab), which container engine runs the services
# and which device carries the VIP too, and Caddy answers on the node's own private address.
# Those are built by a function of (profile, private address); BUILDERS names them, so the
# recorded-output tests build each with the profile the output was recorded on.

def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def component_states(output: str, exit_status: int) -> dict[str, bool] | None:
    """{"caddy": True, "haproxy": True, "keepalived": False}: whether each infra component runs."""
    states = {}
    for line in _lines(output):
        words = line.split()
        if len(words) == 2 and words[1] in ("up", "down"):
            states[words[0]] = words[1] == "up"
    return states or None


def running(profile: NodeProfile) -> Fact:
    from .commands import COMPONENTS, NodeCommands

    cmds = NodeCommands(profile)
    # Each check's own exit status decides; the script as a whole always exits 0.
    return Fact("running", "; ".join(f"if {cmds.running(c)}; then echo {c} up; else echo {c} down; fi"
                                     for c in COMPONENTS), component_states)


# HAProxy's admin socket speaks a line protocol; socat is not on droplets or lab nodes, python3
# is on both (the apply script needs it), so python3 asks. Read-only: `show stat` changes nothing.
SHOW_STAT_PY = ("import socket,sys;s=socket.socket(socket.AF_UNIX);s.settimeout(3);s.connect(sys.argv[1]);"
                's.sendall(b"show stat\\n");'
                'sys.stdout.write(b"".join(iter(lambda:s.recv(65536),b"")).decode())')
HRSP = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")


def _int(value: str) -> int:
    return A.digits(value.strip(), 18) or 0


def show_stat(output: str, exit_status: int) -> dict | None:
    """HAProxy's `show stat` CSV → {"backends": {name: {"status", "hrsp": {"2xx": n, …},
    "servers": {name: {"status", "check_status", "check_desc", "last_chk"}}}}}; None when the
    socket did not answer. Counters are cumulative since HAProxy's master last started."""
    import csv

    lines = output.splitlines()
    if exit_status != 0 or not lines or not lines[0].startswith("# "):
        return None
    try:
        rows = list(csv.DictReader([lines[0][2:]] + [line for line in lines[1:] if line.strip()]))
    except csv.Error as exc:  # a field over the csv module's limit, a NUL byte
        raise A.Unreadable(f"not HAProxy's CSV ({exc})") from None
    backends: dict[str, dict] = {}
    for row in rows:
        px, sv = row.get("pxname") or "", row.get("svname") or ""
        if not px or sv == "FRONTEND":
            continue
        be = backends.setdefault(px, {"status": None, "hrsp": {}, "servers": {}})
        if sv == "BACKEND":
            be["status"] = row.get("status") or None
            be["hrsp"] = {k: _int(row.get(f"hrsp_{k}") or "") for k in HRSP}
        else:
            be["servers"][sv] = {"status": row.get("status") or None,
                                 "check_status": row.get("check_status") or None,
                                 "check_desc": row.get("check_desc") or None,
                                 "last_chk": row.get("last_chk") or None}
    return A.read(A.ShowStat, {"backends": backends})


def http_code(output: str, exit_status: int) -> dict:
    """curl's `%{http_code}`: {"code": 200}; no answer → {"code": None, "error": …}."""
    code = A.digits(output.strip(), 3) or None
    if code is None:
        return {"code": None, "error": f"no answer (curl exit {exit_status})"}
    return {"code": code}


def caddy_health(profile: NodeProfile, private_ip: str) -> Fact:
    from ..paths import HEALTH_HOST, HEALTH_URI, PORTS

    return Fact("caddy_health", f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 2 -H 'Host: {HEALTH_HOST}' "
                                f"http://{private_ip}:{PORTS.caddy}{HEALTH_URI}", http_code)


# The managed files every node has; the apply script sets `chattr +i` on each while lockdown is on.
LOCKED_FILES = (PATHS.haproxy_cfg, PATHS.origin_pem, PATHS.caddyfile, PATHS.keepalived_conf, PATHS.notify)


def immutable_flags(output: str, exit_status: int) -> dict | None:
    """`lsattr -d FILE…` → {"files": {path: immutable}, "lockdown": "on" | "off" | "partial"};
    a missing file is left out (lsattr reports it on stderr); None when no file was listed."""
    files = {}
    for line in _lines(output):
        words = line.split(None, 1)
        if len(words) == 2 and words[1].startswith("/"):
            files[words[1].strip()] = "i" in words[0]
    if not files:
        return None
    if len(files) > A.MAX_ITEMS:
        raise A.Unreadable(f"more than {A.MAX_ITEMS} files listed")
    locked = sum(files.values())
    return {"files": files, "lockdown": "on" if locked == len(files) else "off" if not locked else "partial"}


def keepalived_priority(output: str, exit_status: int) -> int | None:
    """The `priority N` of the node's keepalived.conf (what keepalived runs with after its last reload)."""
    for line in _lines(output):
        words = line.split()
        if len(words) >= 2 and words[0] == "priority" and A.digits(words[1], 3) is not None:
            return int(words[1])
    return None


def ipv4_addresses(output: str, exit_status: int) -> list[str] | None:
    """`ip -4 -o addr show dev D` → ["10.213.0.11", "10.213.0.100"]; None when the device is unknown."""
    if exit_status != 0:
        return None
    import ipaddress

    out = []
    for line in _lines(output):
        words = line.split()
        if "inet" in words and words.index("inet") + 1 < len(words):
            address = words[words.index("inet") + 1].split("/")[0]
            try:
                out.append(str(ipaddress.IPv4Address(address)))
            except ValueError:
                raise A.Unreadable(f"not an IPv4 address: {address[:64]!r}") from None
    if len(out) > A.MAX_ITEMS:
        raise A.Unreadable(f"more than {A.MAX_ITEMS} addresses")
    return out


def vip_device_addresses(profile: NodeProfile) -> Fact:
    return Fact("addresses", f"ip -4 -o addr show dev {profile.vip_device}", ipv4_addresses)


# Compose labels its containers with their project; dynia's projects are `dynia-<service>`.
PROJECT_LABELS = ("com.docker.compose.project", "io.podman.compose.project")
PROJECT_PREFIX = "dynia-"


def containers_inspect(output: str, exit_status: int) -> list[dict] | None:
    """`docker inspect` / `podman inspect` of the compose containers, with `image inspect` of
    their images ({"containers": […], "images": […]}; a bare list of containers from an older
    reader) → one dict per dynia container: {"service", "name", "state", "image", "image_id",
    "digest"}. digest: the registry digest the container's image is known by in its repository
    (from the image's RepoDigests, which keep the registry's manifest digest of every pull), else
    the repository digest the engine reports (podman's ImageDigest: for an image pushed from
    another store, not the registry's), else the image id (all content addresses of what runs).
    None when the engine could not be asked."""
    if exit_status != 0:
        return None
    data = A.loads(output or "[]")
    if isinstance(data, list):
        data = {"containers": data}
    if not isinstance(data, dict) or "containers" not in data:
        raise A.Unreadable(f"a JSON {type(data).__name__}, not a list of containers")
    read = A.read(A.Inspection, data)
    repo_digests = {_image_id(i.get("Id")): i.get("RepoDigests") or [] for i in read.get("images") or []}
    out = []
    for c in read["containers"]:
        config = c.get("Config") or {}
        labels = config.get("Labels") or c.get("Labels") or {}
        project = next((labels[k] for k in PROJECT_LABELS if labels.get(k)), "")
        if not project.startswith(PROJECT_PREFIX):
            continue  # a container someone else runs on the node
        image_id = _image_id(c.get("Image"))
        image = c.get("ImageName") or config.get("Image") or None
        state = c.get("State")
        out.append({"service": project[len(PROJECT_PREFIX):], "name": (c.get("Name") or "").lstrip("/"),
                    "state": (state.get("Status") if isinstance(state, dict) else state) or None,
                    "image": image, "image_id": image_id or None,
                    "digest": _registry_digest(image, repo_digests.get(image_id, []))
                    or c.get("ImageDigest") or image_id or None})
    return sorted(out, key=lambda c: (c["service"], c["name"]))


def _image_id(value: str | None) -> str:
    if not value:
        return ""
    return value if ":" in value else f"sha256:{value}"


def _registry_digest(image: str | None, repo_digests: list[str]) -> str | None:
    """The digest the image reference names (`name@sha256:…`), else the one digest its image is
    known by in the reference's repository; None when there is no such single answer."""
    named = re.search(r"@(sha256:[0-9a-f]{64})$", image or "")
    if named:
        return named.group(1)
    repository = re.sub(r"(?::[\w][\w.-]*)?(?:@.*)?$", "", image or "", count=1)
    mine = {d.split("@", 1)[1] for d in repo_digests if "@" in d and d.split("@", 1)[0] == repository}
    return mine.pop() if len(mine) == 1 else None


def containers(profile: NodeProfile) -> Fact:
    engine = profile.container_engine
    label = PROJECT_LABELS[1] if engine == "podman" else PROJECT_LABELS[0]
    # No container → "[]" (inspect without an argument fails); a failing `ps` fails the fact.
    inspect = f"{engine} inspect $ids"
    if engine == "podman":
        # podman names the image without the digest it was created by, and its ImageDigest is
        # not the registry's for an image pushed from another store: the images' RepoDigests are
        # (containers_inspect). docker keeps the reference as given (Config.Image).
        inspect = (f"imgs=$({engine} inspect --format '{{{{.Image}}}}' $ids | sort -u) && "
                   f"printf '{{\"containers\": ' && {engine} inspect $ids && printf ', \"images\": ' && "
                   f"{engine} image inspect $imgs && printf '}}\\n'")
    return Fact("containers", f"ids=$({engine} ps -aq --filter label={label}) && "
                              f"{{ if [ -z \"$ids\" ]; then echo '[]'; else {inspect}; fi; }}",
                containers_inspect)


PRIORITY = Fact("priority", f"grep -E '^[[:space:]]*priority[[:space:]]' {PATHS.keepalived_conf}",
                keepalived_priority)
LOCKDOWN = Fact("lockdown", f"lsattr -d {' '.join(LOCKED_FILES)}", immutable_flags)
SHOW_STAT = Fact("show_stat", f"python3 -c '{SHOW_STAT_PY}' {PATHS.haproxy_admin_socket}", show_stat)
FACTS.update({f.name: f for f in (PRIORITY, LOCKDOWN, SHOW_STAT)})

# Facts built from the node: name → builder(profile, private_ip).
BUILDERS: dict[str, Callable[[NodeProfile, str], Fact]] = {
    "running": lambda profile, ip: running(profile),
    "addresses": lambda profile, ip: vip_device_addresses(profile),
    "containers": lambda profile, ip: containers(profile),
    "caddy_health": caddy_health,
}


def status_facts(profile: NodeProfile, private_ip: str) -> list[Fact]:
    """Every fact `dynia status` reads from one node, in one round trip."""
    return [VRRP, APPLIED, DEGRADED, RESERVED_IP, DATA_MOUNTS, VOLUME_ACTIONS, PRIORITY, LOCKDOWN, SHOW_STAT,
            *(build(profile, private_ip) for build in BUILDERS.values())]


# --- the certificate HAProxy serves, read on the node ----------------------------------------
#
# `dynia infra verify` must not open TLS from the operator's machine to a node's public
# address: in origin mode the host firewall opens 80/443 to Cloudflare's ranges only. On the
# node, a handshake to 127.0.0.1 reaches the same `bind :443` (every address), and loopback is
# exempt from the origin-pull check. python3 (on every node, the apply script needs it) does
# the handshake: openssl is not installed on droplets. No CA check on purpose: an Origin CA
# certificate is trusted only by Cloudflare; what is compared is the fingerprint itself.
SERVED_CERT_PY = ("import socket,ssl,sys;c=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT);c.check_hostname=False;"
                  "c.verify_mode=ssl.CERT_NONE;"
                  "s=c.wrap_socket(socket.create_connection((sys.argv[1],int(sys.argv[2])),3),server_hostname=sys.argv[3]);"
                  "sys.stdout.write(ssl.DER_cert_to_PEM_cert(s.getpeercert(True)))")


def served_certificate_pem(output: str, exit_status: int) -> dict:
    """The PEM certificate the handshake got → its public facts: {"sha256", "not_after"
    (…Z), "names", "self_signed"}; no certificate → {"error": why} (exit status and the last
    line of the handshake's complaint, which the fact script keeps quiet: so, the status)."""
    import base64
    import hashlib

    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    if exit_status != 0 or begin not in output or end not in output.split(begin, 1)[1]:
        return {"error": f"no TLS handshake on the node's loopback (exit {exit_status})"}
    body = output.split(begin, 1)[1].split(end, 1)[0]
    try:
        from cryptography import x509

        der = base64.b64decode("".join(body.split()), validate=True)
        cert = x509.load_der_x509_certificate(der)
    except Exception as exc:  # noqa: BLE001 — garbage from the node is that node's row
        return {"error": f"the node's answer is not a certificate ({exc.__class__.__name__})"}
    try:
        names = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                     .get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = []
    return {"sha256": hashlib.sha256(der).hexdigest(),
            "not_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "names": names, "self_signed": cert.issuer == cert.subject}


def served_certificate(sni: str) -> Fact:
    """The certificate HAProxy serves on this node for `sni` (a bound domain)."""
    import shlex

    from ..paths import PORTS

    return Fact("served_certificate", f"python3 -c '{SERVED_CERT_PY}' 127.0.0.1 {PORTS.https} {shlex.quote(sni)}",
                served_certificate_pem)
