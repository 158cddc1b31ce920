"""`dynia context doctor`: can this machine operate the cluster? Reads, never changes."""
from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass

from .. import providers
from ..errors import DyniaError
from ..spec.load import load_cluster
from ..state.store import Project


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False   # passes, but says something to do (its fix)

    def as_dict(self) -> dict:
        return asdict(self)


def pulumi_version() -> tuple[tuple[int, ...] | None, str]:
    exe = shutil.which("pulumi")
    if not exe:
        return None, "not found on PATH"
    try:
        out = subprocess.run([exe, "version"], capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{exe} did not answer ({exc.__class__.__name__})"
    m = re.match(r"v?(\d+)\.(\d+)\.(\d+)", out)
    return (tuple(int(x) for x in m.groups()) if m else None), out or "no version printed"


def run_checks(project: Project, cluster: str | None) -> list[Check]:
    from ..engine.automation import MIN_CLI

    checks: list[Check] = []
    # Without a valid spec, check what a DigitalOcean cluster (the default kind) needs.
    provider = providers.get("digitalocean")
    if cluster is None:
        checks.append(Check("spec", False, "no cluster selected", "run `dynia context use NAME` or pass --cluster"))
    else:
        try:
            c = load_cluster(project, cluster)
            provider = providers.of(c.spec)
            checks.append(Check("spec", True, f"clusters/{cluster}.yaml is valid ({len(c.spec.nodes)} nodes, "
                                f"{len(c.spec.services)} services)"))
            checks.append(ranges_check(c.spec, dt.datetime.now(dt.timezone.utc).date()))
        except DyniaError as exc:
            checks.append(Check("spec", False, exc.message, exc.hint))
    checks += token_checks(provider, os.environ)
    passphrase = bool(os.environ.get("PULUMI_CONFIG_PASSPHRASE") or os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE"))
    checks.append(Check("secrets passphrase", passphrase,
                        "PULUMI_CONFIG_PASSPHRASE is " + ("set" if passphrase else "not set"),
                        "export PULUMI_CONFIG_PASSPHRASE=… (encrypts secrets in the Pulumi state)"))
    version, text = pulumi_version()
    if version is None:
        checks.append(Check("pulumi CLI", False, text,
                            "install it: curl -fsSL https://get.pulumi.com | sh (needed by plan/up, not by render)"))
    else:
        ok = version >= tuple(int(x) for x in MIN_CLI.split("."))
        checks.append(Check("pulumi CLI", ok, text, f"upgrade to v{MIN_CLI} or newer: pulumi self-update"))
    key = provider.ssh_identity(project, cluster or "").key
    readable = key.is_file() and os.access(key, os.R_OK)
    checks.append(Check("ssh key", readable, f"{key} {'is readable' if readable else 'is missing or unreadable'}",
                        "create one (ssh-keygen -t ed25519) or point DYNIA_SSH_KEY at it"))
    return checks


def token_checks(provider, env) -> list[Check]:
    """Which token is which: the operator's (plan and apply, never leaves this machine) and the
    node token (written to every node for the reserved IP). Only presence is shown, never a value
    or any part of one; the node token failing when it is the operator's token."""
    checks = []
    operator = {}
    for api, var in provider.operator_env:
        present = bool(env.get(var))
        operator[var] = env.get(var)
        checks.append(Check(f"{api} token", present,
                            f"{var} is {'set' if present else 'not set'} (the operator's token: plan and apply "
                            "on this machine; never written to nodes)",
                            f"export {var}=… (a token with write access)"))
    var = provider.node_token_env
    if var:
        value = env.get(var)
        same = [v for v, t in operator.items() if value and t == value]
        if not value:
            ok, detail = False, f"{var} is not set"
        elif same:
            ok, detail = False, f"{var} is the same token as {', '.join(same)}: the operator's token would be on every node"
        else:
            ok, detail = True, f"{var} is set and differs from the operator's tokens"
        checks.append(Check("node token", ok, detail + " (written to every node: keepalived moves the reserved "
                            "IP with it)", provider.node_token_hint))
    return checks


def ranges_check(spec, today: dt.date) -> Check:
    """Cloudflare's edge ranges in this dynia: older than 90 days is a warning (origin mode)."""
    from ..render.firewall import cloudflare_ranges
    from .edge_ranges import age_warning

    warning = age_warning(today, spec)
    taken = cloudflare_ranges().taken
    if warning:
        return Check("cloudflare ranges", True, warning, "dynia edge refresh-ranges", warning=True)
    return Check("cloudflare ranges", True, f"taken {taken:%Y-%m-%d} ({(today - taken).days} days ago)"
                 + (" (letsencrypt mode: not used)" if spec.tls.mode != "origin" else ""))
