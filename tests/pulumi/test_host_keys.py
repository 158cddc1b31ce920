"""Host keys under mocks: each droplet's ed25519 host key is made with the state, installed by
cloud-init through secret user data, exported with the node, and pinned by every push."""
from __future__ import annotations

import json
import subprocess

import pulumi
import pytest
import yaml

from dynia.stacks import apps, infra, provision

from .conftest import ORIGIN_PULL, NODES, GraphMocks, is_secret

PUSH = "command:remote:Command"


def _keypair(tmp_path_factory, name):
    path = tmp_path_factory.mktemp("keys") / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True)
    return path.read_text(), " ".join(path.with_suffix(".pub").read_text().split()[:2]) + "\n"


class KeyMocks(GraphMocks):
    """tls:PrivateKey answers with a real ed25519 pair (what pulumi-tls returns: OpenSSH formats)."""

    def __init__(self, pairs, provision_outputs=None):
        super().__init__(provision_outputs=provision_outputs)
        self.pairs, self.made = list(pairs), {}

    def new_resource(self, args):
        rid, state = super().new_resource(args)
        if args.typ == "tls:index/privateKey:PrivateKey" and args.inputs.get("algorithm") == "ED25519":
            private, public = self.pairs.pop()
            self.made[args.name] = public.strip()
            state.update(privateKeyOpenssh=private, publicKeyOpenssh=public)
        return rid, state


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return [_keypair(tmp_path_factory, f"k{i}") for i in range(2)]


def _keyed_nodes():
    return {n: {**v, "host_key": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{n[:2].upper()}{'x' * 41}",
                "host_key_source": "generated"} for n, v in NODES.items()}


def test_each_droplet_gets_its_own_ed25519_host_key_through_secret_user_data(run_phase, pairs):
    mocks = KeyMocks(pairs)
    assert run_phase(provision, "shop", "provision", mocks, in_stack=True) is None
    keys = {n: r for n, r in mocks.created.items() if r.typ == "tls:index/privateKey:PrivateKey"
            and r.inputs.get("algorithm") == "ED25519"}
    assert set(keys) == {"misty-owl-host-key", "brave-panda-host-key"}
    for node in ("misty-owl", "brave-panda"):
        component = mocks.created[node]
        assert keys[f"{node}-host-key"].parent == component.urn
        droplet = mocks.created[f"{node}-droplet"]
        assert is_secret(droplet.inputs["userData"])  # the private host key is inside
        doc = yaml.safe_load(droplet.inputs["userData"]["value"])
        assert doc["ssh_keys"]["ed25519_public"] == mocks.made[f"{node}-host-key"]
        assert "BEGIN OPENSSH PRIVATE KEY" in doc["ssh_keys"]["ed25519_private"]
        assert "userData" in droplet.ignore_changes  # an existing droplet keeps the key it has


def test_provision_exports_each_nodes_public_host_key_and_never_the_private_one(run_phase, pairs):
    mocks = KeyMocks(pairs)
    assert run_phase(provision, "shop", "provision", mocks, in_stack=True) is None
    outputs = mocks.created["dynia-shop-provision"].outputs
    nodes = outputs["nodes"]
    for node in ("misty-owl", "brave-panda"):
        assert nodes[node]["host_key"] == mocks.made[f"{node}-host-key"]
        assert nodes[node]["host_key_source"] == "generated"
    assert "PRIVATE KEY" not in json.dumps(nodes)


def test_a_key_pinned_on_first_use_is_what_provision_exports_for_that_node(run_phase, pairs):
    pinned = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + "p" * 43
    pulumi.runtime.set_all_config({"dynia:hostKeys": json.dumps({"misty-owl": pinned})}, [])
    try:
        mocks = KeyMocks(pairs)
        assert run_phase(provision, "shop", "provision", mocks, in_stack=True) is None
    finally:
        pulumi.runtime.set_all_config({}, [])
    nodes = mocks.created["dynia-shop-provision"].outputs["nodes"]
    assert (nodes["misty-owl"]["host_key"], nodes["misty-owl"]["host_key_source"]) == (pinned, "first-use")
    assert nodes["brave-panda"]["host_key_source"] == "generated"


@pytest.mark.parametrize("module,phase", [(infra, "infra"), (apps, "apps")])
def test_every_push_pins_the_host_key_provision_recorded_for_its_node(run_phase, module, phase):
    nodes = _keyed_nodes()
    mocks = GraphMocks(provision_outputs={"nodes": nodes, "reservedIp": "203.0.113.50", "originPem": "x",
                                          "originPull": ORIGIN_PULL})
    assert run_phase(module, "shop", phase, mocks) is None
    pushes = [r for r in mocks.created.values() if r.typ == PUSH]
    assert pushes
    for push in pushes:
        node = next(n for n in nodes if push.name.startswith(n + "-"))
        connection = push.inputs["connection"]  # secret as a whole: the private key is inside
        connection = connection["value"] if is_secret(connection) else connection
        assert connection["hostKey"] == nodes[node]["host_key"], push.name


def test_an_update_never_pushes_to_a_node_without_a_recorded_host_key(run_phase):
    mocks = GraphMocks(provision_outputs={"nodes": NODES, "reservedIp": "203.0.113.50", "originPem": "x",
                                          "originPull": ORIGIN_PULL})
    nodes = {n: {k: v for k, v in node.items() if not k.startswith("host_key")} for n, node in NODES.items()}
    mocks.provision_outputs["nodes"] = nodes
    error = run_phase(infra, "shop", "infra", mocks)
    assert error is not None and getattr(error, "kind", None) == "state", repr(error)
    assert "no SSH host key" in error.message and "dynia up --phase provision --cluster shop" in error.hint
    assert not [r for r in mocks.created.values() if r.typ == PUSH]


def test_a_preview_before_the_first_provision_plans_the_pushes_without_a_key(run_phase):
    mocks = GraphMocks(provision_outputs={})
    assert run_phase(infra, "shop", "infra", mocks, preview=True) is None
    assert [r for r in mocks.created.values() if r.typ == PUSH]
