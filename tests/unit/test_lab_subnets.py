"""The host-wide subnet claims of labs (dynia.providers.lab_subnets), on a registry of the test's own."""
from __future__ import annotations

import ipaddress
import json
import subprocess

import pytest

from dynia.providers import lab_subnets
from dynia.providers.lab_subnets import SubnetTaken, allocate, claim, held_elsewhere, names_prefix, release


def test_two_labs_get_two_subnets_outside_the_avoided_range_and_the_machines_networks(tmp_path):
    reg = tmp_path / "reg"
    one = allocate(tmp_path / "one", avoid=("10.213.0.0/24",), registry=reg)
    two = allocate(tmp_path / "two", avoid=("10.213.0.0/24",), registry=reg)
    assert one != two and "10.213.0.0/24" not in (one, two)
    machine = [net for _, net in lab_subnets.host_networks()]
    for subnet in (one, two):
        net = ipaddress.ip_network(subnet)
        assert net.is_private and net.subnet_of(lab_subnets.POOL)
        assert not any(net.overlaps(m) for m in machine)


def test_a_subnet_held_by_a_live_lab_is_refused_naming_it_and_released_it_is_free(tmp_path):
    reg = tmp_path / "reg"
    subnet = allocate(tmp_path / "one", registry=reg)
    claim(subnet, tmp_path / "one", registry=reg)  # the holder again: nothing changes
    with pytest.raises(SubnetTaken, match=str(tmp_path / "one")):
        claim(subnet, tmp_path / "two", registry=reg)
    assert held_elsewhere(subnet, tmp_path / "two", registry=reg)
    assert not held_elsewhere(subnet, tmp_path / "one", registry=reg)
    release(subnet, tmp_path / "two", registry=reg)   # not its claim: stays
    assert held_elsewhere(subnet, tmp_path / "two", registry=reg)
    release(subnet, tmp_path / "one", registry=reg)
    claim(subnet, tmp_path / "two", registry=reg)


def test_the_claim_of_a_lab_whose_process_died_and_bridge_is_gone_is_taken_over(tmp_path):
    reg = tmp_path / "reg"
    subnet = allocate(tmp_path / "one", registry=reg)
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()
    path = next(reg.glob("*.json"))
    path.write_text(json.dumps({**json.loads(path.read_text()), "pid": int(dead)}))
    claim(subnet, tmp_path / "two", registry=reg)
    assert json.loads(path.read_text())["dir"] == str((tmp_path / "two").resolve())


def test_a_subnet_overlapping_this_machines_networks_is_refused(tmp_path):
    dev, net = lab_subnets.host_networks()[0]
    with pytest.raises(SubnetTaken, match=dev):
        claim(str(net), tmp_path / "lab", registry=tmp_path / "reg")


def test_interface_names_from_the_subnet_fit_linux_and_differ_per_subnet():
    one, two = names_prefix("10.213.1.0/24"), names_prefix("10.213.2.0/24")
    assert one != two
    assert all(len(name) <= 15 for name in (f"{one}br", f"{one}v99", f"{one}c99"))
