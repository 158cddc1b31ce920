"""Podman storage inside lab nodes: a setup every supported podman accepts (Debian 12's 4.3 too).

A node's /var is an overlay, and podman 4.3 refuses its overlay driver on top of overlayfs
without a mount_program — the lab then dies at its first `podman import`, but only on machines
with that podman. The first test catches such a setup on any machine; the second proves on
this one that images import and containers run in a real node.
"""
from __future__ import annotations

import os
import subprocess
import time
import tomllib

from dynia.nodes.lab import APP_IMAGE, OVERLAID, STORAGE_CONF, Lab

from .conftest import record
from .own_subnet import own_subnet


def test_node_storage_driver_works_over_overlayfs_without_a_mount_program():
    storage = tomllib.loads(STORAGE_CONF)["storage"]
    # The graphroot lives on one of the node's overlays: that is what rules the overlay driver out.
    assert storage["graphroot"].split("/")[1] in OVERLAID
    # vfs is the one driver podman runs on any backing filesystem with no helper program
    # (overlay needs a mount_program here on podman 4.3; btrfs/zfs need those filesystems).
    assert storage["driver"] == "vfs"
    assert "mount_program" not in str(storage.get("options", {}))


def test_a_lab_node_imports_the_app_image_and_runs_a_container(tmp_path, lab_tools):
    with own_subnet(tmp_path / "lab") as subnet:
        _imports_and_runs(Lab.plan(tmp_path / "lab", subnet, ["misty-owl"]))


def _imports_and_runs(lab: Lab) -> None:
    started = time.monotonic()
    try:
        lab.up()  # imports the busybox image into the node's own storage
        record("lab_up_seconds_1_node_with_podman", round(time.monotonic() - started, 2))
        fmt = "{{.Store.GraphDriverName}} {{.Store.GraphRoot}}"
        info = lab.run("misty-owl", f"podman info --format '{fmt}'; stat -f -c %T /var/lib/containers/storage")
        assert info.stdout.decode().split() == ["vfs", "/var/lib/containers/storage", "overlayfs"]
        assert lab.run("misty-owl", "cat /etc/containers/storage.conf").stdout.decode() == STORAGE_CONF
        ran = lab.run("misty-owl", f"podman run --rm --network host {APP_IMAGE} echo ran in a container",
                      check=False)
        assert ran.returncode == 0 and ran.stdout == b"ran in a container\n", ran.stderr.decode()[-500:]
        # The node's storage went to its own /var overlay, not the machine's /var.
        assert (lab.dir / "nodes/misty-owl/var-up/lib/containers/storage/vfs").is_dir()
    finally:
        lab.down()
    assert not any(line.startswith(lab.prefix) for line in
                   subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.splitlines())
    with open("/proc/mounts") as mounts:
        assert str(lab.dir) not in mounts.read()
    assert not os.path.exists(lab.dir)
