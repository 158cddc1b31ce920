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
        # DIY backends (file://, s3://) name stacks organization/<project>/<stack>.
        return pulumi.StackReference(f"organization/dynia/{self.stack_name(phase)}")

    @classmethod
    def from_config(cls) -> "PhaseInputs":
        """For `pulumi preview --stack <cluster>-<phase>` run by the CLI or a PR workflow."""
        cfg = pulumi.Config("dynia")
        return cls(project_root=Path(cfg.get("projectRoot") or ".").resolve(), cluster=cfg.require("cluster"),
                   ssh_private_key=cfg.get_secret("sshPrivateKey") or "", ssh_public_key=cfg.get("sshPublicKey") or "",
                   holder=cfg.get("holder"), lab_dir=cfg.get("labDir") or "",
                   provider_token=cfg.get_secret("providerToken"))
