"""The installed `dynia` console script, run as an operator runs it (a subprocess).

The script next to the interpreter running pytest: `.ci/test` runs pytest from a fresh virtual
environment, so these tests see exactly the dependencies `pip install .` brings (typer ≥0.26
no longer brings click, which is how `dynia --version` once crashed).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "dynia"


def _sigint_as_at_a_terminal() -> None:
    # A child inherits an ignored SIGINT (a job started with `&` by a shell without job control,
    # as CI runners do), and Python then never turns SIGINT into KeyboardInterrupt: the
    # operator's terminal leaves it at its default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def dynia(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    if not SCRIPT.exists():
        pytest.fail(f"no console script at {SCRIPT}: install dynia into this environment (bash .ci/test)")
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, preexec_fn=_sigint_as_at_a_terminal)


def test_version_prints_the_installed_distribution_version():
    proc = dynia("--version")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"dynia {version('dynia')}\n", "")


def test_help_lists_the_command_groups_and_global_options():
    proc = dynia("--help")
    assert proc.returncode == 0, proc.stderr
    for word in ("plan", "render", "service", "cluster", "--dir", "--debug", "--version"):
        assert word in proc.stdout



def test_tab_completion_completes_commands_and_options():
    complete = {"_DYNIA_COMPLETE": "complete_bash", "COMP_CWORD": "1", "COMP_WORDS": "dynia pl"}
    assert dynia(env=complete).stdout.split() == ["plan"]
    complete.update(COMP_CWORD="2", COMP_WORDS="dynia plan --offl")
    assert dynia(env=complete).stdout.split() == ["--offline"]


@pytest.mark.parametrize("args, command", [
    (["plan", "--offlin"], "dynia plan"),
    (["service", "add", "api2", "--compose", "services/api.yml", "--port", "abc"], "dynia service add"),
    (["no-such-command"], "dynia"),
    (["render", "--cluster"], "dynia render"),
    (["plan", "--offline", "--format", "html"], "dynia plan"),
    (["plan", "--offline", "--json", "--format", "markdown"], "dynia plan"),
    (["up", "--phase", "bogus"], "dynia up"),
])
def test_usage_error_exits_2_with_one_error_line_and_one_hint_line(project, args, command):
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    proc = dynia("-C", str(project), *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    error, hint = proc.stderr.splitlines()
    assert error.startswith("error: ") and "Traceback" not in proc.stderr
    assert hint == f"hint: run `{command} --help`"
    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file()} == before


def test_plan_offline_on_the_example_prints_each_node_in_rolling_order(project):
    proc = dynia("-C", str(project), "plan", "--offline", "--cluster", "shop")
    assert proc.returncode == 0, proc.stderr
    assert "rolling order: brave-panda → misty-owl" in proc.stdout
    assert "file change(s) across 2 node(s)" in proc.stdout


def _interrupting_module(tmp_path: Path, name: str) -> dict:
    """A module `name` on PYTHONPATH that delivers a real SIGINT to the process importing it.
    signal.raise_signal sends it to the importing thread itself and runs Python's handler
    before it returns, so the KeyboardInterrupt rises right there, whatever the machine's load
    and whichever threads the process has (a kill() of the process may be taken by another
    thread, and its KeyboardInterrupt come a scheduling slice later). Were it not delivered, the
    import ends with exit 3, never a hang."""
    (tmp_path / f"{name}.py").write_text("import os, signal\nsignal.raise_signal(signal.SIGINT)\nos._exit(3)\n")
    return {"PYTHONPATH": str(tmp_path)}


def test_ctrl_c_while_importing_at_start_up_prints_one_line_and_exits_130(tmp_path):
    proc = dynia("--help", env=_interrupting_module(tmp_path, "typer"))  # the CLI's first import
    assert (proc.returncode, proc.stdout, proc.stderr) == (130, "", "interrupted\n")


def test_ctrl_c_inside_a_command_prints_one_line_and_exits_130(tmp_path, project):
    # jinja2 is imported only once rendering starts, deep inside the command.
    proc = dynia("-C", str(project), "plan", "--offline", "--cluster", "shop",
                 env=_interrupting_module(tmp_path, "jinja2"))
    assert (proc.returncode, proc.stderr) == (130, "interrupted\n")


def test_user_text_with_rich_markup_is_printed_verbatim(tmp_path, project):
    odd = tmp_path / "proj[red]old"
    project.rename(odd)
    proc = dynia("-C", str(odd), "render", "--cluster", "shop")
    assert proc.returncode == 0, proc.stderr
    assert f"into {odd}/deploy-config/shop " in proc.stdout

    # Not a cluster name: the selection says so (it resolves exactly as every command does),
    # with the value verbatim and no markup error.
    proc = dynia("-C", str(odd), "context", "current", env={"DYNIA_CLUSTER": "[/x]"})
    assert proc.returncode == 10, proc.stderr
    assert proc.stderr.startswith("error: DYNIA_CLUSTER '[/x]' is not a cluster name") and "Traceback" not in proc.stderr
