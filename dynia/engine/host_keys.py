"""Host keys pinned on first use: the droplets created before dynia pinned host keys.

Such a droplet never got the key made with the state: cloud-init ran once, and user data
changes are ignored on existing droplets (components/cluster_node.py IGNORED). Its pin is the
key it presents when the operator first provisions with DYNIA_PIN_FIRST_USE=1 after the upgrade
(without it: a typed error saying so — never trusted silently) — trust on first use, said on
the progress line with its fingerprint, and recorded once: in the provision stack's config
(dynia:hostKeys) for this run, then in the state's `nodes` output (host_key_source
"first-use"), from which every later run on any machine takes it again. From then on a node
presenting another key is refused like any other.
"""
from __future__ import annotations

import json
import os
import sys

from .. import providers
from ..errors import DyniaError
from ..state.cache import HOST_KEY, UNPINNED_HOST_KEY

# Set to 1 by the operator to pin, once, the host keys of droplets made before dynia pinned them.
PIN_FIRST_USE_ENV = "DYNIA_PIN_FIRST_USE"
# Host key types an SSH client may prefer over ed25519 (Go's x/crypto/ssh lists ECDSA and RSA first).
OTHER_HOST_KEY_ALGS = ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "rsa-sha2-512",
                       "rsa-sha2-256", "ssh-rsa", "ssh-dss")
CHECK = "then compare each fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the droplet's console"


def pin_first_use(engine, stack, mode: str = "up") -> None:
    """Pin the host key of each droplet created before dynia pinned host keys (Engine._run,
    before a provision operation).

    mode: "up" pins (the only operation that connects to a node or records a new pin);
    "preview" passes on the pins the state already holds (no connection) and warns about the
    nodes still unpinned, saying what to run — a plan never fails on them and never makes a
    first-use connection; anything else (destroy, import) leaves pins alone. A node that
    does not answer while pinning is skipped with a warning: its push then fails with its
    own typed error (no key is pinned for it), the others are pinned."""
    if mode not in ("up", "preview"):
        return  # destroy/refresh read no node and keep no pin: a legacy node may be off
    provider = providers.of(engine.cluster.spec)
    if not provider.first_use_host_keys:
        return
    previous = engine._output(stack, "nodes")
    if not isinstance(previous, dict):
        return  # the first provision: every droplet gets the state's key
    pins, legacy, had = state_pins(previous, engine.cluster.spec.nodes)
    pin_cmd = f"{PIN_FIRST_USE_ENV}=1 dynia up --phase provision --cluster {engine.cluster.name}"
    if legacy and mode == "preview":
        # stderr, like the plan's other warnings: `plan --json` / `--format markdown` keep stdout.
        names = ", ".join(n for n, _ in legacy)
        print(f"warning: {names}: created before dynia pinned SSH host keys, not pinned yet (this plan shows "
              f"them with a key they do not have); pin them once: {pin_cmd}; {CHECK}", file=sys.stderr)
        legacy = []
    if legacy and os.environ.get(PIN_FIRST_USE_ENV) != "1":
        # Never trusted silently: the operator says so once, and checks the fingerprints.
        names = ", ".join(n for n, _ in legacy)
        raise DyniaError("state", f"{names}: created before dynia pinned SSH host keys, so the state holds no "
                         "host key to verify them with",
                         f"pin the keys they present now (trust on first use, fingerprints printed): "
                         f"{pin_cmd}; {CHECK}")
    if legacy:
        identity = provider.ssh_identity(engine.cluster.project, engine.cluster.name)
        pins.update(pin_now(legacy, identity.key, pin_cmd, engine.on_progress))
    from pulumi.automation import ConfigValue

    if pins:
        stack.set_config("dynia:hostKeys", ConfigValue(json.dumps(pins, sort_keys=True)))
    elif had:
        stack.remove_config("dynia:hostKeys")


def state_pins(previous: dict, nodes: list[str]) -> tuple[dict[str, str], list[tuple[str, str]], bool]:
    """From the provision state's `nodes` output: (the first-use pins it holds for the spec's
    nodes, the nodes still unpinned as (node, public address), whether it held any first-use pin)."""
    pins, legacy, had = {}, [], False
    for node, v in previous.items():
        if not isinstance(v, dict):
            continue
        first_use = v.get("host_key_source") == "first-use" and isinstance(v.get("host_key"), str)
        had = had or first_use
        if node not in nodes:
            continue
        if first_use and HOST_KEY.fullmatch(v["host_key"]) and v["host_key"] != UNPINNED_HOST_KEY:
            pins[node] = v["host_key"]
        elif (not v.get("host_key") or (first_use and v["host_key"] == UNPINNED_HOST_KEY)) \
                and isinstance(v.get("public_ip"), str):
            legacy.append((node, v["public_ip"]))
    return pins, legacy, had


def pin_now(legacy: list[tuple[str, str]], key_path, pin_cmd: str, on_progress) -> dict[str, str]:
    """{node: the key it presents now} for each (node, address), said on the progress line with
    its fingerprint; a node that does not answer is recorded as not pinned."""
    from ..nodes.push import Target, fingerprint, server_host_key

    pins = {}
    for node, host in legacy:
        try:
            key = server_host_key(Target(node, host, key_path))
        except DyniaError as exc:
            # One node off must not hold back the others' pins. It is recorded as not pinned
            # (never as the key generated with the state, which it does not have: that would
            # look pinned and refuse it for good): its push is refused, typed, and the next
            # `up` with consent pins it.
            on_progress(f"warning: provision: {node} not pinned ({exc.message}); its push will be refused "
                        f"until it is: start it, then rerun {pin_cmd}")
            pins[node] = UNPINNED_HOST_KEY
            continue
        on_progress(f"provision: {node} was created before dynia pinned host keys: pinning the key it "
                    f"presents now ({fingerprint(key)}), trusted on first use; to check it, run "
                    "`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on its DigitalOcean console")
        pins[node] = key
        other = _other_host_key_type(host)
        if other:
            # The push client (pulumi-command, Go's x/crypto/ssh) may negotiate a type it
            # prefers over ed25519 and then refuse the pinned key; droplets dynia creates
            # offer ed25519 only (cloud-init ssh_deletekeys), so make this one alike.
            on_progress(f"warning: provision: {node} also offers a {other} host key, which the push client "
                        "may negotiate instead of the pinned ed25519 one and refuse; offer ed25519 only, as "
                        "dynia's own droplets do — on its console: `rm -f /etc/ssh/ssh_host_rsa_key* "
                        "/etc/ssh/ssh_host_ecdsa_key* /etc/ssh/ssh_host_dsa_key* && systemctl restart ssh`")
    return pins


def _other_host_key_type(host: str, port: int = 22, timeout: float = 10.0) -> str | None:
    """The first host key type other than ed25519 that `host` offers (None: ed25519 only, or no
    answer). Read without logging in, only to warn about a legacy droplet (pin_now)."""
    import asyncio

    import asyncssh

    async def main():
        return await asyncio.wait_for(asyncssh.get_server_host_key(
            host, port, server_host_key_algs=list(OTHER_HOST_KEY_ALGS)), timeout)

    try:
        key = asyncio.run(main())
    except (OSError, asyncio.TimeoutError, asyncssh.Error):
        return None  # no common algorithm: ed25519 only
    return key.get_algorithm() if key is not None else None
