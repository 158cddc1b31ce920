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
    # secret: {"stats_user", "stats_password"}, kept in the provision stack's config so every
    # machine renders the same bundles (None: the operator's .dynia/secrets, e.g. lab pushes)
    stats_credentials: pulumi.Input[dict] | None = None
    # this phase stack's last `layers` output: an unchanged layer keeps its config version
    previous_layers: dict | None = None
    # the infra stack made the reserved IP's first assignment already (its last output)
    reserved_ip_assigned: bool = False

    @property
    def project(self):
        from dynia.store import Project

        return Project(self.project_root)

    def load(self):
        from dynia.store import load_cluster

        return load_cluster(self.project, self.cluster)

    def stack_name(self, phase: str) -> str:
        return f"{self.cluster}-{phase}"

    def reference(self, phase: str) -> pulumi.StackReference:
        return pulumi.StackReference(qualified_stack_name(self.stack_name(phase)))

    @classmethod
    def from_config(cls) -> "PhaseInputs":
        """For `pulumi preview --stack <cluster>-<phase>` run by the CLI or a PR workflow."""
        cfg = pulumi.Config("dynia")
        return cls(project_root=Path(cfg.get("projectRoot") or ".").resolve(), cluster=cfg.require("cluster"),
                   ssh_private_key=cfg.get_secret("sshPrivateKey") or "", ssh_public_key=cfg.get("sshPublicKey") or "",
                   holder=cfg.get("holder"), lab_dir=cfg.get("labDir") or "",
                   provider_token=cfg.get_secret("providerToken"))


def qualified_stack_name(stack: str) -> str:
    """<organization>/dynia/<stack>: DIY backends (file://, s3://) call the organization
    `organization`; Pulumi Cloud uses the stack's own organization, which the engine knows."""
    return f"{pulumi.get_organization() or 'organization'}/dynia/{stack}"
