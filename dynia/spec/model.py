"""The cluster spec: the one source of truth (clusters/<name>.yaml), as pydantic models.

Validation that needs only the spec lives here; checks that read compose files live in
dynia.spec.compose. Every failure becomes a `config` DyniaError that names the key, its YAML
line and the fix.
"""
from __future__ import annotations

import ipaddress
import math
import re
import socket
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from ..errors import DyniaError, config_error
from ..names import NAME_RULE, NODE_ID, is_name
from ..paths import INFRA_PORTS
from .headers import FRAMING_HEADERS, HTX_BLOCK, REWRITE_BUDGET, rewrite_cost
from .isolation import IsolationException
from .reserved import reserved_service_names

SCHEMA_VERSION = 1

# Every identifier pattern is applied with re.fullmatch: `$` also matches before a trailing
# newline, and "admin\n" as a service name once split a notify.sh line in two.
LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
DURATION = re.compile(r"(\d{1,9}(?:\.\d{1,9})?)(ms|s|m|h)")
HEALTH_PATH = re.compile(r"/[A-Za-z0-9._~/%-]*")
IMAGE_SLUG = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # DigitalOcean slugs (ubuntu-24-04-x64) or image ids
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

# The VPC must be private address space: loopback, 0.0.0.0/8 and the link-local metadata
# range (169.254.169.254) are "private" to ipaddress but would break or expose the nodes.
VPC_RANGES = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
# `pulumi login` URL schemes: Pulumi Cloud (hosted or self-hosted, https) and the DIY backends.
BACKEND_SCHEMES = ("https", "file", "s3", "azblob", "gs")
MAX_COMPOSE_PATH = 255


def parse_duration(value: Any) -> float:
    """Seconds, from `2s`, `500ms`, `1m`, `1h` or a plain number of seconds (unbounded here:
    every field bounds its own, which also turns away YAML's .inf and .nan)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an int beyond any float
            return math.inf
    m = DURATION.fullmatch(str(value).strip())
    if not m:
        raise ValueError("a duration like 500ms, 2s, 1m or 1h")
    return float(m.group(1)) * _UNIT[m.group(2)]


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    return f"{seconds:g}s"


def _spoken(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g}{unit}"
    return format_duration(seconds)


def duration(low: float, high: float) -> Any:
    """A duration field bounded to [low, high] seconds: what the nodes' gate, HAProxy and the
    drain can wait for (a day-long health timeout would outlive every push's connection)."""
    def bounded(seconds: float) -> float:
        if not low <= seconds <= high:  # False for NaN too
            raise ValueError(f"from {_spoken(low)} to {_spoken(high)}")
        return seconds

    return Annotated[float, BeforeValidator(parse_duration), AfterValidator(bounded),
                     PlainSerializer(format_duration),
                     Field(json_schema_extra={"type": "string", "pattern": f"^{DURATION.pattern}$"})]


def is_domain(value: str) -> bool:
    labels = value.split(".")
    return (len(value) <= 253 and len(labels) >= 2 and all(LABEL.fullmatch(p) for p in labels)
            and not labels[-1].isdigit())


def check_compose_path(v: str) -> str:
    """A compose path is a plain relative path inside the project: it is read from there and
    shown in the header of the rendered file, so nothing in it may escape either."""
    parts = PurePosixPath(v).parts
    if not v or len(v) > MAX_COMPOSE_PATH or not v.isprintable() or "\\" in v:
        raise ValueError("a relative path of printable characters like services/api.yml")
    if v.startswith("/") or ".." in parts:
        raise ValueError("a path inside the project directory like services/api.yml "
                         "(no absolute path, no ..)")
    return v


def check_backend_url(v: str) -> str:
    scheme, sep, rest = v.partition("://")
    if not sep or scheme not in BACKEND_SCHEMES or not rest or not v.isprintable() or any(c.isspace() for c in v):
        raise ValueError("a Pulumi backend URL: " + ", ".join(f"{s}://…" for s in BACKEND_SCHEMES)
                         + " (no spaces or control characters)")
    return v


def in_zone(domain: str, zone: str) -> bool:
    return domain == zone or domain.endswith("." + zone)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Provider(Strict):
    """Where the nodes live. The rules that depend on the kind (regions, sizes) are the
    provider's own (dynia.providers), checked with the other cross-key rules."""
    kind: Literal["digitalocean", "local"] = Field(
        "digitalocean", description="digitalocean (droplets behind Cloudflare), or local: lab nodes on this "
                                    "machine (network namespaces), for tests and demos")
    region: str | None = Field(None, description="DigitalOcean region slug, e.g. sgp1 (required for digitalocean)")
    size: str = Field(description="droplet size slug, e.g. s-1vcpu-1gb; its RAM feeds the resource guard")
    image: str = Field("ubuntu-24-04-x64", description="droplet image slug: ubuntu-24-04-x64 or debian-13-x64 "
                                                       "(each with its own package list)")
    vpc_ip_range: str = Field("10.110.0.0/24", description="the private network of the nodes: a private IPv4 "
                                                           "range of /28 or larger; `cluster init` picks a /24 of "
                                                           "10.160.0.0/11 from the cluster name")

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        if not IMAGE_SLUG.fullmatch(v):
            raise ValueError("an image slug like ubuntu-24-04-x64 (lower-case letters, digits, . _ -)")
        return v

    @field_validator("vpc_ip_range")
    @classmethod
    def _vpc(cls, v: str) -> str:
        try:
            net = ipaddress.ip_network(v, strict=True)
        except ValueError:
            net = None
        if (not isinstance(net, ipaddress.IPv4Network) or net.prefixlen > 28
                or not any(net.subnet_of(r) for r in VPC_RANGES)):
            raise ValueError("a private IPv4 range (inside 10.0.0.0/8, 172.16.0.0/12 or "
                             "192.168.0.0/16) of /28 or larger, like 10.110.0.0/24")
        return str(net)



ACME_DIRECTORIES = {
    "production": "https://acme-v02.api.letsencrypt.org/directory",
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}
EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}")
# An ACME directory is a plain https URL: host (a name, a dotted IPv4 address or a bracketed
# IPv6 one), an optional port, a path. No user:password (ACME authenticates with the account
# key; a credential here would be printed wherever the directory is named), no query or
# fragment, nothing two URL parsers could read differently (\\, @, %-encoded hosts).
ACME_URL = re.compile(r"https://(?P<host>[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::(?P<port>[0-9]{1,5}))?"
                      r"(?P<path>/[A-Za-z0-9._~!$&'()*+,;=:/%-]{0,400})?")
