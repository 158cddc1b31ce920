"""What `dynia logs` and `dynia exec` run on a node, as exact strings for both node profiles,
and how their answers are read back (Kamal's way of testing lib/kamal/commands/app/logging.rb)."""
from __future__ import annotations

import datetime as dt

import pytest

from dynia.nodes.containers import ContainerCommands, parse_list
from dynia.nodes.logs import LogCommands, LogWindow, engine_time, parse_service, since_seconds, split_time
from dynia.providers import get

DO, LAB = get("digitalocean").profile, get("local").profile
ID = "0123456789abcdef" * 4
ID2 = "fedcba9876543210" * 4
TOKEN = "a1" * 16
FMT = "'{{.Id}} {{.State.Status}} {{.Name}} {{index .Config.Labels \"com.docker.compose.service\"}}'"


def test_containers_are_listed_by_their_compose_project_label_with_full_ids():
    assert ContainerCommands(DO).listing("api") == (
        "ids=$(docker ps -aq --no-trunc --filter label=com.docker.compose.project=dynia-api) && "
        f'{{ [ -z "$ids" ] || docker inspect --format {FMT} $ids; }}')
    assert ContainerCommands(LAB).listing("api") == (
        "ids=$(podman ps -aq --no-trunc --filter label=io.podman.compose.project=dynia-api) && "
        f'{{ [ -z "$ids" ] || podman inspect --format {FMT} $ids; }}')


def test_a_container_listing_is_read_and_a_line_that_does_not_fit_is_not():
    out = (f"{ID} running dynia-api_api_1 api\n"
           f"{ID2} exited /dynia-api-cache-1 <no value>\n"
           "not-an-id running evil x\n"
           f"{ID[:12]} running short-id api\n")
    found = parse_list(out)
    assert [(c.id, c.state, c.name, c.part, c.running) for c in found] == [
        (ID2, "exited", "dynia-api-cache-1", "", False),
        (ID, "running", "dynia-api_api_1", "api", True)]


def test_a_container_log_is_read_with_the_engines_timestamps_and_the_window():
    lab = LogCommands(LAB)
    assert lab.container(ID, LogWindow(tail=100)) == f"podman logs --timestamps --tail 100 {ID} 2>&1"
    assert LogCommands(DO).container(ID, LogWindow(since="10m", tail=5, follow=True)) == (
        f"docker logs --timestamps --since 10m --tail 5 --follow {ID} 2>&1")
    # A followed container that comes back resumes from its last line's time, not the window.
    assert lab.container(ID, LogWindow(tail=5, follow=True), after="2026-12-08T02:01:36.656305897Z") == (
        f"podman logs --timestamps --since 2026-12-08T02:01:36.656305897Z --follow {ID} 2>&1")
    with pytest.raises(ValueError):
        lab.container("$(reboot)", LogWindow())


def test_a_service_log_is_one_round_trip_listing_then_each_containers_lines_after_a_mark():
    assert LogCommands(LAB).service("web", LogWindow(since="1h30m")) == (
        f"{ContainerCommands(LAB).listing('web')} || exit 1; for id in $ids; do echo \"::dynia-logs $id\"; "
        'podman logs --timestamps --since 1h30m "$id" 2>&1; done')
    with pytest.raises(ValueError):
        LogCommands(LAB).service("web", LogWindow(follow=True))


def test_a_service_answer_is_split_per_listed_container_only():
    out = (f"{ID} running dynia-api_api_1 api\n{ID2} running dynia-api_cache_1 cache\n"
           f"::dynia-logs {ID}\n2026-12-08T02:00:00.1Z one\n2026-12-08T02:00:01Z two\n"
           f"::dynia-logs {ID2}\n2026-12-08T02:00:00.5Z three\n"
           f"::dynia-logs {'9' * 64}\n2026-12-08T02:00:00Z not listed\n")
    read = parse_service(out)
    assert [c.name for c in read.containers] == ["dynia-api_api_1", "dynia-api_cache_1"]
    assert read.lines == {ID: ["2026-12-08T02:00:00.1Z one", "2026-12-08T02:00:01Z two"],
                          ID2: ["2026-12-08T02:00:00.5Z three"]}


@pytest.mark.parametrize("name,unit", [("haproxy", "-u haproxy.service"), ("caddy", "-u caddy.service"),
                                       ("keepalived", "-u keepalived.service"), ("dynia", "-t dynia")])
