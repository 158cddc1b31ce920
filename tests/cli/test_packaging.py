"""What `pip install .` (not editable) ships: every package of the checkout.

A package missing from pyproject's list works in the editable development install and fails
only after a real install (`cannot import name 'providers' from 'dynia'`).
"""
from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_package_directory_is_in_the_installed_package_list():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    for package, directory in setuptools["package-dir"].items():
        for init in (REPO / directory).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                sub = init.parent.relative_to(REPO / directory).parts
                assert ".".join((package, *sub)) in listed, f"{init.parent} is not installed by pyproject.toml"
