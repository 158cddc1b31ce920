"""Every command a node runs, as the exact string, for both node profiles (Kamal's way of
testing lib/kamal/commands/*). A change here is a change on every node: review it as such."""
from __future__ import annotations

import pytest

from dynia.nodes.commands import NodeCommands
from dynia.providers import get

DO = NodeCommands(get("digitalocean").profile)
LAB = NodeCommands(get("local").profile)


@pytest.mark.parametrize("commands", [DO, LAB], ids=["digitalocean", "local"])
def test_validate_commands_are_the_real_validators_on_the_managed_files(commands):
    assert commands.validate("haproxy") == ("set -a; . /etc/default/haproxy; set +a; "
                                            "haproxy -c -q -f /etc/haproxy/haproxy.cfg")
    assert commands.validate("caddy") == "caddy validate --adapter caddyfile --config /etc/caddy/Caddyfile"
    assert commands.validate("keepalived") == "keepalived -t -f /etc/keepalived/keepalived.conf"


ENV_CURRENT = ("{{ [ -r /proc/{pid}/environ ] && "
               "[ \"$(grep -c '^[A-Za-z_][A-Za-z0-9_]*=' /etc/default/haproxy)\" = "
               "\"$(tr '\\0' '\\n' < /proc/{pid}/environ | grep -cxF -f /etc/default/haproxy)\" ]; }}")


def test_infra_components_reload_caddy_before_haproxy_so_the_package_caddy_releases_port_80_first():
    from dynia.nodes.commands import COMPONENTS
    assert COMPONENTS == ("caddy", "haproxy", "keepalived")


# --- the host firewall (nftables) ------------------------------------------------------------

SSH_ADMITTED = ('a=${SSH_CONNECTION%% *}; a=${a#::ffff:}; if [ -n "$a" ]; then '
                'case $a in *:*) s=admin6;; *) s=admin4;; esac; '
                'nft get element inet dynia $s "{ $a }" >/dev/null 2>&1 || { '
                'echo "dynia: this push connects from $a, which firewall.admin_ranges does not admit: '
                'the firewall would lock dynia out" >&2; exit 1; }; '
                'elif ! { nft get element inet dynia admin4 "{ 0.0.0.0/0 }" >/dev/null 2>&1 && '
                'nft get element inet dynia admin6 "{ ::/0 }" >/dev/null 2>&1; }; then '
                'echo "dynia: the address this push connects from is unknown (no SSH_CONNECTION: '
                'sudo or su reset the environment), and firewall.admin_ranges does not admit everyone: '
                'the firewall could lock dynia out" >&2; exit 1; fi')


def test_the_ssh_guard_fails_closed_without_ssh_connection_unless_the_admin_ranges_hold_everyone():
    from dynia.nodes.commands import ssh_admitted
    guard = ssh_admitted()
    assert guard == SSH_ADMITTED
    # No `[ -z "$a" ] ||` short cut: an empty address goes to the everyone-check, never to exit 0.
    assert '[ -z "$a" ] ||' not in guard and "elif ! {" in guard
    # It runs inside `unshare -n sh -c '...'`: no single quote may end that argument early.
    assert "'" not in guard


def test_an_infra_push_loads_the_firewall_before_every_daemon():
    from dynia.nodes.commands import INFRA_COMPONENTS
    assert INFRA_COMPONENTS == ("nftables", "caddy", "haproxy", "keepalived")


@pytest.mark.parametrize("commands", [DO, LAB], ids=["digitalocean", "local"])
def test_the_firewall_is_checked_by_nft_then_refused_in_a_scratch_namespace_if_it_would_lock_dynia_out(commands):
    assert commands.validate("nftables") == (
        "nft -c -f /etc/dynia/firewall.nft && "
        f"unshare -n sh -c 'nft -f /etc/dynia/firewall.nft && {{ {SSH_ADMITTED}; }}'")


