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

from .. import providers, volumes
from ..errors import DyniaError
from ..nodes.push_errors import push_error, typed_diagnostic
from ..phases import PHASES, phase_of
from ..spec.load import Cluster
from ..state.cache import ClusterCache
from . import pins
from .acme_store import ACME_CONFIG, AcmeStore
from .failures import backend_error, pulumi_failed
from .host_keys import PIN_FIRST_USE_ENV, pin_first_use

# 3.112: a failed update keeps the outputs the program did not register (pulumi/pulumi#14621);
# older CLIs wipe them, and a pending removal recorded in `layers` would be forgotten.
MIN_CLI = "3.112.0"
INSTALL_HINT = "install the Pulumi CLI (curl -fsSL https://get.pulumi.com | sh) and put it on PATH"
_EXIT = re.compile(r"(?:exit(?:ed)? (?:with )?(?:status|code)?\s*)(\d+)", re.I)



SECRET = "[secret]"
UNKNOWN = "[unknown]"
# How the engine serializes a secret in its events (the "secret signature" of Pulumi's state
# format): {SIG: SECRET_SIG, "ciphertext": …} or, with --show-secrets, {…, "plaintext": …}.
_SECRET_KEY, _SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"
# The value the engine sends for an input not known until apply.
_UNKNOWN_VALUE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
VALUE_LIMIT = 60  # characters of a shown value: a preview row is one line per property
# The steps the engine emits for one replacement; the preview shows them as one `replace` row.
_REPLACE_STEPS = ("create-replacement", "replace", "delete-replaced", "discard-replaced", "read-replacement")
_PATH_PART = re.compile(r'\.?([^.\[\]]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')


@dataclass
class PropertyChange:
    """One property of a resource the preview changes: shown values, never secret ones."""
    path: str              # the engine's property path: "size", "connection.host", "triggers[0]"
    kind: str              # add | update | delete
    old: str | None        # the shown value before ([secret] for a secret), None when absent
    new: str | None
    replaces: bool = False  # this change forces a replacement

    def as_dict(self) -> dict:
        return {"path": self.path, "kind": self.kind, "old": self.old, "new": self.new,
                "forcesReplace": self.replaces}


@dataclass
class ChangeRow:
    phase: str
    node: str
    resource: str
    type: str
    op: str
    changed: list[str] = field(default_factory=list)
    properties: list[PropertyChange] = field(default_factory=list)
    replace_because: list[str] = field(default_factory=list)  # the properties that force a replace

    def as_dict(self) -> dict:
        return {"phase": self.phase, "node": self.node, "resource": self.resource, "type": self.type,
                "op": self.op, "changed": self.changed, "properties": [p.as_dict() for p in self.properties],
                "replaceBecause": self.replace_because}

    def describe(self) -> list[str]:
        return describe_change(self.as_dict())


def describe_change(row: dict) -> list[str]:
    """The lines a person reads for one preview row (`ChangeRow.as_dict()`), in the table and
    in the markdown plan: why a replace happens, then each property from what to what."""
    lines = []
    if row.get("replaceBecause"):
        lines.append("replaced because " + ", ".join(row["replaceBecause"]) + " changed")
    props = row.get("properties") or []
    for p in props:
        shown = {"add": f"+ {p['new']}", "delete": f"- {p['old']}"}.get(p["kind"], f"{p['old']} → {p['new']}")
        lines.append(f"{p['path']}: {shown}" + (" (forces replace)" if p.get("forcesReplace") else ""))
    if not props and row.get("changed"):
        lines.append(", ".join(row["changed"]))
    return lines


