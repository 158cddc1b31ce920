"""The lab's block-storage "API": the local provider's stand-in for DigitalOcean Block Storage.

The same contract as the platform's: a volume is a block device (a loop device over a file in
the lab directory) attached to at most one lab node at a time; a second attach is refused
(exit ATTACHED_ELSEWHERE, DigitalOcean's 422); a detach — forced when the holder is gone — is
the fence: the holder's loop device is cut to zero usable blocks before it is released, so a
node that still has the filesystem mounted gets EIO on its next write (nothing it writes after
the detach is acknowledged), and its device — a block-device node of its own,
`<lab>/volumes/dev/<node>/<name>`, the only path the API gives it — is removed, so it cannot
mount the volume again. (Lab nodes share the machine's /dev: root on a node could still open
another node's loop device there; dynia's node side never does, it uses the path it is given.)

Nodes call it through `/usr/local/sbin/dynia-lab-volume` (dynia.nodes.lab installs it on
each node, bound to that node's id): `attach NAME` prints the device, `detach NAME [--force]`.
State: `<lab>/volumes/<name>.img` (the data) and `<name>.json` (who holds it, on which loop
device), changed under one lock.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

ATTACHED_ELSEWHERE = 3
NOT_FOUND = 4
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
# linux/loop.h: struct loop_info64 and its ioctls.
_LOOP_INFO64 = "QQQQQIIII64s64s32s2Q"
LOOP_SET_STATUS64, LOOP_GET_STATUS64 = 0x4C04, 0x4C05
FENCED_BYTES = 512   # what is left of a fenced attachment: not one filesystem block


class VolumeError(Exception):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def _dir(lab: Path) -> Path:
    return Path(lab) / "volumes"


def _check(name: str) -> str:
    if not NAME.fullmatch(name):
        raise VolumeError(f"volume name {name!r}: lowercase letters, digits and dashes", 2)
    return name


@contextmanager
def _locked(lab: Path):
    d = _dir(lab)
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield d


def _read(d: Path, name: str) -> dict:
    path = d / f"{name}.json"
    if not path.exists():
        raise VolumeError(f"no volume {name}", NOT_FOUND)
    return json.loads(path.read_text())


def _write(d: Path, name: str, record: dict) -> None:
    tmp = d / f".{name}.json.tmp"
    tmp.write_text(json.dumps(record))
    os.replace(tmp, d / f"{name}.json")


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise VolumeError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout.strip()


def create(lab: Path, name: str, size_gb: int, filesystem: str = "ext4") -> dict:
    """A new volume with its filesystem (DigitalOcean formats a volume created with a
    filesystem_type too); an existing one is kept as it is, never formatted again."""
    _check(name)
    with _locked(lab) as d:
        if (d / f"{name}.json").exists():
            return _read(d, name)
        img = d / f"{name}.img"
        with open(img, "wb") as f:
            f.truncate(size_gb << 30)   # sparse: the lab's disk holds only what is written
        _run("mkfs.ext4", "-q", "-F", str(img)) if filesystem == "ext4" else _run("mkfs.xfs", "-q", str(img))
        record = {"name": name, "size_gb": size_gb, "filesystem": filesystem, "node": None, "loop": None,
                  "device": None}
        _write(d, name, record)
        return record


def show(lab: Path, name: str) -> dict:
    with _locked(lab) as d:
        return _read(d, _check(name))


def attach(lab: Path, name: str, node: str) -> str:
    """Attach to `node` and return its device; again for the same node: the same device."""
    with _locked(lab) as d:
        record = _read(d, _check(name))
        if record["node"] == node:
            return record["device"]
        if record["node"] is not None:
            raise VolumeError(f"volume {name} is attached to {record['node']}: detach it first", ATTACHED_ELSEWHERE)
        loop = _run("losetup", "--find", "--show", str(d / f"{name}.img"))
        device = d / "dev" / node / name
        device.parent.mkdir(parents=True, exist_ok=True)
        device.unlink(missing_ok=True)
        os.mknod(device, 0o600 | stat.S_IFBLK, os.stat(loop).st_rdev)
        _write(d, name, {**record, "node": node, "loop": loop, "device": str(device)})
        return str(device)


def _fence(record: dict) -> None:
    """Remove the holder's device node, cut the loop device to FENCED_BYTES (every later read
    or write of the filesystem on it fails with EIO, whoever holds it open), then release it
    (the kernel frees it once nothing has it mounted)."""
    Path(record["device"]).unlink(missing_ok=True)
    device = record["loop"]
    try:
        fd = os.open(device, os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        buf = bytearray(struct.calcsize(_LOOP_INFO64))
        try:
            fcntl.ioctl(fd, LOOP_GET_STATUS64, buf)
        except OSError:
            return   # not bound any more
        fields = list(struct.unpack(_LOOP_INFO64, buf))
        fields[4] = FENCED_BYTES   # lo_sizelimit
        fcntl.ioctl(fd, LOOP_SET_STATUS64, struct.pack(_LOOP_INFO64, *fields))
    finally:
        os.close(fd)
    subprocess.run(["losetup", "--detach", device], capture_output=True, timeout=60)


def detach(lab: Path, name: str, node: str, force: bool = False) -> None:
    """Detach from `node`; `force` detaches from whichever node holds it (the holder is gone).
    Detaching a volume that is attached nowhere is done already."""
    with _locked(lab) as d:
        record = _read(d, _check(name))
        if record["node"] is None:
            return
        if record["node"] != node and not force:
            raise VolumeError(f"volume {name} is attached to {record['node']}, not {node}", ATTACHED_ELSEWHERE)
        _fence(record)
        _write(d, name, {**record, "node": None, "loop": None, "device": None})


def destroy(lab: Path, name: str) -> None:
    with _locked(lab) as d:
        record = _read(d, _check(name))
        if record["device"]:
            _fence(record)
        (d / f"{name}.img").unlink(missing_ok=True)
        (d / f"{name}.json").unlink()


def teardown(lab: Path) -> None:
    """Delete every volume of the lab, data and all (`cluster destroy --delete-data`); idempotent."""
    d = _dir(lab)
    if not d.is_dir():
        return
    for path in sorted(d.glob("*.json")):
        destroy(lab, path.stem)


def release_all(lab: Path) -> list[dict]:
    """The lab goes down and keeps its volumes, as DigitalOcean keeps a volume whose droplet is
    destroyed: every attachment is ended (the loop device fenced and released), the images and
    records stay for the next lab on this directory. Returns the kept volumes' records."""
    d = _dir(lab)
    if not d.is_dir():
        return []
    kept = []
    with _locked(lab) as d:
        for path in sorted(d.glob("*.json")):
            record = json.loads(path.read_text())
            if record.get("device"):
                _fence(record)
                record = {**record, "node": None, "loop": None, "device": None}
                _write(d, path.stem, record)
            kept.append(record)
        shutil.rmtree(d / "dev", ignore_errors=True)
    return kept


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="dynia-lab-volume", description=__doc__.split("\n\n")[0])
    ap.add_argument("lab", type=Path)
    ap.add_argument("--node", help="the node this call comes from (attach, detach)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    make = sub.add_parser("create", help="a new volume with its filesystem; an existing one is kept as it is")
    make.add_argument("name")
    make.add_argument("--size-gb", type=int, required=True)
    make.add_argument("--filesystem", choices=("ext4", "xfs"), default="ext4")
    sub.add_parser("attach").add_argument("name")
    det = sub.add_parser("detach")
    det.add_argument("name")
    det.add_argument("--force", action="store_true")
    sub.add_parser("show").add_argument("name")
    args = ap.parse_args(argv)
    if args.cmd in ("attach", "detach") and not args.node:
        ap.error(f"{args.cmd} needs --node")
    try:
        if args.cmd == "create":
            print(json.dumps(create(args.lab, args.name, args.size_gb, args.filesystem)))
        elif args.cmd == "attach":
            print(attach(args.lab, args.name, args.node))
        elif args.cmd == "detach":
            detach(args.lab, args.name, args.node, args.force)
        else:
            print(json.dumps(show(args.lab, args.name)))
    except VolumeError as e:
        print(f"dynia-lab-volume: {e}", file=sys.stderr)
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