@pytest.mark.parametrize("commands", [DO, LAB], ids=["digitalocean", "local"])
def test_the_firewall_runs_while_its_table_is_loaded_and_the_gate_asks_its_admin_sets(commands):
    assert commands.running("nftables") == "nft list table inet dynia >/dev/null 2>&1"
    assert commands.firewall_admits_ssh() == (
        "r=$(nft list chain inet dynia input) || exit 1; "
        "for w in 'ip saddr @admin4' 'ip6 saddr @admin6'; do "
        "printf '%s\\n' \"$r\" | grep -qF \"tcp dport 22 $w accept\" || "
        "{ echo \"dynia: the loaded firewall has no SSH rule for $w\" >&2; exit 1; }; done; " + SSH_ADMITTED)


def test_the_lab_loads_the_firewall_file_in_one_transaction_and_stop_deletes_only_dynias_table():
    assert LAB.reload("nftables") == "nft -f /etc/dynia/firewall.nft"
    assert LAB.stop("nftables") == ("if nft list table inet dynia >/dev/null 2>&1; "
                                    "then nft delete table inet dynia; fi")


def test_droplets_load_the_firewall_and_enable_the_unit_that_loads_it_at_boot():
    assert DO.reload("nftables") == ("nft -f /etc/dynia/firewall.nft && systemctl daemon-reload && "
                                     "systemctl enable --quiet dynia-firewall.service")
    assert DO.stop("nftables") == ("systemctl disable --quiet dynia-firewall.service 2>/dev/null; "
                                   "if nft list table inet dynia >/dev/null 2>&1; then nft delete table inet dynia; fi")


def test_droplets_reload_haproxy_only_when_its_master_already_has_the_environment_file_else_restart():
    main_pid = '"$(systemctl show -p MainPID --value haproxy)"'
    assert DO.reload("haproxy") == (
        "if systemctl is-active --quiet haproxy && " + ENV_CURRENT.format(pid=main_pid) +
        "; then systemctl reload haproxy; else systemctl restart haproxy; fi")


def test_droplets_reload_or_restart_through_systemd():
    assert DO.reload("caddy") == "systemctl reload-or-restart caddy"
    assert DO.reload("keepalived") == "systemctl reload-or-restart keepalived"
    assert DO.running("keepalived") == "systemctl is-active --quiet keepalived"


def test_lab_reloads_haproxy_seamlessly_restarts_a_stale_environment_or_starts_it_in_master_worker_mode():
    alive = '[ -s /run/haproxy.pid ] && kill -0 "$(cat /run/haproxy.pid)" 2>/dev/null'
    assert LAB.reload("haproxy") == (
        f"if {alive} && ! " + ENV_CURRENT.format(pid='"$(cat /run/haproxy.pid)"') + "; "
        'then kill "$(cat /run/haproxy.pid)"; '
        f"for i in $(seq 50); do {alive} || break; sleep 0.1; done; fi; "
        f'if {alive}; '
        'then kill -USR2 "$(cat /run/haproxy.pid)"; '
        "else set -a; . /etc/default/haproxy; set +a; mkdir -p /run/haproxy; "
        "haproxy -W -D -f /etc/haproxy/haproxy.cfg -p /run/haproxy.pid -S /run/haproxy-master.sock; fi")


def test_lab_reloads_caddy_with_force_or_starts_it_as_the_caddy_user_with_a_pid_file():
    assert LAB.reload("caddy") == (
        'if [ -s /run/caddy.pid ] && kill -0 "$(cat /run/caddy.pid)" 2>/dev/null; '
        "then caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile --force >/dev/null 2>&1; "
        "else install -o caddy -g caddy -m 644 /dev/null /run/caddy.pid; "
        "setpriv --reuid caddy --regid caddy --init-groups --inh-caps +net_bind_service "
        "--ambient-caps +net_bind_service env HOME=/var/lib/caddy "
        "caddy start --config /etc/caddy/Caddyfile --adapter caddyfile --pidfile /run/caddy.pid "
        ">/var/log/caddy-start.log 2>&1; fi")


