"""The inputs of every phase program: the cluster (loaded from the project), the SSH key, the
known VIP holder, and how to reach the earlier phases' outputs."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pulumi


@dataclass
class PhaseInputs:
    project_root: Path
    cluster: str
    ssh_private_key: pulumi.Input[str] = ""     # secret
    ssh_public_key: str = ""
    holder: str | None = None                   # node holding the reserved IP, read live at plan time
    lab_dir: str = ""                           # local provider
    python: str = field(default_factory=lambda: sys.executable)
    provider_token: pulumi.Input[str] | None = None  # secret; notify.sh moves the reserved IP with it
    # secret: {"stats_user", "stats_password"}, kept as the provision stack's statsCredentials
    # output so every machine renders the same bundles. The engine always passes them; None in
    # pushes made without it (lab tests: the operator's .dynia/secrets) and in a by-hand run
    # without `dynia:statsCredentials` in the stack's config (provision then refuses to update)
    stats_credentials: pulumi.Input[dict] | None = None
    # secret: tls.mode letsencrypt's state (dynia.operations.certs.AcmeState.to_dict: account key, certificate
    # + key, expiry, names), kept as the provision stack's `acme` output, read back by the engine
    # (Engine.acme_state) and passed in on every run: never lost, never in deploy-config/ or output.
    # A by-hand run passes it from `dynia:acme` in the stack's config (from_config); the engine
    # keeps a fresh order there until a provision stores it (Engine.keep_acme).
    acme: pulumi.Input[dict] | None = None
    # this phase stack's last `layers` output: an unchanged layer keeps its config version
    previous_layers: dict | None = None
    # {image reference: sha256 digest} the engine resolved for this roll (dynia.engine.pins); None: the
    # release in force on this machine (a by-hand run, a phase that pushes no service)
    images: dict | None = None
    # service -> {release, content, images}: what `dynia rollback` rolls those services back to;
    # None: the rollbacks in effect on this machine (a by-hand run, a phase that pushes no service)
    rollback: dict | None = None
    # the releases stack's program exports this list as it is (dynia.operations.releases)
    releases: list | None = None
    # the runs stack's records, the new one last (dynia.records); None outside that stack
    runs: list[dict] | None = None
    # built by from_config: the Pulumi CLI runs the program by hand, not dynia's engine
    by_hand: bool = False

    @property
    def project(self):
        from dynia.state.store import Project

        return Project(self.project_root)

    def load(self):
        from dynia.spec.load import load_cluster

        return load_cluster(self.project, self.cluster)

    def stack_name(self, phase: str) -> str:
        return f"{self.cluster}-{phase}"

    def reference(self, phase: str) -> pulumi.StackReference:
        return pulumi.StackReference(qualified_stack_name(self.stack_name(phase)))

    @classmethod
    def from_config(cls) -> "PhaseInputs":
        """For `pulumi preview|up --stack <cluster>-<phase>` run by hand (Pulumi.yaml's `main`).

        `dynia:statsCredentials` (a secret object, {"stats_user", "stats_password"}) gives a
        by-hand run of the provision stack the credentials it keeps as its output; without
        it that run refuses to update (stacks/provision.py) rather than drop them."""
        cfg = pulumi.Config("dynia")
        cluster = cfg.require("cluster")
        return cls(project_root=Path(cfg.get("projectRoot") or ".").resolve(), cluster=cluster,
                   ssh_private_key=cfg.get_secret("sshPrivateKey") or "", ssh_public_key=cfg.get("sshPublicKey") or "",
                   holder=cfg.get("holder"), lab_dir=cfg.get("labDir") or "",
                   provider_token=cfg.get_secret("providerToken"),
                   stats_credentials=configured_stats_credentials(cfg, cluster),
                   acme=configured_acme(cfg), by_hand=True)


def by_hand_credentials_hint(cluster: str) -> str:
    stack = f"{cluster}-provision"
    return (f"run it through dynia (`dynia up --phase provision --cluster {cluster}`), or give the program the "
            f"credentials the stack keeps: pulumi config set --stack {stack} --secret dynia:statsCredentials "
            f"\"$(pulumi stack output --stack {stack} --show-secrets --json statsCredentials)\"")


def configured_stats_credentials(cfg: pulumi.Config, cluster: str) -> pulumi.Output | None:
    """`dynia:statsCredentials` from the stack's config, checked like every other copy of them
    (they become lines of an environment file on every node), as a secret; None when unset."""
    from dynia.state import secrets

    value = cfg.get_secret_object("statsCredentials")
    if value is None:
        return None
    shown = "the stack config dynia:statsCredentials"
    return pulumi.Output.secret(pulumi.Output.from_input(value).apply(
        lambda v: secrets.check(v, shown, by_hand_credentials_hint(cluster))))


def by_hand_acme_hint(cluster: str) -> str:
    stack = f"{cluster}-provision"
    return (f"run it through dynia (`dynia up --phase provision --cluster {cluster}`), or give the program the "
            f"ACME state the stack keeps: pulumi config set --stack {stack} --secret dynia:acme "
            f"\"$(pulumi stack output --stack {stack} --show-secrets --json acme)\"")


def configured_acme(cfg: pulumi.Config) -> pulumi.Output | None:
    """`dynia:acme` from the stack's config (the provision stack's own `acme` output), checked
    like the engine's copy, as a secret; None when unset. The engine writes it too, right after
    an order (Engine.keep_acme: a provision that fails after it must not lose the certificate),
    reads whichever of it and the output is newer, and removes it after every provision run
    that exported the state — so a by-hand copy never outlives the next renewal."""
    from dynia.operations.certs import AcmeState

    value = cfg.get_secret_object("acme")
    if value is None:
        return None
    return pulumi.Output.secret(pulumi.Output.from_input(value).apply(
        lambda v: AcmeState.from_dict(v, "the stack config dynia:acme").to_dict()))


def qualified_stack_name(stack: str) -> str:
    """<organization>/dynia/<stack>: DIY backends (file://, s3://) call the organization
    `organization`; Pulumi Cloud uses the stack's own organization, which the engine knows."""
    return f"{pulumi.get_organization() or 'organization'}/dynia/{stack}"