# Names that resolve to this machine or a private network whatever DNS says (RFC 6761, 6762,
# 8375, ICANN's .internal).
LOCAL_NAME_SUFFIXES = ("localhost", "local", "localdomain", "internal", "home.arpa")
# IPv6 prefixes that carry an IPv4 address in their last 32 bits (mapped, NAT64).
IPV4_CARRIERS = tuple(ipaddress.ip_network(n) for n in ("::ffff:0:0/96", "64:ff9b::/96"))


def check_acme_directory(v: str) -> str:
    """The shape of tls.acme_directory: production, staging, or a plain https URL whose host is
    a name or an address written canonically. Where it may point (no private address) is a
    rule outside the local provider: acme_directory_problem."""
    if v in ACME_DIRECTORIES:
        return v
    m = ACME_URL.fullmatch(v)
    if m is None:
        if "@" in v.partition("://")[2].partition("/")[0]:
            raise ValueError("an ACME directory URL carries no user:password (ACME authenticates with "
                             "the account key): remove it")
        raise ValueError("production, staging, or a plain https:// ACME directory URL (a host, an optional "
                         "port and a path; no user:password, query or fragment)")
    if m.group("port") is not None and not 1 <= int(m.group("port")) <= 65535:
        raise ValueError(f"port {m.group('port')} is not between 1 and 65535")
    host = m.group("host").lower()
    if acme_address(host) is None and not all(LABEL.fullmatch(p) for p in host.split(".")):
        raise ValueError(f"the host {host} is neither a domain name nor an address")
    return v