def test_lab_reloads_keepalived_with_hup_or_starts_it_in_the_foreground_logging_to_a_file():
    assert LAB.reload("keepalived") == (
        'if [ -s /run/keepalived.pid ] && kill -0 "$(cat /run/keepalived.pid)" 2>/dev/null; '
        'then kill -HUP "$(cat /run/keepalived.pid)"; '
        "else setsid keepalived -n -l -D -G -f /etc/keepalived/keepalived.conf "
        "-p /run/keepalived.pid -r /run/keepalived-vrrp.pid </dev/null >>/var/log/keepalived.log 2>&1 & fi")
    assert LAB.running("keepalived") == ('[ -s /run/keepalived.pid ] && '
                                         'kill -0 "$(cat /run/keepalived.pid)" 2>/dev/null')


def test_lab_never_finds_a_process_by_name():
    for component in ("haproxy", "caddy", "keepalived"):
        for command in (LAB.reload(component), LAB.running(component)):
            assert "pidof" not in command and "pgrep" not in command and "pkill" not in command


@pytest.mark.parametrize("commands,binary", [(DO, "docker compose"), (LAB, "podman-compose")],
                         ids=["digitalocean", "local"])
def test_compose_up_and_down_name_the_services_rendered_compose_file(commands, binary):
    assert commands.compose_up("api") == f"{binary} -f /opt/dynia/compose/api/docker-compose.yml up -d"
    assert commands.compose_down("api") == f"{binary} -f /opt/dynia/compose/api/docker-compose.yml down"


DRAIN = ("mkdir -p /run/dynia/drain && sum=$(sha256sum < /opt/dynia/compose/api/docker-compose.yml) "
         "&& sum=${sum%% *} || exit 1; "
         'if {running} && [ "$(cat /run/dynia/drain/api.up 2>/dev/null)" != "$sum" ]; then '
         # Mark it draining; the mark goes on every exit.
         "trap 'rm -f /run/dynia/drain/api' EXIT; trap 'exit 143' TERM HUP INT; : > /run/dynia/drain/api || exit 1; "
         # Every HAProxy marks the server down: check timeout 2 s + inter 2 s + (fall-1) x fastinter 0.5 s.
         "sleep 4.5; "
         # Caddy's in-flight requests to the app finish, bounded by HAProxy's timeout server.
         "end=$(($(date +%s) + 60)); "
         "until { u=$(curl -fsS --max-time 2 http://localhost:2019/reverse_proxy/upstreams) && "
         "! printf '%s\\n' \"$u\" | tr '{' '\\n' | grep -F '\"address\":\"127.0.0.1:9002\"' "
         "| grep -qv '\"num_requests\":0[,}]'; } || [ $(date +%s) -ge $end ]; do sleep 0.1; done; "
         # The new containers, and the record of the file they came from.
         "rm -f /run/dynia/drain/api.up; {up} || exit 1; echo \"$sum\" > /run/dynia/drain/api.up; "
         # The app's own health on the node, bounded by the spec's health timeout.
         "end=$(($(date +%s) + 15)); "
         "until curl -fs -o /dev/null --max-time 2 http://127.0.0.1:9002/healthz; do [ $(date +%s) -lt $end ] || "
         "{ echo \"dynia: api did not answer /healthz on 127.0.0.1:9002 within 15 s of its restart\" >&2; exit 1; }; "
         "sleep 0.2; done; "
         # Back: downinter 1 s + (rise-1) x fastinter 0.5 s + check timeout 2 s.
         "rm -f /run/dynia/drain/api; sleep 3.5; "
         # Nothing runs, or the same file: a plain up.
         "else rm -f /run/dynia/drain/api.up; {up} && echo \"$sum\" > /run/dynia/drain/api.up; fi")


@pytest.mark.parametrize("commands,binary", [(DO, "docker compose"), (LAB, "podman-compose")],
                         ids=["digitalocean", "local"])
