"""What travels to a node for one push: the Bundle (files with target, mode, owner, sha256 and
base64 content, the filled secret slots, the layer's commands, health checks and gate policy,
the config version), encoded as the apply script's input, and the one constant command that
runs it (BOOTSTRAP). dynia.render.bundle builds bundles from a render; this is what push sends.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

# Reads the apply script, then hands it the rest of stdin (the bundle). Constant and secret-free.
BOOTSTRAP = ("python3 -c 'import sys;n=int(sys.stdin.buffer.readline());"
             "exec(compile(sys.stdin.buffer.read(n),\"dynia-apply\",\"exec\"))'")


@lru_cache(maxsize=1)
def apply_script() -> bytes:
    return resources.files("dynia.templates").joinpath("node/apply.py").read_bytes()


@dataclass
class Bundle:
    node: str
    layer: str
    config_version: int
    files: list[dict]
    validate: dict[str, str]
    reload: dict[str, str]
    stop: dict[str, str]
    health: list[dict]
    policy: dict
    lockdown: bool
    component_order: list[str]
    remove: list[str] = field(default_factory=list)
    # target -> component that reloads (or stops) when that file is removed
    remove_components: dict[str, str] = field(default_factory=dict)
    # component -> {"stop", "running", "restart"}: a component whose files this bundle removes
    # (a removed service) is stopped before they go, and restarted if a rollback restores them
    remove_commands: dict[str, dict[str, str]] = field(default_factory=dict)
    # A service layer only: should the service run on this node (placement, the live VIP
    # holder)? None for infra and removals, which have no run state.
    run: bool | None = None
    force: bool = False
    # A service layer only: image reference -> the command that says whether the node has it.
    # A start that fails with an image missing afterwards failed to pull it: the apply script
    # then names the image and the pull error, not compose's last line.
    images: dict[str, str] = field(default_factory=dict)
    # A service layer on a node where it does not run (an active-only service's standby): image
    # reference -> the command that pulls it unless present. Run whenever the layer changes, so
    # a failover starts the service without waiting on a registry.
    prefetch: dict[str, str] = field(default_factory=dict)
    # One slot of a layer the node already has (certificate_bundle): the apply script merges it
    # into the layer's record and keeps the node's config version.
    partial: bool = False
    # A service layer (or its removal): the directory of its secret slots. Files the node's record
    # of this layer holds there and the bundle no longer carries are removed (a dropped secret).
    prune: str | None = None

    def as_json(self) -> dict:
        data = {"node": self.node, "layer": self.layer, "configVersion": self.config_version,
                "files": self.files, "validate": self.validate, "reload": self.reload, "stop": self.stop,
                "health": self.health, "policy": self.policy, "lockdown": self.lockdown,
                "componentOrder": self.component_order, "remove": self.remove,
                "removeComponents": self.remove_components, "removeCommands": self.remove_commands,
                "run": self.run, "force": self.force, "images": self.images}
        if self.prefetch:  # absent where empty: every other bundle (and its push trigger) stays as it was
            data["prefetch"] = self.prefetch
        if self.partial:   # likewise
            data["partial"] = True
        if self.prune:
            data["prune"] = self.prune
        return data

    def encode(self) -> bytes:
        return _canonical(self.as_json())

    def content(self) -> bytes:
        """What this push delivers, without the config version: the version is cluster-wide,
        so inside the trigger one service's change would re-run every push on every node."""
        data = self.as_json()
        del data["configVersion"]
        return _canonical(data)

    def payload(self) -> bytes:
        """stdin of BOOTSTRAP: script length, the script, the bundle."""
        script = apply_script()
        return f"{len(script)}\n".encode() + script + self.encode()

    @property
    def digest(self) -> str:
        """The push's trigger: changes whenever the files, filled slots, commands, policy, run
        state (a placement or VIP holder change) or the apply script of this layer change
        (secrets included, hashed), never with the cluster's config version alone. The
        payload's version is stamped per layer (stacks.pushes), so an unchanged layer keeps the
        payload, and the push, it had."""
        return hashlib.sha256(self.content() + apply_script()).hexdigest()

    def describe(self) -> dict:
        """Loggable summary: paths and hashes, never content."""
        return {"node": self.node, "layer": self.layer, "configVersion": self.config_version,
                "files": [{k: f[k] for k in ("target", "mode", "owner", "sha256")} for f in self.files]}


def _canonical(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
