"""The node apply script run for real against a DYNIA_ROOT directory (no daemons needed).

Validate, reload and health commands come from the bundle, exactly as on a node; here they
are small shell commands that record what ran, so every step of the protocol is observable.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dynia.nodes.payload import BOOTSTRAP, Bundle


def _file(target, content: bytes, mode="0644", owner=None, component="web"):
    import grp
    import pwd
    owner = owner or f"{pwd.getpwuid(os.geteuid()).pw_name}:{grp.getgrgid(os.getegid()).gr_name}"
    return {"target": target, "mode": mode, "owner": owner, "component": component,
            "sha256": hashlib.sha256(content).hexdigest(), "content": base64.b64encode(content).decode()}


def make_bundle(files, *, version=1, validate="true", healthy="test -f \"$DYNIA_ROOT/healthy\"",
                retries=3, interval=0.01, backoff=2.0, timeout=5.0, lockdown=False, force=False) -> Bundle:
    return Bundle(node="n1", layer="service:web", config_version=version, files=files,
                  validate={"web": validate},
                  reload={"web": 'echo "reload $(cat "$DYNIA_ROOT/etc/web.conf" 2>/dev/null)" >> "$DYNIA_ROOT/reloads.log"'},
                  stop={"web": 'echo stop >> "$DYNIA_ROOT/reloads.log"'},
                  health=[{"name": "web", "type": "command", "command": healthy}],
                  policy={"retries": retries, "interval": interval, "backoff": backoff, "timeout": timeout},
                  lockdown=lockdown, component_order=["web"], force=force)


def apply(root: Path, bundle: Bundle, timeout=60):
    proc = subprocess.run(["sh", "-c", BOOTSTRAP], input=bundle.payload(), capture_output=True, timeout=timeout,
                          env={**os.environ, "DYNIA_ROOT": str(root)})
    report = json.loads(proc.stdout.decode().strip().splitlines()[-1]) if proc.stdout.strip() else {}
    return proc.returncode, report, proc.stderr.decode()


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "node"
    r.mkdir()
    (r / "healthy").touch()
    return r


def reloads(root: Path) -> list[str]:
    log = root / "reloads.log"
    return log.read_text().splitlines() if log.exists() else []


def test_first_apply_writes_files_records_applied_and_reloads_once(root):
    code, report, err = apply(root, make_bundle([_file("/etc/web.conf", b"v1\n")]))
    assert code == 0, err
    assert report["status"] == "applied" and report["reloaded"] == ["web"]
    assert (root / "etc/web.conf").read_bytes() == b"v1\n"
    assert reloads(root) == ["reload v1"]
    applied = json.loads((root / "opt/dynia/state/applied.json").read_text())
    assert applied["configVersion"] == 1
    assert applied["layers"]["service:web"]["/etc/web.conf"]["sha256"] == hashlib.sha256(b"v1\n").hexdigest()


def test_unchanged_bundle_exits_zero_and_reloads_nothing(root):
    bundle = make_bundle([_file("/etc/web.conf", b"v1\n")])
    assert apply(root, bundle)[0] == 0
    code, report, _ = apply(root, bundle)
    assert code == 0 and report["status"] == "unchanged" and report["reloaded"] == []
    assert reloads(root) == ["reload v1"]
    assert len(os.listdir(root / "opt/dynia/backups")) == 1  # no backup for a no-op


def test_backup_holds_exactly_the_changed_files_and_only_five_are_kept(root):
    same = _file("/etc/same.conf", b"constant\n")
    for i in range(7):
        assert apply(root, make_bundle([same, _file("/etc/web.conf", f"v{i}\n".encode())], version=i + 1))[0] == 0
        time.sleep(0.01)  # distinct mtimes for the rotation order
    backups = sorted((root / "opt/dynia/backups").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    assert len(backups) == 5
    latest = json.loads((backups[-1] / "manifest.json").read_text())
    assert [f["target"] for f in latest["files"]] == ["/etc/web.conf"]
    assert (backups[-1] / "files/etc/web.conf").read_bytes() == b"v5\n"
    assert latest["bundle"]["configVersion"] == 7


def test_binary_content_with_eof_lines_and_nul_bytes_survives(root):
    nasty = b"line\nEOF\n'EOF'\n\x00\x01\xff$(rm -rf /)\n" + bytes(range(256))
    code, _, err = apply(root, make_bundle([_file("/etc/web.conf", nasty)]))
    assert code == 0, err
    assert (root / "etc/web.conf").read_bytes() == nasty


def test_mode_and_owner_are_applied_and_drift_in_mode_is_repaired(root, as_root):
    f = _file("/etc/web.conf", b"x\n", mode="0640", owner="nobody:nogroup")
    assert apply(root, make_bundle([f]))[0] == 0
    st = (root / "etc/web.conf").stat()
    import pwd
    assert oct(st.st_mode & 0o777) == "0o640" and pwd.getpwuid(st.st_uid).pw_name == "nobody"
    os.chmod(root / "etc/web.conf", 0o666)
    code, report, _ = apply(root, make_bundle([f]))
    assert report["changed"] == ["/etc/web.conf"]
    assert oct((root / "etc/web.conf").stat().st_mode & 0o777) == "0o640"


def test_validation_failure_restores_files_and_reloads_nothing(root):
    assert apply(root, make_bundle([_file("/etc/web.conf", b"good\n")]))[0] == 0
    code, report, err = apply(root, make_bundle([_file("/etc/web.conf", b"bad\n"), _file("/etc/new.conf", b"n\n")],
                                                validate='grep -q good "$DYNIA_ROOT/etc/web.conf" || '
                                                         '{ echo "web: line 1: bad directive" >&2; exit 1; }'))
    assert code == 20 and report["status"] == "invalid"
    assert "validation failed: web: web: line 1: bad directive" in err
    assert (root / "etc/web.conf").read_bytes() == b"good\n"
    assert not (root / "etc/new.conf").exists()
    assert reloads(root) == ["reload good"]


def test_health_failure_rolls_back_reloads_old_config_and_marks_degraded(root):
    assert apply(root, make_bundle([_file("/etc/web.conf", b"v1\n")]))[0] == 0
    (root / "healthy").unlink()
    code, report, err = apply(root, make_bundle([_file("/etc/web.conf", b"v2\n")], version=2))
    assert code == 30 and report["status"] == "rolled-back"
    assert err.strip().count("\n") == 0 and "health gate failed after 3 tries: web (exit 1" in err
    assert (root / "etc/web.conf").read_bytes() == b"v1\n"
    assert reloads(root) == ["reload v1", "reload v2", "reload v1"]
    degraded = json.loads((root / "opt/dynia/state/degraded").read_text())
    assert degraded["configVersion"] == 2 and "health gate failed" in degraded["reason"] and degraded["time"]
    applied = json.loads((root / "opt/dynia/state/applied.json").read_text())
    assert applied["configVersion"] == 1
    (root / "healthy").touch()
    assert apply(root, make_bundle([_file("/etc/web.conf", b"v2\n")], version=2))[0] == 0
    assert not (root / "opt/dynia/state/degraded").exists()


def test_an_unchanged_layer_pushed_after_a_changed_one_never_sets_the_node_version_back(root):
    # `up` stamps an unchanged layer with the version it was last applied with (its payload and
    # push stay as they were): admin → api → web, api changed at v3, admin and web still at v1.
    import dataclasses

    def layer(name, content, version):
        b = make_bundle([_file(f"/etc/{name}.conf", content, component=name)], version=version)
        return dataclasses.replace(b, layer=f"service:{name}", validate={name: "true"},
                                   reload={name: "true"}, stop={name: "true"}, component_order=[name])

    for name in ("admin", "api", "web"):
        assert apply(root, layer(name, b"one\n", 1))[0] == 0
    for name, content, version in (("admin", b"one\n", 1), ("api", b"two\n", 3), ("web", b"one\n", 1)):
        code, report, err = apply(root, layer(name, content, version))
        assert code == 0, err
        assert report["status"] == ("applied" if name == "api" else "unchanged")
    applied = json.loads((root / "opt/dynia/state/applied.json").read_text())
    assert applied["configVersion"] == 3


def test_an_unchanged_reapply_of_the_rolled_back_layer_gates_it_and_clears_the_marker(root):
    # A revert to what the rollback left: no file differs, yet the node is marked degraded by
    # the failed push. The unchanged apply proves the layer healthy before the marker goes.
    assert apply(root, make_bundle([_file("/etc/web.conf", b"v1\n")]))[0] == 0
    (root / "healthy").unlink()
    assert apply(root, make_bundle([_file("/etc/web.conf", b"v2\n")], version=2))[0] == 30
    code, report, _ = apply(root, make_bundle([_file("/etc/web.conf", b"v1\n")]))
    assert (code, report["status"]) == (30, "degraded") and report["healthAttempts"] == 3
    assert (root / "opt/dynia/state/degraded").exists(), "an unhealthy layer stays marked"
    (root / "healthy").touch()
    code, report, _ = apply(root, make_bundle([_file("/etc/web.conf", b"v1\n")]))
    assert (code, report["status"], report["changed"]) == (0, "unchanged", [])
    assert not (root / "opt/dynia/state/degraded").exists()
    assert reloads(root) == ["reload v1", "reload v2", "reload v1"], "nothing reloaded by the unchanged applies"


def test_a_start_that_fails_on_an_image_it_could_not_pull_names_the_image_and_the_pull_error(root):
    # What podman-compose prints when an image cannot be pulled: the pull error, then its last
    # word about a container that was never created.
    import dataclasses

    start = ('echo "Trying to pull registry.example/team/api:2.0..." && '
             'echo "Error: initializing source docker://registry.example/team/api:2.0: reading manifest 2.0 in '
             'registry.example/team/api: manifest unknown" >&2 && '
             'echo "Error: no container with name or ID \\"dynia-web_api_1\\" found: no such container" >&2 && exit 125')
    assert apply(root, make_bundle([_file("/etc/web.conf", b"v1\n")]))[0] == 0
    bundle = dataclasses.replace(make_bundle([_file("/etc/web.conf", b"v2\n")], version=2), reload={"web": start},
                                 images={"localhost/dynia-lab-app": "true", "registry.example/team/api:2.0": "false"})
    bundle = dataclasses.replace(bundle, layer="web", stop={})
    code, report, err = apply(root, bundle)
    reason = ("reload web failed: image registry.example/team/api:2.0 could not be pulled: Error: initializing "
              "source docker://registry.example/team/api:2.0: reading manifest 2.0 in registry.example/team/api: "
              "manifest unknown")
    assert (code, report["status"], report["reason"]) == (30, "rolled-back", reason)
    assert err.strip() == f"dynia apply: n1 web: {reason}"
    degraded = json.loads((root / "opt/dynia/state/degraded").read_text())
    assert degraded["reason"] == reason
    # Every image there, the failure is not a pull: compose's own last line stays the reason.
    bundle = dataclasses.replace(bundle, images={"registry.example/team/api:2.0": "true"})
    code, report, _ = apply(root, bundle)
    assert report["reason"] == 'reload web failed: Error: no container with name or ID "dynia-web_api_1" found: ' \
        "no such container"


def test_rollback_reloads_components_in_the_reverse_of_the_forward_order(root):
    # Forward: caddy lets go of a port before haproxy takes it; back: haproxy lets go first.
    files = [_file("/etc/caddy.conf", b"c1\n", component="caddy"), _file("/etc/haproxy.conf", b"h1\n", component="haproxy")]
    bundle = make_bundle(files)
    bundle.reload = {c: f'echo "{c} $(cat "$DYNIA_ROOT/etc/{c}.conf")" >> "$DYNIA_ROOT/reloads.log"'
                     for c in ("caddy", "haproxy")}
    bundle.validate, bundle.stop, bundle.component_order = {}, {}, ["caddy", "haproxy"]
    assert apply(root, bundle)[0] == 0
    (root / "healthy").unlink()
    for f, content in zip(bundle.files, (b"c2\n", b"h2\n")):
        f.update(_file(f["target"], content, component=f["component"]))
    bundle.config_version = 2
    assert apply(root, bundle)[0] == 30
    assert reloads(root) == ["caddy c1", "haproxy h1", "caddy c2", "haproxy h2", "haproxy h1", "caddy c1"]


def test_apply_on_a_test_root_never_waits_for_the_machines_cloud_init(root, tmp_path):
    # A fake cloud-init that would hang: DYNIA_ROOT is not a node, so it is never asked.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "cloud-init").write_text("#!/bin/sh\nsleep 30\n")
    (bin_dir / "cloud-init").chmod(0o755)
    bundle = make_bundle([_file("/etc/web.conf", b"v1\n")])
    proc = subprocess.run(["sh", "-c", BOOTSTRAP], input=bundle.payload(), capture_output=True, timeout=20,
                          env={**os.environ, "DYNIA_ROOT": str(root), "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.decode().splitlines()[-1])["cloudInitWaitSeconds"] == 0


def test_failed_first_deploy_stops_the_new_component_instead_of_reloading(root):
    (root / "healthy").unlink()
    code, _, _ = apply(root, make_bundle([_file("/etc/web.conf", b"v1\n")]))
    assert code == 30
    assert not (root / "etc/web.conf").exists()
    assert reloads(root) == ["reload v1", "stop"]


def test_health_gate_backs_off_exponentially_and_respects_the_timeout(root):
    (root / "healthy").unlink()
    _, report, _ = apply(root, make_bundle([_file("/etc/a", b"1")], retries=4, interval=0.05, backoff=2.0))
    assert report["healthAttempts"] == 4
    assert report["healthWaitSeconds"] == pytest.approx(0.05 + 0.1 + 0.2, abs=0.01)
    _, report, _ = apply(root, make_bundle([_file("/etc/a", b"2")], retries=10, interval=0.05, backoff=2.0,
                                           timeout=0.12))
    assert report["healthWaitSeconds"] <= 0.13 and report["healthAttempts"] < 10


def test_force_rewrites_and_reloads_an_unchanged_bundle(root):
    files = [_file("/etc/web.conf", b"v1\n")]
    apply(root, make_bundle(files))
    code, report, _ = apply(root, make_bundle(files, force=True))
    assert code == 0 and report["reloaded"] == ["web"]


def kill_at(root: Path, bundle: Bundle, point: str) -> None:
    """Run the apply until it stops at `point` (the script's test-only DYNIA_TEST_PAUSE hook),
    then SIGKILL it there: the crash lands on a known step, never in a timing window."""
    proc = subprocess.Popen(["sh", "-c", BOOTSTRAP], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, "DYNIA_ROOT": str(root), "DYNIA_TEST_PAUSE": point})
    try:
        proc.stdin.write(bundle.payload())
        proc.stdin.close()
        line = proc.stderr.readline()  # EOF (b"") if the script ended without reaching the point
        assert line == f"dynia-test-pause: {point}\n".encode(), line + proc.stderr.read()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def stray_temps(root: Path) -> list[Path]:
    return sorted(root.rglob(".*.dynia-*.tmp"))


def test_kill_before_the_rename_leaves_the_old_file_and_the_next_apply_completes(root):
    old, new = b"v1\n", b"v2\n"
    assert apply(root, make_bundle([_file("/etc/web.conf", old)]))[0] == 0
    kill_at(root, make_bundle([_file("/etc/web.conf", new)], version=2), "before-rename")
    assert (root / "etc/web.conf").read_bytes() == old
    # What the crash leaves is a hidden `.NAME.dynia-PID.tmp` beside the target, with the target's
    # mode: no config glob picks it up (Caddy imports `*.caddy`), and a secret stays as closed.
    [temp] = stray_temps(root)
    assert temp.parent == root / "etc" and temp.name.startswith(".") and temp.suffix == ".tmp"
    assert temp.read_bytes() == new and oct(temp.stat().st_mode & 0o777) == "0o644"
    assert json.loads((root / "opt/dynia/state/applied.json").read_text())["configVersion"] == 1
    assert reloads(root) == ["reload v1"]
    code, report, err = apply(root, make_bundle([_file("/etc/web.conf", new)], version=2))
    assert code == 0 and report["changed"] == ["/etc/web.conf"], err
    assert (root / "etc/web.conf").read_bytes() == new
    assert temp.read_bytes() == new and stray_temps(root) == [temp]  # untouched, and nothing more left


def test_kill_after_the_rename_leaves_the_new_file_whole(root):
    old, new = b"v1\n", b"v2\n"
    assert apply(root, make_bundle([_file("/etc/web.conf", old)]))[0] == 0
    kill_at(root, make_bundle([_file("/etc/web.conf", new)], version=2), "after-rename")
    assert (root / "etc/web.conf").read_bytes() == new
    assert stray_temps(root) == []  # the rename consumed it
    assert json.loads((root / "opt/dynia/state/applied.json").read_text())["configVersion"] == 1


def test_rerun_after_a_kill_past_the_rename_still_reloads_and_stamps(root):
    bundle = make_bundle([_file("/etc/web.conf", b"v1\n")])
    assert apply(root, bundle)[0] == 0
    v2 = make_bundle([_file("/etc/web.conf", b"v2\n")], version=2)
    kill_at(root, v2, "after-rename")  # the file is new, the daemon still runs the old one
    code, report, _ = apply(root, v2)
    assert code == 0 and report["status"] == "applied" and report["reloaded"] == ["web"]
    assert reloads(root) == ["reload v1", "reload v2"]
    assert json.loads((root / "opt/dynia/state/applied.json").read_text())["configVersion"] == 2


@pytest.mark.parametrize("garbage", [b"[]", b'{"layers": []}', b"\xff\x00"], ids=["list", "layers-list", "binary"])
def test_mangled_node_record_counts_as_nothing_applied(root, garbage):
    state = root / "opt/dynia/state"
    state.mkdir(parents=True)
    (state / "applied.json").write_bytes(garbage)
    code, report, err = apply(root, make_bundle([_file("/etc/web.conf", b"v1\n")]))
    assert code == 0 and report["status"] == "applied", err
    assert json.loads((state / "applied.json").read_text())["configVersion"] == 1


def test_bootstrap_command_carries_no_bundle_data_and_describe_hides_content(root):
    secret = b"-----BEGIN PRIVATE KEY-----\nsupersecretvalue\n"
    bundle = make_bundle([_file("/etc/haproxy/certs/origin.pem", secret, mode="0600")])
    assert "supersecret" not in BOOTSTRAP and "{" not in BOOTSTRAP
    assert "supersecret" not in json.dumps(bundle.describe())
    code, _, _ = apply(root, bundle)
    assert code == 0 and oct((root / "etc/haproxy/certs/origin.pem").stat().st_mode & 0o777) == "0o600"


def test_bad_bundle_is_refused_without_touching_anything(root):
    from dynia.nodes.payload import apply_script
    script = apply_script()
    proc = subprocess.run(["sh", "-c", BOOTSTRAP], input=f"{len(script)}\n".encode() + script + b"{not json",
                          capture_output=True, env={**os.environ, "DYNIA_ROOT": str(root)})
    assert proc.returncode == 10 and b"bad bundle" in proc.stderr
    assert not (root / "opt").exists()


# --- removals: a service gone from the spec ------------------------------------------------
# The "service" is a marker file: `running` exists while it runs. Its stop command insists on
# its compose file still being there, so a stop after the deletion would show.
LOG = '>> "$DYNIA_ROOT/reloads.log"'
COMPOSE, ROUTE = "/opt/dynia/compose/web/docker-compose.yml", "/etc/caddy/routes/web.caddy"


def deployed(root: Path) -> None:
    bundle = make_bundle([_file(COMPOSE, b"services: {}\n", component="service:web"),
                          _file(ROUTE, b"web.example {}\n", component="caddy")])
    bundle.reload = {"service:web": f'touch "$DYNIA_ROOT/running"; echo start {LOG}',
                     "caddy": f'echo "caddy $(ls "$DYNIA_ROOT/etc/caddy/routes")" {LOG}'}
    bundle.validate, bundle.stop, bundle.component_order = {}, {}, ["service:web", "caddy"]
    assert apply(root, bundle)[0] == 0
    assert (root / "running").exists()


def removal(healthy="true", validate="true") -> Bundle:
    bundle = make_bundle([], healthy=healthy)
    bundle.validate = {"caddy": validate}
    bundle.reload = {"caddy": f'echo "caddy $(ls "$DYNIA_ROOT/etc/caddy/routes")" {LOG}'}
    bundle.stop, bundle.component_order = {}, ["service:web", "caddy"]
    bundle.remove = [COMPOSE, ROUTE]
    bundle.remove_components = {COMPOSE: "service:web", ROUTE: "caddy"}
    bundle.remove_commands = {"service:web": {
        "stop": f'test -f "$DYNIA_ROOT{COMPOSE}" && rm -f "$DYNIA_ROOT/running" && echo stop {LOG}',
        "running": 'test -f "$DYNIA_ROOT/running"',
        "restart": f'test -f "$DYNIA_ROOT{COMPOSE}" && touch "$DYNIA_ROOT/running" && echo restart {LOG}'}}
    return bundle


def test_a_removal_stops_the_service_before_deleting_its_compose_file_and_route_then_reloads_caddy(root):
    deployed(root)
    code, report, err = apply(root, removal())
    assert code == 0, err
    assert report["status"] == "applied" and report["removed"] == [COMPOSE, ROUTE]
    assert report["stopped"] == ["service:web"] and report["reloaded"] == ["caddy"]
    assert not (root / "running").exists()
    assert not (root / COMPOSE.lstrip("/")).exists() and not (root / ROUTE.lstrip("/")).exists()
    assert reloads(root)[-2:] == ["stop", "caddy "]
    # The node's record forgets the layer; a second run finds nothing to do.
    assert "service:web" not in json.loads((root / "opt/dynia/state/applied.json").read_text())["layers"]
    code, report, _ = apply(root, removal())
    assert code == 0 and report["status"] == "unchanged" and reloads(root)[-1] == "caddy "


def test_a_removal_whose_gate_fails_restores_the_files_and_restarts_the_service_from_its_compose_file(root):
    deployed(root)
    code, report, err = apply(root, removal(healthy="false"))
    assert code == 30 and report["status"] == "rolled-back", err
    assert (root / COMPOSE.lstrip("/")).read_bytes() == b"services: {}\n"
    assert (root / ROUTE.lstrip("/")).read_bytes() == b"web.example {}\n"
    assert (root / "running").exists()
    assert reloads(root)[-4:] == ["stop", "caddy ", "caddy web.caddy", "restart"]
    assert json.loads((root / "opt/dynia/state/degraded").read_text())["layer"] == "service:web"
    assert "service:web" in json.loads((root / "opt/dynia/state/applied.json").read_text())["layers"]


def test_a_removal_refused_by_the_validator_restores_the_files_and_restarts_the_service(root):
    deployed(root)
    code, report, _ = apply(root, removal(validate="echo bad route >&2; false"))
    assert code == 20 and report["status"] == "invalid"
    assert (root / COMPOSE.lstrip("/")).exists() and (root / ROUTE.lstrip("/")).exists()
    assert (root / "running").exists() and reloads(root)[-2:] == ["stop", "restart"]


def test_a_failed_removal_never_starts_a_service_that_was_not_running_on_the_node(root):
    # An active-only service has its files on every node but runs on the holder only.
    deployed(root)
    (root / "running").unlink()
    assert apply(root, removal(healthy="false"))[0] == 30
    assert (root / COMPOSE.lstrip("/")).exists() and not (root / "running").exists()
    assert "restart" not in reloads(root)


# --- placement: whether the service runs on this node -----------------------------------
# An active-only service runs on the VIP holder only: its compose file is the same on every
# node, so a placement change (failover, active-only <-> all) reaches a node as `run` alone.
# The "service" is again a marker file; its start and stop insist on the compose file, as
# compose does, and log what ran.
def placed(run: bool, *, healthy: str | None = None, compose: bytes = b"services: {}\n",
           caddy: str = f'echo caddy {LOG}') -> Bundle:
    bundle = make_bundle([_file(COMPOSE, compose, component="service:web"),
                          _file(ROUTE, b"web.example {}\n", component="caddy")])
    bundle.reload = {"service:web": f'test -f "$DYNIA_ROOT{COMPOSE}" && touch "$DYNIA_ROOT/running" && '
                                    f'echo "start $(cat "$DYNIA_ROOT{COMPOSE}")" {LOG}',
                     "caddy": caddy}
    bundle.stop = {"service:web": f'test -f "$DYNIA_ROOT{COMPOSE}" && rm -f "$DYNIA_ROOT/running" && echo stop {LOG}'}
    bundle.validate, bundle.component_order, bundle.run = {}, ["service:web", "caddy"], run
    # The app is gated where it runs (as bundle.service_health does), nowhere else.
    gate = healthy or 'test -f "$DYNIA_ROOT/running"'
    bundle.health = [{"name": "web app", "type": "command", "command": gate}] if run else []
    return bundle


def run_record(root: Path) -> dict:
    return json.loads((root / "opt/dynia/state/applied.json").read_text()).get("run")


def test_placement_on_to_off_alone_stops_the_service_and_records_it(root):
    assert apply(root, placed(True))[0] == 0
    assert (root / "running").exists() and run_record(root) == {"service:web": True}
    backups = len(os.listdir(root / "opt/dynia/backups"))
    code, report, err = apply(root, placed(False))
    assert code == 0, err
    assert report["status"] == "applied" and report["changed"] == [] and report["stopped"] == ["service:web"]
    assert report["reloaded"] == [] and report["run"] == {"want": False, "had": True}
    assert not (root / "running").exists()
    assert reloads(root)[-1] == "stop"
    assert run_record(root) == {"service:web": False}
    assert len(os.listdir(root / "opt/dynia/backups")) == backups  # no file changed, nothing to back up


def test_placement_off_to_on_alone_starts_the_service_and_gates_it(root):
    assert apply(root, placed(False))[0] == 0
    assert not (root / "running").exists() and run_record(root) == {"service:web": False}
    code, report, err = apply(root, placed(True))
    assert code == 0, err
    assert report["status"] == "applied" and report["changed"] == [] and report["reloaded"] == ["service:web"]
    assert report["healthAttempts"] == 1 and report["run"] == {"want": True, "had": False}
    assert (root / "running").exists() and reloads(root)[-1] == "start services: {}"
    assert run_record(root) == {"service:web": True}


def test_unchanged_placement_and_files_are_unchanged_and_run_no_command(root):
    for run in (True, False):
        assert apply(root, placed(run))[0] == 0
        log = reloads(root)
        code, report, _ = apply(root, placed(run))
        assert code == 0 and report["status"] == "unchanged" and "run" not in report
        assert reloads(root) == log


def test_a_new_compose_file_does_not_start_the_service_where_it_should_not_run(root):
    assert apply(root, placed(False))[0] == 0
    code, report, _ = apply(root, placed(False, compose=b"services: {v2: {}}\n"))
    assert code == 0 and report["changed"] == [COMPOSE] and report["reloaded"] == []
    assert not (root / "running").exists() and "start" not in " ".join(reloads(root))


@pytest.mark.parametrize("run", [True, False], ids=["should-run", "should-not-run"])
def test_a_record_from_before_run_states_counts_as_unknown_and_the_placement_is_applied(root, run):
    # A node applied by the previous apply script: the files and their manifest, no "run".
    bundle = placed(run)
    for f in bundle.files:
        path = root / f["target"].lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(f["content"]))
    state = root / "opt/dynia/state"
    state.mkdir(parents=True)
    manifest = {f["target"]: {k: f[k] for k in ("sha256", "mode", "owner", "component")} for f in bundle.files}
    (state / "applied.json").write_text(json.dumps({"configVersion": 1, "node": "n1",
                                                    "layers": {"service:web": manifest}}))
    if not run:
        (root / "running").touch()  # it ran here before the holder moved
    code, report, err = apply(root, bundle)
    assert code == 0, err
    assert report["changed"] == [] and report["run"] == {"want": run, "had": None}
    assert (root / "running").exists() is run
    assert reloads(root)[-1] == ("start services: {}" if run else "stop")
    record = json.loads((state / "applied.json").read_text())
    assert record["run"] == {"service:web": run} and record["layers"]["service:web"] == manifest
    assert apply(root, bundle)[1]["status"] == "unchanged"


def test_a_failed_gate_after_a_placement_start_stops_it_again_and_keeps_the_old_run_state(root):
    assert apply(root, placed(False))[0] == 0
    code, report, _ = apply(root, placed(True, healthy="false"))
    assert code == 30 and report["status"] == "rolled-back"
    assert not (root / "running").exists()
    assert reloads(root)[-2:] == ["start services: {}", "stop"]
    assert run_record(root) == {"service:web": False}
    assert json.loads((root / "opt/dynia/state/degraded").read_text())["layer"] == "service:web"


def test_a_failed_placement_stop_restarts_the_service_from_its_restored_files(root):
    assert apply(root, placed(True))[0] == 0
    # The route changes too and Caddy's reload fails: the whole apply is undone.
    bundle = placed(False, caddy="echo caddy broken >&2; false")
    bundle.files[1] = _file(ROUTE, b"web.example { v2 }\n", component="caddy")
    code, report, err = apply(root, bundle)
    assert code == 30 and "reload caddy failed" in err
    assert (root / "running").exists() and reloads(root)[-2:] == ["stop", "start services: {}"]
    assert (root / ROUTE.lstrip("/")).read_bytes() == b"web.example {}\n"
    assert run_record(root) == {"service:web": True}


def test_a_failed_first_deploy_stops_the_service_while_its_compose_file_still_exists(root):
    # compose finds the project through its file: stopping after the restore deleted it would
    # leave the containers running.
    code, _, _ = apply(root, placed(True, healthy="false"))
    assert code == 30
    assert not (root / "running").exists() and not (root / COMPOSE.lstrip("/")).exists()
    assert reloads(root) == ["start services: {}", "caddy", "stop", "caddy"]


def test_forcing_a_bundle_reapplies_its_run_state(root):
    assert apply(root, placed(False))[0] == 0
    (root / "running").touch()  # started behind dynia's back (say, a notify without a STOP)
    forced = placed(False)
    forced.force = True
    code, report, _ = apply(root, forced)
    assert code == 0 and report["stopped"] == ["service:web"] and not (root / "running").exists()


def test_a_run_state_without_its_stop_command_is_a_bad_bundle(root):
    bundle = placed(True)
    bundle.stop = {}
    code, _, err = apply(root, bundle)
    assert code == 10 and "run must be true or false" in err
    assert not (root / COMPOSE.lstrip("/")).exists()


def test_a_layer_that_does_not_run_here_pulls_its_images_ahead_and_a_refused_pull_names_the_registry(root):
    """An active-only service's standby: the new compose file's images are pulled (each unless
    present) without starting it, so a failover never waits on a registry; a pull the registry
    refuses fails the push, rolled back, naming the image and the registry."""
    import dataclasses

    pulled = 'echo "pulled $(cat "$DYNIA_ROOT/etc/web.conf")" >> "$DYNIA_ROOT/reloads.log"'
    bundle = dataclasses.replace(make_bundle([_file("/etc/web.conf", b"v1\n")]), layer="web", run=False,
                                 prefetch={"ghcr.io/team/web:1": pulled})
    code, report, _ = apply(root, bundle)
    assert (code, report["status"]) == (0, "applied")
    # Pulled, never started (the first run state applied here is "stopped").
    assert reloads(root) == ["pulled v1", "stop"]
    # Unchanged: nothing pulled again.
    assert apply(root, bundle)[1]["status"] == "unchanged" and reloads(root) == ["pulled v1", "stop"]

    refused = ('echo "Trying to pull ghcr.io/team/web:2..." && echo "Error: initializing source '
               'docker://ghcr.io/team/web:2: reading manifest 2 in ghcr.io/team/web: unauthorized: '
               'authentication required" >&2 && exit 125')
    bundle = dataclasses.replace(make_bundle([_file("/etc/web.conf", b"v2\n")], version=2), layer="web", run=False,
                                 prefetch={"ghcr.io/team/web:2": refused})
    code, report, err = apply(root, bundle)
    reason = ("prefetch web failed: image ghcr.io/team/web:2 could not be pulled: registry ghcr.io refused the pull "
              "(credentials missing or wrong): Error: initializing source docker://ghcr.io/team/web:2: reading "
              "manifest 2 in ghcr.io/team/web: unauthorized: authentication required")
    assert (code, report["status"], report["reason"]) == (30, "rolled-back", reason)
    assert (root / "etc/web.conf").read_text() == "v1\n", "the previous compose file is back"
    assert reloads(root) == ["pulled v1", "stop"], "nothing started, nothing reloaded"


# --- a partial push: one secret slot of a layer (`dynia cert renew` while changes are pending) ---

def _layer_with_certificate(root: Path, cert: bytes, version: int = 3) -> Bundle:
    bundle = make_bundle([_file("/etc/web.conf", b"v1\n"), _file("/etc/cert.pem", cert, mode="0600")],
                         version=version)
    assert apply(root, bundle)[0] == 0
    return bundle


def _partial(cert: bytes, version: int = 9, healthy="test -f \"$DYNIA_ROOT/healthy\"") -> Bundle:
    bundle = make_bundle([_file("/etc/cert.pem", cert, mode="0600")], version=version, healthy=healthy)
    bundle.partial = True
    return bundle


def test_a_partial_push_writes_its_slot_keeps_the_layers_other_records_and_the_nodes_version(root):
    _layer_with_certificate(root, b"old cert\n")
    before = json.loads((root / "opt/dynia/state/applied.json").read_text())
    code, report, err = apply(root, _partial(b"new cert\n"))
    assert code == 0, err
    assert report["status"] == "applied" and report["changed"] == ["/etc/cert.pem"] and report["reloaded"] == ["web"]
    assert (root / "etc/cert.pem").read_bytes() == b"new cert\n" and (root / "etc/web.conf").read_bytes() == b"v1\n"
    applied = json.loads((root / "opt/dynia/state/applied.json").read_text())
    assert applied["configVersion"] == 3   # the render's v9 was not applied: only the certificate
    layer = applied["layers"]["service:web"]
    assert layer["/etc/web.conf"] == before["layers"]["service:web"]["/etc/web.conf"]
    assert layer["/etc/cert.pem"]["sha256"] == hashlib.sha256(b"new cert\n").hexdigest()
    # the next full push of the same layer finds the certificate in place
    code, report, _ = apply(root, make_bundle([_file("/etc/web.conf", b"v1\n"),
                                               _file("/etc/cert.pem", b"new cert\n", mode="0600")], version=9))
    assert code == 0 and report["changed"] == []


def test_a_partial_push_whose_gate_fails_restores_the_old_certificate_and_its_record(root):
    _layer_with_certificate(root, b"old cert\n")
    before = (root / "opt/dynia/state/applied.json").read_text()
    code, report, err = apply(root, _partial(b"new cert\n", healthy="false"))
    assert code == 30 and report["status"] == "rolled-back", err
    assert (root / "etc/cert.pem").read_bytes() == b"old cert\n"
    assert (root / "opt/dynia/state/applied.json").read_text() == before


def test_a_partial_push_keeps_the_degraded_marker_of_a_change_still_not_applied(root):
    _layer_with_certificate(root, b"old cert\n")
    (root / "opt/dynia/state/degraded").write_text(json.dumps({"layer": "infra", "reason": "gate failed"}))
    assert apply(root, _partial(b"new cert\n"))[0] == 0
    assert (root / "opt/dynia/state/degraded").exists()


def test_a_partial_push_of_a_layer_the_node_never_applied_is_refused_and_writes_nothing(root):
    code, report, err = apply(root, _partial(b"new cert\n"))
    assert code == 10 and "never applied on this node" in report["reason"] and "never applied" in err
    assert not (root / "etc/cert.pem").exists() and not (root / "opt/dynia/state/applied.json").exists()


def test_a_file_the_layer_recorded_under_its_prune_directory_and_no_longer_carries_is_removed(root):
    """A secret the spec dropped: its slot goes from the node with the push that stops mounting it
    (backed up first, like every file a push removes), and only files under the layer's own
    directory: the rest of what the record held is left alone."""
    keep, drop = _file("/etc/app-secrets/web/KEEP", b"k", mode="0600"), _file("/etc/app-secrets/web/DROP", b"d", mode="0600")
    conf = _file("/etc/web.conf", b"v1\n")
    first = make_bundle([conf, keep, drop])
    first.prune = "/etc/app-secrets/web/"
    assert apply(root, first)[0] == 0
    (root / "etc/app-secrets/other").mkdir()
    (root / "etc/app-secrets/other/X").write_bytes(b"x")
    second = make_bundle([_file("/etc/web.conf", b"v2\n"), keep], version=2)
    second.prune = "/etc/app-secrets/web/"
    code, report, err = apply(root, second)
    assert code == 0, err
    assert report["removed"] == ["/etc/app-secrets/web/DROP"] and report["reloaded"] == ["web"]
    assert not (root / "etc/app-secrets/web/DROP").exists() and (root / "etc/app-secrets/web/KEEP").read_bytes() == b"k"
    assert (root / "etc/app-secrets/other/X").exists()
    applied = json.loads((root / "opt/dynia/state/applied.json").read_text())
    assert sorted(applied["layers"]["service:web"]) == ["/etc/app-secrets/web/KEEP", "/etc/web.conf"]
    # Without a prune directory nothing recorded is removed.
    third = make_bundle([_file("/etc/web.conf", b"v3\n")], version=3)
    assert apply(root, third)[1]["removed"] == []
    assert (root / "etc/app-secrets/web/KEEP").exists()
