"""NodeConfig: one push of one layer to one node — the apply script with its bundle on stdin."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi

DIAL_ERROR_LIMIT = 60
PER_DIAL_TIMEOUT = 10  # seconds


@dataclass
class NodeConfigArgs:
    node: str
    layer: str
    host: pulumi.Input[str]
    # The node's SSH host key ("ssh-ed25519 AAAA…", provision's record): the push connects to
    # nothing else (the command provider refuses another key: "ssh: host key mismatch").
    host_key: pulumi.Input[str] | None
    private_key: pulumi.Input[str]       # secret
    payload: pulumi.Input[str]           # secret: apply script + bundle (files, filled secret slots)
    digest: pulumi.Input[str]            # changes whenever the payload does
    command: str                         # dynia.nodes.payload.BOOTSTRAP: constant, secret-free
    after: list | None = None            # the previous node's gate: the dependency *is* the rolling order
    user: str = "root"
    # The operator's ssh-agent: used when private_key is "" (a passphrase-protected key, or none on
    # disk: the engine then reads no key); None → SSH_AUTH_SOCK of this process.
    agent_socket_path: str | None = None


def connection_auth(args: NodeConfigArgs) -> dict:
    """The key options of the push's ConnectionArgs: the private key, or, when the engine has
    none (the empty string: see providers' ssh_key_pair), the ssh-agent's socket."""
    import os

    if isinstance(args.private_key, str) and not args.private_key:
        agent = args.agent_socket_path or os.environ.get("SSH_AUTH_SOCK")
        return {"agent_socket_path": agent} if agent else {}
    return {"private_key": pulumi.Output.secret(args.private_key)}


class NodeConfig(pulumi.ComponentResource):
    """The resource *is* the node's health gate: the apply script exits non-zero when the
    gate fails (after rolling the node back), so anything that depends on it — the next
    node's push, DNS, the phase's `layers` output — waits for a healthy node."""

    def __init__(self, name: str, args: NodeConfigArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dynia:index:NodeConfig", name, None, opts)
        import pulumi_command as command

        self.node, self.layer = args.node, args.layer

        self.push = command.remote.Command(
            f"{name}-push",
            connection=command.remote.ConnectionArgs(host=args.host, user=args.user, host_key=args.host_key,
                                                     **connection_auth(args),
                                                     # A droplet turns `active` a minute or more before its sshd
                                                     # answers: keep dialling for a boot's worth of minutes
                                                     # (60 tries, each at most 10 s plus the provider's backoff
                                                     # of up to a few seconds: ~5 to 15 minutes), not 3 tries.
                                                     dial_error_limit=DIAL_ERROR_LIMIT,
                                                     per_dial_timeout=PER_DIAL_TIMEOUT),
            create=args.command, update=args.command,
            stdin=pulumi.Output.secret(args.payload),
            triggers=[args.digest],
            # The script prints a JSON report (paths, hashes, timings) and one-line reasons: no content.
            # Logged, each output line becomes an engine event on this push *while it runs*: the
            # script's `dynia-step …` lines are how `dynia up` shows where a node is (cli/progress).
            logging=command.remote.Logging.STDOUT_AND_STDERR,
            # Given to the push itself: a component's depends_on does not reach its children.
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.after or []))
        self.report = self.push.stdout
        self.register_outputs({"report": self.report})
