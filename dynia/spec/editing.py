"""Spec-editing commands: change clusters/<name>.yaml only (state first), never a node.

Each returns the next step the operator should take.
"""
from __future__ import annotations

from collections.abc import Sequence

from ..errors import DyniaError, config_error
from ..names import node_ids
from ..state import secrets
from ..state.store import Project, cluster_lock, dump_yaml, write_atomic
from .load import edit_cluster, validate_cluster
from .model import SCHEMA_VERSION, is_domain


def _flow(node):
    node.fa.set_flow_style()
    return node


def _slot_after(mapping, key):
    """The (collection, key) whose comment slot holds what follows `mapping[key]` in the file:
    ruamel keeps the comment lines *before* a key in the slot of the entry just above it (for a
    nested block, its deepest last entry)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    node, slot = mapping, key
    while isinstance(node[slot], (CommentedMap, CommentedSeq)) and len(node[slot]):
        node = node[slot]
        slot = list(node)[-1] if isinstance(node, CommentedMap) else len(node) - 1
    return node, slot


def _split(token) -> tuple[str, str]:
    """A trailing comment token: (the end-of-line comment of its entry, the lines after it)."""
    if token is None:
        return "", ""
    eol, _, after = token.value.partition("\n")
    return eol, after


def _delete(mapping, key, parent: tuple | None = None) -> None:
    """Delete `key` with its own comment lines, keeping the comment lines of the key after it
    (plain `del` does the reverse: the next key's comment goes, the deleted key's stays).
    `parent`: (the mapping holding `mapping`, its key there)."""
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    keys = list(mapping)
    at = keys.index(key)
    holder, slot = _slot_after(mapping, key)
    following = _split(holder.ca.items.get(slot, [None] * 4)[2])[1]
    del mapping[key]
    if at > 0:
        prev, prev_slot = _slot_after(mapping, keys[at - 1])
        entry = prev.ca.items.setdefault(prev_slot, [None] * 4)
        eol = _split(entry[2])[0]
        if entry[2] is not None and (eol or following):
            entry[2].value = eol + "\n" + following  # the token keeps its column
        else:
            entry[2] = CommentToken("\n" + following, CommentMark(0), None) if following else None
    else:  # the first key's comment lines sit on the mapping itself (and on its parent's key)
        col = len(following) - len(following.lstrip(" "))
        lines = [CommentToken(following.lstrip(" "), CommentMark(col), None)] if following else []
        if mapping.ca.comment is not None:
            mapping.ca.comment[1] = lines
        if parent is not None:
            parent_entry = parent[0].ca.items.get(parent[1])
            if parent_entry is not None and len(parent_entry) > 3:
                parent_entry[3] = lines or None


def new_spec(name: str, *, region: str, size: str, nodes: list[str], domain: str, image: str,
             vpc_ip_range: str | None = None):
    """A fresh spec as round-trip data: CLI values are values, so none can add a key."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    doc = CommentedMap()
    doc["version"] = SCHEMA_VERSION
    doc["name"] = name
    from ..providers.digitalocean import vpc_range_for

    # Each cluster its own /24, from its name: DigitalOcean refuses two VPCs of an account whose
    # ranges overlap, so one shared default would stop a team's second cluster.
    doc["provider"] = CommentedMap([("kind", "digitalocean"), ("region", region), ("size", size),
                                    ("image", image), ("vpc_ip_range", vpc_ip_range or vpc_range_for(name))])
    doc["nodes"] = _flow(CommentedSeq(nodes))
    doc["domain"] = domain
    doc["tls"] = CommentedMap([("mode", "origin")])
    doc["health"] = CommentedMap([("retries", 5), ("interval", "2s"), ("backoff", 2.0), ("timeout", "60s")])
    doc["guard"] = CommentedMap([("memory_threshold", 0.8), ("on_exceed", "fail")])
    doc["lockdown"] = False
    doc["services"] = _flow(CommentedMap())
    doc.yaml_set_start_comment(f"dynia cluster spec: the only source of truth for cluster {name}.\n"
                               "Edit it by hand or with `dynia service|route …`; preview with `dynia plan`.")
    doc.yaml_add_eol_comment("stable ids: Pulumi resource names derive from them", "nodes", column=0)
    doc.yaml_add_eol_comment("the Cloudflare zone", "domain", column=0)
    doc["tls"].yaml_add_eol_comment("Cloudflare Origin CA certificate, proxied records", "mode", column=0)
    doc["guard"].yaml_add_eol_comment("warn | fail", "on_exceed", column=0)
    return doc


