#!/usr/bin/env python3
"""dynia's data-volume mover, run on a node (standard library only; sent with the infra push).

    volume.py take SERVICE      attach the service's volume here, check and mount it
    volume.py release SERVICE   unmount it and detach it from here

notify.sh runs `take` on a MASTER transition before it starts the service, and never starts the
service when `take` fails; the apply script runs it before starting a data service on the
holder. `release` runs after the service is stopped (BACKUP, FAULT, STOP, a push that moves it).

Order and safety: only the node whose latest VRRP state is MASTER may take a volume. A volume
still attached to the old holder gets a grace period for that node's own `release` (its
notify.sh stops the service first when it still answers), then a forced detach: the provider's
detach is the fence (the old holder can no longer write or mount it). Every provider call is
retried like the reserved-IP assignment (pending action, rate limit, no answer: back off,
1 s doubling to 30 s); every step is idempotent (run it twice: the same end). A failed take
writes the node's `degraded` marker with the reason and an alert-ready record, and exits 1.

The configuration (/etc/dynia/volumes.json, rendered per node) names the provider's API
(`local`: the lab's dynia-lab-volume command) and each service's volume, filesystem and mount.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time

ROOT = os.environ.get("DYNIA_ROOT", "/").rstrip("/")
CONFIG = ROOT + "/etc/dynia/volumes.json"
STATE = ROOT + "/opt/dynia/state"
ATTACHED_ELSEWHERE = 3   # the provider's "attached to another node" (DigitalOcean's 422)
RETRY = 75   # the API command itself failed: no answer, busy (lab: exit codes other than 3 and 4)


class Failed(Exception):
    pass


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_atomic(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def vrrp_state() -> str:
    try:
        with open(f"{STATE}/vrrp") as f:
            return (f.read().split() or ["UNKNOWN"])[0]
    except OSError:
        return "UNKNOWN"


def run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


class LabApi:
    """The local provider's block storage: dynia.providers.lab_volumes through the node's command."""

    def __init__(self, config: dict):
        self.command = config["api_command"]

    def _call(self, *args: str) -> subprocess.CompletedProcess:
        return run([self.command, *args])

    def attach(self, name: str) -> tuple[str, str | None]:
        """('ok', device) | ('elsewhere', None) | ('retry', None); raises Failed on a refusal."""
        done = self._call("attach", name)
        if done.returncode == 0:
            return "ok", done.stdout.strip()
        if done.returncode == ATTACHED_ELSEWHERE:
            return "elsewhere", None
        if done.returncode == RETRY:
            return "retry", None
        raise Failed(f"attach {name}: {done.stderr.strip() or done.returncode}")

    def detach(self, name: str, force: bool = False) -> None:
        done = self._call("detach", name, *(["--force"] if force else []))
        if done.returncode not in (0,):
            raise Failed(f"detach {name}: {done.stderr.strip() or done.returncode}")


def api_for(config: dict):
    if config["api"] == "local":
        return LabApi(config)
    raise Failed(f"no block-storage API {config['api']!r} on this node")


def mounted_device(mount: str) -> str | None:
    """The device mounted at `mount` in this node's mount namespace, or None."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == mount:
                return fields[fields.index("-") + 2]
    return None


def check_and_mount(device: str, vol: dict) -> None:
    mount = ROOT + vol["mount"]
    have = mounted_device(mount)
    if have == device and os.access(mount, os.W_OK) and run(["touch", f"{mount}/.dynia-volume"]).returncode == 0:
        return   # already mounted here, and it answers
    if have is not None:
        # A stale mount (a fenced attachment of an earlier term): it can only fail.
        run(["umount", "-l", mount])
    if vol["filesystem"] == "ext4":
        fsck = run(["fsck.ext4", "-p", device], timeout=600)
        if fsck.returncode not in (0, 1):   # 1: errors corrected; 2+: reboot needed or left
            raise Failed(f"fsck of {device} exited {fsck.returncode}: {fsck.stdout.strip()[-300:]}")
    os.makedirs(mount, exist_ok=True)
    done = run(["mount", "-t", vol["filesystem"], device, mount])
    if done.returncode != 0:
        raise Failed(f"mount {device} on {vol['mount']}: {done.stderr.strip()}")


