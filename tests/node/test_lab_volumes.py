"""The lab's block-storage "API" keeps DigitalOcean's contract (issue 23.4): one attachment at a
time, a second refused, and a detach that fences — the old device node is gone and a filesystem
still mounted on the old attachment cannot write another block. Real loop devices, as root."""
from __future__ import annotations

import os
import subprocess

import pytest

from dynia.providers import lab_volumes as lv


@pytest.fixture
def lab(tmp_path, as_root):
    """A lab directory for volumes only (loop devices, root); every loop device released after."""
    yield tmp_path
    subprocess.run(["umount", "-l", str(tmp_path / "mnt")], capture_output=True)
    lv.teardown(tmp_path)


def test_one_attachment_at_a_time_and_a_forced_detach_fences_the_old_holder(lab):
    record = lv.create(lab, "dynia-t-db", 1)
    assert record["node"] is None and lv.create(lab, "dynia-t-db", 1) == record   # kept, never reformatted
    device = lv.attach(lab, "dynia-t-db", "misty-owl")
    assert lv.attach(lab, "dynia-t-db", "misty-owl") == device   # idempotent
    with pytest.raises(lv.VolumeError) as refused:
        lv.attach(lab, "dynia-t-db", "brave-panda")
    assert refused.value.code == lv.ATTACHED_ELSEWHERE and "misty-owl" in str(refused.value)
    with pytest.raises(lv.VolumeError) as not_yours:
        lv.detach(lab, "dynia-t-db", "brave-panda")
    assert not_yours.value.code == lv.ATTACHED_ELSEWHERE

    mnt = lab / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "ext4", device, str(mnt)], check=True)
    with open(mnt / "rows", "w") as f:
        f.write("1\n")
        f.flush()
        os.fsync(f.fileno())
    lv.detach(lab, "dynia-t-db", "brave-panda", force=True)   # misty-owl is "gone"
    assert not os.path.exists(device)
    with pytest.raises(OSError):
        with open(mnt / "rows", "a") as f:
            f.write("2\n")
            f.flush()
            os.fsync(f.fileno())
    subprocess.run(["umount", "-l", str(mnt)], check=True)

    new = lv.attach(lab, "dynia-t-db", "brave-panda")
    assert new != device and lv.show(lab, "dynia-t-db")["node"] == "brave-panda"
    subprocess.run(["fsck.ext4", "-p", new], capture_output=True)
    subprocess.run(["mount", "-t", "ext4", new, str(mnt)], check=True)
    assert (mnt / "rows").read_text() == "1\n"   # what was acknowledged, and nothing after the fence
    subprocess.run(["umount", str(mnt)], check=True)
    lv.detach(lab, "dynia-t-db", "brave-panda")
    assert lv.show(lab, "dynia-t-db")["node"] is None


def test_teardown_releases_every_loop_device(lab):
    lv.create(lab, "dynia-t-a", 1)
    lv.attach(lab, "dynia-t-a", "misty-owl")
    loop = lv.show(lab, "dynia-t-a")["loop"]
    lv.teardown(lab)
    assert str(lab) not in subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert loop and not (lab / "volumes" / "dynia-t-a.json").exists()


def test_a_lab_going_down_releases_every_loop_device_and_keeps_the_volumes(lab):
    lv.create(lab, "dynia-t-kept", 1)
    device = lv.attach(lab, "dynia-t-kept", "misty-owl")
    mnt = lab / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "ext4", device, str(mnt)], check=True)
    (mnt / "rows").write_text("1\n")
    subprocess.run(["umount", str(mnt)], check=True)
    [kept] = lv.release_all(lab)
    assert kept["name"] == "dynia-t-kept" and kept["node"] is None and kept["loop"] is None
    assert str(lab) not in subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert not os.path.exists(device) and (lab / "volumes/dynia-t-kept.img").exists()
    # The next lab on this directory takes it again, data and all (create keeps it as it is).
    assert lv.create(lab, "dynia-t-kept", 1)["name"] == "dynia-t-kept"
    again = lv.attach(lab, "dynia-t-kept", "brave-panda")
    subprocess.run(["mount", "-t", "ext4", again, str(mnt)], check=True)
    assert (mnt / "rows").read_text() == "1\n"
    subprocess.run(["umount", str(mnt)], check=True)