def acme_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a URL's (lower-case) host names, in any spelling the resolver accepts
    (`2130706433`, `0x7f.1` and `127.1` are all 127.0.0.1 to getaddrinfo); None for a name.
    An IPv6 address that carries an IPv4 one (mapped, NAT64) is that IPv4 address. A
    non-canonical IPv4 spelling raises ValueError: what the spec says is what is dialled."""
    if host.startswith("["):
        try:
            v6 = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{host} is not an IPv6 address") from None
        carried = any(v6 in n for n in IPV4_CARRIERS)
        return ipaddress.IPv4Address(int(v6) & 0xFFFFFFFF) if carried else v6
    try:
        packed = socket.inet_aton(host)
    except OSError:
        return None
    address = ipaddress.IPv4Address(packed)
    if str(address) != host:
        raise ValueError(f"the host {host} is the address {address}: write it so")
    return address


def acme_directory_problem(url: str) -> str | None:
    """Why a directory URL points where no public ACME server lives — a loopback, private,
    link-local (the droplet metadata service) or otherwise non-global address, or a name that
    resolves locally — or None. Names are judged as written, never resolved (validation
    touches no network)."""
    m = ACME_URL.fullmatch(url)
    if m is None:  # production, staging
        return None
    host = m.group("host").lower()
    address = acme_address(host)
    if address is not None:
        return None if address.is_global else f"{address} is not a public address"
    if not is_domain(host):
        return f"{host} is not a public domain name like acme.example.com"
    if any(host == s or host.endswith("." + s) for s in LOCAL_NAME_SUFFIXES):
        return f"{host} names this machine or a private network"
    return None


class Tls(Strict):
    mode: Literal["origin", "letsencrypt"] = Field(
        "origin", description="origin: a Cloudflare Origin CA certificate, records proxied through Cloudflare; "
                              "letsencrypt: one ACME certificate for the cluster, records DNS-only (not proxied)")
    acme_directory: str = Field("production", description="letsencrypt only: production or staging (Let's "
                                                          "Encrypt's), or the https URL of another ACME directory "
                                                          "(no user:password, query or fragment; outside the local "
                                                          "provider a public host, never a private address)")
    email: str | None = Field(None, description="letsencrypt only: the ACME account's contact e-mail (optional)")

    @field_validator("acme_directory")
    @classmethod
    def _directory(cls, v: str) -> str:
        return check_acme_directory(v)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not EMAIL.fullmatch(v):
            raise ValueError("an e-mail address like ops@example.com")
        return v

    @property
    def directory_url(self) -> str:
        return ACME_DIRECTORIES.get(self.acme_directory, self.acme_directory)


# Sources no operator's SSH connection can come from across the network: a range inside one of
# these admits nobody (or only the node itself, which `iif lo` admits anyway).
NO_OPERATOR_RANGES = (
    ("loopback", ("127.0.0.0/8", "::1/128"), ""),
    ("link-local", ("169.254.0.0/16", "fe80::/10"), ""),
    ("multicast", ("224.0.0.0/4", "ff00::/8"), ""),
    ("this-network", ("0.0.0.0/8", "::/128"), ""),
    ("IPv4-mapped", ("::ffff:0:0/96",), " (IPv4 packets are matched as IPv4: write the IPv4 range)"),
)


def check_ranges(v: list[str]) -> list[str]:
    """CIDR ranges rendered into every node's firewall: normalised, so `10.0.0.1/8` cannot
    read as a host while nft loads the whole /8; without an IPv6 zone id (`fe80::%eth0/64`
    parses, and its free text went verbatim into firewall.nft); never a range that cannot
    admit an operator."""
    out = []
    for r in v:
        try:
            net = ipaddress.ip_network(r, strict=True)
        except ValueError:
            net = None
        if net is None or getattr(net.network_address, "scope_id", None) is not None:
            raise ValueError(f"{r[:64]!r} is not a CIDR range like 203.0.113.0/24 or 2001:db8::/32 "
                             "(host bits must be zero; a single address is /32 or /128; no %zone)")
        for kind, ranges, note in NO_OPERATOR_RANGES:
            if any(net.version == n.version and net.subnet_of(n)  # type: ignore[arg-type]  # same version
                   for n in map(ipaddress.ip_network, ranges)):
                raise ValueError(f"{net} is {kind} address space: no operator connects from it{note}")
        out.append(str(net))
    if len(set(out)) != len(out):
        raise ValueError("a range is listed twice")
    return out


class Firewall(Strict):
    """Every node's host firewall (nftables). Whatever is set here, a node accepts 80/443 only
    from Cloudflare's ranges in origin mode (from everyone with letsencrypt) and VRRP, Caddy and
    the stats port only from the other nodes."""
    admin_ranges: list[str] = Field(["0.0.0.0/0", "::/0"], min_length=1, max_length=64,
                                    description="who may reach SSH (22) on every node, as CIDR ranges: dynia "
                                                "itself must connect from one of them. Default: everyone "
                                                "(keys only, no passwords); narrow it to your office, VPN and "
                                                "CI ranges (no loopback, link-local or multicast range, no %zone)")

    @field_validator("admin_ranges")
    @classmethod
    def _ranges(cls, v: list[str]) -> list[str]:
        return check_ranges(v)


REGISTRY_SERVER = re.compile(r"(?=.{1,253}(?::\d{1,5})?$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
                             r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*(?::\d{1,5})?")
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")


class Registry(Strict):
    """A private container registry every node logs in to (dynia.state.registries): the credentials
    reach each node as a secret slot, read by `compose up` and the ahead-of-time pulls."""
    server: str = Field(description="the registry's host as image references name it, like ghcr.io, "
                                    "registry.digitalocean.com or docker.io (Docker Hub); host[:port], "
                                    "no scheme or path")
    user: str = Field(min_length=1, max_length=256, description="the user name dynia logs in as (GHCR: your "
                                                                "GitHub user; DigitalOcean: any, the token is "
                                                                "what counts)")
    token_env: str = Field(description="the environment variable holding the token (never the token itself); "
                                       "without it set, .dynia/secrets/<cluster>.registries.json "
                                       "({server: token}, 0600) is read")

    @field_validator("server")
    @classmethod
    def _server(cls, v: str) -> str:
        if not REGISTRY_SERVER.fullmatch(v):
            raise ValueError("a lower-case registry host like ghcr.io or registry.example.com:5000 "
                             "(no https://, no path)")
        return v

    @field_validator("user")
    @classmethod
    def _user(cls, v: str) -> str:
        if not v.isprintable() or any(c.isspace() for c in v) or ":" in v:
            raise ValueError("a user name without spaces, colons or control characters")
        return v

    @field_validator("token_env")
    @classmethod
    def _token_env(cls, v: str) -> str:
        if not ENV_NAME.fullmatch(v):
            raise ValueError("an environment variable name like GHCR_TOKEN (upper case, digits, _)")
        return v


class Health(Strict):
    """The health gate every push passes before the roll moves on."""
    retries: int = Field(5, ge=1, le=50, description="tries before the gate fails and the node is rolled back")
    interval: duration(0.1, 60.0) = Field(2.0, description="pause after the first failed try, like 2s or 500ms "  # type: ignore[valid-type]
                                                           "(100ms to 1m)")
    backoff: float = Field(2.0, ge=1.0, le=10.0, description="each pause is the previous one times this")
    timeout: duration(1.0, 600.0) = Field(60.0, description="the gate gives up after this long, whatever the tries "  # type: ignore[valid-type]
                                                            "left (1s to 10m)")

    @model_validator(mode="after")
    def _timeout_covers_one_try(self) -> "Health":
        if self.timeout < self.interval:
            raise ValueError("timeout must be at least one interval")
        return self


class Guard(Strict):
    """The resource guard: will the services placed on a node fit in its RAM?"""
    memory_threshold: float = Field(0.8, gt=0.0, le=1.0, description="largest fraction of a node's RAM "
                                                                     "the infra budget and services may use")
    on_exceed: Literal["warn", "fail"] = Field("fail", description="fail: render and plan refuse; warn: they "
                                                                   "print a warning")


HEADER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,63}")
# Rendered inside a quoted HAProxy log-format string: no quote, backslash or % (a format directive).
HEADER_VALUE = re.compile(r'[ !#-$&-\[\]-~]{1,512}')


class RateLimit(Strict):
    """HAProxy counts each client's requests to one service over a sliding window."""
    requests: int = Field(200, ge=1, le=1_000_000, description="requests one client may make in a window")
    window: duration(1.0, 3600.0) = Field(10.0, description="the window, like 10s, 1m or 1h (whole seconds, 1s to 1h)")  # type: ignore[valid-type]

    @field_validator("window")
    @classmethod
    def _window(cls, v: float) -> float:
        if v != int(v):
            raise ValueError("whole seconds from 1s to 1h, like 10s or 1m")
        return v


