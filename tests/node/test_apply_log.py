"""The apply script's record of every push (`dynia logs dynia`): one line per push, to the journal
where journald listens (droplets), else to the node's apply log file (lab nodes)."""
from __future__ import annotations

import socket

from dynia.nodes.logs import split_time
from dynia.paths import APPLY_LOG_IDENTIFIER, PATHS

from .test_apply_script_local import _file, apply, make_bundle, root  # noqa: F401 (root: the fixture)


def _log(node_root) -> list[str]:
    path = node_root / PATHS.apply_log.lstrip("/")
    return path.read_text().splitlines() if path.exists() else []


def test_every_push_leaves_one_timed_line_with_its_outcome_in_the_nodes_apply_log(root):  # noqa: F811
    bundle = make_bundle([_file("/etc/web.conf", b"v1\n")])
    assert apply(root, bundle)[0] == 0
    assert apply(root, bundle)[0] == 0
    (root / "healthy").unlink()
    assert apply(root, make_bundle([_file("/etc/web.conf", b"v2\n")], version=2, retries=2))[0] == 30
    lines = _log(root)
    assert len(lines) == 3
    times = [split_time(line)[0] for line in lines]
    assert None not in times and times == sorted(times)
    texts = [split_time(line)[1] for line in lines]
    assert texts[0] == "push service:web v1: applied (1 changed, 0 removed; reloaded web; gate 1 tries, 0.00 s)"
    assert texts[1] == "push service:web v1: unchanged"
    assert texts[2].startswith("push service:web v2: rolled-back (1 changed, 0 removed; reloaded web; gate 2 tries, ")
    assert "exit 30): health gate failed after 2 tries" in texts[2]


def test_where_journald_listens_the_line_goes_to_the_journal_as_dynia_and_no_file_is_written(root):  # noqa: F811
    path = root / "run/systemd/journal/socket"
    path.parent.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as journal:
        journal.bind(str(path))
        journal.settimeout(10)
        (root / "healthy").unlink()
        assert apply(root, make_bundle([_file("/etc/web.conf", b"v1\n")], retries=1))[0] == 30
        entry = journal.recv(65536).decode()
    fields = dict(line.split("=", 1) for line in entry.splitlines())
    assert fields["SYSLOG_IDENTIFIER"] == APPLY_LOG_IDENTIFIER
    assert fields["PRIORITY"] == "3"   # a failed push is an error in the journal
    assert fields["MESSAGE"].startswith("push service:web v1: rolled-back (")
    assert _log(root) == []