# A push reaches the configured MASTER right after its infra push (re)started keepalived: VRRP makes
# it MASTER only once keepalived's HAProxy check passes and it preempts whoever stood in. The take
# waits that long for MASTER, not for ever (notify.sh's take runs on the transition itself).
MASTER_WAIT_SECONDS = 30.0


def wait_for_master(name: str) -> None:
    deadline = time.monotonic() + MASTER_WAIT_SECONDS
    while (state := vrrp_state()) != "MASTER":
        if time.monotonic() >= deadline:
            raise Failed(f"this node is {state}, not MASTER: it may not take volume {name}")
        time.sleep(0.2)


def attach_here(api, vol: dict, config: dict) -> str:
    name = vol["name"]
    wait_for_master(name)
    delay, grace_end, forced, tries = 1.0, time.monotonic() + config["grace_seconds"], False, 0
    while True:
        state = vrrp_state()
        if state != "MASTER":
            raise Failed(f"this node is {state}, not MASTER: it may not take volume {name}")
        answer, device = api.attach(name)
        if answer == "ok":
            return device
        if answer == "elsewhere" and time.monotonic() < grace_end:
            time.sleep(0.2)   # the old holder's own release (its notify.sh) may still come
            continue
        if answer == "elsewhere" and not forced:
            # The old holder did not let go: it is gone, or cannot be reached. The forced
            # detach fences it: it cannot write another block or mount the volume again.
            api.detach(name, force=True)
            forced = True
            continue
        tries += 1
        if tries >= config["tries"]:
            break
        time.sleep(delay)
        delay = min(delay * 2, 30.0)
    raise Failed(f"volume {name} not attached after {tries} tries (last answer: {answer})")


def take(service: str) -> int:
    config = load()
    vol = config["volumes"][service]
    try:
        api = api_for(config)
        device = attach_here(api, vol, config)
        check_and_mount(device, vol)
    except (Failed, OSError, subprocess.SubprocessError) as e:
        reason = f"data volume of {service}: {e}"
        write_atomic(f"{STATE}/degraded", json.dumps({"reason": reason, "time": now(), "layer": f"service:{service}"}) + "\n")
        write_atomic(f"{STATE}/alerts/volume-{service}.json",
                     json.dumps({"kind": "volume", "service": service, "volume": vol["name"],
                                 "reason": str(e), "time": now()}) + "\n")
        print(f"dynia volume: {reason}; {service} stays stopped", file=sys.stderr)
        return 1
    write_atomic(f"{STATE}/volumes/{service}.json",
                 json.dumps({"volume": vol["name"], "device": device, "mount": vol["mount"], "time": now()}) + "\n")
    for path in (f"{STATE}/alerts/volume-{service}.json",):
        if os.path.exists(path):
            os.remove(path)
    return 0


def release(service: str) -> int:
    config = load()
    vol = config["volumes"][service]
    mount = ROOT + vol["mount"]
    if mounted_device(mount) is not None:
        done = run(["umount", mount])
        if done.returncode != 0:
            run(["umount", "-l", mount])   # a fenced or busy mount: the detach below ends it anyway
    try:
        api_for(config).detach(vol["name"])
    except Failed as e:
        # Attached elsewhere already (a new holder forced it): nothing of ours to let go.
        print(f"dynia volume: {e}", file=sys.stderr)
    try:
        os.remove(f"{STATE}/volumes/{service}.json")
    except FileNotFoundError:
        pass
    return 0


def load() -> dict:
    with open(CONFIG) as f:
        return json.load(f)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("take", "release"):
        print("usage: volume.py take|release SERVICE", file=sys.stderr)
        return 2
    os.makedirs(STATE, exist_ok=True)
    # One volume step at a time on this node (notify.sh and a push may both ask).
    with open(f"{STATE}/volume.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return (take if argv[0] == "take" else release)(argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
