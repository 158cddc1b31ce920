"""Spec files survive crashes and concurrency; edits keep the operator's comments and order."""
from __future__ import annotations

import os

import pytest
import subprocess
import sys
import time

from ruamel.yaml import YAML

from dynia.state.store import Project, write_atomic

from ..needs import need, need_tools


def _spec_text(marker: str, size: int) -> str:
    # Large enough that a write takes a while, so kills land in the middle of one.
    padding = "".join(f"# {marker} padding line {i:06d} {'x' * 60}\n" for i in range(size))
    return f"version: 1\nname: shop\nmarker: {marker}\n{padding}"


# Run in a fresh, single-threaded interpreter: os.fork() from pytest's process copies whatever
# lock another thread (a library's pool, an earlier test's leftovers) held at that moment, and a
# child that blocks on it never writes at all (seen in CI: 200 kills, not one new spec).
KILL_LOOP = """
import json, os, random, signal, sys, time
from dynia.state.store import write_atomic
path, old, new = sys.argv[1], open(sys.argv[2]).read(), open(sys.argv[3]).read()
write_atomic(path, old)
# Kills must land across whole write cycles whatever fsync costs on this machine.
cycle = []
for _ in range(5):
    t = time.monotonic(); write_atomic(path, old); cycle.append(time.monotonic() - t)
window = max(0.004, 4 * sorted(cycle)[2])
rng, seen, torn = random.Random(20261126), {"old": 0, "new": 0}, []
for i in range(200):
    pid = os.fork()
    if pid == 0:  # child: keep rewriting until killed
        try:
            n = 0
            while True:
                write_atomic(path, new if n % 2 == 0 else old)
                n += 1
        finally:
            os._exit(0)
    time.sleep(rng.uniform(0.0, window))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    text = open(path).read()
    if text not in (old, new):
        torn.append(i)
    else:
        seen["old" if text == old else "new"] += 1
print(json.dumps({"seen": seen, "torn": torn}))
"""