DATA_PATH = re.compile(r"/srv(/[a-z0-9][a-z0-9._-]{0,62}){1,4}")


class Data(Strict):
    """A block-storage volume that follows the VIP: attached to one node at a time (the
    provider's single attachment is the fence), moved by notify.sh before the service starts."""
    size_gb: int = Field(ge=1, le=16_384, description="the volume's size in GiB (1 to 16,384), given to the "
                                                      "provider when it creates the volume; it only grows (a "
                                                      "smaller value is refused)")
    filesystem: Literal["ext4", "xfs"] = Field("ext4", description="made once, when the volume is created (a "
                                                                    "change is refused)")
    mount: str = Field(description="where the holder mounts it, under the data root /srv (like /srv/db); "
                                   "the compose file bind-mounts this path into its container")

    @field_validator("mount")
    @classmethod
    def _mount(cls, v: str) -> str:
        if not DATA_PATH.fullmatch(v):
            raise ValueError("a path under /srv of lowercase names, like /srv/db (the node's data root)")
        return v


# A secret's name: a file name inside the container (/run/secrets/NAME) and on the node.
SECRET_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
SECRET_COMMAND_MAX = 32


class AppSecret(Strict):
    """Where one of a service's secrets comes from on the operator's machine, at push time
    (dynia.state.app_secrets): the environment, a command, or (neither given) the secrets store."""
    env: str | None = Field(None, description="the environment variable holding the value")
    command: list[str] | None = Field(None, min_length=1, max_length=SECRET_COMMAND_MAX,
                                      description="a command printing the value (a password manager's CLI), "
                                                  "run without a shell")

    @field_validator("env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        if v is not None and not ENV_NAME.fullmatch(v):
            raise ValueError("an environment variable name like DB_PASSWORD (upper case, digits, _)")
        return v

    @field_validator("command")
    @classmethod
    def _command(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not all(a and a.isprintable() and len(a) <= 1024 for a in v):
            raise ValueError("a list of arguments like [pass, show, api/db] (printable, none empty)")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> "AppSecret":
        if self.env is not None and self.command is not None:
            raise ValueError("env and command are two sources: give one (neither: the secrets store)")
        return self

    @property
    def source(self) -> str:
        """store, env:NAME or command:ARGV0, as `dynia secret list` shows it."""
        if self.env is not None:
            return f"env:{self.env}"
        if self.command is not None:
            return f"command:{self.command[0]}"
        return "store"

# A one-off command's argv (release_command, `dynia run`): words of printable text, sent to the
# node as one shell-quoted command line.
MAX_ARGV = 64
MAX_ARG = 1024


def check_argv(v: list[str]) -> list[str]:
    """An argv list: 1-64 words, each 1-1,024 printable characters (no newline, no control
    character: the words reach a shell command line on the node, quoted)."""
    if not 1 <= len(v) <= MAX_ARGV:
        raise ValueError(f"a command of 1 to {MAX_ARGV} words, like [bin/rails, db:migrate]")
    for word in v:
        if not word or len(word) > MAX_ARG or not word.isprintable():
            raise ValueError(f"word {word[:64]!r}: 1-{MAX_ARG} printable characters (no newline or control character)")
    return v


class Maintenance(Strict):
    """A service in maintenance: every node's HAProxy answers its domains with a small 503 page
    and Retry-After; its health checks and the other services are untouched."""
    message: str = Field("This site is down for maintenance. Please try again shortly.", min_length=1,
                         max_length=200, description="`dynia maintenance on` sets it: every node's HAProxy answers "
                                                     "the service's domains with a 503 page showing this sentence "
                                                     "(1-200 printable characters; HTML-escaped); `off` removes "
                                                     "maintenance")
    retry_after: duration(1.0, 86400.0) = Field(  # type: ignore[valid-type]
        300.0, description="the Retry-After the 503 answer carries, like 5m (whole seconds, 1s to 24h)")

    @field_validator("message")
    @classmethod
    def _message(cls, v: str) -> str:
        if not v.isprintable():
            raise ValueError("printable characters on one line (no newline or control character)")
        return v

    @field_validator("retry_after")
    @classmethod
    def _whole(cls, v: float) -> float:
        if v != int(v):
            raise ValueError("whole seconds from 1s to 24h, like 30s or 5m")
        return v


class Service(Strict):
    """One of the operator's docker-compose services, mirrored on the nodes its placement names."""
    compose: str = Field(description="the compose file, relative to the project directory")
    port: int = Field(ge=1024, le=65535, description="the host port the compose file publishes "
                                                     "(bound to 127.0.0.1; Caddy routes to it)")
    domain: str | list[str] | None = Field(
        None, description="the domain routed to it, inside the cluster's zone, or a list of them "
                          "(`[example.com, www.example.com]`: the apex and www); one DNS record each, "
                          "created after its gates pass")
    health_path: str = Field("/", description="a path that answers 2xx or 3xx when the service is healthy")
    placement: Literal["all", "active-only", "standby-only"] = Field(
        "all", description="all nodes, only the VIP holder (active-only) or only the others (standby-only); "
                           "notify.sh switches them on failover")

    headers: dict[str, str | None] = Field(
        {}, description="response headers by name, over dynia's security headers (Strict-Transport-Security, "
                        "X-Frame-Options, X-Content-Type-Options, Referrer-Policy): a value replaces or adds one, "
                        "null removes one. Names are case-insensitive; framing and hop-by-hop headers (Content-Length, "
                        "Transfer-Encoding, Connection, Upgrade, Host, …) are refused; all set headers together fit "
                        "HAProxy's rewrite space (1,024 bytes, each name + value + 8)")
    rate_limit: RateLimit | None = Field(RateLimit(), description="requests per client (its real address) before "
                                                                  "HAProxy answers 429; null turns it off")
    state: Literal["local", "replicated"] = Field(
        "local", description="local: each copy keeps its own data, so a service with volumes or data-root bind "
                             "mounts must not run on several nodes; replicated: the app replicates its data "
                             "itself, so it may (every plan says so)")
    data: Data | None = Field(None, description="a block-storage volume for an active-only service (DigitalOcean "
                                                "Block Storage in the cluster's region; the lab's loop device): it "
                                                "follows the VIP, and `cluster destroy` keeps it unless "
                                                "--delete-data (docs/spec.md: Data that follows the VIP)")
    secrets: dict[str, AppSecret | None] = Field(
        {}, max_length=64,
        description="the secrets the service's containers get, by name: each is a file at /run/secrets/NAME "
                    "in every container of its compose file (a 0600 root file on the node, never an "
                    "environment variable). The value comes from the operator's machine at push time: "
                    "`{env: VAR}`, `{command: [pass, show, x]}` (run without a shell), or (null) the secrets "
                    "store, .dynia/secrets/<cluster>/<service>/NAME (0600; `dynia secret set`)")
    release_command: list[str] | None = Field(
        None, description="a command run once per release (a new compose file: image, environment) before the "
                          "roll, in a new container of the new compose file on one node (the VIP holder for "
                          "active-only, else the first in rolling order), as an argv list like [bin/rails, "
                          "db:migrate]; it fails: the roll does not start")
    maintenance: Maintenance | None = Field(
        None, description="set by `dynia maintenance on|off`: HAProxy answers the service's domains with a 503 "
                          "page (message, retry_after) on every node; null or absent: in service")
    isolation_exceptions: list[IsolationException] = Field(
        [], description="what this service's compose file may do that would otherwise be refused for defeating "
                        "the node's isolation: privileged, host-namespaces, host-network, capabilities, devices, "
                        "security-opt, host-mounts (every plan shows each one)")

    @property
    def domains(self) -> list[str]:
        """Every domain routed to it, in the spec's order (the first one names its health checks)."""
        if self.domain is None:
            return []
        return [self.domain] if isinstance(self.domain, str) else list(self.domain)

    def runs_on(self, is_master: bool) -> bool:
        """Does this service run on a node in that role? (notify.sh switches it on failover.)"""
        return self.placement == "all" or (self.placement == "active-only") == is_master

    @field_validator("compose")
    @classmethod
    def _compose(cls, v: str) -> str:
        return check_compose_path(v)

    @field_validator("release_command")
    @classmethod
    def _release_command(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else check_argv(v)

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str | None]) -> dict[str, str | None]:
        seen: dict[str, str] = {}
        for name, value in v.items():
            if not HEADER_NAME.fullmatch(name):
                raise ValueError(f"header name {name[:64]!r}: letters, digits and dashes, like X-Frame-Options")
            if name.lower() in seen:
                raise ValueError(f"headers {seen[name.lower()]} and {name} are one header (names are "
                                 "case-insensitive): keep one")
            seen[name.lower()] = name
            if name.lower() in FRAMING_HEADERS:
                raise ValueError(f"header {name} frames the message or describes one connection: HAProxy "
                                 "and the app set it, a fixed value would break answers")
            if value is not None and not HEADER_VALUE.fullmatch(value):
                raise ValueError(f"header {name}: a value of 1-512 printable ASCII characters without "
                                 '", \\ or %')
        if rewrite_cost(v) > REWRITE_BUDGET:
            raise ValueError(f"the headers set on each answer take {rewrite_cost(v)} bytes of HAProxy's "
                             f"{REWRITE_BUDGET}-byte rewrite space (each: name + value + {HTX_BLOCK}, "
                             "dynia's defaults included): shorten or drop some")
        return v

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, v: dict[str, AppSecret | None]) -> dict[str, AppSecret | None]:
        for name in v:
            if not SECRET_NAME.fullmatch(name):
                raise ValueError(f"secret name {name[:64]!r}: a letter, then letters, digits, _ or -, "
                                 "at most 64 characters")
        if len({n.lower() for n in v}) != len(v):
            raise ValueError("two secret names differ only in case: keep one")
        return v

    def secret_sources(self) -> dict[str, AppSecret]:
        """Every secret with its source (null is the store)."""
        return {n: s or AppSecret() for n, s in sorted(self.secrets.items())}

    @field_validator("isolation_exceptions")
    @classmethod
    def _exceptions(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("an exception is listed twice")
        return v

    @field_validator("port")
    @classmethod
    def _port(cls, v: int) -> int:
        if v in INFRA_PORTS:
            raise ValueError(f"port {v} is used by {INFRA_PORTS[v]} on every node")
        return v

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list):
            if not v:
                raise ValueError("an empty list: give one domain or more, or remove the key")
            for d in v:
                if not is_domain(d):
                    raise ValueError(f"{d!r} is not a valid lower-case domain name")
            if len(set(v)) != len(v):
                raise ValueError("a domain is listed twice")
        elif v is not None and not is_domain(v):
            raise ValueError("not a valid lower-case domain name")
        return v

    @field_validator("health_path")
    @classmethod
    def _health_path(cls, v: str) -> str:
        if not HEALTH_PATH.fullmatch(v):
            raise ValueError("an absolute URL path like /healthz")
        return v


