"""The mover's check and mount on a real block device (templates/node/volume.py, issue 23.2), as
root in a private mount namespace: a volume the droplet image already mounted by itself (under
/mnt, as DigitalOcean's does with a formatted volume) is unmounted there, checked and mounted at
the service's path; taken again, it is left as it is; released, it is mounted nowhere."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "templates" / "node" / "volume.py"

PROBE = r"""
import importlib.util, json, os, subprocess, sys
spec = importlib.util.spec_from_file_location("mover", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
device, auto = sys.argv[2], sys.argv[3]
subprocess.run(["mount", "-t", "ext4", device, auto], check=True)          # the image's own automount
vol = {"name": "dynia-shop-admin", "filesystem": "ext4", "mount": "/srv/admin"}
m.check_and_mount(device, vol)
first = {"mounts": m.mounts_of(device)}
open(m.ROOT + "/srv/admin/rows", "w").write("1\n")
m.check_and_mount(device, vol)                                            # again: nothing changes
first["again"] = m.mounts_of(device)
first["rows"] = open(m.ROOT + "/srv/admin/rows").read()
print(json.dumps(first))
"""


@pytest.fixture
def loop(tmp_path, as_root):
    image = tmp_path / "volume.img"
    with open(image, "wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    device = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True,
                            check=True).stdout.strip()
    yield device
    subprocess.run(["losetup", "--detach", device], capture_output=True)


def test_an_automounted_volume_is_unmounted_checked_and_mounted_at_the_service_path_once(tmp_path, loop):
    root, auto = tmp_path / "node", tmp_path / "mnt-auto"
    root.mkdir()
    auto.mkdir()
    done = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c", PROBE, str(SCRIPT),
                           loop, str(auto)], capture_output=True, text=True, timeout=120,
                          env={"DYNIA_ROOT": str(root), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["mounts"] == [f"{root}/srv/admin"]   # off /mnt, on the service's path only
    assert seen["again"] == seen["mounts"] and seen["rows"] == "1\n"