def test_a_drained_compose_up_takes_a_running_copy_out_of_every_haproxy_until_the_new_one_is_healthy(
        commands, binary):
    from dynia.nodes.commands import Drain

    up = f"{binary} -f /opt/dynia/compose/api/docker-compose.yml up -d"
    assert commands.compose_up("api", Drain(port=9002, health_path="/healthz", ready_timeout=14.2)) == \
        DRAIN.replace("{running}", commands.compose_running("api")).replace("{up}", up)


def test_the_drain_waits_are_derived_from_haproxys_check_timing():
    from dynia.nodes.commands import HAPROXY_TIMING, HAProxyTiming

    assert HAPROXY_TIMING == HAProxyTiming(inter=2000, fastinter=500, downinter=1000, fall=2, rise=2,
                                           server_timeout=60)
    # No `timeout check` in haproxy.cfg: one check may take `inter`.
    assert HAPROXY_TIMING.marked_down_within == 2000 + 2000 + 1 * 500
    assert HAPROXY_TIMING.marked_up_within == 1000 + 1 * 500 + 2000
    slower = HAProxyTiming(inter=5000, fastinter=1000, downinter=3000, fall=3, rise=4)
    assert (slower.marked_down_within, slower.marked_up_within) == (5000 + 5000 + 2 * 1000, 3000 + 3 * 1000 + 5000)


def test_the_drained_compose_up_is_valid_shell_for_both_profiles():
    import subprocess

    from dynia.nodes.commands import Drain
    for commands in (DO, LAB):
        command = commands.compose_up("api", Drain(port=9002, health_path="/healthz", ready_timeout=15))
        assert subprocess.run(["sh", "-n", "-c", command], capture_output=True).returncode == 0


def test_docker_removes_a_service_by_its_project_name_so_it_works_after_the_compose_file_is_gone():
    assert DO.compose_remove("api") == "docker compose -p dynia-api down"


def test_lab_removes_a_service_by_podman_composes_project_label_because_podman_compose_needs_a_file():
    assert LAB.compose_remove("api") == (
        "ids=$(podman ps -aq --filter label=io.podman.compose.project=dynia-api) && "
        '{ [ -z "$ids" ] || podman rm -f $ids >/dev/null; }')


def test_whether_an_image_is_on_the_node_is_asked_of_its_container_engine_with_the_reference_quoted():
    assert DO.image_present("ghcr.io/example/shop-api:2.0.1") == \
        "docker image inspect ghcr.io/example/shop-api:2.0.1 >/dev/null 2>&1"
    assert LAB.image_present("localhost/dynia-lab-app") == "podman image exists localhost/dynia-lab-app"
    assert LAB.image_present("x;reboot") == "podman image exists 'x;reboot'"


def test_whether_a_service_runs_is_asked_by_project_too_so_a_removal_knows_what_a_rollback_restarts():
    assert DO.compose_running("api") == "docker compose -p dynia-api ps -q | grep -q ."
    assert LAB.compose_running("api") == "podman ps -q --filter label=io.podman.compose.project=dynia-api | grep -q ."


def test_the_removal_names_the_project_the_rendered_compose_file_sets():
    from pathlib import Path

    import yaml

    from dynia.spec.compose import ComposeInfo, wrapped
    from dynia.nodes.commands import compose_project
    info = ComposeInfo(Path("api.yml"), "api.yml", {"services": {"app": {"image": "nginx"}}}, 256, ())
    assert yaml.safe_load(wrapped("api", info))["name"] == compose_project("api") == "dynia-api"


# Which commands a service's bundle carries, per profile, placement and role: the app is
# started (and, on a failed first deploy, stopped) only where its placement runs it; Caddy is
# validated and reloaded everywhere, since every node routes to every service.
ROLE_RUNS = {("all", "MASTER"): True, ("all", "BACKUP"): True, ("active-only", "MASTER"): True,
             ("active-only", "BACKUP"): False, ("standby-only", "MASTER"): False, ("standby-only", "BACKUP"): True}


