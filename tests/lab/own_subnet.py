"""A copy of examples/ whose lab cluster has a subnet of its own on this machine: what every lab
test runs on, so the suite runs beside a devlab or another suite (dynia.providers.lab_subnets)."""
from __future__ import annotations

import re
import shutil
from contextlib import contextmanager
from pathlib import Path

from dynia.providers import lab_subnets

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_SPEC = REPO / "examples" / "clusters" / "lab.yaml"
_RANGE = re.compile(r"^(\s*vpc_ip_range:\s*)(\S+)", re.M)


def example_range() -> str:
    """The range the example spec names: a devlab of the unedited example holds it, never a test."""
    return _RANGE.search(EXAMPLE_SPEC.read_text()).group(2)


def set_range(root: Path, subnet: str, cluster: str = "lab") -> None:
    path = root / "clusters" / f"{cluster}.yaml"
    text, count = _RANGE.subn(lambda m: m.group(1) + subnet, path.read_text(), count=1)
    assert count == 1, f"{path} names no provider.vpc_ip_range"
    path.write_text(text)


@contextmanager
def own_subnet(lab_dir: Path, root: Path | None = None):
    """Claim a free subnet for the lab at lab_dir (written into root's lab spec when given);
    yields it, released at the end (Lab.down releases it too)."""
    subnet = lab_subnets.allocate(lab_dir, avoid=(example_range(),))
    try:
        if root is not None:
            set_range(root, subnet)
        yield subnet
    finally:
        lab_subnets.release(subnet, lab_dir)


@contextmanager
def examples_copy(root: Path, lab_dir: Path):
    """examples/ copied to root (without runtime data), its lab cluster on a subnet of its own."""
    shutil.copytree(REPO / "examples", root, ignore=shutil.ignore_patterns(".dynia", "deploy-config"))
    with own_subnet(lab_dir, root) as subnet:
        yield subnet
