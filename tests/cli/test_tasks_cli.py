"""`dynia run`'s printer, in-process: every line a node sends is escaped on its own stream, the
exit status is the command's (the console-script tests of run and maintenance are in
test_every_command.py, beside every other documented command)."""
from __future__ import annotations


def test_run_prints_every_node_line_escaped_on_its_stream_and_exits_with_the_commands_status(cli, project,
                                                                                           monkeypatch):
    from dynia.operations import tasks
    from dynia.engine.records import RunRecord

    def fake(cluster, service, argv, on_line, node=None, engine=None):
        on_line("stdout", "migrated \x1b]0;owned\x07 \u202eevil")
        on_line("stderr", "warning \x9b2J")
        return RunRecord(time="t", who="w", kind="run", service=service, node=node or "misty-owl",
                         command=argv, exit=5, seconds=0.1)

    monkeypatch.setattr(tasks, "run_task", fake)
    r = cli("-C", str(project), "run", "api", "--cluster", "shop", "--", "bin/migrate")
    assert r.code == 5, r.err
    assert r.out == "migrated \\x1b]0;owned\\x07 \\u202eevil\n"
    assert r.err == "warning \\x9b2J\n"
