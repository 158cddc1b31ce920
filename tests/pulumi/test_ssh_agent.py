"""Under mocks: with the key in an ssh-agent (the engine passes no private key), every push's
connection carries the agent's socket and no private key; with a key file, the key as before."""
from __future__ import annotations

import asyncio

import pulumi

from dynia.stacks import infra
from dynia.stacks.inputs import PhaseInputs

from .conftest import ORIGIN_PULL, NODES, ORIGIN_PEM, PROVIDER_TOKEN, GraphMocks, RecordingMonitor, is_secret

PUSH = "command:remote:Command"


def run_infra(project, private_key: str) -> GraphMocks:
    """The infra program as the engine runs it: a key file's text as a secret, "" for the agent."""
    asyncio.set_event_loop(asyncio.new_event_loop())
    mocks = GraphMocks(provision_outputs={"nodes": NODES, "reservedIp": "203.0.113.50", "originPem": ORIGIN_PEM, "originPull": ORIGIN_PULL,
                                          "kind": "digitalocean"})
    pulumi.runtime.set_mocks(mocks, project="dynia", stack="shop-infra", preview=False,
                             monitor=RecordingMonitor(mocks))
    ctx = PhaseInputs(project_root=project, cluster="shop", ssh_private_key=pulumi.Output.secret(private_key) if private_key else "",
                      ssh_public_key="ssh-ed25519 AAAAtest dynia", provider_token=pulumi.Output.secret(PROVIDER_TOKEN))

    @pulumi.runtime.test
    def program():
        infra.program(ctx)

    program()
    return mocks


def connections(mocks: GraphMocks) -> list[dict]:
    out = []
    for r in mocks.created.values():
        if r.typ == PUSH:
            c = r.inputs["connection"]
            out.append(c["value"] if is_secret(c) else c)
    return out


def test_an_agent_only_setup_gives_every_push_the_agent_socket_and_no_private_key(project, monkeypatch):
    monkeypatch.setenv("SSH_AUTH_SOCK", "/run/user/1000/ssh-agent.sock")
    found = connections(run_infra(project, ""))
    assert len(found) == 2  # one infra push per node
    for c in found:
        assert c["agentSocketPath"] == "/run/user/1000/ssh-agent.sock"
        assert "privateKey" not in c


def test_a_key_file_is_passed_as_a_secret_private_key_without_the_agent(project, monkeypatch):
    monkeypatch.setenv("SSH_AUTH_SOCK", "/run/user/1000/ssh-agent.sock")
    mocks = run_infra(project, "-----BEGIN OPENSSH PRIVATE KEY-----\nssh-secret\n")
    for r in mocks.created.values():
        if r.typ == PUSH:
            c = r.inputs["connection"]
            assert is_secret(c) or is_secret(c["privateKey"])
            assert "agentSocketPath" not in (c["value"] if is_secret(c) else c)
