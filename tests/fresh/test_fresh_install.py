"""The README's quick start, run as written on a fresh Debian 12 (a debootstrap root), as root.

`.ci/fresh-install-check` does the work (it is also run by hand); about 2 minutes here, so CI
runs it with the rest of the root tests.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]


def test_readme_quick_start_installs_and_plans_the_example_on_fresh_debian_12():
    if os.geteuid() != 0:
        pytest.fail("the fresh-install check needs root (debootstrap, chroot): run `bash .ci/test` (README)")
    proc = subprocess.run(["bash", str(REPO / ".ci" / "fresh-install-check")], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ok: the README's quick start installs dynia and prints the example plan" in proc.stdout