def preview_rows(phase: str, events, nodes: list[str]) -> list[ChangeRow]:
    """The preview's changed resources, one row each, with the properties that change: from the
    engine's ResourcePreEvents (their detailed diff, and old/new inputs for the values). The
    three steps of a replacement are one `replace` row naming the properties that force it."""
    out: list[ChangeRow] = []
    by_urn: dict[str, ChangeRow] = {}
    for ev in events:
        pre = getattr(ev, "resource_pre_event", None)
        if pre is None:
            continue
        md = pre.metadata
        op = getattr(md.op, "value", str(md.op))
        if op in ("same", "read") or md.type.startswith("dynia:index:") or md.type == "pulumi:pulumi:Stack":
            continue
        replacing = op in _REPLACE_STEPS
        props, because = property_changes(md)
        if replacing and not because:
            because = sorted(str(k) for k in md.keys or [])
        row = by_urn.get(md.urn)
        if row is not None and replacing:  # the same replacement's other steps
            row.op = "replace"
            row.changed = sorted(set(row.changed) | set(md.diffs or []))
            row.properties = row.properties or props
            row.replace_because = row.replace_because or because
            continue
        name = md.urn.rsplit("::", 1)[-1]
        row = ChangeRow(phase, node_of(name, nodes), name, md.type, "replace" if replacing else op,
                        sorted(md.diffs or []), props if op not in ("create", "delete") else [], because)
        by_urn[md.urn] = row
        out.append(row)
    return out


def property_changes(md) -> tuple[list[PropertyChange], list[str]]:
    """(the properties that change, the paths among them that force a replace), from one step's
    metadata. Values come from the step's old and new state (inputs for an input diff, else
    outputs), shown short; anything the engine marks secret is shown as [secret]."""
    detailed = md.detailed_diff or {}
    if not detailed:  # a provider without detailed diffs: the top-level keys only
        detailed = {k: None for k in md.diffs or []}
    props, because = [], []
    for path in sorted(detailed):
        diff = detailed[path]
        kind = getattr(getattr(diff, "diff_kind", None), "value", "update")
        input_diff = getattr(diff, "input_diff", True)
        replaces = kind.endswith("-replace")
        base = kind.removesuffix("-replace")
        # An input diff compares old and new inputs; otherwise the old state (outputs) against
        # the new inputs (PropertyDiff.input_diff).
        old = _state_value(md.old, path, input_diff)
        new = _state_value(md.new, path, True)
        props.append(PropertyChange(path, base, None if base == "add" else old, None if base == "delete" else new,
                                    replaces))
        if replaces:
            because.append(path)
    return props, because


def _state_value(state, path: str, inputs: bool) -> str | None:
    if state is None:
        return None
    value = (state.inputs if inputs else state.outputs) or {}
    for part in _path_parts(path):
        if _is_secret(value):
            return SECRET
        if isinstance(value, dict) and isinstance(part, str) and part in value:
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            return None
    return show_value(value)