class ClusterSpec(Strict):
    """A cluster: clusters/<name>.yaml, the only source of truth."""
    version: int = Field(SCHEMA_VERSION, description="schema version; a newer spec than this dynia understands "
                                                     "is refused")
    name: str = Field(description="cluster name, equal to the file name")
    provider: Provider = Field(description="where the nodes live: kind, region, size, image, vpc_ip_range")
    nodes: list[str] = Field(min_length=1, max_length=5, description="1-5 stable two-word node ids (misty-owl); "
                                                                     "Pulumi names derive from them")
    master: str | None = Field(None, description="the node that should hold the reserved IP "
                                                 "(default: the first node)")
    domain: str = Field(description="the Cloudflare zone; every service domain must be inside it")
    tls: Tls = Field(Tls(), description="the certificate HAProxy serves (mode)")
    firewall: Firewall = Field(Firewall(), description="every node's host firewall: admin_ranges")
    health: Health = Field(Health(), description="the health gate: retries, interval, backoff, timeout")
    guard: Guard = Field(Guard(), description="the resource guard: memory_threshold, on_exceed")
    lockdown: bool = Field(False, description="chattr +i on managed files between applies")
    backend: str | None = Field(None, description="Pulumi state backend URL (https://, file://, s3://, azblob://, "
                                                  "gs://); default .dynia/state or PULUMI_BACKEND_URL")
    services: dict[str, Service] = Field({}, description="the operator's services by name (a name dynia uses "
                                                         "itself, like acme, is refused)")
    registries: list[Registry] = Field([], max_length=16, description="private container registries every node "
                                                                     "logs in to before it pulls a service's "
                                                                     "images (one entry per server)")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not is_name(v):
            raise ValueError(NAME_RULE)
        return v

    @field_validator("nodes")
    @classmethod
    def _nodes(cls, v: list[str]) -> list[str]:
        for node in v:
            if not NODE_ID.fullmatch(node):
                raise ValueError(f"node id {node!r} is not two lower-case words like misty-owl")
        if len(set(v)) != len(v):
            raise ValueError("node ids must be unique")
        return v

    @field_validator("domain")
    @classmethod
    def _zone(cls, v: str) -> str:
        if not is_domain(v):
            raise ValueError("not a valid lower-case domain name")
        return v

    @field_validator("services")
    @classmethod
    def _service_names(cls, v: dict[str, Service]) -> dict[str, Service]:
        for name in v:
            if not is_name(name):
                raise ValueError(f"service name {name[:64]!r}: {NAME_RULE}")
        return v

    @field_validator("registries")
    @classmethod
    def _registries(cls, v: list[Registry]) -> list[Registry]:
        servers = [r.server for r in v]
        if len(set(servers)) != len(servers):
            raise ValueError("a registry server is listed twice")
        return v

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str | None) -> str | None:
        if v is not None:
            check_backend_url(v)
        return v

    @property
    def master_node(self) -> str:
        return self.master or self.nodes[0]


