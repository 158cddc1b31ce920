"""The Pulumi Automation API, driven phase by phase: preview, up, destroy, export/import.

Imported only by commands that need the engine: `pulumi` and the provider SDKs load here,
never at CLI start-up. The Pulumi CLI must be installed (the Automation API drives it); when
it is missing or too old, every entry point raises a typed `engine` error saying how to
install it.
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from typing import Callable

from . import providers
from .errors import DyniaError
from .nodes.push_errors import push_error
from .phases import PHASES, phase_of
from .store import Cluster

# 3.112: a failed update keeps the outputs the program did not register (pulumi/pulumi#14621);
# older CLIs wipe them, and a pending removal recorded in `layers` would be forgotten.
MIN_CLI = "3.112.0"
INSTALL_HINT = "install the Pulumi CLI (curl -fsSL https://get.pulumi.com | sh) and put it on PATH"
_EXIT = re.compile(r"(?:exit(?:ed)? (?:with )?(?:status|code)?\s*)(\d+)", re.I)


@dataclass
class ChangeRow:
    phase: str
    node: str
    resource: str
    type: str
    op: str
    changed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"phase": self.phase, "node": self.node, "resource": self.resource, "type": self.type,
                "op": self.op, "changed": self.changed}


def node_of(resource: str, nodes: list[str]) -> str:
    return next((n for n in nodes if resource.startswith(n + "-") or resource == n), "cluster")


def backend_url(cluster: Cluster) -> str:
    url = _configured_backend(cluster.spec.backend)
    if url:
        return url
    state = cluster.project.state_dir
    state.mkdir(parents=True, exist_ok=True)
    return f"file://{state}"


def _configured_backend(spec_backend: str | None) -> str | None:
    return spec_backend or os.environ.get("PULUMI_BACKEND_URL") or None


def require_passphrase(url: str | None) -> None:
    """DIY backends encrypt the state's secrets with the passphrase; Pulumi Cloud does not need one."""
    if (url or "").startswith("https://"):
        return
    if not (os.environ.get("PULUMI_CONFIG_PASSPHRASE") or os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")):
        raise DyniaError("engine", "PULUMI_CONFIG_PASSPHRASE is not set",
                         "export PULUMI_CONFIG_PASSPHRASE=… (it encrypts the secrets in the Pulumi state; "
                         "keep it in your password manager)")


def preflight(provider: "providers.Provider", spec_backend: str | None, project, cluster: str) -> None:
    """Everything an engine command needs from this machine, checked before its first write:
    a command that edits the spec and then applies must not leave the edit behind because the
    Pulumi CLI, the passphrase, the SSH key or a provider token was missing."""
    require_cli()
    require_passphrase(_configured_backend(spec_backend))
    provider.ssh_key_pair(project, cluster)
    for api, env in provider.operator_env:
        if not os.environ.get(env):
            raise DyniaError("provider", f"{env} is not set (the {api} API needs it)",
                             f"export {env}=… (a token with write access), then rerun")


@functools.cache
def require_cli():
    """The Pulumi CLI, at least MIN_CLI, or a typed engine error saying how to get it."""
    from pulumi.automation import PulumiCommand
    from semver import VersionInfo

    try:
        return PulumiCommand(version=VersionInfo.parse(MIN_CLI))
    except FileNotFoundError:
        raise DyniaError("engine", "the Pulumi CLI is not installed (needed to plan and apply)",
                         INSTALL_HINT) from None
    except Exception as exc:  # the SDK's version check
        raise DyniaError("engine", f"the Pulumi CLI is not usable: {str(exc).splitlines()[0]}",
                         f"upgrade it to v{MIN_CLI} or newer: pulumi self-update") from None


class Engine:
    def __init__(self, cluster: Cluster, *, holder: str | None = None, on_progress: Callable[[str], None] | None = None):
        self.cluster = cluster
        self.holder = holder
        self.on_progress = on_progress or (lambda line: None)
        self._command = None
        self._stats: dict | None = None
        self._previous: dict[str, dict | None] = {}
        self._stacks: dict[str, object] = {}

    # --- set-up -------------------------------------------------------------------------

    def _pulumi_command(self):
        if self._command is None:
            self._command = require_cli()
        return self._command

    def _env(self) -> dict[str, str]:
        url = backend_url(self.cluster)
        require_passphrase(url)
        return {"PULUMI_BACKEND_URL": url, "PULUMI_SKIP_UPDATE_CHECK": "true"}

    def phase_inputs(self, phase: str | None = None):
        import pulumi

        from .stacks.inputs import PhaseInputs

        project, name = self.cluster.project, self.cluster.name
        provider = providers.of(self.cluster.spec)
        private, public = provider.ssh_key_pair(project, name)
        token = provider.node_token()
        lab_dir = provider.lab_dir(project, name)
        return PhaseInputs(project_root=project.root, cluster=name,
                           ssh_private_key=pulumi.Output.secret(private) if private else "",
                           ssh_public_key=public, holder=self.holder,
                           lab_dir=str(lab_dir) if lab_dir else "",
                           provider_token=pulumi.Output.secret(token) if token else None,
                           stats_credentials=pulumi.Output.secret(self._stats) if self._stats else None,
                           previous_layers=self._previous.get(phase))

    def stack(self, phase: str):
        """The phase's stack, selected once per command: each selection runs the Pulumi CLI,
        and a command reads provision's outputs (credentials, region) before it runs a phase."""
        if phase not in self._stacks:
            self._stacks[phase] = self._select(phase)
        return self._stacks[phase]

    def _select(self, phase: str):
        from pulumi import automation as auto

        from .stacks import program_module

        module = program_module(phase)
        cmd = self._pulumi_command()
        env = self._env()
        work_dir = self.cluster.project.runtime / "engine"
        work_dir.mkdir(parents=True, exist_ok=True)
        settings = auto.ProjectSettings(name="dynia", runtime="python",
                                        backend=auto.ProjectBackend(url=env["PULUMI_BACKEND_URL"]))
        opts = auto.LocalWorkspaceOptions(work_dir=str(work_dir), project_settings=settings, env_vars=env,
                                          secrets_provider="passphrase", pulumi_command=cmd)
        return auto.create_or_select_stack(stack_name=f"{self.cluster.name}-{phase}", project_name="dynia",
                                           program=lambda: module.program(self.phase_inputs(phase)), opts=opts)

    # --- what lives with the cluster's state, not on this machine ---------------------------

    def stats_credentials(self) -> dict:
        """The stats credentials, kept with the cluster's state: the provision stack exports
        them as a secret output, so CI and a second operator render the same bundles. Before
        the first provision they come from the operator's .dynia/secrets when a cluster made
        before this has them there, else they are generated (and provision then keeps them)."""
        from . import secrets

        if self._stats is not None:
            return self._stats
        stored = self._output(self.stack("provision"), "statsCredentials")
        if stored is not None:
            self._stats = secrets.check(stored, "the provision stack's statsCredentials output",
                                        "run `dynia up --phase provision`: it exports them again")
        else:
            self._stats = secrets.load(self.cluster.project, self.cluster.name) or secrets.generate()
        return self._stats

    @staticmethod
    def _output(stack, name: str):
        try:
            out = stack.outputs().get(name)
        except Exception:  # a stack without an update yet has no outputs to read
            return None
        return getattr(out, "value", None)

    def previous_layers(self, phase: str, stack) -> dict | None:
        """This phase stack's last `layers` output (None before its first update)."""
        value = self._output(stack, "layers")
        return value if isinstance(value, dict) else None

    # --- operations -----------------------------------------------------------------------

    def check_region(self, phases) -> None:
        """A region change would replace every droplet (and the VPC) at once: refuse it before
        anything runs. The provisioned region is the provision stack's own output, so every
        machine sees it."""
        if "provision" not in phases:
            return
        before = self._output(self.stack("provision"), "region")
        now = self.cluster.spec.provider.region
        if before and now != before:
            raise DyniaError("config", f"provider.region is {now} but the cluster's nodes run in {before}; "
                             "changing it would replace every droplet",
                             f"set provider.region back to {before} (to move, create a cluster in {now} "
                             "and move the services to it)")

    def preview(self, phases=PHASES) -> list[ChangeRow]:
        self.check_region(phases)
        rows: list[ChangeRow] = []
        for phase in phases:
            events: list = []
            self._run(phase, events, lambda s: s.preview(on_event=events.append, color="never"))
            rows += self._rows(phase, events)
        return rows

    def _rows(self, phase: str, events) -> list[ChangeRow]:
        out = []
        for ev in events:
            pre = getattr(ev, "resource_pre_event", None)
            if pre is None:
                continue
            md = pre.metadata
            op = getattr(md.op, "value", str(md.op))
            if op in ("same", "read"):
                continue
            name = md.urn.rsplit("::", 1)[-1]
            if md.type.startswith("dynia:index:") or md.type == "pulumi:pulumi:Stack":
                continue
            out.append(ChangeRow(phase, node_of(name, self.cluster.spec.nodes), name, md.type, op,
                                 sorted(md.diffs or [])))
        return out

    def up(self, phases=PHASES, *, continue_on_error: bool = False) -> dict:
        self.check_region(phases)
        outputs: dict = {}
        for phase in phases:
            events: list = []

            def on_event(ev, phase=phase):
                events.append(ev)
                pre = getattr(ev, "res_outputs_event", None)
                if pre is not None:
                    name = pre.metadata.urn.rsplit("::", 1)[-1]
                    if name.endswith("-push") or pre.metadata.type.endswith("Droplet"):
                        self.on_progress(f"{phase}: {name} done")

            self.on_progress(f"{phase}: starting")
            result = self._run(phase, events, lambda s, on_event=on_event: s.up(
                on_event=on_event, color="never", continue_on_error=continue_on_error or None))
            # The Automation API hands secret outputs back decrypted: keep them out of what
            # callers print (`up --json`); the cache needs none of them.
            outputs[phase] = {k: v.value for k, v in result.outputs.items() if not getattr(v, "secret", False)}
            if phase == "provision":
                self.cache_outputs(outputs[phase])
                pem = result.outputs.get("originPem")
                self.cache_certificate(pem.value if pem is not None else None)
        applied = [p for p in phases if p in ("infra", "apps")]
        if applied:
            self.cache_applied(applied)
        return outputs

    def destroy(self, phases=tuple(reversed(PHASES))) -> None:
        for phase in phases:
            self._run(phase, [], lambda s: s.destroy(color="never"))

    def _run(self, phase: str, events: list, operation):
        """Run one operation on the phase's stack; any Pulumi failure becomes a typed error."""
        try:
            self.stats_credentials()
            stack = self.stack(phase)  # its own errors are already typed
            if phase != "provision":
                self._previous[phase] = self.previous_layers(phase, stack)
            return operation(stack)
        except DyniaError:
            raise
        except Exception as exc:
            raise self._failure(phase, events, exc) from None

    def _failure(self, phase: str, events, exc: Exception) -> DyniaError:
        """The first failed push becomes a typed error naming its node; anything else an engine error."""
        resume = f"dynia up --phase {phase} --cluster {self.cluster.name}"
        for ev in events:
            diag = getattr(ev, "diagnostic_event", None)
            if diag is None or diag.severity != "error" or not diag.urn:
                continue
            name = diag.urn.rsplit("::", 1)[-1]
            if name.endswith("-push"):
                m = _EXIT.search(diag.message or "")
                return push_error(name, diag.message or "", int(m.group(1)) if m else None, self.cluster.name)
        text = getattr(exc, "stderr", "") or str(exc)
        lines = [l for l in text.strip().splitlines() if l.strip()]
        return DyniaError("engine", f"phase {phase} failed: {lines[-1] if lines else exc.__class__.__name__}",
                          "rerun with --debug for the engine's full output", resume)

    # --- local cache (what status and the offline plan read without Pulumi) -----------------

    def cache_certificate(self, pem) -> None:
        """The public facts of the state's origin certificate (fingerprint, expiry, names), so
        `dynia infra verify` compares the served one without Pulumi; the key is never kept."""
        from .cache import ClusterCache
        from .store import write_json
        from .verify import CERTIFICATE_CACHE, certificate_record

        if isinstance(pem, str) and "BEGIN CERTIFICATE" in pem:
            write_json(ClusterCache.of(self.cluster).dir / CERTIFICATE_CACHE, certificate_record(pem))

    def cache_outputs(self, provision: dict) -> None:
        from .cache import ClusterCache

        nodes = provision.get("nodes")
        if isinstance(nodes, dict):
            nodes = {n: {k: v.get(k) for k in ("private_ip", "public_ip")} if isinstance(v, dict) else v
                     for n, v in nodes.items()}
        ClusterCache.of(self.cluster).write_outputs({"nodes": nodes, "reserved_ip": provision.get("reservedIp")})

    def cache_applied(self, phases: list[str]) -> None:
        """Merge the layers these phases pushed into the last applied manifest."""
        from . import cache
        from .cache import ClusterCache
        from .session import render_cluster

        rendering = render_cluster(self.cluster, holder=self.holder)
        previous = cache.applied(self.cluster).get("nodes", {})

        def pushed(entry: dict) -> bool:
            return phase_of(entry.get("layer") or "infra") in phases

        nodes = {}
        for node in rendering.files:
            kept = {t: e for t, e in previous.get(node, {}).items() if not pushed(e)}
            fresh = {t: e for t, e in rendering.manifest(node).items() if pushed(e)}
            nodes[node] = dict(sorted({**kept, **fresh}.items()))
        # The content hash says "this render is what the nodes have": true whenever every node's
        # merged manifest equals the render, whichever phases got it there (infra sync, then
        # up --phase apps). Without it the next render bumps the version for nothing.
        complete = all(nodes[n] == rendering.manifest(n) for n in rendering.files)
        ClusterCache.of(self.cluster).write_applied(
            {"configVersion": rendering.config_version,
             "contentHash": rendering.content_hash if complete else None, "nodes": nodes})


def stack_export(engine: Engine, phase: str) -> dict:
    """export_stack() as plain JSON (a Deployment's version + deployment)."""
    dep = engine.stack(phase).export_stack()
    return {"version": dep.version, "deployment": dep.deployment}


def stack_import(engine: Engine, phase: str, data: dict) -> None:
    """Import an old deployment, then refresh it: the snapshot may name droplets or pushes that
    no longer exist, and Pulumi must learn that before it plans anything from it."""
    from pulumi.automation import Deployment

    def operation(stack):
        stack.import_stack(Deployment(version=data["version"], deployment=data["deployment"]))
        stack.refresh(color="never")

    engine._run(phase, [], operation)


__all__ = ["Engine", "PHASES", "ChangeRow", "stack_export", "stack_import"]
