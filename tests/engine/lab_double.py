"""LabEngineDouble — a test double of the Pulumi engine, clearly not the engine.

The Pulumi CLI and provider plugins cannot run here, so this Mocks subclass plays the
engine for the real phase programs (dynia.stacks) with the local provider:

* `command:local:Command` runs its `create` for real (the lab node up, via dynia.nodes.lab);
* `command:remote:Command` runs its `create` over SSH with its `stdin` for real — the apply
  script and bundle reach the lab node exactly as the command provider would send them
  (inputs arrive camelCase; secrets arrive wrapped and are unwrapped here);
* StackReferences return the outputs the earlier phase exported. (The local provider's
  certificate is dynia.tls's self-signed one, not a resource: nothing else to stand in for.)

A failing command raises, which stops every resource that depends on it — as Pulumi does.
"""
from __future__ import annotations

import logging

import asyncio
import subprocess
import threading

import pulumi

# A failed gate (an exception in new_resource) leaves Pulumi-internal futures whose errors are
# never retrieved; asyncio logs each one when it is collected — at interpreter exit that logging
# crashes CPython 3.11's traceback formatter. The failure itself is asserted by the tests.
logging.getLogger("asyncio").setLevel(logging.CRITICAL)

SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"


def unwrap(value):
    if isinstance(value, dict):
        if SECRET_SIG_KEY in value:
            return unwrap(value["value"])
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


class CommandFailed(Exception):
    def __init__(self, resource: str, exit_status: int | None, output: str):
        super().__init__(f"{resource}: exit {exit_status}: {output.strip()[-500:]}")
        self.resource, self.exit_status, self.output = resource, exit_status, output


class LabEngineDouble(pulumi.runtime.Mocks):
    def __init__(self, references: dict | None = None):
        self.references = references or {}   # stack name -> outputs
        self.executed: list[tuple[str, str]] = []  # (type, name) of commands run for real, in order
        self.failures: list[CommandFailed] = []
        self.connections: dict[str, dict] = {}      # remote command name -> its connection (key removed)
        self.lock = threading.Lock()

    def new_resource(self, args):
        inputs = unwrap(args.inputs)
        if args.typ == "pulumi:pulumi:StackReference":
            stack = args.name.rsplit("/", 1)[-1]
            return args.name, {"name": args.name, "outputs": self.references.get(stack, {}),
                               "secretOutputNames": ["originPem"]}
        if args.typ == "command:local:Command":
            proc = subprocess.run(["sh", "-c", inputs["create"]], capture_output=True, text=True, timeout=300,
                                  input=inputs.get("stdin"))
            self._record(args, proc.returncode, proc.stdout + proc.stderr)
            return f"{args.name}-id", {**inputs, "stdout": proc.stdout, "stderr": proc.stderr}
        if args.typ == "command:remote:Command":
            with self.lock:
                self.connections[args.name] = {k: v for k, v in inputs["connection"].items() if k != "privateKey"}
            status, out, err = asyncio.run(self._ssh(inputs))
            self._record(args, status, err or out)
            return f"{args.name}-id", {**inputs, "stdout": out, "stderr": err}
        return f"{args.name}-id", inputs

    def call(self, args):
        return {}

    def _record(self, args, status, output):
        with self.lock:
            self.executed.append((args.typ, args.name))
        if status != 0:
            failure = CommandFailed(args.name, status, output)
            with self.lock:
                self.failures.append(failure)
            raise failure

    async def _ssh(self, inputs):
        import asyncssh

        conn_args = inputs["connection"]
        # As the command provider: a hostKey is the one key accepted (Go's ssh.FixedHostKey);
        # without one it verifies nothing.
        host_key = conn_args.get("hostKey")
        known = ([asyncssh.import_public_key(host_key)], [], []) if host_key else None
        try:
            key = asyncssh.import_private_key(conn_args["privateKey"])
            conn = await asyncio.wait_for(asyncssh.connect(conn_args["host"], username=conn_args.get("user", "root"),
                                                           client_keys=[key], known_hosts=known), 5)
        except asyncssh.HostKeyNotVerifiable:
            return None, "", f"ssh: handshake failed: ssh: host key mismatch ({conn_args['host']}:22)"
        except (OSError, asyncio.TimeoutError, asyncssh.Error) as exc:
            return None, "", f"dial tcp {conn_args['host']}:22: {exc.__class__.__name__}: {exc}"
        try:
            stdin = inputs.get("stdin")
            result = await conn.run(inputs["create"], input=stdin, check=False)
            return result.exit_status, result.stdout or "", result.stderr or ""
        finally:
            conn.close()


def lab_inputs(root, lab_dir, cluster: str = "lab", **fields):
    """The phase programs' inputs for a lab cluster: the project, the lab directory and its key
    (fields: further PhaseInputs, e.g. the ACME state the provision phase keeps)."""
    from dynia.stacks.inputs import PhaseInputs

    from dynia.providers.local import LAB_NODE_TOKEN

    key = lab_dir / "id_ed25519"
    # The node token, as the engine passes the provider's (fields may give the nodes another)
    fields.setdefault("provider_token", LAB_NODE_TOKEN)
    return PhaseInputs(project_root=root, cluster=cluster, lab_dir=str(lab_dir),
                       ssh_private_key=key.read_text() if key.exists() else "", **fields)


def run_phase(module, ctx, phase: str, double: LabEngineDouble) -> tuple[dict, Exception | None]:
    """Run one phase program on the double; returns (exported outputs, error or None)."""
    # Each push runs asyncio.run(), which leaves the main thread without a loop; Pulumi needs one.
    asyncio.set_event_loop(asyncio.new_event_loop())
    # set_mocks keeps the previous run's root stack (and its exports): a failed run's outputs
    # would leak into the next phase's run. Each run starts from no root, as a real one does.
    pulumi.runtime.settings.set_root_resource(None)
    pulumi.runtime.set_mocks(double, project="dynia", stack=f"{ctx.cluster}-{phase}", preview=False)
    exported: dict = {}

    @pulumi.runtime.test
    def program():
        module.program(ctx)
        # What the program exported (the root stack's outputs), for the next phase's reference.
        root = pulumi.runtime.settings.get_root_resource()
        return pulumi.Output.from_input(dict(root.outputs)).apply(exported.update)

    try:
        program()
        error = None
    except Exception as exc:
        error = exc
    return unwrap(exported), error