def _tls_problems(spec: ClusterSpec, provider) -> list[tuple[tuple, str, str]]:
    """ACME settings mean something in letsencrypt mode only, and there point at a public CA."""
    if spec.tls.mode == "origin":
        return [(("tls", key), "set, but tls.mode origin orders no ACME certificate",
                 f"remove tls.{key}, or set tls.mode: letsencrypt")
                for key in ("acme_directory", "email") if key in spec.tls.model_fields_set]
    why = None if provider.private_acme_directory else acme_directory_problem(spec.tls.acme_directory)
    if why:
        return [(("tls", "acme_directory"), why,
                 "use a public ACME directory (production, staging, or its https URL); private CAs are "
                 "for the local provider")]
    return []


def cross_check(spec: ClusterSpec) -> list[tuple[tuple, str, str]]:
    """Rules across keys. Returns (key path, message, hint) for each violation."""
    from .. import providers

    provider = providers.of(spec)
    problems: list[tuple[tuple, str, str]] = list(provider.check(spec.provider))
    problems += _tls_problems(spec, provider)
    if spec.master is not None and spec.master not in spec.nodes:
        problems.append((("master",), f"master {spec.master!r} is not one of the nodes",
                         f"set master to one of: {', '.join(spec.nodes)}"))
    seen_domains: dict[str, str] = {}
    seen_ports: dict[int, str] = {}
    reserved = reserved_service_names()
    for name, svc in spec.services.items():
        if name in reserved:
            problems.append((("services", name), f"service name {name} is dynia's own: {reserved[name]}",
                             f"rename the service (like {name}-app)"))
        for i, domain in enumerate(svc.domains):
            # A list's problem points at its item's line; a single domain at the key's.
            at = ("services", name, "domain") + ((i,) if isinstance(svc.domain, list) else ())
            if not in_zone(domain, spec.domain):
                problems.append((at, f"service {name}: domain {domain} is outside the zone {spec.domain}",
                                 f"use a name under {spec.domain}, or change the cluster domain"))
            elif (spec.tls.mode == "origin" and domain != spec.domain
                  and "." in domain[: -len(spec.domain) - 1]):
                problems.append((at, f"service {name}: {domain} is more than one label below {spec.domain}: "
                                     f"neither the origin certificate (*.{spec.domain}) nor Cloudflare's Universal "
                                     "SSL covers it",
                                 f"use a name like {domain.split('.')[0]}.{spec.domain}, or tls.mode: letsencrypt"))
            elif domain in seen_domains:
                problems.append((at, f"service {name}: domain {domain} is already routed to "
                                     f"service {seen_domains[domain]}",
                                 "give each service its own domain (dynia route unbind frees one)"))
            else:
                seen_domains[domain] = name
        if svc.domains and svc.placement == "standby-only":
            problems.append((("services", name, "placement"),
                             f"service {name}: standby-only services receive no traffic, "
                             "so they cannot have a domain",
                             "remove the domain or use placement: all"))
        if svc.maintenance is not None and not svc.domains:
            problems.append((("services", name, "maintenance"),
                             f"service {name} serves no domain, so there is nothing to answer with a maintenance page",
                             f"remove maintenance from {name}, or bind it a domain first"))
        if svc.data is not None and svc.placement != "active-only":
            problems.append((("services", name, "data"),
                             f"service {name}: a data volume attaches to one node at a time, so the service "
                             "must run on the VIP holder only",
                             "set placement: active-only, or remove data"))
        if svc.data is not None and not provider.profile.volume_api:
            problems.append((("services", name, "data"),
                             f"service {name}: the {spec.provider.kind} provider has no block storage dynia "
                             "can move yet",
                             "remove data (keep the data in a managed database), or use the local provider"))
        if svc.port in seen_ports:
            problems.append((("services", name, "port"),
                             f"service {name}: port {svc.port} is already used by service "
                             f"{seen_ports[svc.port]}",
                             "every service needs its own host port"))
        else:
            seen_ports[svc.port] = name
    return problems


