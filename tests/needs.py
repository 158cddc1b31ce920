"""What a test needs from the machine: under `bash .ci/test` (DYNIA_CI=1), which installs every
tool the suite uses (.ci/debian-packages), a missing one is a failure; elsewhere a skip that
names it and its Debian package (`-ra` prints the reason)."""
from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("DYNIA_CI") == "1"


def need(present: bool, what: str) -> None:
    if present:
        return
    if in_ci():
        pytest.fail(f"{what}: CI installs it (.ci/debian-packages), so this is a failure, not a skip")
    pytest.skip(what)


def need_tools(*names: str, package: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    need(not missing, f"{', '.join(missing)} not installed (Debian package {package})")
