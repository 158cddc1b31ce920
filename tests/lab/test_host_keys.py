"""The lab pins host keys like droplets do, with its own: each lab node's key (made when the
lab starts the node) is exported by the provision phase, every push pins it, and a node that
presents another key is refused with a typed `network` error naming it — by the engine's pushes
and by dynia's own SSH (status, drift)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dynia.errors import DyniaError
from dynia.nodes.push import Target, run
from dynia.nodes.push_errors import push_error
from dynia.nodes.lab import Lab
from dynia.stacks import infra, provision

from ..engine.lab_double import LabEngineDouble, lab_inputs, run_phase
from .own_subnet import examples_copy

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def lab_project(tmp_path, lab_tools):
    root = tmp_path / "proj"
    lab_dir = tmp_path / "lab"
    with examples_copy(root, lab_dir):
        yield root, lab_dir
        if (lab_dir / "lab.json").exists():
            Lab.load(lab_dir).down()


def _other_key(tmp_path: Path) -> str:
    path = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def test_lab_pushes_pin_each_nodes_own_key_and_a_node_presenting_another_is_refused(lab_project, tmp_path):
    root, lab_dir = lab_project
    double = LabEngineDouble()
    outputs, error = run_phase(provision, lab_inputs(root, lab_dir), "provision", double)
    assert error is None, error
    lab = Lab.load(lab_dir)
    lab_keys = {line.split()[0]: " ".join(line.split()[1:3]) for line in lab.known_hosts.read_text().splitlines()}
    for node, entry in outputs["nodes"].items():
        assert entry["host_key_source"] == "lab"
        assert entry["host_key"] == lab_keys[lab.node(node).ip], node

    # every push of the infra phase pinned its node's key, and the pushes landed
    double.references["lab-provision"] = outputs
    _, error = run_phase(infra, lab_inputs(root, lab_dir), "infra", double)
    assert error is None, error
    for name, connection in double.connections.items():
        node = next(n for n in outputs["nodes"] if name.startswith(n + "-"))
        assert connection["hostKey"] == outputs["nodes"][node]["host_key"], name

    # the state now pins another key for calm-otter: its push is refused before anything is sent
    tampered = {**outputs, "nodes": {**outputs["nodes"], "calm-otter": {**outputs["nodes"]["calm-otter"],
                                                                        "host_key": _other_key(tmp_path)}}}
    refused = LabEngineDouble()
    refused.references["lab-provision"] = tampered
    _, error = run_phase(infra, lab_inputs(root, lab_dir), "infra", refused)
    assert error is not None
    failure = next(f for f in refused.failures if f.resource.startswith("calm-otter-"))
    typed = push_error(failure.resource, failure.output, None, "lab")
    assert typed.kind == "network" and "calm-otter" in typed.message and "pinned" in typed.message
    assert not any(name.startswith("calm-otter-") and typ == "command:remote:Command"
                   for typ, name in refused.executed if name != failure.resource)


def test_dynias_own_ssh_refuses_a_lab_node_presenting_another_key(lab_project, tmp_path):
    root, lab_dir = lab_project
    double = LabEngineDouble()
    outputs, error = run_phase(provision, lab_inputs(root, lab_dir), "provision", double)
    assert error is None, error
    lab = Lab.load(lab_dir)
    node = lab.node("misty-owl")
    status, out, _ = run(Target("misty-owl", node.ip, lab.key, lab.known_hosts), "echo ok", timeout=20)
    assert (status, out.strip()) == (0, "ok")
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{node.ip} {_other_key(tmp_path)}\n")
    with pytest.raises(DyniaError) as err:
        run(Target("misty-owl", node.ip, lab.key, wrong), "echo never", timeout=20)
    assert err.value.kind == "network" and "misty-owl" in err.value.message
    assert "not the one pinned" in err.value.message