def test_sigkill_during_spec_writes_leaves_old_or_new_spec_200_times(tmp_path):
    import json

    path = tmp_path / "clusters" / "shop.yaml"
    old, new = _spec_text("old", 3000), _spec_text("new", 3000)
    (tmp_path / "old").write_text(old)
    (tmp_path / "new").write_text(new)
    proc = subprocess.run([sys.executable, "-c", KILL_LOOP, str(path), str(tmp_path / "old"), str(tmp_path / "new")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["torn"] == [], f"torn files at iterations {result['torn']}"
    # Whichever survived parses to its spec, and kills landed at different points.
    assert YAML(typ="safe").load(old)["marker"] == "old" and YAML(typ="safe").load(new)["marker"] == "new"
    assert result["seen"]["old"] and result["seen"]["new"], result["seen"]


def test_atomic_write_sets_mode_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "secret.json"
    write_atomic(target, b"{}", mode=0o600)
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["secret.json"]


def test_second_concurrent_spec_edit_fails_with_the_lock_error(project):
    """The first command blocks while reading its compose file (a FIFO) and holds the lock."""
    fifo = project / "services" / "slow.yml"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen([sys.executable, "-m", "dynia", "-C", str(project), "service", "add", "slow",
                              "--compose", "services/slow.yml", "--port", "9100", "--cluster", "shop"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lock = project / ".dynia" / "locks" / "shop.lock"
        deadline = time.monotonic() + 20
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert time.monotonic() < deadline, "first command never took the lock"
            assert first.poll() is None, first.communicate()
            time.sleep(0.02)
        spec_before = (project / "clusters/shop.yaml").read_bytes()
        second = subprocess.run([sys.executable, "-m", "dynia", "-C", str(project), "route", "bind", "api",
                                 "api2.example.com", "--cluster", "shop"], capture_output=True, text=True,
                                env=env, timeout=30)
        assert second.returncode == 11, second.stderr
        assert f"cluster shop is locked by another dynia command (pid {first.pid})" in second.stderr
        assert (project / "clusters/shop.yaml").read_bytes() == spec_before
        with open(fifo, "w") as f:  # release the first command
            f.write('services:\n  slow:\n    image: x\n    ports: ["9100:80"]\n')
        out, err = first.communicate(timeout=30)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert "slow:" in (project / "clusters/shop.yaml").read_text()


def test_spec_edits_keep_comments_and_key_order(project, cli):
    spec = project / "clusters/shop.yaml"
    before = spec.read_text()
    assert cli("-C", str(project), "route", "bind", "api", "v2.example.com", "--cluster", "shop").code == 0
    after = spec.read_text()
    assert after == before.replace("domain: api.example.com", "domain: [api.example.com, v2.example.com]")
    assert cli("-C", str(project), "route", "unbind", "api", "--cluster", "shop").code == 0
    assert "v2.example.com" not in spec.read_text() and "api.example.com" not in spec.read_text()
    assert "# stable ids: Pulumi names derive from them" in spec.read_text()


def test_service_add_and_remove_round_trip_the_spec(project, cli):
    spec = project / "clusters/mini.yaml"
    original = spec.read_text()
    (project / "services/extra.yml").write_text('services:\n  extra:\n    image: x\n    ports: ["9200:80"]\n')
    r = cli("-C", str(project), "service", "add", "extra", "--compose", "services/extra.yml", "--port", "9200",
            "--domain", "extra.example.org", "--health-path", "/ok", "--cluster", "mini")
    assert r.code == 0, r.err
    assert "next: dynia plan --offline --cluster mini" in r.out
    from dynia.spec.load import load_cluster
    svc = load_cluster(Project(project), "mini").spec.services["extra"]
    assert (svc.port, svc.domain, svc.health_path, svc.placement) == (9200, "extra.example.org", "/ok", "all")
    assert cli("-C", str(project), "service", "remove", "extra", "--cluster", "mini").code == 0
    assert spec.read_text() == original


def test_cluster_init_writes_a_valid_spec_with_stable_two_word_ids_and_private_credentials(tmp_path, cli):
    r = cli("-C", str(tmp_path), "cluster", "init", "blog", "--region", "ams3", "--domain", "blog.example",
            "--nodes", "3")
    assert r.code == 0, r.err
    from dynia.spec.load import load_cluster
    c = load_cluster(Project(tmp_path), "blog")
    assert len(c.spec.nodes) == 3 and all(n.count("-") == 1 for n in c.spec.nodes)
    from dynia.names import node_ids
    assert c.spec.nodes == node_ids("blog", 3)
    secrets = tmp_path / ".dynia/secrets/blog.json"
    assert oct(secrets.stat().st_mode & 0o777) == "0o600"
    assert (tmp_path / ".dynia/.gitignore").read_text().endswith("*\n")


def test_context_use_current_clear_and_overrides(project, cli, monkeypatch):
    monkeypatch.delenv("DYNIA_CLUSTER", raising=False)
    assert cli("-C", str(project), "context", "use", "mini").code == 0
    assert '"currentCluster": "mini"' in cli("-C", str(project), "context", "current", "--json").out
    r = cli("-C", str(project), "plan", "--offline", "--json")
    assert '"cluster": "mini"' in r.out
    r = cli("-C", str(project), "plan", "--offline", "--json", env={"DYNIA_CLUSTER": "shop"})
    assert '"cluster": "shop"' in r.out
    monkeypatch.delenv("DYNIA_CLUSTER")
    r = cli("-C", str(project), "plan", "--offline", "--json", "--cluster", "shop")
    assert '"cluster": "shop"' in r.out
    assert cli("-C", str(project), "context", "clear").code == 0
    r = cli("-C", str(project), "plan", "--offline")
    assert r.code == 10 and "dynia context use NAME" in r.err


def test_doctor_reports_each_check_and_fails_when_something_is_missing(project, cli, monkeypatch, tmp_path):
    for var in ("DIGITALOCEAN_TOKEN", "CLOUDFLARE_API_TOKEN", "DIGITALOCEAN_NODE_TOKEN", "PULUMI_CONFIG_PASSPHRASE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setenv("DYNIA_SSH_KEY", str(tmp_path / "nokey"))
    r = cli("-C", str(project), "context", "doctor", "--cluster", "shop", "--json")
    assert r.code == 10
    import json
    checks = {c["name"]: c["ok"] for c in json.loads(r.out)["checks"]}
    assert checks == {"spec": True, "digitalocean token": False, "cloudflare token": False, "node token": False,
                      "secrets passphrase": False, "pulumi CLI": False, "ssh key": False,
                      "cloudflare ranges": True}   # a warning at most, never a failure
    key = tmp_path / "key"
    key.write_text("k")
    r = cli("-C", str(project), "context", "doctor", "--cluster", "shop", env={
        "DIGITALOCEAN_TOKEN": "t" * 20, "CLOUDFLARE_API_TOKEN": "c" * 20, "DIGITALOCEAN_NODE_TOKEN": "n" * 20,
        "PULUMI_CONFIG_PASSPHRASE": "p" * 12,
        "DYNIA_SSH_KEY": str(key)})
    assert r.code == 10 and "pulumi CLI" in r.err and "t" * 20 not in r.out + r.err


# --- an edit changes the spec's content, never what the file is (issue #7, class h) ---------

def _bind(cli, project) -> None:
    r = cli("-C", str(project), "route", "bind", "api", "v2.example.com", "--cluster", "shop")
    assert r.code == 0, r.err


def test_edit_keeps_a_read_only_spec_read_only(project, cli):
    spec = project / "clusters/shop.yaml"
    spec.chmod(0o444)
    _bind(cli, project)
    assert "v2.example.com" in spec.read_text()
    assert oct(spec.stat().st_mode & 0o7777) == "0o444"


def test_edit_keeps_the_owner_of_a_spec_owned_by_another_user(project, cli):
    spec = project / "clusters/shop.yaml"
    os.chown(spec, 4321, 4322)
    spec.chmod(0o640)
    _bind(cli, project)
    st = spec.stat()
    assert "v2.example.com" in spec.read_text()
    assert (st.st_uid, st.st_gid, oct(st.st_mode & 0o7777)) == (4321, 4322, "0o640")


def test_edit_writes_through_a_symlinked_spec_to_its_target(project, cli):
    shared = project / "shared" / "shop.yaml"
    shared.parent.mkdir()
    spec = project / "clusters/shop.yaml"
    os.replace(spec, shared)
    os.chown(shared, 4321, 4321)
    shared.chmod(0o600)
    spec.symlink_to("../shared/shop.yaml")
    _bind(cli, project)
    assert spec.is_symlink() and os.readlink(spec) == "../shared/shop.yaml"
    assert "v2.example.com" in shared.read_text()
    st = shared.stat()
    assert (st.st_uid, st.st_gid, oct(st.st_mode & 0o7777)) == (4321, 4321, "0o600")
    assert sorted(p.name for p in shared.parent.iterdir()) == ["shop.yaml"], "no temp file left behind"


def test_edit_follows_a_chain_of_symlinks(project, cli):
    real = project / "real.yaml"
    os.replace(project / "clusters/shop.yaml", real)
    (project / "middle.yaml").symlink_to("real.yaml")
    (project / "clusters/shop.yaml").symlink_to("../middle.yaml")
    _bind(cli, project)
    assert (project / "middle.yaml").is_symlink() and (project / "clusters/shop.yaml").is_symlink()
    assert "v2.example.com" in real.read_text()


def test_edit_that_cannot_keep_the_owner_fails_and_leaves_the_spec_untouched(project, cli, monkeypatch):
    # What an operator who is not root meets: chown to another user is refused by the kernel.
    spec = project / "clusters/shop.yaml"
    os.chown(spec, 4321, 4321)
    before = spec.read_bytes()

    def refuse(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchown", refuse)
    r = cli("-C", str(project), "route", "bind", "api", "v2.example.com", "--cluster", "shop")
    assert r.code == 11, r.err
    assert "keep its owner (uid 4321" in r.err and "hint: run dynia as the user who owns the file" in r.err
    assert spec.read_bytes() == before and spec.stat().st_uid == 4321
    assert sorted(p.name for p in spec.parent.iterdir()) == ["lab.yaml", "mini.yaml", "shop.yaml"]


def test_edit_of_an_immutable_spec_says_it_is_locked_not_an_owner_problem(project, cli, as_root):
    import subprocess

    spec = project / "clusters/shop.yaml"
    need_tools("chattr", package="e2fsprogs")
    need(subprocess.run(["chattr", "+i", str(spec)], capture_output=True).returncode == 0,
         "chattr +i is not supported on this filesystem (ext4 or overlayfs)")
    before = spec.read_bytes()
    try:
        r = cli("-C", str(project), "route", "bind", "api", "v2.example.com", "--cluster", "shop")
    finally:
        subprocess.run(["chattr", "-i", str(spec)], check=True)
    assert r.code == 11, r.err
    assert "immutable" in r.err and "lsattr" in r.err and "owner" not in r.err
    assert spec.read_bytes() == before
    assert sorted(p.name for p in spec.parent.iterdir()) == ["lab.yaml", "mini.yaml", "shop.yaml"]


def test_a_dangling_spec_symlink_names_its_missing_target(project, cli):
    spec = project / "clusters/shop.yaml"
    spec.unlink()
    spec.symlink_to("../shared/gone.yaml")
    r = cli("-C", str(project), "render", "--cluster", "shop")
    assert r.code == 10, r.err
    assert "symlink to ../shared/gone.yaml, which does not exist" in r.err
    assert "cluster init" not in r.err


def test_explicit_mode_is_enforced_on_an_existing_file(tmp_path):
    target = tmp_path / "secret.json"
    target.write_text("{}")
    target.chmod(0o644)
    write_atomic(target, b"{}", mode=0o600)
    assert oct(target.stat().st_mode & 0o777) == "0o600"


def test_new_file_without_a_mode_is_0644(tmp_path):
    target = tmp_path / "new.yaml"
    write_atomic(target, "a: 1\n")
    assert oct(target.stat().st_mode & 0o777) == "0o644"


def test_cluster_init_builds_a_commented_spec_as_data(tmp_path, cli):
    r = cli("-C", str(tmp_path), "cluster", "init", "blog", "--region", "ams3", "--domain", "Blog.Example.",
            "--image", "debian-13-x64")
    assert r.code == 0, r.err
    text = (tmp_path / "clusters/blog.yaml").read_text()
    assert text.startswith("# dynia cluster spec: the only source of truth for cluster blog.\n")
    for comment in ("# stable ids: Pulumi resource names derive from them", "# the Cloudflare zone",
                    "# Cloudflare Origin CA certificate, proxied records", "# warn | fail"):
        assert comment in text
    data = YAML(typ="safe").load(text)
    assert data["provider"] == {"kind": "digitalocean", "region": "ams3", "size": "s-1vcpu-1gb",
                                "image": "debian-13-x64", "vpc_ip_range": "10.190.149.0/24"}
    assert data["domain"] == "blog.example" and data["services"] == {}
    assert sorted(data) == sorted(["version", "name", "provider", "nodes", "domain", "tls", "health", "guard",
                                   "lockdown", "services"])


def test_a_wrong_value_given_on_the_command_line_is_named_by_key_not_by_a_line_of_the_file(project, cli):
    spec = project / "clusters/shop.yaml"
    before = spec.read_bytes()
    r = cli("-C", str(project), "service", "add", "api2", "--compose", "services/api.yml", "--port", "80",
            "--cluster", "shop")
    assert r.code == 10, r.err
    assert r.err.startswith("error: services.api2.port: ") and "(clusters/shop.yaml is unchanged)" in r.err
    assert "shop.yaml:" not in r.err and "given on the command line" in r.err
    assert spec.read_bytes() == before


def test_a_problem_the_spec_already_had_keeps_its_line(project, cli):
    spec = project / "clusters/shop.yaml"
    spec.write_text(spec.read_text().replace("port: 8081", "port: 80"))
    r = cli("-C", str(project), "route", "bind", "web", "www.example.com", "--cluster", "shop")
    assert r.code == 10, r.err
    assert "clusters/shop.yaml:" in r.err and "services.api.port" in r.err


@pytest.mark.parametrize("removed", ["web", "api", "admin"])
def test_service_remove_takes_its_own_comment_lines_and_keeps_the_next_services(project, cli, removed):
    import re

    spec = project / "clusters/shop.yaml"
    text = spec.read_text()
    for name in ("web", "api", "admin"):
        text = text.replace(f"\n  {name}:\n", f"\n  # about-{name}\n  {name}:\n")
    text = text.replace("placement: all\n", "placement: all   # everywhere\n")
    spec.write_text(text)
    r = cli("-C", str(project), "service", "remove", removed, "--cluster", "shop")
    assert r.code == 0, r.err
    # exactly the service's block and its own comment line go; every other byte stays
    assert spec.read_text() == re.sub(rf"  # about-{removed}\n  {removed}:\n(    .*\n)*", "", text)


def test_route_unbind_keeps_the_comment_of_the_key_after_the_domain(project, cli):
    spec = project / "clusters/shop.yaml"
    text = spec.read_text().replace("    domain: api.example.com\n",
                                    "    domain: api.example.com\n    # the port the app publishes\n")
    spec.write_text(text)
    r = cli("-C", str(project), "route", "unbind", "api", "--cluster", "shop")
    assert r.code == 0, r.err
    assert spec.read_text() == text.replace("    domain: api.example.com\n", "")


def test_route_bind_adds_a_domain_and_unbind_takes_one_back_to_the_single_form(project, cli):
    spec = project / "clusters/shop.yaml"
    original = spec.read_text()
    assert "    domain: [example.com, www.example.com]   # the apex and www\n" in original
    r = cli("-C", str(project), "route", "unbind", "web", "www.example.com", "--cluster", "shop")
    assert r.code == 0, r.err
    assert "unbound www.example.com from web" in r.out
    # one domain left: the form every spec with one domain has, its comment kept
    assert spec.read_text() == original.replace("domain: [example.com, www.example.com]   # the apex and www",
                                                "domain: example.com                      # the apex and www")
    r = cli("-C", str(project), "route", "bind", "web", "WWW.example.com.", "--cluster", "shop")
    assert r.code == 0, r.err
    assert spec.read_text() == original
    # binding a domain the service has already changes nothing
    assert cli("-C", str(project), "route", "bind", "web", "www.example.com", "--cluster", "shop").code == 0
    assert spec.read_text() == original
    r = cli("-C", str(project), "route", "unbind", "web", "--cluster", "shop")
    assert r.code == 0 and "unbound every domain of web" in r.out
    assert "example.com, www" not in spec.read_text() and "# the apex and www" not in spec.read_text()


def test_route_unbind_of_a_domain_the_service_does_not_have_names_its_domains(project, cli):
    spec = project / "clusters/shop.yaml"
    before = spec.read_bytes()
    r = cli("-C", str(project), "route", "unbind", "web", "api.example.com", "--cluster", "shop")
    assert r.code == 10
    assert "api.example.com is not bound to service 'web' (its domains: example.com, www.example.com)" in r.err
    assert "dynia route unbind web" in r.err
    assert spec.read_bytes() == before


def test_route_edits_keep_a_block_list_and_its_comments(project, cli):
    spec = project / "clusters/shop.yaml"
    block = "    domain:\n      - example.com       # apex\n      - www.example.com   # old links\n"
    text = spec.read_text().replace("    domain: [example.com, www.example.com]   # the apex and www\n", block)
    spec.write_text(text)
    assert cli("-C", str(project), "route", "bind", "web", "m.example.com", "--cluster", "shop").code == 0
    assert spec.read_text() == text.replace(block, block + "      - m.example.com\n")
    assert cli("-C", str(project), "route", "unbind", "web", "www.example.com", "--cluster", "shop").code == 0
    assert cli("-C", str(project), "route", "unbind", "web", "m.example.com", "--cluster", "shop").code == 0
    # a list with a comment of its own stays a list, so the comment stays
    assert spec.read_text() == text.replace(block, "    domain:\n      - example.com       # apex\n")


def test_service_add_takes_the_domain_option_more_than_once(project, cli):
    from dynia.spec.load import load_cluster

    spec = project / "clusters/mini.yaml"
    (project / "services/extra.yml").write_text('services:\n  extra:\n    image: x\n    ports: ["9200:80"]\n')
    r = cli("-C", str(project), "service", "add", "extra", "--compose", "services/extra.yml", "--port", "9200",
            "--domain", "extra.example.org", "--domain", "more.example.org", "--cluster", "mini")
    assert r.code == 0, r.err
    assert "    domain: [extra.example.org, more.example.org]\n" in spec.read_text()
    svc = load_cluster(Project(project), "mini").spec.services["extra"]
    assert svc.domains == ["extra.example.org", "more.example.org"]