def _path_parts(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for m in _PATH_PART.finditer(path):
        name, index, quoted = m.groups()
        parts.append(int(index) if index is not None else (quoted if quoted is not None else name))
    return parts


def _is_secret(value) -> bool:
    return value == SECRET or (isinstance(value, dict) and value.get(_SECRET_KEY) == _SECRET_SIG)


def show_value(value) -> str:
    """A property value as one short line; a secret anywhere inside it makes it [secret]."""
    import json

    def contains_secret(v) -> bool:
        if _is_secret(v):
            return True
        if isinstance(v, dict):
            return any(contains_secret(x) for x in v.values())
        if isinstance(v, list):
            return any(contains_secret(x) for x in v)
        return False

    if contains_secret(value):
        return SECRET
    if value == _UNKNOWN_VALUE:
        return UNKNOWN
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    text = json.dumps(text) if isinstance(value, str) else text
    text = text.replace("\n", " ")
    return text if len(text) <= VALUE_LIMIT else text[:VALUE_LIMIT - 1] + "…"


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
    Pulumi CLI, the passphrase, the SSH key or a provider token was missing. Every check runs,
    so a new machine learns all it lacks from one run, not one rerun per missing piece."""
    def operator_token(api: str, env: str) -> None:
        if not os.environ.get(env):
            raise DyniaError("provider", f"{env} is not set (the {api} API needs it)",
                             f"export {env}=… (a token with write access)")

    checks: tuple[Callable[[], object], ...] = (require_cli, lambda: require_passphrase(_configured_backend(spec_backend)),
              lambda: provider.ssh_key_pair(project, cluster),
              *(functools.partial(operator_token, api, env) for api, env in provider.operator_env),
              provider.node_token)  # the scoped token pushes write to nodes: missing or the operator's
    missing = []
    for check in checks:
        try:
            check()
        except DyniaError as exc:
            missing.append(exc)
    if missing:
        raise machine_not_ready(missing)


def machine_not_ready(missing: list[DyniaError]) -> DyniaError:
    """One error for everything this machine lacks, each piece with its own fix; the first
    piece's kind sets the exit code (the CLI first: nothing runs without it)."""
    doctor = "`dynia context doctor` checks all of it again"
    if len(missing) == 1:
        only = missing[0]
        return DyniaError(only.kind, only.message, f"{only.hint}; {doctor}")
    # One `error:` line and one `hint:` line, as every error: numbered, so each fix finds its piece.
    pieces = "; ".join(f"({i}) {e.message}" for i, e in enumerate(missing, 1))
    fixes = "; ".join(f"({i}) {e.hint}" for i, e in enumerate(missing, 1))
    return DyniaError(missing[0].kind, f"this machine is not ready to plan or apply, {len(missing)} pieces are "
                      f"missing: {pieces}", f"{fixes}; then {doctor}")


@functools.cache
def require_cli():
    """The Pulumi CLI, at least MIN_CLI, or a typed engine error saying how to get it."""
    from pulumi.automation import PulumiCommand
    from semver import VersionInfo

    try:
        return PulumiCommand(version=VersionInfo.parse(MIN_CLI))
    except FileNotFoundError:
        raise DyniaError("engine", "the Pulumi CLI is not installed (needed to plan, apply and read the cluster's state)",
                         INSTALL_HINT) from None
    except Exception as exc:  # the SDK's version check
        raise DyniaError("engine", f"the Pulumi CLI is not usable: {str(exc).splitlines()[0]}",
                         f"upgrade it to v{MIN_CLI} or newer: pulumi self-update") from None


RELEASES_STACK = "releases"  # <cluster>-releases: the ledger (dynia.operations.releases), no resource, one output


class Engine:
    def __init__(self, cluster: Cluster, *, holder: str | None = None, on_progress: Callable[[str], None] | None = None,
                 read_only: bool = False, answers: dict | None = None):
        self.cluster = cluster
        # node → dynia.nodes.gather.NodeFacts read when the session opened (vrrp, pushed_from)
        self.answers = answers or {}
        self.read_only = read_only  # only reads the state: creates no stack (_select)
        self.holder = holder
        self.on_progress = on_progress or (lambda line: None)
        # What shows a roll while `up` runs (dynia.cli.progress.Display): told when each phase
        # starts and ends and given every engine event; None: the progress lines only.
        self.watcher = None
        self._command = None
        self._stats: dict | None = None
        self.acme = AcmeStore(self)  # tls.mode letsencrypt's state, where it is kept (acme_store)
        self._previous: dict[str, dict | None] = {}
        self._stacks: dict[str, object] = {}
        # {reference: digest} resolved once for this command's roll (pin_images); None: the
        # release in force on this machine (dynia.state.cache.images) is rendered again
        self._images: dict[str, str] | None = None
        self._ledger: list | None = None   # what the releases stack's next update exports
        # service -> {release, content, images}: set by `dynia rollback` (roll_back); None on a
        # roll from the spec, which replaces every rollback in effect
        self._rollback: dict[str, dict] | None = None
        # what the runs stack's next update exports (dynia.records.keep)
        self.runs_to_keep: list[dict] | None = None
        # run once, right before the first infra or apps push of this command (dynia.up: the
        # release commands), then cleared
        self.before_pushes: Callable[[], None] | None = None

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

        from ..stacks.inputs import PhaseInputs

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
                           acme=pulumi.Output.secret(self.acme.state.to_dict()) if self.acme.state else None,
                           previous_layers=self._previous.get(phase) if phase else None,
                           images=self._images, releases=self._ledger,
                           rollback=self._rollback if self._rollback is not None or self._images is None else {},
                           runs=self.runs_to_keep if phase == "runs" else None)

    def stack(self, phase: str):
        """The phase's stack, selected once per command: each selection runs the Pulumi CLI,
        and a command reads provision's outputs (credentials, region) before it runs a phase."""
        from pulumi.automation import StackNotFoundError

        if phase not in self._stacks:
            try:
                self._stacks[phase] = self._select(phase)
            except (DyniaError, StackNotFoundError):  # the latter: a read-only engine's answer, "none"
                raise
            except Exception as exc:  # the CLI could not select or create the stack
                raise pulumi_failed(f"selecting the stack {self.cluster.name}-{phase}", exc) from None
        return self._stacks[phase]

    def _select(self, phase: str):
        """The phase's stack, created when missing; a read-only engine selects an existing one
        only (StackNotFoundError otherwise): what only reads leaves no empty stack behind."""
        from pulumi import automation as auto

        from ..stacks import program_module

        module = program_module(phase)   # the releases ledger's own program too (RELEASES_STACK)
        cmd = self._pulumi_command()
        env = self._env()
        work_dir = self.cluster.project.runtime / "engine"
        work_dir.mkdir(parents=True, exist_ok=True)
        settings = auto.ProjectSettings(name="dynia", runtime="python",
                                        backend=auto.ProjectBackend(url=env["PULUMI_BACKEND_URL"]))
        opts = auto.LocalWorkspaceOptions(work_dir=str(work_dir), project_settings=settings, env_vars=env,
                                          secrets_provider="passphrase", pulumi_command=cmd)
        select = auto.select_stack if self.read_only else auto.create_or_select_stack
        return select(stack_name=f"{self.cluster.name}-{phase}", project_name="dynia",
                      program=lambda: module.program(self.phase_inputs(phase)), opts=opts)

    # --- what lives with the cluster's state, not on this machine ---------------------------

    def stats_credentials(self) -> dict:
        """The stats credentials, kept with the cluster's state: the provision stack exports
        them as a secret output, so CI and a second operator render the same bundles. Before
        the first provision they come from the operator's .dynia/secrets when a cluster made
        before this has them there, else they are generated (and provision then keeps them)."""
        from ..state import secrets

        if self._stats is not None:
            return self._stats
        stored = self._output(self.stack("provision"), "statsCredentials")
        if stored is not None:
            self._stats = secrets.check(stored, "the provision stack's statsCredentials output",
                                        "run `dynia up --phase provision`: it exports them again")
        else:
            self._stats = secrets.load(self.cluster.project, self.cluster.name) or secrets.generate()
        return self._stats

    def acme_state(self):
        """tls.mode letsencrypt's state in force (dynia.acme.state.AcmeState; dynia.engine.acme_store)."""
        return self.acme.current()

    def acme_pending(self) -> bool:
        """The state in force is an order kept in the stack's config that no provision has
        stored yet: the next provision stores it, infra rolls it — nothing is ordered again."""
        self.acme.current()
        return self.acme.pending

    def keep_acme(self, state) -> None:
        """A freshly ordered certificate, made durable before anything else runs (AcmeStore.keep)."""
        self.acme.keep(state)

    def _forget_acme_config(self, stack) -> None:
        self.acme.forget_config(stack)

    def refresh_outputs(self) -> bool:
        """The cache's node addresses, pinned host keys and certificate facts from the provision
        stack's current outputs: a fresh checkout or a CI runner has no .dynia/cache, and the
        commands that read the nodes (status, drift-check, verify) and `dynia cert` need them.
        True when the stack reported nodes; False when it has none (no stack, or no update yet:
        never provisioned)."""
        from pulumi.automation import StackNotFoundError

        try:
            outputs = stack_outputs(self.stack("provision"))
        except StackNotFoundError:
            return False
        values = {k: getattr(v, "value", None) for k, v in outputs.items()}
        if not isinstance(values.get("nodes"), dict):
            return False
        self.cache_outputs({k: v for k, v in values.items()
                            if not getattr(outputs[k], "secret", False)})
        self.cache_certificate(values.get("originPem"))
        return True

    @staticmethod
    def _output(stack, name: str):
        return getattr(stack_outputs(stack).get(name), "value", None)

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
        provision = self.stack("provision")
        # A data volume only grows, keeps its filesystem, and outlives a spec change (dynia.volumes).
        volumes.check_recorded(self.cluster.spec, self._output(provision, "volumes"))
        before = self._output(provision, "region")
        now = self.cluster.spec.provider.region
        if before and now != before:
            raise DyniaError("config", f"provider.region is {now} but the cluster's nodes run in {before}; "
                             "changing it would replace every droplet",
                             f"set provider.region back to {before} (to move, create a cluster in {now} "
                             "and move the services to it)")

    def check_account(self, phases) -> None:
        """What the provider's account would refuse (DigitalOcean: a VPC range another VPC of the
        account overlaps), refused before anything is created; the cluster's own networks, those
        its provision state holds, are not in the way."""
        if "provision" not in phases:
            return
        state: list[list[dict]] = []

        def provisioned() -> list[dict]:   # one export, however often it is asked
            if not state:
                state.append(self.provisioned())
            return state[0]

        providers.of(self.cluster.spec).check_account(
            self.cluster.spec, lambda: {r.get("id") for r in provisioned() if r.get("id")}, provisioned)

    def provisioned(self) -> list[dict]:
        """The provision stack's resources as its state holds them."""
        return self._provision_state()[1]

    def _provision_state(self):
        dep = self._run("provision", [], lambda s: s.export_stack())
        resources = (dep.deployment or {}).get("resources") if isinstance(dep.deployment, dict) else None
        return dep, [r for r in resources or [] if isinstance(r, dict)]

    def retain(self, which, keep: bool = True) -> list[str]:
        """Mark the provision state's resources `which(resource)` picks retainOnDelete (destroy
        then drops them from the state and leaves them in the cloud), or not (`keep=False`:
        destroy deletes them); their ids."""
        dep, resources = self._provision_state()
        picked = [r for r in resources if which(r)]
        changed = [r for r in picked if bool(r.get("retainOnDelete")) != keep]
        if changed:
            for r in changed:
                r["retainOnDelete"] = keep
            self._run("provision", [], lambda s: s.import_stack(dep))
        return [r.get("id") for r in picked]

    def pin_images(self, phases) -> None:
        """Before a roll that pushes services: every tag resolved to a digest once (dynia.engine.pins),
        the same for every node and both push phases of this command."""
        if "apps" in phases and self._images is None:
            self._images = pins.resolve(self.cluster)

    def pinned_images(self) -> dict[str, str]:
        """What this command's roll pinned ({} when it resolved nothing)."""
        return dict(self._images or {})

    def rolled_back(self) -> dict[str, dict]:
        """What this command's roll keeps on older releases ({} on a roll from the spec)."""
        return dict(self._rollback or {})

    def roll_back(self, images: dict[str, str], rollback: dict[str, dict]) -> None:
        """Make the next apps roll a rollback: `rollback`'s services on their releases' compose
        files and digests, every other service on `images` (the release in force: nothing is
        resolved again, so no other service moves with a tag)."""
        self._images, self._rollback = dict(images), dict(rollback)

    def preview(self, phases=PHASES) -> list[ChangeRow]:
        self.check_region(phases)
        self.check_account(phases)
        self.pin_images(phases)
        rows: list[ChangeRow] = []
        for phase in phases:
            events: list = []
            self._run(phase, events, lambda s: s.preview(on_event=events.append, color="never"), "preview")
            rows += self._rows(phase, events)
        return rows

    def _rows(self, phase: str, events) -> list[ChangeRow]:
        return preview_rows(phase, events, self.cluster.spec.nodes)

    def up(self, phases=PHASES, *, continue_on_error: bool = False) -> dict:
        self.check_region(phases)
        self.check_account(phases)
        if {"infra", "apps"} & set(phases):
            self.require_answers()
        self.pin_images(phases)
        outputs: dict = {}
        held = False   # the reserved IP checked in this run (after infra, or before apps)
        for phase in phases:
            if phase in ("infra", "apps") and self.before_pushes is not None:
                hook, self.before_pushes = self.before_pushes, None
                hook()
            if phase == "apps" and not held:
                self.require_master_holds()  # before the phase that creates or changes DNS records
                held = True
            events: list = []

            def on_event(ev, phase=phase):
                events.append(ev)
                if self.watcher is not None:
                    self.watcher.event(phase, ev)
                pre = getattr(ev, "res_outputs_event", None)
                if pre is not None:
                    name = pre.metadata.urn.rsplit("::", 1)[-1]
                    if name.endswith("-push") or pre.metadata.type.endswith("Droplet"):
                        self.on_progress(f"{phase}: {name} done")

            self.on_progress(f"{phase}: starting")
            if self.watcher is not None:
                self.watcher.phase_started(phase)
            result = self._run(phase, events, lambda s, on_event=on_event: s.up(
                on_event=on_event, color="never", continue_on_error=continue_on_error or None), "up")
            if self.watcher is not None:
                self.watcher.phase_done(phase)
            # The Automation API hands secret outputs back decrypted: keep them out of what
            # callers print (`up --json`); the cache needs none of them.
            outputs[phase] = {k: v.value for k, v in result.outputs.items() if not getattr(v, "secret", False)}
            if phase == "provision":
                self._forget_acme_config(self.stack(phase))  # the run exported the state in force
                self.cache_outputs(outputs[phase])
                pem = result.outputs.get("originPem")
                self.cache_certificate(pem.value if pem is not None else None)
                self.resize_roll(outputs[phase])
            if phase == "infra":
                self.cache_applied(["infra"])   # it is applied, whatever the check below says
                self.require_master_holds()
                held = True
        if "apps" in phases and self._images is not None:
            # Every render on this machine names what the nodes now run (status, drift, plan).
            ClusterCache.of(self.cluster).write_images(self._images, self._rollback)
        applied = [p for p in phases if p in ("infra", "apps")]
        if applied:
            self.cache_applied(applied)
        return outputs

    def power(self):
        """The nodes' power and size steps (dynia.resize.Power): the provider's, or for nodes that
        live on this machine (the lab) the lab's way, a reboot of their namespaces."""
        provider = providers.of(self.cluster.spec)
        power = provider.power(self.cluster.project, self.cluster.name)
        lab_dir = provider.lab_dir(self.cluster.project, self.cluster.name)
        if power is None and lab_dir is not None:
            from ..nodes.lab_power import LabPower

            return LabPower(lab_dir)
        return power

    # --- the releases ledger: a stack of its own, so every machine with the backend reads it --

    def releases(self) -> list[dict]:
        """The cluster's recorded releases, oldest first ([] before the first one)."""
        from pulumi.automation import StackNotFoundError

        try:
            value = self._output(self.stack(RELEASES_STACK), "releases")
        except StackNotFoundError:
            return []
        return value if isinstance(value, list) else []

    def keep_releases(self, releases: list[dict]) -> None:
        """Record the ledger (the whole list: the stack's one output) in the cluster's state."""
        self._ledger = releases
        try:
            self.stack(RELEASES_STACK).up(color="never", on_event=lambda ev: None)
        except Exception as exc:
            raise pulumi_failed(f"recording the release in the stack {self.cluster.name}-{RELEASES_STACK}", exc,
                                f"dynia releases --cluster {self.cluster.name}") from None

    def resize_roll(self, provision: dict) -> None:
        """After provision (which never resizes an existing droplet): dynia.resize's roll for
        each node whose live size is not the spec's, then a refresh records the new sizes."""
        from ..planner import rolling_order
        from ..resize import pending, roll
        from .resize_steps import SshNodeSteps
        from .targets import targets

        power = self.power()
        nodes = provision.get("nodes") or {}
        if power is None or not nodes:
            return
        spec = self.cluster.spec
        order = rolling_order(spec.nodes, spec.master_node, self.holder)
        # Only a node whose state records another size is asked live (the state holds the size
        # a droplet was created with, or the roll's refresh set): no API call when nothing changed.
        ids = {n: str(v["droplet_id"]) for n, v in nodes.items() if isinstance(v, dict) and v.get("droplet_id")
               and v.get("size") and v["size"] != spec.provider.size}
        resizes = pending(order, ids, spec.provider.size, power)
        if not resizes:
            return
        steps = SshNodeSteps(spec, {t.node: t for t in targets(self.cluster)},
                             {n: v["private_ip"] for n, v in nodes.items()}, say=self.on_progress)
        # Unknown holder (no node answered): the configured MASTER is assumed to hold it, as the order does.
        done = roll(resizes, self.holder or spec.master_node, power, steps, say=self.on_progress)
        if done:
            stack_refresh(self, "provision")   # the state records the sizes the roll set
            self.cache_outputs({**provision, "nodes": {n: {**v, "size": spec.provider.size} if n in done else v
                                                       for n, v in nodes.items()}})

    def require_answers(self) -> None:
        """A node that did not answer the session's read and drops SSH silently (a narrowed
        firewall.admin_ranges) stops the run within lockout.PROBE_SECONDS, before any push."""
        from ..render.lockout import require_answers
        from .targets import targets

        require_answers(targets(self.cluster), {n for n, a in self.answers.items() if a.error})

    def excluded_pushers(self) -> list:
        """lockout.excluded for the spec's admin ranges and what the nodes recorded."""
        from ..render.lockout import excluded

        return excluded(self.cluster.spec.firewall.admin_ranges,
                        {n: a.facts.get("pushed_from") for n, a in self.answers.items()})

    def require_master_holds(self) -> None:
        """The provider must say the VRRP MASTER holds the reserved IP (dynia.engine.holder_gate), within
        the cluster's health timeout; a typed `provider` error otherwise, before any DNS record."""
        from ..state.cache import ClusterCache
        from .holder_gate import require_master_holds
        from .targets import refresh_if_stale, targets, unpinned

        refresh_if_stale(self.cluster, lambda: self)   # this machine's cache, else the provision state's outputs
        nodes = targets(self.cluster)
        outputs = ClusterCache.of(self.cluster).read_outputs()
        if outputs is None or not nodes:
            return  # never provisioned: the apps phase has no address to point DNS at either
        known = {t.node: {a for a in (outputs.nodes[t.node].private_ip, outputs.nodes[t.node].public_ip, t.host) if a}
                 for t in nodes}
        require_master_holds(self.cluster, nodes, outputs.reserved_ip, known,
                             bound=self.cluster.spec.health.timeout, refused=unpinned(self.cluster),
                             say=self.on_progress)

    def destroy(self, phases=tuple(reversed(PHASES))) -> None:
        for phase in phases:
            self._run(phase, [], lambda s: s.destroy(color="never"))

    def _run(self, phase: str, events: list, operation, first_use: str = "none"):
        """Run one operation on the phase's stack; any Pulumi failure becomes a typed error.
        first_use: what pin_first_use does before it ("up", "preview"; else nothing)."""
        try:
            self.stats_credentials()
            self.acme_state()
            stack = self.stack(phase)  # its own errors are already typed
            if phase != "provision":
                self._previous[phase] = self.previous_layers(phase, stack)
            else:
                self.pin_first_use(stack, first_use)
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
            if diag is not None and diag.severity == "error":
                typed = typed_diagnostic(diag.message or "", resume)  # a program's own typed error (log_typed)
                if typed is not None:
                    return typed
            if diag is None or diag.severity != "error" or not diag.urn:
                continue
            name = diag.urn.rsplit("::", 1)[-1]
            if name.endswith("-push"):
                m = _EXIT.search(diag.message or "")
                return push_error(name, diag.message or "", int(m.group(1)) if m else None, self.cluster.name)
        return pulumi_failed(f"phase {phase}", exc, resume)

    # --- local cache (what status and the offline plan read without Pulumi) -----------------

    def cache_certificate(self, pem) -> None:
        """The public facts of the state's origin certificate (fingerprint, expiry, names), so
        `dynia infra verify` compares the served one without Pulumi; the key is never kept."""
        from ..state.cache import CERTIFICATE_CACHE, ClusterCache
        from ..state.store import write_json
        from ..tls import certificate_record

        if isinstance(pem, str) and "BEGIN CERTIFICATE" in pem:
            write_json(ClusterCache.of(self.cluster).dir / CERTIFICATE_CACHE, certificate_record(pem))

    def cache_outputs(self, provision: dict) -> None:
        from ..state.cache import ClusterCache

        nodes = provision.get("nodes")
        if isinstance(nodes, dict):
            # The pinned host keys travel with the addresses: status, drift and repair verify
            # each node with them (ClusterCache.known_hosts).
            nodes = {n: {k: v.get(k) for k in ("private_ip", "public_ip", "host_key", "host_key_source", "size")
                         if k in ("private_ip", "public_ip") or v.get(k) is not None}
                     if isinstance(v, dict) else v for n, v in nodes.items()}
        ClusterCache.of(self.cluster).write_outputs({"nodes": nodes, "reserved_ip": provision.get("reservedIp")})
        self.cache_origin_pull(provision.get("originPull"))

    def cache_origin_pull(self, pull) -> None:
        """The public facts of the state's origin-pull client certificate, so `dynia infra verify`
        compares the zone's upload with it without Pulumi (the key is a secret of the state)."""
        from ..state.cache import ORIGIN_PULL_CACHE, ClusterCache
        from ..state.store import write_json
        from ..tls import certificate_record

        certificate = pull.get("certificate") if isinstance(pull, dict) else None
        if isinstance(certificate, str) and "BEGIN CERTIFICATE" in certificate:
            write_json(ClusterCache.of(self.cluster).dir / ORIGIN_PULL_CACHE, certificate_record(certificate))

    def pin_first_use(self, stack, mode: str = "up") -> None:
        """The host keys of droplets created before dynia pinned host keys (dynia.engine.host_keys)."""
        pin_first_use(self, stack, mode)

    def cache_applied(self, phases: list[str]) -> None:
        """Merge the layers these phases pushed into the last applied manifest."""
        from ..render.rendered import render_cluster
        from ..state import cache
        from ..state.cache import ClusterCache

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
             "contentHash": rendering.content_hash if complete else None, "nodes": nodes},
            rendering=rendering)  # the contents and slots of the layers pushed: the next plan's line diffs


