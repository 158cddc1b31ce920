"""dynia.nodes.challenge on real lab nodes (real sshd, one SSH round trip per node, in
parallel): every node gets every HTTP-01 answer, world-readable (Caddy serves them as its own
user), and every answer is gone again after withdraw. The VIP holder must take them (else a
`cert` error naming it); another node that cannot is named in the answer, for a warning. (The order through the VIP against pebble is the pebble lab proof's.)"""
from __future__ import annotations

import ipaddress

import pytest

from dynia.errors import DyniaError
from dynia.nodes import challenge
from dynia.nodes.push import Target, run
from dynia.paths import PATHS


ANSWERS = {"tok-AAAAAAAAAAAAAAAA": "tok-AAAAAAAAAAAAAAAA.thumb_1", "tok_BBBBBBBBBBBBBBBB": "tok_BBBBBBBBBBBBBBBB.thumb-2"}


def test_every_node_answers_every_token_then_none_after_withdraw(shared_lab):
    targets = shared_lab.targets(["misty-owl", "brave-panda", "calm-otter"])
    assert challenge.publish(targets, ANSWERS, "misty-owl") == {}
    for t in targets:
        for token, value in ANSWERS.items():
            status, out, err = run(t, f"stat -c %a {PATHS.acme_challenge_dir}/{token} && "
                                      f"cat {PATHS.acme_challenge_dir}/{token}")
            assert status == 0, (t.node, err)
            assert out.splitlines() == ["644", value], t.node
    assert challenge.withdraw(targets, list(ANSWERS)) == {}
    for t in targets:
        status, out, _ = run(t, f"ls -A {PATHS.acme_challenge_dir}")
        assert status == 0 and out.strip() == "", t.node


def _unused_address(lc) -> str:
    """.250 of the lab's subnet: no node, VIP, gateway or client has it (nothing answers there)."""
    return str(list(ipaddress.ip_network(lc.lab.subnet).hosts())[249])


def test_an_unreachable_backup_is_named_and_the_holder_still_answers(shared_lab):
    targets = shared_lab.targets(["misty-owl"])
    gone = Target("brave-panda", _unused_address(shared_lab), shared_lab.lab.key, shared_lab.lab.known_hosts,
                  connect_timeout=2.0)
    missed = challenge.publish([*targets, gone], ANSWERS, "misty-owl", timeout=5)
    assert list(missed) == ["brave-panda"]
    for token, value in ANSWERS.items():
        status, out, err = run(targets[0], f"cat {PATHS.acme_challenge_dir}/{token}")
        assert status == 0 and out.strip() == value, err
    left = challenge.withdraw([*targets, gone], list(ANSWERS), timeout=5)
    assert list(left) == ["brave-panda"]     # reported (certs.obtain warns), not discarded
    status, out, _ = run(targets[0], f"ls -A {PATHS.acme_challenge_dir}")
    assert status == 0 and out.strip() == ""


def test_an_unreachable_holder_is_a_cert_error_naming_it(shared_lab):
    targets = shared_lab.targets(["misty-owl"])
    gone = Target("brave-panda", _unused_address(shared_lab), shared_lab.lab.key, shared_lab.lab.known_hosts,
                  connect_timeout=2.0)
    with pytest.raises(DyniaError) as caught:
        challenge.publish([*targets, gone], ANSWERS, "brave-panda", timeout=5)
    assert caught.value.kind == "cert" and "brave-panda" in caught.value.message
    assert "misty-owl" not in caught.value.message
    challenge.withdraw(targets, list(ANSWERS))