@pytest.mark.parametrize("kind", ["digitalocean", "local"])
@pytest.mark.parametrize("placement", ["all", "active-only", "standby-only"])
def test_service_bundle_commands_follow_placement_and_role(project, kind, placement):
    from dynia.render.bundle import build_bundles
    from dynia.render.rendering import drain_for
    from dynia.render.rendered import render_cluster
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    spec = project / "clusters/shop.yaml"
    text = spec.read_text().replace("    domain: api.example.com\n", "" if placement == "standby-only" else
                                    "    domain: api.example.com\n")
    text = text.replace("    health_path: /healthz\n    placement: all\n",
                        f"    health_path: /healthz\n    placement: {placement}\n", 1)
    if kind == "local":
        text = text.replace("kind: digitalocean", "kind: local").replace("  region: sgp1\n", "")
    spec.write_text(text)
    cluster = load_cluster(Project(project), "shop")
    assert cluster.spec.services["api"].placement == placement
    commands = NodeCommands(get(kind).profile)
    slots = {"origin_certificate": b"pem", "stats_credentials": b"creds", "provider_token": b"token",
             "origin_pull_ca": b"ca"}
    for node in cluster.spec.nodes:
        role = "MASTER" if node == cluster.spec.master_node else "BACKUP"
        bundle = build_bundles(cluster.spec, render_cluster(cluster), node, slots)["service:api"]
        runs = ROLE_RUNS[(placement, role)]
        assert bundle.validate == {"caddy": commands.validate("caddy")}
        # Every node carries how the service starts (drained where another copy serves meanwhile:
        # placement all, routed, two nodes) and stops; `run` says which applies here.
        drain = drain_for(cluster.spec, "api")
        assert (drain is not None) == (placement == "all")
        assert bundle.reload == {"caddy": commands.reload("caddy"), "service:api": commands.compose_up("api", drain)}
        assert bundle.stop == {"service:api": commands.compose_down("api")}
        assert bundle.run is runs
        assert bundle.component_order == ["service:api", "caddy"]
        assert [c["name"] for c in bundle.health] == ((["api app", "api via caddy"] if placement != "standby-only"
                                                        else ["api app"]) if runs else [])


def test_droplets_stop_a_component_through_systemd():
    assert DO.stop("keepalived") == "systemctl stop keepalived"


def test_lab_stops_a_component_by_its_pid_file_waits_for_it_and_fails_if_it_still_runs():
    alive = '[ -s /run/keepalived.pid ] && kill -0 "$(cat /run/keepalived.pid)" 2>/dev/null'
    assert LAB.stop("keepalived") == (
        f'if {alive}; then kill -TERM "$(cat /run/keepalived.pid)"; '
        f"for i in $(seq 50); do {alive} || break; sleep 0.1; done; fi; "
        f"! {{ {alive}; }}")
    assert "pidof" not in LAB.stop("keepalived") and "pkill" not in LAB.stop("keepalived")


# --- tls.mode letsencrypt: HTTP-01 answers on every node ----------------------------------------

ACME_PUBLISH = ("umask 022 && mkdir -p /opt/dynia/acme-challenge && chmod 0755 /opt/dynia/acme-challenge && "
                'while read -r t k; do case "$t" in ""|*[!A-Za-z0-9_-]*) '
                'echo "dynia: malformed ACME token" >&2; exit 2;; esac; '
                "printf '%s' \"$k\" > /opt/dynia/acme-challenge/.$t.tmp && "
                "chmod 0644 /opt/dynia/acme-challenge/.$t.tmp && "
                "mv -f /opt/dynia/acme-challenge/.$t.tmp /opt/dynia/acme-challenge/$t || exit 1; done")


def test_acme_answers_are_read_from_stdin_by_one_constant_command():
    from dynia.nodes.commands import acme_publish
    assert acme_publish() == ACME_PUBLISH


