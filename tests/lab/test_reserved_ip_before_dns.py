"""`dynia up` on lab nodes checks, after the infra phase and before the apps phase creates or
changes any DNS record, that the provider says the VRRP MASTER holds the reserved IP.

The run is dynia's own Engine.up (the contributor lab, tests/devlab.py: only the Pulumi stacks
stood in for); keepalived's notify.sh on each node assigns the reserved IP with the real curl
through the lab's stand-in for DigitalOcean's reserved-IP and metadata API
(dynia.providers.lab_api, on the lab's own bridge address), which answers the holder as
DigitalOcean's API would. A stand-in that refuses the node token is DigitalOcean refusing a
wrong, expired or under-scoped DIGITALOCEAN_NODE_TOKEN."""
from __future__ import annotations

import json
import re

from dynia.providers import lab_api
from dynia.nodes.lab import Lab
from dynia.providers.local import LAB_NODE_TOKEN
from dynia.state.store import Project

from .conftest import LabCluster, eventually
from .test_devlab import devlab, devlab_project  # noqa: F401 — the fixture is used by name


def test_up_stops_before_dns_when_the_provider_refuses_the_node_token_and_passes_with_a_good_one(
        devlab_project):  # noqa: F811
    root = devlab_project
    lab_dir = Project(root).lab_dir("lab")
    lab_dir.mkdir(parents=True)
    # The provider accepts another token than the one dynia writes to the nodes (the lab keeps
    # a token file it finds, see Lab._ensure_api): every assignment notify.sh asks for is refused.
    (lab_dir / lab_api.TOKEN_FILE).write_text("a-token-the-nodes-do-not-have\n")

    up = devlab(root, "up")
    assert up.returncode == 13, up.stdout[-2000:] + up.stderr[-3000:]   # provider
    lab = Lab.load(lab_dir)
    error = up.stderr.split("error: ", 1)[1].split("\nhint: ", 1)[0]
    hint = up.stderr.split("hint: ", 1)[1]
    assert error.startswith(f"the reserved IP {lab.vip} is not held by the VRRP MASTER after ")
    # The MASTER when the check ran: the first node pushed takes MASTER until misty-owl (priority
    # 150) preempts, once its HAProxy check passes; whichever it was, the provider refused it.
    master = re.search(rf"no node of the cluster holds {re.escape(lab.vip)} \(VRRP MASTER: ([a-z-]+)\)", error)
    assert master, error
    master = master.group(1)
    assert f"{master}'s last assignment: refused (HTTP 401" in error
    assert error.endswith("no DNS record was created or changed")
    # the node token and its scopes, named; the resume command
    assert hint.startswith("the node token LAB_NODE_TOKEN (dynia/providers/local.py) must be accepted")
    assert "DIGITALOCEAN_NODE_TOKEN, with the scopes reserved_ip:update, reserved_ip:read, droplet:read" in hint
    assert "`dynia up --phase infra --cluster lab`" in hint
    assert LAB_NODE_TOKEN not in up.stdout + up.stderr
    # infra ran, apps (the phase that creates and changes DNS records) never started
    assert "infra: starting" in up.stdout and "apps: starting" not in up.stdout
    assert not (lab_dir / "engine-double" / "lab-apps.json").exists()
    assert not (lab_dir / lab_api.RECORD_FILE).exists()    # the provider assigned nothing
    lc = LabCluster(Project(root), lab)
    record = json.loads(lc.cat(master, "/opt/dynia/state/reserved-ip.json"))
    assert (record["outcome"], record["status"]) == ("refused", "401")
    assert record["droplet"] == str(lab_api.FIRST_DROPLET_ID + [n.id for n in lab.nodes].index(master))
    assert eventually(lambda: lc.vip_holder() == ["misty-owl"])   # keepalived's part works; the provider's did not

    # The provider now accepts the node token the nodes have: `up` again, the MASTER is asked
    # to assign once more, the provider names it, and apps runs.
    (lab_dir / lab_api.TOKEN_FILE).write_text(LAB_NODE_TOKEN + "\n")
    up = devlab(root, "up")
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
    # The gate asks the MASTER to assign again, unless a VRRP transition between the two ups already
    # had notify.sh assign with the accepted token (seen once in CI): either way the provider's
    # record and the MASTER's must name misty-owl, below.
    assert "apps: starting" in up.stdout, up.stdout[-2000:]
    assert ("asking misty-owl to assign it" in up.stdout
            or "reserved IP" not in up.stdout), up.stdout[-2000:]
    droplet = lab_api.FIRST_DROPLET_ID + [n.id for n in lab.nodes].index("misty-owl")
    assert json.loads((lab_dir / lab_api.RECORD_FILE).read_text()) == {"droplet_id": droplet}
    assert json.loads(lc.cat("misty-owl", "/opt/dynia/state/reserved-ip.json"))["outcome"] == "assigned"
    assert lc.get("lab.example") == (200, b"web\n")
