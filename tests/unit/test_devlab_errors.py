"""The contributor lab's own errors (`python -m tests.devlab`): each says the command that fixes
it, before anything of a lab exists. Running labs are tests/lab/test_devlab.py's."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.devlab import INSTALL

REPO = Path(__file__).resolve().parents[2]


def devlab(*args: str, cwd: Path = REPO, env: dict | None = None, python: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *python, "-m", "tests.devlab", "-C", str(REPO / "examples"), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def test_debug_prints_the_trace_of_an_error():
    plain = devlab("--cluster", "shop", "status")
    assert plain.returncode == 10 and "does not run on lab nodes" in plain.stderr and "Traceback" not in plain.stderr
    debug = devlab("--cluster", "shop", "--debug", "status")
    assert debug.returncode == 10 and "Traceback" in debug.stderr
    assert debug.stderr.splitlines()[-2:] == plain.stderr.splitlines()[-2:]


def test_a_checkout_that_shadows_a_regular_install_is_told_the_editable_install(tmp_path, as_root):
    # What a regular (not editable) install looks like from the repo root: the checkout's dynia/
    # is imported, and nothing maps dynia.stacks onto stacks/. Site-packages without its .pth
    # files (python -S) is exactly that: the dependencies, and no editable finder.
    for name in ("dynia", "tests", "examples"):
        (tmp_path / name).symlink_to(REPO / name)
    site = sysconfig.get_paths()["purelib"]
    r = devlab("up", cwd=tmp_path, python=("-S",), env={"PYTHONPATH": f"{tmp_path}:{site}"})
    assert r.returncode == 10, r.stderr
    assert "dynia.stacks is not importable" in r.stderr
    assert r.stderr.splitlines()[1] == f"hint: install it as the lab needs, from the repo root: {INSTALL}"


def test_missing_lab_programs_are_named_with_their_debian_packages(as_root):
    r = devlab("up", env={"PATH": "/nonexistent"})
    assert r.returncode == 10, r.stderr
    error, hint = r.stderr.splitlines()[:2]
    assert error.startswith("error: missing on this machine: ") and "podman" in error and "busybox" in error
    assert "Debian packages: " in error and "busybox-static" in error
    assert hint == f"hint: install everything the lab needs, from the repo root: {INSTALL}"
    assert "bash .ci/test" not in hint


def test_the_one_lab_install_command_installs_every_debian_package_the_lab_names():
    # `sh .ci/lab-install` is what every lab error hints at: the packages it installs must cover
    # each program the lab checks for, and the suite installs the same list.
    import re

    from tests.devlab import DEBIAN

    listed = set(re.search(r"packages=\(([^)]*)\)", (REPO / ".ci/debian-packages").read_text()).group(1).split())
    assert set(DEBIAN.values()) <= listed
    assert "bash .ci/debian-packages" in (REPO / ".ci/lab-install").read_text()
    assert "bash .ci/debian-packages" in (REPO / ".ci/test").read_text()