def init_cluster(project: Project, name: str, *, region: str, size: str, nodes: int,
                 domain: str, image: str = "ubuntu-24-04-x64", vpc_ip_range: str | None = None) -> str:
    """vpc_ip_range: None for the /24 derived from the name (cluster create passes the one the
    account leaves free)."""
    if not 1 <= nodes <= 5:
        raise config_error(f"--nodes {nodes}: a cluster has 1 to 5 nodes", "pass --nodes between 1 and 5")
    domain = domain.lower().rstrip(".")
    if not is_domain(domain):
        raise config_error(f"--domain {domain!r} is not a domain name", "pass the Cloudflare zone, like example.com")
    path = project.spec_path(name)  # refuses a name that is not a cluster name
    with cluster_lock(project, name):
        if path.exists() or path.is_symlink():
            raise config_error(f"clusters/{name}.yaml already exists",
                               "pick another name, or edit the existing spec")
        raw = new_spec(name, region=region, size=size, nodes=node_ids(name, nodes), domain=domain, image=image,
                       vpc_ip_range=vpc_ip_range)
        validate_cluster(project, name, raw)  # the same rules as a hand-written spec
        write_atomic(path, dump_yaml(raw))
    project.ignore_render_output()
    secrets.ensure(project, name)
    return f"dynia service add NAME --compose FILE --port PORT --cluster {name}"


def _services(raw):
    from ruamel.yaml.comments import CommentedMap

    svcs = raw.get("services")
    if not isinstance(svcs, dict) or not svcs:
        svcs = CommentedMap()
        raw["services"] = svcs
    return svcs


def _require(raw, service: str):
    svcs = raw.get("services") or {}
    if service not in svcs:
        known = ", ".join(svcs) or "none"
        raise config_error(f"no service {service!r} in this cluster", f"services here: {known}")
    return svcs[service]


def _domain_arg(domain: str) -> str:
    return domain.lower().rstrip(".")


def _domains_of(entry) -> list[str]:
    value = entry.get("domain")
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _set_domains(entry, domains: list[str]) -> None:
    """A service's domains in the simplest form: one is `domain: x` (what every spec with one
    domain says), more are a list: the operator's own list edited in place (its layout and
    comments kept; one with comments stays a list), else a new flow list. None: the key goes,
    with its own comment lines."""
    from ruamel.yaml.comments import CommentedSeq

    current = entry.get("domain")
    commented = isinstance(current, CommentedSeq) and any(current.ca.items.values())
    if not domains:
        if "domain" in entry:
            _delete(entry, "domain")
    elif len(domains) == 1 and not commented:
        entry["domain"] = domains[0]
    elif isinstance(current, CommentedSeq):
        for i in reversed(range(len(current))):
            if current[i] not in domains:
                del current[i]
        current.extend(d for d in domains if d not in current)
    else:
        entry["domain"] = _flow(CommentedSeq(domains))


def add_service(project: Project, cluster: str, service: str, *, compose: str, port: int,
                domains: Sequence[str] = (), health_path: str = "/", placement: str = "all") -> str:
    from ruamel.yaml.comments import CommentedMap

    with edit_cluster(project, cluster) as raw:
        svcs = _services(raw)
        if service in svcs:
            raise config_error(f"service {service!r} already exists",
                               f"remove it first (dynia service remove {service}) or pick another name")
        entry = CommentedMap()
        entry["compose"] = compose
        entry["port"] = port
        _set_domains(entry, [_domain_arg(d) for d in domains])
        entry["health_path"] = health_path
        entry["placement"] = placement
        svcs[service] = entry
    return f"dynia plan --offline --cluster {cluster}"


def remove_service(project: Project, cluster: str, service: str) -> str:
    with edit_cluster(project, cluster) as raw:
        _require(raw, service)
        _delete(raw["services"], service, (raw, "services"))
    return f"dynia plan --offline --cluster {cluster}"


def bind_route(project: Project, cluster: str, service: str, domain: str) -> str:
    """Add a domain to the service's (one already bound to it stays once)."""
    with edit_cluster(project, cluster) as raw:
        entry = _require(raw, service)
        domains = _domains_of(entry)
        domain = _domain_arg(domain)
        if domain not in domains:
            _set_domains(entry, domains + [domain])
    return f"dynia plan --offline --cluster {cluster}"


def unbind_route(project: Project, cluster: str, service: str, domain: str | None = None) -> str:
    """Drop one of the service's domains, or (None) all of them."""
    with edit_cluster(project, cluster) as raw:
        entry = _require(raw, service)
        domains = _domains_of(entry)
        if not domains:
            raise config_error(f"service {service!r} has no domain to unbind",
                               f"bind one with `dynia route bind {service} DOMAIN`")
        if domain is not None and _domain_arg(domain) not in domains:
            raise config_error(f"{domain} is not bound to service {service!r} (its domains: {', '.join(domains)})",
                               f"name one of them, or run `dynia route unbind {service}` to unbind every one")
        _set_domains(entry, [] if domain is None else [d for d in domains if d != _domain_arg(domain)])
    return f"dynia plan --offline --cluster {cluster}"




