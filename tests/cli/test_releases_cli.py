"""`dynia releases` through the installed console script (issue 27.1): the ledger read from the
cluster's state (the <cluster>-releases stack's `releases` output, answered here by the recording
test double of `pulumi`), newest first, as a table, as JSON and for one service; an unknown
service is a config error (exit 10) and a machine without the passphrase an engine error."""
from __future__ import annotations

import json

from .test_console_script import dynia

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def _release(rid, web_digest, api_compose="a" * 64):
    def service(name, digest, compose):
        return {"compose": compose, "images": {f"ghcr.io/example/shop-{name}:1.4.2": digest},
                "nodes": {"misty-owl": {"dynia-web_web_1": digest}, "brave-panda": {"dynia-web_web_1": digest}}}

    return {"id": rid, "time": f"2026-12-08T0{rid}:00:00Z", "who": "octocat (GitHub Actions)", "command": "up",
            "git": {"commit": f"{rid}" * 40, "dirty": rid == 2}, "spec": "f" * 64, "configVersion": rid,
            "services": {"web": service("web", web_digest, "b" * 64), "api": service("api", D1, api_compose)},
            "unanswered": []}


def _seed(env, releases):
    (env["state"] / "outputs-shop-releases.json").write_text(json.dumps({"releases": releases}))


def _run(env, *args):
    return dynia("-C", str(env["proj"]), "releases", "--cluster", "shop", *args, env=env["env"])


def test_releases_lists_the_ledger_newest_first_as_json_and_pins_this_machines_renders(recording_pulumi):
    env = recording_pulumi
    _seed(env, [_release(1, D1), _release(2, D2)])
    proc = _run(env, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["cluster"] == "shop" and [r["id"] for r in out["releases"]] == [2, 1]
    assert out["releases"][0]["services"]["web"]["nodes"]["brave-panda"] == {"dynia-web_web_1": D2}
    # This machine now renders what the last release resolved (status and drift-check compare with it).
    images = json.loads((env["proj"] / ".dynia/cache/shop/images.json").read_text())
    assert images == {"images": {"ghcr.io/example/shop-web:1.4.2": D2, "ghcr.io/example/shop-api:1.4.2": D1},
                      "rollback": {}}


def test_releases_for_one_service_lists_only_the_releases_that_changed_it(recording_pulumi):
    env = recording_pulumi
    _seed(env, [_release(1, D1), _release(2, D2), _release(3, D2, api_compose="c" * 64)])
    web = json.loads(_run(env, "--service", "web", "--json").stdout)["releases"]
    api = json.loads(_run(env, "--service", "api", "--json").stdout)["releases"]
    assert [r["id"] for r in web] == [2, 1] and [r["id"] for r in api] == [3, 1]


def test_releases_table_shows_id_who_commit_dirty_and_each_digest_with_its_nodes(recording_pulumi):
    env = recording_pulumi
    _seed(env, [_release(1, D1), _release(2, D2)])
    proc = _run(env, "--service", "web")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    row = next(line for line in lines if line.strip().startswith("2 "))
    assert "octocat" in row and "2222222222 dirty" in row and "222222222222: brave-panda" in row
    assert not any(line.strip().startswith("1 ") and "dirty" in line for line in lines)


def test_no_release_yet_says_which_command_records_one(recording_pulumi):
    proc = _run(recording_pulumi)
    assert proc.returncode == 0 and "no releases recorded yet" in proc.stdout


def test_an_unknown_service_is_a_config_error_and_no_passphrase_an_engine_error(recording_pulumi):
    env = recording_pulumi
    proc = _run(env, "--service", "nope")
    assert proc.returncode == 10 and "service 'nope' is not in the spec" in proc.stderr
    env["env"] = {k: v for k, v in env["env"].items() if k != "PULUMI_CONFIG_PASSPHRASE"}
    proc = _run(env)
    assert proc.returncode != 0 and "PULUMI_CONFIG_PASSPHRASE" in proc.stderr


# --- dynia rollback ------------------------------------------------------------------------------

def _with_contents(env, releases):
    """Releases as the ledger keeps them: each service with its compose file's content."""
    for r in releases:
        for name, svc in r["services"].items():
            text = (env["proj"] / "services" / f"{name}.yml").read_text() + f"# release {r['id']}\n"
            svc["content"] = text
    return releases


def _rollback(env, *args):
    return dynia("-C", str(env["proj"]), "rollback", "--cluster", "shop", *args, env=env["env"])


def test_rollback_shows_the_plan_rolls_the_apps_phase_then_records_and_keeps_the_rollback_in_effect(recording_pulumi):
    env = recording_pulumi
    _seed(env, _with_contents(env, [_release(1, D1), _release(2, D2)]))
    proc = _rollback(env, "--service", "web", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert "web" in proc.stdout and "222222222222 → 111111111111" in proc.stdout   # the plan, before the roll
    log = [json.loads(line)["argv"] for line in env["log"].read_text().splitlines()]
    ups = [a[a.index("--stack") + 1] for a in log if a[0] == "up"]
    assert ups == ["shop-apps", "shop-releases"]   # one gated apps roll, then the release is recorded
    kept = json.loads((env["proj"] / ".dynia/cache/shop/images.json").read_text())
    assert kept["rollback"]["web"]["release"] == 1 and kept["rollback"]["web"]["content"].endswith("# release 1\n")
    assert kept["rollback"]["web"]["images"] == {"ghcr.io/example/shop-web:1.4.2": D1}
    assert "api" not in kept["rollback"]
    # plan says so, and what replaces it
    plan = dynia("-C", str(env["proj"]), "plan", "--offline", "--cluster", "shop", env=env["env"])
    assert "service web is rolled back to release 1" in plan.stdout and "dynia service deploy web" in plan.stdout


def test_rollback_refuses_an_unknown_release_a_service_not_in_the_spec_and_an_unconfirmed_run(recording_pulumi):
    env = recording_pulumi
    _seed(env, _with_contents(env, [_release(1, D1), _release(2, D2)]))
    proc = _rollback(env, "9", "--yes")
    assert proc.returncode == 10 and "has no release 9 (kept: 1, 2)" in proc.stderr
    proc = _rollback(env, "--service", "nope", "--yes")
    assert proc.returncode == 10 and "service 'nope' is not in the spec" in proc.stderr
    proc = _rollback(env)
    assert proc.returncode == 10 and "needs confirmation" in proc.stderr
    log = [json.loads(line)["argv"] for line in env["log"].read_text().splitlines()]
    assert not [a for a in log if a[0] == "up"]   # nothing rolled