def stack_outputs(stack) -> dict:
    """The stack's outputs; a stack without an update has none (Pulumi answers {}). A failed
    read is an engine error, never "no outputs": a wrong passphrase read as no `acme` output
    would place a second certificate order, and as no `region` would skip the region check."""
    from pulumi.automation import StackNotFoundError

    try:
        return stack.outputs()
    except StackNotFoundError:
        raise   # no stack at all (a read-only engine): the caller says what that means
    except Exception as exc:
        raise backend_error(stack, exc) from None


def stack_export(engine: Engine, phase: str) -> dict:
    """export_stack() as plain JSON (a Deployment's version + deployment)."""
    stack = engine.stack(phase)
    try:
        dep = stack.export_stack()
    except Exception as exc:
        raise pulumi_failed(f"exporting the stack {engine.cluster.name}-{phase}", exc) from None
    return {"version": dep.version, "deployment": dep.deployment}


def stack_import(engine: Engine, phase: str, data: dict) -> None:
    """Import an old deployment; refresh it next (stack_refresh): the snapshot may name droplets
    or pushes that no longer exist, and Pulumi must learn that before it plans anything from it."""
    from pulumi.automation import Deployment

    engine._run(phase, [], lambda s: s.import_stack(Deployment(version=data["version"],
                                                                deployment=data["deployment"])))


def stack_refresh(engine: Engine, phase: str) -> None:
    engine._run(phase, [], lambda s: s.refresh(color="never"))




__all__ = ["ACME_CONFIG", "Engine", "PHASES", "PIN_FIRST_USE_ENV", "ChangeRow", "PropertyChange", "describe_change", "preview_rows", "stack_export",
           "stack_import", "stack_refresh"]