def set_maintenance(project: Project, cluster: str, services: Sequence[str], message: str | None, *,
                    on: bool) -> list[str]:
    """Put services in maintenance (on; with `message`, else the spec's default or the one they
    have) or take them out, in the spec only: every routed service when none is named. Returns
    the services named; a service without a domain is refused (nothing to answer for)."""
    from ruamel.yaml.comments import CommentedMap

    with edit_cluster(project, cluster) as raw:
        svcs = raw.get("services") or {}
        names = list(services) or [s for s, e in svcs.items() if _domains_of(e)]
        if not names:
            raise config_error(f"cluster {cluster} has no service with a domain", "bind one first (dynia route bind)")
        for name in names:
            entry = _require(raw, name)
            if not on:
                if "maintenance" in entry:
                    _delete(entry, "maintenance")
                continue
            current = entry.get("maintenance")
            block = current if isinstance(current, dict) else CommentedMap()
            if message is not None:
                block["message"] = message
            entry["maintenance"] = block
    return names


def add_node(project: Project, cluster: str) -> str:
    with edit_cluster(project, cluster) as raw:
        nodes = raw["nodes"]
        if len(nodes) >= 5:
            raise config_error("a cluster has at most 5 nodes", "remove a node first, or create a second cluster")
        new = node_ids(cluster, 1, taken=tuple(nodes))[0]
        nodes.append(new)
    return new


def check_removable(nodes: list[str], master: str, node: str, holder: str | None = None) -> None:
    """holder: the node holding the reserved IP now (read live). After a failover it is not the
    configured master, and removing it would take the reserved IP down with its droplet."""
    if node not in nodes:
        raise config_error(f"no node {node!r} in this cluster", f"nodes here: {', '.join(nodes)}")
    if len(nodes) == 1:
        raise config_error("cannot remove the last node", "use `dynia cluster destroy` to remove the cluster")
    if master == node:
        raise config_error(f"{node} is the MASTER", "activate another node first (dynia cluster node activate NODE)")
    if holder == node:
        raise config_error(f"{node} holds the reserved IP now (the configured MASTER is {master})",
                           f"wait until {master} takes it back, or activate another node first "
                           "(dynia cluster node activate NODE); check with dynia status")


def remove_node(project: Project, cluster: str, node: str) -> None:
    with edit_cluster(project, cluster) as raw:
        nodes = raw["nodes"]
        check_removable(list(nodes), raw.get("master") or nodes[0], node)
        nodes.remove(node)


def set_master(project: Project, cluster: str, node: str) -> None:
    with edit_cluster(project, cluster) as raw:
        if node not in raw["nodes"]:
            raise config_error(f"no node {node!r} in this cluster", f"nodes here: {', '.join(raw['nodes'])}")
        raw["master"] = node


# --- a service's secrets (values in .dynia/secrets: dynia.state.app_secrets) ---------------------

def _secret_entry(raw, service: str, name: str):
    """(the service's spec entry, its `secrets:` mapping or None, whether it names `name`)."""
    entry = _require(raw, service)
    named = entry.get("secrets")
    return entry, named, isinstance(named, dict) and name in named


def set_app_secret(project: Project, cluster: str, service: str, name: str, value: bytes) -> str:
    """Store the value (0600, atomically) and name the secret in the spec if it is not yet
    (source: the store). A secret the spec reads from elsewhere is refused: the stored value
    would never be read. A failed spec edit puts the store back as it was."""
    from ruamel.yaml.comments import CommentedMap

    from ..state import app_secrets
    from .model import SECRET_NAME

    if not SECRET_NAME.fullmatch(name):
        raise config_error(f"secret name {name[:64]!r} is not a valid name",
                           "a letter, then letters, digits, _ or -, at most 64 characters (like DB_PASSWORD)")
    stored, before = False, None
    try:
        with edit_cluster(project, cluster) as raw:
            entry, named, has = _secret_entry(raw, service, name)
            source = named.get(name) if has else None
            if isinstance(source, dict) and (source.get("env") is not None or source.get("command") is not None):
                where = f"${source['env']}" if source.get("env") is not None else "a command"
                raise config_error(f"secret {service}/{name} comes from {where}, not from the store",
                                   f"change it there, or remove services.{service}.secrets.{name}'s source "
                                   "from the spec first")
            try:
                before = app_secrets.read_stored(project, cluster, service, name)
            except DyniaError:
                before = None  # unreadable (a loose mode): replaced by a 0600 file now
            app_secrets.store(project, cluster, service, name, value)
            stored = True
            if not has:
                if not isinstance(named, dict):
                    entry["secrets"] = named = CommentedMap()
                named[name] = None
    except BaseException:
        if stored and before is None:
            app_secrets.unstore(project, cluster, service, name)
        elif stored and before is not None:
            app_secrets.store(project, cluster, service, name, before)
        raise
    return f"dynia service deploy {service} --cluster {cluster}"


def unset_app_secret(project: Project, cluster: str, service: str, name: str) -> str:
    """The service no longer gets the secret: its name leaves the spec, its stored value goes."""
    from ..state import app_secrets

    with edit_cluster(project, cluster) as raw:
        entry, named, has = _secret_entry(raw, service, name)
        if not has:
            known = ", ".join(sorted(named or {})) or "none"
            raise config_error(f"service {service} has no secret {name!r}", f"its secrets: {known}")
        if len(named) == 1:
            _delete(entry, "secrets")
        else:
            _delete(named, name)
    app_secrets.unstore(project, cluster, service, name)
    return f"dynia service deploy {service} --cluster {cluster}"