# --- turning pydantic's errors into answers ---------------------------------------------

def _line_of(raw: Any, path: tuple) -> int | None:
    """1-based YAML line of the deepest key of `path` that exists in the round-trip data."""
    node, line = raw, None
    for part in path:
        lc = getattr(node, "lc", None)
        try:
            if isinstance(node, dict) and part in node:
                if lc is not None:
                    line = lc.key(part)[0] + 1
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                if lc is not None:
                    line = lc.item(part)[0] + 1
                node = node[part]
            else:
                break
        except (KeyError, TypeError, AttributeError):
            break
    return line


def _where(source: str, raw: Any, path: tuple) -> str:
    key = ".".join(str(p) for p in path) or "(top level)"
    line = _line_of(raw, path)
    return f"{source}:{line}: {key}" if line else f"{source}: {key}"


def _model_at(path: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] | None = ClusterSpec
    for part in path:
        if model is None:
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            if model is ClusterSpec:
                return None
            continue  # dict key (service name)
        model = _model_at_annotation(field.annotation)
    return model


def _hint_for(err: Any) -> str:
    loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        valid = ", ".join(model.model_fields) if model else "see `dynia schema`"
        return f"remove the key or fix its spelling; valid keys here: {valid}"
    if kind == "missing":
        return f"add `{loc[-1]}:` (see `dynia schema` for its type)"
    if kind.startswith("literal_error"):
        return f"use one of: {err.get('ctx', {}).get('expected', '')}"
    return "fix the value; `dynia schema` lists every key and type"


