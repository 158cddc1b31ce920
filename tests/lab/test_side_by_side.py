"""Two labs on one machine (a devlab and the suite, two suites in two checkouts): each claims a
subnet of its own (dynia.providers.lab_subnets), so each reaches only its own nodes, and a lab
started on a subnet another holds is refused before it touches anything."""
from __future__ import annotations

import os
from contextlib import ExitStack

import pytest

from dynia.errors import DyniaError
from dynia.nodes.push import Target, run
from dynia.nodes.lab import Lab, LabError

from .lab_helpers import wait_ssh
from .own_subnet import own_subnet

NODES = ["misty-owl", "brave-panda"]


def _bare_lab(stack: ExitStack, lab_dir) -> Lab:
    subnet = stack.enter_context(own_subnet(lab_dir))
    lab = Lab.plan(lab_dir, subnet, NODES)
    stack.callback(lab.down)
    lab.up(with_apps=False, fresh=False)
    wait_ssh(lab)
    return lab


def _read_over_ssh(lab: Lab, via: Lab, node: str) -> str:
    """`cat /root/which` on `lab`'s node, dialled with `via`'s key and pinned host keys."""
    target = Target(node, lab.node(node).ip, via.key, via.known_hosts, connect_timeout=3.0)
    try:
        status, out, err = run(target, "cat /root/which", timeout=10)
    except DyniaError as exc:
        return f"refused: {exc.message}"
    return out.strip() if status == 0 else f"failed: {err}"


def test_two_labs_run_side_by_side_and_each_reaches_only_its_own_nodes(lab_tools, tmp_path):
    with ExitStack() as stack:
        one = _bare_lab(stack, tmp_path / "one")
        two = _bare_lab(stack, tmp_path / "two")
        assert one.subnet != two.subnet
        assert {one.bridge, *(n.veth for n in one.nodes)}.isdisjoint({two.bridge, *(n.veth for n in two.nodes)})
        assert {n.netns for n in one.nodes}.isdisjoint({n.netns for n in two.nodes})
        for lab, mark in ((one, "one"), (two, "two")):
            for node in NODES:
                lab.run(node, f"echo {mark} > /root/which")
        for node in NODES:
            assert _read_over_ssh(one, one, node) == "one"
            assert _read_over_ssh(two, two, node) == "two"
            # The other lab's identity fits none of these nodes: each address is one lab's node.
            assert _read_over_ssh(two, one, node).startswith("refused")


def test_a_lab_on_a_subnet_another_lab_holds_is_refused_and_the_other_keeps_running(lab_tools, tmp_path):
    with ExitStack() as stack:
        held = _bare_lab(stack, tmp_path / "held")
        inodes = [os.stat(f"/run/netns/{n.netns}").st_ino for n in held.nodes]
        second = Lab.plan(tmp_path / "second", held.subnet, NODES)
        assert second.bridge == held.bridge  # same subnet, same names: why the claim comes first
        with pytest.raises(LabError) as refused:
            second.up(with_apps=False, fresh=False)
        assert str(held.dir) in str(refused.value) and held.subnet in str(refused.value)
        second.down()  # after a refused up: removes nothing of the lab holding the names
        assert not second.dir.exists()
        assert [os.stat(f"/run/netns/{n.netns}").st_ino for n in held.nodes] == inodes
        held.run("misty-owl", "echo held > /root/which")
        assert _read_over_ssh(held, held, "misty-owl") == "held"
