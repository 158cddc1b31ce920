"""Golden files (tests/golden/): what a test's output is compared with, byte for byte.

They are rewritten only when DYNIA_UPDATE_GOLDEN=1 exactly (not "true", not "0"), and the test
that rewrote one then fails: an update is reviewed (git diff tests/golden) and the suite rerun
without the variable, so an accidental update can never pass.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

UPDATE = "DYNIA_UPDATE_GOLDEN"


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _rewritten(golden: Path) -> None:
    pytest.fail(f"{golden} rewritten ({UPDATE}=1): review it (git diff), then rerun without {UPDATE}")


def check_text(golden: Path, text: str, what: str) -> None:
    if os.environ.get(UPDATE) == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
        _rewritten(golden)
    assert golden.is_file(), f"{golden} is missing; write it with {UPDATE}=1, then review it"
    assert text == golden.read_text(), f"{what} changed; review, then rerun with {UPDATE}=1"


def check_tree(golden: Path, out: Path, what: str) -> None:
    if os.environ.get(UPDATE) == "1":
        shutil.rmtree(golden, ignore_errors=True)
        shutil.copytree(out, golden)
        _rewritten(golden)
    assert golden.is_dir(), f"{golden} is missing; write it with {UPDATE}=1, then review it"
    assert tree(out) == tree(golden), f"{what} changed; review, then rerun with {UPDATE}=1"
