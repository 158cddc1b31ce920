"""`dynia up` checks, after the infra phase and before the apps phase creates or changes any DNS
record, that DigitalOcean (its API replayed from recorded shapes, tests/do_replay.py) says the VRRP
MASTER holds the reserved IP; Pulumi is the recording test double. The examples' shop nodes do
not answer here (documentation addresses): only the provider's answer decides."""
from __future__ import annotations

import re

import pytest

from .test_engine_flow import dynia, ops

VIP_PATH = "/v2/reserved_ips/203.0.113.50"


@pytest.fixture
def env(recording_pulumi):
    spec = recording_pulumi["proj"] / "clusters" / "shop.yaml"
    # The check waits up to the health gate's timeout for the assignment: keep the refusal quick.
    spec.write_text(spec.read_text().replace("timeout: 60s", "timeout: 2s"))
    return recording_pulumi


def test_up_fails_before_the_apps_phase_when_no_droplet_holds_the_reserved_ip(env):
    env["account"].answers[VIP_PATH] = ["reserved_ip_unassigned"]
    r = dynia(env, "up", "--cluster", "shop")
    assert r.returncode == 13, r.stderr   # provider
    assert ops(env) == [("up", "shop-provision"), ("up", "shop-infra")]  # apps (DNS) never ran
    # waited the health timeout (2 s) and a little more, however loaded the machine
    assert re.search(r"error: the reserved IP 203\.0\.113\.50 is not held by the VRRP MASTER after [2-9] s: no node of "
                     r"the cluster holds 203\.0\.113\.50; no DNS record was created or changed", r.stderr), r.stderr
    hint = r.stderr.split("hint: ", 1)[1]
    assert "DIGITALOCEAN_NODE_TOKEN" in hint and "reserved_ip:update, reserved_ip:read, droplet:read" in hint
    assert "dynia up --phase infra --cluster shop" in hint
    assert "test-do-node-token" not in r.stderr + r.stdout and "test-do-token" not in r.stderr + r.stdout
    # The operator's token asked DigitalOcean (GET, read-only), never the node token.
    asked = [auth for path, auth in env["account"].requests if path == VIP_PATH]
    assert asked and set(asked) == {"Bearer test-do-token"}


def test_up_of_the_apps_phase_alone_checks_first_and_never_runs_it(env):
    env["account"].answers[VIP_PATH] = ["reserved_ip_unassigned"]
    r = dynia(env, "up", "--phase", "apps", "--cluster", "shop")
    assert r.returncode == 13, r.stderr
    assert ("up", "shop-apps") not in ops(env)


def test_a_reserved_ip_held_by_a_droplet_outside_the_cluster_stops_up_too(env):
    env["account"].answers[VIP_PATH] = ["reserved_ip_assigned"]   # a droplet with none of shop's addresses
    r = dynia(env, "up", "--cluster", "shop")
    assert r.returncode == 13 and ("up", "shop-apps") not in ops(env), r.stderr


def test_up_goes_on_to_dns_when_the_master_s_droplet_holds_it(env):
    r = dynia(env, "up", "--cluster", "shop")
    assert r.returncode == 0, r.stderr
    assert ops(env) == [("up", "shop-provision"), ("up", "shop-infra"), ("up", "shop-apps"), ("up", "shop-releases")]


def test_a_refused_operator_token_is_its_own_error_and_stops_before_dns(env):
    env["account"].answers[VIP_PATH] = []   # unknown: 404
    r = dynia(env, "up", "--cluster", "shop")
    assert r.returncode == 13 and ("up", "shop-apps") not in ops(env), r.stderr
    assert "DigitalOcean does not know /reserved_ips/203.0.113.50" in r.stderr
    assert "no DNS record was created or changed" in r.stderr