def test_acme_answers_are_withdrawn_by_token_and_a_token_that_is_not_base64url_is_refused():
    from dynia.nodes.commands import acme_withdraw
    assert acme_withdraw(["abc-DEF_123", "xyz"]) == ("rm -f /opt/dynia/acme-challenge/abc-DEF_123 "
                                                     "/opt/dynia/acme-challenge/xyz")
    for bad in (["../etc/passwd"], ["a b"], ["a;rm -rf /"], []):
        with pytest.raises(ValueError):
            acme_withdraw(bad)


def test_acme_publish_writes_each_answer_world_readable_and_refuses_a_path_in_a_token(tmp_path):
    """Executed for real, against a scratch directory standing in for PATHS.acme_challenge_dir."""
    import os
    import subprocess

    from dynia.nodes.commands import acme_publish
    from dynia.paths import PATHS

    d = tmp_path / "acme"
    script = acme_publish().replace(PATHS.acme_challenge_dir, str(d))
    r = subprocess.run(["sh", "-c", script], input="tok-1 tok-1.thumb_A\ntok_2 tok_2.thumb-B\n", text=True,
                       capture_output=True)
    assert r.returncode == 0, r.stderr
    assert (d / "tok-1").read_text() == "tok-1.thumb_A" and (d / "tok_2").read_text() == "tok_2.thumb-B"
    assert oct(os.stat(d / "tok-1").st_mode & 0o777) == "0o644" and oct(os.stat(d).st_mode & 0o777) == "0o755"
    assert sorted(p.name for p in d.iterdir()) == ["tok-1", "tok_2"]  # no temp file left
    r = subprocess.run(["sh", "-c", script], input="../escape x.y\n", text=True, capture_output=True)
    assert r.returncode == 2 and "malformed ACME token" in r.stderr
    assert not (tmp_path / "escape").exists()


def test_a_daemon_left_out_of_the_boot_is_a_disabled_unit_on_droplets_and_a_marker_the_lab_boot_reads():
    assert DO.at_boot("keepalived", False) == "systemctl disable --quiet keepalived"
    assert DO.at_boot("keepalived", True) == "systemctl enable --quiet keepalived"
    assert LAB.at_boot("keepalived", False) == ("mkdir -p /etc/dynia/boot-disabled && "
                                                ": > /etc/dynia/boot-disabled/keepalived")
    assert LAB.at_boot("keepalived", True) == "rm -f /etc/dynia/boot-disabled/keepalived"


# --- one-off tasks and release commands (dynia run, services.<name>.release_command) ---------

def test_a_one_off_task_is_a_removed_container_of_the_nodes_compose_file_with_each_word_quoted():
    assert LAB.compose_run("api", "api", ["sh", "-c", "echo $HOME; exit 3"]) == (
        "podman-compose -f /opt/dynia/compose/api/docker-compose.yml run --rm --no-deps -T api "
        "sh -c 'echo $HOME; exit 3'")
    assert DO.compose_run("api", "app", ["bin/rails", "db:migrate"]) == (
        "docker compose -f /opt/dynia/compose/api/docker-compose.yml run --rm --no-deps -T app bin/rails db:migrate")


def test_a_release_runs_the_new_compose_file_from_stdin_in_a_directory_gone_on_every_exit():
    registry = NodeCommands(get("digitalocean").profile, registry_auth=True)
    assert registry.compose_run("api", "app", ["bin/rails", "db:migrate"], from_stdin=True) == (
        "d=$(mktemp -d) || exit 125; trap 'rm -rf \"$d\"' EXIT; trap 'exit 143' TERM HUP INT; "
        "cat > \"$d/docker-compose.yml\" || exit 125; DOCKER_CONFIG=/etc/dynia/registry "
        "REGISTRY_AUTH_FILE=/etc/dynia/registry/config.json docker compose -f \"$d/docker-compose.yml\" "
        "run --rm --no-deps -T app bin/rails db:migrate")