def test_droplets_read_dynias_components_from_the_journal(name, unit):
    log = LogCommands(DO).component(name, LogWindow(since="10m", tail=50, follow=True))
    assert log.command == f"journalctl --no-pager --no-hostname -o short-iso-precise {unit} --since -10m -n 50 -f"
    assert log.time_form == "iso"
    assert LogCommands(DO).component(name, LogWindow()).command == (
        f"journalctl --no-pager --no-hostname -o short-iso-precise {unit}")


def test_the_lab_reads_dynias_components_from_the_files_its_nodes_keep():
    lab = LogCommands(LAB)
    keepalived = lab.component("keepalived", LogWindow(tail=20))
    assert (keepalived.command, keepalived.time_form) == (
        "[ ! -e /var/log/keepalived.log ] || tail -n 20 /var/log/keepalived.log", "ctime")
    caddy = lab.component("caddy", LogWindow(tail=3, follow=True))
    assert (caddy.command, caddy.time_form) == ("tail -n 3 -F /var/log/caddy-start.log 2>/dev/null", "caddy")
    assert lab.component("dynia", LogWindow(since="5m")).command == (
        "[ ! -e /var/log/dynia/apply.log ] || tail -n 20000 /var/log/dynia/apply.log")
    haproxy = lab.component("haproxy", LogWindow())
    assert haproxy.command is None and "syslog" in haproxy.absent
    with pytest.raises(ValueError):
        lab.component("sshd", LogWindow())


def test_exec_quotes_every_word_and_marks_its_processes_for_ctrl_c():
    assert ContainerCommands(LAB).exec(ID, ["sh", "-c", "echo $HOME; exit 3"], interactive=True, tty=True,
                                       token=TOKEN) == (
        f"podman exec -i -t --env DYNIA_EXEC={TOKEN} {ID} sh -c 'echo $HOME; exit 3'")
    assert ContainerCommands(DO).exec(ID, ["ls", "a b"], interactive=False, tty=False, token=TOKEN) == (
        f"docker exec --env DYNIA_EXEC={TOKEN} {ID} ls 'a b'")
    assert ContainerCommands(DO).signal(TOKEN) == (
        f"for d in /proc/[0-9]*; do grep -qzxF DYNIA_EXEC={TOKEN} $d/environ 2>/dev/null && "
        "kill -INT ${d#/proc/} 2>/dev/null; done; true")
    with pytest.raises(ValueError):
        ContainerCommands(DO).signal("x; reboot")


@pytest.mark.parametrize("since,seconds", [("90s", 90), ("10m", 600), ("1h30m", 5400), ("2h", 7200),
                                           ("", None), ("10", None), ("1d", None), ("-5m", None), ("5m;ls", None)])
def test_since_is_a_duration_both_engines_and_journalctl_read(since, seconds):
    assert since_seconds(since) == seconds
    if seconds is None:
        with pytest.raises(ValueError):
            LogWindow(since=since)


def _ns(text: str) -> int:
    when = dt.datetime.fromisoformat(text)
    return int(when.timestamp()) * 10**9 + when.microsecond * 1000


def test_line_times_are_read_in_each_form_to_the_nanosecond():
    assert split_time("2026-12-08T02:01:36.656305897Z hello world") == (
        _ns("2026-12-08T02:01:36+00:00") + 656305897, "hello world")
    # journalctl's short-iso-precise, with an offset
    assert split_time("2026-12-08T03:01:36.5+01:00 haproxy[7]: up") == (
        _ns("2026-12-08T02:01:36.5+00:00"), "haproxy[7]: up")
    assert split_time("no time here") == (None, "no time here")
    when, text = split_time("Tue Dec  8 02:01:22 2026: Entering MASTER STATE", "ctime")
    assert text == "Entering MASTER STATE"
    assert when == int(dt.datetime(2026, 12, 8, 2, 1, 22).astimezone().timestamp()) * 10**9
    when, text = split_time('{"level":"info","ts":1796695291.3825283,"msg":"x"}', "caddy")
    assert when // 1000 == 1796695291382528 and text.startswith("{")
    assert split_time('{"ts":"soon"}', "caddy")[0] is None
    assert split_time("[1, 2]", "caddy")[0] is None


def test_engine_time_is_what_since_reads_back():
    ns = _ns("2026-12-08T02:01:36+00:00") + 7
    assert engine_time(ns) == "2026-12-08T02:01:36.000000007Z"
    assert split_time(engine_time(ns) + " x")[0] == ns