def validate_spec(raw: Any, source: str) -> ClusterSpec:
    """Validate round-trip YAML data into a ClusterSpec or raise the first problem as a config error."""
    if not isinstance(raw, dict):
        raise config_error(f"{source}: the spec must be a YAML mapping",
                           "start from `dynia cluster init` or see examples/clusters/")
    version = raw.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise config_error(f"{_where(source, raw, ('version',))}: spec version {version} is newer "
                           f"than this dynia understands (schema {SCHEMA_VERSION})",
                           "upgrade dynia before touching this cluster: in its checkout, git pull, then sh .ci/install")
    try:
        spec = ClusterSpec.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        more = len(exc.errors()) - 1
        msg = err["msg"].removeprefix("Value error, ")
        suffix = f" (+{more} more)" if more else ""
        raise config_error(f"{_where(source, raw, tuple(err['loc']))}: {msg}{suffix}",
                           _hint_for(err)) from None
    if spec.version < SCHEMA_VERSION:
        raise config_error(f"{_where(source, raw, ('version',))}: spec version {spec.version} is not supported",
                           f"set version: {SCHEMA_VERSION}")
    raise_first(source, raw, cross_check(spec))
    return spec


def raise_first(source: str, raw: Any, problems: list[tuple[tuple, str, str]]) -> None:
    """Raise the first (key path, message, hint) problem as a config error located in the YAML."""
    if problems:
        path, msg, hint = problems[0]
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise config_error(f"{_where(source, raw, path)}: {msg}{more}", hint)


def key_table() -> str:
    """The README's spec table, from the field descriptions (tests/unit/test_spec_docs.py keeps
    the two equal): one row per key, nested keys dotted, a service's as services.<name>.KEY."""
    rows = ["| key | meaning |", "|---|---|"]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = prefix + name
            nested = _model_at_annotation(field.annotation)
            if name == "services":
                rows.append(f"| `{key}` | {field.description} |")
                walk(Service, "services.<name>.")
            elif name == "registries":
                rows.append(f"| `{key}` | {field.description} |")
                walk(Registry, "registries[].")
            elif nested is not None:
                walk(nested, key + ".")
            else:
                rows.append(f"| `{key}` | {field.description} |")

    walk(ClusterSpec, "")
    return "\n".join(rows) + "\n"


def _model_at_annotation(ann: Any) -> type[BaseModel] | None:
    return next((a for a in (ann, *getattr(ann, "__args__", ())) if isinstance(a, type) and issubclass(a, BaseModel)),
                None)


def json_schema() -> dict:
    schema = ClusterSpec.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"dynia cluster spec (schema version {SCHEMA_VERSION})"
    return schema


__all__ = ["ClusterSpec", "Service", "validate_spec", "json_schema", "SCHEMA_VERSION",
           "DyniaError", "in_zone", "is_domain"]
