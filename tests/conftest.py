"""Shared fixtures: a scratch copy of examples/ and an in-process CLI runner."""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh copy of examples/ (clusters + compose files), without runtime data."""
    dest = tmp_path / "proj"
    shutil.copytree(EXAMPLES, dest, ignore=shutil.ignore_patterns(".dynia", "deploy-config"))
    return dest


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `dynia ARGS…` in-process through the real entry point (exit code, stdout, stderr)."""
    from dynia.cli import main

    def invoke(*args: str, env: dict | None = None) -> Result:
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        monkeypatch.setattr(sys, "argv", ["dynia", *args])
        capsys.readouterr()
        code = 0
        try:
            main.run()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke
